"""Fault descriptions for the stand-in: checking them early and queueing them.

Faults are checked when queued, not when a request arrives, so a typo in a
test ("stauts") fails loudly at the line that wrote it instead of silently
turning into a normal answer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_size(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) and 0 < x <= 16384 for x in v)


def _is_true(v: Any) -> bool:
    return v is True


def _anything(v: Any) -> bool:
    return True


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


POST_KEYS: dict[str, Check] = {
    "status": lambda v: _is_int(v) and 100 <= v <= 599,
    "retry_after": _is_str,
    "location": _is_str,
    "message": _is_str,
    "drop": _is_true,
    "delay": lambda v: _is_num(v) and v >= 0,
    "body": lambda v: isinstance(v, (str, bytes)),
    "content_type": _is_str,
    "data": _anything,
    "size": _is_size,
    "sizes": lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_size(s) for s in v),
    "usage": _anything,
    "url": _is_str,
    # Send the answer chunked, one byte every ``trickle`` seconds (a server that never quite finishes).
    "trickle": lambda v: _is_num(v) and v > 0,
    "times": lambda v: _is_int(v) and v >= 1,
    # The usage-log row: "succeeded", "failed" or "none" (default: from the answer), visible after log_delay s.
    "log": lambda v: v in ("succeeded", "failed", "none"),
    "log_delay": lambda v: _is_num(v) and v >= 0,
    # Cost headers: False leaves out x-aimlapi-credits-used/-usd-spent; the others set their raw text.
    "cost_headers": lambda v: isinstance(v, bool),
    "credits_header": _is_str,
    "usd_header": _is_str,
    # False: no x-inference-id header; a string: that header's text instead of the row's inference id.
    "inference_header": lambda v: v is False or _is_str(v),
}
# Keys that decide the whole answer; at most one per fault.
POST_ACTIONS = ("drop", "body", "data", "status")
# Keys that only tweak a normal answer; meaningless together with an action
# (except "status", which is allowed as the status of a raw "body").
POST_TWEAKS = ("size", "sizes", "usage", "url")

FILE_KEYS: dict[str, Check] = {
    "status": lambda v: _is_int(v) and 100 <= v <= 599,
    "truncate": _is_true,
    "truncate_declared": _is_true,
    "oversize": lambda v: _is_int(v) and v > 0,
    "oversize_chunked": lambda v: _is_int(v) and v > 0,
    "content_type": _is_str,
    "not_image": _is_true,
    "bomb": _is_true,
    "slow": lambda v: _is_num(v) and v > 0,
    # Send the picture one byte every ``trickle`` seconds, Content-Length declared.
    "trickle": lambda v: _is_num(v) and v > 0,
    "redirect": _is_str,
    "exif_rotate": lambda v: _is_int(v) and 1 <= v <= 8,
    "times": lambda v: _is_int(v) and v >= 1,
}
FILE_ACTIONS = (
    "status", "truncate", "truncate_declared", "oversize", "oversize_chunked",
    "not_image", "bomb", "slow", "trickle", "redirect", "exif_rotate",
)


SERVICE_ENDPOINTS = ("logs", "billing", "models", "usage", "deprecations")
SERVICE_KEYS: dict[str, Check] = {
    # Which service GET the fault is for: GET /v2/logs, /v2/billing, /v1/models, /v2/usage, /v1/models/deprecations.
    "endpoint": lambda v: v in SERVICE_ENDPOINTS,
    "status": lambda v: _is_int(v) and 100 <= v <= 599,
    "message": _is_str,
    "body": lambda v: isinstance(v, (str, bytes)),
    "content_type": _is_str,
    "delay": lambda v: _is_num(v) and v >= 0,
    "trickle": lambda v: _is_num(v) and v > 0,
    # Extra answer headers (an ETag, anything echoed); they win over the stand-in's own.
    "headers": lambda v: isinstance(v, dict) and all(_is_str(k) and _is_str(x) for k, x in v.items()),
    # Merged (deeply) into the normal answer: its top-level object, every log row, every model.
    "answer": lambda v: isinstance(v, dict),
    "row": lambda v: isinstance(v, dict),
    "item": lambda v: isinstance(v, dict),
    "times": lambda v: _is_int(v) and v >= 1,
}
SERVICE_ACTIONS = ("status", "body")
SERVICE_TWEAKS = ("answer", "row", "item")


def _check_keys(fault: Any, keys: dict[str, Check], kind: str) -> dict[str, Any]:
    if not isinstance(fault, dict):
        raise ValueError(f"{kind} fault must be a dict, got {type(fault).__name__}")
    for key, value in fault.items():
        if key not in keys:
            raise ValueError(f"unknown {kind} fault key {key!r}; known: {', '.join(keys)}")
        if not keys[key](value):
            raise ValueError(f"{kind} fault {key!r} has an invalid value {value!r}")
    return dict(fault)


def check_post_fault(fault: Any) -> dict[str, Any]:
    """Validate one POST fault dict and return a private copy (ValueError if bad)."""
    fault = _check_keys(fault, POST_KEYS, "POST")
    actions = [k for k in POST_ACTIONS if k in fault]
    if "body" in fault and "status" in fault:
        actions.remove("status")  # status of the raw body, not an error answer
    if len(actions) > 1:
        raise ValueError(f"POST fault combines {actions}; use one of them per fault")
    if actions and any(k in fault for k in POST_TWEAKS):
        raise ValueError(f"POST fault {actions[0]!r} cannot be combined with {POST_TWEAKS}")
    if "size" in fault and "sizes" in fault:
        raise ValueError("POST fault: give 'size' or 'sizes', not both")
    if "message" in fault and "status" not in fault:
        raise ValueError("POST fault 'message' needs 'status'")
    if "content_type" in fault and "body" not in fault:
        raise ValueError("POST fault 'content_type' needs 'body'")
    if "retry_after" in fault and "status" not in fault and "body" not in fault:
        raise ValueError("POST fault 'retry_after' needs 'status' or 'body'")
    if "trickle" in fault and "drop" in fault:
        raise ValueError("POST fault 'trickle' cannot be combined with 'drop'")
    if "location" in fault and "status" not in fault:
        raise ValueError("POST fault 'location' needs 'status' (a redirect such as 307)")
    return fault


def check_file_fault(fault: Any) -> dict[str, Any]:
    """Validate one file-GET fault dict and return a private copy (ValueError if bad)."""
    fault = _check_keys(fault, FILE_KEYS, "file")
    actions = [k for k in FILE_ACTIONS if k in fault]
    if len(actions) > 1:
        raise ValueError(f"file fault combines {actions}; use one of them per fault")
    if "content_type" in fault and actions and actions[0] in ("status", "redirect"):
        raise ValueError("file fault 'content_type' cannot be combined with 'status' or 'redirect'")
    return fault


def check_service_fault(fault: Any) -> dict[str, Any]:
    """Validate one service-GET fault dict and return a private copy (ValueError if bad)."""
    fault = _check_keys(fault, SERVICE_KEYS, "service")
    if "endpoint" not in fault:
        raise ValueError(f"service fault needs 'endpoint', one of {', '.join(SERVICE_ENDPOINTS)}")
    if "message" in fault and ("status" not in fault or "body" in fault):
        raise ValueError("service fault 'message' needs 'status' (and no 'body')")
    if "content_type" in fault and "body" not in fault:
        raise ValueError("service fault 'content_type' needs 'body'")
    tweaks = [k for k in SERVICE_TWEAKS if k in fault]
    if tweaks and any(k in fault for k in SERVICE_ACTIONS):
        raise ValueError(f"service fault {tweaks[0]!r} changes a normal answer; it cannot go with 'status' or 'body'")
    if "row" in fault and fault["endpoint"] != "logs":
        raise ValueError("service fault 'row' is for endpoint 'logs'")
    if "item" in fault and fault["endpoint"] != "models":
        raise ValueError("service fault 'item' is for endpoint 'models'")
    return fault


class FaultQueue:
    """Thread-safe FIFO of faults; a fault with ``times: N`` serves N requests."""

    def __init__(self, checker: Callable[[Any], dict[str, Any]]) -> None:
        self._checker = checker
        self._items: deque[list[Any]] = deque()  # [fault, remaining uses]
        self._lock = threading.Lock()

    def extend(self, faults: Any) -> None:
        """Check every fault first, then queue them all (all or nothing)."""
        if isinstance(faults, dict) or not hasattr(faults, "__iter__"):
            raise ValueError("faults must be given as a list of dicts")
        checked = [self._checker(f) for f in faults]
        with self._lock:
            for fault in checked:
                times = fault.pop("times", 1)
                self._items.append([fault, times])

    def pop(self) -> dict[str, Any] | None:
        """Take the fault for the next request, or None when the queue is empty."""
        with self._lock:
            if not self._items:
                return None
            entry = self._items[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._items.popleft()
            return dict(entry[0])

    def clear(self) -> None:
        """Forget all queued faults."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        """Number of requests still due to receive a fault."""
        with self._lock:
            return sum(n for _, n in self._items)
