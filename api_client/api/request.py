"""Building and validating generation requests before anything is sent.

Every check here runs before the first byte goes out, so bad input is never
billed. Messages name the input, the allowed range and the value given. Values
may come from other nodes, so types are checked strictly: a FLOAT where an INT
belongs, a bool posing as a number or a None from an unconnected input is refused.
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, shown_url
from ..settings import is_loopback_host, url_host
from .limits import (
    LIMITS,
    MODEL_EDIT,
    MODEL_GENERATE,
    NODE_IMAGES_MAX,
    PRESET_PIXELS,
    SEED_MAX,
    SIZE_MULTIPLE,
)

# owner/repo or owner/repo/path/to/file.safetensors, as Hugging Face names them.
_HF_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_HF_PATH = re.compile(rf"^{_HF_NAME}/{_HF_NAME}(?:/[A-Za-z0-9._-]+)*$")
_MAX_URL_CHARS = 2048
_HF_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co"})


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(name: str, rule: str, value: Any, hint: str = "") -> InputError:
    message = f"{name}: {rule}; got {_shown(value)}."
    return InputError(f"{message} {hint}".strip())


def _wrong_type(value: Any, wanted: str) -> str:
    """The hint for a value of the wrong type, e.g. from an unconnected optional input."""
    kind = "nothing (is an optional input unconnected?)" if value is None else f"a {type(value).__name__}"
    return f"It received {kind}; connect {wanted}."


def _is_bool(value: Any) -> bool:
    # numpy's bool_ is no int subclass, yet a bool all the same.
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool8")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int within [low, high]; any integer type (numpy's too), not floats or bools."""
    rule = f"must be a whole number from {low} to {high}" if high is not None else f"must be at least {low}"
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise _fail(name, rule, value, _wrong_type(value, "an INT"))
    if value < low or (high is not None and value > high):
        raise _fail(name, rule, value)
    return int(value)


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a finite float within [low, high]; any real number type (numpy's too), not bools."""
    rule = f"must be a number from {low:g} to {high:g}"
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise _fail(name, rule, value, _wrong_type(value, "a FLOAT"))
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise _fail(name, rule, value)
    return number


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real bool."""
    if not isinstance(value, bool):
        raise _fail(name, "must be true or false", value, "Connect a BOOLEAN.")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise _fail(name, f"must be one of {', '.join(choices)}", value)
    return value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Blank letters that are not format characters, yet show nothing (Hangul fillers, the blank Braille cell).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _is_invisible(ch: str) -> bool:
    """Spaces, control and format characters (zero-width space, joiners, BOM) and blank letters."""
    return ch.isspace() or ch in _BLANK_LETTERS or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def check_prompt(value: Any) -> str:
    """The prompt with surrounding whitespace removed, 1..max characters."""
    high = LIMITS.prompt_max_chars
    if not isinstance(value, str):
        raise _fail("prompt", f"must be text of 1 to {high} characters", value, "Connect a STRING.")
    broken = _LONE_SURROGATE.search(value)
    if broken:
        # It cannot be encoded as UTF-8, so it could be neither hashed for the cache nor sent.
        raise InputError(
            f"prompt: has a broken character at position {broken.start() + 1} (half of an emoji or other "
            "symbol, as left by cutting text in the middle of it); delete it or paste the symbol again.")
    text = value.strip()
    if not text or all(_is_invisible(ch) for ch in text):
        raise InputError(f"prompt: is empty; it must be 1 to {high} characters. Describe the picture to generate.")
    if len(text) > high:
        raise InputError(
            f"prompt: must be at most {high} characters; got {len(text)}. Shorten it by {len(text) - high} characters."
        )
    return text


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed the API accepts and the node contract allows."""
    return check_int(name, value, LIMITS.seed_min, SEED_MAX)


def check_image_size(value: Any) -> str | dict[str, int] | None:
    """A FLUX2_IMAGE_SIZE: None (API default), a preset name or {"width", "height"}."""
    if value is None:
        return None
    presets = LIMITS.size_presets
    if isinstance(value, str):
        return check_choice("image_size", value, presets)
    low, high = LIMITS.size_range
    if isinstance(value, Mapping) and set(value) == {"width", "height"}:
        size = {}
        for axis in ("width", "height"):
            number = check_int(f"image_size.{axis}", value[axis], low, high)
            if number % SIZE_MULTIPLE:
                below = number - number % SIZE_MULTIPLE
                raise _fail(
                    f"image_size.{axis}",
                    f"must be a multiple of {SIZE_MULTIPLE} from {low} to {high}",
                    number,
                    f"Try {max(below, low)} or {min(below + SIZE_MULTIPLE, high)}.",
                )
            size[axis] = number
        return size
    raise _fail(
        "image_size",
        f"must come from the Image Size node: a preset ({', '.join(presets)}) or "
        '{"width": W, "height": H}',
        value,
    )


def expected_pixels(image_size: str | Mapping[str, int] | None) -> tuple[int, int]:
    """Width and height the API should return for a checked image_size."""
    if image_size is None:
        return PRESET_PIXELS[LIMITS.size_default]
    if isinstance(image_size, str):
        return PRESET_PIXELS[image_size]
    return int(image_size["width"]), int(image_size["height"])


@dataclass(frozen=True)
class Lora:
    """One LoRA adapter: a https URL or Hugging Face ``owner/repo[/file]``, and its scale."""

    path: str
    scale: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "scale": self.scale}


