"""The persistent result cache: hits without requests, across processes, damage, eviction, concurrency."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PACK_NAME, ROOT, TEST_KEY, generate, generate_inputs

from api_client.standin import encode_picture, render_picture


def _expected(seed, index, width=512, height=512, prompt="a red fox in snow"):
    return torch.from_numpy(render_picture(seed, index, width, height, prompt).astype(np.float32) / 255.0)


def _wait_for_saves() -> None:
    """The node saves in the background; look at a folder once its saves are on disk."""
    inflight = sys.modules.get(f"{PACK_NAME}.api_client.run.inflight")
    if inflight is not None:  # requests whose saves are not even queued yet
        inflight.wait_for_background_work(sys.modules[f"{PACK_NAME}.api_client.run.cache"].open_result_cache())
    sys.modules[f"{PACK_NAME}.api_client.run.cache"].wait_for_pending_saves()


def _cache_dir() -> Path:
    _wait_for_saves()
    return Path(os.environ["FLUX2_LORA_CACHE_DIR"])


def _entries(folder: Path | None = None) -> list[Path]:
    _wait_for_saves()
    root = (folder or _cache_dir()) / "v1"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def _info(out):
    return json.loads(out["result"][1])


def _png(seed: int, size: int = 64) -> bytes:
    return encode_picture(render_picture(seed, 0, size, size), "png")


# -- hits and misses through the node ------------------------------------------------------------------------


def test_same_inputs_again_come_from_cache_without_any_request(pack, standin):
    first = generate(pack, num_images=2)
    assert standin.post_count == 1 and _info(first)["cache"] == "miss"
    gets = standin.file_get_count
    again = generate(pack, num_images=2)
    assert standin.post_count == 1 and standin.file_get_count == gets
    images, _ = again["result"]
    assert torch.equal(images, first["result"][0])
    assert torch.equal(images[1], _expected(7, 1))
    info = _info(again)
    assert info["cache"] == "hit" and info["cache_note"] == "from cache, 0 credits"
    assert info["credits_used"] == 0 and info["requests"] == 0
    assert again["ui"]["flux2_cache"] == [{"state": "hit", "text": "from cache, 0 credits"}]
    assert again["ui"]["flux2_credits"] == [0]


def test_every_setting_is_part_of_the_key(pack, standin):
    generate(pack)
    changes = [{"seed": 8}, {"prompt": "a blue fox"}, {"guidance_scale": 3.0}, {"num_inference_steps": 20},
               {"acceleration": "high"}, {"output_format": "webp"}, {"enable_prompt_expansion": False},
               {"enable_safety_checker": False}, {"image_size": {"width": 512, "height": 544}},
               {"loras": [{"path": "owner/repo", "scale": 1.0}]}, {"loras": [{"path": "owner/repo", "scale": 0.5}]},
               {"num_images": 2}]
    for count, change in enumerate(changes, start=2):
        assert _info(generate(pack, **change))["cache"] == "miss", change
        assert standin.post_count == count
    assert len(_entries()) == len(changes) + 1


def test_cache_hit_needs_no_key_and_a_miss_still_asks_for_one(pack, api, standin, monkeypatch):
    first = generate(pack, num_images=2)
    monkeypatch.delenv("AIML_API_KEY")  # nothing would be sent, so no key is needed
    again = generate(pack, num_images=2)
    assert standin.post_count == 1 and _info(again)["cache"] == "hit"
    assert torch.equal(again["result"][0], first["result"][0])
    with pytest.raises(api.ConfigError, match="No AI/ML API key found"):
        generate(pack, num_images=2, seed=8)  # a miss must be sent, so then the key is looked up
    assert standin.post_count == 1


def test_partial_hit_sends_only_the_missing_requests(pack, standin):
    generate(pack, num_images=4)                       # request seed 7, four pictures
    out = generate(pack, num_images=6)                 # seed 7 (four, cached) and seed 8 (two, new)
    assert standin.post_count == 2 and standin.post_bodies[1]["seed"] == 8
    images, _ = out["result"]
    assert images.shape[0] == 6
    assert torch.equal(images[3], _expected(7, 3)) and torch.equal(images[5], _expected(8, 1))
    info = _info(out)
    assert info["cache"] == "partial" and info["requests"] == 1
    assert info["cache_note"].startswith("1 of 2 requests from cache")
    assert info["credits_used"] == 2 * 120000  # only the two new pictures are billed


CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from demo import load_pack_like_comfyui, run_node
    images, info = run_node(load_pack_like_comfyui(), "Flux2LoraGenerate", **json.loads(sys.argv[2]))
    print(json.dumps({"info": json.loads(info), "shape": list(images.shape)}))
""")


def test_hit_across_two_processes(pack, standin):
    inputs = generate_inputs(num_images=3, seed=40)
    child = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), json.dumps(inputs)], capture_output=True,
                           text=True, timeout=120, cwd="/", env=dict(os.environ))
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["info"]["cache"] == "miss" and report["shape"] == [3, 512, 512, 3]
    assert standin.post_count == 1
    out = generate(pack, num_images=3, seed=40)
    assert standin.post_count == 1, "the second process must not send anything"
    assert _info(out)["cache"] == "hit"
    assert torch.equal(out["result"][0][2], _expected(40, 2))


