"""Request validation for the stand-in, driven by the official OpenAPI files.

A small validator for the OpenAPI subset used in ``api_client/api/schema/*.json``
that refuses exactly what the schema refuses, plus the rules the schema states
in prose (sizes are multiples of 32; ``image_urls`` holds URLs or base64 data
URIs). JSON Schema semantics throughout: unknown properties are allowed (and
ignored), and ``2.0`` is an integer.

What a careful client should still not send (an unknown property, usually a
typo; a fractional ``num_images``; ``5.0`` for an integer; a blank prompt) is
collected as *notes* on the checked request. The server turns them into
warnings in strict mode (``StandInServer(strict=True)``, ``--strict``) and
ignores them otherwise; it never refuses a request for them.
"""

from __future__ import annotations

import difflib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

# The stand-in answers exactly as the pack's limits describe the API: one source of truth.
from ..api.limits import MODEL_EDIT, PRESET_PIXELS, SCHEMA_FILES, SEED_MAX, request_schema


class RequestError(Exception):
    """A request the API would refuse; ``status`` is the HTTP code to answer with."""

    def __init__(self, path: str, message: str, status: int = 422) -> None:
        self.path = path
        self.status = status
        super().__init__(f"{path}: {message}" if path else message)


@dataclass
class GenerationRequest:
    """A validated request with defaults filled in."""

    model: str
    prompt: str
    width: int
    height: int
    num_images: int
    output_format: str
    seed: int
    loras: list[dict[str, Any]] | None
    image_urls: list[str] = field(default_factory=list)
    # The size the body asked for (None: not given, the schema's default applies).
    size_given: bool = False
    # Allowed by the schema but probably a client mistake; warnings in strict mode.
    notes: list[str] = field(default_factory=list)

    @property
    def is_edit(self) -> bool:
        """True for the image-editing model."""
        return self.model == MODEL_EDIT


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_ok(value: Any, expected: str) -> bool:
    # bool is a subclass of int in Python but never a JSON number.
    if expected == "integer":
        # JSON Schema: an integer is a number without a fractional part, so 2.0 is one.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "array":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    return True  # unknown type names: do not guess


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def validate(value: Any, schema: dict[str, Any], path: str = "", notes: list[str] | None = None) -> None:
    """Check ``value`` against an OpenAPI schema subset; raise ``RequestError``.

    Supported keywords: type, enum, minimum, maximum, maxLength, minItems,
    maxItems, required, properties, items, anyOf. Properties not in
    ``properties`` are allowed, as in JSON Schema; they, and integers written
    as floats, are added to ``notes`` when given. ``default``, ``description``,
    ``format`` and ``title`` are ignored.
    """
    if "anyOf" in schema:
        _validate_any_of(value, schema["anyOf"], path, notes)
    expected = schema.get("type")
    if expected and not _type_ok(value, expected):
        raise RequestError(path, f"expected {expected}, got {_json_type(value)} {json.dumps(value)[:60]}")
    if expected == "integer" and isinstance(value, float) and notes is not None:
        notes.append(f"{path}: {value} is an integer by JSON Schema's rules, but send {int(value)}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        raise RequestError(path, f"{json.dumps(value)[:60]} is not one of {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise RequestError(path, f"{value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise RequestError(path, f"{value} is above the maximum {schema['maximum']}")
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        raise RequestError(path, f"is {len(value)} characters long, the maximum is {schema['maxLength']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise RequestError(path, f"has {len(value)} items, the minimum is {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise RequestError(path, f"has {len(value)} items, the maximum is {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                validate(item, schema["items"], _join(path, i), notes)
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                raise RequestError(_join(path, name), "is required")
        props = schema.get("properties")
        if props is not None:
            for name, item in value.items():
                if name in props:
                    validate(item, props[name], _join(path, name), notes)
                elif notes is not None:
                    notes.append(_unknown_note(_join(path, name), name, props))


def _unknown_note(path: str, name: str, props: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(props), n=1, cutoff=0.6)
    hint = f" (a typo of {close[0]!r}?)" if close else f" (known: {', '.join(sorted(props))})"
    return f"{path}: not in the official schema, so the API ignores it{hint}"


def _validate_any_of(value: Any, options: list[dict[str, Any]], path: str, notes: list[str] | None) -> None:
    errors: list[tuple[bool, RequestError]] = []
    for option in options:
        try:
            branch_notes: list[str] = []
            validate(value, option, path, branch_notes)
            if notes is not None:
                notes.extend(branch_notes)
            return
        except RequestError as exc:
            errors.append((_type_ok(value, option.get("type", "")), exc))
    # Prefer the error of the branch whose type matched: "width: 4096 is above
    # the maximum" is more useful than "expected string".
    matching = [exc for type_ok, exc in errors if type_ok]
    if len(matching) == 1:
        raise matching[0]
    forms = " or ".join(o.get("type", "?") for o in options)
    raise RequestError(path, f"{json.dumps(value)[:60]} matches none of the allowed forms ({forms})")


def _check_image_url(url: str, path: str) -> None:
    if url.startswith(("https://", "http://")) and len(url) > len("https://"):
        return
    head, comma, _ = url.partition(",")
    if comma and head.startswith("data:image/") and head.endswith(";base64"):
        return
    raise RequestError(path, "must be an http(s) URL or a data:image/...;base64, URI")


def check_request(body: Any) -> GenerationRequest:
    """Validate a parsed request body and resolve defaults.

    Raises ``RequestError`` (status 400 for a non-object body, 422 otherwise)
    whose message starts with the offending field path. What the schema allows
    but a careful client would not send is in the result's ``notes``.
    """
    if not isinstance(body, dict):
        raise RequestError("", f"request body must be a JSON object, got {_json_type(body)}", status=400)
    model = body.get("model")
    if "model" not in body:
        raise RequestError("model", "is required")
    if model not in SCHEMA_FILES:
        known = ", ".join(sorted(SCHEMA_FILES))
        raise RequestError("model", f"unknown model {json.dumps(model)[:80]} (the stand-in serves: {known})")
    schema = request_schema(model)
    notes: list[str] = []
    validate(body, schema, notes=notes)
    if "image_urls" in body and "image_urls" not in schema["properties"]:
        notes[:] = [n for n in notes if not n.startswith("image_urls:")]
        notes.append(f"image_urls: {model} takes no pictures, so the API ignores them (Edit is {MODEL_EDIT})")

    prompt = body["prompt"]
    if not prompt.strip():
        notes.append("prompt: is blank (nothing but spaces); the schema allows it, the pack never sends it")

    size = body.get("image_size", schema["properties"]["image_size"]["default"])
    if isinstance(size, str):
        width, height = PRESET_PIXELS[size]
    else:
        size_props = schema["properties"]["image_size"]["anyOf"][0]["properties"]
        width = size.get("width", size_props["width"].get("default", 1024))
        height = size.get("height", size_props["height"].get("default", 768))
        for name, val in (("width", width), ("height", height)):
            if val % 32:
                raise RequestError(f"image_size.{name}", f"{val} is not a multiple of 32")

    num = body.get("num_images", 1)
    # The schema says "number" (1 to 4), so 2.5 is allowed; the stand-in makes whole pictures only.
    if isinstance(num, float) and not num.is_integer():
        notes.append(f"num_images: {num} is not a whole number; the stand-in makes {math.floor(num)}")
    num = math.floor(num)

    image_urls = body.get("image_urls", []) if "image_urls" in schema["properties"] else []
    for i, url in enumerate(image_urls):
        _check_image_url(url, f"image_urls[{i}]")

    seed = body.get("seed")
    if seed is None:
        # Like the real service: no seed means a fresh random one.
        seed = random.randint(1, SEED_MAX)
    loras = body.get("loras")
    return GenerationRequest(
        model=model,
        prompt=prompt,
        width=int(width),
        height=int(height),
        num_images=num,
        output_format=body.get("output_format", schema["properties"]["output_format"]["default"]),
        seed=int(seed),
        loras=loras,
        image_urls=list(image_urls),
        size_given="image_size" in body,
        notes=notes,
    )
