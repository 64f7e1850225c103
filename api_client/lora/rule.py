"""The decision rule: which model a LoRA's safetensors header was made for (pure, no I/O).

Conservative by design (see docs in the README's "LoRA check"): a file is called
FLUX.2 [dev] only when every adapted layer maps to FLUX.2 [dev]'s table with its
sizes and block index; another model only when a layer proves it (its name and
both sizes together, never one number alone: 18432, 36864 and 12288 occur in
several models); anything else is ``unknown``, which is warned about, never refused.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FLUX2_DEV = "FLUX.2 [dev]"
FLUX1_DEV = "FLUX.1 [dev]"
KLEIN_4B = "FLUX.2 [klein] 4B"
KLEIN_9B = "FLUX.2 [klein] 9B"
QWEN_IMAGE = "Qwen-Image"

# Verdicts (also the values of the info output's lora_checks[].verdict).
OK = "flux2-dev"
UNKNOWN = "unknown"
OTHER_MODEL = "other-model"
NOT_A_LORA = "not-a-lora"

# Each model's layers, by flattened name (prefixes stripped, "." -> "_"): (in, out) for the layers of a
# double-stream block, of a single-stream block and outside the blocks, and how many blocks of each kind.


@dataclass(frozen=True)
class _Model:
    name: str
    doubles: int
    singles: int
    double: Mapping[str, tuple[int, int]]
    single: Mapping[str, tuple[int, int]]
    other: Mapping[str, tuple[int, int]]


def _flux2(name: str, h: int, doubles: int, singles: int, context: int, channels: int = 128) -> _Model:
    """A FLUX.2 transformer (dev or klein): BFL/ai-toolkit/kohya names and diffusers names."""
    double = {
        "attn_qkv": (h, 3 * h), "attn_proj": (h, h), "mlp_0": (h, 6 * h), "mlp_2": (3 * h, h),
        "attn_to_q": (h, h), "attn_to_k": (h, h), "attn_to_v": (h, h),
        "attn_add_q_proj": (h, h), "attn_add_k_proj": (h, h), "attn_add_v_proj": (h, h),
        "attn_to_out_0": (h, h), "attn_to_add_out": (h, h),
        "ff_linear_in": (h, 6 * h), "ff_context_linear_in": (h, 6 * h),
        "ff_linear_out": (3 * h, h), "ff_context_linear_out": (3 * h, h),
    }
    single = {"linear1": (h, 9 * h), "linear2": (4 * h, h),
              "attn_to_qkv_mlp_proj": (h, 9 * h), "attn_to_out": (4 * h, h)}
    other = {
        "img_in": (channels, h), "txt_in": (context, h), "x_embedder": (channels, h), "context_embedder": (context, h),
        "time_in_in_layer": (256, h), "time_in_out_layer": (h, h),
        "guidance_in_in_layer": (256, h), "guidance_in_out_layer": (h, h),
        "final_layer_linear": (h, channels), "proj_out": (h, channels),
        "double_stream_modulation_img_lin": (h, 6 * h), "double_stream_modulation_txt_lin": (h, 6 * h),
        "single_stream_modulation_lin": (h, 3 * h),
        "double_stream_modulation_img_linear": (h, 6 * h), "double_stream_modulation_txt_linear": (h, 6 * h),
        "single_stream_modulation_linear": (h, 3 * h),
    }
    return _Model(name, doubles, singles, double, single, other)


def _flux1() -> _Model:
    h, context, channels = 3072, 4096, 64
    double = {
        "attn_qkv": (h, 3 * h), "attn_proj": (h, h), "mlp_0": (h, 4 * h), "mlp_2": (4 * h, h), "mod_lin": (h, 6 * h),
        "attn_to_q": (h, h), "attn_to_k": (h, h), "attn_to_v": (h, h),
        "attn_add_q_proj": (h, h), "attn_add_k_proj": (h, h), "attn_add_v_proj": (h, h),
        "attn_to_out_0": (h, h), "attn_to_add_out": (h, h),
        "ff_net_0_proj": (h, 4 * h), "ff_net_2": (4 * h, h), "ff_context_net_0_proj": (h, 4 * h),
        "ff_context_net_2": (4 * h, h), "norm1_linear": (h, 6 * h), "norm1_context_linear": (h, 6 * h),
    }
    single = {"linear1": (h, 7 * h), "linear2": (5 * h, h), "modulation_lin": (h, 3 * h),
              "attn_to_q": (h, h), "attn_to_k": (h, h), "attn_to_v": (h, h),
              "proj_mlp": (h, 4 * h), "proj_out": (5 * h, h), "norm_linear": (h, 3 * h)}
    other = {"img_in": (channels, h), "txt_in": (context, h), "x_embedder": (channels, h),
             "context_embedder": (context, h), "vector_in_in_layer": (768, h), "final_layer_linear": (h, channels),
             "proj_out": (h, channels)}
    return _Model(FLUX1_DEV, 19, 38, double, single, other)


def _qwen_image() -> _Model:
    h = 3072
    double = {
        "attn_to_q": (h, h), "attn_to_k": (h, h), "attn_to_v": (h, h),
        "attn_add_q_proj": (h, h), "attn_add_k_proj": (h, h), "attn_add_v_proj": (h, h),
        "attn_to_out_0": (h, h), "attn_to_add_out": (h, h),
        "img_mlp_net_0_proj": (h, 4 * h), "img_mlp_net_2": (4 * h, h),
        "txt_mlp_net_0_proj": (h, 4 * h), "txt_mlp_net_2": (4 * h, h),
        "img_mod_1": (h, 6 * h), "txt_mod_1": (h, 6 * h),
    }
    return _Model(QWEN_IMAGE, 60, 0, double, {}, {"img_in": (64, h), "txt_in": (3584, h)})


_FLUX2_DEV_MODEL = _flux2(FLUX2_DEV, 6144, 8, 48, 15360)
_MODELS = (
    _FLUX2_DEV_MODEL,
    _flux2(KLEIN_9B, 4096, 8, 24, 12288),
    _flux2(KLEIN_4B, 3072, 5, 20, 7680),
    _flux1(),
    _qwen_image(),
)


# Block layouts: (regex on the flattened name, kind). Group 1 is the block index, group 2 the layer.
_DOUBLE = re.compile(r"^(?:double_blocks|transformer_blocks)_(\d+)_(.+)$")
_SINGLE = re.compile(r"^(?:single_blocks|single_transformer_blocks)_(\d+)_(.+)$")
_BFL_DOUBLE_LAYER = re.compile(r"^(img|txt)_(attn_qkv|attn_proj|mlp_0|mlp_2|mod_lin)$")
_SD_NAMES = re.compile(r"(^|_)(down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block)_|"
                       r"^(te[12]?_)?text_model_|^lora_te[12]?_")
_SD3_NAMES = re.compile(r"^joint_blocks_\d+_(context|x)_block_")
# Adapter weights: (suffix, role). Roles: down [r, in], up [out, r], and LyCORIS factors.
_ADAPTER_SUFFIXES = (
    (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"),
    (".lora_down.weight", "down"), (".lora_up.weight", "up"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    ("_lora.down.weight", "down"), ("_lora.up.weight", "up"),
    (".lora_mid.weight", "mid"), (".alpha", "alpha"), (".dora_scale", "extra"),
    (".lora_magnitude_vector", "extra"),
    (".lokr_w1", "lokr_w1"), (".lokr_w2", "lokr_w2"),
    (".lokr_w1_a", "lokr_w1_a"), (".lokr_w1_b", "lokr_w1_b"),
    (".lokr_w2_a", "lokr_w2_a"), (".lokr_w2_b", "lokr_w2_b"), (".lokr_t2", "extra"),
    (".hada_w1_a", "hada_w1_a"), (".hada_w1_b", "hada_w1_b"),
    (".hada_w2_a", "hada_w2_a"), (".hada_w2_b", "hada_w2_b"), (".hada_t1", "extra"), (".hada_t2", "extra"),
)
_ADAPTER_ROLES = {"down", "up", "lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b",
                  "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"}
_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "unet.",
             "lora_unet_", "lycoris_", "lora_transformer_")
# FLUX.2 layers whose sizes the tables above leave out: accepted when their input is FLUX.2 [dev]'s hidden size.
_FLUX2_UNPINNED = re.compile(r"^(norm_out_linear|final_layer_adaln_modulation_1|"
                             r"time_guidance_embed_.*|time_text_embed_.*)$")


@dataclass(frozen=True)
class Finding:
    """What a header says: a verdict, the model it names (None if unknown), the trainer's format and rank."""

    verdict: str
    model: str | None
    format: str | None
    rank: int | None
    reason: str  # for people: what was found


