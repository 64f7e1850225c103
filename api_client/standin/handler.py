"""HTTP plumbing of the stand-in: the request handler (the server it runs in is loopback.py's).

The handler reads requests, routes them, and writes answers; what to answer
comes from ``api`` (generations), ``files`` (stored pictures) and the
``StandInServer`` state (admin endpoints).
"""

from __future__ import annotations

import socket
import time
import traceback
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, cast

from .accounts import REQUEST_ID, new_inference_id, usd_for
from .answers import Answer, authorized, error_answer, json_answer, parse_body, parse_body_or_none
from .api import answer_generation, credits_asked
from .faults import check_file_fault, check_post_fault, check_service_fault
from .files import file_store_name, serve_file, wait_or_stop
from .loopback import HANGUPS, is_loopback, write_answer

if TYPE_CHECKING:
    from .state import ServerState

GENERATIONS_PATH = "/v1/images/generations"
LOGS_PATH = "/v2/logs"
BILLING_PATH = "/v2/billing"
MODELS_PATHS = ("/v1/models", "/models", "/api/v1/models")
SERVICE_PATHS = {"/v2/usage": "usage", **{f"{root}/{name}": "deprecations" for root in MODELS_PATHS
                                          for name in ("deprecations", "deprecated")}}
MAX_BODY = 128 * 1024 * 1024  # three 2048x2048 PNGs as base64 fit comfortably


