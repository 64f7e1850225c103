"""The local stand-in server in its own process, driven over HTTP.

A separate process keeps the server's work (and memory) out of the figures
measured in the benchmark's process. Pictures are rendered and encoded once,
before any timing; timed runs get them back through the stand-in's ``data``
fault, so the stand-in's answer costs exactly its configured latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-bench-standin"
# Loopback only: never use a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StandInClient:
    """The stand-in's admin endpoints, plus rendering pictures once for later runs."""

    def __init__(self, root_url: str, key: str = KEY) -> None:
        self.root_url = root_url
        self.base_url = f"{root_url}/v1"
        self.key = key

    def _call(self, method: str, path: str, payload: Any = None, key: bool = False) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.root_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {self.key}")
        with _OPENER.open(request, timeout=120) as response:
            return json.loads(response.read())

    def set_latency(self, seconds: float) -> None:
        self._call("POST", "/_standin/config", {"latency": seconds})

    def make_pictures(self, count: int, width: int, height: int, output_format: str = "png") -> list[str]:
        """Have the stand-in render and encode ``count`` pictures once; returns their URLs."""
        body = {
            "model": "blackforestlabs/flux-2-lora", "prompt": "benchmark", "seed": 1, "num_images": count,
            "image_size": {"width": width, "height": height}, "output_format": output_format,
        }
        return [item["url"] for item in self._call("POST", "/v1/images/generations", body, key=True)["data"]]

    def answer_with(self, urls: list[str], times: int = 1) -> None:
        """The next ``times`` generation requests answer with these pictures after the latency."""
        self._call("POST", "/_standin/faults", {"post": [{"data": [{"url": u} for u in urls], "times": times}]})

    def download(self, url: str) -> bytes:
        with _OPENER.open(url, timeout=120) as response:
            return response.read()


class StandInProcess(StandInClient):
    """``python -m api_client.standin`` on a free loopback port."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="flux2-bench-")
        port_file = Path(self._folder.name) / "port"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "api_client.standin", "--port", "0", "--key", KEY, "--port-file", str(port_file)],
            cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.05)
        super().__init__(f"http://127.0.0.1:{int(port_file.read_text())}")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._folder.cleanup()

    def __enter__(self) -> StandInProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