def check_lora_path(value: Any, name: str = "path") -> str:
    """A LoRA location the API can fetch: https URL or Hugging Face name."""
    rule = "must be a https URL or a Hugging Face name owner/repo[/file.safetensors]"
    if not isinstance(value, str):
        raise _fail(name, rule, value, "Connect a STRING.")
    path = value.strip()
    if "://" in path:
        shown = shown_url(path, limit=120)  # never the user name or password, whatever else is wrong
        if len(path) > _MAX_URL_CHARS:
            raise _fail(name, f"{rule}, at most {_MAX_URL_CHARS} characters", shown, f"It has {len(path)}.")
        try:
            scheme, host = url_host(path)
        except ValueError as exc:
            hint = "Remove the credentials from the URL." if "credentials" in str(exc) else "Copy the URL again."
            raise _fail(name, rule, shown, f"Refused because {exc}. {hint}") from None
        if not host or not (scheme == "https" or (scheme == "http" and is_loopback_host(host))):
            # Plain http only for loopback hosts (a local LoRA host), as for every URL of the pack.
            raise _fail(name, rule, shown, "Plain http (except to 127.0.0.1/localhost) and other schemes are not "
                                           "accepted.")
        return path
    if not _HF_PATH.match(path) or ".." in path.split("/"):
        # "user:password@host/..." without "://" is no URL either, yet it may hold a password.
        shown = shown_url(path, limit=120) if "@" in path else path
        raise _fail(name, rule, shown, "Example: someone/flux2-style-lora")
    parts = path.split("/")
    if parts[0].lower() in _HF_HOSTS:
        # Without https:// this reads as owner "huggingface.co": refused, naming what to write instead.
        owner_repo, rest = parts[1:3], parts[3:]
        if len(rest) >= 2 and rest[0] in ("blob", "resolve"):
            rest = rest[2:]  # the branch ("main") of a web page's address
        wanted = "/".join(owner_repo + rest) if len(owner_repo) == 2 else "owner/repo"
        raise _fail(name, rule, path, f"That is a Hugging Face web address without https://; write {wanted!r} "
                                      "(the Hugging Face name), or the file's full https:// URL.")
    return path


