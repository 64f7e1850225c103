"""The shipped example workflows and what running one inside ComfyUI must produce.

Shared by the end-to-end tests (POST /prompt) and the browser tests (queued from the page).
Node definitions come from the running server's /object_info, so a UI workflow is turned
into an API prompt with the definitions the frontend itself would use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflow_check import CORE_NODES, NodeDef

from .harness import ROOT

FOLDER = ROOT / "example_workflows"
UI_FILES = sorted(FOLDER.glob("*.json"))
API_FILES = sorted((FOLDER / "api").glob("*.api.json"))
GENERATING = ("Flux2LoraGenerate", "Flux2LoraEdit")
OUTPUT_NODES = {"SaveImage": "output", "PreviewImage": "temp"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def defs_from_object_info(object_info: dict[str, Any]) -> dict[str, NodeDef]:
    """Node definitions as the server declares them, plus the frontend-only nodes (Note)."""
    defs = {name: node for name, node in CORE_NODES.items() if node.frontend_only}
    for name, info in object_info.items():
        inputs, order = info.get("input", {}), info.get("input_order", {})

        def section(kind: str, inputs: dict = inputs, order: dict = order) -> dict[str, tuple]:
            specs = inputs.get(kind, {})
            names = order.get(kind, list(specs))
            return {n: tuple(specs[n]) for n in names}

        defs[name] = NodeDef(required=section("required"), optional=section("optional"),
                             hidden=dict(inputs.get("hidden", {})), display_name=info.get("display_name", name),
                             return_types=tuple(info.get("output", ())),
                             return_names=tuple(info.get("output_name", ())))
    return defs


def input_pictures(prompt: dict[str, Any]) -> list[str]:
    """File names the prompt's LoadImage nodes read from ComfyUI's input folder."""
    return [node["inputs"]["image"] for node in prompt.values() if node["class_type"] == "LoadImage"]


@dataclass(frozen=True)
class ExpectedRun:
    """What one prompt must produce: pictures per output node and generation requests."""

    pictures: dict[str, tuple[int, int, int, str]]  # output node id -> (count, width, height, folder type)
    requests: list[tuple[str, int, int]]  # (model suffix "lora"/"lora-edit", seed, num_images), sorted


def _source(prompt: dict[str, Any], value: Any) -> dict[str, Any] | None:
    return prompt[value[0]] if isinstance(value, list) else None


def _seed(prompt: dict[str, Any], value: Any) -> int:
    source = _source(prompt, value)
    return int(source["inputs"]["seed"]) if source else int(value)


def _pixels(prompt: dict[str, Any], inputs: dict[str, Any]) -> tuple[int, int]:
    from api_client.api.limits import LIMITS, PRESET_PIXELS

    source = _source(prompt, inputs.get("image_size"))
    if source is None:
        return PRESET_PIXELS[LIMITS.size_default]
    size = source["inputs"]
    if size["preset"] == "custom":
        return int(size["width"]), int(size["height"])
    return PRESET_PIXELS[size["preset"]]


def _edit_pixels(prompt: dict[str, Any], inputs: dict[str, Any], input_folder: Path | None) -> tuple[int, int]:
    """Edit without image_size: the stand-in answers with the input picture itself (the real API would
    use its default size), so the size is that of the picture LoadImage gives ``image``."""
    from PIL import Image

    source = _source(prompt, inputs["image"])
    assert source and source["class_type"] == "LoadImage" and input_folder, "Edit's image must come from LoadImage"
    with Image.open(input_folder / source["inputs"]["image"]) as picture:
        return picture.size


def expected_run(prompt: dict[str, Any], input_folder: Path | None = None) -> ExpectedRun:
    """Pictures and requests a prompt of the shipped kind implies (generating nodes feeding output nodes).

    ``input_folder`` holds the pictures LoadImage reads (for Edit, see _edit_pixels).
    """
    from api_client.api.limits import LIMITS

    per_request = LIMITS.images_per_request_max
    pictures, requests = {}, []
    for node in prompt.values():
        if node["class_type"] not in GENERATING:
            continue
        inputs = node["inputs"]
        seed, count = _seed(prompt, inputs["seed"]), int(inputs["num_images"])
        model = "lora" if node["class_type"] == "Flux2LoraGenerate" else "lora-edit"
        for k in range(math.ceil(count / per_request)):
            requests.append((model, seed + k, min(per_request, count - k * per_request)))
    for node_id, node in prompt.items():
        folder = OUTPUT_NODES.get(node["class_type"])
        if folder is None:
            continue
        producer = _source(prompt, node["inputs"]["images"])
        assert producer and producer["class_type"] in GENERATING, f"output node {node_id} is not fed by the pack"
        if producer["class_type"] == "Flux2LoraEdit" and "image_size" not in producer["inputs"]:
            width, height = _edit_pixels(prompt, producer["inputs"], input_folder)
        else:
            width, height = _pixels(prompt, producer["inputs"])
        pictures[node_id] = (int(producer["inputs"]["num_images"]), width, height, folder)
    return ExpectedRun(pictures=pictures, requests=sorted(requests))


def seen_requests(bodies: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """The stand-in's request bodies in the shape of ExpectedRun.requests."""
    return sorted((body["model"].rsplit("flux-2-", 1)[-1], body["seed"], body["num_images"]) for body in bodies)


def picture_problems(comfy: Any, entry: dict[str, Any], expected: ExpectedRun) -> list[str]:
    """How the pictures a finished prompt wrote differ from ``expected`` (count, size, folder, on disk)."""
    from PIL import Image

    problems = []
    for node_id, (count, width, height, folder) in expected.pictures.items():
        images = entry.get("outputs", {}).get(node_id, {}).get("images", [])
        files = comfy.output_files(entry, node_id)
        if len(files) != count:
            problems.append(f"node {node_id}: {len(files)} pictures, expected {count}")
        for image, path in zip(images, files, strict=True):
            if image["type"] != folder:
                problems.append(f"node {node_id}: {path.name} went to {image['type']}, expected {folder}")
            if not path.is_file():
                problems.append(f"node {node_id}: {path} is not on disk")
                continue
            with Image.open(path) as picture:
                if picture.size != (width, height):
                    problems.append(f"node {node_id}: {path.name} is {picture.size}, expected {(width, height)}")
    return problems


def text_to_image_prompt(seed: int | None = None, **generate_inputs: Any) -> dict[str, Any]:
    """The shipped text_to_image API prompt with a new seed (so neither cache knows it) and any Generate inputs.

    Nodes: "1" Seed, "2" Image Size, "3" Generate, "4" Save Image.
    """
    import secrets

    prompt = load(FOLDER / "api" / "text_to_image.api.json")["prompt"]
    prompt["1"]["inputs"]["seed"] = seed if seed is not None else secrets.randbelow(2**30) + 1
    prompt["3"]["inputs"].update(generate_inputs)
    return prompt
