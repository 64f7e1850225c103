"""Where the key and base URL come from, and what is refused."""

from __future__ import annotations

import os

import pytest
from conftest import ROOT


def test_key_order_official_names_first(api, tmp_path):
    env = {"AIMLAPI_API_KEY": "second", "XDG_CONFIG_HOME": str(tmp_path)}
    assert api.resolve_api_key(env).source == "environment variable AIMLAPI_API_KEY"
    env["AIML_API_KEY"] = "first"
    key = api.resolve_api_key(env)
    assert (key.value, key.source) == ("first", "environment variable AIML_API_KEY")


def test_key_file_used_when_no_env(api, tmp_path):
    path = tmp_path / "aimlapi" / "api_key"
    path.parent.mkdir()
    path.write_text("sk-from-file\n")
    path.chmod(0o600)
    key = api.resolve_api_key({"XDG_CONFIG_HOME": str(tmp_path)})
    assert key.value == "sk-from-file" and str(path) in key.source


def test_missing_key_names_every_place_looked(api, tmp_path):
    extra = tmp_path / "comfy-user" / "flux2_lora" / "api_key"
    with pytest.raises(api.ConfigError) as caught:
        api.resolve_api_key({"XDG_CONFIG_HOME": str(tmp_path)}, extra_key_files=[extra])
    message = str(caught.value)
    for place in ("AIML_API_KEY", "AIMLAPI_API_KEY", str(extra), str(tmp_path / "aimlapi" / "api_key")):
        assert place in message


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_key_file_readable_by_others_is_refused(api, tmp_path):
    path = tmp_path / "aimlapi" / "api_key"
    path.parent.mkdir()
    path.write_text("sk-x")
    path.chmod(0o644)
    with pytest.raises(api.ConfigError, match="chmod 600"):
        api.resolve_api_key({"XDG_CONFIG_HOME": str(tmp_path)})


def test_key_file_inside_the_pack_is_refused(api, tmp_path):
    inside = ROOT / "tests" / ".tmp_api_key"
    inside.write_text("sk-x")
    try:
        with pytest.raises(api.ConfigError, match="inside the node pack"):
            api.resolve_api_key({"XDG_CONFIG_HOME": str(tmp_path)}, extra_key_files=[inside])
    finally:
        inside.unlink()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "https://api.aimlapi.com/v1"),
    ({"AIMLAPI_API_BASE": "https://b.example/v1/"}, "https://b.example/v1"),
    ({"AIML_API_BASE": "https://a.example/v1", "AIMLAPI_API_BASE": "https://b.example/v1"}, "https://a.example/v1"),
    ({"AIML_API_BASE": "http://127.0.0.1:8765/v1"}, "http://127.0.0.1:8765/v1"),
    ({"AIML_API_BASE": "http://localhost:8765/v1"}, "http://localhost:8765/v1"),
    ({"AIML_API_BASE": "http://[::1]:8765/v1"}, "http://[::1]:8765/v1"),
])
def test_base_url(api, env, expected):
    assert api.resolve_base_url(env) == expected


@pytest.mark.parametrize("base", ["http://api.aimlapi.com/v1", "http://10.0.0.5/v1", "ftp://x/v1", "file:///tmp",
                                  "https://user:pw@api.aimlapi.com/v1", "api.aimlapi.com/v1"])
def test_unsafe_base_urls_are_refused(api, base):
    with pytest.raises(api.ConfigError, match="AIML_API_BASE"):
        api.resolve_base_url({"AIML_API_BASE": base})


def test_missing_key_stops_the_node_before_any_request(pack, api, standin, monkeypatch):
    from conftest import generate

    monkeypatch.delenv("AIML_API_KEY")
    with pytest.raises(api.ConfigError, match="No AI/ML API key found"):
        generate(pack)
    assert standin.post_count == 0


def test_missing_key_inside_comfyui_points_to_the_settings_panel(pack, api, standin, monkeypatch, tmp_path):
    import sys
    import types

    from conftest import generate

    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_user_directory = lambda: str(tmp_path / "user")
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.delenv("AIML_API_KEY")
    with pytest.raises(api.ConfigError) as caught:
        generate(pack)
    message = str(caught.value)
    assert "Settings → Flux2 LoRA → AI/ML API key" in message
    assert str(tmp_path / "user" / "flux2_lora" / "key" / "api_key") in message
    assert standin.post_count == 0
