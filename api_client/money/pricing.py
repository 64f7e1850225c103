"""What a run will cost, before it is sent: the model's documented price (GET /v1/models).

``GET {base}/models?id=<model>&include=pricing`` returns the model's ``pricing`` block
(complete-model-list.md). Read ``kind`` first: ``fixed`` quotes rates per unit in
``units``, ``variants`` one rate per parameter combination, ``variable`` cannot be quoted
ahead. A rate is always ``price`` for ``per`` units, never ``price`` alone. The units
understood here are pictures (``image``, ``picture``, ``generation``, ``request``) and
megapixels of output, counted per picture and rounded up to whole megapixels of
1,048,576 pixels (as the pack's credit estimate and the stand-in count them; the info
JSON shows the estimate next to what was charged, so any difference is visible). Any
other unit or shape gives no quote, and the pack says so rather than guess.

The catalogue answer is kept on disk (``<user>/flux2_lora/pricing.json``, else
``$XDG_CACHE_HOME/flux2-lora/pricing.json``) with its ``ETag``, and asked again at most
once a day, with ``If-None-Match``. The same file keeps the credits-per-USD rate the
last run's cost headers showed, so prices can be given in credits too. A price that
cannot be had never fails a generation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api.request import expected_pixels
from ..api.service import ServiceUnavailable, finite_cost, service_get
from ..runtime import kept_file_path, runtime

if TYPE_CHECKING:
    from ..api.client import ApiClient

log = logging.getLogger("flux2_lora")

MODELS_PATH = "/models"
REFRESH_SECONDS = 24 * 3600
# After a failed ask, wait this long before asking again (the price route is called as widgets change).
RETRY_SECONDS = 300
PRICING_FILE = "pricing.json"
MEGAPIXEL = 2**20
_PICTURE_UNITS = {"image", "images", "picture", "pictures", "generation", "request", "output_image"}
_MEGAPIXEL_UNITS = {"megapixel", "megapixels", "mp", "mpx"}


@dataclass(frozen=True)
class Quote:
    """A run's price in USD (None: cannot be quoted) and in credits (None: rate not known yet), and why."""

    usd: float | None
    credits: float | None
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"usd": self.usd, "credits": self.credits, "note": self.note}


def started_megapixels(width: int, height: int) -> int:
    """Whole megapixels of 2**20 pixels one picture is priced at, each one started counting whole."""
    return math.ceil(width * height / MEGAPIXEL)


