"""The README's pictures: made by scripts/make_screenshots.py (run by hand, never by the suite), kept in the repo.

Here only: the script loads and answers --help without ComfyUI or a browser, and every picture the README
shows from docs/images/ (and each one the script makes) is there, a PNG at least 1200 px wide, all small.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest
from conftest import ROOT
from PIL import Image

SCRIPT = ROOT / "scripts" / "make_screenshots.py"
IMAGES = ROOT / "docs" / "images"
MADE = ("overview.png", "generate.png", "image_size.png", "adapter.png")
MIN_WIDTH = 1200
MAX_TOTAL_BYTES = 600_000  # 372 KB when made (docs/images is not in the registry archive: .comfyignore)


def _readme_images() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) + re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", text)
    return sorted({name.split("#")[0] for name in found if name.startswith(("docs/images/", "./docs/images/"))})


def test_the_script_imports_without_side_effects():
    spec = importlib.util.spec_from_file_location("make_screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main) and module.OUT == IMAGES


def test_the_script_answers_help_without_comfyui():
    env = {"PATH": "/usr/bin:/bin"}
    answer = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert "--out" in answer.stdout and "COMFYUI_DIR" in answer.stdout


@pytest.mark.parametrize("name", sorted({*MADE, *(path.rsplit("/", 1)[1] for path in _readme_images())}))
def test_each_picture_is_a_png_at_least_1200_px_wide(name):
    path = IMAGES / name
    assert path.is_file(), f"{path} is missing: run scripts/make_screenshots.py"
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.width >= MIN_WIDTH, (name, picture.format, picture.size)


def test_the_readme_pictures_are_small_together():
    total = sum(path.stat().st_size for path in IMAGES.glob("*.png"))
    assert total <= MAX_TOTAL_BYTES, f"docs/images holds {total} bytes of PNG"