def test_fewer_pictures_than_asked_are_not_cached(pack, standin):
    pixels = render_picture(1, 0, 512, 512)
    import base64

    one = base64.b64encode(encode_picture(pixels, "png")).decode()
    standin.queue_post_faults([{"data": [{"b64_json": one}]}])
    generate(pack, num_images=2)
    assert _entries() == []
    assert _info(generate(pack, num_images=2))["cache"] == "miss" and standin.post_count == 2


def test_failed_download_stores_nothing(pack, api, standin):
    standin.queue_file_faults([{"status": 410}])
    with pytest.raises(api.DownloadError):
        generate(pack)
    assert _entries() == []


# -- switching it off ----------------------------------------------------------------------------------------


def test_cache_off_by_input(pack, standin):
    generate(pack, use_cache=False)
    out = generate(pack, use_cache=False)
    assert standin.post_count == 2 and not _cache_dir().exists()
    assert _info(out)["cache"] == "off" and out["ui"]["flux2_cache"][0]["state"] == "off"
    # What an uncached run got is not used by a cached one either way round.
    assert _info(generate(pack))["cache"] == "miss"


@pytest.mark.parametrize("word", ["0", "false", "off", "No"])
def test_cache_off_by_env(pack, standin, monkeypatch, word):
    monkeypatch.setenv("FLUX2_LORA_CACHE", word)
    generate(pack)
    assert _info(generate(pack))["cache"] == "off"
    assert standin.post_count == 2 and not _cache_dir().exists()


def test_use_cache_must_be_a_boolean(pack, api, standin):
    with pytest.raises(api.InputError, match=r"use_cache: must be true or false; got 'yes'"):
        generate(pack, use_cache="yes")
    assert standin.post_count == 0


def test_use_cache_is_an_optional_boolean_appended_last_default_on(pack):
    optional = pack.NODE_CLASS_MAPPINGS["Flux2LoraGenerate"].INPUT_TYPES()["optional"]
    assert list(optional)[-1] == "use_cache"
    kind, options = optional["use_cache"]
    assert kind == "BOOLEAN" and options["default"] is True and options["tooltip"]


# -- what is stored ------------------------------------------------------------------------------------------


def test_api_key_never_in_cache_names_or_files(pack, standin):
    generate(pack, num_images=2, loras=[{"path": "owner/repo", "scale": 1.0}])
    generate(pack, output_format="webp")
    seen = 0
    for path in _cache_dir().rglob("*"):
        assert TEST_KEY not in str(path) and TEST_KEY[3:20] not in str(path)
        if path.is_file():
            seen += 1
            data = path.read_bytes()
            assert TEST_KEY.encode() not in data and TEST_KEY[3:20].encode() not in data
    assert seen == 5  # two manifests, three pictures


def test_entry_holds_the_pictures_as_received_and_a_manifest(pack, standin):
    generate(pack, output_format="webp", num_images=2)
    (entry,) = _entries()
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["count"] == 2 and manifest["credits_used"] > 0
    assert [f["name"] for f in manifest["files"]] == ["0.webp", "1.webp"]
    assert (entry / "0.webp").read_bytes()[8:12] == b"WEBP"


def test_key_covers_base_url_and_body_but_not_key_order(api):
    from api_client.run.cache import cache_key

    body = {"model": "m", "prompt": "p", "seed": 1, "loras": [{"path": "a/b", "scale": 1.0}]}
    shuffled = dict(reversed(list(body.items())))
    assert cache_key("https://api.aimlapi.com/v1", body) == cache_key("https://api.aimlapi.com/v1/", shuffled)
    assert cache_key("https://api.aimlapi.com/v1", body) != cache_key("http://127.0.0.1:8765/v1", body)
    assert cache_key("https://api.aimlapi.com/v1", body) != cache_key("https://api.aimlapi.com/v1",
                                                                       {**body, "seed": 2})


# -- damage --------------------------------------------------------------------------------------------------


def _truncate_picture(entry: Path) -> None:
    picture = entry / "0.png"
    picture.write_bytes(picture.read_bytes()[:100])


