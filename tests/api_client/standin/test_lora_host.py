"""The stand-in's LoRA host (api_client/standin/lora_host.py) answers as real file hosts and Hugging Face do."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time

import pytest
import requests
from conftest import ROOT

from api_client.standin import LoraHost
from api_client.standin.lora_files import flux2_dev_lora, standard_files

NO_PROXY = {"http": "", "https": ""}


@pytest.fixture(scope="module")
def host():
    with LoraHost().start() as server:
        yield server


def get(url, **headers):
    return requests.get(url, headers=headers, allow_redirects=False, proxies=NO_PROXY, timeout=30)


def test_range_answers_206_with_content_range_and_counts_bytes(host):
    host.reset()
    name = "flux2-dev-ai-toolkit-r16.safetensors"
    file = host.files[name]
    answer = get(host.url(name), Range="bytes=0-99")
    assert answer.status_code == 206 and answer.content == file.head[:100]
    assert answer.headers["Content-Range"] == f"bytes 0-99/{file.size}" and answer.headers["ETag"] == file.etag
    (length,) = struct.unpack("<Q", answer.content[:8])
    assert length == len(file.head) - 8
    tail = get(host.url(name), Range="bytes=-10")
    assert tail.status_code == 206 and tail.content == bytes(10)
    assert tail.headers["Content-Range"] == f"bytes {file.size - 10}-{file.size - 1}/{file.size}"
    assert host.stats()["bytes_served"][name] == 110


def test_etag_conditions_and_unsatisfiable_ranges(host):
    url = host.url("klein-4b.safetensors")
    etag = get(url, Range="bytes=0-7").headers["ETag"]
    assert get(url, **{"If-None-Match": etag}).status_code == 304
    assert get(url, Range="bytes=0-7", **{"If-Range": '"other"'}).status_code == 200  # changed: the whole file
    assert get(host.url("empty.safetensors"), Range="bytes=0-99").status_code == 416


def test_redirects_statuses_and_civitai_routes(host):
    root = host.root_url
    assert get(f"{root}/redirect/2/sd15.safetensors").headers["Location"] == "/redirect/1/sd15.safetensors"
    assert get(f"{root}/redirect/1/sd15.safetensors").headers["Location"] == "/files/sd15.safetensors"
    for status in (401, 403, 404, 500, 503):
        assert get(f"{root}/status/{status}/x").status_code == status
    civitai = f"{root}/civitai/api/download/models/sd15.safetensors"
    assert get(civitai).status_code == 307 and "/presigned/sd15.safetensors?" in get(civitai).headers["Location"]
    assert requests.head(civitai, proxies=NO_PROXY, timeout=30).status_code == 405  # GET only, as Civitai
    assert get(f"{root}/civitai/api/download/models/token-1").status_code == 401


def test_hugging_face_routes(host):
    root = host.root_url
    info = get(f"{root}/api/models/standin/several").json()
    assert [s["rfilename"] for s in info["siblings"]][:2] == ["style_v1.safetensors", "style_v2.safetensors"]
    resolve = get(f"{root}/standin/several/resolve/main/style_v1.safetensors")
    assert resolve.status_code == 302 and resolve.headers["Location"] == "/cdn/standin/several/style_v1.safetensors"
    assert get(f"{root}{resolve.headers['Location']}", Range="bytes=0-7").status_code == 206
    private = get(f"{root}/api/models/standin/private")
    assert private.status_code == 401 and private.headers["X-Error-Code"] == "RepoNotFound"
    gated = get(f"{root}/standin/gated/resolve/main/pytorch_lora_weights.safetensors")
    assert gated.status_code == 401 and gated.headers["X-Error-Code"] == "GatedRepo"
    missing = get(f"{root}/standin/several/resolve/main/nope.safetensors")
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"


def test_virtual_files_are_real_safetensors_and_broken_ones_are_refused_by_the_library(tmp_path):
    safetensors = pytest.importorskip("safetensors")  # in ComfyUI's environment; not a test requirement
    files = standard_files()
    for name in ("sdxl.safetensors", "flux2-dev-double-only-r2.safetensors", "flux2-dev-lokr.safetensors"):
        path = tmp_path / name
        path.write_bytes(files[name].read(0, files[name].size - 1))
        with safetensors.safe_open(str(path), "np") as opened:
            assert len(list(opened.keys())) > 10
    for name in ("overlap.safetensors", "past-end-offsets.safetensors", "wrong-size.safetensors",
                 "not-json.safetensors", "deep-json.safetensors", "length-past-end.safetensors"):
        path = tmp_path / name
        path.write_bytes(files[name].read(0, files[name].size - 1))
        with pytest.raises(Exception, match="header"):
            safetensors.safe_open(str(path), "np")


def test_a_rank_16_lora_has_the_size_of_the_facts_file():
    # "about 12.2 MB per unit of rank (rank 16 ~ 195 MB)"
    assert round(flux2_dev_lora("ai-toolkit", 16).size / 1e6) == 195


def test_command_line_serves_the_lora_host_beside_the_api(tmp_path):
    ports = tmp_path / "port", tmp_path / "lora-port"
    process = subprocess.Popen([sys.executable, "-m", "api_client.standin", "--port", "0", "--port-file",
                                str(ports[0]), "--lora-port-file", str(ports[1])], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ports[1].exists():
            assert process.poll() is None and time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)
        root = f"http://127.0.0.1:{int(ports[1].read_text())}"
        assert get(f"{root}/api/models/standin/flux1-dev").status_code == 200
        stats = get(f"{root}/_lora/stats").json()
        assert stats["request_count"] == 1 and stats["authorization_seen"] == 0
        assert requests.post(f"{root}/_lora/config", data=json.dumps({"latency": -1}), proxies=NO_PROXY,
                             timeout=30).status_code == 400
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert f"export HF_ENDPOINT={root}" in out
