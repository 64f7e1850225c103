"""The key route's answers (GET and POST /flux2_lora/key): save or clear the key, and its status.

Pure of ComfyUI: nodes/routes/key.py moves the body in and this JSON out; the key file itself
is kept by http/key_store.py. No answer ever contains the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..http.key_store import KeyInputError, check_new_key, delete_key, key_status, save_key
from ..route_input import Answer, RouteInputError, parse_json_object


def key_get_answer(path: Path, environ: Mapping[str, str] | None = None) -> Answer:
    """The answer to GET: the key's status. Reads only."""
    return 200, key_status(path, environ)


def _parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    data = parse_json_object(body, content_type, ("key", "clear"), '{"key": "..."} or {"clear": true}', "the key")
    if ("key" in data) == ("clear" in data):
        raise KeyInputError('Send either {"key": "..."} to save a key or {"clear": true} to remove it.')
    if "clear" in data and data["clear"] is not True:
        raise KeyInputError('"clear" must be true.')
    return data


def key_post_answer(body: bytes, content_type: str, path: Path,
                    environ: Mapping[str, str] | None = None) -> Answer:
    """The answer to POST: save or clear the key, then report its status. The only state change."""
    try:
        data = _parse_body(body, content_type)
        if data.get("clear"):
            removed = delete_key(path)
            return 200, {**key_status(path, environ), "changed": removed}
        save_key(path, check_new_key(data["key"]))
    except RouteInputError as exc:
        return exc.status, {"error": str(exc), **key_status(path, environ)}
    except OSError as exc:
        return 500, {"error": f"Could not save the key in {path.parent}: {exc.strerror}.",
                     **key_status(path, environ)}
    return 200, {**key_status(path, environ), "changed": True}
