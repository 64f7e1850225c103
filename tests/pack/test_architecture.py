"""The rules of docs/architecture.md, held over the whole tree (measured by scripts/arch_report.py)."""

from __future__ import annotations

import importlib.util
import re
import sys

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("arch_report", ROOT / "scripts" / "arch_report.py")
arch = importlib.util.module_from_spec(_spec)
sys.modules["arch_report"] = arch  # dataclasses look their module up
_spec.loader.exec_module(arch)
MODULES = arch.load_modules(ROOT)

# Lower layers never import higher ones (the folders of api_client/, from the bottom up).
LAYERS = ["errors", "amounts", "route_input", "settings", "runtime", "http", "api", "images", "lora", "money", "run",
          "panel"]


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "api_client" and len(parts) > 1 and parts[1] in LAYERS else None


def test_no_module_is_longer_than_the_limit():
    over = {m.name: m.lines for m in MODULES.values() if m.lines > arch.MAX_LINES}
    assert over == {}, f"split these (at most {arch.MAX_LINES} lines each): {over}"


def test_no_import_circles_among_the_packs_modules():
    assert arch.circles(MODULES) == []


def test_the_circle_finder_finds_a_circle_through_a_type_checking_import(tmp_path):
    # The rule above must be able to fail: a circle closed only by a TYPE_CHECKING import counts.
    (tmp_path / "api_client").mkdir()
    (tmp_path / "nodes").mkdir()
    for folder in ("api_client", "nodes"):
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "api_client" / "a.py").write_text("from .b import B\n")
    (tmp_path / "api_client" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nB = 1\n")
    found = arch.circles(arch.load_modules(tmp_path))
    assert found == [["api_client.a", "api_client.b"]]


def test_only_the_settings_module_reads_the_environment():
    readers = arch.report(MODULES)["env_readers"]
    assert set(readers) <= arch.ENV_READERS_ALLOWED, readers


def test_lower_layers_never_import_higher_ones():
    wrong = []
    for module in MODULES.values():
        mine = _layer(module.name)
        if mine is None:
            continue
        for other in module.imports:
            theirs = _layer(other)
            if theirs is not None and LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.append(f"{module.name} imports {other}")
    assert wrong == []


def test_api_client_imports_neither_torch_nor_comfyui():
    found = []
    for path in (ROOT / "api_client").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"\s*(import|from)\s+(torch|comfy|comfy_api|folder_paths|server|execution|nodes)\b", line):
                found.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert found == []


def test_only_the_entry_module_registers_a_frontend_extension():
    registering = sorted(p.name for p in (ROOT / "web" / "js").glob("*.js") if "registerExtension(" in p.read_text())
    assert registering == ["flux2_lora.js"]
