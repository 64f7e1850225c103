"""The answer of the Adapter node's line (GET /flux2_lora/lora_check?path=...): what the file is, for people.

Pure of ComfyUI: the route in nodes/routes/lora.py only moves the query in and this JSON out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..api.request import check_lora_path
from ..errors import ConfigError, InputError
from ..lora.check import OFF, LoraCheck, check_loras
from ..lora.rule import OK, UNKNOWN

MAX_PATH_CHARS = 4096


def _tone(check: LoraCheck) -> str:
    if check.verdict == OK:
        return "ok"
    if check.verdict in (UNKNOWN, OFF):
        return "warn"
    return "error"


def lora_check_answer(query: Mapping[str, str], folder: Path | None = None,
                      environ: Mapping[str, str] | None = None, **options: Any) -> tuple[int, dict[str, Any]]:
    """(status, {"path", "verdict", "model", "format", "rank", "bytes", "text", "detail", "tone"}) for a path.

    ``text`` is the node's short line, ``detail`` the whole reason and what to do (``query["path"]``).

    An empty path answers an empty text; a path the Adapter node would refuse answers
    that error as the text. ``options`` go to ``check_loras`` (tests: session, deadline).
    """
    raw = str(query.get("path", ""))[:MAX_PATH_CHARS]
    if not raw.strip():
        return 200, {"path": "", "verdict": None, "text": "", "tone": "ok"}
    try:
        path = check_lora_path(raw)
    except InputError as exc:
        return 200, {"path": raw, "verdict": "invalid", "text": "Will be refused: not a URL or owner/repo",
                     "detail": f"Will be refused: {exc}", "tone": "error"}
    try:
        (check,) = check_loras([path], folder=folder, environ=environ, **options)
    except ConfigError as exc:
        return 200, {"path": path, "verdict": None, "text": "LoRA not checked (see the setting)",
                     "detail": f"Not checked: {exc}", "tone": "warn"}
    return 200, {**check.to_info(), "text": check.short_line(), "detail": check.line(), "tone": _tone(check),
                 "refused": check.refused, "cached": check.cached}
