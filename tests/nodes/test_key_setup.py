"""Key setup from the UI: the /flux2_lora/key route stores the key safely and never sends it back."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from conftest import PACK_NAME, aiohttp_app, run_client

NEW_KEY = "sk-ui-7c1e0b9a4d2f6e8a0c3b5d7f9a1e2c4d"
ENV_KEY = "sk-env-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
JSON = "application/json"


@pytest.fixture
def store(pack):
    return sys.modules[f"{PACK_NAME}.api_client.http.key_store"]


def key_answers():
    """The key route's answers (api_client/panel/key.py)."""
    return sys.modules[f"{PACK_NAME}.api_client.panel.key"]


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "comfy-user" / "flux2_lora" / "api_key"


@pytest.fixture
def env(tmp_path):
    """An environment with no key variables and an empty per-user config folder."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def post(store, key_file, env, data, content_type=JSON):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return key_answers().key_post_answer(body, content_type, key_file, env)


def test_saving_a_key_writes_it_with_mode_0600_and_answers_only_its_last_four(store, key_file, env):
    status, answer = post(store, key_file, env, {"key": NEW_KEY})
    assert status == 200
    assert answer["set"] and answer["saved"] and answer["changed"]
    assert answer["last4"] == NEW_KEY[-4:] and answer["source"] == "saved in ComfyUI"
    assert NEW_KEY not in json.dumps(answer)
    assert key_file.read_text() == NEW_KEY
    if hasattr(os, "getuid"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


def test_saved_key_is_what_the_nodes_use_next_run(store, api, key_file, env):
    post(store, key_file, env, {"key": f"  {NEW_KEY}\n"})  # a pasted line break is trimmed
    assert api.resolve_api_key(env, extra_key_files=[key_file]).value == NEW_KEY


def test_status_reads_only_and_never_contains_the_key(store, key_file, env):
    assert key_answers().key_get_answer(key_file, env) == (200, {
        "set": False, "last4": None, "source": None, "saved": False, "env_var": None,
        "message": store.key_status(key_file, env)["message"],
    })
    assert not key_file.parent.exists()  # GET created nothing
    post(store, key_file, env, {"key": NEW_KEY})
    before = key_file.stat().st_mtime_ns
    status, answer = key_answers().key_get_answer(key_file, env)
    assert status == 200 and answer["set"] and answer["last4"] == NEW_KEY[-4:]
    assert NEW_KEY not in json.dumps(answer) and key_file.stat().st_mtime_ns == before


def test_replacing_a_key_is_atomic_and_leaves_no_temporary_file(store, key_file, env):
    post(store, key_file, env, {"key": NEW_KEY})
    key_file.chmod(0o644)  # even a loosened file is replaced by a private one
    second = NEW_KEY[::-1]
    assert post(store, key_file, env, {"key": second})[0] == 200
    assert key_file.read_text() == second
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["api_key"]
    if hasattr(os, "getuid"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_environment_variable_takes_precedence_and_the_status_says_so(store, key_file, env):
    post(store, key_file, env, {"key": NEW_KEY})
    env["AIML_API_KEY"] = ENV_KEY
    answer = store.key_status(key_file, env)
    assert answer["set"] and answer["saved"] and answer["env_var"] == "AIML_API_KEY"
    assert answer["source"] == "environment variable AIML_API_KEY" and answer["last4"] == ENV_KEY[-4:]
    assert "precedence" in answer["message"]
    assert ENV_KEY not in json.dumps(answer) and NEW_KEY not in json.dumps(answer)


def test_clear_removes_the_saved_key(store, key_file, env):
    post(store, key_file, env, {"key": NEW_KEY})
    status, answer = post(store, key_file, env, {"clear": True})
    assert status == 200 and answer["changed"] and not answer["set"] and not key_file.exists()
    assert post(store, key_file, env, {"clear": True})[1]["changed"] is False


@pytest.mark.parametrize(("data", "content_type", "status", "says"), [
    (b"sk-not-json", JSON, 400, "not valid JSON"),
    (b"\xff\xfe", JSON, 400, "not valid JSON"),
    ([NEW_KEY], JSON, 400, "JSON object"),
    ({"key": NEW_KEY}, "application/x-www-form-urlencoded", 415, "application/json"),
    ({"key": NEW_KEY}, "text/plain", 415, "application/json"),
    ({"key": 12345678901234567890}, JSON, 400, "must be a string"),
    ({"key": None}, JSON, 400, "must be a string"),
    ({"key": ""}, JSON, 400, "empty"),
    ({"key": "sk-short"}, JSON, 400, "16 to 512"),
    ({"key": "s" * 513}, JSON, 400, "16 to 512"),
    ({"key": NEW_KEY[:10] + " " + NEW_KEY[10:]}, JSON, 400, "spaces"),
    ({"key": NEW_KEY[:10] + "\x00" + NEW_KEY[10:]}, JSON, 400, "control"),
    ({"key": NEW_KEY[:10] + "\u200b" + NEW_KEY[10:]}, JSON, 400, "control"),
    ({"key": NEW_KEY[:10] + "é" + NEW_KEY[10:]}, JSON, 400, "characters"),
    ({"key": NEW_KEY[:10] + '"<script>' + NEW_KEY[10:]}, JSON, 400, "characters"),
    ({"key": NEW_KEY, "clear": True}, JSON, 400, "either"),
    ({"key": NEW_KEY, "path": "/etc/passwd"}, JSON, 400, "Unknown field"),
    ({"clear": "yes"}, JSON, 400, "must be true"),
    ({}, JSON, 400, "either"),
    (json.dumps({"key": "a" * 5000}).encode(), JSON, 413, "larger than"),
])
def test_bad_input_is_refused_without_changing_the_saved_key(store, key_file, env, data, content_type, status, says):
    post(store, key_file, env, {"key": NEW_KEY})
    got, answer = post(store, key_file, env, data, content_type)
    assert got == status and says in answer["error"]
    assert key_file.read_text() == NEW_KEY and answer["set"]
    text = json.dumps(answer)
    assert NEW_KEY not in text and NEW_KEY[:10] not in text


def test_route_is_not_registered_outside_comfyui(pack, monkeypatch):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.key"]
    assert routes.register_key_routes() is False


# --- through ComfyUI's web server (aiohttp), with a PromptServer and folder_paths shaped like ComfyUI's ---


@pytest.fixture
def comfy_server(comfy_routes, monkeypatch, tmp_path):
    for name in ("AIML_API_KEY", "AIMLAPI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    routes = sys.modules[f"{PACK_NAME}.nodes.routes.key"]
    assert routes.register_key_routes() is True
    assert routes.register_key_routes() is True  # a second import adds nothing
    return aiohttp_app(comfy_routes)


def test_route_saves_and_reports_the_key_over_http(comfy_server, tmp_path):
    async def steps(client):
        first = await client.get("/flux2_lora/key")
        saved = await client.post("/flux2_lora/key", json={"key": NEW_KEY})
        status = await client.get("/flux2_lora/key")
        return [(r.status, r.headers.get("Cache-Control"), await r.text()) for r in (first, saved, status)]

    (s1, cache1, first), (s2, _, saved), (s3, _, status) = run_client(comfy_server, steps)
    assert (s1, s2, s3) == (200, 200, 200) and cache1 == "no-store"
    assert json.loads(first)["set"] is False
    assert json.loads(status)["set"] is True and json.loads(status)["last4"] == NEW_KEY[-4:]
    assert all(NEW_KEY not in text for text in (first, saved, status))
    key_file = tmp_path / "comfy-user" / "flux2_lora" / "key" / "api_key"
    assert key_file.read_text() == NEW_KEY
    if hasattr(os, "getuid"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_route_refuses_bad_input_and_other_methods_over_http(comfy_server, tmp_path):
    async def steps(client):
        answers = []
        for method, kwargs in [
            ("POST", {"data": "key=" + NEW_KEY, "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
            ("POST", {"data": b"{", "headers": {"Content-Type": JSON}}),
            ("POST", {"data": b"{" * 100_000, "headers": {"Content-Type": JSON}}),
            ("POST", {"json": {"key": "has space " + NEW_KEY}}),
            ("PUT", {"json": {"key": NEW_KEY}}),
            ("DELETE", {}),
        ]:
            response = await client.request(method, "/flux2_lora/key", **kwargs)
            answers.append((response.status, await response.text()))
        return answers

    answers = run_client(comfy_server, steps)
    assert [status for status, _ in answers] == [415, 400, 413, 400, 405, 405]
    assert all(NEW_KEY not in text for _, text in answers)
    assert not list((tmp_path / "comfy-user").rglob("api_key"))


# --- where the key lives: a 0700 folder of its own, whatever made ComfyUI's folders ---


def test_folder_holding_the_saved_key_is_0700_even_when_the_result_cache_made_it_first(
        pack, standin, comfy_server, monkeypatch, tmp_path):
    from conftest import TEST_KEY, generate

    monkeypatch.delenv("FLUX2_LORA_CACHE_DIR")  # the result cache goes to ComfyUI's user folder, as in ComfyUI
    monkeypatch.setenv("AIML_API_KEY", TEST_KEY)
    generate(pack)
    sys.modules[f"{PACK_NAME}.api_client.run.cache"].wait_for_pending_saves()
    assert (tmp_path / "comfy-user" / "flux2_lora" / "cache").is_dir()  # made, with the umask's mode

    async def steps(client):
        response = await client.post("/flux2_lora/key", json={"key": NEW_KEY})
        return response.status, await response.json()

    status, answer = run_client(comfy_server, steps)
    assert status == 200 and answer["saved"]
    (key_file,) = [p for p in (tmp_path / "comfy-user").rglob("api_key")]
    assert key_file.read_text() == NEW_KEY
    if hasattr(os, "getuid"):
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_key_saved_by_an_earlier_version_is_still_used_and_moved_into_the_private_folder(
        pack, api, standin, comfy_server, monkeypatch, tmp_path):
    from conftest import generate

    legacy = tmp_path / "comfy-user" / "flux2_lora" / "api_key"
    legacy.parent.mkdir(parents=True)
    legacy.parent.chmod(0o755)
    legacy.write_text(standin.key)
    legacy.chmod(0o600)
    monkeypatch.delenv("AIML_API_KEY", raising=False)
    generate(pack)  # the node finds the key where the earlier version saved it
    assert standin.post_count == 1
    assert not legacy.exists()
    (moved,) = [p for p in (tmp_path / "comfy-user").rglob("api_key")]
    assert moved.read_text() == standin.key
    if hasattr(os, "getuid"):
        assert stat.S_IMODE(moved.parent.stat().st_mode) == 0o700

    async def steps(client):
        response = await client.get("/flux2_lora/key")
        return response.status, await response.json()

    status, answer = run_client(comfy_server, steps)
    assert status == 200 and answer["set"] and answer["source"] == "saved in ComfyUI"


# --- key files in other encodings ---


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_key_file_in_utf8_with_or_without_bom_or_utf16_with_bom_is_read(pack, standin, monkeypatch, tmp_path,
                                                                        encoding):
    from conftest import generate

    key_file = tmp_path / "config" / "aimlapi" / "api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_bytes(f"{standin.key}\r\n".encode(encoding))  # PowerShell's `>` writes UTF-16 with a BOM
    key_file.chmod(0o600)
    monkeypatch.delenv("AIML_API_KEY", raising=False)
    generate(pack)
    assert standin.post_count == 1


def test_key_file_in_another_encoding_is_a_config_error_naming_the_file_and_the_route_still_answers(
        pack, api, standin, comfy_server, monkeypatch, tmp_path):
    from conftest import generate

    key_file = tmp_path / "comfy-user" / "flux2_lora" / "key" / "api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_bytes("sk-clé-0a9b8c7d6e5f4a3b2c1d".encode("latin-1"))
    key_file.chmod(0o600)
    monkeypatch.delenv("AIML_API_KEY", raising=False)
    with pytest.raises(api.ConfigError, match="UTF-8") as caught:
        generate(pack)
    assert str(key_file) in str(caught.value) and standin.post_count == 0

    async def steps(client):
        response = await client.get("/flux2_lora/key")
        return response.status, await response.json()

    status, answer = run_client(comfy_server, steps)
    assert status == 200 and answer["set"] is False and str(key_file) in answer["message"]
