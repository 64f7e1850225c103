"""Command line: ``python -m api_client.standin`` serves the stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .loopback import is_loopback
from .lora_host import LoraHost
from .server import StandInServer


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m api_client.standin",
        description="Local stand-in for the AI/ML API image generation endpoint (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--key", default="sk-standin-local", help="API key clients must send")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--b64", action="store_true", help="answer with b64_json instead of URLs")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--strict", action="store_true",
                        help="warn on stderr about requests the schema allows but that look like mistakes "
                             "(unknown fields, usually typos; 5.0 for an integer); they are still answered")
    parser.add_argument("--port-file", help="write the bound port to this file once listening")
    parser.add_argument("--lora-port", type=int, default=None,
                        help="also serve LoRA files and Hugging Face routes (the LoRA check's host) on this port "
                             "(0 picks a free one)")
    parser.add_argument("--lora-port-file", help="write the LoRA host's port to this file (implies --lora-port 0)")
    parser.add_argument("--lora-latency", type=float, default=0.0, help="seconds the LoRA host waits per answer")
    return parser


def _write_port(path: str, port: int) -> None:
    # Write then rename, so a polling script never reads a half-written file.
    with open(f"{path}.tmp", "w", encoding="utf-8") as fh:
        fh.write(f"{port}\n")
    os.replace(f"{path}.tmp", path)


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(f"--host must be a loopback address (127.0.0.1, ::1, localhost), not {args.host!r}")
    if args.latency < 0:
        parser.error("--latency must be >= 0")

    done = threading.Event()
    # Ctrl-C and SIGTERM (e.g. from a test harness) both just end the wait
    # loop. Installing a SIGINT handler explicitly also makes Ctrl-C work when
    # the process was started with SIGINT ignored (background shell jobs).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    srv = StandInServer(key=args.key, host=args.host, port=args.port, latency=args.latency,
                        response_mode="b64" if args.b64 else "url", verbose=args.verbose,
                        strict=args.strict)
    lora_port = 0 if args.lora_port is None and args.lora_port_file else args.lora_port
    lora = LoraHost(host=args.host, port=lora_port, latency=args.lora_latency,
                    verbose=args.verbose) if lora_port is not None else None
    try:
        srv.start()
        if lora is not None:
            lora.start()
    except OSError as exc:
        print(f"stand-in: cannot listen on {args.host}: {exc}", file=sys.stderr)
        srv.stop()
        return 1
    try:
        if lora is not None and args.lora_port_file:
            _write_port(args.lora_port_file, lora.port)
        if args.port_file:
            _write_port(args.port_file, srv.port)
        print(f"AI/ML API stand-in listening on {srv.root_url} (Ctrl-C to stop)")
        print(f"export AIML_API_BASE={srv.base_url}")
        print(f"export AIML_API_KEY={args.key}", flush=True)
        if lora is not None:
            print(f"LoRA host on {lora.root_url}: export HF_ENDPOINT={lora.root_url}", flush=True)
        while not done.wait(0.5):  # short waits keep Ctrl-C responsive
            pass
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        if lora is not None:
            lora.stop()
    print("stand-in stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
