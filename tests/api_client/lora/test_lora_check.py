"""The LoRA check (issue 19): every adapter's header read before a run is sent, refused ones never sent.

Through the Generate and Edit nodes, over real HTTP against the stand-in's LoRA host
(api_client/standin/lora_host.py: virtual files, Range, ETag, redirects, Hugging Face routes).
Every refusal is checked for 0 POSTs, every read for at most about 1 MiB per file.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import numpy as np
import pytest
import torch
from conftest import PACK_NAME, TEST_KEY, aiohttp_app, closed_port, generate, generate_inputs, run_client

from api_client.standin import LoraHost
from api_client.standin.lora_files import flux2_dev_lora, safetensors_file

MiB = 1024 * 1024
GENUINE_FILES = [
    ("flux2-dev-ai-toolkit-r16.safetensors", "ai-toolkit", 16, 195_076_520),
    ("flux2-dev-diffusers-r16.safetensors", "diffusers/PEFT", 16, 201_380_128),
    ("flux2-dev-peft-r8.safetensors", "diffusers/PEFT", 8, None),
    ("flux2-dev-kohya-r32.safetensors", "kohya/musubi", 32, None),
    ("flux2-dev-kohya-nometa-r4.safetensors", "kohya/musubi", 4, None),
    ("flux2-dev-attn-only-r64.safetensors", "ai-toolkit", 64, None),
    ("flux2-dev-double-only-r2.safetensors", "diffusers/PEFT", 2, None),
    ("flux2-dev-lokr.safetensors", "LyCORIS LoKr", None, None),
    ("flux2-dev-loha.safetensors", "LyCORIS LoHa", 8, None),
    ("flux2-dev-long-header.safetensors", "kohya/musubi", 16, None),  # header > the first read: two Range GETs
    ("ignores-range.safetensors", "ai-toolkit", 16, None),  # a host that answers 200 with the whole file
]
# (path under the host, or a Hugging Face name; verdict; words the error must hold)
REFUSED = [
    ("/files/flux1-dev-kohya.safetensors", "other-model", ["FLUX.1 [dev]", "3072 -> 12288"]),
    ("/files/flux1-dev-diffusers.safetensors", "other-model", ["FLUX.1 [dev]"]),
    ("/files/klein-4b.safetensors", "other-model", ["FLUX.2 [klein] 4B"]),
    ("/files/klein-9b.safetensors", "other-model", ["FLUX.2 [klein] 9B"]),
    ("/files/klein-4b-diffusers.safetensors", "other-model", ["FLUX.2 [klein] 4B"]),
    ("/files/qwen-image.safetensors", "other-model", ["Qwen-Image"]),
    ("/files/qwen-image-attn.safetensors", "other-model", ["Qwen-Image"]),
    ("/files/sdxl.safetensors", "other-model", ["SDXL"]),
    ("/files/sd15.safetensors", "other-model", ["SD 1.5"]),
    ("/files/flux2-checkpoint.safetensors", "not-a-lora", ["checkpoint", "not a LoRA"]),
    ("/files/no-adapters.safetensors", "not-a-lora", ["no adapter weights"]),
    ("/files/page.html", "not-safetensors", ["HTML page"]),
    ("/files/pickle.bin", "not-safetensors", ["pickle"]),
    ("/files/archive.ckpt", "not-safetensors", ["ZIP"]),
    ("/files/empty.safetensors", "not-safetensors", ["empty"]),
    ("/status/404/x.safetensors", "not-found", ["not found", "status 404"]),
    ("/status/401/x.safetensors", "no-access", ["401", "cannot download it either"]),
    ("/status/403/x.safetensors", "no-access", ["403", "cannot download it either"]),
    ("/civitai/api/download/models/token-123", "no-access", ["401", "token"]),
    ("standin/gated", "no-access", ["gated", "cannot download it either"]),
    ("standin/private", "no-access", ["private", "cannot read it either"]),
    ("standin/does-not-exist", "no-access", ["does not exist or is private"]),
    ("standin/flux2-dev-diffusers/missing.safetensors", "not-found", ["not found in that repository"]),
    ("standin/no-safetensors", "not-safetensors", ["no .safetensors file", "lora.bin"]),
    ("standin/flux1-dev", "other-model", ["FLUX.1 [dev]"]),
    ("standin/klein", "other-model", ["FLUX.2 [klein] 9B"]),
]
HOSTILE = [
    ("length-huge.safetensors", "not-safetensors", "header length of 4,611,686,018,427,387,904 bytes"),
    ("length-past-end.safetensors", "not-safetensors", "runs past the end"),
    ("not-json.safetensors", "not-safetensors", "not a JSON object"),
    ("json-list.safetensors", "not-safetensors", "not a JSON object"),
    ("deep-json.safetensors", "not-safetensors", "not valid JSON"),
    ("overlap.safetensors", "not-safetensors", "overlap"),
    ("past-end-offsets.safetensors", "not-safetensors", "runs past the end of the file"),
    ("wrong-size.safetensors", "not-safetensors", "needs 32 bytes"),
    ("length-over-cap.safetensors", "unknown", "more than the 1,048,576 bytes this check reads"),
    ("bad-content-range.safetensors", "unknown", "Content-Range 'bytes 500-99999/195000000'"),
]


@pytest.fixture(scope="session")
def _lora_host():
    host = LoraHost().start()
    yield host
    host.stop()


@pytest.fixture
def lora_host(_lora_host, standin, monkeypatch):
    """The LoRA host, reset, with the check on and Hugging Face names looked up there."""
    _lora_host.reset()
    monkeypatch.setenv("FLUX2_LORA_CHECK_LORAS", "1")
    monkeypatch.setenv("HF_ENDPOINT", _lora_host.root_url)
    yield _lora_host
    assert _lora_host.authorization_seen == [], "a key or token went to a LoRA host"


def _lora_mod(name):
    import importlib

    return importlib.import_module(f"{PACK_NAME}.api_client.lora.{name}")


def _path(host, where):
    return f"{host.root_url}{where}" if where.startswith("/") else where


def _info(out):
    return json.loads(out["result"][1])


def _edit(pack, **overrides):
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraEdit"]
    image = torch.from_numpy(np.full((1, 64, 96, 3), 0.5, dtype=np.float32))
    return getattr(cls(), cls.FUNCTION)(image=image, **generate_inputs(**overrides))


def _run(pack, node, loras):
    return (generate if node == "generate" else _edit)(pack, loras=[{"path": p, "scale": 1.0} for p in loras])


def _bytes_per_file(host):
    return host.stats()["bytes_served"]


# -- verdicts through the nodes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "fmt", "rank", "size"), GENUINE_FILES, ids=[g[0] for g in GENUINE_FILES])
def test_genuine_flux2_dev_lora_is_sent_in_every_format(pack, standin, lora_host, name, fmt, rank, size):
    info = _info(generate(pack, loras=[{"path": lora_host.url(name), "scale": 0.8}]))
    assert standin.post_count == 1
    (check,) = info["lora_checks"]
    assert check["path"] == lora_host.url(name)
    found = (check["verdict"], check["model"], check["format"], check["rank"])
    assert found == ("flux2-dev", "FLUX.2 [dev]", fmt, rank)
    assert check["bytes"] == (size or lora_host.files[name].size)
    # Only the header was read: never the whole file (hundreds of MB); a host ignoring Range is cut off.
    served = _bytes_per_file(lora_host)[name]
    assert served <= MiB if name != "ignores-range.safetensors" else served < 16 * MiB < lora_host.files[name].size


@pytest.mark.parametrize("node", ["generate", "edit"])
@pytest.mark.parametrize("repo", ["standin/flux2-dev-diffusers", "standin/flux2-dev-ai-toolkit",
                                  "standin/flux2-dev-diffusers/pytorch_lora_weights.safetensors"])
def test_genuine_hugging_face_names_are_sent(pack, standin, lora_host, node, repo):
    info = _info(_run(pack, node, [repo]))
    assert standin.post_count == 1
    assert info["lora_checks"][0]["verdict"] == "flux2-dev"
    assert all(n <= MiB for n in _bytes_per_file(lora_host).values())


@pytest.mark.parametrize("node", ["generate", "edit"])
@pytest.mark.parametrize(("where", "verdict", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_before_sending_with_what_was_found(pack, api, standin, lora_host, node, where, verdict, words):
    lora_mod = _lora_mod("check")
    path = _path(lora_host, where)
    with pytest.raises(lora_mod.LoraRefusedError) as caught:
        _run(pack, node, [lora_host.url("flux2-dev-ai-toolkit-r16.safetensors"), path])
    assert standin.post_count == 0  # nothing sent, nothing billed
    message = str(caught.value)
    assert isinstance(caught.value, api.InputError)
    assert f"loras[2] {path!r}" in message and "loras[1]" not in message, message
    assert "Not sent, nothing billed: 1 of 2 LoRAs" in message and "FLUX2_LORA_CHECK_LORAS=0" in message
    for word in words:
        assert word in message, message
    assert [c.verdict for c in caught.value.checks] == ["flux2-dev", verdict]
    assert all(n <= MiB for n in _bytes_per_file(lora_host).values())
    assert TEST_KEY not in message


@pytest.mark.parametrize(("name", "verdict", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_headers_give_clear_errors_and_bounded_reads(pack, standin, lora_host, name, verdict, words):
    path = lora_host.url(name)
    if verdict == "unknown":
        info = _info(generate(pack, loras=[{"path": path, "scale": 1.0}]))
        assert standin.post_count == 1
        check = info["lora_checks"][0]
        assert check["verdict"] == "unknown" and words in check["reason"], check
    else:
        with pytest.raises(_lora_mod("check").LoraRefusedError, match="not a safetensors file|not a valid") as caught:
            generate(pack, loras=[{"path": path, "scale": 1.0}])
        assert words in str(caught.value) and repr(path) in str(caught.value)
        assert standin.post_count == 0
    assert _bytes_per_file(lora_host).get(name, 0) <= MiB


@pytest.mark.parametrize("where", ["/status/503/x.safetensors", "/status/500/x.safetensors", "/loop/x.safetensors",
                                   "closed-port"])
def test_passing_failures_are_unknown_sent_with_a_warning(pack, standin, lora_host, caplog, where):
    path = f"http://127.0.0.1:{closed_port()}/x.safetensors" if where == "closed-port" else _path(lora_host, where)
    with caplog.at_level(logging.WARNING, logger="flux2_lora"):
        info = _info(generate(pack, loras=[{"path": path, "scale": 1.0}]))
    assert standin.post_count == 1
    check = info["lora_checks"][0]
    assert check == {"path": path, "verdict": "unknown", "model": None, "format": None, "rank": None, "bytes": None,
                     "reason": check["reason"]}
    assert any("not recognised as FLUX.2 [dev] (sent anyway)" in r.getMessage() and path in r.getMessage()
               for r in caplog.records)


def test_unknown_layers_are_sent_with_a_warning(pack, standin, lora_host):
    lora_host.files["odd.safetensors"] = safetensors_file([("text_encoder.layers.0.q.lora_A.weight", [8, 5120]),
                                                           ("text_encoder.layers.0.q.lora_B.weight", [5120, 8])])
    info = _info(generate(pack, loras=[{"path": lora_host.url("odd.safetensors"), "scale": 1.0}]))
    assert standin.post_count == 1
    assert info["lora_checks"][0]["verdict"] == "unknown"
    assert "not FLUX.2 [dev] layers this check knows" in info["lora_checks"][0]["reason"]


def test_redirects_are_followed_and_civitai_style_downloads_checked(pack, standin, lora_host):
    paths = [f"{lora_host.root_url}/redirect/3/flux2-dev-kohya-r32.safetensors",
             f"{lora_host.root_url}/civitai/api/download/models/flux2-dev-peft-r8.safetensors"]
    info = _info(generate(pack, loras=[{"path": p, "scale": 1.0} for p in paths]))
    assert [c["verdict"] for c in info["lora_checks"]] == ["flux2-dev", "flux2-dev"]
    assert standin.post_count == 1


def test_repository_with_several_files_says_which_was_checked(pack, standin, lora_host):
    info = _info(generate(pack, loras=[{"path": "standin/several", "scale": 1.0}]))
    (check,) = info["lora_checks"]
    assert check["verdict"] == "flux2-dev" and check["file"] == "style_v1.safetensors"
    assert "2 .safetensors files in standin/several; checked style_v1.safetensors" in check["note"]


def test_three_adapters_are_checked_at_the_same_time_and_in_order(pack, standin, lora_host):
    lora_host.latency = 0.5  # long enough that the three reads overlap on any machine
    names = ["flux2-dev-ai-toolkit-r16.safetensors", "flux2-dev-kohya-r32.safetensors",
             "flux2-dev-diffusers-r16.safetensors"]
    info = _info(generate(pack, loras=[{"path": lora_host.url(n), "scale": 1.0} for n in names]))
    assert [c["path"] for c in info["lora_checks"]] == [lora_host.url(n) for n in names]
    assert lora_host.stats()["max_in_progress"] == 3


# -- the cache ---------------------------------------------------------------------------------------------

def test_second_run_reads_nothing_again(pack, standin, lora_host):
    loras = [{"path": lora_host.url("flux2-dev-ai-toolkit-r16.safetensors"), "scale": 1.0},
             {"path": "standin/flux2-dev-diffusers", "scale": 0.5}]
    first = _info(generate(pack, loras=loras, use_cache=False))
    asked = lora_host.request_count
    second = _info(generate(pack, loras=loras, use_cache=False, seed=8))
    assert lora_host.request_count == asked  # not one request to the LoRA host
    assert second["lora_checks"] == first["lora_checks"]
    assert standin.post_count == 2


def test_cache_is_kept_apart_from_the_result_cache(pack, standin, lora_host, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CACHE", "0")  # the result cache off: the verdicts stay
    loras = [{"path": lora_host.url("flux2-dev-kohya-r32.safetensors"), "scale": 1.0}]
    generate(pack, loras=loras)
    asked = lora_host.request_count
    generate(pack, loras=loras)
    assert lora_host.request_count == asked


def _age_cache(tmp_path, days=2):
    path = tmp_path / "xdg-cache" / "flux2-lora-checks" / "lora_checks.json"
    data = json.loads(path.read_text())
    for entry in data["entries"].values():
        entry["checked_at"] -= days * 86400
    path.write_text(json.dumps(data))


def test_a_day_later_an_unchanged_file_is_not_read_again(pack, standin, lora_host, tmp_path):
    name = "flux2-dev-ai-toolkit-r16.safetensors"
    generate(pack, loras=[{"path": lora_host.url(name), "scale": 1.0}])
    _age_cache(tmp_path)
    read = _bytes_per_file(lora_host)[name]
    asked = lora_host.request_count
    info = _info(generate(pack, loras=[{"path": lora_host.url(name), "scale": 1.0}], seed=9))
    assert lora_host.request_count == asked + 1  # one conditional GET, answered 304
    assert _bytes_per_file(lora_host)[name] == read
    assert info["lora_checks"][0]["verdict"] == "flux2-dev"


def test_a_changed_file_is_checked_again(pack, standin, lora_host, tmp_path):
    name = "swapped.safetensors"
    lora_host.files[name] = flux2_dev_lora("ai-toolkit", 16)
    generate(pack, loras=[{"path": lora_host.url(name), "scale": 1.0}])
    lora_host.files[name] = lora_host.files["flux1-dev-kohya.safetensors"]  # a new file, a new ETag
    _age_cache(tmp_path)
    with pytest.raises(_lora_mod("check").LoraRefusedError, match="FLUX.1"):
        generate(pack, loras=[{"path": lora_host.url(name), "scale": 1.0}], seed=9)
    assert standin.post_count == 1


def test_refusals_from_status_codes_are_not_kept(pack, standin, lora_host):
    path = "standin/flux2-dev-diffusers/new.safetensors"
    with pytest.raises(_lora_mod("check").LoraRefusedError):
        generate(pack, loras=[{"path": path, "scale": 1.0}])
    lora_host.repos["standin/flux2-dev-diffusers"].files["new.safetensors"] = flux2_dev_lora("diffusers", 4)
    info = _info(generate(pack, loras=[{"path": path, "scale": 1.0}]))  # uploaded since: checked again
    assert info["lora_checks"][0]["rank"] == 4


# -- the off switch, anonymity, cancel and the deadline ----------------------------------------------------

def test_off_switch_sends_no_request_to_lora_hosts(pack, standin, lora_host, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CHECK_LORAS", "0")
    info = _info(generate(pack, loras=[{"path": lora_host.url("flux1-dev-kohya.safetensors"), "scale": 1.0},
                                       {"path": "standin/gated", "scale": 1.0}]))
    assert lora_host.request_count == 0
    assert standin.post_count == 1
    assert [c["verdict"] for c in info["lora_checks"]] == ["off", "off"]


def test_setting_on_disk_wins_over_the_environment(api, lora_host, tmp_path, monkeypatch):
    switch = _lora_mod("switch")
    monkeypatch.setenv("FLUX2_LORA_CHECK_LORAS", "1")
    switch.write_setting(tmp_path, "off")
    assert switch.check_enabled(tmp_path) == (False, 'the Flux2 LoRA setting "Check LoRAs before sending"')
    checks = _lora_mod("check").check_loras(["standin/gated"], folder=tmp_path)
    assert checks[0].verdict == "off" and lora_host.request_count == 0
    switch.write_setting(tmp_path, None)
    monkeypatch.setenv("FLUX2_LORA_CHECK_LORAS", "nope")
    with pytest.raises(api.ConfigError, match="FLUX2_LORA_CHECK_LORAS must be 1 .* got 'nope'"):
        switch.check_enabled(tmp_path)


def test_no_key_token_or_netrc_login_goes_to_a_lora_host(pack, standin, lora_host, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret-netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    generate(pack, loras=[{"path": lora_host.url("flux2-dev-peft-r8.safetensors"), "scale": 1.0},
                          {"path": "standin/flux2-dev-ai-toolkit", "scale": 1.0}])
    assert lora_host.request_count >= 3
    assert lora_host.authorization_seen == []


def test_cancel_stops_the_wait_at_once(api, lora_host):
    lora_host.latency = 30.0
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(api.Cancelled):
        _lora_mod("check").check_loras([lora_host.url("flux2-dev-lokr.safetensors")], cancel=cancel, cache=False)
    assert time.monotonic() - started < 10  # generous: the host would answer after 30 s


def test_deadline_makes_a_slow_host_unknown(api, lora_host):
    lora_host.latency = 30.0
    (check,) = _lora_mod("check").check_loras([lora_host.url("flux2-dev-lokr.safetensors")], deadline_seconds=0.5,
                                              cache=False)
    assert check.verdict == "unknown" and "no answer within 0.5 s" in check.reason


def test_adapter_node_accepts_loopback_http_and_refuses_other_plain_http(pack, api):
    cls = pack.NODE_CLASS_MAPPINGS["Flux2LoraAdapter"]
    (chain,) = cls().add(path="http://127.0.0.1:9/lora.safetensors", scale=1.0)
    assert chain == [{"path": "http://127.0.0.1:9/lora.safetensors", "scale": 1.0}]
    with pytest.raises(api.InputError, match="Plain http"):
        cls().add(path="http://example.com/lora.safetensors", scale=1.0)


def test_a_bad_hf_endpoint_is_named(api, lora_host, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://example.com")
    with pytest.raises(api.ConfigError, match="HF_ENDPOINT"):
        _lora_mod("check").check_loras(["standin/flux1-dev"], cache=False)
    assert lora_host.request_count == 0


# -- the decision rule on its own ---------------------------------------------------------------------------

def _tensors(pairs):
    return {name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]} for name, shape in pairs}


def test_rule_accepts_mixed_prefixes_and_ignores_metadata(api):
    rule = _lora_mod("rule")
    tensors = _tensors([("base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight", [4, 6144]),
                        ("base_model.model.transformer_blocks.0.attn.to_q.lora_B.weight", [6144, 4]),
                        ("transformer.single_transformer_blocks.47.attn.to_out.lora_A.weight", [4, 24576]),
                        ("transformer.single_transformer_blocks.47.attn.to_out.lora_B.weight", [6144, 4])])
    finding = rule.classify(tensors, {"ss_base_model_version": "flux2_klein_4b"})  # metadata is a hint only
    assert (finding.verdict, finding.rank) == ("flux2-dev", 4)


def test_rule_refuses_a_flux2_name_with_a_block_out_of_range(api):
    rule = _lora_mod("rule")
    finding = rule.classify(_tensors([("diffusion_model.double_blocks.8.img_attn.qkv.lora_A.weight", [4, 6144]),
                                      ("diffusion_model.double_blocks.8.img_attn.qkv.lora_B.weight", [18432, 4])]))
    assert finding.verdict == "other-model" and "other sizes or block numbers" in finding.reason


def test_rule_never_decides_on_one_shared_number(api):
    rule = _lora_mod("rule")
    # 18432 alone (FLUX.2's qkv output, FLUX.1's modulation): only a down matrix of an unknown layer.
    finding = rule.classify(_tensors([("some_layer.lora_A.weight", [4, 18432])]))
    assert finding.verdict == "unknown"


def test_header_entries_that_are_not_tensors_are_refused(api):
    header = _lora_mod("header")
    text = json.dumps({"a.lora_A.weight": 5}).encode()
    data = len(text).to_bytes(8, "little") + text
    with pytest.raises(header.NotSafetensors, match="not described by a JSON object"):
        header.parse_header(data, len(text), len(data))


# -- the Adapter node's line (the route) ---------------------------------------------------------------------

def test_route_answers_the_adapter_line(pack, comfy_routes, lora_host):
    routes_mod = sys.modules[f"{PACK_NAME}.nodes.routes.lora"]
    assert routes_mod.register_lora_routes()
    app = aiohttp_app(comfy_routes)

    async def steps(client):
        out = []
        for path in (lora_host.url("flux2-dev-ai-toolkit-r16.safetensors"), "standin/flux1-dev", "", "not a path"):
            answer = await client.get("/flux2_lora/lora_check", params={"path": path})
            out.append((answer.status, await answer.json()))
        off = await client.post("/flux2_lora/lora_check/setting", json={"check_loras": "off"})
        out.append((off.status, await off.json()))
        answer = await client.get("/flux2_lora/lora_check", params={"path": "standin/flux1-dev"})
        out.append((answer.status, await answer.json()))
        back = await client.post("/flux2_lora/lora_check/setting", json={"check_loras": None})
        out.append((back.status, await back.json()))
        return out

    genuine, flux1, empty, invalid, off, after_off, back = run_client(app, steps)
    assert genuine == (200, {**genuine[1], "text": "FLUX.2 [dev] LoRA · rank 16 · 195 MB · ai-toolkit", "tone": "ok"})
    assert flux1[1]["tone"] == "error" and flux1[1]["text"] == "Will be refused: a LoRA for FLUX.1 [dev]"
    assert flux1[1]["detail"].startswith("Will be refused: a LoRA for FLUX.1 [dev], not FLUX.2 [dev] (")
    assert "Use a version of this LoRA trained for FLUX.2 [dev]" in flux1[1]["detail"]
    assert empty[1]["text"] == ""
    assert invalid[1]["verdict"] == "invalid" and "owner/repo" in invalid[1]["detail"]
    assert off[0] == 200 and off[1]["enabled"] is False
    assert after_off[1]["verdict"] == "off" and after_off[1]["text"] == "LoRA check off"
    assert back[1]["enabled"] is True


def test_warnings_and_refusals_show_on_the_generating_node(pack, standin, lora_host, monkeypatch):
    import types

    sent = []
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        send_sync=lambda event, data: sent.append((event, data))))
    monkeypatch.setitem(sys.modules, "server", server)
    slow = f"{lora_host.root_url}/status/503/x.safetensors"
    generate(pack, loras=[{"path": slow, "scale": 1.0}], unique_id="7")
    with pytest.raises(_lora_mod("check").LoraRefusedError):
        generate(pack, loras=[{"path": "standin/gated", "scale": 1.0}], unique_id="7")
    shown = [data for event, data in sent if event == "flux2lora.lora_checks"]
    assert shown == [{"node": "7", "lines": ["LoRA 1: Not recognised: will be sent anyway"]},
                     {"node": "7", "lines": ["LoRA 1: Will be refused: gated, needs a login"]}]
    statuses = [data["text"] for event, data in sent if event == "flux2lora.status"]
    assert statuses[:2] == ["Checking 1 LoRA...", ""]


def test_a_token_in_a_lora_url_is_never_shown(pack, standin, lora_host, caplog):
    path = f"{lora_host.root_url}/status/401/x.safetensors?token=civitai-secret-123"
    with caplog.at_level(logging.DEBUG), pytest.raises(_lora_mod("check").LoraRefusedError) as caught:
        generate(pack, loras=[{"path": path, "scale": 1.0}])
    assert "civitai-secret-123" not in str(caught.value) and "token=***" in str(caught.value)
    assert "civitai-secret-123" not in caplog.text


def test_comfyui_cancel_during_the_check_ends_the_node_and_sends_nothing(pack, standin, lora_host, comfy):
    from conftest import InterruptProcessingException

    lora_host.latency = 30.0

    def cancel():
        comfy.interrupted = True

    threading.Timer(0.3, cancel).start()
    started = time.monotonic()
    with pytest.raises(InterruptProcessingException):
        generate(pack, loras=[{"path": "standin/flux2-dev-diffusers", "scale": 1.0}])
    assert time.monotonic() - started < 10  # generous: the LoRA host would answer after 30 s
    assert standin.post_count == 0
