"""Issue 21: a model that retires without surprises (GET /v1/models/deprecations, no key).

The stand-in's feed is scripted per test (``configure(deprecations=[...])``); by default it
holds only the docs' example, which names none of the pack's models.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import requests
from conftest import TEST_KEY, generate, outcome

GENERATE = "blackforestlabs/flux-2-lora"
EDIT = "blackforestlabs/flux-2-lora-edit"


def entry(status: str, model_id: str = GENERATE, aliases: list[str] | None = None, **extra) -> dict:
    return {"id": model_id, "aliases": aliases or [], "status": status, "deprecated_at": "2026-11-01",
            "shutdown_at": None if status == "superseded" else "2027-01-31",
            "replaced_by": "blackforestlabs/flux-2-lora-v2", "reason": "consolidated", **extra}


def feed_gets(standin) -> int:
    return standin.stats()["service_get_counts"]["deprecations"]


def feed_file() -> str:
    return os.path.join(os.environ["XDG_CACHE_HOME"], "flux2-lora", "deprecations.json")


def test_a_deprecated_model_is_sent_and_the_info_says_when_it_shuts_down(pack, standin):
    standin.configure(deprecations=[entry("deprecated")])
    out = generate(pack, use_cache=False)
    assert standin.post_count == 1
    info = json.loads(out["result"][1])
    notice = info["model_notice"]
    assert notice["status"] == "deprecated" and notice["shutdown_at"] == "2027-01-31"
    assert notice["replaced_by"] == "blackforestlabs/flux-2-lora-v2"
    assert out["ui"]["flux2_model_notice"] == [notice["text"]]
    assert "shuts down on 2027-01-31" in notice["text"] and "flux-2-lora-v2" in notice["text"]


def test_a_superseded_model_matched_by_an_alias_only_is_sent_with_a_notice(pack, standin):
    # The entry's id is the new name; the pack's model id is one of its aliases.
    standin.configure(deprecations=[entry("superseded", "blackforestlabs/flux-2-lora-legacy", [GENERATE])])
    info = json.loads(generate(pack, use_cache=False)["result"][1])
    assert standin.post_count == 1
    assert info["model_notice"]["status"] == "superseded" and info["model_notice"]["shutdown_at"] is None


def test_a_short_alias_names_the_model_too(pack, standin):
    standin.configure(deprecations=[entry("deprecated", "bfl/flux-2-lora-old", ["flux-2-lora"])])
    info = json.loads(generate(pack, use_cache=False)["result"][1])
    assert info["model_notice"]["status"] == "deprecated"


def test_a_withdrawn_model_is_refused_before_sending_naming_the_replacement(pack, standin, lifecycle):
    standin.configure(deprecations=[entry("withdrawn", aliases=["flux-2-lora"])])
    refused = outcome(lambda: generate(pack, use_cache=False))
    assert isinstance(refused, lifecycle.ModelWithdrawnError)
    text = str(refused)
    assert "was withdrawn" in text and "Switch to blackforestlabs/flux-2-lora-v2" in text
    assert "not sent and nothing was billed" in text
    assert standin.post_count == 0


def test_an_entry_for_another_model_changes_nothing(pack, standin):
    # The edit model's entry must not match the text-to-image model (no prefix matching).
    standin.configure(deprecations=[entry("withdrawn", EDIT, ["flux-2-lora-edit"])])
    info = json.loads(generate(pack, use_cache=False)["result"][1])
    assert "model_notice" not in info and standin.post_count == 1


def test_the_feed_is_asked_at_most_once_in_five_runs_and_without_the_key(pack, standin):
    standin.configure(deprecations=[entry("deprecated")])
    for seed in range(1, 6):
        generate(pack, seed=seed, use_cache=False)
    assert standin.post_count == 5 and feed_gets(standin) == 1
    unauthorised = [h for h in standin.accounts.seen_headers if "authorization" not in h]
    assert len(unauthorised) == 1  # the feed's GET, the only service GET without the key
    assert not any(TEST_KEY in value for value in unauthorised[0].values())


def test_a_feed_older_than_a_day_is_asked_again_with_its_etag(pack, standin):
    standin.configure(deprecations=[entry("deprecated")])
    generate(pack, seed=1, use_cache=False)
    with open(feed_file()) as fh:
        kept = json.load(fh)
    assert kept["etag"].startswith('W/"')
    kept["fetched_at"] = time.time() - 2 * 24 * 3600
    with open(feed_file(), "w") as fh:
        json.dump(kept, fh)
    info = json.loads(generate(pack, seed=2, use_cache=False)["result"][1])
    assert feed_gets(standin) == 2
    asked = [h for h in standin.accounts.seen_headers if "if-none-match" in h]
    assert asked and asked[-1]["if-none-match"] == kept["etag"]  # answered 304: what is on disk is used
    assert info["model_notice"]["status"] == "deprecated"
    with open(feed_file()) as fh:
        assert json.load(fh)["fetched_at"] > kept["fetched_at"]


@pytest.mark.parametrize("mode", ["missing", "garbage", "wrong_shape", "error"])
def test_a_failing_feed_never_stops_a_run_and_is_not_asked_again_at_once(pack, standin, mode):
    standin.configure(endpoints={"deprecations": mode})
    for seed in (1, 2):
        info = json.loads(generate(pack, seed=seed, use_cache=False)["result"][1])
        assert "model_notice" not in info
    assert standin.post_count == 2 and feed_gets(standin) == 1


def test_a_failing_feed_keeps_the_copy_on_disk(pack, standin, lifecycle):
    standin.configure(deprecations=[entry("withdrawn")])
    assert isinstance(outcome(lambda: generate(pack, seed=1, use_cache=False)), lifecycle.ModelWithdrawnError)
    with open(feed_file()) as fh:
        kept = json.load(fh)
    kept["fetched_at"] = 0
    with open(feed_file(), "w") as fh:
        json.dump(kept, fh)
    standin.configure(endpoints={"deprecations": "error"})
    assert isinstance(outcome(lambda: generate(pack, seed=2, use_cache=False)), lifecycle.ModelWithdrawnError)
    assert standin.post_count == 0


def test_matching_uses_id_and_aliases_together(lifecycle):
    feed = [entry("deprecated", "x/other", ["other"]), entry("superseded", "new/name", ["flux-2-lora-edit"])]
    assert lifecycle.match(GENERATE, feed) is None
    found = lifecycle.match(EDIT, feed)
    assert found is not None and found.status == "superseded" and found.entry_id == "new/name"
    assert lifecycle.match(GENERATE, [entry("deprecated", GENERATE.upper())]).status == "deprecated"
    assert lifecycle.match(GENERATE, [{"id": GENERATE, "status": "retired"}]) is None  # unknown status: ignored
    assert lifecycle.match(GENERATE, "not a list") is None


# -- the stand-in's feed and usage endpoints, as documented ----------------------------------------

def test_the_standin_feed_filters_fail_open_and_honours_the_etag(standin):
    standin.configure(deprecations=[entry("deprecated"), entry("withdrawn", EDIT),
                                    {"id": "z/undated", "status": "superseded", "replaced_by": "z/new"}])
    url = f"{standin.root_url}/v1/models/deprecations"
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and len(whole.json()["data"]) == 3 and "generated_at" in whole.json()
    assert whole.headers["Cache-Control"] == "public, max-age=300"
    assert [e["id"] for e in requests.get(url, params={"status": "WITHDRAWN"}, timeout=30).json()["data"]] == [EDIT]
    assert len(requests.get(url, params={"status": "bogus"}, timeout=30).json()["data"]) == 3  # ignored
    assert len(requests.get(url, params=[("status", "withdrawn"), ("status", "deprecated")],
                            timeout=30).json()["data"]) == 2
    assert len(requests.get(url, params={"since": "2027-01-01"}, timeout=30).json()["data"]) == 2  # undated dropped
    assert len(requests.get(url, params={"since": "soon"}, timeout=30).json()["data"]) == 3  # malformed: ignored
    again = requests.get(url, headers={"If-None-Match": whole.headers["ETag"]}, timeout=30)
    assert again.status_code == 304 and again.content == b""
    for other in ("/models/deprecations", "/api/v1/models/deprecated"):
        assert requests.get(f"{standin.root_url}{other}", timeout=30).status_code == 200


def test_the_standin_answers_404_to_a_withdrawn_models_generation(standin):
    standin.configure(deprecations=[entry("withdrawn", aliases=["flux-2-lora"])])
    answer = requests.post(f"{standin.base_url}/images/generations", timeout=30,
                           headers={"Authorization": f"Bearer {TEST_KEY}"},
                           json={"model": "flux-2-lora", "prompt": "a cat", "image_size": "square"})
    assert answer.status_code == 404 and "withdrawn" in answer.json()["message"]


def test_the_standin_usage_endpoint_as_documented(pack, standin):
    url = f"{standin.root_url}/v2/usage"
    key = {"Authorization": f"Bearer {TEST_KEY}"}
    assert requests.get(url, params={"period": "24h"}, timeout=30).status_code == 401
    empty = requests.get(url, params={"period": "24h"}, headers=key, timeout=30).json()
    assert empty["spend"] == 0 and empty["currency"] == "USD" and empty["api_key_prefix"] is None
    generate(pack, use_cache=False)
    standin.queue_post_faults([{"log_delay": 300}])
    generate(pack, seed=2, use_cache=False)  # billed, not in the figure yet: the logs' lag
    figure = requests.get(url, params={"period": "1d"}, headers=key, timeout=30).json()
    assert figure["spend"] == pytest.approx(0.06) and figure["requests"] == 1
    assert figure["end"].endswith("Z") and figure["start"].endswith("Z")
    window = requests.get(url, params={"start": "2026-01-01T00:00:00+03:00", "end": "2026-01-02T00:00:00"},
                          headers=key, timeout=30).json()
    assert window["start"] == "2025-12-31T21:00:00.000Z" and window["spend"] == 0
    for bad in ({"period": "24h", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
                {"period": "1w"}, {"start": "2026-01-01T00:00:00Z"}, {"period": "93d"},
                {"start": "2026-01-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"},
                {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                {"period": "24h", "group_by": "day"}, {"period": "24h", "tz": "UTC"}):
        assert requests.get(url, params=bad, headers=key, timeout=30).status_code == 400, bad
    own = requests.get(url, params={"period": "24h", "key_prefix": TEST_KEY[:8]}, headers=key, timeout=30)
    assert own.status_code == 200 and own.json()["api_key_prefix"] == TEST_KEY[:8]
    assert requests.get(url, params={"period": "24h", "key_prefix": "abcd1234"}, headers=key,
                        timeout=30).status_code == 403
