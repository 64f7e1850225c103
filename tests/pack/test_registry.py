"""The Comfy Registry's [tool.comfy] section: publisher, display name and an icon that is in the repository."""

from __future__ import annotations

import tomllib
from conftest import ROOT
from PIL import Image


def test_tool_comfy_names_publisher_display_name_and_an_icon_shipped_in_the_repo():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    comfy = pyproject["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    repository = pyproject["project"]["urls"]["Repository"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    assert comfy["Icon"].startswith(prefix)
    with Image.open(ROOT / comfy["Icon"].removeprefix(prefix)) as icon:
        assert icon.format == "PNG" and icon.width == icon.height >= 128
