"""Benchmark figure: the LoRA check's cost to a run (issue 19).

Three adapters checked at 100 ms per round trip against one adapter's check: the
adapters are read at the same time, so three should cost about one round trip more
than nothing (goal ≤ 1.3× one adapter's check). Then the same three again with the
verdict cache: no request at all, about 0. The LoRA host is the stand-in's, in its own
process (``python -m api_client.standin --lora-port-file ... --lora-latency 0.1``),
serving virtual 100–400 MB LoRAs of which only the headers are read.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENCY = 0.1
FILES = ("flux2-dev-ai-toolkit-r16.safetensors", "flux2-dev-diffusers-r16.safetensors",
         "flux2-dev-kohya-r32.safetensors")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _start_host(folder: Path) -> tuple[subprocess.Popen, str]:
    ports = folder / "port", folder / "lora-port"
    process = subprocess.Popen(
        [sys.executable, "-m", "api_client.standin", "--port", "0", "--port-file", str(ports[0]),
         "--lora-port-file", str(ports[1]), "--lora-latency", str(LATENCY)],
        cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ports[1].exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError("the stand-in's LoRA host did not start")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{int(ports[1].read_text())}"


def _requests(root: str) -> int:
    with _OPENER.open(f"{root}/_lora/stats", timeout=30) as answer:
        return int(json.loads(answer.read())["request_count"])


def measure_lora_check(repeats: int, tick) -> list[tuple[str, str, str, bool]]:
    """[(figure, measured, goal, passed)] for the check of 3 adapters vs 1, and a second (cached) run."""
    sys.path.insert(0, str(ROOT))
    from api_client.lora.cache import VerdictCache
    from api_client.lora.check import check_loras

    with tempfile.TemporaryDirectory(prefix="flux2-bench-lora-") as temp:
        process, root = _start_host(Path(temp))
        try:
            urls = [f"{root}/files/{name}" for name in FILES]
            check_loras(urls, cache=False, enabled=True)  # warm: the HTTP stack loaded, connections open
            ones, threes = [], []
            for i in range(3 * repeats):
                pair = ((urls[:1], ones), (urls, threes)) if i % 2 == 0 else ((urls, threes), (urls[:1], ones))
                for paths, into in pair:
                    started = time.perf_counter()
                    checks = check_loras(paths, cache=False, enabled=True)
                    into.append(time.perf_counter() - started)
                    assert all(c.verdict == "flux2-dev" for c in checks), checks
                tick()
            cache = VerdictCache(Path(temp) / "verdicts")
            check_loras(urls, cache=cache, enabled=True)
            asked = _requests(root)
            cached = []
            for _ in range(repeats):
                started = time.perf_counter()
                check_loras(urls, cache=cache, enabled=True)
                cached.append(time.perf_counter() - started)
            asked_again = _requests(root) - asked
        finally:
            process.terminate()
            process.wait(timeout=10)
    ratio = statistics.median(t / o for t, o in zip(threes, ones, strict=True))
    one, three, second = statistics.median(ones), statistics.median(threes), statistics.median(cached)
    return [
        (f"LoRA check: 3 adapters vs 1, {LATENCY * 1000:.0f} ms per round trip",
         f"{ratio:.2f}× ({three:.3f} s vs {one:.3f} s; {len(ones)} pairs)", "≤ 1.3×", ratio <= 1.3),
        ("LoRA check: the same 3 on a second run (verdict cache)",
         f"{second * 1000:.1f} ms, {asked_again} requests", "≈ 0, no request", asked_again == 0 and second < 0.05),
    ]
