"""Checks saved ComfyUI workflows (UI and API format) against node definitions, and runs them.

The node definitions are the pack's own classes plus a small table of the core
ComfyUI nodes the examples use, written in the same INPUT_TYPES shape.

UI format (what the frontend saves): each node's ``widgets_values`` holds one value
per widget in input order (required, then optional), plus the control_after_generate
value right after each widget that has one and the upload button's value after a
widget with ``image_upload``. A widget converted to an input keeps its slot in
``widgets_values``. ``links`` are ``[id, from_node, from_slot, to_node, to_slot, type]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
ANY_FILE = "<any file in ComfyUI's input folder>"


@dataclass
class NodeDef:
    """What a saved workflow needs to know about a node type."""

    required: dict[str, tuple]
    optional: dict[str, tuple] = field(default_factory=dict)
    return_types: tuple[str, ...] = ()
    return_names: tuple[str, ...] = ()
    hidden: dict[str, str] = field(default_factory=dict)
    display_name: str = ""
    frontend_only: bool = False  # e.g. Note: saved in the UI format, absent from the API format
    function: Any = None

    @property
    def inputs(self) -> dict[str, tuple]:
        return {**self.required, **self.optional}


# Core ComfyUI nodes used by the examples, as their INPUT_TYPES declare them.
CORE_NODES: dict[str, NodeDef] = {
    "SaveImage": NodeDef(
        required={"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
        display_name="Save Image"),
    "PreviewImage": NodeDef(required={"images": ("IMAGE",)}, display_name="Preview Image"),
    "LoadImage": NodeDef(
        required={"image": ([ANY_FILE], {"image_upload": True})},
        return_types=("IMAGE", "MASK"), return_names=("IMAGE", "MASK"), display_name="Load Image",
        function=lambda inputs: _load_example_image()),
    "Note": NodeDef(required={"text": ("STRING", {"multiline": True})}, frontend_only=True, display_name="Note"),
}


def _load_example_image() -> tuple[Any, Any]:
    """What LoadImage gives for any file name here: one deterministic 512x512 picture and its mask."""
    import numpy as np
    import torch

    from api_client.standin import render_picture

    pixels = torch.from_numpy(render_picture(11, 0, 512, 512).astype(np.float32) / np.float32(255.0))
    return pixels[None], torch.zeros((1, 512, 512))


def pack_defs(pack: Any) -> dict[str, NodeDef]:
    """The pack's nodes and the core table, by node id."""
    defs = dict(CORE_NODES)
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        types = cls.INPUT_TYPES()
        defs[node_id] = NodeDef(
            required=dict(types.get("required", {})), optional=dict(types.get("optional", {})),
            hidden=dict(types.get("hidden", {})), display_name=pack.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id),
            return_types=tuple(cls.RETURN_TYPES), return_names=tuple(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            function=lambda inputs, cls=cls: getattr(cls(), cls.FUNCTION)(**inputs))
    return defs


def _options(spec: tuple) -> dict[str, Any]:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def socket_type(spec: tuple) -> str:
    """The type name a link to this input carries (choices are COMBO)."""
    return "COMBO" if isinstance(spec[0], (list, tuple)) else spec[0]


def is_widget(spec: tuple) -> bool:
    return socket_type(spec) in WIDGET_TYPES and not _options(spec).get("forceInput")


def widget_slots(node_def: NodeDef) -> list[tuple[str, tuple | None, str]]:
    """(input name, spec, kind) for every entry of widgets_values, kind being value/control/upload."""
    slots: list[tuple[str, tuple | None, str]] = []
    for name, spec in node_def.inputs.items():
        if not is_widget(spec):
            continue
        slots.append((name, spec, "value"))
        if _options(spec).get("control_after_generate"):
            slots.append((name, None, "control"))
        if _options(spec).get("image_upload"):
            slots.append((name, None, "upload"))
    return slots


