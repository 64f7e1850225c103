"""Generation requests in flight in this process, each shared by every run that wants its answer.

A ``SharedRequest`` is one POST from sending until its pictures are in the
result cache. It holds its estimated cost on the credit budget until the answer
settles it, then downloads and decodes the pictures and hands each one to every
run still listening (straight into that run's sink, from the worker thread).

With the cache on, a request is registered under its cache key while it is in
flight, so an identical request from another run *joins* it instead of sending
a second POST, and its pictures are saved to the cache whether or not any run
still wants them: an answer the API billed is never thrown away.

A run that stops listening (Cancel, or another request of its batch failed)
leaves the rest to finish in the background, bounded: a POST not sent yet is
not sent; one already sent runs to its answer (within its read timeout). With
the cache on, its pictures are then downloaded anyway, each within the download
deadline: one after another on the request's own thread if nobody was listening
when the answer came, else by the downloads already started for the listeners.
With the cache off, downloads nobody wants stop at once.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..api.client import ApiClient, GenerationResponse, ImageRef
from ..api.tracing import new_request_id
from ..errors import BilledWithoutAnswerError, Cancelled
from ..images.decode import DecodedImage, load_image
from ..money.budget import CreditBudget, Hold
from ..money.estimate import learn_price
from ..runtime import runtime
from .cache import CachedResult, ResultCache

# Decoding holds a full picture in memory; bounding it to the cores keeps the peak near the output size.
DECODE_SLOTS = threading.Semaphore(max(1, os.cpu_count() or 1))
# Pictures nobody waits for (checked before they enter the cache) decode one at a time, on a slot of
# their own, so they never keep a run's pictures from a decode slot.
_BACKGROUND_SLOT = threading.Semaphore(1)


class ImageSink(Protocol):
    """Receives decoded pictures; called from worker threads, one call per batch index."""

    def write(self, index: int, picture: DecodedImage) -> None: ...


@dataclass(eq=False)
class Listener:
    """One run's interest in request ``k`` of its batch, whose pictures go to ``offset``... in ``sink``.

    Events arrive on ``events``: ("answered", k, GenerationResponse), ("picture", k, i) once
    picture i is in the sink, ("failed", k, exception).
    """

    k: int
    offset: int
    sink: ImageSink
    events: queue.SimpleQueue = field(repr=False)
    # The run's Cancel, read without clearing it: the sending thread asks it right before each POST.
    is_cancelled: Callable[[], bool] | None = field(default=None, repr=False)

    def wants(self) -> bool:
        """Whether the run still wants the answer (not cancelled)."""
        return self.is_cancelled is None or not self.is_cancelled()


class _Registry:
    """Requests in flight by (cache folder, cache key): a joined request saves where its joiners look.

    One per process (a part of the runtime). Its lock is taken before a shared request's own lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, str], SharedRequest] = {}


def _registry() -> _Registry:
    return runtime().part("in-flight", _Registry)


