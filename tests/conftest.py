"""Shared fixtures: the pack loaded as ComfyUI loads it, and the local stand-in server."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import threading
import time
import types
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api_client.standin import StandInServer  # noqa: E402
from demo import load_pack_like_comfyui, run_node  # noqa: E402

# Shaped like a real key so redaction is tested on something realistic.
TEST_KEY = "sk-test-5f3c9a7e1d2b4c6a8e0f1a3b5c7d9e1f"
PACK_NAME = "ComfyUI-Flux2-LoRA"
# A small valid generation body, for tests that call the client directly.
REQUEST_BODY = {"model": "blackforestlabs/flux-2-lora", "prompt": "a cat", "seed": 1, "num_images": 1,
                "image_size": "square"}
# One picture from a new Python process loading the pack as ComfyUI does (a restart between runs):
# ``python -c RUN_ONCE <repository root> <seed>`` prints "OK" or "ERROR <error type> <message>".
RUN_ONCE = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from demo import load_pack_like_comfyui
    pack = load_pack_like_comfyui("ComfyUI-Flux2-LoRA")
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"]
    try:
        getattr(cls(), cls.FUNCTION)(prompt="a fox", seed=int(sys.argv[2]), num_images=1, guidance_scale=2.5,
                                     num_inference_steps=28, acceleration="regular", output_format="png",
                                     enable_prompt_expansion=True, enable_safety_checker=True,
                                     image_size="square", use_cache=False)
        print("OK")
    except Exception as exc:
        print("ERROR", type(exc).__name__, exc)
""")


@pytest.fixture(scope="session")
def pack():
    """The pack module, imported from its folder under a name with dashes."""
    return load_pack_like_comfyui(PACK_NAME)


@pytest.fixture(scope="session")
def api(pack):
    """The pack's own api_client package (its classes, not a second copy's)."""
    return sys.modules[f"{PACK_NAME}.api_client"]


# The pack's own modules a test asks for by fixture name (``def test_x(pricing): ...``).
PACK_MODULES = {
    "amounts": "amounts", "errors": "errors", "lifecycle": "api.lifecycle", "service": "api.service",
    "balance": "money.balance", "budget_mod": "money.budget", "money_mod": "money.component",
    "usage_mod": "money.key_usage", "ledger_mod": "money.ledger", "pricing": "money.pricing",
    "balance_panel": "panel.balance", "budget_panel": "panel.budget",
}


def _pack_module_fixture(name: str, dotted: str) -> Any:
    def fixture(pack):
        return import_module(f"{PACK_NAME}.api_client.{dotted}")

    fixture.__doc__ = f"The pack's own api_client/{dotted.replace('.', '/')}.py."
    return pytest.fixture(name=name)(fixture)


for _name, _dotted in PACK_MODULES.items():
    globals()[f"_{_name}_module"] = _pack_module_fixture(_name, _dotted)


def outcome(call: Any) -> Any:
    """What ``call()`` returns, or the exception it raises (handed back to be asserted on)."""
    try:
        return call()
    except Exception as exc:
        return exc


@pytest.fixture(scope="session")
def _server():
    # Strict: the stand-in warns about anything the schema allows but a careful client would not
    # send (an unknown field is usually a typo); ``standin`` fails a test whose pack sent any.
    server = StandInServer(key=TEST_KEY, strict=True).start()
    yield server
    server.stop()


def _reset_runtime() -> None:
    # A fresh runtime (what a restart does): a new money component, request slots, in-flight registry,
    # pools and settings; requests a previous test left in flight settle into the old ones.
    runtime_module = sys.modules.get(f"{PACK_NAME}.api_client.runtime")
    if runtime_module is not None:
        runtime_module.reset_runtime()
    estimate_module = sys.modules.get(f"{PACK_NAME}.api_client.money.estimate")
    if estimate_module is not None:
        estimate_module.forget_prices()


