"""Both ways ComfyUI may call Generate and Edit: a plain function, or a coroutine it awaits.

Every behaviour runs on both paths (``path`` fixture), without ComfyUI: the
coroutine is driven with ``asyncio.run`` as ComfyUI's executor drives it (one
task per node, all on one loop), with a fake interrupt flag and progress bar
(fake_comfy). "Several nodes at once" means tasks on one loop for the coroutine
path and threads for the plain one (ComfyUI never runs two plain nodes at once,
but scripts and other hosts may).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from conftest import PACK_NAME, ROOT, TEST_KEY, generate_inputs
from fake_comfy import FakeComfy, InterruptProcessingException, run_in_own_loop


class NodePath:
    """Runs nodes as ComfyUI would on one path: ``plain`` or ``coroutine``."""

    def __init__(self, pack: Any, name: str) -> None:
        self.pack = pack
        self.name = name
        self.coroutine = name == "coroutine"
        self._node_call = sys.modules[f"{PACK_NAME}.nodes.node_call"]

    def function(self, node_type: str) -> tuple[type, Any]:
        cls = self.pack.NODE_CLASS_MAPPINGS[node_type]
        body = getattr(cls, f"{cls.FUNCTION}_blocking")
        return cls, self._node_call.node_function(body, coroutine=self.coroutine)

    def run(self, node_type: str = "Flux2LoraGenerate", **inputs: Any) -> dict[str, Any]:
        """One node run; its error is raised."""
        (outcome,) = self.run_together([(node_type, inputs)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_together(self, calls: list[tuple[str, dict[str, Any]]], after_first: Any = None) -> list[Any]:
        """Run several nodes at once; each one's result or error, in order.

        ``after_first`` (a function returning True when ready) holds back the others until it says so.
        """
        functions = [(*self.function(node_type), inputs) for node_type, inputs in calls]
        if self.coroutine:
            async def main() -> list[Any]:
                tasks = []
                for k, (cls, fn, inputs) in enumerate(functions):
                    tasks.append(asyncio.ensure_future(fn(cls(), **inputs)))
                    while k == 0 and after_first is not None and not after_first():
                        await asyncio.sleep(0.01)
                return await asyncio.gather(*tasks, return_exceptions=True)
            return run_in_own_loop(main)
        outcomes: list[Any] = [None] * len(functions)

        def one(k: int) -> None:
            cls, fn, inputs = functions[k]
            try:
                outcomes[k] = fn(cls(), **inputs)
            except BaseException as exc:  # handed back, as gather(return_exceptions=True) does
                outcomes[k] = exc
        threads = [threading.Thread(target=one, args=(k,)) for k in range(len(functions))]
        for k, thread in enumerate(threads):
            thread.start()
            while k == 0 and after_first is not None and not after_first():
                time.sleep(0.01)
        for thread in threads:
            thread.join(30)
        return outcomes


@pytest.fixture(params=["plain", "coroutine"])
def path(request, pack) -> NodePath:
    return NodePath(pack, request.param)


@pytest.fixture
def comfy(monkeypatch) -> FakeComfy:
    return FakeComfy().install(monkeypatch)


def gen(node_id: str = "5", **overrides: Any) -> dict[str, Any]:
    return {**generate_inputs(**overrides), "unique_id": node_id}


def _info(output: dict[str, Any]) -> dict[str, Any]:
    return json.loads(output["result"][1])


def _drain(standin: Any) -> None:
    """Wait for the POSTs a Cancel left at the stand-in to be answered, so their credits land in this test."""
    deadline = time.monotonic() + 10
    while standin.posts_in_progress and time.monotonic() < deadline:
        time.sleep(0.05)


# -- what ComfyUI is offered ------------------------------------------------------------

DETECT = textwrap.dedent("""
    import importlib.util, inspect, json, sys, types
    sys.modules["nodes"] = types.ModuleType("nodes")
    if sys.argv[2] == "async":
        execution = types.ModuleType("execution")   # ComfyUI 0.3.45 on: the executor awaits coroutines
        async def _async_map_node_over_list(*args, **kwargs):
            pass
        execution._async_map_node_over_list = _async_map_node_over_list
        sys.modules["execution"] = execution
    elif sys.argv[2] == "old":
        execution = types.ModuleType("execution")   # an executor that calls node functions plainly
        execution._map_node_over_list = lambda *args, **kwargs: None
        sys.modules["execution"] = execution
    spec = importlib.util.spec_from_file_location("ComfyUI-Flux2-LoRA", sys.argv[1] + "/__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ComfyUI-Flux2-LoRA"] = module
    spec.loader.exec_module(module)
    print(json.dumps({node: inspect.iscoroutinefunction(getattr(cls, cls.FUNCTION))
                      for node, cls in module.NODE_CLASS_MAPPINGS.items()}))
