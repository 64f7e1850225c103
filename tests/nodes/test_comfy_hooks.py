"""ComfyUI's Cancel and progress bar, with stand-ins for comfy.model_management and comfy.utils."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest
from conftest import InterruptProcessingException, generate


def test_cancel_ends_the_node_at_once_without_waiting_for_requests(pack, standin, comfy):
    standin.latency = 5.0
    threading.Timer(0.3, lambda: setattr(comfy, "interrupted", True)).start()
    started = time.monotonic()
    with pytest.raises(InterruptProcessingException):
        generate(pack, num_images=8)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"


def test_cancel_during_retry_wait(pack, standin, comfy):
    standin.queue_post_faults([{"status": 503, "retry_after": "30"}])
    threading.Timer(0.3, lambda: setattr(comfy, "interrupted", True)).start()
    started = time.monotonic()
    with pytest.raises(InterruptProcessingException):
        generate(pack)
    assert time.monotonic() - started < 1.0
    time.sleep(0.2)
    assert standin.post_count == 1  # the waiting retry was abandoned, not sent


def test_progress_reaches_the_total(pack, standin, comfy):
    generate(pack, num_images=6)
    assert comfy.progress, "no progress reported"
    values = [value for value, _ in comfy.progress]
    assert values == sorted(values)
    assert comfy.progress[-1] == (8, 8)  # 2 requests + 6 pictures


def test_runs_without_comfyui_modules(pack, standin):
    assert "comfy.model_management" not in sys.modules
    images, _ = generate(pack)["result"]
    assert images.shape[0] == 1


def test_status_names_the_node_by_execution_id_and_clears_after_the_run(pack, standin, monkeypatch):
    # ComfyUI's PromptServer as the hooks see it: what they send, and that progress text is not used.
    sent: list[tuple[str, dict]] = []
    progress_texts: list[tuple] = []
    server = types.ModuleType("server")
    server.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(
        send_sync=lambda event, data, sid=None: sent.append((event, data)),
        send_progress_text=lambda *args, **kwargs: progress_texts.append(args)))
    monkeypatch.setitem(sys.modules, "server", server)
    generate(pack, unique_id="5:7", num_images=2, use_cache=False)  # node 7 inside the subgraph node 5
    statuses = [data for event, data in sent if event == "flux2lora.status"]
    assert statuses == [{"node": "5:7", "text": "Waiting for the AI/ML API (2 pictures)..."},
                        {"node": "5:7", "text": ""}]
    assert progress_texts == []