@dataclass
class _Layer:
    name: str  # as found in the file, without the adapter suffix
    flat: str  # normalised: prefixes stripped, "." -> "_", lower case
    shapes: dict[str, list[int]]

    def sizes(self) -> tuple[int | None, int | None, bool]:
        """(in, out, conv) of the adapted layer, None where the file does not tell."""
        s = self.shapes
        conv = any(len(shape) == 4 for shape in s.values())
        if "down" in s or "up" in s:
            down, up = s.get("down"), s.get("up")
            return (down[1] if down and len(down) >= 2 else None,
                    up[0] if up and len(up) >= 1 else None, conv)
        if "hada_w1_a" in s or "hada_w1_b" in s:
            a, b = s.get("hada_w1_a"), s.get("hada_w1_b")
            return (b[1] if b and len(b) >= 2 else None, a[0] if a else None, conv)
        return (*_lokr_sizes(s), conv)

    def rank(self) -> int | None:
        down = self.shapes.get("down")
        if down:
            return down[0]
        up = self.shapes.get("up")
        if up and len(up) >= 2:
            return up[1]
        hada = self.shapes.get("hada_w1_b")
        return hada[0] if hada else None


def _lokr_sizes(s: Mapping[str, list[int]]) -> tuple[int | None, int | None]:
    """(in, out) of a LoKr layer: the Kronecker product of its two factors (each whole or as a/b)."""
    def factor(n: int) -> tuple[int, int] | None:
        whole = s.get(f"lokr_w{n}")
        if whole and len(whole) >= 2:
            return whole[0], whole[1]
        a, b = s.get(f"lokr_w{n}_a"), s.get(f"lokr_w{n}_b")
        if a and b and len(a) >= 2 and len(b) >= 2:
            return a[0], b[1]
        return None

    one, two = factor(1), factor(2)
    if one is None or two is None:
        return None, None
    return one[1] * two[1], one[0] * two[0]


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                changed = True
    return name


