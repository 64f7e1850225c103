"""Make the README's pictures (docs/images/*.png) from the real ComfyUI and its newest frontend.

    source ../e2e-env.sh            # or set COMFYUI_DIR, COMFYUI_PYTHON, COMFYUI_FRONTEND_1_58_1, CHROMIUM
    python scripts/make_screenshots.py [--out docs/images]

It starts the local stand-in server (nothing is billed, nothing leaves the machine) and ComfyUI with the pack
and frontend 1.58.1, opens it in headless Chromium (Playwright, the system's Chromium), builds a small graph
(Flux2 LoRA Adapter -> Flux2 LoRA Generate -> Preview Image, with Image Size), turns the LoRA check on, runs
the graph once, and saves, cropped to what matters (PNG, 2 device pixels per CSS pixel, palette-quantized):

- overview.png:   the whole graph after the run (the README's first picture);
- generate.png:   the Generate node with its price and last-run lines;
- image_size.png: the Image Size node with its size label;
- adapter.png:    the Adapter node with its LoRA line.

The machinery is the browser tests' (tests/e2e/harness.py, tests/e2e/page.py). It stops on any error toast
or error from the pack's scripts, so a picture never shows one. Not run by the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
KEY = "sk-screenshots-local-only-0000000000"
VIEWPORT = {"width": 1800, "height": 1500}
SCALE = 2  # device pixels per CSS pixel: sharp text and pictures >= 1200 px wide
MIN_WIDTH_PX = 1200
PROMPT = "a lighthouse on a cliff at dawn, watercolor, soft light"
LORA = "example-user/flux2-watercolor-lora"  # a Hugging Face name the stand-in's LoRA host knows
SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.VueNodes.Enabled": False,  # the classic canvas, the default
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.LinkRenderMode": 2,  # spline links
}

# Image Size -> Generate (image_size) <- Adapter (loras), links that do not cross; Generate -> Preview Image.
# Positions in canvas units.
_BUILD = """
(args) => {
  const [prompt, lora] = args;
  const graph = app.graph;
  graph.clear();
  const add = (type, x, y) => { const n = LiteGraph.createNode(type); n.pos = [x, y]; graph.add(n); return n; };
  const size = add('Flux2LoraImageSize', 40, 80);
  const adapter = add('Flux2LoraAdapter', 40, 390);
  const gen = add('Flux2LoraGenerate', 460, 80);
  const preview = add('PreviewImage', 940, 80);
  adapter.connect(0, gen, gen.findInputSlot('loras'));
  size.connect(0, gen, gen.findInputSlot('image_size'));
  gen.connect(0, preview, 0);
  const set = (node, name, value) => {
    const widget = node.widgets.find((w) => w.name === name);
    widget.value = value;
    widget.callback?.(value, app.canvas, node);
  };
  set(gen, 'prompt', prompt);
  set(gen, 'seed', 20261204);
  set(gen, 'control_after_generate', 'fixed');
  set(adapter, 'path', lora);
  preview.size = [420, 360];
  app.canvas.deselectAll?.();
  app.canvas.setDirty(true, true);
  return {adapter: String(adapter.id), size: String(size.id), gen: String(gen.id), preview: String(preview.id)};
}
"""

_DISPLAY = """
([id, pattern]) => new RegExp(pattern, 's').test(app.graph.getNodeById(id)
    ?.widgets?.find((w) => w.name === 'flux2_display')?.element?.innerText ?? '')
