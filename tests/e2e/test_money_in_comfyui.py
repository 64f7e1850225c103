"""Money in a real ComfyUI process (and its frontend): traced requests, the price before running,
the balance floor, and a budget per day across a restart.

The stand-in runs as its own process and serves GET /v2/logs, /v2/billing and /v1/models as the
official pages describe; ComfyUI runs with the pack installed under a dashed name.
"""

from __future__ import annotations

import re

import pytest

from .harness import status_messages
from .page import ComfyPage
from .test_node_display import CLASSIC, NODES_2
from .workflows import text_to_image_prompt

pytestmark = pytest.mark.e2e

VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def test_every_post_from_comfyui_carries_a_distinct_valid_request_id(comfy, standin):
    entry = comfy.post_prompt(text_to_image_prompt(num_images=6))
    assert entry["status"]["status_str"] == "success", status_messages(entry)
    logs = standin._admin("GET", "logs")["data"]
    ids = [row["client_request_id"] for row in logs]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(VALID_ID.match(i) for i in ids)
    assert all(row["status"] == "succeeded" for row in logs)


def test_a_balance_floor_refuses_the_run_before_sending(comfy, standin):
    answer = comfy.post("/flux2_lora/balance", {"floor": 99.99})  # the stand-in's account holds $100
    assert answer.status == 200, answer.text
    try:
        entry = comfy.post_prompt(text_to_image_prompt(), expect_success=False)
        messages = status_messages(entry)
        assert entry["status"]["status_str"] == "error"
        assert "Balance floor: the account balance is $100.00" in messages and "$0.06" in messages
        assert "floor of $99.99" in messages and "nothing was billed" in messages
        assert standin.post_count == 0
        shown = comfy.get("/flux2_lora/balance").json()
        assert shown["balance"] == 100.0 and shown["floor"] == 99.99
    finally:
        comfy.post("/flux2_lora/balance", {"floor": None})


def test_a_budget_per_day_still_holds_after_comfyui_restarts(comfy_factory, standin):
    comfy = comfy_factory("ledger", env={"FLUX2_LORA_CREDIT_BUDGET": "100000", "FLUX2_LORA_BUDGET_PERIOD": "day"})
    first = comfy.post_prompt(text_to_image_prompt())
    assert first["status"]["status_str"] == "success", status_messages(first)
    assert standin.post_count == 1  # 120,000 credits: the budget of 100,000 is now reached for today
    comfy.restart()
    standin.reset()
    second = comfy.post_prompt(text_to_image_prompt(), expect_success=False)
    messages = status_messages(second)
    assert second["status"]["status_str"] == "error"
    assert "Credit budget reached: 120,000 credits spent today" in messages, messages
    assert "spending.sqlite3" in messages and standin.post_count == 0
    assert (comfy.user_dir / "flux2_lora" / "spending.sqlite3").exists()


_BUILD = """
(count) => {
  const graph = app.graph;
  graph.clear();
  const size = LiteGraph.createNode('Flux2LoraImageSize'); size.pos = [40, 140]; graph.add(size);
  const gen = LiteGraph.createNode('Flux2LoraGenerate'); gen.pos = [400, 140]; graph.add(gen);
  size.connect(0, gen, gen.findInputSlot('image_size'));
  const widget = gen.widgets.find((w) => w.name === 'num_images');
  widget.value = count;
  widget.callback?.(count);
  return {size: String(size.id), gen: String(gen.id)};
}
"""

_PRICE_TEXT = """
(id) => {
  const node = app.canvas.graph.getNodeById(id);
  const element = node?.widgets?.find((w) => w.name === 'flux2_display')?.element;
  const row = element?.querySelector('[data-part="price"]');
  return row ? {text: row.innerText, height: element.getBoundingClientRect().height} : null;
}
"""


@pytest.mark.browser
@pytest.mark.parametrize(("version", "renderer"), [("1.27.10", CLASSIC), ("1.58.1", NODES_2)])
def test_the_price_shows_on_the_node_before_running(servers, version, renderer, browser, standin,
                                                    screenshot_dir):
    comfy = servers(version)
    comfy.write_settings({"Comfy.VueNodes.Enabled": renderer == NODES_2})
    page = ComfyPage(browser, comfy).open()
    p = page.page
    try:
        p.wait_for_timeout(500)
        ids = p.evaluate(_BUILD, 2)
        p.wait_for_function(f"() => ({_PRICE_TEXT})('{ids['gen']}')?.text?.includes('2 pictures 1024x768')",
                            timeout=20_000)
        shown = p.evaluate(_PRICE_TEXT, ids["gen"])
        assert re.match(r"^Price: ~\$0\.12( \([\d,]+ credits\))? for 2 pictures 1024x768$", shown["text"]), shown
        assert shown["height"] > 0
        if renderer == NODES_2:
            dom = p.evaluate(f"() => document.querySelector('[data-node-id=\"{ids['gen']}\"]')?.innerText ?? ''")
            assert shown["text"] in dom  # mounted inside the Vue node
        # The Image Size node changes: the price follows.
        p.evaluate("""(id) => { const n = app.canvas.graph.getNodeById(id);
            const w = n.widgets.find((x) => x.name === 'preset');
            w.value = 'square_hd'; w.callback?.('square_hd'); }""", ids["size"])
        p.wait_for_function(f"() => ({_PRICE_TEXT})('{ids['gen']}')?.text?.includes('1024x1024')", timeout=20_000)
        page.screenshot(screenshot_dir / f"price-{version}-{renderer}.png")
        assert standin.post_count == 0, "showing the price sent a generation request"
        assert page.pack_errors() == [], page.all_errors()
    finally:
        page.close()


@pytest.fixture(scope="module")
def impatient(comfy_factory):
    """A ComfyUI whose pack gives up reading an answer after 1 s and asks the usage logs for up to 15 s."""
    return comfy_factory("impatient", env={"FLUX2_LORA_READ_TIMEOUT": "1", "FLUX2_LORA_LOG_WAIT": "15"})


def test_a_read_timeout_whose_log_row_failed_is_sent_once_more_and_returns_the_pictures(impatient, standin):
    standin.queue_faults(post=[{"delay": 2.5, "log": "failed"}])
    entry = impatient.post_prompt(text_to_image_prompt())
    assert entry["status"]["status_str"] == "success", status_messages(entry)
    assert standin.post_count == 2
    ids = [row["client_request_id"] for row in standin._admin("GET", "logs")["data"]]
    # The same request sent once more, as its next attempt: one id per attempt, sharing the request's prefix.
    assert len(ids) == 2 and {i.rsplit(".", 1)[0] for i in ids} == {ids[0].rsplit(".", 1)[0]}
    assert sorted(i.rsplit(".", 1)[1] for i in ids) == ["1", "2"]
    assert len(impatient.output_files(entry)) == 1


def test_a_read_timeout_whose_log_row_succeeded_is_a_billed_error_and_no_second_post(impatient, standin):
    import time

    standin.queue_faults(post=[{"delay": 2.5}])  # processed and billed; the answer comes too late
    entry = impatient.post_prompt(text_to_image_prompt(), expect_success=False)
    messages = status_messages(entry)
    assert entry["status"]["status_str"] == "error"
    assert "SUCCEEDED" in messages and "billed 120,000 credits" in messages and "not sent again" in messages
    time.sleep(1.5)
    assert standin.post_count == 1
