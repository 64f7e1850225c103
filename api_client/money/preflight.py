"""A run's money checks just before it sends anything, and what it learns afterwards.

Before sending: what the API's deprecations feed says of the model (``lifecycle.py``: a
withdrawn model is refused here, a retiring one noted for the info output); the price of
exactly the requests about to go out (not those the cache or another run answers),
request by request; the money component then checks the
balance floor with those estimates when it admits the run (``money.py``). After: the
credits-per-USD rate the answers showed, kept in the price file so prices can be shown
in credits. Nothing here fails a generation because a price is unavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..api.client import LazyClient
from ..api.lifecycle import DeprecationFeed, ModelNotice, check_models
from ..api.request import expected_pixels
from .pricing import PriceBook, Quote, quote_usd, run_quote

if TYPE_CHECKING:
    from ..api.client import ApiClient

log = logging.getLogger("flux2_lora")


class RunMoney:
    """One run's price quote and model lifecycle check (``before_send``), and its learning (``after``).

    The balance floor is the money component's (``money.Money.admit``), which takes these estimates.
    """

    def __init__(self, client: ApiClient | LazyClient, book: PriceBook,
                 feed: DeprecationFeed | None = None) -> None:
        self._client = client
        self.book = book
        self.feed = feed
        self.quote: Quote | None = None
        self.notices: list[ModelNotice] = []

    def before_send(self, bodies: list[dict]) -> list[float | None]:
        """Quote the requests about to be sent; their estimated USD each, for the balance floor.

        The floor itself is checked by the money component when it admits the run, with the
        USD held by requests in flight counted (``money.Money.admit``).
        """
        self.client = self._client.get() if isinstance(self._client, LazyClient) else self._client
        if self.feed is not None:
            # A withdrawn model is refused here (ModelWithdrawnError), before anything is held or sent.
            self.notices = check_models(self.feed, self.client, [str(body.get("model")) for body in bodies])
        quotes: list[Quote] = []
        for body in bodies:
            try:
                quotes.append(run_quote(self.book, self.client, [body]))
            except Exception as exc:  # a price is never a reason to fail a generation
                log.warning("price not quoted: %s", type(exc).__name__)
                quotes.append(Quote(None, None, "Price unknown: it could not be worked out."))
        unknown = next((q for q in quotes if q.usd is None), None)
        if unknown is not None:
            self.quote = unknown
        else:
            credits = [q.credits for q in quotes]
            self.quote = Quote(sum(q.usd or 0.0 for q in quotes),
                               None if any(c is None for c in credits) else sum(c or 0.0 for c in credits),
                               quotes[-1].note if quotes else "")
        return [q.usd for q in quotes]

    def after(self, credits: float | None, usd: float | None) -> None:
        """Keep the credits-per-USD rate the run's cost headers showed."""
        self.book.learn_rate(credits, usd)

    def model_notice(self) -> dict[str, Any] | None:
        """What the deprecations feed says of the run's model (``deprecated``/``superseded``), or None."""
        return self.notices[0].to_json() if self.notices else None

    def info(self) -> dict[str, Any]:
        """The estimate for the info JSON, beside what was charged."""
        if self.quote is None:
            return {"usd": 0.0, "credits": 0.0, "note": "nothing was sent (all answered by the cache)"}
        return self.quote.to_json()


def price_list_estimate(book: PriceBook, body: Mapping[str, Any]) -> float | None:
    """The credits ``body`` should cost by the documented price on disk (no network), or None.

    Used by the credit budget before this process has been billed once for the model.
    """
    try:
        pricing = book.pricing(str(body.get("model")), None)
        width, height = expected_pixels(body.get("image_size"))
        usd, _ = quote_usd(pricing, int(body.get("num_images", 1)), width, height, body.get("image_size"))
        rate = book.credits_per_usd()
    except Exception:  # an estimate is only ever a help
        return None
    return usd * rate if usd is not None and rate else None


def run_money(client: ApiClient | LazyClient, user_dir: Any = None) -> RunMoney:
    """The money checks for one run: the price file and the deprecations feed in ComfyUI's user folder.

    Also lets the credit budget estimate from the documented price before its first billed answer.
    """
    from ..api.lifecycle import default_deprecations_path, deprecation_feed
    from . import estimate
    from .pricing import default_pricing_path, price_book

    book = price_book(default_pricing_path(user_dir))
    estimate.use_price_list(lambda body: price_list_estimate(book, body))
    return RunMoney(client, book, deprecation_feed(default_deprecations_path(user_dir)))
