"""What the stand-in answers to POST /v1/images/generations (no HTTP plumbing here).

The HTTP handler reads the request, then asks ``answer_generation`` for an
``Answer`` (or ``None``, meaning "hang up without answering") and writes it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from .answers import Answer, authorized, error_answer, json_answer, parse_body
from .files import file_store_name
from .pictures import FORMATS, credits_for, decode_data_uri, decode_picture, encode_picture, render_picture
from .schema_check import GenerationRequest, RequestError, check_request

if TYPE_CHECKING:
    from .state import GenerationState

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _load_inputs(srv: GenerationState, req: GenerationRequest) -> list[np.ndarray]:
    pictures = []
    for i, url in enumerate(req.image_urls):
        path = f"image_urls[{i}]"
        if url.startswith("data:"):
            try:
                data = decode_data_uri(url)
            except ValueError as exc:
                raise RequestError(path, str(exc)) from None
        else:
            # Only this server's own files can be resolved: the stand-in must
            # never send traffic anywhere, so it resolves them from memory.
            parts = urlsplit(url)
            name = file_store_name(parts.path)
            if parts.hostname not in LOCAL_HOSTS or parts.port != srv.port or name is None:
                raise RequestError(path, "stand-in cannot fetch remote URLs (use a data URI)")
            data = srv.store.get(name)
            if data is None:
                raise RequestError(path, "no such file on this stand-in (evicted or never made)")
        try:
            pictures.append(decode_picture(data))
        except Exception as exc:  # Pillow raises many types for bad input
            raise RequestError(path, f"not a decodable image ({type(exc).__name__})") from None
    return pictures


def _pictures(srv: GenerationState, req: GenerationRequest, fault: dict[str, Any]) -> list[np.ndarray]:
    sizes = fault.get("sizes") or ([fault["size"]] if "size" in fault else None)
    if req.is_edit:
        inputs = _load_inputs(srv, req)
        srv.received_images = inputs
        out = [inputs[i % len(inputs)] for i in range(req.num_images)]
        # The edit comes back as the input picture, unchanged (so tests can check pixels both
        # ways), resized to the requested size when the body gives one.
        if not sizes and req.size_given:
            sizes = [(req.width, req.height)]
        if sizes:
            out = [
                np.asarray(Image.fromarray(p).resize(tuple(sizes[i % len(sizes)]), Image.NEAREST))
                for i, p in enumerate(out)
            ]
        return out
    result = []
    for i in range(req.num_images):
        w, h = sizes[i % len(sizes)] if sizes else (req.width, req.height)
        result.append(render_picture(req.seed, i, w, h, req.prompt, req.loras))
    return result


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` with or without parameters (``; charset=utf-8``)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def answer_generation(srv: GenerationState, auth_header: str | None, raw: bytes,
                      fault: dict[str, Any] | None, content_type: str | None = "application/json") -> Answer | None:
    """Decide the answer for one generation POST; ``None`` means drop the connection.

    Faults that decide the whole answer are applied before auth and validation.
    """
    fault = fault or {}
    if fault.get("drop"):
        return None
    if "body" in fault:
        raw_body = fault["body"]
        raw_bytes = raw_body.encode("utf-8") if isinstance(raw_body, str) else raw_body
        headers = {"Retry-After": fault["retry_after"]} if "retry_after" in fault else {}
        return Answer(fault.get("status", 200), raw_bytes, fault.get("content_type", "application/json"), headers)
    if "status" in fault:
        headers = {"Retry-After": fault["retry_after"]} if "retry_after" in fault else {}
        if "location" in fault:
            headers["Location"] = fault["location"]
        return error_answer(fault["status"], fault.get("message", "stand-in fault"), headers)
    if "data" in fault:
        count = len(fault["data"]) if isinstance(fault["data"], list) else 1
        usage = {"credits_used": credits_for([(1024, 768)] * count)}
        answer = json_answer(200, {"data": fault["data"], "meta": {"usage": usage}})
        answer.credits = usage["credits_used"]
        return answer

    if not authorized(auth_header, srv.key):
        # Never echo what was received: it may be someone's real key.
        return error_answer(401, "Missing or invalid API key: send 'Authorization: Bearer <key>'")
    if not is_json_media_type(content_type):
        # The schema's only request body is application/json; the API does not read form fields.
        shown = (content_type or "none")[:80]
        return error_answer(400, f"Body validation error: send the body as JSON with 'Content-Type: "
                                 f"application/json' (got Content-Type {shown})")
    try:
        body = parse_body(raw)
    except ValueError as exc:
        return error_answer(400, f"request body is not valid JSON ({str(exc)[:120]})")
    gone = srv.accounts.deprecations.withdrawn(body.get("model")) if isinstance(body, dict) else None
    if gone is not None:
        return error_answer(404, f"Model {gone['id']} was withdrawn; use {gone['replaced_by'] or 'another model'}")
    try:
        req = check_request(body)
        srv.note(req.notes)
        pictures = _pictures(srv, req, fault)
    except RequestError as exc:
        return error_answer(exc.status, str(exc))

    _, ext, _ = FORMATS[req.output_format]
    items = []
    for picture in pictures:
        encoded = encode_picture(picture, req.output_format)
        if "url" in fault:
            items.append({"url": fault["url"], "b64_json": None})
        elif srv.response_mode == "b64":
            items.append({"url": None, "b64_json": base64.b64encode(encoded).decode("ascii")})
        else:
            name = srv.store.put(encoded, ext)
            items.append({"url": f"{srv.root_url}/files/{name}", "b64_json": None})
    usage = fault["usage"] if "usage" in fault else {
        "credits_used": credits_for([(p.shape[1], p.shape[0]) for p in pictures])
    }
    answer = json_answer(200, {"data": items, "meta": {"usage": usage}}, {"X-Standin-Seed": str(req.seed)})
    billed = usage.get("credits_used") if isinstance(usage, dict) else None
    # A test's own "usage" is what it wants read; the headers then follow it or stay away.
    sane = isinstance(billed, int) and not isinstance(billed, bool) and 0 <= billed <= 10**15
    answer.credits = billed if sane else None
    return answer


def credits_asked(raw: bytes) -> int:
    """What a valid generation body would bill (for a log row of an answer that never went out)."""
    try:
        req = check_request(parse_body(raw))
    except (ValueError, RequestError):
        return 0
    return credits_for([(req.width, req.height)] * req.num_images)