def _flip_a_byte(entry: Path) -> None:
    picture = entry / "0.png"
    data = bytearray(picture.read_bytes())
    data[len(data) // 2] ^= 0xFF
    picture.write_bytes(bytes(data))


def _garble_manifest(entry: Path) -> None:
    (entry / "manifest.json").write_text('{"layout": "v1", "files": [')


def _delete_picture(entry: Path) -> None:
    (entry / "0.png").unlink()


@pytest.mark.parametrize("damage", [_truncate_picture, _flip_a_byte, _garble_manifest, _delete_picture])
def test_damaged_entry_is_a_miss_and_is_rewritten(pack, standin, damage):
    generate(pack)
    (entry,) = _entries()
    damage(entry)
    out = generate(pack)
    assert standin.post_count == 2 and _info(out)["cache"] == "miss"
    assert torch.equal(out["result"][0][0], _expected(7, 0))
    again = generate(pack)
    assert standin.post_count == 2 and _info(again)["cache"] == "hit"
    assert torch.equal(again["result"][0][0], _expected(7, 0))


def test_unusable_cache_folder_never_fails_a_generation(pack, standin, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FLUX2_LORA_CACHE_DIR", str(blocker))
    out = generate(pack)
    assert _info(out)["cache"] == "miss" and torch.equal(out["result"][0][0], _expected(7, 0))


def test_bad_size_limit_is_refused_before_sending(pack, api, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CACHE_MAX_BYTES", "lots")
    with pytest.raises(api.ConfigError, match=r"FLUX2_LORA_CACHE_MAX_BYTES must be a size.*500M.*'lots'"):
        generate(pack)
    assert standin.post_count == 0


def test_size_limit_accepts_units(api):
    from api_client.run.cache import parse_size

    assert parse_size("2147483648") == parse_size("2G") == parse_size("2 GiB") == 2 * 1024**3
    assert parse_size("500M") == 500 * 1024**2 and parse_size("1.5k") == 1536 and parse_size("0") == 0


# -- eviction ------------------------------------------------------------------------------------------------


def _key(n: int) -> str:
    return f"{n:064x}"


def test_eviction_removes_least_recently_used_entries_to_the_size_limit(tmp_path):
    from api_client.run.cache import ResultCache

    pictures = {n: [_png(n)] for n in range(4)}
    cache = ResultCache(tmp_path)
    now = time.time()
    for n in range(3):
        assert cache.store(_key(n), pictures[n], 1.0)
        entry_bytes = sum(f.stat().st_size for f in (tmp_path / "v1" / _key(n)).iterdir())
        cache.max_bytes = int(entry_bytes * 3.5)  # room for three entries, not four
        os.utime(tmp_path / "v1" / _key(n) / "manifest.json", (now - 100 + n, now - 100 + n))
    assert cache.load(_key(0)) is not None          # a hit makes entry 0 the most recently used
    assert cache.store(_key(3), pictures[3], 1.0)   # over the limit: entry 1, the oldest, goes
    assert [p.name for p in _entries(tmp_path)] == [_key(0), _key(2), _key(3)]
    assert cache.load(_key(1)) is None and cache.load(_key(3)).pictures == pictures[3]
    assert cache.evict() <= cache.max_bytes


def test_entry_larger_than_the_whole_cache_is_not_stored(tmp_path):
    from api_client.run.cache import ResultCache

    cache = ResultCache(tmp_path, max_bytes=10)
    assert not cache.store(_key(1), [_png(1)])
    assert _entries(tmp_path) == []


def test_small_size_limit_through_the_node(pack, standin, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CACHE_MAX_BYTES", "1")
    generate(pack)
    assert _entries() == [] and _info(generate(pack))["cache"] == "miss"


# -- concurrency ---------------------------------------------------------------------------------------------


def test_concurrent_writers_in_threads_leave_complete_entries(tmp_path):
    from api_client.run.cache import ResultCache

    cache = ResultCache(tmp_path)
    shared = [_png(100), _png(101)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                assert cache.store(_key(999), shared, 2.0)
                assert cache.store(_key(n), [_png(n)], 1.0)
                hit = cache.load(_key(999), 2)
                assert hit is not None and hit.pictures == shared
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(_entries(tmp_path)) == 9
    assert [p.name for p in (tmp_path / "v1").iterdir() if p.name.startswith(".")] == []
    for n in range(8):
        assert cache.load(_key(n)).pictures == [_png(n)]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from api_client.run.cache import ResultCache
    from api_client.standin import encode_picture, render_picture
    folder, me, max_bytes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cache = ResultCache(folder, max_bytes)
    png = lambda n: encode_picture(render_picture(n, 0, 64, 64), "png")
    shared = [png(500), png(501)]
    for i in range(40):
        cache.store("f" * 64, shared, 2.0)
        cache.store(f"{me * 1000 + i:064x}", [png(me * 1000 + i)], 1.0)
        hit = cache.load("f" * 64, 2)
        assert hit is None or hit.pictures == shared, "a reader saw a wrong or partial entry"
    print("ok")
""")


def test_two_processes_writing_and_evicting_one_folder_never_read_a_bad_entry(tmp_path):
    from api_client.run.cache import ResultCache

    shared = [_png(500), _png(501)]
    # Room for about six entries, so both writers keep evicting while the other reads and writes.
    max_bytes = 6 * len(_png(1000))
    children = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), str(n), str(max_bytes)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
                for n in (1, 2)]
    cache = ResultCache(tmp_path, max_bytes)
    while any(child.poll() is None for child in children):
        hit = cache.load("f" * 64, 2)
        assert hit is None or hit.pictures == shared
        time.sleep(0.01)
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0 and out.strip() == "ok", err
    for entry in _entries(tmp_path):
        assert cache.load(entry.name) is not None, f"{entry.name} is damaged"
    assert cache.evict() <= max_bytes
