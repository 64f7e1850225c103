"""The LoRA check of a run, for the generating nodes: before anything is admitted or sent.

Calls api_client.lora.check_loras with the node's Cancel and ComfyUI's user folder
(where the setting and the verdicts are kept), logs a warning for each adapter the
check could not recognise, shows those lines on the node (event ``flux2lora.lora_checks``,
read by web/js/lora_check.js), and raises the refusal error (nothing sent, nothing billed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .comfy_hooks import RunHooks, comfy_prompt_server, comfy_user_dir

log = logging.getLogger("flux2_lora")

CHECKS_EVENT = "flux2lora.lora_checks"


def pack_folder() -> Path | None:
    """``<ComfyUI user folder>/flux2_lora`` (the LoRA check's setting and verdicts), None outside ComfyUI."""
    user_dir = comfy_user_dir()
    return user_dir / "flux2_lora" if user_dir else None


def _show_on_node(node_id: str | None, lines: list[str]) -> None:
    server = comfy_prompt_server()
    if server is None or node_id is None:
        return
    try:
        server.send_sync(CHECKS_EVENT, {"node": node_id, "lines": lines})
    except Exception as exc:  # a UI message must never fail a run
        log.debug("LoRA check lines not sent: %s", type(exc).__name__)


def check_run_loras(loras: Any, hooks: Any = None) -> list[dict[str, Any]]:
    """Check a run's adapters; raise LoraRefusedError if any is refused; return the info's ``lora_checks``."""
    if not loras:
        return []
    from ..api_client.lora.check import check_loras, refuse_if_needed
    from ..api_client.lora.rule import UNKNOWN

    hooks = hooks if hooks is not None else RunHooks()
    count = len(loras)
    hooks.status(f"Checking {count} LoRA{'s' if count > 1 else ''}...")
    try:
        checks = check_loras(loras, cancel=getattr(hooks, "cancel_event", None), check_cancel=hooks.check_cancel,
                             folder=pack_folder())
    finally:
        hooks.status("")
    lines = []
    for index, check in enumerate(checks, 1):
        if check.verdict == UNKNOWN:
            log.warning("Flux2 LoRA: %s", check.warning())
            lines.append(f"LoRA {index}: {check.short_line()}")
        elif check.refused:
            lines.append(f"LoRA {index}: {check.short_line()}")
    _show_on_node(getattr(hooks, "node_id", None), lines)
    refuse_if_needed(checks)
    return [check.to_info() for check in checks]
