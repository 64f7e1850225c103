"""The stand-in's LoRA host: a second loopback server that serves LoRA files as real hosts do.

Routes (GET; HEAD too, except on the Civitai-like route, which serves GET only):

- ``/files/<name>``: a virtual file (lora_files.py) with or without ``Range`` (206 and
  Content-Range, or 200), an ``ETag`` honoured by ``If-None-Match`` (304) and ``If-Range``;
- ``/redirect/<n>/<name>``: ``n`` redirects (302), then the file; ``/loop/<name>`` redirects forever;
- ``/status/<code>/<name>``: that status (401, 403, 404, 500, 503, ...);
- ``/civitai/api/download/models/<name>``: 307 to a presigned-looking URL of the file;
  ``/civitai/api/download/models/token-<name>``: 401 (a file that needs a token);
- Hugging Face: ``/api/models/<owner>/<repo>`` (the repository's info with its ``siblings``; 401
  ``RepoNotFound`` for a private or missing one) and ``/<owner>/<repo>/resolve/main/<file>`` (302 to
  ``/cdn/...`` where the file is served; 401 ``GatedRepo`` for a gated one, 404 ``EntryNotFound``);
- admin (loopback): ``GET /_lora/stats``, ``POST /_lora/reset``, ``POST /_lora/config {"latency": s}``.

Bytes served are counted per file, requests per path, and every Authorization header received
is recorded (tests assert there is none: no key ever goes to a LoRA host).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import unquote

from .loopback import HANGUPS, LoopbackService, is_loopback, write_answer
from .lora_files import Repo, VirtualFile, standard_files, standard_repos

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True

    @property
    def host(self) -> LoraHost:
        """The LoRA host this handler answers for."""
        return cast("LoraHost", self.server.owner)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if self.host.verbose:
            super().log_message(format, *args)

    # -- answers -------------------------------------------------------------------
    def _plain(self, status: int, text: str = "", headers: dict[str, str] | None = None,
               content_type: str = "text/plain; charset=utf-8") -> None:
        write_answer(self, status, text.encode(), content_type, headers)

    def _redirect(self, location: str, status: int = 302, headers: dict[str, str] | None = None) -> None:
        self._plain(status, "", {"Location": location, **(headers or {})})

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._plain(status, json.dumps(body), headers, "application/json")

    def _file(self, name: str, file: VirtualFile) -> None:
        """Serve ``file`` as a static host does: Range, ETag, If-None-Match, If-Range."""
        if file.status is not None:
            self._plain(file.status, f"status {file.status}")
            return
        etag = file.etag
        if self.headers.get("If-None-Match") == etag:
            self._plain(304, "", {"ETag": etag})
            return
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if if_range and if_range != etag:
            wanted = None  # changed since: the whole file
        start, end = 0, file.size - 1
        status = 200
        if wanted and not file.ignore_range:
            match = _RANGE.match(wanted.strip())
            if not match or (not match.group(1) and not match.group(2)):
                self._plain(416, "bad range", {"Content-Range": f"bytes */{file.size}"})
                return
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last) if last else file.size - 1, file.size - 1)
            else:
                start, end = max(0, file.size - int(last)), file.size - 1
            if start >= file.size or start > end:
                self._plain(416, "range not satisfiable", {"Content-Range": f"bytes */{file.size}"})
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", file.content_type)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", file.content_range or f"bytes {start}-{end}/{file.size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        host = self.host
        position = start
        try:
            while position <= end and not host.stopping.is_set():
                last = min(end, position + _CHUNK - 1)
                piece = file.read(position, last)
                host._served(name, len(piece))  # counted first: a client that has the bytes sees them counted
                self.wfile.write(piece)
                position = last + 1
        except HANGUPS:
            self.close_connection = True

    # -- routing -------------------------------------------------------------------
    def do_HEAD(self) -> None:
        if self.path.startswith("/civitai/"):
            self._plain(405, "HEAD is not served here; use GET")
            return
        self.do_GET()

    def do_GET(self) -> None:
        host = self.host
        path = self.path.split("?", 1)[0]
        if path.startswith("/_lora/"):
            self._admin(path, b"")  # not counted: only what the pack asks is
            return
        host._count(path, self.headers.get("Authorization"))
        host._in_progress(1)
        try:
            if host.latency and host.stopping.wait(host.latency):
                self.close_connection = True
                return
            self._route(host, unquote(path))
        except HANGUPS:
            self.close_connection = True
        finally:
            host._in_progress(-1)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(min(length, 65536))
        path = self.path.split("?", 1)[0]
        if path.startswith("/_lora/"):
            self._admin(path, raw)
        else:
            self._plain(405, "the LoRA host serves GET")

    def _route(self, host: LoraHost, path: str) -> None:
        parts = path.strip("/").split("/")
        files = host.files
        if parts[0] == "files" and len(parts) == 2 and parts[1] in files:
            self._file(parts[1], files[parts[1]])
        elif parts[0] == "redirect" and len(parts) == 3 and parts[1].isdigit():
            left = int(parts[1])
            self._redirect(f"/files/{parts[2]}" if left <= 1 else f"/redirect/{left - 1}/{parts[2]}")
        elif parts[0] == "loop" and len(parts) == 2:
            self._redirect(f"/loop/{parts[1]}")
        elif parts[0] == "status" and len(parts) == 3 and parts[1].isdigit():
            self._plain(int(parts[1]), f"status {parts[1]}")
        elif parts[:4] == ["civitai", "api", "download", "models"] and len(parts) == 5:
            name = parts[4]
            if name.startswith("token-"):
                self._json(401, {"error": "Unauthorized", "message": "This model requires a token to download"})
            elif name in files:
                self._redirect(f"/presigned/{name}?X-Amz-Signature=standin&X-Amz-Expires=3600", 307)
            else:
                self._json(404, {"error": "Model not found"})
        elif parts[0] == "presigned" and len(parts) == 2 and parts[1] in files:
            self._file(parts[1], files[parts[1]])
        elif parts[:2] == ["api", "models"] and len(parts) == 4:
            self._repo_info(host, f"{parts[2]}/{parts[3]}")
        elif len(parts) >= 5 and parts[2:4] == ["resolve", "main"]:
            self._resolve(host, f"{parts[0]}/{parts[1]}", "/".join(parts[4:]))
        elif parts[0] == "cdn" and len(parts) >= 4:
            repo = host.repos.get(f"{parts[1]}/{parts[2]}")
            name = "/".join(parts[3:])
            if repo is None or name not in repo.files:
                self._plain(404, "no such object")
            else:
                self._file(f"{parts[1]}/{parts[2]}/{name}", repo.files[name])
        else:
            self._plain(404, f"no route for {path[:100]}")

    def _repo_info(self, host: LoraHost, name: str) -> None:
        repo = host.repos.get(name)
        if repo is None or repo.private:
            # What Hugging Face answers an anonymous reader, for a missing and a private repository alike.
            self._json(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return
        self._json(200, {"id": name, "modelId": name, "private": False, "gated": "manual" if repo.gated else False,
                         "siblings": [{"rfilename": f} for f in repo.files]})

    def _resolve(self, host: LoraHost, name: str, file: str) -> None:
        repo = host.repos.get(name)
        if repo is None or repo.private:
            self._json(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        elif repo.gated:
            self._json(401, {"error": f"Access to model {name} is restricted."}, {"X-Error-Code": "GatedRepo"})
        elif file not in repo.files:
            self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        else:
            target = repo.files[file]
            self._redirect(f"/cdn/{name}/{file}", 302, {"X-Linked-Etag": target.etag, "X-Linked-Size": str(target.size),
                                                        "ETag": target.etag})

    def _admin(self, path: str, raw: bytes) -> None:
        host = self.host
        if not is_loopback(self.client_address[0]):
            self._json(403, {"error": "admin endpoints are loopback-only"})
            return
        try:
            body = json.loads(raw) if raw.strip() else {}
            if path == "/_lora/stats" and self.command == "GET":
                self._json(200, host.stats())
            elif path == "/_lora/reset" and self.command == "POST":
                host.reset()
                self._json(200, {"ok": True})
            elif path == "/_lora/config" and self.command == "POST":
                latency = body.get("latency")
                if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
                    raise ValueError("latency must be a number >= 0")
                host.latency = float(latency)
                self._json(200, {"ok": True, **host.stats()})
            else:
                self._json(404, {"error": f"no admin route {self.command} {path[:100]}"})
        except (ValueError, AttributeError) as exc:
            self._json(400, {"error": str(exc)})


class LoraHost(LoopbackService):
    """The LoRA host: start(), root_url, counters, files and repositories tests may add to."""

    handler_class = _Handler
    name = "LoRA host"
    thread_name = "standin-lora-host"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, verbose: bool = False) -> None:
        super().__init__(host, port)
        self.latency = float(latency)
        self.verbose = verbose
        self.files: dict[str, VirtualFile] = standard_files()
        self.repos: dict[str, Repo] = standard_repos()
        self.bytes_served: Counter = Counter()
        self.requests: Counter = Counter()
        self.authorization_seen: list[str] = []
        self.in_progress = 0
        self.max_in_progress = 0  # GETs answered at once (the check reads a run's adapters at the same time)
        self._lock = threading.Lock()

    def url(self, name: str) -> str:
        """The URL of ``/files/<name>``."""
        return f"{self.root_url}/files/{name}"

    # -- counters ------------------------------------------------------------------
    def reset(self) -> None:
        """Counters cleared, latency 0, the standard files and repositories back."""
        with self._lock:
            self.bytes_served.clear()
            self.requests.clear()
            self.authorization_seen.clear()
            self.max_in_progress = self.in_progress
        self.latency = 0.0
        self.files = standard_files()
        self.repos = standard_repos()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"bytes_served": dict(self.bytes_served), "requests": dict(self.requests),
                    "request_count": sum(self.requests.values()), "authorization_seen": len(self.authorization_seen),
                    "max_in_progress": self.max_in_progress, "latency": self.latency}

    @property
    def request_count(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def _count(self, path: str, authorization: str | None) -> None:
        with self._lock:
            self.requests[path] += 1
            if authorization:
                self.authorization_seen.append(authorization)

    def _in_progress(self, step: int) -> None:
        with self._lock:
            self.in_progress += step
            self.max_in_progress = max(self.max_in_progress, self.in_progress)

    def _served(self, name: str, size: int) -> None:
        with self._lock:
            self.bytes_served[name] += size
