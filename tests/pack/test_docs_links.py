"""The README and docs/ hold together: every relative link and picture resolves, every #anchor names a
heading (GitHub's rules), every docs page is reachable from the README, the README stays a three-minute
read, the code paths the pages name exist, and the README's test command is the one CI runs."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_LIMIT = 15_000

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
# [text](target) and ![alt](target), with an optional "title"; text may hold one level of brackets.
_MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_REF = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href|srcset)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (links there are examples, not links)."""
    text = _FENCE.sub("", text)
    return _CODE_SPAN.sub("", text)


def _targets(text: str) -> list[str]:
    prose = _prose(text)
    return [m.group(1) for m in _MD_LINK.finditer(prose)] + [m.group(1) for m in _HTML_REF.finditer(prose)]


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text)                          # inline HTML tags
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)                  # emphasis markers
    text = text.strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 suffixes for repeated ones."""
    seen: dict[str, int] = {}
    found = set()
    for match in _HEADING.finditer(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = github_slug(match.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        found.add(slug)
    return found


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- the checker itself ------------------------------------------------------------------------------------

def test_github_slug_follows_githubs_rules():
    assert github_slug("Set the key from ComfyUI (no file editing, no restart)") == \
        "set-the-key-from-comfyui-no-file-editing-no-restart"
    assert github_slug("The pack's routes") == "the-packs-routes"
    assert github_slug("Scope `key`: every machine on one key") == "scope-key-every-machine-on-one-key"
    assert github_slug("Limits (from the official schema)") == "limits-from-the-official-schema"
    assert github_slug("`use_cache` and **Set-up**") == "use_cache-and-set-up"
    assert github_slug("Money in five lines") == "money-in-five-lines"


def test_link_finder_sees_markdown_and_html_but_not_code(tmp_path):
    text = ("[a](docs/a.md#x) ![b](docs/images/b.png \"t\") <img src=\"c.jpg\" width=\"9\">\n"
            "`[not](a/link.md)`\n```md\n[nor](this.md)\n```\n[ext](https://example.com/x)\n")
    assert _targets(text) == ["docs/a.md#x", "docs/images/b.png", "https://example.com/x", "c.jpg"]


# -- the pages ---------------------------------------------------------------------------------------------

def test_readme_is_a_three_minute_read():
    size = len(README.read_text(encoding="utf-8"))
    assert size <= README_LIMIT, f"README.md has {size:,} characters; at most {README_LIMIT:,}: move depth to docs/"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_and_picture_resolves(page: Path):
    problems = []
    for target in _targets(page.read_text(encoding="utf-8")):
        if _is_external(target):
            continue
        path_part, _, anchor = target.partition("#")
        if path_part:
            dest = (page.parent / path_part).resolve()
            if ROOT.resolve() not in (dest, *dest.parents):
                problems.append(f"{target}: outside the repository")
                continue
            if not dest.exists():
                problems.append(f"{target}: no such file")
                continue
        else:
            dest = page
        if anchor:
            if dest.suffix != ".md":
                problems.append(f"{target}: an #anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{target}: {_rel(dest)} has no heading with the anchor #{anchor}")
    assert not problems, f"{_rel(page)}:\n  " + "\n  ".join(problems)


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _targets(README.read_text(encoding="utf-8"))
              if not _is_external(t) and t.partition("#")[0]}
    missing = [_rel(p) for p in DOCS if p.resolve() not in linked]
    assert DOCS and not missing, f"docs pages the README does not link: {missing}"


_CODE_PATH = re.compile(r"^(?:api_client|nodes|web|tests|bench|scripts|example_workflows|locales|docs)/[\w./-]*$")


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_code_paths_the_pages_name_exist(page: Path):
    # `api_client/money/core.py`, `nodes/routes/`, `tests/e2e/conftest.py`: a page that names a file
    # or folder of the repository names one that is there (a moved module must take its mentions along).
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    named = {m.group(2).rstrip(".") for m in _CODE_SPAN.finditer(text) if _CODE_PATH.match(m.group(2))}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{_rel(page)} names paths that do not exist: {missing}"


# -- the README's commands are CI's ------------------------------------------------------------------------

def _readme_make_commands() -> list[str]:
    commands = []
    for block in re.findall(r"^```(?:bash|sh)\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S):
        for line in block.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("make "):
                commands.append(command)
    return commands


def test_the_readmes_test_command_is_what_ci_runs():
    commands = _readme_make_commands()
    assert "make test" in commands and "make demo" in commands, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # .ci/run calls make through one helper, so `run_make test` is `make test` (with CI's venv).
    assert re.search(r'^run_make\(\) \{ make --no-print-directory "VENV=\$venv" "\$@"; \}$', ci, re.M)
    for command in ("test", "demo"):
        assert re.search(rf"^run_make {command}\b", ci, re.M), f"CI does not run the README's make {command}"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^test:.*\n\t(.+)$", makefile, re.M)
    assert recipe and recipe.group(1).strip() == "$(PY) -m pytest -q"
    # The README says what `make test` runs; the by-hand commands end with the same.
    readme = README.read_text(encoding="utf-8")
    assert "python -m pytest -q" in readme