def _shown(value: Any) -> str:
    """A catalogue value as a note quotes it: short (it came from the service, already redacted)."""
    text = str(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _rate(entry: Mapping[str, Any], num_images: int, width: int, height: int) -> tuple[float | None, str]:
    """USD for one rate entry (price, per, unit or name) over the whole run, or None and why."""
    price, per = finite_cost(entry.get("price")), finite_cost(entry.get("per", 1))
    unit = _shown(entry.get("unit") or entry.get("name") or "").strip().lower()
    if price is None or not per:
        return None, "the price list has a rate without a usable price and per"
    if unit in _PICTURE_UNITS:
        count = float(num_images)
    elif unit in _MEGAPIXEL_UNITS:
        count = float(num_images * started_megapixels(width, height))
    else:
        return None, f"the price is per {unit or 'an unnamed unit'}, which this pack cannot count ahead"
    return price / per * count, ""


def quote_usd(pricing: Any, num_images: int, width: int, height: int, image_size: Any = None) -> tuple[float | None,
                                                                                                       str]:
    """USD for ``num_images`` pictures of ``width`` x ``height`` from a ``pricing`` block, or None and why."""
    if not isinstance(pricing, dict):
        return None, "the model catalogue gives no price for this model"
    kind = pricing.get("kind")
    currency = pricing.get("currency", "USD")
    if currency != "USD":
        return None, f"the price is in {_shown(currency)}, not USD"
    if kind == "variable":
        return None, "the API says this model's price cannot be quoted ahead of the request (kind: variable)"
    if kind == "fixed":
        units = pricing.get("units")
        if not isinstance(units, list) or not units:
            return None, "the price list names no units"
        total = 0.0
        for entry in units:
            if not isinstance(entry, dict):
                return None, "the price list has a unit that is not an object"
            usd, why = _rate(entry, num_images, width, height)
            if usd is None:
                return None, why
            total += usd
        return total, ""
    if kind == "variants":
        asked = {"image_size": image_size if isinstance(image_size, str) else f"{width}x{height}",
                 "resolution": f"{width}x{height}", "width": width, "height": height, "num_images": num_images}
        variants = pricing.get("variants")
        for variant in variants if isinstance(variants, list) else []:
            when = variant.get("when") if isinstance(variant, dict) else None
            if isinstance(when, dict) and when and all(str(asked.get(k)) == str(v) for k, v in when.items()):
                return _rate(variant, num_images, width, height)
        return None, "no price variant matches this size"
    return None, f"the price list is of a kind this pack does not know ({_shown(repr(kind))})"


# The price file, ``default_pricing_path(user_dir, environ)``: in ComfyUI's user folder, else the cache folder.
default_pricing_path = partial(kept_file_path, PRICING_FILE)


class PriceBook:
    """The model catalogue's prices on disk, refreshed at most daily, and the credits-per-USD rate."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self._failed_at: dict[str, float] = {}
        self._ask_locks: dict[str, threading.Lock] = {}
        self.problem = ""

    def _load(self) -> dict[str, Any]:
        if self._state is None:
            try:
                state = json.loads(self.path.read_text(encoding="utf-8"))
                self._state = state if isinstance(state, dict) else {}
            except (OSError, ValueError):
                self._state = {}  # no file yet, or a damaged one: asked again
        return self._state

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as fh:
                json.dump(self._state, fh)
            os.replace(fh.name, self.path)
        except OSError as exc:
            log.warning("price file %s not written: %s", self.path, exc.strerror or exc)

    def credits_per_usd(self) -> float | None:
        """The rate the last run's cost headers showed, or None before any."""
        with self._lock:
            value = self._load().get("credits_per_usd")
        return finite_cost(value) or None

    def learn_rate(self, credits: float | None, usd: float | None) -> None:
        """Keep the credits-per-USD rate one answer showed (both cost headers present): the highest seen.

        The highest, so one odd answer can never make later estimates in credits too low.
        """
        if credits is None or usd is None or credits <= 0 or usd <= 0:
            return
        with self._lock:
            state = self._load()
            kept = finite_cost(state.get("credits_per_usd")) or 0.0
            if credits / usd > kept:
                state["credits_per_usd"] = credits / usd
                self._save()

    def pricing(self, model: str, client: ApiClient | None, now: float | None = None) -> Any:
        """The model's ``pricing`` block: from disk if asked within a day, else asked (with the ETag).

        None when the catalogue cannot be had (``problem`` says why) and nothing is on disk.
        One ask per model at a time: callers meanwhile wait for it, then read what it found.
        """
        now = time.time() if now is None else now
        entry, must_ask = self._entry(model, client, now)
        if not must_ask:
            return entry.get("pricing") if isinstance(entry, dict) else None
        with self._asking(model):
            entry, must_ask = self._entry(model, client, now)
            if not must_ask:
                return entry.get("pricing") if isinstance(entry, dict) else None
            return self._ask(model, client, entry, now)  # type: ignore[arg-type]

    def _entry(self, model: str, client: ApiClient | None, now: float) -> tuple[Any, bool]:
        """The model's entry on disk, and whether the catalogue must be asked now."""
        with self._lock:
            models = self._load().get("models")
            entry = models.get(model) if isinstance(models, dict) else None
            fresh = isinstance(entry, dict) and now - (finite_cost(entry.get("fetched_at")) or 0.0) < REFRESH_SECONDS
            recently_failed = now - self._failed_at.get(model, -math.inf) < RETRY_SECONDS
        return entry, not (fresh or client is None or recently_failed)

    def _asking(self, model: str) -> threading.Lock:
        with self._lock:
            return self._ask_locks.setdefault(model, threading.Lock())

    def _ask(self, model: str, client: ApiClient, entry: Any, now: float) -> Any:
        etag = _etag(entry.get("etag")) if isinstance(entry, dict) else None
        try:
            headers = {"If-None-Match": etag} if etag else {}
            answer = service_get(client, MODELS_PATH, [("id", model), ("include", "pricing")], headers,
                                 under_base=True, accept_not_modified=True)
            if answer.status == 304 and isinstance(entry, dict):
                pricing = entry.get("pricing")
            else:
                pricing = _pricing_of(answer.payload, model)
        except ServiceUnavailable as exc:
            with self._lock:
                self._failed_at[model] = now
                self.problem = exc.reason
            log.warning("model prices unavailable: %s", exc.reason)
            return entry.get("pricing") if isinstance(entry, dict) else None
        with self._lock:
            state = self._load()
            if not isinstance(state.get("models"), dict):
                state["models"] = {}
            # What is stored came through the service client: redacted, numbers bounded.
            state["models"][model] = {"pricing": pricing, "etag": _etag(answer.headers.get("etag")),
                                      "fetched_at": now}
            self.problem = ""
            self._save()
        return pricing

    def quote(self, model: str, client: ApiClient | None, num_images: int, image_size: Any) -> Quote:
        """The price of ``num_images`` pictures of ``image_size`` (a preset, a size dict or None)."""
        width, height = expected_pixels(image_size)
        pricing = self.pricing(model, client)
        if pricing is None:
            why = f"the model catalogue could not be read ({self.problem})" if self.problem else \
                "the model catalogue gives no price for this model"
            return Quote(None, None, f"Price unknown: {why}.")
        usd, why = quote_usd(pricing, num_images, width, height, image_size)
        if usd is None:
            return Quote(None, None, f"Price unknown: {why}.")
        rate = self.credits_per_usd()
        return Quote(usd, usd * rate if rate else None,
                     "" if rate else "in credits once a run has shown the credits-per-USD rate")


def _etag(value: Any) -> str | None:
    """An ETag worth keeping and sending back: printable ASCII, at most 200 characters."""
    ok = isinstance(value, str) and 0 < len(value) <= 200 and all(" " <= c <= "~" for c in value)
    return value if ok else None


def _pricing_of(payload: Any, model: str) -> Any:
    """The ``pricing`` of ``model`` in a catalogue answer, matching id and aliases as the docs advise."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ServiceUnavailable(f"{MODELS_PATH} answered JSON without a list of models", permanent=True)
    wanted = model.lower()
    for item in data:
        if not isinstance(item, dict):
            continue
        aliases = item.get("aliases")
        names = {str(item.get("id", "")).lower(),
                 *(str(a).lower() for a in (aliases if isinstance(aliases, list) else []))}
        if wanted in names or wanted.split("/")[-1] in names:
            return item.get("pricing")
    return None


def price_book(path: Path) -> PriceBook:
    """One price book per file in this process (a part of the runtime)."""
    return runtime().part(("price book", Path(path)), lambda: PriceBook(Path(path)))


def run_quote(book: PriceBook, client: ApiClient | None, bodies: list[Mapping[str, Any]]) -> Quote:
    """The price of the requests a run will send (their bodies), summed."""
    usd_total, credits_total = 0.0, 0.0
    note = ""
    for body in bodies:
        quote = book.quote(str(body.get("model")), client, int(body.get("num_images", 1)), body.get("image_size"))
        if quote.usd is None:
            return quote
        usd_total += quote.usd
        credits_total = credits_total + quote.credits if quote.credits is not None and credits_total is not None \
            else None
        note = quote.note
    return Quote(usd_total, credits_total, note)