@pytest.fixture
def standin(_server, monkeypatch, tmp_path):
    """A clean stand-in server, with the environment pointing the pack at it.

    Each test gets its own empty result cache and no credit budget.
    """
    # Pictures an earlier test's runs no longer wanted may still be downloading for its cache: let them
    # end first, so this test's counters start at zero.
    inflight = sys.modules.get(f"{PACK_NAME}.api_client.run.inflight")
    if inflight is not None:
        inflight.wait_for_background_work(timeout=10)
    # ...and POSTs an earlier test left waiting for a slow answer (a cancelled run's) have been answered.
    waited = time.monotonic() + 10
    while _server.posts_in_progress and time.monotonic() < waited:
        time.sleep(0.02)
    _server.reset()
    _reset_runtime()
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIML_API_BASE", _server.base_url)
    for name in ("AIMLAPI_API_KEY", "AIMLAPI_API_BASE", "FLUX2_LORA_READ_TIMEOUT", "FLUX2_LORA_CACHE",
                 "FLUX2_LORA_CACHE_MAX_BYTES", "FLUX2_LORA_CREDIT_BUDGET", "FLUX2_LORA_BUDGET_USD",
                 "FLUX2_LORA_BUDGET_SCOPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # An ambiguous failure asks the stand-in's usage logs; a second is plenty when no row comes.
    monkeypatch.setenv("FLUX2_LORA_LOG_WAIT", "1")
    monkeypatch.setenv("FLUX2_LORA_LEDGER", str(tmp_path / "ledger" / "spending.sqlite3"))
    monkeypatch.delenv("FLUX2_LORA_BUDGET_PERIOD", raising=False)
    monkeypatch.delenv("FLUX2_LORA_BALANCE_FLOOR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # the price file
    monkeypatch.setenv("FLUX2_LORA_CACHE_DIR", str(tmp_path / "cache"))
    # No LoRA check unless a test turns it on (tests/api_client/lora/test_lora_check.py): it would ask huggingface.co.
    monkeypatch.setenv("FLUX2_LORA_CHECK_LORAS", "0")
    # A proxy set on the machine must not carry test traffic meant for 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    monkeypatch.delenv("no_proxy", raising=False)
    yield _server
    warnings = list(_server.warnings)
    _server.reset()
    _reset_runtime()
    assert not warnings, f"the pack sent requests the strict stand-in warns about: {warnings}"


@pytest.fixture
def windowed_client(api, standin):
    """Makes clients of the stand-in that retry quickly and count a failure as late 1 s after sending.

    ``windowed_client(read_timeout)``; every client made is closed after the test.
    """
    made = []

    def make(read_timeout: float) -> Any:
        policy = api.RetryPolicy(max_retries=3, base_delay=0.02, max_delay=0.1, max_retry_after=5, retry_window=1.0)
        client = api.ApiClient(api.ApiKey(TEST_KEY, "environment variable AIML_API_KEY"), standin.base_url,
                               retry=policy, read_timeout=read_timeout)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def generate_inputs(**overrides: Any) -> dict[str, Any]:
    """Valid Flux2LoraGenerate inputs (small pictures, so tests stay fast)."""
    inputs: dict[str, Any] = {
        "prompt": "a red fox in snow",
        "seed": 7,
        "num_images": 1,
        "guidance_scale": 2.5,
        "num_inference_steps": 28,
        "acceleration": "regular",
        "output_format": "png",
        "enable_prompt_expansion": True,
        "enable_safety_checker": True,
        "image_size": "square",
    }
    inputs.update(overrides)
    return inputs


def generate(pack, **overrides: Any) -> dict[str, Any]:
    """Run Flux2LoraGenerate as ComfyUI does and return its whole output dict."""
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"]
    return getattr(cls(), cls.FUNCTION)(**generate_inputs(**overrides))


@pytest.fixture
def comfy_routes(pack, monkeypatch, tmp_path):
    """ComfyUI's web server as the pack sees it: a PromptServer with aiohttp routes and a user folder.

    Returns the route table the pack's routes are added to; ``aiohttp_app(routes)`` serves it.
    """
    web = pytest.importorskip("aiohttp.web")
    prompt_server = types.SimpleNamespace(routes=web.RouteTableDef())
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=prompt_server)
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_user_directory = lambda: str(tmp_path / "comfy-user")
    monkeypatch.setitem(sys.modules, "server", server)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    return prompt_server.routes


def aiohttp_app(routes: Any) -> Any:
    """An aiohttp application serving ``routes``."""
    from aiohttp import web

    app = web.Application()
    app.add_routes(routes)
    return app


def run_client(app: Any, steps: Any) -> Any:
    """Serve ``app`` on 127.0.0.1 and return ``await steps(client)`` (an aiohttp TestClient)."""
    from aiohttp.test_utils import TestClient, TestServer

    async def main():
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await steps(client)

    return asyncio.run(main())


class InterruptProcessingException(Exception):
    """Shaped like comfy.model_management's own."""


class FakeComfy:
    """Minimal comfy.model_management / comfy.utils with the real function names."""

    def __init__(self) -> None:
        self.interrupted = False
        self.lock = threading.Lock()
        self.progress: list[tuple[int, int]] = []

        management = types.ModuleType("comfy.model_management")
        management.InterruptProcessingException = InterruptProcessingException
        management.processing_interrupted = lambda: self.interrupted
        management.throw_exception_if_processing_interrupted = self._throw
        utils = types.ModuleType("comfy.utils")
        fake = self

        class ProgressBar:
            def __init__(self, total, node_id=None):
                self.total = total

            def update_absolute(self, value, total=None, preview=None):
                fake.progress.append((value, total or self.total))

        utils.ProgressBar = ProgressBar
        comfy = types.ModuleType("comfy")
        comfy.model_management, comfy.utils = management, utils
        self.modules = {"comfy": comfy, "comfy.model_management": management, "comfy.utils": utils}

    def _throw(self) -> None:
        with self.lock:
            if self.interrupted:
                self.interrupted = False
                raise InterruptProcessingException()


@pytest.fixture
def comfy(monkeypatch):
    """comfy.model_management and comfy.utils stand-ins: ``comfy.interrupted = True`` is Cancel."""
    fake = FakeComfy()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


__all__ = ["PACK_NAME", "REQUEST_BODY", "ROOT", "RUN_ONCE", "TEST_KEY", "InterruptProcessingException",
           "aiohttp_app", "closed_port", "generate", "generate_inputs", "outcome", "run_client", "run_node"]
