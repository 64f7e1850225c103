"""API-format prompts with several Flux2 nodes, and timings read from ComfyUI's own history.

Shared by the end-to-end tests of async nodes (test_async_graph.py) and the graph
benchmark (bench/comfy_graph.py).
"""

from __future__ import annotations

import itertools
from typing import Any

# The test-only node that turns lines into a list (tests/e2e/custom_nodes/flux2_e2e_prompt_list.py).
PROMPT_LIST_NODE = "Flux2E2EPromptList"
# A new seed for every node of every prompt: neither ComfyUI's cache nor the pack's answers a run.
_SEEDS = itertools.count(1000, 17)


def generate_inputs(prompt: Any, seed: int | None = None, num_images: int = 1) -> dict[str, Any]:
    """Flux2LoraGenerate's inputs in API format; ``prompt`` may be a link ([node id, output])."""
    return {
        "prompt": prompt, "seed": next(_SEEDS) if seed is None else seed, "num_images": num_images,
        "guidance_scale": 2.5, "num_inference_steps": 28, "acceleration": "regular", "output_format": "png",
        "enable_prompt_expansion": True, "enable_safety_checker": True, "image_size": ["1", 0],
        "use_cache": False,
    }


def _size_node() -> dict[str, Any]:
    return {"class_type": "Flux2LoraImageSize", "inputs": {"preset": "square", "width": 512, "height": 512}}


def generate_nodes_prompt(count: int) -> dict[str, Any]:
    """``count`` Generate nodes side by side, each with its own preview: node ids 10, 11, ..."""
    prompt: dict[str, Any] = {"1": _size_node()}
    for k in range(count):
        prompt[str(10 + k)] = {"class_type": "Flux2LoraGenerate",
                               "inputs": generate_inputs(f"a lighthouse, variant {k + 1}")}
        prompt[str(100 + k)] = {"class_type": "PreviewImage", "inputs": {"images": [str(10 + k), 0]}}
    return prompt


def prompt_list_prompt(prompts: list[str]) -> dict[str, Any]:
    """One Generate node fed a list of prompts (it runs once per prompt), node id 10, then a preview."""
    return {
        "1": _size_node(),
        "2": {"class_type": PROMPT_LIST_NODE, "inputs": {"text": "\n".join(prompts)}},
        "10": {"class_type": "Flux2LoraGenerate", "inputs": generate_inputs(["2", 0])},
        "100": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}},
    }


def message_time(entry: dict[str, Any], kind: str) -> float | None:
    """When ComfyUI recorded status message ``kind`` (seconds since the epoch), or None."""
    for message_kind, data in entry.get("status", {}).get("messages", []):
        if message_kind == kind and "timestamp" in data:
            return data["timestamp"] / 1000.0
    return None


def run_seconds(entry: dict[str, Any]) -> float:
    """How long a finished prompt ran, by ComfyUI's own clock: execution_start to its end."""
    start = message_time(entry, "execution_start")
    end = next((t for t in (message_time(entry, k) for k in ("execution_success", "execution_interrupted",
                                                              "execution_error")) if t is not None), None)
    if start is None or end is None:
        raise AssertionError(f"no start/end timestamps in the history entry: {entry.get('status')}")
    return end - start
