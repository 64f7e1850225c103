"""Benchmark: the pack's own cost on top of the service, measured against the local stand-in.

    python bench/run.py [--repeats 5]

Runs the real Flux2LoraGenerate node, loaded the way ComfyUI loads the pack,
over real HTTP against the stand-in server (in its own process, on 127.0.0.1;
nothing leaves the machine and nothing is billed). Times are medians of
``--repeats`` runs (three times as many for the conversion); ratios are medians
of run-by-run ratios. Every run uses a new seed, so none is a cache hit. The
table at the end is Markdown, ready for the README.
"""

from __future__ import annotations

import argparse
import gc
import io
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from demo import load_pack_like_comfyui, run_node  # noqa: E402

BATCH_LATENCY = 0.5
BATCH_SIZE = (1024, 768)  # the API's default size, landscape_4_3
CONVERSION_SIDE = 2048
CANCEL_AFTER = 0.3
# "graph" needs a real ComfyUI (COMFYUI_DIR, COMFYUI_PYTHON; bench/comfy_graph.py) and is skipped without.
FIGURES = ("startup", "conversion", "memory", "batch", "cancel", "lora", "graph")
# A new seed for every run (16 apart: a batch of 16 uses seed + k per request), so no run is a cache hit.
_SEEDS = itertools.count(1, 16)


@dataclass
class Figure:
    name: str
    measured: str
    goal: str
    passed: bool


# -- helpers ----------------------------------------------------------------------------------------

class Progress:
    """One line per figure while it is measured: its name, a dot per run, then the result."""

    def start(self, name: str) -> Progress:
        print(f"  {name} ", end="", flush=True)
        return self

    def tick(self) -> None:
        print(".", end="", flush=True)

    def done(self, figures: list[Figure]) -> None:
        print(" " + "; ".join(f"{f.measured}{'' if f.passed else ' (goal ' + f.goal + ' missed)'}" for f in figures),
              flush=True)


def generate(pack: types.ModuleType, num_images: int, width: int, height: int) -> tuple:
    """Run Flux2LoraGenerate as ComfyUI does, with a seed not used before; returns (IMAGE, info)."""
    return run_node(
        pack, "Flux2LoraGenerate", prompt="benchmark", seed=next(_SEEDS), num_images=num_images, guidance_scale=2.5,
        num_inference_steps=28, acceleration="regular", output_format="png", enable_prompt_expansion=True,
        enable_safety_checker=True, image_size={"width": width, "height": height},
    )


def timed(run: Callable[[], object], prepare: Callable[[], object] | None = None) -> float:
    """Seconds ``run`` takes; ``prepare`` runs first, untimed."""
    if prepare:
        prepare()
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    del result  # freeing the output is not part of making it
    return elapsed


def finish_saves(pack: types.ModuleType) -> None:
    """New results are saved in the background; let them land before a temporary cache folder goes."""
    inflight = sys.modules.get(f"{pack.__name__}.api_client.run.inflight")
    if inflight is not None:
        inflight.wait_for_background_work()  # requests whose saves are not even queued yet
    sys.modules[f"{pack.__name__}.api_client.run.cache"].wait_for_pending_saves()


