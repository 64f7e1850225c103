"""The public contract of DESIGN.md: node ids, display names, inputs in order, types, outputs."""

from __future__ import annotations

import pytest
from contract import CONTRACT, DEFAULTS, RANGES, check_range


def test_node_ids_and_display_names(pack):
    assert list(pack.NODE_CLASS_MAPPINGS) == list(CONTRACT)
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == {node: spec["display"] for node, spec in CONTRACT.items()}
    assert pack.WEB_DIRECTORY == "./web"


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_inputs_in_contract_order_and_types(pack, node_id):
    types = pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    spec = CONTRACT[node_id]
    for section in ("required", "optional"):
        got = [(name, value[0]) for name, value in types.get(section, {}).items()]
        assert got == spec[section], section


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_outputs_descriptions_and_tooltips(pack, node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.RETURN_TYPES == CONTRACT[node_id]["outputs"]
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert len(cls.DESCRIPTION) > 40 and cls.CATEGORY
    assert callable(getattr(cls(), cls.FUNCTION))
    types = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, value in types.get(section, {}).items():
            assert len(value) == 2 and value[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


@pytest.mark.parametrize(("node_input", "expected"), list(RANGES.items()))
def test_number_ranges_and_defaults(pack, node_input, expected):
    node_id, name = node_input
    options = pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"][name][1]
    check_range(options, expected)


@pytest.mark.parametrize(("node_input", "default"), list(DEFAULTS.items()))
def test_choice_and_boolean_defaults(pack, node_input, default):
    node_id, name = node_input
    assert pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"][name][1]["default"] == default


def test_seed_widgets_control_after_generate_and_size_step(pack):
    for node_id in ("Flux2LoraGenerate", "Flux2LoraSeed"):
        assert pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"]["seed"][1]["control_after_generate"]
    size = pack.NODE_CLASS_MAPPINGS["Flux2LoraImageSize"].INPUT_TYPES()["required"]
    assert size["width"][1]["step"] == size["height"][1]["step"] == 32
    assert pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"].INPUT_TYPES()["required"]["prompt"][1]["multiline"]


def test_limits_match_the_official_schema(api):
    """The widgets read the bundled schema; the bundled schema is the official one."""
    import json

    from conftest import ROOT

    official = ROOT.parent / "shared" / "api" / "flux-2-lora.openapi.json"
    bundled = ROOT / "api_client" / "api" / "schema" / "flux-2-lora.openapi.json"
    if official.exists():
        assert json.loads(official.read_text()) == json.loads(bundled.read_text())
    limits = api.LIMITS
    assert limits.images_per_request_max == 4 and limits.loras_max == 3
    assert limits.size_range == (512, 2048) and limits.steps_range == (4, 50)
    assert limits.size_default == "landscape_4_3"


def test_image_size_node_presets_and_custom(pack):
    from conftest import run_node

    assert run_node(pack, "Flux2LoraImageSize", preset="portrait_16_9", width=512, height=512) == (
        "portrait_16_9", 576, 1024)
    assert run_node(pack, "Flux2LoraImageSize", preset="custom", width=1536, height=640) == (
        {"width": 1536, "height": 640}, 1536, 640)


def test_adapters_chain_without_changing_earlier_outputs(pack):
    from conftest import run_node

    (first,) = run_node(pack, "Flux2LoraAdapter", path="owner/style-lora", scale=0.5)
    (second,) = run_node(pack, "Flux2LoraAdapter", path="https://example.com/b.safetensors", scale=1.25, loras=first)
    assert first == [{"path": "owner/style-lora", "scale": 0.5}]
    assert second == [{"path": "owner/style-lora", "scale": 0.5},
                      {"path": "https://example.com/b.safetensors", "scale": 1.25}]
    assert run_node(pack, "Flux2LoraSeed", seed=123) == (123,)