"""

# Zoom and move the canvas so the nodes ``ids`` (titles included) sit in the middle of the window, as large as
# ``max_scale`` allows; returns their box in page CSS pixels, widened to ``min_width`` and with ``margin``.
_FOCUS = """
([ids, maxScale, minWidth, margin]) => {
  const canvas = app.canvas;
  const nodes = ids.map((id) => app.graph.getNodeById(id));
  const title = (LiteGraph.NODE_TITLE_HEIGHT ?? 30) + 28;  // the title bar and the pack's badge above it
  const x0 = Math.min(...nodes.map((n) => n.pos[0])), y0 = Math.min(...nodes.map((n) => n.pos[1] - title));
  const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  const rect = canvas.canvas.getBoundingClientRect();
  const room = 160;  // kept clear of the menus and side bars at the window's edges
  const scale = Math.min(maxScale, (rect.width - 2 * room) / (x1 - x0), (rect.height - 2 * room) / (y1 - y0));
  canvas.ds.scale = scale;
  const cx = rect.width / 2, cy = rect.height / 2;
  canvas.ds.offset[0] = cx / scale - (x0 + x1) / 2;
  canvas.ds.offset[1] = cy / scale - (y0 + y1) / 2;
  canvas.deselectAll?.();
  canvas.setDirty(true, true);
  const width = Math.max(minWidth, (x1 - x0) * scale + 2 * margin);
  const height = (y1 - y0) * scale + 2 * margin;
  return {x: rect.left + cx - width / 2, y: rect.top + cy - height / 2, width, height};
}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Environment: COMFYUI_DIR, COMFYUI_PYTHON, COMFYUI_FRONTEND_1_58_1, "
                                            "CHROMIUM (see tests/e2e/conftest.py).")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs (default {OUT.relative_to(ROOT)})")
    parser.add_argument("--comfyui-dir", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI's folder")
    parser.add_argument("--comfyui-python", default=os.environ.get("COMFYUI_PYTHON"), help="ComfyUI's python")
    parser.add_argument("--frontend", default=os.environ.get("COMFYUI_FRONTEND_1_58_1"),
                        help="frontend 1.58.1's static folder (--front-end-root)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"), help="Chromium")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (ComfyUI's base folder, logs)")
    args = parser.parse_args(argv)
    missing = [name for name, value in (("--comfyui-dir / COMFYUI_DIR", args.comfyui_dir),
                                        ("--comfyui-python / COMFYUI_PYTHON", args.comfyui_python),
                                        ("--frontend / COMFYUI_FRONTEND_1_58_1", args.frontend)) if not value]
    if missing:
        parser.error("not given: " + ", ".join(missing))
    return args


class _ScaledBrowser:
    """The browser, whose new pages are larger and drawn at SCALE device pixels per CSS pixel."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_context(self, **options: Any) -> Any:
        return self._browser.new_context(**{**options, "viewport": VIEWPORT, "device_scale_factor": SCALE})


def optimised_png(png: bytes) -> tuple[Any, bytes]:
    """The screenshot quantized to a 256-colour palette (sharp: flat UI colours), saved with optimize."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as shot:
        picture = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    picture.save(out, "PNG", optimize=True)
    return picture, out.getvalue()


class Shooter:
    def __init__(self, page: Any, out: Path) -> None:
        self.page = page
        self.out = out
        self.written: list[tuple[Path, int, tuple[int, int]]] = []

    def check_clean(self) -> None:
        toasts = self.page.toasts()
        errors = self.page.pack_errors()
        if toasts or errors:
            raise SystemExit(f"not taking screenshots of a page with toasts {toasts} or pack errors {errors}")

    def shoot(self, name: str, ids: list[str], max_scale: float, margin: float = 24) -> None:
        p = self.page.page
        clip = p.evaluate(_FOCUS, [ids, max_scale, MIN_WIDTH_PX / SCALE + 8, margin])
        p.wait_for_timeout(700)  # the canvas and the DOM widgets laid over it are redrawn
        self.check_clean()
        picture, data = optimised_png(p.screenshot(clip=clip, animations="disabled"))
        if picture.width < MIN_WIDTH_PX:
            raise SystemExit(f"{name}: {picture.width} px wide, less than {MIN_WIDTH_PX}")
        path = self.out / name
        path.write_bytes(data)
        self.written.append((path, len(data), picture.size))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from e2e.conftest import CHROMIUM_FLAGS
    from e2e.harness import ComfyUIProcess, StandInProcess
    from e2e.page import ComfyPage
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="flux2-screenshots-"))
    standin = StandInProcess(KEY, work / "standin").start()
    comfy = ComfyUIProcess(args.comfyui_dir, args.comfyui_python, work / "comfyui", standin, KEY,
                           front_end_root=args.frontend)
    playwright = sync_playwright().start()
    shooter: Shooter | None = None
    try:
        comfy.start()
        if comfy.post("/flux2_lora/lora_check/setting", {"check_loras": "on"}).status != 200:
            raise SystemExit("could not turn the LoRA check on")
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
        page = ComfyPage(_ScaledBrowser(browser), comfy).open(settings=SETTINGS)
        page.page.wait_for_timeout(800)
        ids = page.page.evaluate(_BUILD, [PROMPT, LORA])
        page.page.wait_for_function(_DISPLAY, arg=[ids["adapter"], r"^FLUX\.2 \[dev\] LoRA"], timeout=60_000)
        page.page.wait_for_function(_DISPLAY, arg=[ids["gen"], "^Price: "], timeout=60_000)
        known = set(comfy.history())
        status, answer = page.queue()
        if status != 200:
            raise SystemExit(f"ComfyUI refused the prompt: {answer}")
        entry = comfy.wait_for_new_entry(known)
        if entry["status"]["status_str"] != "success":
            raise SystemExit(f"the run failed: {entry['status']}")
        page.page.wait_for_function(_DISPLAY, arg=[ids["gen"], "Last run:"], timeout=60_000)
        page.page.wait_for_timeout(1500)  # the preview picture is loaded and drawn

        shooter = Shooter(page, args.out)
        shooter.shoot("overview.png", [ids["adapter"], ids["size"], ids["gen"], ids["preview"]], 1.0)
        shooter.shoot("generate.png", [ids["gen"]], 1.6)
        shooter.shoot("image_size.png", [ids["size"]], 1.6)
        shooter.shoot("adapter.png", [ids["adapter"]], 1.6)
        page.close()
        browser.close()
    finally:
        playwright.stop()
        comfy.stop()
        standin.stop()
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = 0
    for path, size, (width, height) in shooter.written if shooter else []:
        total += size
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {width}x{height}, {size:,} bytes")
    print(f"total: {total:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
