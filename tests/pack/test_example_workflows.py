"""Every shipped example workflow matches the node definitions, and runs against the stand-in."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from PIL import Image
from workflow_check import check_api_prompt, check_ui_workflow, pack_defs, run_api_prompt, ui_to_api

FOLDER = ROOT / "example_workflows"
UI_FILES = sorted(FOLDER.glob("*.json"))
API_FILES = sorted((FOLDER / "api").glob("*.api.json"))


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def defs(pack):
    return pack_defs(pack)


def test_the_three_examples_are_shipped_with_an_api_version_of_text_to_image():
    assert {p.stem for p in UI_FILES} >= {"text_to_image", "two_chained_loras", "shared_seed_lora_scales"}
    assert FOLDER / "api" / "text_to_image.api.json" in API_FILES


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_matches_the_node_definitions(path, defs):
    assert check_ui_workflow(_load(path), defs) == []


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_has_a_jpeg_thumbnail_of_the_same_name(path):
    thumbnail = path.with_suffix(".jpg")
    with Image.open(thumbnail) as picture:
        assert picture.format == "JPEG" and picture.width >= 256 and picture.height >= 144


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_api_workflow_matches_the_node_definitions(path, defs):
    body = _load(path)
    assert set(body) == {"prompt"}, "the body for POST /prompt"
    assert check_api_prompt(body["prompt"], defs) == []


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_api_workflow_is_the_ui_workflow_of_the_same_name(path, defs):
    ui = FOLDER / path.name.replace(".api.json", ".json")
    assert _load(path)["prompt"] == ui_to_api(_load(ui), defs)


def test_example_has_shared_seed_converted_on_both_generate_nodes():
    doc = _load(FOLDER / "shared_seed_lora_scales.json")
    seed_node = next(n for n in doc["nodes"] if n["type"] == "Flux2LoraSeed")
    generates = [n for n in doc["nodes"] if n["type"] == "Flux2LoraGenerate"]
    assert len(generates) == 2 and len(seed_node["outputs"][0]["links"]) == 2
    for node in generates:
        seed_input = next(e for e in node["inputs"] if e["name"] == "seed")
        assert seed_input["widget"] == {"name": "seed"} and seed_input["link"] in seed_node["outputs"][0]["links"]
        assert node["widgets_values"][2] in ("fixed", "increment", "decrement", "randomize")


def test_checker_catches_a_missing_control_value_and_a_wrong_link_type(defs):
    doc = _load(FOLDER / "text_to_image.json")
    generate = next(n for n in doc["nodes"] if n["type"] == "Flux2LoraGenerate")
    del generate["widgets_values"][2]
    doc["links"][0][5] = "FLOAT"
    slots = len(generate["widgets_values"]) + 1
    problems = "\n".join(check_ui_workflow(doc, defs))
    assert f"{slots - 1} widget values, the node has {slots} slots" in problems
    assert "carries FLOAT" in problems


@pytest.mark.parametrize("path", UI_FILES + API_FILES, ids=lambda p: p.name)
def test_workflow_runs_against_the_stand_in(path, defs, pack, standin):
    doc = _load(path)
    prompt = doc["prompt"] if "prompt" in doc else ui_to_api(doc, defs)
    results = run_api_prompt(prompt, defs)
    generating = {"Flux2LoraGenerate", "Flux2LoraEdit"}
    generated = [results[i][0] for i, node in prompt.items() if node["class_type"] in generating]
    assert generated and all(images.shape[0] == 1 for images in generated)
    assert standin.post_count == len(generated)
