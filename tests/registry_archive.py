"""The archive a Comfy Registry install downloads, built as `comfy node pack` builds it: with the real comfy-cli.

comfy-cli (1.23.0, comfy_cli/file_utils.py ``zip_files``) zips the files git tracks, minus the patterns of
``.comfyignore`` (gitwildmatch), plus whatever ``[tool.comfy] includes`` in pyproject.toml names. To pack this
tree as it is now (edits and new files not yet committed included) without writing into it, the files a commit
would hold (tracked, and untracked but not ignored) are copied into a fresh git repository, where
``comfy node pack`` runs with telemetry and the update check off and a throw-away HOME: it connects nowhere
(checked with strace: no inet connect).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMFY_CLI = [sys.executable, "-m", "comfy_cli"]


def comfy_cli_missing() -> str | None:
    """Why the real comfy-cli cannot run here (None: it can)."""
    if shutil.which("git") is None:
        return "git is not installed"
    try:
        import comfy_cli  # noqa: F401
    except ImportError:
        return "comfy-cli is not installed (pip install -r requirements-test.txt)"
    return None


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        check=True, capture_output=True).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


def build_archive(workdir: Path) -> Path:
    """``comfy node pack`` run on a copy of this tree in ``workdir``; returns the node.zip it made."""
    clone = workdir / "clone"
    for name in repository_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True)
    home = workdir / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "DO_NOT_TRACK": "1", "COMFY_NO_TELEMETRY": "1", "COMFY_NO_UPDATE_CHECK": "1"}
    answer = subprocess.run([*COMFY_CLI, "--skip-prompt", "--no-enable-telemetry", "node", "pack"],
                            cwd=clone, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=300)
    archive = clone / "node.zip"
    if answer.returncode != 0 or not archive.is_file():
        raise AssertionError(f"comfy node pack failed ({answer.returncode}):\n{answer.stdout}\n{answer.stderr}")
    return archive


def archive_names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as opened:
        return sorted(info.filename for info in opened.infolist() if not info.is_dir())