def check_value(where: str, spec: tuple, value: Any) -> list[str]:
    """Problems with ``value`` for the widget ``spec`` (type, range, step, choices)."""
    kind, options = socket_type(spec), _options(spec)
    if kind == "COMBO":
        choices = list(spec[0])
        if choices == [ANY_FILE]:
            return [] if isinstance(value, str) and value else [f"{where}: {value!r} is not a file name"]
        return [] if value in choices else [f"{where}: {value!r} is not one of {choices}"]
    if kind == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: {value!r} is not true/false"]
    if kind == "STRING":
        return [] if isinstance(value, str) else [f"{where}: {value!r} is not a string"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return [f"{where}: {value!r} is not a number"]
    if kind == "INT" and not isinstance(value, int):
        return [f"{where}: {value!r} is not a whole number"]
    low, high = options.get("min", -math.inf), options.get("max", math.inf)
    if not low <= value <= high:
        return [f"{where}: {value!r} is outside {low}..{high}"]
    step = options.get("step")
    if kind == "INT" and step and (value - (options.get("min") or 0)) % step:
        return [f"{where}: {value!r} is not on a step of {step}"]
    return []


def _input_entry_problems(label: str, node: dict, node_def: NodeDef, links: dict[int, list]) -> list[str]:
    problems = []
    for slot, entry in enumerate(node.get("inputs") or []):
        name, spec = entry.get("name"), node_def.inputs.get(entry.get("name"))
        where = f"{label} input {name!r}"
        if spec is None:
            problems.append(f"{where}: the node has no such input")
            continue
        if "widget" in entry:
            if entry["widget"] != {"name": name} or not is_widget(spec):
                problems.append(f"{where}: only a widget input may carry widget {entry['widget']}")
        elif is_widget(spec):
            problems.append(f"{where}: a widget shown as a socket needs \"widget\": {{\"name\": {name!r}}}")
        if entry.get("type") != socket_type(spec):
            problems.append(f"{where}: type {entry.get('type')!r}, the node declares {socket_type(spec)!r}")
        link_id = entry.get("link")
        if link_id is not None:
            link = links.get(link_id)
            if link is None or (link[3], link[4]) != (node["id"], slot):
                problems.append(f"{where}: link {link_id} does not end at this slot")
    linked = {e["name"] for e in node.get("inputs") or [] if e.get("link") is not None}
    for name, spec in node_def.required.items():
        if not is_widget(spec) and name not in linked:
            problems.append(f"{label}: required input {name!r} is not connected")
    return problems


def _output_entry_problems(label: str, node: dict, node_def: NodeDef, links: dict[int, list]) -> list[str]:
    problems = []
    outputs = node.get("outputs") or []
    if len(outputs) != len(node_def.return_types):
        problems.append(f"{label}: {len(outputs)} outputs saved, the node has {len(node_def.return_types)}")
    for slot, entry in enumerate(outputs[: len(node_def.return_types)]):
        expected = (node_def.return_names[slot], node_def.return_types[slot])
        if (entry.get("name"), entry.get("type")) != expected:
            problems.append(f"{label} output {slot}: {entry.get('name')}/{entry.get('type')}, expected {expected}")
        for link_id in entry.get("links") or []:
            link = links.get(link_id)
            if link is None or (link[1], link[2]) != (node["id"], slot):
                problems.append(f"{label} output {slot}: link {link_id} does not start here")
    return problems


def check_ui_workflow(doc: dict, defs: dict[str, NodeDef]) -> list[str]:
    """Every problem found in a UI-format workflow; empty when it matches the node definitions."""
    problems: list[str] = []
    nodes = {node["id"]: node for node in doc["nodes"]}
    links = {link[0]: link for link in doc["links"]}
    if len(nodes) != len(doc["nodes"]) or len(links) != len(doc["links"]):
        problems.append("node or link ids are not unique")
    if doc.get("version") != 0.4 or not {"groups", "config", "extra"} <= set(doc):
        problems.append("not the frontend's saved format (version 0.4 with groups, config, extra)")
    if doc.get("last_node_id", 0) < max(nodes) or doc.get("last_link_id", 0) < max(links, default=0):
        problems.append("last_node_id/last_link_id are lower than ids in use")
    for node in doc["nodes"]:
        label = f"node {node['id']} ({node['type']})"
        node_def = defs.get(node["type"])
        if node_def is None:
            problems.append(f"{label}: unknown node type")
            continue
        for key in ("pos", "size", "flags", "order", "mode", "properties", "widgets_values"):
            if key not in node:
                problems.append(f"{label}: no {key!r}")
        if node.get("properties", {}).get("Node name for S&R") not in (None, node["type"]):
            problems.append(f"{label}: 'Node name for S&R' is not the node type")
        slots, values = widget_slots(node_def), node.get("widgets_values", [])
        if len(values) != len(slots):
            names = [name if kind == "value" else f"{name}:{kind}" for name, _, kind in slots]
            problems.append(f"{label}: {len(values)} widget values, the node has {len(slots)} slots {names}")
        for (name, spec, kind), value in zip(slots, values, strict=False):
            where = f"{label} widget {name!r}" + ("" if kind == "value" else f" ({kind})")
            if kind == "control" and value not in CONTROL_VALUES:
                problems.append(f"{where}: {value!r} is not one of {CONTROL_VALUES}")
            elif kind == "upload" and value != "image":
                problems.append(f"{where}: {value!r} is not 'image'")
            elif kind == "value":
                problems.extend(check_value(where, spec, value))
        problems.extend(_input_entry_problems(label, node, node_def, links))
        problems.extend(_output_entry_problems(label, node, node_def, links))
    for link_id, from_id, from_slot, to_id, to_slot, link_type in doc["links"]:
        source, target = nodes.get(from_id), nodes.get(to_id)
        if source is None or target is None or source["type"] not in defs or target["type"] not in defs:
            problems.append(f"link {link_id}: joins unknown nodes")
            continue
        out_types = defs[source["type"]].return_types
        target_inputs = target.get("inputs") or []
        if from_slot >= len(out_types) or to_slot >= len(target_inputs):
            problems.append(f"link {link_id}: slot out of range")
            continue
        in_spec = defs[target["type"]].inputs.get(target_inputs[to_slot]["name"])
        in_type = socket_type(in_spec) if in_spec else None
        if not link_type == out_types[from_slot] == in_type:
            problems.append(
                f"link {link_id}: carries {link_type}, output is {out_types[from_slot]}, input is {in_type}")
        if source.get("order", 0) >= target.get("order", 0):
            problems.append(f"link {link_id}: node {from_id} is not ordered before node {to_id}")
    return problems


def ui_to_api(doc: dict, defs: dict[str, NodeDef]) -> dict[str, Any]:
    """The API-format prompt the frontend would queue for this UI workflow."""
    links = {link[0]: link for link in doc["links"]}
    prompt: dict[str, Any] = {}
    for node in sorted(doc["nodes"], key=lambda n: n["id"]):
        node_def = defs[node["type"]]
        if node_def.frontend_only or node.get("mode", 0) != 0:
            continue
        linked = {e["name"]: links[e["link"]] for e in node.get("inputs") or [] if e.get("link") is not None}
        inputs: dict[str, Any] = {}
        for (name, _, kind), value in zip(widget_slots(node_def), node["widgets_values"], strict=True):
            if kind == "value" and name not in linked:
                inputs[name] = value
        for name in node_def.inputs:
            if name in linked:
                inputs[name] = [str(linked[name][1]), linked[name][2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node_def.display_name)}}
    return prompt