def adapter_layers(tensors: Mapping[str, Mapping[str, Any]]) -> dict[str, _Layer]:
    """The adapted layers of a header's tensors, by name (keys without an adapter suffix are left out)."""
    layers: dict[str, _Layer] = {}
    for key, info in tensors.items():
        for suffix, role in _ADAPTER_SUFFIXES:
            if key.endswith(suffix):
                name = key[: -len(suffix)]
                layer = layers.setdefault(name, _Layer(name, _strip(name).replace(".", "_").lower(), {}))
                layer.shapes[role] = list(info.get("shape") or [])
                break
    return {name: layer for name, layer in layers.items() if _ADAPTER_ROLES & set(layer.shapes)}


def _sd_models(layer: _Layer) -> set[str]:
    """Which Stable Diffusion a kohya SD layer belongs to: the cross-attention's context size tells."""
    inp, _, _ = layer.sizes()
    if re.search(r"attn2_to_[kv]$", layer.flat) and inp is not None:
        named = {768: "SD 1.5", 1024: "SD 2.x", 2048: "SDXL"}.get(inp)
        if named:
            return {named}
    if layer.flat.startswith("lora_te2_"):
        return {"SDXL"}
    return {"SD 1.5", "SDXL"}


def _candidates(layer: _Layer) -> tuple[set[str], bool]:
    """(the models this layer fits by name, sizes and block index; whether FLUX.2 [dev] has a layer of that name)."""
    flat = layer.flat
    inp, out, conv = layer.sizes()

    def fits(want: tuple[int, int]) -> bool:
        return (inp is None or inp == want[0]) and (out is None or out == want[1])

    if conv or _SD_NAMES.search(flat):
        return _sd_models(layer), False
    if _SD3_NAMES.search(flat):
        return {"SD3"}, False
    double, single = _DOUBLE.match(flat), _SINGLE.match(flat)
    block = double or single
    models: set[str] = set()
    flux2_name = False
    if block is not None:
        index, key = int(block.group(1)), block.group(2)
        if flat.startswith("double_blocks"):
            # BFL names: double_blocks.N.img_attn.qkv -> "attn_qkv" (img and txt streams have the same sizes)
            match = _BFL_DOUBLE_LAYER.match(key)
            key = match.group(2) if match else ""
        for model in _MODELS:
            table, count = (model.double, model.doubles) if double else (model.single, model.singles)
            if key not in table:
                continue
            flux2_name = flux2_name or model is _FLUX2_DEV_MODEL
            if index < count and fits(table[key]):
                models.add(model.name)
        return models, flux2_name
    for model in _MODELS:
        if flat in model.other:
            flux2_name = flux2_name or model is _FLUX2_DEV_MODEL
            if fits(model.other[flat]):
                models.add(model.name)
    if not models and _FLUX2_UNPINNED.match(flat) and inp == _FLUX2_DEV_MODEL.double["attn_proj"][0]:
        models.add(FLUX2_DEV)
    return models, flux2_name


def _format(tensors: Mapping[str, Any], layers: Mapping[str, _Layer]) -> str:
    """The trainer's naming, for people: diffusers/PEFT, ai-toolkit, kohya/musubi, LyCORIS."""
    roles = {role for layer in layers.values() for role in layer.shapes}
    if roles & {"lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w2_a"}:
        return "LyCORIS LoKr"
    if roles & {"hada_w1_a", "hada_w2_a"}:
        return "LyCORIS LoHa"
    names = list(layers)
    if any(n.startswith(("lora_unet_", "lora_transformer_", "lora_te")) for n in names):
        return "kohya/musubi"
    if any(n.startswith("lycoris_") for n in names):
        return "LyCORIS"
    flats = [layer.flat for layer in layers.values()]
    if any(f.startswith(("double_blocks", "single_blocks")) for f in flats):
        return "ai-toolkit"
    if any(f.startswith(("transformer_blocks", "single_transformer_blocks")) for f in flats):
        return "diffusers/PEFT"
    return "other"


