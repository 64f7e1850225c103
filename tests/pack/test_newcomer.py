"""A newcomer's first ten minutes: the README's first commands, the demo, the license, the docs it points to."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import tomllib
from conftest import ROOT

from api_client.standin import faults

README = (ROOT / "README.md").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement_lines(name: str) -> list[str]:
    lines = []
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            lines.append(line)
    return lines


# -- set-up in two commands --------------------------------------------------------------------------------

def test_readme_opens_with_make_demo_and_make_test():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert first_block and README.index(first_block.group(0)) < README.index("## Install into ComfyUI")
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert "make demo" in commands and "make test" in commands


def test_makefile_targets_set_up_their_own_venv_with_a_cpu_torch():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo:", "test:"):
        assert re.search(rf"^{target} \$\(VENV\)/\.\w+-ready", makefile, re.M), target
    assert "-m venv $(VENV)" in makefile
    assert 'import torch" 2>/dev/null ||' in makefile  # only when none is importable
    assert "TORCH_INDEX ?= https://download.pytorch.org/whl/cpu" in makefile
    assert "--extra-index-url $(TORCH_INDEX)" in makefile
    assert "-r requirements-test.txt" in makefile and "-r requirements.txt" in makefile
    # The same pinned torch and CPU index in the README's plain pip commands.
    spec = re.search(r"^TORCH_SPEC \?= (\S+)$", makefile, re.M).group(1)
    assert f"pip install {spec} --extra-index-url https://download.pytorch.org/whl/cpu" in README


def test_make_dry_run_plans_venv_requirements_then_the_command(tmp_path):
    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    # Run as a user would, not as a sub-make of a `make test` that runs this suite.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "test", f"VENV={venv}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    plan = out.stdout
    assert plan.index("-m venv") < plan.index("-r requirements.txt") < plan.index("-r requirements-test.txt")
    assert plan.rstrip().endswith("-m pytest -q")


def test_ci_runs_the_readmes_commands_and_its_torch_comment_is_true():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r'^run_make\(\) \{ make --no-print-directory "VENV=\$venv" "\$@"; \}$', ci, re.M)
    for command in ("setup", "lint", "test", "demo"):
        assert re.search(rf"^run_make {command}\b", ci, re.M), command
    assert "python -m pytest" not in ci and "pip install" not in ci  # one way to set up and test: make's
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    spec = re.search(r"^TORCH_SPEC \?= (\S+)$", makefile, re.M).group(1)
    assert f"installs {spec} with PyTorch's CPU wheel index" in ci


# -- license and packaging metadata ------------------------------------------------------------------------

def test_license_file_is_the_license_pyproject_declares():
    declared = PYPROJECT["project"]["license"]
    assert declared == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text


def test_one_list_of_requirements_each():
    # Runtime: requirements.txt and pyproject's dependencies say the same.
    assert _requirement_lines("requirements.txt") == PYPROJECT["project"]["dependencies"]
    # Tests: requirements-test.txt is the only list (no test extra to disagree with it).
    assert "test" not in PYPROJECT["project"].get("optional-dependencies", {})
    test_lines = _requirement_lines("requirements-test.txt")
    assert test_lines[0] == "-r requirements.txt"
    assert not any(line.startswith("torch") for line in test_lines)  # ComfyUI's torch is never replaced


def test_registry_declares_the_oldest_comfyui_in_its_own_format():
    spec = PYPROJECT["tool"]["comfy"]["requires-comfyui"]
    # comfy-cli's rule: [operator]major.minor.patch, comma-separated parts.
    part = r"(==|>=|<=|!=|~=|>|<|<>|=)?\s*\d+\.\d+\.\d+(-[a-zA-Z0-9]+)?"
    assert all(re.fullmatch(part, p.strip()) for p in spec.split(","))
    assert spec.removeprefix(">=") in README


# -- the demo ----------------------------------------------------------------------------------------------

def _demo(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "demo.py"), "--out", str(tmp_path / "out"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240)


def test_demo_bad_argument_is_the_packs_one_line_message(tmp_path):
    out = _demo("--num-images", "17", tmp_path=tmp_path)
    assert out.returncode == 2
    assert out.stderr == "demo: num_images: must be a whole number from 1 to 16; got 17.\n"
    assert "Traceback" not in out.stdout + out.stderr


def test_demo_says_credits_are_pretend_and_why_two_seeds(tmp_path):
    out = _demo(tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "6 pictures from 2 requests (4 + 2): the API makes at most 4 per request" in text
    assert "seeds [42, 43]" in text
    assert "(pretend: the stand-in's made-up price; nothing was billed)" in text
    assert "second run with the same inputs: from cache, 0 credits" in text
    assert len(list((tmp_path / "out").glob("flux2_lora_*.png"))) == 6


# -- the README and the stand-in's documentation -----------------------------------------------------------

def test_readme_example_table_lists_every_shipped_workflow():
    shipped = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))
    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", README, re.M)
    assert shipped and sorted(set(listed) & set(shipped)) == shipped


def test_readme_tests_section_uses_a_virtual_environment():
    section = README[README.index("## Tests"):]
    section = section[:section.index("\n## ", 4)]
    assert "python -m venv .venv" in section and "make test" in section


FAULTS_DOC = ROOT / "api_client" / "standin" / "FAULTS.md"


def test_readme_points_to_the_fault_documentation_which_exists():
    assert "api_client/standin/FAULTS.md" in README and FAULTS_DOC.is_file()


def test_fault_documentation_covers_the_body_every_mode_and_an_example():
    doc = FAULTS_DOC.read_text(encoding="utf-8")
    assert "POST /_standin/faults" in doc and '{"post": [<fault>, ...], "file": [<fault>, ...]}' in doc
    post_at, file_at, example_at = doc.index("(`post`)"), doc.index("(`file`)"), doc.index("### Example")
    sections = {"post": doc[post_at:file_at], "file": doc[file_at:example_at]}
    for kind, keys in (("post", faults.POST_KEYS), ("file", faults.FILE_KEYS)):
        section = sections[kind]
        for key in keys:
            assert f"| `{key}` |" in section, f"{kind} fault {key!r} is not documented in FAULTS.md"
    for key in ("latency", "response_mode", "strict"):
        assert f'{{"{key}"' in doc
    assert "curl -s http://127.0.0.1:8765/_standin/faults" in doc  # an example
