"""Local stand-in for the AI/ML API image endpoint (flux-2-lora and flux-2-lora-edit).

Real HTTP on 127.0.0.1 only, for tests and offline demos::

    from api_client.standin import StandInServer, render_picture

    with StandInServer(key="sk-test").start() as srv:
        srv.queue_post_faults([{"status": 429, "retry_after": "1"}])
        ...  # point a client at srv.base_url with key "sk-test"

Run it as a separate process with ``python -m api_client.standin``. ``LoraHost`` (lora_host.py) is a
second loopback server serving LoRA files and Hugging Face routes, for the LoRA check.
Only stdlib, numpy and Pillow are used, and nothing runs at import time.
"""

from .lora_host import LoraHost
from .pictures import credits_for, encode_picture, render_picture
from .server import StandInServer

__all__ = ["LoraHost", "StandInServer", "credits_for", "encode_picture", "render_picture"]