class SharedRequest:
    """One generation POST and its pictures, shared by the runs listening to it; see the module docstring."""

    def __init__(self, client: ApiClient, body: dict[str, Any], executor: Executor, *, key: str | None = None,
                 cache: ResultCache | None = None, budget: CreditBudget | None = None,
                 hold: Hold | None = None, log_wait: float | None = None) -> None:
        self.client = client
        self.body = body
        # Our request id (its hold's in the ledger); attempt n is sent as "<id>.<n>" (see usage_logs).
        self.request_id = hold.request_id if hold is not None else new_request_id()
        self._log_wait = log_wait
        self._attempts = 0  # attempts sent so far, kept if the request is taken up again after a Cancel
        self.count = int(body["num_images"])
        self.key = key if cache is not None else None
        self._slot = (str(cache.root), key) if cache is not None and key is not None else None
        self._cache = cache
        self._budget = budget
        self._hold = hold
        self._executor = executor
        self._home = _registry()  # the registry it is listed in while in flight
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        # Set while nobody listens: a POST not sent yet is then not sent (nothing billed).
        self._send_cancel = threading.Event()
        # Set when nobody will use the pictures any more (no listener and no cache to fill).
        self._download_cancel = threading.Event()
        self._unsent = False
        self._response: GenerationResponse | None = None
        self._refs: list[ImageRef] = []
        self._error: BaseException | None = None
        self._pictures: dict[int, bytes] = {}
        self._failed: dict[int, BaseException] = {}
        self._finished = False

    def __repr__(self) -> str:
        return f"SharedRequest(key={self.key and self.key[:12]!r}, listeners={len(self._listeners)})"

    # -- listeners ---------------------------------------------------------

    def _subscribe(self, listener: Listener) -> None:
        """Add a listener and replay what it missed (called with ``_lock`` held)."""
        self._listeners.append(listener)
        self._send_cancel.clear()
        if self._error is not None:
            listener.events.put(("failed", listener.k, self._error))
            return
        if self._response is None:
            return
        listener.events.put(("answered", listener.k, self._response))
        for i, data in self._pictures.items():
            self._executor.submit(decode_for, listener, i, data)
        for error in self._failed.values():
            listener.events.put(("failed", listener.k, error))

    def unsubscribe(self, listener: Listener) -> None:
        """The run no longer wants this request; the work goes on only as far as it is still useful."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners:
                self._send_cancel.set()
                if self._cache is None:
                    self._download_cancel.set()

    # -- the work, on a worker thread ------------------------------------------

    def start(self) -> None:
        self._executor.submit(self._run_safely)

    def _run_safely(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug here must not leave runs waiting for events that never come
            self._release(True)
            with self._lock:
                self._error = self._error or exc
                listeners = list(self._listeners)
            for listener in listeners:
                listener.events.put(("failed", listener.k, exc))
            self._leave_registry()
            raise

    def _run(self) -> None:
        response = self._post()
        if response is None:
            return
        refs = response.images[: self.count]  # more pictures than asked for are ignored
        with self._lock:
            self._response, self._refs = response, refs
            listeners = list(self._listeners)
        for listener in listeners:
            listener.events.put(("answered", listener.k, response))
        if listeners and len(refs) > 1:
            # Someone is waiting: all pictures at once. Otherwise one after another on this thread.
            for i, ref in enumerate(refs):
                self._executor.submit(self._picture, i, ref)
        else:
            for i, ref in enumerate(refs):
                self._picture(i, ref)

    def _post(self) -> GenerationResponse | None:
        while True:
            try:
                response = self.client.generate(self.body, self._send_cancel, self.request_id,
                                                may_send=self._wanted, log_wait_seconds=self._log_wait,
                                                on_attempt=self._note_attempt, first_attempt=self._attempts + 1,
                                                on_cleared=self._note_cleared)
            except Cancelled:
                # Nothing was sent (or only what was surely refused). A run may have joined meanwhile.
                with self._home.lock, self._lock:
                    if any(listener.wants() for listener in self._listeners):
                        self._send_cancel.clear()
                        continue
                    self._unsent = True
                    self._leave_registry_locked()
                self._release(False)
                return None
            except BilledWithoutAnswerError as exc:
                # The usage logs say it was billed though its answer never came: what they say counts.
                if self._budget is not None and self._hold is not None:
                    self._budget.settle(self._hold, exc.credits_billed, usd=exc.usd_billed, request_id=exc.request_id)
                self._fail(exc)
                return None
            except Exception as exc:
                self._release(getattr(exc, "may_have_billed", False))
                self._fail(exc)
                return None
            learn_price(self.body, response.credits_used)
            if self._budget is not None and self._hold is not None:
                self._budget.settle(self._hold, response.credits_used, usd=response.usd_spent,
                                    request_id=response.request_id, inference_id=response.inference_id)
            return response

    def _wanted(self) -> bool:
        """Whether a run still wants this request sent: asked in the sending thread right before each POST."""
        with self._lock:
            return any(listener.wants() for listener in self._listeners)

    def _note_attempt(self, attempt: int) -> None:
        # The ledger learns of each attempt before it is sent (a restart then knows which rows to ask for).
        self._attempts = attempt
        if self._budget is not None and self._hold is not None:
            self._budget.note_attempt(self._hold, attempt)

    def _note_cleared(self, attempt: int) -> None:
        if self._budget is not None and self._hold is not None:
            self._budget.note_cleared(self._hold, attempt)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._error = exc
            listeners = list(self._listeners)
        for listener in listeners:
            listener.events.put(("failed", listener.k, exc))
        self._leave_registry()

    def _release(self, may_have_billed: bool) -> None:
        if self._budget is not None and self._hold is not None:
            self._budget.release(self._hold, may_have_billed, self.request_id)

    def _picture(self, i: int, ref: ImageRef) -> None:
        try:
            if self._download_cancel.is_set():
                raise Cancelled("Nobody wants this picture any more.")
            data = self.client.fetch_image(ref, self._download_cancel)
            with self._lock:
                wanted = bool(self._listeners)
            with DECODE_SLOTS if wanted else _BACKGROUND_SLOT:
                # Decoding here checks the picture before it may enter the cache, once for every run.
                picture = load_image(data)
                with self._lock:
                    self._pictures[i] = data
                    listeners = list(self._listeners)
                for listener in listeners:
                    _deliver(listener, i, picture)
        except Exception as exc:
            with self._lock:
                self._failed[i] = exc
                listeners = list(self._listeners)
            for listener in listeners:
                listener.events.put(("failed", listener.k, exc))
        self._after_picture()

    def _after_picture(self) -> None:
        with self._lock:
            if self._finished or len(self._pictures) + len(self._failed) < len(self._refs):
                return
            self._finished = True
            complete = not self._failed and len(self._pictures) >= self.count
            pictures = [self._pictures[i] for i in range(self.count)] if complete else []
        if complete and self._cache is not None and self.key is not None:
            saved = self._cache.store_later(self.key, pictures, self._response.credits_used
                                            if self._response else None)
            # Registered until saved: a run arriving meanwhile joins this one instead of missing the cache.
            saved.add_done_callback(lambda _: self._leave_registry())
        else:
            self._leave_registry()

    # -- the registry --------------------------------------------------------

    def _leave_registry(self) -> None:
        with self._home.lock:
            self._leave_registry_locked()

    def _leave_registry_locked(self) -> None:
        if self._slot is not None and self._home.requests.get(self._slot) is self:
            del self._home.requests[self._slot]


def _deliver(listener: Listener, i: int, picture: DecodedImage) -> None:
    try:
        listener.sink.write(listener.offset + i, picture)
    except Exception as exc:  # this run's problem (e.g. mixed sizes), not the request's
        listener.events.put(("failed", listener.k, exc))
        return
    listener.events.put(("picture", listener.k, i))


def decode_for(listener: Listener, i: int, data: bytes) -> None:
    """Decode picture ``i`` (compressed bytes) into the listener's sink, then tell it."""
    try:
        with DECODE_SLOTS:
            picture = load_image(data)
            _deliver(listener, i, picture)
    except Exception as exc:
        listener.events.put(("failed", listener.k, exc))


