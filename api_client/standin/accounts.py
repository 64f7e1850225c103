"""The stand-in's account: usage log rows, balance and the priced model catalogue.

Built from the official pages (request-tracing-and-cost.md, usage-logs.md with
logs-v2.json, account-balance.md with billing-v2.json, complete-model-list.md with
models.json):

- ``GET /v2/logs``: one row per generation POST, newest first, failed ones too with
  zero cost; ``period`` or ``start``+``end`` (never both), repeated ``status`` and
  ``model``, ``limit`` 1-100, ``offset``; 400/401/429 as documented. A row becomes
  visible ``log_delay`` seconds after the answer was decided ("a row may appear late").
- ``GET /v2/billing``: ``{"current_balance": USD, "currency": "USD"}``, lowered by every
  succeeded request.
- ``GET /v1/models?id=...&include=pricing``: the two models, pricing opt-in, with a weak
  ``ETag`` and ``304`` for a matching ``If-None-Match``. No key needed.
- ``GET /v2/usage`` (api-key-usage.md, usage-v2.json): the key's spend in USD over ``period``
  or ``start``+``end`` (never both; at most 92 days), from the same rows as ``/v2/logs``, so
  with the same lag; ``group_by``/``tz`` are ``400`` here (``/v2/usage/detail`` only);
  ``key_prefix`` of the key itself is its own spend, any other prefix ``403`` (the stand-in's
  key is a regular key).
- ``GET /v1/models/deprecations``: the scriptable feed in deprecations.py (``deprecations``).

Each endpoint has a fault mode (``endpoint_modes``): ``ok``, ``missing`` (404),
``garbage`` (200 with an HTML page), ``wrong_shape`` (200 JSON of another shape),
``error`` (500); the catalogue also ``variable`` (a price that cannot be quoted) and
``no_pricing`` (the model without its pricing block). One-off faults for the next GETs of
an endpoint (a status, a raw body, a trickle, fields merged into the answer: see FAULTS.md)
are queued with ``queue_faults``. The headers of the latest ``HEADER_HISTORY`` service GETs
are kept in ``seen_headers``; older ones are dropped, like the rest of the stand-in's history.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from .answers import Answer, error_answer, iso_time, json_answer, merged
from .deprecations import DeprecationsFeed, check_deprecations
from .faults import SERVICE_ENDPOINTS, FaultQueue, check_service_fault

# 2,480 credits = $0.00124 in the tracing page's example: 2,000,000 credits per USD.
CREDITS_PER_USD = 2_000_000
DEFAULT_BALANCE = 100.0
ENDPOINTS = SERVICE_ENDPOINTS
# Service GETs whose headers are kept for tests to look at: the latest ones only.
HEADER_HISTORY = 256
MODES = {"ok", "missing", "garbage", "wrong_shape", "error"}
MODEL_MODES = MODES | {"variable", "no_pricing"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PERIOD = re.compile(r"^([1-9][0-9]{0,5})([hd])$")
_MAX_WINDOW = timedelta(days=92)
_LOG_STATUSES = ("succeeded", "failed")
_RATE_LIMIT = 200  # requests per 60 s on /v2/logs
# Per started megapixel of output, the same rate as pictures.credits_for (120,000 credits).
PRICE_PER_MEGAPIXEL = 120_000 / CREDITS_PER_USD
MODELS = (
    ("blackforestlabs/flux-2-lora", ["flux-2-lora"], "FLUX.2 LoRA"),
    ("blackforestlabs/flux-2-lora-edit", ["flux-2-lora-edit"], "FLUX.2 LoRA Edit"),
)


def usd_for(credits: float) -> float:
    """The USD amount of ``credits`` at the stand-in's rate."""
    return round(credits / CREDITS_PER_USD, 9)


