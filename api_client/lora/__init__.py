"""The LoRA check: before a run is sent, read each adapter's safetensors header and refuse what cannot work.

- ``header``: the safetensors header from a file's first bytes, as untrusted input;
- ``rule``: the decision rule (which model a LoRA was made for), pure;
- ``remote``: Range GETs with hard caps and Hugging Face names, anonymously, under the pack's URL rules;
- ``cache``: verdicts kept on disk per path; ``switch``: the off switch (setting and environment);
- ``check``: ``check_loras``, the entry point. The Adapter node's line for the frontend's route is
  ``panel/lora.py`` (the route answers live in ``api_client/panel``).

Nothing here imports torch or ComfyUI; the HTTP stack loads with ``check`` and ``remote``, on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LoraCheck": "check", "LoraRefusedError": "check", "check_loras": "check", "refuse_if_needed": "check",
    "refusal_message": "check", "classify": "rule", "check_enabled": "switch",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


__all__ = sorted(_LAZY)
