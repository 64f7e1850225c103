"""Running several generation requests at once and streaming their pictures to a sink.

Each request of a batch is answered from the result cache, by joining an
identical request already in flight in this process, or by a new POST
(``inflight.SharedRequest``). All new requests go out together. As soon as one
answers, its pictures start downloading and decoding in worker threads (Pillow
and numpy release the GIL), and each decoded picture is handed to the sink with
its final batch index, so the caller can read it out, strip by strip, straight
into its slice of a preallocated output. The calling thread only waits for
events, checks for cancellation at least every ``poll_interval`` seconds, and
reports progress.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from ..api.client import ApiClient, GenerationResponse, LazyClient
from ..api.request import GenerationRequest
from ..money import estimate
from ..money.budget import CreditBudget, Hold
from ..runtime import runtime
from .cache import CachedResult, ResultCache, cache_key
from .inflight import ImageSink, Listener, SharedRequest, decode_for, join, join_or_start

__all__ = ["BatchResult", "ImageSink", "run_batch"]


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
    # Per request this batch sent, in batch order: our X-Client-Request-Id and the API's x-inference-id.
    request_ids: list[str] = field(default_factory=list)
    inference_ids: list[str | None] = field(default_factory=list)
    usd_spent: float | None = None
    resent_after_failed_log: int = 0

    def add_credits(self, value: float | None) -> None:
        if value is None:
            self.credits_unknown += 1
        else:
            self.credits_used = (self.credits_used or 0.0) + value

    def add_usd(self, value: float | None) -> None:
        if value is not None:
            self.usd_spent = (self.usd_spent or 0.0) + value


# Not a limit runs compete for: a thread is started only when none is idle, then reused. Work a run no
# longer needs keeps its thread until it ends (a POST already sent, by its read timeout; the downloads
# for the cache, one after another, each within the download deadline), so the next run must never
# queue behind it. One run uses at most 4 POSTs and 16 downloads; this cap is only a safety net.
_POOL_THREADS = 1024


def _pool() -> ThreadPoolExecutor:
    """One pool for every run (a part of the runtime): its threads are started once, not for each run."""
    return runtime().pool("lora", _POOL_THREADS)


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
    before_send: Callable[[list[dict]], list[float | None] | None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> BatchResult:
    """Send ``requests`` concurrently and deliver every picture to ``sink``.

    ``check_cancel`` is called from this thread at least every ``poll_interval``
    seconds; whatever it raises ends the batch at once, without waiting for
    requests in flight. Any error ends the batch and is re-raised. With ``cache``,
    requests found in it are decoded from it without being sent (0 credits), a
    request identical to one already in flight in this process waits for that
    one's answer (0 credits), and every answer the API bills is saved to it, even
    after this batch has ended. ``budget`` (the money component) admits the new requests,
    or refuses the batch before anything is sent, and holds their estimated cost until
    answered; ``before_send`` (the run's own checks: LoRAs, the price) may refuse the batch
    too and returns each request's estimated USD for the balance floor. ``is_cancelled``
    (the run's Cancel, read without clearing it) is asked by each sending thread right
    before its POST. A ``LazyClient`` is made into a client (the key looked up) only if a
    request must be sent.
    """
    bodies = [request.to_body() for request in requests]
    counts = [request.num_images for request in requests]
    keys = [cache_key(client.base_url, body) if cache is not None else None for body in bodies]
    offsets = [sum(counts[:k]) for k in range(len(requests))]
    result = BatchResult(requested=sum(counts))
    result.image_urls = [None] * result.requested
    events: queue.SimpleQueue = queue.SimpleQueue()
    listeners = [Listener(k, offsets[k], sink, events, is_cancelled) for k in range(len(requests))]
    executor = _pool()
    listening: dict[int, SharedRequest] = {}
    started: set[int] = set()
    hits: dict[int, CachedResult] = {}
    decodes: list[Future] = []
    unowned: list[Hold | None] = []  # admitted holds not yet handed to a request
    try:
        for k, key in enumerate(keys):
            if key is None or cache is None:
                continue
            shared = join(cache, key, listeners[k])
            if shared is not None:
                listening[k] = shared
            else:
                hit = cache.load(key, counts[k])
                if hit is not None:
                    hits[k] = hit
        to_send = [k for k in range(len(requests)) if k not in listening and k not in hits]
        if isinstance(client, LazyClient) and to_send:
            client = client.get()
        usd: list[float | None] | None = None
        if before_send is not None and to_send:
            # The run's own checks of what it is about to send (LoRAs, the price); may refuse it.
            usd = before_send([bodies[k] for k in to_send])
            if check_cancel:
                check_cancel()
        log_wait = None
        if budget is not None and to_send:
            log_wait = budget.settings().log_wait
            def estimates() -> list[float | None]:
                return [estimate.estimate_credits(bodies[k]) for k in to_send]

            unowned = list(budget.admit(estimates(), check_cancel, poll_interval, usd=usd, client=client,
                                        is_cancelled=is_cancelled, reestimate=estimates))
        for n, k in enumerate(to_send):
            if check_cancel:
                check_cancel()  # Cancel after admission: nothing of this run is started
            hold = unowned[n] if unowned else None
            outcome, new = join_or_start(
                lambda k=k, hold=hold: SharedRequest(client, bodies[k], executor, key=keys[k], cache=cache,
                                                     budget=budget, hold=hold, log_wait=log_wait),
                listeners[k], keys[k], cache, counts[k])
            if unowned:
                unowned[n] = None
            if hold is not None and budget is not None and not new:
                budget.release(hold)  # answered by another run's request or the cache: nothing sent
            if isinstance(outcome, SharedRequest):
                listening[k] = outcome
                if new:
                    started.add(k)
            else:
                hits[k] = outcome
        result.requests_sent = len(started)
        result.requests_cached = len(requests) - len(started)
        result.request_ids = [listening[k].request_id for k in sorted(started)]
        result.inference_ids = [None] * len(started)
        _collect(result, requests, offsets, listeners, hits, listening, started, events, executor, decodes,
                 check_cancel, on_progress, poll_interval)
    finally:
        for k, shared in listening.items():
            shared.unsubscribe(listeners[k])
        for future in decodes:
            future.cancel()
        for hold in unowned:
            if hold is not None and budget is not None:
                budget.release(hold)
    result.filled.sort()
    return result


def _collect(result: BatchResult, requests: Sequence[GenerationRequest], offsets: list[int],
             listeners: list[Listener], hits: dict[int, CachedResult], listening: dict[int, SharedRequest],
             started: set[int],
             events: queue.SimpleQueue, executor: ThreadPoolExecutor, decodes: list[Future],
             check_cancel: Callable[[], None] | None, on_progress: Callable[[int, int], None] | None,
             poll_interval: float) -> None:
    """Wait for every answer and picture of the batch, reporting progress; raise the first failure."""
    total_steps = len(requests) + result.requested
    steps = 0
    slot = {k: n for n, k in enumerate(sorted(started))}
    outstanding = len(listening)  # answers still to come, then the pictures they announce
    for k, hit in hits.items():
        result.add_credits(0.0)
        for i, data in enumerate(hit.pictures):
            decodes.append(executor.submit(decode_for, listeners[k], i, data))
        outstanding += len(hit.pictures)
        steps += 1
    if on_progress:
        on_progress(steps, total_steps)
    while outstanding:
        if check_cancel:
            check_cancel()
        try:
            kind, k, detail = events.get(timeout=poll_interval)
        except queue.Empty:
            continue
        if kind == "failed":
            raise detail
        if kind == "answered":
            response: GenerationResponse = detail
            # A request this batch joined was paid for by the run that sent it.
            result.add_credits(response.credits_used if k in started else 0.0)
            if k in started:
                result.add_usd(response.usd_spent)
                result.inference_ids[slot[k]] = response.inference_id
                if response.request_id:
                    result.request_ids[slot[k]] = response.request_id  # the answered attempt's id, as logged
                result.resent_after_failed_log += response.resent
            # More pictures than asked for are ignored; fewer leave gaps the caller closes.
            wanted = response.images[: requests[k].num_images]
            for i, ref in enumerate(wanted):
                # As shown in the info output: a server may have put the key into the URL.
                result.image_urls[offsets[k] + i] = listening[k].client.shown_url(ref.url) if ref.url else None
            outstanding += len(wanted) - 1
            steps += 1 + requests[k].num_images - len(wanted)
        else:  # "picture": picture ``detail`` of request k is in the sink
            result.filled.append(offsets[k] + detail)
            outstanding -= 1
            steps += 1
        if on_progress:
            on_progress(steps, total_steps)