def check_loras(value: Any, name: str = "loras") -> tuple[Lora, ...]:
    """A FLUX2_LORAS chain: None or a list of {"path", "scale"} items, at most the API's limit."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _fail(name, "must be a list of LoRAs from the Flux2 LoRA Adapter node", value)
    most = LIMITS.loras_max
    if len(value) > most:
        raise InputError(
            f"{name}: the API accepts at most {most} LoRAs per request; got {len(value)}. "
            "Remove an adapter from the chain."
        )
    low, high = LIMITS.lora_scale_range
    out = []
    for i, item in enumerate(value):
        where = f"{name}[{i + 1}]"
        if isinstance(item, Lora):
            item = item.to_json()
        if not isinstance(item, Mapping) or "path" not in item or not set(item) <= {"path", "scale"}:
            raise _fail(where, 'must be {"path": ..., "scale": ...} from the Flux2 LoRA Adapter node', item)
        path = check_lora_path(item["path"], f"{where}.path")
        scale = check_float(f"{where}.scale", item.get("scale", 1.0), low, high)
        out.append(Lora(path, scale))
    return tuple(out)


def check_image_count(count: int, name: str = "image_urls", detail: str = "") -> int:
    """``count`` if the edit model accepts that many input pictures; ``detail`` says where they came from."""
    low, high = LIMITS.edit_images_range
    if not low <= count <= high:
        hint = ("Connect a picture." if count < low else
                f"Send at most {high}, e.g. pick pictures from a batch with ComfyUI's 'ImageFromBatch' node.")
        raise InputError(f"{name}: the edit model takes {low} to {high} pictures in total; got {count}{detail}. {hint}")
    return count


def _is_image_url(url: str) -> bool:
    if url.startswith("data:"):
        comma = url.find(",", 0, 100)  # no copy of the (megabytes long) payload
        head = url[:comma]
        return 0 < comma < len(url) - 1 and head.startswith("data:image/") and head.endswith(";base64")
    try:
        scheme, host = url_host(url)
    except ValueError:
        return False
    return len(url) <= _MAX_URL_CHARS and bool(host) and (
        scheme == "https" or (scheme == "http" and is_loopback_host(host)))


def check_image_urls(value: Any, model: str) -> tuple[str, ...]:
    """The input pictures of a request: 1 to 3 for the edit model, none for text-to-image."""
    if model != MODEL_EDIT:
        if value:
            raise InputError(f"image_urls: only {MODEL_EDIT} takes input pictures, not {model}.")
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail("image_urls", "must be a list of picture URLs", value)
    check_image_count(len(value))
    for i, url in enumerate(value):
        if not isinstance(url, str) or not _is_image_url(url):
            raise _fail(f"image_urls[{i + 1}]", "must be a https URL or a data:image/...;base64, URI", url)
    return tuple(value)


@dataclass(frozen=True)
class GenerationRequest:
    """One POST to /images/generations: checked values, at most the API's per-request image count."""

    prompt: str
    seed: int
    num_images: int
    guidance_scale: float
    num_inference_steps: int
    acceleration: str
    output_format: str
    enable_prompt_expansion: bool
    enable_safety_checker: bool
    image_size: str | dict[str, int] | None = None
    loras: tuple[Lora, ...] = ()
    model: str = MODEL_GENERATE
    image_urls: tuple[str, ...] = field(default=(), repr=False)

    def to_body(self) -> dict[str, Any]:
        """The JSON body, with every setting explicit so results are reproducible."""
        body: dict[str, Any] = {"model": self.model, "prompt": self.prompt}
        if self.image_urls:
            body["image_urls"] = list(self.image_urls)
        body.update(
            seed=self.seed,
            num_images=self.num_images,
            guidance_scale=self.guidance_scale,
            num_inference_steps=self.num_inference_steps,
            acceleration=self.acceleration,
            output_format=self.output_format,
            enable_prompt_expansion=self.enable_prompt_expansion,
            enable_safety_checker=self.enable_safety_checker,
        )
        if self.image_size is not None:
            body["image_size"] = dict(self.image_size) if isinstance(self.image_size, Mapping) else self.image_size
        if self.loras:
            body["loras"] = [lora.to_json() for lora in self.loras]
        return body

    @property
    def expected_pixels(self) -> tuple[int, int]:
        return expected_pixels(self.image_size)


def build_requests(
    *,
    prompt: Any,
    seed: Any,
    num_images: Any,
    guidance_scale: Any,
    num_inference_steps: Any,
    acceleration: Any,
    output_format: Any,
    enable_prompt_expansion: Any,
    enable_safety_checker: Any,
    image_size: Any = None,
    loras: Any = None,
    model: str = MODEL_GENERATE,
    image_urls: Sequence[str] = (),
) -> list[GenerationRequest]:
    """Check a node's inputs and split them into API requests.

    ``num_images`` above the API's per-request maximum becomes several requests;
    request *k* uses seed ``seed + k`` so every picture differs and re-runs repeat.
    Past the top of the range the seeds wrap around to 1 (2147483647, 1, 2, 3), so
    every seed sent stays within the range the node and the API allow.
    ``image_urls`` (1 to 3 https or data URIs) go with ``model=MODEL_EDIT``; every
    request of a batch carries them all.
    """
    per_request = LIMITS.images_per_request_max
    total = check_int("num_images", num_images, 1, NODE_IMAGES_MAX)
    common = dict(
        prompt=check_prompt(prompt),
        guidance_scale=check_float("guidance_scale", guidance_scale, *LIMITS.guidance_range),
        num_inference_steps=check_int("num_inference_steps", num_inference_steps, *LIMITS.steps_range),
        acceleration=check_choice("acceleration", acceleration, LIMITS.accelerations),
        output_format=check_choice("output_format", output_format, LIMITS.output_formats),
        enable_prompt_expansion=check_bool("enable_prompt_expansion", enable_prompt_expansion),
        enable_safety_checker=check_bool("enable_safety_checker", enable_safety_checker),
        image_size=check_image_size(image_size),
        loras=check_loras(loras),
        model=model,
        image_urls=check_image_urls(image_urls, model),
    )
    first_seed = check_seed(seed)
    counts = [per_request] * (total // per_request) + ([total % per_request] if total % per_request else [])
    return [GenerationRequest(seed=batch_seed(first_seed, k), num_images=n, **common) for k, n in enumerate(counts)]


def batch_seed(seed: int, k: int) -> int:
    """The seed of request ``k`` of a batch: ``seed + k``, wrapping around from the top of the range to 1."""
    low = LIMITS.seed_min
    return low + (seed - low + k) % (SEED_MAX - low + 1)
