"""What a Comfy Registry install ships: the archive of the real `comfy node pack`, trimmed by .comfyignore.

Built with the real comfy-cli (pinned in requirements-test.txt; registry_archive.py says how). Before the
trim the archive held tests/, bench/, scripts/ and .ci/ too (694 KB, 182 files on 8b65c12); the e2e side, the archive
unpacked into a real ComfyUI, is tests/e2e/test_registry_install.py.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest
from registry_archive import archive_names, build_archive, comfy_cli_missing, repository_files

# Top-level entries a user's install needs, and nothing else.
SHIPPED_FOLDERS = {"api_client", "nodes", "web", "locales", "example_workflows", "docs"}
SHIPPED_FILES = {"__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md"}
NEVER_SHIPPED = ("tests/", "bench/", "scripts/", ".ci/", "docs/images/", "demo.py", "Makefile",
                 "requirements-test.txt", ".gitignore", ".comfyignore", ".git/")
# The archive was 480 KB (105 files) after the trim (its biggest part: the example workflows' thumbnails, 177 KB).
MAX_BYTES = 600_000


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    missing = comfy_cli_missing()
    if missing:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {missing}", pytrace=False)
        pytest.skip(missing)
    return build_archive(tmp_path_factory.mktemp("registry-archive"))


@pytest.fixture(scope="module")
def names(archive):
    return archive_names(archive)


def test_the_archive_holds_only_what_a_user_needs(names):
    top = {PurePosixPath(name).parts[0] for name in names}
    assert top <= SHIPPED_FOLDERS | SHIPPED_FILES, sorted(top - SHIPPED_FOLDERS - SHIPPED_FILES)
    assert SHIPPED_FILES <= top
    assert [name for name in names if name.startswith(NEVER_SHIPPED)] == []


def test_the_archive_holds_every_file_of_the_pack_itself(names):
    for folder in ("api_client", "nodes", "web", "locales", "example_workflows"):
        in_tree = {name for name in repository_files() if name.startswith(f"{folder}/")}
        assert in_tree and in_tree <= set(names), (folder, sorted(in_tree - set(names))[:10])
    assert "nodes/__init__.py" in names and "api_client/standin/__main__.py" in names
    assert any(name.startswith("web/js/") and name.endswith(".js") for name in names)
    assert any(name.startswith("example_workflows/") and name.endswith(".json") for name in names)


def test_the_archive_is_small(archive):
    size = archive.stat().st_size
    print(f"registry archive: {size} bytes")
    assert size <= MAX_BYTES, f"the archive is {size} bytes (limit {MAX_BYTES}): what was added?"