def new_inference_id() -> str:
    """An id shaped like the API's (``V1StGXR8Z5jdHi6BmyT8k`` in the docs): 21 URL-safe characters."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii")[:21]


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # no offset: UTC, per the docs


@dataclass
class LogRow:
    """One request as /v2/logs reports it, plus when it becomes visible."""

    created: float
    status: str
    model: str
    credits: int
    inference_id: str
    client_request_id: str | None
    visible_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "created": iso_time(self.created), "status": self.status, "origin": "api", "model": self.model,
            "cost": {"usd": usd_for(self.credits), "credits": self.credits},
            "tokens": {"input": 0, "output": 0, "total": 0},
            "request_id": f"req-{self.inference_id[:8]}", "inference_id": self.inference_id,
            "client_request_id": self.client_request_id,
        }


class Accounts:
    """Log rows, balance and endpoint fault modes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults = {name: FaultQueue(check_service_fault) for name in ENDPOINTS}
        self.deprecations = DeprecationsFeed()  # GET /v1/models/deprecations
        self.reset()

    def reset(self) -> None:
        """Empty logs, the default balance, every endpoint answering normally, counters zero."""
        with self._lock:
            # A late answer to a request made before a reset must not write into the new logs.
            self.epoch = getattr(self, "epoch", 0) + 1
            self.rows: list[LogRow] = []
            self.balance = DEFAULT_BALANCE
            self.endpoint_modes: dict[str, str] = dict.fromkeys(ENDPOINTS, "ok")
            self.get_counts: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)
            self.seen_headers: deque[dict[str, str]] = deque(maxlen=HEADER_HISTORY)
            self._log_gets: deque[float] = deque()
            self.gets_in_progress = 0
        self.deprecations.reset()
        for queue in self._faults.values():
            queue.clear()

    def configure(self, endpoints: dict[str, str] | None = None, balance: float | None = None,
                  deprecations: list[dict[str, Any]] | None = None) -> None:
        """Set endpoint fault modes, the balance and/or the deprecations feed's entries (ValueError if invalid)."""
        entries = check_deprecations(deprecations) if deprecations is not None else None
        for name, mode in (endpoints or {}).items():
            allowed = MODEL_MODES if name == "models" else MODES
            if name not in ENDPOINTS or mode not in allowed:
                raise ValueError(f"endpoint {name!r} mode {mode!r}: endpoints {ENDPOINTS}, modes {sorted(allowed)}")
        if balance is not None and (isinstance(balance, bool) or not isinstance(balance, (int, float))):
            raise ValueError("balance must be a number of USD")
        with self._lock:
            self.endpoint_modes.update(endpoints or {})
            if balance is not None:
                self.balance = float(balance)
        if entries is not None:
            self.deprecations.replace(entries)

    def queue_faults(self, faults: list[dict[str, Any]]) -> None:
        """Queue one-off faults for the next service GETs, each for its ``endpoint`` (ValueError if invalid)."""
        if isinstance(faults, dict) or not hasattr(faults, "__iter__"):
            raise ValueError("faults must be given as a list of dicts")
        checked = [check_service_fault(f) for f in faults]  # all or nothing
        for fault in checked:
            self._faults[fault["endpoint"]].extend([fault])

    def pending_faults(self) -> int:
        """Service GETs still due to receive a queued fault."""
        return sum(len(queue) for queue in self._faults.values())

    def take_fault(self, name: str, headers: dict[str, str]) -> dict[str, Any]:
        """Count one GET of endpoint ``name``, keep its headers, and take its queued fault ({} if none)."""
        with self._lock:
            self.get_counts[name] += 1
            self.seen_headers.append(dict(headers))
        return self._faults[name].pop() or {}

    def in_progress(self, step: int) -> None:
        with self._lock:
            self.gets_in_progress += step

    def answer(self, name: str, query: str, authorized: bool, headers: dict[str, str],
               fault: dict[str, Any]) -> Answer:
        """The answer to one GET of endpoint ``name`` with its queued ``fault`` (see take_fault)."""
        if "body" in fault:
            body = fault["body"]
            answer = Answer(fault.get("status", 200), body.encode("utf-8") if isinstance(body, str) else body,
                            fault.get("content_type", "application/json"))
        elif "status" in fault:
            answer = error_answer(fault["status"], fault.get("message", "stand-in service fault"))
        else:
            answer = self._mode_answer(name)
            if answer is None:
                answer = (self.logs_answer(query, authorized, fault) if name == "logs" else
                          self.billing_answer(authorized, fault) if name == "billing" else
                          self.usage_answer(query, authorized, headers, fault) if name == "usage" else
                          self.deprecations.answer(query, headers, fault) if name == "deprecations" else
                          self.models_answer(query, headers, fault))
        answer.headers.update(fault.get("headers", {}))
        return answer

    # -- recording ------------------------------------------------------------
    def record(self, status: str, model: str, credits: int, client_request_id: str | None,
               inference_id: str, received: float, log_delay: float = 0.0, epoch: int | None = None) -> None:
        """Log one request; a succeeded one is charged to the balance (not if made before a reset)."""
        row = LogRow(created=received, status=status, model=model, credits=credits if status == "succeeded" else 0,
                     inference_id=inference_id,
                     client_request_id=client_request_id if client_request_id and
                     REQUEST_ID.match(client_request_id) else None,
                     visible_at=time.time() + log_delay)
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return
            self.rows.append(row)
            if status == "succeeded":
                self.balance = round(self.balance - usd_for(row.credits), 9)
            del self.rows[:-10000]  # bounded, like the rest of the stand-in's history

    def visible_rows(self) -> list[LogRow]:
        """Rows visible now, newest first."""
        now = time.time()
        with self._lock:
            return sorted((r for r in self.rows if r.visible_at <= now), key=lambda r: r.created, reverse=True)

    # -- answers --------------------------------------------------------------
    def _mode_answer(self, name: str) -> Answer | None:
        with self._lock:
            mode = self.endpoint_modes[name]
        if mode == "missing":
            return error_answer(404, "Cannot GET this route")
        if mode == "garbage":
            return Answer(200, b"<!doctype html><html><body>Gateway says hello</body></html>", "text/html")
        if mode == "wrong_shape":
            return json_answer(200, {"data": "not a list", "current_balance": "lots"})
        if mode == "error":
            return error_answer(500, "stand-in service fault")
        return None

    def logs_answer(self, query: str, authorized: bool, fault: dict[str, Any]) -> Answer:
        """GET /v2/logs."""
        if not authorized:
            return error_answer(401, "Missing or invalid API key")
        now = time.time()
        with self._lock:
            while self._log_gets and self._log_gets[0] < now - 60:
                self._log_gets.popleft()
            if len(self._log_gets) >= _RATE_LIMIT:  # refused ones are not kept: the window stays bounded
                return error_answer(429, "Over 200 requests per 60 seconds", {"Retry-After": "5"})
            self._log_gets.append(now)
        params = parse_qs(query, keep_blank_values=True)
        try:
            start, end, limit, offset = _window(params, now)
        except ValueError as exc:
            return error_answer(400, str(exc))
        statuses = params.get("status", [])
        for status in statuses:
            if status not in _LOG_STATUSES:
                return error_answer(400, f"status must be succeeded or failed (repeat the parameter); got {status!r}")
        models = params.get("model", [])
        rows = [r for r in self.visible_rows() if start <= r.created <= end
                and (not statuses or r.status in statuses)
                and (not models or r.model in models or r.model.split("/")[-1] in models)]
        page = rows[offset:offset + limit]
        return json_answer(200, merged({"data": [merged(r.to_json(), fault.get("row")) for r in page],
                                         "pagination": {"limit": limit, "offset": offset, "total": len(rows),
                                                        "has_more": offset + limit < len(rows)}},
                                        fault.get("answer")))

    def usage_answer(self, query: str, authorized: bool, headers: dict[str, str], fault: dict[str, Any]) -> Answer:
        """GET /v2/usage: the key's spend in USD over the window (the rows visible now: the logs' lag)."""
        if not authorized:
            return error_answer(401, "Missing or invalid API key")
        now = time.time()
        params = parse_qs(query, keep_blank_values=True)
        for name in ("group_by", "tz"):
            if name in params:
                return error_answer(400, f"{name} is accepted on /v2/usage/detail only; a flat total has nowhere "
                                         "to put a breakdown")
        try:
            start, end, _, _ = _window(params, now)
        except ValueError as exc:
            return error_answer(400, str(exc))
        prefix = params.get("key_prefix", [None])[0]
        key = headers.get("authorization", "")[len("Bearer "):].strip()
        if prefix is not None and (not prefix or not key.startswith(prefix)):
            return error_answer(403, "Reading the spend of a different key requires a management key")
        rows = [r for r in self.visible_rows() if start <= r.created <= end and r.status == "succeeded"]
        spend = round(sum(usd_for(r.credits) for r in rows), 9)
        return json_answer(200, merged({"api_key_prefix": prefix, "start": iso_time(start), "end": iso_time(end),
                                         "spend": spend, "currency": "USD", "requests": len(rows)},
                                        fault.get("answer")))

    def billing_answer(self, authorized: bool, fault: dict[str, Any]) -> Answer:
        """GET /v2/billing."""
        if not authorized:
            return error_answer(401, "Missing or invalid API key")
        with self._lock:
            balance = self.balance
        return json_answer(200, merged({"current_balance": balance, "currency": "USD"}, fault.get("answer")))

    def models_answer(self, query: str, headers: dict[str, str], fault: dict[str, Any]) -> Answer:
        """GET /v1/models (no key needed), with ETag and 304."""
        params = parse_qs(query, keep_blank_values=True)
        include = {part.strip().lower() for value in params.get("include", []) for part in value.split(",")}
        priced = bool(include & {"pricing", "all"}) or params.get("details", [""])[0] in ("true", "1")
        wanted = {part.strip().lower() for value in params.get("id", []) for part in value.split(",") if part.strip()}
        with self._lock:
            mode = self.endpoint_modes["models"]
        items = []
        for model_id, aliases, name in MODELS:
            if wanted and not wanted & {model_id, *aliases}:
                continue
            item: dict[str, Any] = {"id": model_id, "aliases": aliases, "type": "bfl/image-generations",
                                    "info": {"name": name, "developer": "Black Forest Labs"},
                                    "tags": ["playground:image"]}
            if priced and mode != "no_pricing":
                item["pricing"] = ({"kind": "variable", "currency": "USD"} if mode == "variable" else
                                   {"kind": "fixed", "currency": "USD",
                                    "units": [{"name": "megapixel", "measure": "output",
                                               "price": PRICE_PER_MEGAPIXEL, "per": 1}]})
            items.append(merged(item, fault.get("item")))
        body = json.dumps(merged({"object": "list", "data": items}, fault.get("answer"))).encode("utf-8")
        digest = base64.b64encode(hashlib.sha1(body).digest()).decode("ascii")[:27]
        etag = f'W/"{len(body):x}-{digest}"'
        if headers.get("if-none-match") == etag:
            return Answer(304, b"", "application/json", {"ETag": etag})
        return Answer(200, body, "application/json", {"ETag": etag})