""")


@pytest.mark.parametrize("executor, coroutine", [("async", True), ("old", False), ("none", False)])
def test_node_functions_are_coroutines_exactly_where_comfyui_awaits_them(executor, coroutine):
    done = subprocess.run([sys.executable, "-c", DETECT, str(ROOT), executor], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    kinds = json.loads(done.stdout)
    assert kinds["Flux2LoraGenerate"] is coroutine and kinds["Flux2LoraEdit"] is coroutine
    # The other nodes only pass values on: always plain.
    assert not any(kinds[node] for node in ("Flux2LoraSeed", "Flux2LoraImageSize", "Flux2LoraAdapter"))


def test_both_paths_share_one_body_with_the_public_inputs(pack):
    node_call = sys.modules[f"{PACK_NAME}.nodes.node_call"]
    for node_type in ("Flux2LoraGenerate", "Flux2LoraEdit"):
        cls = pack.NODE_CLASS_MAPPINGS[node_type]
        body = getattr(cls, f"{cls.FUNCTION}_blocking")
        assert inspect.iscoroutinefunction(node_call.node_function(body, coroutine=True))
        assert not inspect.iscoroutinefunction(node_call.node_function(body, coroutine=False))
        names = list(inspect.signature(body).parameters)
        assert names[:2] == ["self", "hooks"]


# -- results, progress and status on the right node -----------------------------------

def test_one_run_gives_the_same_result_on_both_paths(path, standin, comfy):
    output = path.run(**gen(num_images=2))
    images, info = output["result"]
    assert images.shape == (2, 512, 512, 3)
    assert json.loads(info)["cache"] == "miss"
    assert output["ui"]["flux2_images"] == [2]


def test_progress_and_status_go_to_the_node_that_runs(path, standin, comfy):
    standin.latency = 0.3
    outcomes = path.run_together([("Flux2LoraGenerate", gen("11", num_images=6, seed=1)),
                                  ("Flux2LoraGenerate", gen("12", num_images=1, seed=50))])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert comfy.progress_of("11")[-1] == (8, 8)  # 2 requests + 6 pictures
    assert comfy.progress_of("12")[-1] == (2, 2)
    assert not comfy.progress_of(None), "a progress update without its node id"
    for node_id, pictures in (("11", "6 pictures"), ("12", "1 picture")):
        texts = comfy.statuses(node_id)
        assert texts[0] == f"Waiting for the AI/ML API ({pictures})..." and texts[-1] == ""


def test_edit_runs_on_both_paths(path, standin, comfy):
    import torch

    image = torch.rand(1, 512, 512, 3)
    inputs = {key: value for key, value in gen("8").items() if key != "image_size"}
    output = path.run("Flux2LoraEdit", image=image, **inputs)
    assert output["result"][0].shape[0] == 1
    assert standin.post_bodies[0]["model"] == "blackforestlabs/flux-2-lora-edit"
    assert comfy.statuses("8")[-1] == ""


# -- overlap and the cap on requests in flight ----------------------------------------

def test_several_nodes_wait_at_the_same_time(path, standin, comfy):
    standin.latency = 0.5
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=k + 1)) for k in range(3)])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert standin.max_posts_in_progress == 3


def test_requests_beyond_the_cap_queue(path, standin, comfy, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_MAX_IN_FLIGHT", "2")
    standin.latency = 0.3
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=10 * k + 1, num_images=8))
                                  for k in range(2)])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert standin.post_count == 4 and standin.max_posts_in_progress == 2


def test_a_429_while_queued_still_waits_and_retries(path, standin, comfy, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_MAX_IN_FLIGHT", "1")
    standin.queue_post_faults([{"status": 429, "retry_after": "0.2"}])
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=k + 1)) for k in range(2)])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert standin.post_count == 3 and standin.max_posts_in_progress == 1


def test_a_bad_cap_is_an_error_naming_the_variable(path, standin, comfy, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_MAX_IN_FLIGHT", "0")
    with pytest.raises(Exception, match="FLUX2_LORA_MAX_IN_FLIGHT must be a whole number of requests, 1 or more"):
        path.run(**gen())
    assert standin.post_count == 0


def test_the_coroutine_never_blocks_the_event_loop(pack, standin, comfy):
    path = NodePath(pack, "coroutine")
    cls, fn = path.function("Flux2LoraGenerate")
    standin.latency = 0.6

    async def main() -> float:
        node = asyncio.ensure_future(fn(cls(), **gen(num_images=8)))
        longest, last = 0.0, time.monotonic()
        while not node.done():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
        node.result()
        return longest

    # Generous: the loop keeps ticking while the node waits, downloads and decodes on other threads.
    assert run_in_own_loop(main) < 0.3


# -- Cancel ----------------------------------------------------------------------------

def test_cancel_ends_every_waiting_node_and_sends_nothing_more(path, standin, comfy, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_MAX_IN_FLIGHT", "2")
    standin.latency = 3.0
    # The coroutine path: three nodes waiting at once. The plain path runs one node at a time in
    # ComfyUI: one node whose 4 requests do not all fit under the cap.
    calls = ([("Flux2LoraGenerate", gen(str(k), seed=k + 1, num_images=4)) for k in range(3)] if path.coroutine
             else [("Flux2LoraGenerate", gen("1", num_images=16))])
    threading.Timer(0.4, comfy.interrupt).start()
    started = time.monotonic()
    outcomes = path.run_together(calls)
    elapsed = time.monotonic() - started
    assert all(isinstance(o, InterruptProcessingException) for o in outcomes), outcomes
    assert elapsed < 1.5, f"Cancel took {elapsed:.2f} s"
    time.sleep(0.5)
    assert standin.post_count == 2  # the queued requests were never sent
    _drain(standin)


def test_a_task_cancelled_by_the_executor_stops_its_requests(pack, standin, comfy, monkeypatch):
    # ComfyUI's executor cancels the other nodes' tasks when one node fails or the prompt ends.
    monkeypatch.setenv("FLUX2_LORA_MAX_IN_FLIGHT", "1")
    standin.latency = 3.0
    cls, fn = NodePath(pack, "coroutine").function("Flux2LoraGenerate")

    async def main() -> float:
        node = asyncio.ensure_future(fn(cls(), **gen(num_images=12)))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        node.cancel()
        with pytest.raises(asyncio.CancelledError):
            await node
        return time.monotonic() - started

    assert run_in_own_loop(main) < 0.2
    time.sleep(0.5)
    assert standin.post_count == 1
    _drain(standin)


def test_cancel_during_a_progress_update_still_reaches_every_node(pack, standin, comfy):
    # ComfyUI's progress hook raises and clears the interrupt flag; the node that meets it sets it
    # again, so the other waiting nodes end as well.
    node_call = sys.modules[f"{PACK_NAME}.nodes.node_call"]
    hooks = node_call.WorkerHooks("3")
    hooks.progress(1, 2)
    comfy.interrupt()
    with pytest.raises(InterruptProcessingException):
        hooks.show_progress()
    assert comfy.processing_interrupted()


# -- errors stay on their node ---------------------------------------------------------

def test_an_error_is_raised_on_the_node_that_failed_and_the_others_finish(path, standin, comfy):
    standin.latency = 0.4
    standin.queue_post_faults([{"status": 400, "message": "prompt refused"}])
    outcomes = path.run_together(
        [("Flux2LoraGenerate", gen("1", seed=1)), ("Flux2LoraGenerate", gen("2", seed=2)),
         ("Flux2LoraGenerate", gen("3", prompt="", seed=3))],
        after_first=lambda: standin.post_count >= 1)
    assert type(outcomes[0]).__name__ == "BadRequestError" and "prompt refused" in str(outcomes[0])
    assert isinstance(outcomes[1], dict) and outcomes[1]["result"][0].shape[0] == 1
    assert type(outcomes[2]).__name__ == "InputError" and "prompt" in str(outcomes[2])
    assert standin.post_count == 2
    assert TEST_KEY not in str(outcomes[0])


# -- credits, budget and the result cache ----------------------------------------------

def test_credits_of_concurrent_runs_are_all_counted(path, standin, comfy, api):
    _drain(standin)  # answers another test's Cancel left behind would count here
    before = api.credit_budget().spent
    standin.latency = 0.3
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=k + 1, num_images=2)) for k in range(3)])
    used = [_info(o)["credits_used"] for o in outcomes]
    assert all(u and u > 0 for u in used)
    assert api.credit_budget().spent == pytest.approx(before + sum(used))


def test_a_spent_budget_refuses_every_node_before_sending(path, standin, comfy, api, monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "0")
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=k + 1)) for k in range(2)])
    assert all(type(o).__name__ == "BudgetExceededError" for o in outcomes), outcomes
    assert standin.post_count == 0


def test_a_cached_result_is_free_on_both_paths(path, standin, comfy):
    first = path.run(**gen(seed=99))
    again = path.run(**gen("6", seed=99))
    assert _info(first)["cache"] == "miss" and _info(again)["cache"] == "hit"
    assert _info(again)["credits_used"] == 0
    assert standin.post_count == 1


def test_concurrent_runs_never_overshoot_the_budget(path, standin, comfy, api, monkeypatch):
    path.run(**gen(seed=500))  # the process learns the price (one 512x512 picture)
    cost = api.credit_budget().spent
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", str(2.5 * cost))
    standin.latency = 0.5
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=600 + k)) for k in range(3)])
    kinds = sorted(type(o).__name__ for o in outcomes)
    # A hard cap: spent 1 + 1 in flight = 2 fits in 2.5; a third would make 3, so two of them are refused.
    assert kinds == ["BudgetExceededError", "BudgetExceededError", "dict"], outcomes
    assert standin.post_count == 1 + 1
    assert api.credit_budget().spent == pytest.approx(2 * cost) and 2 * cost <= 2.5 * cost


def test_with_a_budget_the_first_run_of_unknown_price_goes_first_then_the_others_overlap(path, standin, comfy,
                                                                                          monkeypatch):
    monkeypatch.setenv("FLUX2_LORA_CREDIT_BUDGET", "100000000")
    standin.latency = 0.4
    outcomes = path.run_together([("Flux2LoraGenerate", gen(str(k), seed=700 + k)) for k in range(3)])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert standin.post_count == 3 and standin.max_posts_in_progress <= 2


def test_two_nodes_with_the_same_request_at_the_same_time_pay_once(path, standin, comfy, api):
    standin.latency = 0.5
    outcomes = path.run_together([("Flux2LoraGenerate", gen("1", seed=800, num_images=2)),
                                  ("Flux2LoraGenerate", gen("2", seed=800, num_images=2))],
                                 after_first=lambda: standin.post_count >= 1)
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert standin.post_count == 1
    import torch

    assert torch.equal(outcomes[0]["result"][0], outcomes[1]["result"][0])
    paid = sorted(_info(o)["credits_used"] for o in outcomes)
    assert paid[0] == 0 and api.credit_budget().spent == pytest.approx(paid[1])
