"""Render the .jpg thumbnail of every example workflow: its graph, with the stand-in's pictures.

    python scripts/make_thumbnails.py          # rewrites example_workflows/*.jpg

Each workflow really runs (through the pack's nodes, against the local stand-in
server on 127.0.0.1; nothing is billed), and the pictures it gives are drawn in
its Save/Preview nodes. ComfyUI's template browser shows these thumbnails.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from workflow_check import pack_defs, run_api_prompt, ui_to_api, widget_slots  # noqa: E402

from api_client.standin import StandInServer  # noqa: E402
from demo import load_pack_like_comfyui  # noqa: E402

SIZE = (960, 540)
SUPERSAMPLE = 2
BACKGROUND = (32, 33, 36)
GRID = (40, 41, 45)
NODE_BODY = (53, 53, 56)
NODE_TITLE = (38, 38, 40)
TEXT = (222, 222, 222)
DIM_TEXT = (160, 160, 165)
LINK_COLOURS = {
    "IMAGE": (100, 181, 246), "INT": (96, 200, 130), "FLUX2_IMAGE_SIZE": (240, 170, 70),
    "FLUX2_LORAS": (190, 120, 240), "STRING": (120, 200, 200),
}
STAND_IN_KEY = "sk-thumbnails-local-only"


def font(size: float) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, round(size)))


def run_workflow(doc: dict, defs: dict) -> dict[str, Any]:
    """The IMAGE batch each output node gets when the workflow runs against the stand-in."""
    results = run_api_prompt(ui_to_api(doc, defs), defs)
    return {node_id: out[0] for node_id, out in results.items() if defs[_type(doc, node_id)].function is None}


def _type(doc: dict, node_id: str) -> str:
    return next(n["type"] for n in doc["nodes"] if str(n["id"]) == node_id)


def _value_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return text if len(text) <= 42 else text[:40] + "…"


def render(doc: dict, defs: dict, pictures: dict[str, Any], title: str) -> Image.Image:
    width, height = SIZE[0] * SUPERSAMPLE, SIZE[1] * SUPERSAMPLE
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image, "RGBA")
    for x in range(0, width, 40 * SUPERSAMPLE):
        draw.line([(x, 0), (x, height)], fill=GRID)
    for y in range(0, height, 40 * SUPERSAMPLE):
        draw.line([(0, y), (width, y)], fill=GRID)

    title_height = 30  # the node title bar, in graph units
    boxes = [(*n["pos"], n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]) for n in doc["nodes"]]
    boxes += [(g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
               g["bounding"][1] + g["bounding"][3]) for g in doc["groups"]]
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes) - title_height
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    header = 44 * SUPERSAMPLE
    margin = 20 * SUPERSAMPLE
    scale = min((width - 2 * margin) / (right - left), (height - header - margin) / (bottom - top))
    offset_x = (width - (right - left) * scale) / 2 - left * scale
    offset_y = header - top * scale

    def at(x: float, y: float) -> tuple[float, float]:
        return x * scale + offset_x, y * scale + offset_y

    draw.text((margin, 12 * SUPERSAMPLE), title, font=font(22 * SUPERSAMPLE), fill=TEXT)

    for group in doc["groups"]:
        x, y, w, h = group["bounding"]
        draw.rectangle([at(x, y), at(x + w, y + h)], fill=(63, 120, 158, 40), outline=(63, 120, 158, 160),
                       width=SUPERSAMPLE)
        draw.text(at(x + 10, y + 6), group["title"], font=font(18 * scale), fill=(170, 200, 225))

    nodes = {n["id"]: n for n in doc["nodes"]}

    def socket(node: dict, slot: int, output: bool) -> tuple[float, float]:
        x = node["pos"][0] + (node["size"][0] if output else 0)
        return at(x, node["pos"][1] + 14 + slot * 20)

    for _, source, source_slot, target, target_slot, link_type in doc["links"]:
        (x0, y0), (x1, y1) = socket(nodes[source], source_slot, True), socket(nodes[target], target_slot, False)
        bend = max(40 * scale, abs(x1 - x0) / 2)
        points = []
        for t in np.linspace(0, 1, 40):
            u = 1 - t
            points.append((u**3 * x0 + 3 * u * u * t * (x0 + bend) + 3 * u * t * t * (x1 - bend) + t**3 * x1,
                           u**3 * y0 + 3 * u * u * t * y0 + 3 * u * t * t * y1 + t**3 * y1))
        draw.line(points, fill=LINK_COLOURS.get(link_type, DIM_TEXT), width=max(2, round(3 * scale)))

    for node in doc["nodes"]:
        node_def = defs[node["type"]]
        x, y = node["pos"]
        w, h = node["size"]
        draw.rectangle([at(x, y - title_height), at(x + w, y)], fill=NODE_TITLE)
        draw.rectangle([at(x, y), at(x + w, y + h)], fill=NODE_BODY)
        name = node.get("title") or node_def.display_name
        draw.text(at(x + 10, y - title_height + 7), name, font=font(17 * scale), fill=TEXT)
        for slot, entry in enumerate(node.get("inputs") or []):
            if entry.get("link") is not None:
                cx, cy = socket(node, slot, False)
                draw.ellipse([cx - 5 * scale, cy - 5 * scale, cx + 5 * scale, cy + 5 * scale],
                             fill=LINK_COLOURS.get(entry["type"], DIM_TEXT))
        picture = pictures.get(str(node["id"]))
        if picture is not None:
            pixels = (picture[0].numpy() * 255).round().astype(np.uint8)
            box_w, box_h = (w - 20) * scale, (h - 20) * scale
            shown = Image.fromarray(pixels)
            shown.thumbnail((max(1, int(box_w)), max(1, int(box_h))))
            px, py = at(x + 10, y + 10)
            image.paste(shown, (int(px + (box_w - shown.width) / 2), int(py)))
            continue
        line_y = y + 8
        if node["type"] == "Note":
            for line in textwrap.wrap(node["widgets_values"][0], width=max(10, int(w / 8.5))):
                if line_y <= y + h - 24:
                    draw.text(at(x + 12, line_y), line, font=font(15 * scale), fill=TEXT)
                    line_y += 20
            continue
        linked = {e["name"] for e in node.get("inputs") or [] if e.get("link") is not None}
        for (name, _, kind), value in zip(widget_slots(node_def), node["widgets_values"], strict=False):
            if kind != "value" or line_y > y + h - 24:
                continue
            shown_value = "(from link)" if name in linked else _value_text(value)
            draw.text(at(x + 12, line_y), f"{name}: {shown_value}", font=font(15 * scale),
                      fill=DIM_TEXT if name in linked else TEXT)
            line_y += 24
    return image.resize(SIZE, Image.Resampling.LANCZOS)


def main() -> None:
    pack = load_pack_like_comfyui()
    defs = pack_defs(pack)
    with StandInServer(key=STAND_IN_KEY).start() as server:
        os.environ.update({"AIML_API_KEY": STAND_IN_KEY, "AIML_API_BASE": server.base_url})
        for path in sorted((ROOT / "example_workflows").glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            title = "Flux2 LoRA · " + path.stem.replace("_", " ")
            thumbnail = render(doc, defs, run_workflow(doc, defs), title)
            thumbnail.save(path.with_suffix(".jpg"), quality=85, optimize=True)
            print(f"wrote {path.with_suffix('.jpg').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
