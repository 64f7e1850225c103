"""The pack loads as ComfyUI loads it, and keeps its layers apart."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

LOADER = textwrap.dedent("""
    import importlib.util, json, sys, threading, types, time
    sys.modules["nodes"] = foreign = types.ModuleType("nodes")   # ComfyUI's own nodes.py
    foreign.NODE_CLASS_MAPPINGS = {"KSampler": object}
    import socket
    def no_network(*a, **k):
        raise AssertionError("network use at import time")
    socket.socket.connect = no_network
    threads = threading.active_count()
    name = sys.argv[2]
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location(name, sys.argv[1] + "/__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    print(json.dumps({
        "nodes": sorted(module.NODE_CLASS_MAPPINGS),
        "web": module.WEB_DIRECTORY,
        "foreign_intact": sys.modules["nodes"] is foreign,
        "threads_started": threading.active_count() - threads,
        "seconds": time.perf_counter() - started,
        "requests_loaded": "requests" in sys.modules,
    }))
""")


def _load_in_a_fresh_process(name):
    done = subprocess.run([sys.executable, "-c", LOADER, str(ROOT), name], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", ["ComfyUI-Flux2-LoRA", "comfyui-flux2-lora_x_main", "/cn/ComfyUI-Flux2-LoRA"])
def test_loads_from_its_folder_under_a_dashed_name_beside_a_foreign_nodes_module(name):
    report = _load_in_a_fresh_process(name)
    assert report["nodes"] == ["Flux2LoraAdapter", "Flux2LoraEdit", "Flux2LoraGenerate", "Flux2LoraImageSize",
                              "Flux2LoraSeed"]
    assert report["foreign_intact"] and report["threads_started"] == 0
    assert (ROOT / "web").is_dir()


def test_importing_the_pack_leaves_the_http_client_for_the_first_run():
    # ComfyUI prints every pack's import time; requests and its dependencies load on first use.
    assert _load_in_a_fresh_process("ComfyUI-Flux2-LoRA")["requests_loaded"] is False


def _python_files(folder):
    return [p for p in (ROOT / folder).rglob("*.py")]


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.parametrize("folder", ["api_client", "nodes"])
def test_imports_of_the_pack_itself_are_relative(folder):
    for path in [*_python_files(folder), ROOT / "__init__.py"]:
        for module, level in _imports(path):
            if level == 0:
                top = module.split(".")[0]
                assert top not in {"nodes", "api_client", "web"}, f"{path}: absolute import of {module}"


def test_api_client_never_imports_torch_or_comfyui():
    banned = {"torch", "comfy", "folder_paths", "server", "nodes", "execution"}
    for path in _python_files("api_client"):
        for module, level in _imports(path):
            if level == 0:
                assert module.split(".")[0] not in banned, f"{path} imports {module}"


def test_requirements_leave_torch_to_comfyui():
    lines = (ROOT / "requirements.txt").read_text().lower().split()
    assert not any(line.startswith(("torch", "torchvision")) for line in lines)
    assert {"requests", "pillow", "numpy"} <= {line.split(">")[0].split("=")[0] for line in lines}