def join(cache: ResultCache, key: str, listener: Listener) -> SharedRequest | None:
    """Listen to the request in flight for ``key`` (saving to ``cache``), if one is still to be answered."""
    registry = _registry()
    with registry.lock:
        shared = registry.requests.get((str(cache.root), key))
        if shared is None:
            return None
        with shared._lock:
            if shared._unsent:
                return None
            shared._subscribe(listener)
        return shared


def join_or_start(make: Callable[[], SharedRequest], listener: Listener, key: str | None = None,
                  cache: ResultCache | None = None,
                  count: int | None = None) -> tuple[SharedRequest | CachedResult, bool]:
    """Start a new request for ``listener``, unless one for ``key`` is in flight or just reached the cache.

    Returns (the request listened to, or the cached result; True if a new request was started).
    The check and the start happen under one lock, so two runs never both send a request for one key.
    """
    if key is None or cache is None:
        shared = make()
        with shared._lock:
            shared._subscribe(listener)
        shared.start()
        return shared, True
    slot = (str(cache.root), key)
    registry = _registry()
    with registry.lock:
        shared = registry.requests.get(slot)
        if shared is not None and not shared._unsent:
            with shared._lock:
                shared._subscribe(listener)
            return shared, False
        # Under the lock, no request for this key can finish unseen: its entry leaves the
        # registry only once its pictures are saved, so a miss here is a real miss.
        hit = cache.load(key, count)
        if hit is not None:
            return hit, False
        shared = make()
        registry.requests[slot] = shared
        with shared._lock:
            shared._subscribe(listener)
    shared.start()
    return shared, True


def wait_for_background_work(cache: ResultCache | None = None, timeout: float = 30.0) -> bool:
    """Wait until no request (saving to ``cache``, or any) is in flight any more; True if none is left.

    For tests and benchmarks: once it returns, every billed answer's save is queued (see
    ``cache.wait_for_pending_saves``).
    """
    deadline = time.monotonic() + timeout
    root = str(cache.root) if cache is not None else None
    while True:
        registry = _registry()
        with registry.lock:
            if not any(root is None or slot[0] == root for slot in registry.requests):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
