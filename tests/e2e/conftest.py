"""Fixtures for tests against a real ComfyUI process (and a real browser on its frontend).

Enable them by pointing the environment at a ComfyUI install:

    COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/python python -m pytest -q

Without them these tests are skipped, with that hint; under ``CI=true`` a missing
prerequisite fails instead, so CI cannot pass without running them.

Fixtures (session-scoped unless said otherwise; build on them):
- ``standin_process``: the stand-in as its own process (``StandInProcess``);
  ``standin`` (per test): the same, reset before the test (counters, faults, latency).
- ``comfy``: ComfyUI with the pinned frontend, the pack installed, pointed at the stand-in
  with ``TEST_KEY`` (``ComfyUIProcess``: ``.url``, ``.post_prompt()``, ``.wait()``,
  ``.interrupt()``, ``.restart()``, ``.log_text()``, ``.output_dir``, ...).
- ``comfy_factory``: ``comfy_factory(name, front_end_root=..., extra_args=..., env=...)``
  starts (once per name) another ComfyUI with its own base directory; all stop at the end.
- ``frontend_roots``: {"1.27.10": None (ComfyUI's pinned package), "1.58.1": folder}.
- ``browser`` (per module): headless Chromium driven by Playwright (``CHROMIUM`` env, default /usr/bin/chromium);
  ``page.ComfyPage(browser, comfy).open()`` is the frontend in a page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_KEY

from .harness import ComfyUIProcess, StandInProcess

ENABLE_HINT = ("set COMFYUI_DIR=/path/to/ComfyUI and COMFYUI_PYTHON=/path/to/its/python "
               "(e.g. from `../shared/comfyui/setup DEST`, or see docs/testing.md)")
PINNED_FRONTEND = "1.27.10"  # ComfyUI 0.3.64's requirements.txt pins comfyui-frontend-package==1.27.10
NEWEST_FRONTEND = "1.58.1"
FRONTEND_ENV = {NEWEST_FRONTEND: "COMFYUI_FRONTEND_1_58_1"}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_prerequisite(what: str) -> None:
    """Skip with how to enable; under CI=true fail, so a CI run never passes without these tests."""
    if in_ci():
        pytest.fail(f"CI=true but {what}", pytrace=False)
    pytest.skip(what)


def comfyui_install() -> tuple[Path, str]:
    """(COMFYUI_DIR, COMFYUI_PYTHON) from the environment, checked; skips or fails when absent."""
    comfy_dir, python = os.environ.get("COMFYUI_DIR", ""), os.environ.get("COMFYUI_PYTHON", "")
    if not comfy_dir or not python:
        missing_prerequisite(f"no ComfyUI given: {ENABLE_HINT}")
    if not (Path(comfy_dir) / "main.py").is_file():
        missing_prerequisite(f"COMFYUI_DIR={comfy_dir} has no main.py: {ENABLE_HINT}")
    if not (shutil.which(python) or Path(python).is_file()):
        missing_prerequisite(f"COMFYUI_PYTHON={python} is not a program: {ENABLE_HINT}")
    return Path(comfy_dir), python


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session's ComfyUI base directories, logs and screenshots go."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def standin_process(e2e_dir: Path) -> Iterator[StandInProcess]:
    comfyui_install()  # no stand-in process needed when the e2e tests are skipped
    process = StandInProcess(TEST_KEY, e2e_dir / "standin").start()
    yield process
    process.stop()


@pytest.fixture
def standin(standin_process: StandInProcess) -> Iterator[StandInProcess]:
    """The stand-in process, reset: no counts, faults or latency left from an earlier test.

    It runs in strict mode: a test whose requests (from the pack inside ComfyUI) drew a warning fails.
    """
    standin_process.reset()
    yield standin_process
    warnings = standin_process.warnings
    assert not warnings, f"the pack sent requests the strict stand-in warns about: {warnings}"


@pytest.fixture(scope="session")
def comfy_factory(e2e_dir: Path, standin_process: StandInProcess) -> Iterator[Callable[..., ComfyUIProcess]]:
    """Starts ComfyUI processes by name (once each), all pointed at the stand-in; stops them at the end."""
    comfy_dir, python = comfyui_install()
    started: dict[str, ComfyUIProcess] = {}

    def start(name: str = "default", **options: Any) -> ComfyUIProcess:
        if name not in started:
            process = ComfyUIProcess(comfy_dir, python, e2e_dir / f"comfyui-{name}", standin_process, TEST_KEY,
                                     **options)
            started[name] = process.start()
        elif not started[name].running:
            started[name].start()
        return started[name]

    yield start
    for process in started.values():
        process.stop()


@pytest.fixture(scope="session")
def comfy(comfy_factory: Callable[..., ComfyUIProcess]) -> ComfyUIProcess:
    """ComfyUI with its pinned frontend and the pack, running (restarted if a test stopped it)."""
    return comfy_factory("default")


@pytest.fixture(scope="session")
def frontend_roots() -> dict[str, str | None]:
    """Frontend version -> folder for --front-end-root (None: ComfyUI's pinned package)."""
    roots: dict[str, str | None] = {PINNED_FRONTEND: None}
    for version, variable in FRONTEND_ENV.items():
        roots[version] = os.environ.get(variable) or None
    return roots


def frontend_root(frontend_roots: dict[str, str | None], version: str) -> str | None:
    """The --front-end-root for ``version``; skips (fails under CI) when it is not given."""
    if version == PINNED_FRONTEND:
        return None
    root = frontend_roots.get(version)
    if not root or not (Path(root) / "index.html").is_file():
        missing_prerequisite(f"frontend {version} not found: set {FRONTEND_ENV[version]} to its static folder "
                             f"(`../shared/comfyui/setup DEST {version}` prints it)")
    return root


@pytest.fixture(scope="module")
def servers(comfy_factory: Callable[..., ComfyUIProcess],
            frontend_roots: dict[str, str | None]) -> Iterator[Callable[[str], ComfyUIProcess]]:
    """``servers(version)``: the same ComfyUI processes test_browser.py starts (one per frontend), by version.

    The renderer setting stays with a server; the classic one is set back after the module's tests.
    """
    used = []

    def server(version: str) -> ComfyUIProcess:
        root = frontend_root(frontend_roots, version)
        comfy = comfy_factory("default") if root is None else comfy_factory(f"frontend-{version}", front_end_root=root)
        used.append(comfy)
        return comfy

    yield server
    for comfy in used:
        comfy.write_settings({"Comfy.VueNodes.Enabled": False})


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the Debian package) under Playwright; Playwright's own browser download is not used.

    Module-scoped on purpose: Playwright's sync API keeps an asyncio loop marked as running in
    this thread until it stops, which breaks any later test that calls ``asyncio.run``.
    """
    comfyui_install()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_prerequisite("Playwright is not installed: pip install -r requirements-test.txt")
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        missing_prerequisite(f"no Chromium at {executable}: apt-get install chromium, or set CHROMIUM=/path/to/it")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


_SCREENSHOTS: list[Path] = []  # the folder, once a test asked for it (printed at the end)


@pytest.fixture(scope="session")
def screenshot_dir(e2e_dir: Path) -> Path:
    """Where the browser tests save their screenshots (``E2E_SCREENSHOT_DIR`` to choose)."""
    folder = Path(os.environ.get("E2E_SCREENSHOT_DIR") or e2e_dir / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    _SCREENSHOTS.append(folder)
    return folder


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for folder in _SCREENSHOTS:
        count = len(list(folder.glob("*.png")))
        terminalreporter.write_line(f"browser tests: {count} screenshots in {folder}")