def _shown_layer(layer: _Layer) -> str:
    inp, out, _ = layer.sizes()
    sizes = f" is {inp if inp is not None else '?'} -> {out if out is not None else '?'}"
    return f"{layer.name}{sizes}"


def _flux2_full_model(tensors: Mapping[str, Mapping[str, Any]]) -> bool:
    for key, info in tensors.items():
        flat = _strip(key).replace(".", "_").lower()
        if flat.startswith("double_stream_modulation_img_lin"):
            return True
        if flat == "transformer_blocks_0_attn_to_q_weight" and list(info.get("shape") or []) == [6144, 6144]:
            return True
    return False


def _other_model(found: list[tuple[_Layer, set[str]]]) -> tuple[str, _Layer]:
    """The model(s) every layer that proves another model fits (else the most common), and a layer to show."""
    common = set.intersection(*(models for _, models in found))
    if not common:
        counts = Counter(model for _, models in found for model in models)
        top = counts.most_common(1)[0][1]
        common = {model for model, n in counts.items() if n == top}
    order = [model.name for model in _MODELS] + ["SDXL", "SD 1.5", "SD 2.x", "SD3"]
    names = sorted(common, key=lambda m: order.index(m) if m in order else len(order))
    # The layer to show: the one that names the model(s) most precisely.
    example = min((item for item in found if common & item[1]), key=lambda item: len(item[1]))[0]
    return " or ".join(names[:3]), example


def classify(tensors: Mapping[str, Mapping[str, Any]], metadata: Mapping[str, str] | None = None) -> Finding:
    """The verdict for a checked header: ``tensors`` maps names to {"dtype", "shape", "data_offsets"}."""
    layers = adapter_layers(tensors)
    hint = _metadata_hint(metadata or {})
    if not layers:
        if _flux2_full_model(tensors):
            return Finding(NOT_A_LORA, FLUX2_DEV, "checkpoint", None,
                           "a full FLUX.2 model (checkpoint) without adapter weights, not a LoRA")
        return Finding(NOT_A_LORA, None, None, None,
                       f"a safetensors file with {len(tensors)} tensor(s) but no adapter weights "
                       "(lora_A/lora_B, lora_down/lora_up, lokr_*, hada_*), so not a LoRA")
    fmt = _format(tensors, layers)
    ranks = Counter(r for r in (layer.rank() for layer in layers.values()) if r is not None)
    rank = max(ranks) if ranks else None
    other_sets: list[tuple[_Layer, set[str]]] = []
    wrong_sized: list[_Layer] = []
    unknown: list[_Layer] = []
    for layer in layers.values():
        models, flux2_name = _candidates(layer)
        if models == {FLUX2_DEV}:
            continue
        if models and FLUX2_DEV not in models:
            other_sets.append((layer, models))
        elif not models and flux2_name:
            wrong_sized.append(layer)  # a FLUX.2 layer name with other sizes (or a block out of range)
        else:
            unknown.append(layer)
    if other_sets:
        label, example = _other_model(other_sets)
        return Finding(OTHER_MODEL, label, fmt, rank,
                       f"a LoRA for {label}, not FLUX.2 [dev] ({_shown_layer(example)}; "
                       f"{len(other_sets)} of its {len(layers)} adapted layers fit {label})")
    if wrong_sized:
        example = wrong_sized[0]
        return Finding(OTHER_MODEL, None, fmt, rank,
                       f"a LoRA for another model: {len(wrong_sized)} of {len(layers)} adapted layers have FLUX.2 "
                       f"names but other sizes or block numbers than FLUX.2 [dev] ({_shown_layer(example)})")
    if unknown:
        example = unknown[0]
        note = f"; its metadata says {hint}" if hint else ""
        return Finding(UNKNOWN, None, fmt, rank,
                       f"{len(unknown)} of {len(layers)} adapted layers are not FLUX.2 [dev] layers this check knows "
                       f"(e.g. {_shown_layer(example)}){note}")
    return Finding(OK, FLUX2_DEV, fmt, rank, f"every one of its {len(layers)} adapted layers fits FLUX.2 [dev]")


def _metadata_hint(metadata: Mapping[str, Any]) -> str:
    for key in ("ss_base_model_version", "modelspec.architecture"):
        value = metadata.get(key)
        if isinstance(value, str) and value:
            return f"{key}={value[:60]!r}"
    return ""
