"""Running several generation requests at once and streaming their pictures to a sink.

All requests go out together. As soon as one answers, its pictures start
downloading and decoding in worker threads (Pillow and numpy release the GIL),
and each decoded picture is handed to the sink with its final batch index, so the
caller can read it out, strip by strip, straight into its slice of a preallocated
output. The calling thread only waits, checks for cancellation at least every
``poll_interval`` seconds, and reports progress.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from .budget import CreditBudget
from .cache import BatchCache, ResultCache
from .client import ApiClient, GenerationResponse, ImageRef, LazyClient
from .decode import DecodedImage, load_image
from .request import GenerationRequest


class ImageSink(Protocol):
    """Receives decoded pictures; called from worker threads, one call per batch index."""

    def write(self, index: int, picture: DecodedImage) -> None: ...


@dataclass
class BatchResult:
    """What a batch produced, in batch order."""

    requested: int
    filled: list[int] = field(default_factory=list)
    image_urls: list[str | None] = field(default_factory=list)
    credits_used: float | None = None
    requests_sent: int = 0
    requests_cached: int = 0
    credits_unknown: int = 0  # requests answered without a valid cost: the total leaves them out

    def add_credits(self, value: float | None) -> None:
        if value is None:
            self.credits_unknown += 1
        else:
            self.credits_used = (self.credits_used or 0.0) + value


def _decode_into(data: bytes, index: int, sink: ImageSink, decode_slots: threading.Semaphore) -> None:
    # Bound concurrent decodes to the cores so peak memory stays near the output size.
    with decode_slots:
        sink.write(index, load_image(data))


def _fetch_and_decode(client: ApiClient, ref: ImageRef, index: int, sink: ImageSink,
                      cancel: threading.Event, decode_slots: threading.Semaphore,
                      stored: BatchCache | None = None) -> None:
    data = client.fetch_image(ref, cancel)
    _decode_into(data, index, sink, decode_slots)
    if stored is not None:
        stored.picture(index, data)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# Room for several runs at once, and for POSTs a Cancel left running (each ends by its timeout).
_POOL_THREADS = 64


def _shared_pool() -> ThreadPoolExecutor:
    """One pool for every run: its threads are started once, not for each run (a few ms each time)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="flux2-lora")
        return _pool


def _count_credits(post: Future, budget: CreditBudget) -> None:
    if not post.cancelled() and post.exception() is None:
        budget.add(post.result().credits_used)


def run_batch(
    client: ApiClient | LazyClient,
    requests: Sequence[GenerationRequest],
    sink: ImageSink,
    *,
    check_cancel: Callable[[], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    poll_interval: float = 0.05,
    cache: ResultCache | None = None,
    budget: CreditBudget | None = None,
) -> BatchResult:
    """Send ``requests`` concurrently and deliver every picture to ``sink``.

    ``check_cancel`` is called from this thread at least every ``poll_interval``
    seconds; whatever it raises ends the batch at once, without waiting for
    requests in flight. Any error cancels the remaining work and is re-raised.
    Requests found in ``cache`` are decoded from it without being sent (0
    credits); the others are saved to it once complete. ``budget`` refuses the
    batch before anything is sent if it has been used up, and counts the credits.
    A ``LazyClient`` is made into a client (the key looked up) only if a request must be sent.
    """
    bodies = [request.to_body() for request in requests]
    stored = BatchCache(cache, client.base_url, bodies) if cache is not None else None
    to_send = [k for k in range(len(requests)) if stored is None or stored.hit(k) is None]
    if isinstance(client, LazyClient) and to_send:
        client = client.get()
    if budget is not None and to_send:
        budget.check(len(to_send))
    offsets = [sum(r.num_images for r in requests[:k]) for k in range(len(requests))]
    result = BatchResult(requested=sum(r.num_images for r in requests))
    result.image_urls = [None] * result.requested
    total_steps = len(requests) + result.requested
    steps = 0
    cancel = threading.Event()
    decode_slots = threading.Semaphore(max(1, os.cpu_count() or 1))
    executor = _shared_pool()
    pending: dict[Future, tuple[str, int]] = {}
    finished = False
    try:
        for k in to_send:
            post = executor.submit(client.generate, bodies[k], cancel)
            if budget is not None:
                # Counted whenever the answer arrives, even after a Cancel or another request's
                # failure ended the batch: a request the API answered was billed either way.
                post.add_done_callback(lambda done: _count_credits(done, budget))
            pending[post] = ("post", k)
        for k, hit in enumerate(stored.hits if stored is not None else ()):
            if hit is not None:
                result.add_credits(0.0)
                for i, data in enumerate(hit.pictures):
                    job = executor.submit(_decode_into, data, offsets[k] + i, sink, decode_slots)
                    pending[job] = ("image", offsets[k] + i)
                steps += 1
        result.requests_sent = len(to_send)
        result.requests_cached = len(requests) - len(to_send)
        if on_progress:
            on_progress(steps, total_steps)
        while pending:
            if check_cancel:
                check_cancel()
            done, _ = wait(pending, timeout=poll_interval, return_when=FIRST_COMPLETED)
            for future in done:
                kind, k = pending.pop(future)
                if kind == "post":
                    response: GenerationResponse = future.result()
                    result.add_credits(response.credits_used)
                    if stored is not None:
                        stored.answered(k, response.credits_used, len(response.images))
                    # More pictures than asked for are ignored; fewer leave gaps the caller closes.
                    for i, ref in enumerate(response.images[: requests[k].num_images]):
                        index = offsets[k] + i
                        # As shown in the info output: a server may have put the key into the URL.
                        result.image_urls[index] = client.shown_url(ref.url) if ref.url else None
                        job = executor.submit(_fetch_and_decode, client, ref, index, sink, cancel, decode_slots,
                                              stored)
                        pending[job] = ("image", index)
                    steps += 1 + requests[k].num_images - min(len(response.images), requests[k].num_images)
                else:
                    future.result()  # re-raises a failed download or decode
                    result.filled.append(k)
                    steps += 1
                if on_progress:
                    on_progress(steps, total_steps)
        finished = True
    finally:
        if not finished:
            # Work not started is dropped; work in flight sees ``cancel`` and stops at its next check
            # (a POST already sent runs out on its own thread; its credits are still counted).
            cancel.set()
            for future in pending:
                future.cancel()
    result.filled.sort()
    return result