def _window(params: dict[str, list[str]], now: float) -> tuple[float, float, int, int]:
    """(start, end, limit, offset) from the query, checked as the docs say (ValueError: 400)."""
    period, start, end = params.get("period"), params.get("start"), params.get("end")
    if period and (start or end):
        raise ValueError("give either period or start and end, not both")
    if period:
        match = _PERIOD.match(period[0])
        if not match:
            raise ValueError(f"period must be a positive integer followed by h or d; got {period[0]!r}")
        hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
        if hours > 92 * 24:
            raise ValueError("the window must not exceed 92 days")
        first, last = now - hours * 3600, now
    elif start and end:
        try:
            begin, finish = _parse_time(start[0]), _parse_time(end[0])
        except ValueError:
            raise ValueError("start and end must be ISO-8601 dates") from None
        if finish < begin:
            raise ValueError("end must not be earlier than start")
        if finish - begin > _MAX_WINDOW:
            raise ValueError("the window must not exceed 92 days")
        first, last = begin.timestamp(), finish.timestamp()
    else:
        raise ValueError("give either period or both start and end")
    try:
        limit = int(params.get("limit", ["50"])[0])
        offset = int(params.get("offset", ["0"])[0])
    except ValueError:
        raise ValueError("limit and offset must be integers") from None
    if not 1 <= limit <= 100 or offset < 0:
        raise ValueError("limit must be 1-100 and offset 0 or more")
    return first, last, limit, offset