def child(kind: str, *args: str) -> dict:
    """Run this script in a fresh Python process for one measurement; returns its JSON report."""
    done = subprocess.run([sys.executable, str(HERE), "--child", kind, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {kind!r} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def paired_ratio(slower: list[float], faster: list[float]) -> float:
    """The median of run-by-run ratios: steadier than a ratio of medians on a machine whose load changes."""
    return statistics.median(a / b for a, b in zip(slower, faster, strict=True))


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


# -- figures ----------------------------------------------------------------------------------------

def warm_up(pack: types.ModuleType, standin) -> None:
    """One small run first, as in a ComfyUI that has run the node before (HTTP client loaded, connected)."""
    standin.answer_with(standin.make_pictures(1, 512, 512))
    generate(pack, 1, 512, 512)


def spread(values: list[float]) -> str:
    """The middle half and the whole range of ``values``: how much one run of the figure can vary."""
    if len(values) < 4:
        return f"range {min(values):.2f}–{max(values):.2f}"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"middle half {q1:.2f}–{q3:.2f}, all {min(values):.2f}–{max(values):.2f}"


def measure_batch(pack: types.ModuleType, standin, repeats: int, progress: Progress) -> list[Figure]:
    """num_images=16 vs 1 at 0.5 s latency, and the usual way for the same 16 pictures.

    The batch's extra time over one picture is CPU work (decoding 16 pictures on the
    cores), so it is what other users of a shared machine inflate. One run of 16 and
    one of 1 are measured back to back as a pair, in alternating order (so a load that
    rises or falls during the pair favours neither), for three times ``repeats``
    pairs; the figure is the median of the pairs' ratios and its spread is reported.
    """
    from usual_way import usual_way

    width, height = BATCH_SIZE
    standin.set_latency(BATCH_LATENCY)
    urls = standin.make_pictures(4, width, height)
    body = {"model": "blackforestlabs/flux-2-lora", "prompt": "benchmark", "seed": 1,
            "image_size": {"width": width, "height": height}, "output_format": "png"}

    def quiet(answer: list[str], times: int) -> Callable[[], None]:
        def prepare() -> None:
            # The previous run's pictures are still being saved to the result cache on a background
            # thread, and its tensors wait for the garbage collector: both would land in the next
            # timed run (the baseline, half the time) and pull the ratio around.
            finish_saves(pack)
            gc.collect()
            standin.answer_with(answer, times)
        return prepare

    cpu: list[float] = []

    def run_one() -> float:
        return timed(lambda: generate(pack, 1, width, height), quiet(urls[:1], 1))

    def run_sixteen() -> float:
        started = time.process_time()
        elapsed = timed(lambda: generate(pack, 16, width, height), quiet(urls, 4))
        cpu.append(time.process_time() - started)
        return elapsed

    pairs = 3 * repeats
    load_before = os.getloadavg()[0]
    one, sixteen, usual, usual_sixteen = [], [], [], []
    for i in range(pairs):
        if i % 2:
            sixteen.append(run_sixteen())
            one.append(run_one())
        else:
            one.append(run_one())
            sixteen.append(run_sixteen())
        progress.tick()
    for _ in range(repeats):  # the usual way (2-3 s a run), each right after a run of the node's
        usual_sixteen.append(run_sixteen())
        usual.append(timed(lambda: usual_way(standin.base_url, standin.key, body, 16), quiet(urls, 4)))
        progress.tick()
    standin.set_latency(0)
    finish_saves(pack)
    t1, t16, tu = statistics.median(one), statistics.median(sixteen), statistics.median(usual)
    ratios = [a / b for a, b in zip(sixteen, one, strict=True)]
    batch, speedup = statistics.median(ratios), paired_ratio(usual, usual_sixteen)
    # The pack's own work in a batch run is CPU time, which stays put when others load the machine;
    # the wall time around it is what grows. Both are shown, with the load, so a high figure on a
    # busy machine can be told from a slower pack.
    load = max(load_before, os.getloadavg()[0])
    return [
        Figure("batch: 16 pictures (4 requests) vs 1, latency 0.5 s",
               f"{batch:.2f}× ({t16:.2f} s vs {t1:.2f} s; {pairs} pairs, {spread(ratios)}; "
               f"CPU {statistics.median(cpu):.2f} s a batch; load {load:.1f} on {os.cpu_count()} CPUs)",
               "≤ 1.3×", batch <= 1.3),
        Figure("vs the usual way: 16 pictures, latency 0.5 s", f"{speedup:.1f}× faster ({t16:.2f} s vs {tu:.2f} s)",
               "≥ 3×", speedup >= 3),
    ]


def direct_decode(pictures: list[bytes], rows: int = 64) -> object:
    """The limit: PNG bytes already in memory, decoded on every core straight into one preallocated tensor.

    No HTTP and no checks; pixels are converted in strips of ``rows`` rows, which
    is faster than one full-size ``np.asarray`` (no full-size copy, cache-warm).
    """
    import numpy as np
    import torch
    from PIL import Image

    width, height = Image.open(io.BytesIO(pictures[0])).size
    out = torch.empty((len(pictures), height, width, 3), dtype=torch.float32)
    view = out.numpy()

    def decode(i: int) -> None:
        with Image.open(io.BytesIO(pictures[i])) as image:
            image.load()
            for top in range(0, height, rows):
                strip = np.asarray(image.crop((0, top, width, min(height, top + rows))))
                np.divide(strip, np.float32(255), out=view[i, top:top + len(strip)], dtype=np.float32)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(decode, range(len(pictures))))
    return out


def measure_conversion(pack: types.ModuleType, standin, repeats: int,
                       progress: Progress) -> tuple[Figure, list[str], int]:
    """4 x 2048x2048 PNG at latency 0: the node vs a direct decode of the same bytes."""
    side = CONVERSION_SIDE
    urls = standin.make_pictures(4, side, side)
    pictures = [standin.download(u) for u in urls]
    node, limit = [], []
    for _ in range(repeats):
        node.append(timed(lambda: generate(pack, 4, side, side), lambda: standin.answer_with(urls)))
        limit.append(timed(lambda: direct_decode(pictures)))
        progress.tick()
    tn, tl = statistics.median(node), statistics.median(limit)
    ratio = paired_ratio(node, limit)
    compressed = sum(map(len, pictures))
    figure = Figure(f"conversion: 4 × {side}×{side} PNG, latency 0, vs direct decode",
                    f"{ratio:.2f}× ({tn:.3f} s vs {tl:.3f} s)", "≤ 1.15×", ratio <= 1.15)
    return figure, urls, compressed


def measure_memory(standin, urls: list[str], compressed: int, repeats: int, progress: Progress) -> Figure:
    """Peak resident memory of a fresh process during that conversion."""
    peaks, tensor = [], 0
    for _ in range(repeats):
        report = child("memory", standin.root_url, *urls)
        peaks.append(report["peak_bytes"])
        tensor = report["tensor_bytes"]
        progress.tick()
    peak = statistics.median(peaks)
    budget = tensor + compressed
    return Figure("memory: peak during that conversion / (tensor + compressed bytes)",
                  f"{peak / budget:.2f}× ({mib(peak)}; tensor {mib(tensor)} + PNG {mib(compressed)})",
                  "≤ 1.3×", peak / budget <= 1.3)


def measure_startup(repeats: int, progress: Progress) -> Figure:
    """Importing the pack in a fresh process where torch, numpy and Pillow are already imported."""
    runs = []
    for _ in range(repeats):
        runs.append(child("startup")["seconds"])
        progress.tick()
    seconds = statistics.median(runs)
    return Figure("start-up: importing the pack (torch already imported)", f"{seconds * 1000:.0f} ms",
                  "≤ 100 ms", seconds <= 0.1)


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


def fake_comfy(flag: threading.Event) -> dict[str, types.ModuleType]:
    """comfy.model_management with ComfyUI's interrupt function, driven by ``flag``."""
    def throw_exception_if_processing_interrupted() -> None:
        if flag.is_set():
            flag.clear()
            raise Interrupted()

    management = types.ModuleType("comfy.model_management")
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    comfy = types.ModuleType("comfy")
    comfy.model_management = management
    return {"comfy": comfy, "comfy.model_management": management}


def interrupt_after(flag: threading.Event, seconds: float) -> list[float]:
    """Set ``flag`` after ``seconds`` from another thread; the list receives the moment it was set."""
    flagged: list[float] = []

    def interrupt() -> None:
        time.sleep(seconds)
        flagged.append(time.perf_counter())
        flag.set()

    threading.Thread(target=interrupt, daemon=True).start()
    return flagged


def measure_cancel(pack: types.ModuleType, standin, repeats: int, progress: Progress) -> Figure:
    """From ComfyUI's interrupt flag being set to the node returning, while 4 requests wait."""
    flag = threading.Event()
    modules = fake_comfy(flag)
    sys.modules.update(modules)
    urls = standin.make_pictures(4, *BATCH_SIZE)
    standin.set_latency(5.0)
    delays = []
    try:
        for _ in range(repeats):
            standin.answer_with(urls, 4)
            flagged = interrupt_after(flag, CANCEL_AFTER)
            try:
                generate(pack, 16, *BATCH_SIZE)
            except Interrupted:
                delays.append(time.perf_counter() - flagged[0])
            else:
                raise RuntimeError("the node finished instead of being cancelled")
            progress.tick()
    finally:
        for name in modules:
            sys.modules.pop(name, None)
        standin.set_latency(0)
    delay = statistics.median(delays)
    return Figure("cancel: interrupt flag to the node returning", f"{delay:.3f} s", "≤ 0.2 s", delay <= 0.2)


# -- children (fresh processes) ---------------------------------------------------------------------

def child_startup() -> dict:
    import numpy  # noqa: F401  ComfyUI has imported torch, numpy and Pillow before it loads any pack
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401

    started = time.perf_counter()
    load_pack_like_comfyui()
    return {"seconds": time.perf_counter() - started}


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child_memory(root_url: str, *urls: str) -> dict:
    import torch  # noqa: F401  loaded before the pack, as in ComfyUI
    from standin_process import StandInClient

    standin = StandInClient(root_url)
    with tempfile.TemporaryDirectory(prefix="flux2-bench-cache-") as cache:
        os.environ.update(AIML_API_BASE=standin.base_url, AIML_API_KEY=standin.key, FLUX2_LORA_CACHE_DIR=cache)
        pack = load_pack_like_comfyui()
        warm_up(pack, standin)
        standin.answer_with(list(urls))
        gc.collect()
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # Linux: reset the peak (VmHWM) to the current resident size
        before = _status_kib("VmRSS")
        images, _ = generate(pack, len(urls), CONVERSION_SIDE, CONVERSION_SIDE)
        peak = _status_kib("VmHWM") - before
        finish_saves(pack)
    return {"peak_bytes": peak, "tensor_bytes": images.numel() * images.element_size()}


# -- main -------------------------------------------------------------------------------------------

def machine() -> str:
    import numpy
    import PIL
    import torch

    return (f"{os.cpu_count()} CPUs ({platform.machine()}), {platform.system()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, numpy {numpy.__version__}, Pillow {PIL.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure; the median is reported")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=FIGURES, metavar="FIGURE",
                        help=f"measure only these: {', '.join(FIGURES)}")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        print(json.dumps({"startup": child_startup, "memory": child_memory}[kind](*rest)))
        return 0

    from standin_process import StandInProcess

    repeats = max(1, args.repeats)
    only = set(args.only)
    progress = Progress()
    print(f"machine: {machine()}")
    print(f"measuring {', '.join(f for f in FIGURES if f in only)} (a dot per run) ...", flush=True)
    figures: list[Figure] = []

    def measured(name: str, measure: Callable[[Progress], Figure | list[Figure]]) -> None:
        result = measure(progress.start(name))
        found = result if isinstance(result, list) else [result]
        progress.done(found)
        figures.extend(found)

    if "startup" in only:
        measured("start-up", lambda p: measure_startup(repeats, p))
    with StandInProcess() as standin, tempfile.TemporaryDirectory(prefix="flux2-bench-cache-") as cache:
        # The stand-in's key and a throwaway result cache: the user's key and cache are never used.
        os.environ.update(AIML_API_BASE=standin.base_url, AIML_API_KEY=standin.key, FLUX2_LORA_CACHE_DIR=cache)
        pack = load_pack_like_comfyui()
        warm_up(pack, standin)
        if only & {"conversion", "memory"}:
            # Cheap and the most sensitive to other users of the machine: three times the runs.
            runs = 3 * repeats if "conversion" in only else 1
            progress.start("conversion")
            conversion, urls, compressed = measure_conversion(pack, standin, runs, progress)
            progress.done([conversion])
            if "conversion" in only:
                figures.append(conversion)
            if "memory" in only:
                measured("memory", lambda p: measure_memory(standin, urls, compressed, repeats, p))
        if "batch" in only:
            measured("batch", lambda p: measure_batch(pack, standin, repeats, p))
        if "cancel" in only:
            measured("cancel", lambda p: measure_cancel(pack, standin, repeats, p))
        finish_saves(pack)
    if "lora" in only:
        from lora_check import measure_lora_check

        measured("lora check", lambda p: [Figure(*f) for f in measure_lora_check(repeats, p.tick)])
    if "graph" in only:
        from comfy_graph import measure_graph

        graph = measure_graph(repeats)
        if graph is not None:
            figures.append(Figure(*graph))
    print(f"\n{repeats} runs per figure ({3 * repeats} for the conversion, {3 * repeats} pairs for the batch); "
          "medians\n")
    print("| figure | measured | goal | pass |")
    print("| --- | --- | --- | --- |")
    for f in figures:
        print(f"| {f.name} | {f.measured} | {f.goal} | {'yes' if f.passed else 'NO'} |")
    print()
    print(verdict(figures))
    return 0 if all(f.passed for f in figures) else 1


def verdict(figures: list[Figure]) -> str:
    """The last line: every goal met, or which figures missed theirs (the exit status is then 1)."""
    missed = [f for f in figures if not f.passed]
    if not missed:
        return f"all {len(figures)} goals met"
    named = "; ".join(f"{f.name.split(':')[0]} {f.measured.split(' (')[0]} against {f.goal}" for f in missed)
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    busy = f" (the machine is busy: load {load:.1f} on {cpus} CPUs; rerun when it is quieter)" if load > cpus else ""
    return f"MISSED {len(missed)} of {len(figures)} goals: {named}{busy}"


if __name__ == "__main__":
    raise SystemExit(main())