def check_api_prompt(prompt: dict[str, Any], defs: dict[str, NodeDef]) -> list[str]:
    """Every problem found in an API-format prompt (the body's "prompt")."""
    problems: list[str] = []
    for node_id, node in prompt.items():
        label = f"node {node_id} ({node.get('class_type')})"
        node_def = defs.get(node.get("class_type"))
        if node_def is None or node_def.frontend_only:
            problems.append(f"{label}: not a node the server knows")
            continue
        inputs = node.get("inputs", {})
        for name in sorted(set(inputs) - set(node_def.inputs)):
            problems.append(f"{label}: unknown input {name!r}")
        for name in node_def.required:
            if name not in inputs:
                problems.append(f"{label}: required input {name!r} missing")
        for name, value in inputs.items():
            spec = node_def.inputs.get(name)
            if spec is None:
                continue
            if isinstance(value, list):
                source_id, slot = value
                source = prompt.get(source_id)
                source_def = defs.get(source.get("class_type")) if source else None
                if source_def is None or slot >= len(source_def.return_types):
                    problems.append(f"{label} input {name!r}: link to a missing node or output {value}")
                elif source_def.return_types[slot] != socket_type(spec):
                    problems.append(f"{label} input {name!r}: gets {source_def.return_types[slot]}, "
                                    f"expects {socket_type(spec)}")
            elif not is_widget(spec):
                problems.append(f"{label} input {name!r}: a {socket_type(spec)} socket needs a link")
            else:
                problems.extend(check_value(f"{label} input {name!r}", spec, value))
    return problems


def run_api_prompt(prompt: dict[str, Any], defs: dict[str, NodeDef]) -> dict[str, Any]:
    """Run a prompt the way ComfyUI's executor does for these nodes; returns each node's output.

    The pack's nodes run for real; the core output nodes check they got an IMAGE batch and
    hand it back as their output, so callers can look at the pictures.
    """
    results: dict[str, Any] = {}

    def run(node_id: str) -> Any:
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        node_def = defs[node["class_type"]]
        inputs = {}
        for name, value in node["inputs"].items():
            inputs[name] = run(value[0])[value[1]] if isinstance(value, list) else value
        if node_def.function is None:  # SaveImage / PreviewImage: keep the pictures they were given
            images = inputs["images"]
            assert images.ndim == 4 and images.shape[-1] == 3, images.shape
            results[node_id] = (images,)
        else:
            inputs.update({name: node_id for name, kind in node_def.hidden.items() if kind == "UNIQUE_ID"})
            output = node_def.function(inputs)
            results[node_id] = output["result"] if isinstance(output, dict) else output
        return results[node_id]

    for node_id in prompt:
        run(node_id)
    return results