class Handler(BaseHTTPRequestHandler):
    """One connection's requests: generations, stored files and admin endpoints."""

    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    timeout = 120  # idle keep-alive connections eventually free their thread
    # Headers and body go out in separate writes; with Nagle's algorithm the body could wait
    # for the client's delayed ACK (40 ms on Linux), a delay the real API does not have.
    disable_nagle_algorithm = True

    @property
    def standin(self) -> ServerState:
        """The stand-in this handler answers for (a ``StandInServer``)."""
        return cast("ServerState", self.server.owner)  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        self.standin.track_connection(self.connection, True)

    def finish(self) -> None:
        self.standin.track_connection(self.connection, False)
        try:
            super().finish()
        except HANGUPS:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.standin.verbose:
            super().log_message(format, *args)

    def _send(self, answer: Answer) -> None:
        write_answer(self, answer.status, answer.body, answer.content_type, answer.headers)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 413 for unreadable or huge ones."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, total = [], 0
            while True:
                try:
                    size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    break
                if size == 0:
                    while self.rfile.readline(1000).strip():
                        pass  # trailers
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(10)
        else:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if 0 <= length <= MAX_BODY:
                return self.rfile.read(length)
        self.close_connection = True
        self._send(error_answer(413, f"request body missing a valid length or larger than {MAX_BODY} bytes"))
        return None

    def do_POST(self) -> None:
        """Route POSTs: the generation endpoint and the admin endpoints."""
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        if raw is None:
            return
        if path == GENERATIONS_PATH:
            self._generation(raw)
        elif path.startswith("/_standin/"):
            self._send(self._admin(path, raw))
        else:
            self._send(error_answer(404, f"no route for POST {path[:100]}"))

    def do_GET(self) -> None:
        """Route GETs: the service endpoints, stored files and admin stats."""
        path, _, query = self.path.partition("?")
        name = file_store_name(path)
        srv = self.standin
        headers = {k.lower(): v for k, v in self.headers.items()}
        service = "logs" if path == LOGS_PATH else "billing" if path == BILLING_PATH else \
            "models" if path in MODELS_PATHS else SERVICE_PATHS.get(path)
        if service is not None:
            self._service(service, query, headers)
        elif name is not None:
            fault = srv.count_file_get()
            try:
                serve_file(self, name, srv.store.get(name), fault, srv.stopping)
            except HANGUPS:
                self.close_connection = True
        elif path.startswith("/_standin/"):
            self._send(self._admin(path, b""))
        else:
            self._send(error_answer(404, f"no route for GET {path[:100]}"))

    def _service(self, endpoint: str, query: str, headers: dict[str, str]) -> None:
        """GET /v2/logs, /v2/billing or /v1/models, shaped by the endpoint's mode and its queued fault."""
        accounts = self.standin.accounts
        fault = accounts.take_fault(endpoint, headers)
        accounts.in_progress(1)
        try:
            if wait_or_stop(self.standin.stopping, fault.get("delay", 0)):
                self.close_connection = True
                return
            answer = accounts.answer(endpoint, query, authorized(headers.get("authorization"), self.standin.key),
                                     headers, fault)
            if "trickle" in fault:
                self._trickle(answer, float(fault["trickle"]))
            else:
                self._send(answer)
        except HANGUPS:
            self.close_connection = True
        finally:
            accounts.in_progress(-1)

    def _generation(self, raw: bytes) -> None:
        srv = self.standin
        received = time.time()
        epoch = srv.accounts.epoch
        client_request_id = self.headers.get("X-Client-Request-Id")
        fault = srv.count_post(raw, client_request_id)
        srv.track_post(1)
        try:
            self._answer_generation(srv, raw, fault, client_request_id, received, epoch)
        finally:
            srv.track_post(-1)

    def _answer_generation(self, srv: ServerState, raw: bytes, fault: dict[str, Any] | None,
                           client_request_id: str | None, received: float, epoch: int) -> None:
        if wait_or_stop(srv.stopping, srv.latency) or wait_or_stop(srv.stopping, (fault or {}).get("delay", 0)):
            self.close_connection = True  # server stopping: hang up rather than answer late
            return
        try:
            answer = answer_generation(srv, self.headers.get("Authorization"), raw, fault,
                                       self.headers.get("Content-Type"))
        except Exception as exc:
            # A stand-in bug: answer 500 (clients see a server error, as they
            # would from the real API) and keep the traceback visible.
            traceback.print_exc()
            answer = error_answer(500, f"stand-in internal error: {type(exc).__name__}")
        self._trace(answer, fault or {}, raw, client_request_id, received, epoch)
        if answer is None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault and "trickle" in fault:
            self._trickle(answer, float(fault["trickle"]))
            return
        self._send(answer)

    def _trace(self, answer: Answer | None, fault: dict[str, Any], raw: bytes, client_request_id: str | None,
               received: float, epoch: int) -> None:
        """Add the tracing and cost headers to ``answer`` and write its usage-log row.

        The row follows the answer (200: succeeded, an error: failed, a hang-up or 401:
        none) unless the fault's ``log`` says otherwise.
        """
        inference_id = new_inference_id()
        credits = answer.credits if answer is not None else None
        status = fault.get("log")
        if status is None:
            status = ("none" if answer is None or answer.status == 401
                      else "succeeded" if answer.status == 200 else "failed")
        if status == "succeeded" and credits is None:
            credits = credits_asked(raw)
        if status != "none":
            model = (parse_body_or_none(raw) or {}).get("model", "?")
            self.standin.accounts.record(status, str(model), int(credits or 0), client_request_id, inference_id,
                                         received, fault.get("log_delay", 0.0), epoch)
        if answer is None:
            return
        if fault.get("inference_header") is not False:
            answer.headers["x-inference-id"] = fault.get("inference_header") or inference_id
        if client_request_id and REQUEST_ID.match(client_request_id):
            answer.headers["x-client-request-id"] = client_request_id
        if answer.status == 200 and fault.get("cost_headers", True) and answer.credits is not None:
            answer.headers["x-aimlapi-credits-used"] = str(answer.credits)
            answer.headers["x-aimlapi-usd-spent"] = f"{usd_for(answer.credits):.9f}"
        for key, header in (("credits_header", "x-aimlapi-credits-used"), ("usd_header", "x-aimlapi-usd-spent")):
            if key in fault:
                answer.headers[header] = fault[key]
        answer.headers["Access-Control-Expose-Headers"] = (
            "x-inference-id, x-client-request-id, x-aimlapi-credits-used, x-aimlapi-usd-spent")

    def _trickle(self, answer: Answer, gap: float) -> None:
        """Send ``answer`` chunked, one byte every ``gap`` seconds, until done, stopped or hung up on."""
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in answer.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()
        try:
            for i in range(len(answer.body)):
                if wait_or_stop(self.standin.stopping, gap):
                    self.close_connection = True
                    return
                self.wfile.write(b"1\r\n" + answer.body[i:i + 1] + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except HANGUPS:
            self.close_connection = True

    def _admin(self, path: str, raw: bytes) -> Answer:
        srv = self.standin
        if not is_loopback(self.client_address[0]):
            return error_answer(403, "admin endpoints are loopback-only")
        try:
            body = parse_body(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("admin body must be a JSON object")
            if path == "/_standin/stats" and self.command == "GET":
                return json_answer(200, srv.stats())
            if path == "/_standin/requests" and self.command == "GET":
                return json_answer(200, {"requests": srv.request_summaries()})
            if path == "/_standin/reset" and self.command == "POST":
                srv.reset()
                return json_answer(200, {"ok": True})
            if path == "/_standin/faults" and self.command == "POST":
                unknown = set(body) - {"post", "file", "service"}
                if unknown:
                    raise ValueError(f"unknown keys {sorted(unknown)}; use 'post', 'file' and 'service'")
                post = [check_post_fault(f) for f in body.get("post", [])]
                files = [check_file_fault(f) for f in body.get("file", [])]
                service = [check_service_fault(f) for f in body.get("service", [])]
                srv.queue_post_faults(post)
                srv.queue_file_faults(files)
                srv.queue_service_faults(service)
                return json_answer(200, {"ok": True, **srv.stats()})
            if path == "/_standin/logs" and self.command == "GET":
                return json_answer(200, {"data": [r.to_json() for r in srv.accounts.visible_rows()]})
            if path == "/_standin/config" and self.command == "POST":
                srv.configure(**body)
                return json_answer(200, {"ok": True, **srv.stats()})
        except (ValueError, TypeError) as exc:
            return error_answer(400, str(exc))
        return error_answer(404, f"no admin route {self.command} {path[:100]}")
