"""A registry install in the real ComfyUI: the archive of the real `comfy node pack`, unpacked into custom_nodes.

The archive is built as tests/pack/test_registry_archive.py builds it (registry_archive.py: real comfy-cli,
.comfyignore applied), unpacked under a folder name with dashes, as users get it, and ComfyUI started on it
alone: every node is in /object_info and a text-to-image prompt runs against the stand-in.
"""

from __future__ import annotations

import zipfile

import pytest
from conftest import TEST_KEY
from contract import CONTRACT
from registry_archive import build_archive, comfy_cli_missing

from .conftest import comfyui_install, missing_prerequisite
from .harness import PACK_NAME, ComfyUIProcess
from .workflows import text_to_image_prompt

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(tmp_path_factory, standin_process):
    comfy_dir, python = comfyui_install()
    missing = comfy_cli_missing()
    if missing:
        missing_prerequisite(missing)
    work = tmp_path_factory.mktemp("registry-install")
    archive = build_archive(work)
    process = ComfyUIProcess(comfy_dir, python, work / "comfyui", standin_process, TEST_KEY)
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(process.pack_dir)  # start() copies this tree in only when the folder is absent
    assert not (process.pack_dir / "tests").exists()
    process.start()
    yield process
    process.stop()


def test_the_unpacked_archive_loads_without_error(installed):
    assert PACK_NAME.count("-") >= 2 and installed.pack_dir.name == PACK_NAME
    pack_lines = [line for line in installed.log_text().splitlines() if PACK_NAME in line]
    assert any(line.strip().endswith(f"custom_nodes/{PACK_NAME}") and "seconds:" in line for line in pack_lines)
    assert [line for line in pack_lines if "IMPORT FAILED" in line or "Cannot import" in line] == []


def test_every_node_of_the_unpacked_archive_is_in_object_info(installed):
    info = installed.object_info()
    for node_id, spec in CONTRACT.items():
        assert info[node_id]["display_name"] == spec["display"]
        assert info[node_id]["python_module"] == f"custom_nodes.{PACK_NAME}"


def test_the_unpacked_archive_generates_a_picture(installed, standin):
    entry = installed.post_prompt(text_to_image_prompt())
    assert standin.post_count == 1
    assert installed.output_files(entry)
