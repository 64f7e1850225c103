"""A real ComfyUI process with the pack installed, and the stand-in server as a process.

Used by the end-to-end and browser tests through the fixtures in ``conftest.py``;
other tests can use the classes directly::

    standin = StandInProcess(key, workdir).start()
    comfy = ComfyUIProcess(comfy_dir, python, base_dir, standin, key).start()
    entry = comfy.post_prompt(api_prompt)          # the /history entry, once done
    comfy.output_files(entry)                     # the pictures on disk

Everything talks plain HTTP on 127.0.0.1 with urllib and no proxy, so nothing here
depends on the pack's own client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-Flux2-LoRA"  # a name with dashes, as users clone it
# ComfyUI 0.3.64 starts in about 15-20 s on 2 shared cores; the rest is headroom for a busy machine.
START_TIMEOUT = 180.0
PROMPT_TIMEOUT = 120.0
# What the pack's copy leaves out: repository and tool state, never part of an install.
_NOT_COPIED = (".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".venv", "venv", "demo_output")
# Variables of the developer's shell that would point the pack elsewhere than the stand-in.
_CLEARED_ENV_PREFIXES = ("AIML_API_", "AIMLAPI_API_", "FLUX2_LORA_")

# No proxy for loopback traffic, whatever the machine's environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class HTTPAnswer:
    """Status, headers and body of one answer (error statuses included, never raised)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = dict(headers)
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, body: Any = None, *, raw: bytes | None = None,
         content_type: str = "application/json", timeout: float = 30.0) -> HTTPAnswer:
    """One HTTP request; ``body`` is sent as JSON, ``raw`` as is."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return HTTPAnswer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        return HTTPAnswer(error.code, error.headers, error.read())


def free_port() -> int:
    """A loopback port free right now (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_pack(dest: Path) -> Path:
    """The project tree as a user would install it (no .git, no caches) at ``dest``."""
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    return dest


def _stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM (SIGINT for ComfyUI would print a traceback), then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class StandInProcess:
    """``python -m api_client.standin`` in its own process, with its admin routes as methods."""

    def __init__(self, key: str, workdir: Path, python: str = sys.executable) -> None:
        self.key = key
        self.workdir = Path(workdir)
        self.python = python
        self.log_path = self.workdir / "standin.log"
        self.port: int | None = None
        self.lora_port: int | None = None  # its LoRA host (the LoRA check's files and Hugging Face routes)
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> StandInProcess:
        """Start on a free port (the stand-in picks it and writes it to a file); returns self."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / "standin.port"
        port_file.unlink(missing_ok=True)
        lora_port_file = self.workdir / "standin-lora.port"
        lora_port_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.python, "-m", "api_client.standin", "--port", "0", "--port-file", str(port_file),
                 "--key", self.key, "--strict", "--lora-port-file", str(lora_port_file)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not port_file.exists() or not lora_port_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the stand-in did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().strip())
        self.lora_port = int(lora_port_file.read_text().strip())
        return self

    def stop(self) -> None:
        """Stop the process (idempotent)."""
        if self._process is not None:
            _stop_process(self._process, grace=5.0)
            self._process = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base for ``AIML_API_BASE``."""
        return f"{self.root_url}/v1"

    @property
    def lora_root_url(self) -> str:
        """The LoRA host: ``/files/<name>`` and the Hugging Face routes (``HF_ENDPOINT``)."""
        return f"http://127.0.0.1:{self.lora_port}"

    def lora_stats(self) -> dict[str, Any]:
        """The LoRA host's counters: bytes_served per file, requests per path, authorization_seen."""
        answer = http("GET", f"{self.lora_root_url}/_lora/stats")
        assert answer.status == 200, answer.text
        return answer.json()

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        answer = http(method, f"{self.root_url}/_standin/{path}", body)
        if answer.status != 200:
            raise RuntimeError(f"stand-in {method} /_standin/{path}: {answer.status} {answer.text}")
        return answer.json()

    def stats(self) -> dict[str, Any]:
        """Counters and settings: post_count, file_get_count, pending faults, latency, response_mode, warnings."""
        return self._admin("GET", "stats")

    @property
    def warnings(self) -> list[str]:
        """Strict mode's warnings since the last reset: requests the schema allows but look like mistakes."""
        return self.stats()["warnings"]

    @property
    def post_count(self) -> int:
        """Generation POSTs received since the last reset."""
        return self.stats()["post_count"]

    @property
    def file_get_count(self) -> int:
        """Picture downloads served since the last reset."""
        return self.stats()["file_get_count"]

    def requests(self) -> list[Any]:
        """The generation bodies received since the last reset (long strings shortened)."""
        return self._admin("GET", "requests")["requests"]

    def reset(self) -> None:
        """Counters, bodies and faults cleared; latency 0, answers with URLs (the LoRA host's too)."""
        self._admin("POST", "reset")
        if self.lora_port is not None:
            assert http("POST", f"{self.lora_root_url}/_lora/reset", {}).status == 200

    def queue_faults(self, post: Iterable[dict] = (), file: Iterable[dict] = ()) -> None:
        """Faults for the next generation POSTs / picture GETs (see api_client/standin/faults.py)."""
        self._admin("POST", "faults", {"post": list(post), "file": list(file)})

    def configure(self, latency: float | None = None, response_mode: str | None = None) -> None:
        """Latency before every answer, and "url" or "b64" answers."""
        body = {k: v for k, v in {"latency": latency, "response_mode": response_mode}.items() if v is not None}
        self._admin("POST", "config", body)

    def wait_for_posts(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` generation POSTs have arrived."""
        deadline = time.monotonic() + timeout
        while self.post_count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stand-in got {self.post_count} POSTs, not {count}, within {timeout} s")
            time.sleep(0.02)


class PromptFailed(AssertionError):
    """A prompt ComfyUI refused or did not finish as expected (carries what ComfyUI said)."""


class ComfyUIProcess:
    """ComfyUI's ``main.py`` on 127.0.0.1 with a throw-away base directory holding the pack.

    The base directory keeps ``custom_nodes/<PACK_NAME>`` (a copy of this tree), ``input``,
    ``output``, ``temp`` and ``user`` (with the pack's result cache); it survives ``restart()``.
    """

    def __init__(self, comfy_dir: str | Path, python: str, base_dir: Path, standin: StandInProcess | None,
                 key: str | None, front_end_root: str | None = None, extra_args: Iterable[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.comfy_dir = Path(comfy_dir)
        self.python = python
        self.base_dir = Path(base_dir)
        self.front_end_root = front_end_root
        self.extra_args = list(extra_args)
        self.standin = standin
        self.key = key
        self.log_path = self.base_dir / "comfyui.log"
        self.port: int | None = None
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen | None = None
        self._log_offset = 0

    # -- folders -------------------------------------------------------------
    @property
    def pack_dir(self) -> Path:
        return self.base_dir / "custom_nodes" / PACK_NAME

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def temp_dir(self) -> Path:
        return self.base_dir / "temp"

    @property
    def user_dir(self) -> Path:
        return self.base_dir / "user"

    @property
    def cache_dir(self) -> Path:
        """The pack's result cache (inside ComfyUI's user folder, so it survives restarts)."""
        return self.user_dir / "flux2_lora" / "cache"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        """ComfyUI's environment: this shell's, without AI/ML API or pack settings, pointed at the stand-in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED_ENV_PREFIXES)}
        env.update({
            "PYTHONUNBUFFERED": "1",  # the log file is up to date when a test reads it
            "NO_PROXY": "127.0.0.1,localhost,::1",
            # No key file of the developer's own account can be picked up.
            "XDG_CONFIG_HOME": str(self.base_dir / "xdg-config"),
        })
        env.pop("no_proxy", None)
        if self.key is not None:
            env["AIML_API_KEY"] = self.key
        # The LoRA check is off unless a test turns it on (example workflows name huggingface.co URLs);
        # Hugging Face names are looked up at the stand-in's LoRA host, never on the network.
        env["FLUX2_LORA_CHECK_LORAS"] = "0"
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
        if self.standin is not None:
            env["AIML_API_BASE"] = self.standin.base_url
            if self.standin.lora_port is not None:
                env["HF_ENDPOINT"] = self.standin.lora_root_url
        env.update(self._extra_env)
        return env

    def command(self) -> list[str]:
        """The command line (flags from ComfyUI 0.3.64's comfy/cli_args.py)."""
        args = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--base-directory", str(self.base_dir), "--disable-auto-launch",
                # Its default database lives inside COMFYUI_DIR: keep the install untouched.
                "--database-url", "sqlite:///:memory:"]
        if self.front_end_root:
            args += ["--front-end-root", str(self.front_end_root)]
        return args + self.extra_args

    def start(self, timeout: float = START_TIMEOUT) -> ComfyUIProcess:
        """Copy the pack in (first start only), start ComfyUI and wait until it serves; returns self."""
        if not self.pack_dir.exists():
            self.pack_dir.parent.mkdir(parents=True, exist_ok=True)
            copy_pack(self.pack_dir)
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n===== {' '.join(self.command())}\n".encode())
            log.flush()
            self._process = subprocess.Popen(self.command(), cwd=self.comfy_dir, env=self.environment(),
                                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self._process.returncode} while starting:\n"
                                   f"{self.log_text()[-4000:]}")
            try:
                if http("GET", f"{self.url}/system_stats", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ComfyUI did not answer within {timeout} s:\n{self.log_text()[-4000:]}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop ComfyUI (idempotent); the base directory stays."""
        if self._process is not None:
            _stop_process(self._process)
            self._process = None

    def restart(self, timeout: float = START_TIMEOUT) -> ComfyUIProcess:
        """Stop and start again with the same base directory (new port); returns self."""
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self, since_start: bool = False) -> str:
        """Everything ComfyUI printed (stdout and stderr), or only since the last start."""
        data = self.log_path.read_bytes() if self.log_path.exists() else b""
        return data[self._log_offset if since_start else 0:].decode("utf-8", errors="replace")

    # -- HTTP ----------------------------------------------------------------------
    def get(self, path: str, timeout: float = 30.0) -> HTTPAnswer:
        return http("GET", f"{self.url}{path}", timeout=timeout)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> HTTPAnswer:
        return http("POST", f"{self.url}{path}", body, **kwargs)

    def object_info(self) -> dict[str, Any]:
        """GET /object_info: every node definition the server knows."""
        return self.get("/object_info").json()

    def history(self, prompt_id: str | None = None) -> dict[str, Any]:
        """GET /history (all) or /history/<id>."""
        return self.get(f"/history/{prompt_id}" if prompt_id else "/history").json()

    def queue_prompt(self, prompt: dict[str, Any], client_id: str | None = None) -> str:
        """POST /prompt; returns the prompt id. PromptFailed (with ComfyUI's node_errors) if refused."""
        body: dict[str, Any] = {"prompt": prompt}
        if client_id:
            body["client_id"] = client_id
        answer = self.post("/prompt", body)
        if answer.status != 200:
            raise PromptFailed(f"POST /prompt refused with {answer.status}: {answer.text}")
        return answer.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = PROMPT_TIMEOUT) -> dict[str, Any]:
        """The /history entry of ``prompt_id`` once it has finished (success, error or interrupted)."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id).get(prompt_id)
            if entry is not None and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            if not self.running:
                raise PromptFailed(f"ComfyUI exited while running {prompt_id}:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")
            time.sleep(0.05)

    def wait_for_new_entry(self, known: Iterable[str], timeout: float = PROMPT_TIMEOUT) -> dict[str, Any]:
        """The first finished /history entry whose id is not in ``known`` (a prompt queued by the page)."""
        known = set(known)
        deadline = time.monotonic() + timeout
        while True:
            for prompt_id, entry in self.history().items():
                if prompt_id not in known and entry.get("status", {}).get("status_str") in ("success", "error"):
                    entry["prompt_id"] = prompt_id
                    return entry
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new prompt finished within {timeout} s")
            time.sleep(0.1)

    def post_prompt(self, prompt: dict[str, Any], timeout: float = PROMPT_TIMEOUT,
                    expect_success: bool = True) -> dict[str, Any]:
        """Queue ``prompt`` (API format), wait for it, return its /history entry.

        With ``expect_success`` a run that did not succeed raises PromptFailed with ComfyUI's messages.
        """
        prompt_id = self.queue_prompt(prompt)
        entry = self.wait(prompt_id, timeout)
        entry["prompt_id"] = prompt_id
        if expect_success and entry["status"]["status_str"] != "success":
            raise PromptFailed(f"prompt {prompt_id} did not succeed: {status_messages(entry)}")
        return entry

    def interrupt(self) -> None:
        """POST /interrupt: what Cancel in the frontend sends."""
        answer = self.post("/interrupt", {})
        assert answer.status == 200, answer.text

    def free_caches(self) -> None:
        """Drop ComfyUI's executor caches (POST /free), so the next prompt runs every node again.

        The worker applies the flag when it is idle, right after this request; the short wait
        covers the hand-over between its threads.
        """
        answer = self.post("/free", {"unload_models": True, "free_memory": True})
        assert answer.status == 200, answer.text
        time.sleep(0.3)

    def clear_result_cache(self) -> None:
        """Empty the pack's result cache, so the next run sends its requests."""
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def write_settings(self, settings: Mapping[str, Any]) -> None:
        """Merge ``settings`` into the frontend's settings of the default user (read at each page load)."""
        path = self.user_dir / "default" / "comfy.settings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(settings)
        path.write_text(json.dumps(current, indent=2))

    def add_input_picture(self, name: str, width: int = 512, height: int = 512) -> Path:
        """A deterministic picture in ComfyUI's input folder, for LoadImage (kept if already there)."""
        from PIL import Image

        from api_client.standin import render_picture

        path = self.input_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render_picture(11, 0, width, height)).save(path)
        return path

    def output_files(self, entry: dict[str, Any], node_id: str | None = None) -> list[Path]:
        """The pictures a finished prompt's nodes wrote (SaveImage to output, PreviewImage to temp)."""
        folders = {"output": self.output_dir, "temp": self.temp_dir, "input": self.input_dir}
        files = []
        for output_node, output in entry.get("outputs", {}).items():
            if node_id is not None and output_node != node_id:
                continue
            for image in output.get("images", []):
                files.append(folders[image["type"]] / image.get("subfolder", "") / image["filename"])
        return files


def status_messages(entry: dict[str, Any]) -> str:
    """ComfyUI's status messages of a history entry, errors in full, for assertion messages."""
    lines = []
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            lines.append(f"{kind}: node {data.get('node_id')} ({data.get('node_type')}): "
                         f"{data.get('exception_type')}: {data.get('exception_message')}")
        else:
            lines.append(kind)
    return "; ".join(lines) or "no messages"


def message_kinds(entry: dict[str, Any]) -> list[str]:
    """The kinds of ComfyUI's status messages, in order (execution_start, ..., execution_success)."""
    return [kind for kind, _ in entry.get("status", {}).get("messages", [])]


def cached_nodes(entry: dict[str, Any]) -> list[str]:
    """Nodes ComfyUI did not run because its own cache had their outputs."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_cached":
            return list(data.get("nodes", []))
    return []
