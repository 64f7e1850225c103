"""The pack inside a real ComfyUI process: import, node definitions, workflows, key, cancel, cache, routes."""

from __future__ import annotations

import pytest
from test_contract import CONTRACT, DEFAULTS, RANGES

from .harness import PACK_NAME

pytestmark = pytest.mark.e2e


def test_pack_imports_without_error(comfy):
    log = comfy.log_text()
    pack_lines = [line for line in log.splitlines() if PACK_NAME in line]
    assert any(line.strip().endswith(f"custom_nodes/{PACK_NAME}") and "seconds:" in line for line in pack_lines), (
        f"no import time line for the pack in ComfyUI's log:\n{log[-3000:]}")
    failures = [line for line in pack_lines if "IMPORT FAILED" in line or "Cannot import" in line]
    assert failures == []
    assert "Traceback" not in "\n".join(pack_lines)


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.object_info()


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_object_info_has_the_contract_inputs_in_order(object_info, node_id):
    info, spec = object_info[node_id], CONTRACT[node_id]
    assert info["display_name"] == spec["display"]
    assert info["python_module"] == f"custom_nodes.{PACK_NAME}"
    for section in ("required", "optional"):
        declared = info["input"].get(section, {})
        # input_order is what the frontend maps saved widget values by.
        assert info["input_order"].get(section, []) == [name for name, _ in spec[section]], section
        got = [(name, declared[name][0]) for name in info["input_order"].get(section, [])]
        assert got == spec[section], section
    assert tuple(info["output"]) == spec["outputs"]
    assert len(info["output_name"]) == len(info["output_tooltips"]) == len(spec["outputs"])


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_object_info_has_a_tooltip_on_every_input(object_info, node_id):
    inputs = object_info[node_id]["input"]
    for section in ("required", "optional"):
        for name, value in inputs.get(section, {}).items():
            assert len(value) == 2 and value[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert len(object_info[node_id]["description"]) > 40


@pytest.mark.parametrize(("node_input", "expected"), list(RANGES.items()))
def test_object_info_ranges_and_defaults(object_info, node_input, expected):
    node_id, name = node_input
    options = object_info[node_id]["input"]["required"][name][1]
    low, high, default = expected
    assert (options["min"], options["max"]) == (low, high)
    if default is not None:
        assert options["default"] == default


@pytest.mark.parametrize(("node_input", "default"), list(DEFAULTS.items()))
def test_object_info_choice_and_boolean_defaults(object_info, node_input, default):
    node_id, name = node_input
    assert object_info[node_id]["input"]["required"][name][1]["default"] == default
