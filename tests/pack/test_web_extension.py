"""The frontend extension: its JS logic (Node's test runner), its imports as ComfyUI serves them, help pages."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urljoin

import pytest
from conftest import ROOT, generate

WEB = ROOT / "web"
# ComfyUI serves WEB_DIRECTORY at /extensions/<pack folder>/ and its own modules at /scripts/.
SERVED = "http://127.0.0.1:8188/extensions/ComfyUI-Flux2-LoRA/"
COMFY_MODULES = {"http://127.0.0.1:8188/scripts/app.js", "http://127.0.0.1:8188/scripts/api.js"}
IMPORT = re.compile(r"""^\s*import\s[^'"]*?from\s+["']([^"']+)["']""", re.MULTILINE)
# A node another branch adds; its help page ships with this one.
EXTRA_HELP_PAGES = {"Flux2LoraEdit"}


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_js_logic_passes_nodes_own_test_runner():
    done = subprocess.run(["node", "--test", "tests/js/"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^# pass [1-9]", done.stdout, re.MULTILINE) and "# fail 0" in done.stdout


@pytest.mark.parametrize("script", sorted(WEB.rglob("*.js")), ids=lambda p: p.name)
def test_every_import_resolves_where_comfyui_serves_the_file(script):
    url = urljoin(SERVED, script.relative_to(WEB).as_posix())
    imports = IMPORT.findall(script.read_text(encoding="utf-8"))
    for specifier in imports:
        target = urljoin(url, specifier)
        if target.startswith(SERVED):
            assert (WEB / target.removeprefix(SERVED)).is_file(), f"{script.name}: {specifier} is not in web/"
        else:
            assert target in COMFY_MODULES, f"{script.name}: {specifier} resolves to {target}"


def test_only_the_entry_registers_an_extension_and_every_module_has_its_tests():
    # ComfyUI imports every .js file under web/ as an extension: all but the entry only export.
    scripts = sorted((WEB / "js").glob("*.js"))
    assert [p.name for p in scripts if "registerExtension" in p.read_text(encoding="utf-8")] == ["flux2_lora.js"]
    assert [p.name for p in scripts if not (ROOT / "tests" / "js" / f"{p.stem}.test.mjs").is_file()] == []


def test_no_test_or_build_files_under_web():
    # ComfyUI loads every .js file under web/ as an extension in the browser.
    assert not [p for p in WEB.rglob("*") if re.search(r"\.(test|spec)\.|node_modules|\.ts$", p.name)]


def test_help_page_for_every_node(pack):
    missing = [n for n in [*pack.NODE_CLASS_MAPPINGS, *EXTRA_HELP_PAGES] if not (WEB / "docs" / f"{n}.md").is_file()]
    assert missing == [], "write web/docs/<node id>.md for these"


def test_help_pages_name_every_input_and_output(pack):
    unmentioned = []
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        page = (WEB / "docs" / f"{node_id}.md").read_text(encoding="utf-8")
        types = cls.INPUT_TYPES()
        for name in [*types.get("required", {}), *types.get("optional", {}), *cls.RETURN_NAMES]:
            if f"`{name}`" not in page:
                unmentioned.append(f"web/docs/{node_id}.md: `{name}`")
    assert unmentioned == []


def test_image_size_node_gives_the_frontend_its_preset_pixels(pack, api):
    from importlib import import_module

    limits = import_module(f"{api.__name__}.api.limits")
    options = pack.NODE_CLASS_MAPPINGS["Flux2LoraImageSize"].INPUT_TYPES()["required"]["preset"][1]
    assert options["flux2_pixels"] == {name: list(size) for name, size in limits.PRESET_PIXELS.items()}


def test_each_run_has_its_own_id_so_a_cached_result_is_not_counted_twice(pack, standin):
    first, second = generate(pack, use_cache=False)["ui"], generate(pack, use_cache=False)["ui"]
    assert first["flux2_credits"] == second["flux2_credits"]
    assert len(first["flux2_run"][0]) == 32 and first["flux2_run"] != second["flux2_run"]
