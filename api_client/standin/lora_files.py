"""Virtual LoRA files for the stand-in's LoRA host: real safetensors headers, then zeros made per range.

The headers follow the tables of FLUX2-LORA-FORMATS.md: FLUX.2 [dev] in every trainer's
naming (diffusers/PEFT with or without ``base_model.model.``, ai-toolkit, kohya/musubi,
LyCORIS), FLUX.1 [dev], FLUX.2 [klein] 4B and 9B, Qwen-Image, SD 1.5 and SDXL, a full
FLUX.2 checkpoint; plus files that are not safetensors and hostile headers. A file is
its first bytes and a size: a 195 MB LoRA costs a few tens of kB of memory.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

_BF16 = 2
# (hidden, double blocks, single blocks, text context, latent channels) as in the facts file.
_FLUX2_SHAPES = {"dev": (6144, 8, 48, 15360, 128), "klein9b": (4096, 8, 24, 12288, 128),
                 "klein4b": (3072, 5, 20, 7680, 128)}


@dataclass
class VirtualFile:
    """A file served by the LoRA host: ``head`` bytes, then zeros up to ``size`` bytes.

    ``status`` answers every GET with that status instead; ``ignore_range`` answers 200 with the
    whole file; ``content_range`` replaces the Content-Range of 206 answers (a lying host).
    """

    head: bytes
    size: int
    content_type: str = "application/octet-stream"
    status: int | None = None
    ignore_range: bool = False
    content_range: str | None = None
    etag: str = field(default="")

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.sha256(self.head + str(self.size).encode()).hexdigest()[:32] + '"'

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive), made on demand."""
        end = min(end, self.size - 1)
        if end < start:
            return b""
        head = self.head[start:end + 1]
        return head + bytes(end + 1 - start - len(head))


def safetensors_file(tensors: Iterable[tuple[str, list[int]]], metadata: dict[str, str] | None = None,
                     dtype: str = "BF16", **options: object) -> VirtualFile:
    """A virtual safetensors file holding ``tensors`` (name, shape), contiguous, in order."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, shape in tensors:
        count = 1
        for n in shape:
            count *= n
        header[name] = {"dtype": dtype if shape else "F32", "shape": shape,
                        "data_offsets": [offset, offset + count * (_BF16 if shape else 4)]}
        offset += count * (_BF16 if shape else 4)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # padded to 8 bytes, as the safetensors library writes it
    head = struct.pack("<Q", len(text)) + text
    return VirtualFile(head, len(head) + offset, **options)  # type: ignore[arg-type]


def raw_file(head: bytes, size: int | None = None, **options: object) -> VirtualFile:
    """A file of exactly these first bytes (then zeros up to ``size``)."""
    return VirtualFile(head, len(head) if size is None else size, **options)  # type: ignore[arg-type]


def with_length(length: int, body: bytes, size: int | None = None) -> VirtualFile:
    """A file whose first 8 bytes claim a header of ``length`` bytes, followed by ``body``."""
    head = struct.pack("<Q", length) + body
    return raw_file(head, size)


# -- layers of each model, in BFL names and in diffusers names: (name, in, out) --------------------------------

def flux2_layers(model: str = "dev", naming: str = "bfl", blocks: str = "all") -> list[tuple[str, int, int]]:
    """Every adapted linear layer of a FLUX.2 transformer (dev, klein9b, klein4b).

    ``blocks``: "all", "double" (attention and MLP of the double blocks), or "attn" (double-block attention only).
    """
    h, doubles, singles, _, _ = _FLUX2_SHAPES[model]
    layers: list[tuple[str, int, int]] = []
    for n in range(doubles):
        if naming == "bfl":
            for stream in ("img", "txt"):
                layers += [(f"double_blocks.{n}.{stream}_attn.qkv", h, 3 * h),
                           (f"double_blocks.{n}.{stream}_attn.proj", h, h)]
                if blocks != "attn":
                    layers += [(f"double_blocks.{n}.{stream}_mlp.0", h, 6 * h),
                               (f"double_blocks.{n}.{stream}_mlp.2", 3 * h, h)]
        else:
            base = f"transformer_blocks.{n}"
            layers += [(f"{base}.attn.{name}", h, h) for name in
                       ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out")]
            if blocks != "attn":
                layers += [(f"{base}.ff.linear_in", h, 6 * h), (f"{base}.ff_context.linear_in", h, 6 * h),
                           (f"{base}.ff.linear_out", 3 * h, h), (f"{base}.ff_context.linear_out", 3 * h, h)]
    if blocks == "all":
        for n in range(singles):
            if naming == "bfl":
                layers += [(f"single_blocks.{n}.linear1", h, 9 * h), (f"single_blocks.{n}.linear2", 4 * h, h)]
            else:
                layers += [(f"single_transformer_blocks.{n}.attn.to_qkv_mlp_proj", h, 9 * h),
                           (f"single_transformer_blocks.{n}.attn.to_out", 4 * h, h)]
    return layers


def flux1_layers(naming: str = "bfl") -> list[tuple[str, int, int]]:
    """FLUX.1 [dev]'s adapted layers (hidden 3072, 19 double and 38 single blocks)."""
    h = 3072
    layers: list[tuple[str, int, int]] = []
    for n in range(19):
        if naming == "bfl":
            for stream in ("img", "txt"):
                layers += [(f"double_blocks.{n}.{stream}_attn.qkv", h, 3 * h),
                           (f"double_blocks.{n}.{stream}_attn.proj", h, h),
                           (f"double_blocks.{n}.{stream}_mlp.0", h, 4 * h),
                           (f"double_blocks.{n}.{stream}_mlp.2", 4 * h, h),
                           (f"double_blocks.{n}.{stream}_mod.lin", h, 6 * h)]
        else:
            base = f"transformer_blocks.{n}"
            layers += [(f"{base}.attn.{name}", h, h) for name in ("to_q", "to_k", "to_v", "to_out.0")]
            layers += [(f"{base}.ff.net.0.proj", h, 4 * h), (f"{base}.ff.net.2", 4 * h, h)]
    for n in range(38):
        if naming == "bfl":
            layers += [(f"single_blocks.{n}.linear1", h, 7 * h), (f"single_blocks.{n}.linear2", 5 * h, h)]
        else:
            base = f"single_transformer_blocks.{n}"
            layers += [(f"{base}.attn.to_q", h, h), (f"{base}.proj_mlp", h, 4 * h), (f"{base}.proj_out", 5 * h, h)]
    return layers


def qwen_image_layers(blocks: str = "all") -> list[tuple[str, int, int]]:
    """Qwen-Image's layers (60 blocks of one kind, hidden 3072); "attn" for the attention only."""
    h = 3072
    layers: list[tuple[str, int, int]] = []
    for n in range(60):
        base = f"transformer_blocks.{n}"
        layers += [(f"{base}.attn.{name}", h, h) for name in ("to_q", "to_k", "to_v", "to_out.0")]
        if blocks != "attn":
            layers += [(f"{base}.img_mlp.net.0.proj", h, 4 * h), (f"{base}.img_mlp.net.2", 4 * h, h),
                       (f"{base}.txt_mlp.net.0.proj", h, 4 * h), (f"{base}.img_mod.1", h, 6 * h)]
    return layers


# -- trainers' formats -------------------------------------------------------------------------------------

def lora_tensors(layers: Iterable[tuple[str, int, int]], rank: int, fmt: str) -> list[tuple[str, list[int]]]:
    """The tensors of a LoRA over ``layers`` in a trainer's format.

    Formats: "diffusers" (``transformer.`` + lora_A/lora_B), "peft" (``base_model.model.``), "ai-toolkit"
    (``diffusion_model.``), "kohya" (``lora_unet_`` + lora_down/lora_up/alpha), "lokr" and "loha" (LyCORIS).
    """
    out: list[tuple[str, list[int]]] = []
    for name, fan_in, fan_out in layers:
        if fmt in ("diffusers", "peft", "ai-toolkit"):
            prefix = {"diffusers": "transformer.", "peft": "base_model.model.", "ai-toolkit": "diffusion_model."}[fmt]
            out += [(f"{prefix}{name}.lora_A.weight", [rank, fan_in]),
                    (f"{prefix}{name}.lora_B.weight", [fan_out, rank])]
        elif fmt == "kohya":
            key = "lora_unet_" + name.replace(".", "_")
            out += [(f"{key}.alpha", []), (f"{key}.lora_down.weight", [rank, fan_in]),
                    (f"{key}.lora_up.weight", [fan_out, rank])]
        elif fmt == "lokr":
            key = "lycoris_" + name.replace(".", "_")
            out += [(f"{key}.alpha", []), (f"{key}.lokr_w1", [8, 8]), (f"{key}.lokr_w2_a", [fan_out // 8, rank]),
                    (f"{key}.lokr_w2_b", [rank, fan_in // 8])]
        elif fmt == "loha":
            key = "lycoris_" + name.replace(".", "_")
            out += [(f"{key}.alpha", []), (f"{key}.hada_w1_a", [fan_out, rank]), (f"{key}.hada_w1_b", [rank, fan_in]),
                    (f"{key}.hada_w2_a", [fan_out, rank]), (f"{key}.hada_w2_b", [rank, fan_in])]
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return out


_FORMAT_METADATA = {
    "ai-toolkit": {"ss_base_model_version": "flux2", "software": "ai-toolkit"},
    "kohya": {"modelspec.architecture": "Flux.2-dev/lora", "ss_network_module": "networks.lora_flux_2"},
}


def flux2_dev_lora(fmt: str = "ai-toolkit", rank: int = 16, blocks: str = "all", metadata: bool = True,
                   padding: int = 0, **options: object) -> VirtualFile:
    """A genuine FLUX.2 [dev] LoRA in a trainer's format (BFL names for ai-toolkit/kohya/LyCORIS, diffusers else).

    ``padding`` adds that many characters of metadata (kohya's tag statistics make long headers).
    """
    naming = "diffusers" if fmt in ("diffusers", "peft") else "bfl"
    tensors = lora_tensors(flux2_layers("dev", naming, blocks), rank, fmt)
    meta = dict(_FORMAT_METADATA.get(fmt, {})) if metadata else {}
    if padding:
        meta["ss_tag_frequency"] = json.dumps({"tags": "x" * padding})
    return safetensors_file(tensors, meta or None, **options)


def klein_lora(size: str = "klein4b", fmt: str = "ai-toolkit", rank: int = 16) -> VirtualFile:
    """A FLUX.2 [klein] 4B or 9B LoRA."""
    naming = "diffusers" if fmt in ("diffusers", "peft") else "bfl"
    meta = {"ss_base_model_version": {"klein4b": "flux2_klein_4b", "klein9b": "flux2_klein_9b"}[size]}
    return safetensors_file(lora_tensors(flux2_layers(size, naming), rank, fmt), meta)


def flux1_dev_lora(fmt: str = "kohya", rank: int = 16) -> VirtualFile:
    """A FLUX.1 [dev] LoRA (kohya names are the same as FLUX.2's: only the shapes tell)."""
    naming = "diffusers" if fmt in ("diffusers", "peft") else "bfl"
    return safetensors_file(lora_tensors(flux1_layers(naming), rank, fmt),
                            {"modelspec.architecture": "flux-1-dev/lora"} if fmt == "kohya" else None)


def qwen_image_lora(rank: int = 16, blocks: str = "all") -> VirtualFile:
    return safetensors_file(lora_tensors(qwen_image_layers(blocks), rank, "diffusers"))


def sd_lora(kind: str = "sdxl", rank: int = 8) -> VirtualFile:
    """A kohya SD 1.5 or SDXL LoRA: unet attention, a conv layer and text encoder keys."""
    context, width = (2048, 640) if kind == "sdxl" else (768, 320)
    block = ("lora_unet_input_blocks_4_1_transformer_blocks_0" if kind == "sdxl"
             else "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0")
    tensors: list[tuple[str, list[int]]] = []
    for name, fan_in, fan_out in ((f"{block}_attn1_to_q", width, width), (f"{block}_attn2_to_k", context, width),
                                  (f"{block}_attn2_to_v", context, width)):
        tensors += [(f"{name}.alpha", []), (f"{name}.lora_down.weight", [rank, fan_in]),
                    (f"{name}.lora_up.weight", [fan_out, rank])]
    conv = block.rsplit("_transformer_blocks", 1)[0] + "_proj_in"
    tensors += [(f"{conv}.lora_down.weight", [rank, width, 1, 1]), (f"{conv}.lora_up.weight", [width, rank, 1, 1])]
    te = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" if kind == "sdxl" else \
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    tensors += [(f"{te}.lora_down.weight", [rank, 768]), (f"{te}.lora_up.weight", [768, rank])]
    return safetensors_file(tensors, {"ss_base_model_version": "sdxl_base_v1-0" if kind == "sdxl" else "sd_v1"})


def flux2_checkpoint() -> VirtualFile:
    """A full FLUX.2 [dev] transformer (weights, no adapters); a few of its tensors are listed."""
    h = 6144
    tensors = [("double_stream_modulation_img.lin.weight", [6 * h, h]),
               ("double_stream_modulation_txt.lin.weight", [6 * h, h]),
               ("single_stream_modulation.lin.weight", [3 * h, h]), ("img_in.weight", [h, 128])]
    for n in range(8):
        tensors += [(f"double_blocks.{n}.img_attn.qkv.weight", [3 * h, h]), (f"double_blocks.{n}.img_mlp.0.weight",
                                                                             [6 * h, h])]
    return safetensors_file(tensors)


# -- the host's catalogue ------------------------------------------------------------------------------------

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>flux2-style-lora.safetensors</title></head>"
             b"<body>A model page, not the file.</body></html>\n")


def standard_files() -> dict[str, VirtualFile]:
    """The files at /files/<name>: one of each kind the check must tell apart."""
    files = {
        "flux2-dev-ai-toolkit-r16.safetensors": flux2_dev_lora("ai-toolkit", 16),
        "flux2-dev-diffusers-r16.safetensors": flux2_dev_lora("diffusers", 16),
        "flux2-dev-peft-r8.safetensors": flux2_dev_lora("peft", 8),
        "flux2-dev-kohya-r32.safetensors": flux2_dev_lora("kohya", 32),
        "flux2-dev-kohya-nometa-r4.safetensors": flux2_dev_lora("kohya", 4, metadata=False),
        "flux2-dev-attn-only-r64.safetensors": flux2_dev_lora("ai-toolkit", 64, blocks="attn"),
        "flux2-dev-double-only-r2.safetensors": flux2_dev_lora("diffusers", 2, blocks="double"),
        "flux2-dev-lokr.safetensors": flux2_dev_lora("lokr", 8, metadata=False),
        "flux2-dev-loha.safetensors": flux2_dev_lora("loha", 8, metadata=False),
        "flux1-dev-kohya.safetensors": flux1_dev_lora("kohya"),
        "flux1-dev-diffusers.safetensors": flux1_dev_lora("diffusers"),
        "klein-4b.safetensors": klein_lora("klein4b"),
        "klein-9b.safetensors": klein_lora("klein9b"),
        "klein-4b-diffusers.safetensors": klein_lora("klein4b", "diffusers"),
        "qwen-image.safetensors": qwen_image_lora(),
        "qwen-image-attn.safetensors": qwen_image_lora(blocks="attn"),
        "sdxl.safetensors": sd_lora("sdxl"),
        "sd15.safetensors": sd_lora("sd15"),
        "flux2-checkpoint.safetensors": flux2_checkpoint(),
        "no-adapters.safetensors": safetensors_file([("some.weight", [16, 16])]),
        "page.html": raw_file(HTML_PAGE, content_type="text/html; charset=utf-8"),
        "pickle.bin": raw_file(b"\x80\x02}q\x00(X\x05\x00\x00\x00state" + bytes(64), 50_000_000),
        "archive.ckpt": raw_file(b"PK\x03\x04" + bytes(60), 2_000_000),
        "empty.safetensors": raw_file(b""),
        # hostile or broken headers
        "length-huge.safetensors": with_length(2**62, b"{}", 195_000_000),
        "length-past-end.safetensors": with_length(50_000, b'{"a":1}', 1000),
        "length-over-cap.safetensors": with_length(5_000_000, b'{"x": ' + b" " * 100, 200_000_000),
        "not-json.safetensors": with_length(32, b"this is not JSON at all, really."),
        "json-list.safetensors": with_length(8, b"[1,2,3] "),
        "deep-json.safetensors": with_length(200_002, b'{"a":' + b"[" * 199_997),
        "overlap.safetensors": _overlapping(),
        "past-end-offsets.safetensors": _past_end(),
        "wrong-size.safetensors": _wrong_size(),
        # a host that lies or ignores Range
        "ignores-range.safetensors": flux2_dev_lora("ai-toolkit", 16, ignore_range=True),
        "bad-content-range.safetensors": flux2_dev_lora("ai-toolkit", 16, content_range="bytes 500-99999/195000000"),
        "flux2-dev-long-header.safetensors": flux2_dev_lora("kohya", 16, padding=300_000),
    }
    return files


def _overlapping() -> VirtualFile:
    header = {"a.lora_A.weight": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]},
              "a.lora_B.weight": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [16, 48]}}
    text = json.dumps(header).encode()
    return raw_file(struct.pack("<Q", len(text)) + text, 8 + len(text) + 48)


def _past_end() -> VirtualFile:
    header = {"a.lora_A.weight": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 32]},
              "a.lora_B.weight": {"dtype": "BF16", "shape": [1000, 1000], "data_offsets": [32, 2_000_032]}}
    text = json.dumps(header).encode()
    return raw_file(struct.pack("<Q", len(text)) + text, 8 + len(text) + 64)


def _wrong_size() -> VirtualFile:
    header = {"a.lora_A.weight": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 31]}}
    text = json.dumps(header).encode()
    return raw_file(struct.pack("<Q", len(text)) + text, 8 + len(text) + 31)


@dataclass
class Repo:
    """A Hugging Face model repository: its files, and whether it is gated or private (or missing: None)."""

    files: dict[str, VirtualFile]
    gated: bool = False
    private: bool = False


def standard_repos() -> dict[str, Repo]:
    """Repositories served at /api/models/<owner>/<repo> and /<owner>/<repo>/resolve/main/<file>."""
    genuine = flux2_dev_lora("diffusers", 16)
    return {
        "standin/flux2-dev-diffusers": Repo({"pytorch_lora_weights.safetensors": genuine, "README.md":
                                             raw_file(b"# a LoRA\n")}),
        "standin/flux2-dev-ai-toolkit": Repo({"my_first_lora_v1.safetensors": flux2_dev_lora("ai-toolkit", 32),
                                              "samples/1.jpg": raw_file(b"\xff\xd8\xff")}),
        "standin/several": Repo({"style_v1.safetensors": flux2_dev_lora("kohya", 8),
                                 "style_v2.safetensors": flux1_dev_lora("kohya"),
                                 "checkpoint-500/optimizer.safetensors": raw_file(b"")}),
        "standin/flux1-dev": Repo({"lora.safetensors": flux1_dev_lora("kohya")}),
        "standin/klein": Repo({"pytorch_lora_weights.safetensors": klein_lora("klein9b", "diffusers")}),
        "standin/no-safetensors": Repo({"lora.bin": raw_file(b"\x80\x02" + bytes(30)), "README.md": raw_file(b"#")}),
        "standin/gated": Repo({"pytorch_lora_weights.safetensors": genuine}, gated=True),
        "standin/private": Repo({"pytorch_lora_weights.safetensors": genuine}, private=True),
        # The demo's and the example workflows' placeholder names: genuine here, so their runs pass the check.
        "example-user/flux2-watercolor-lora": Repo({"pytorch_lora_weights.safetensors": genuine}),
        "your-hf-name/your-style-lora": Repo({"pytorch_lora_weights.safetensors": genuine}),
        "your-hf-name/your-detail-lora": Repo({"lora.safetensors": flux2_dev_lora("ai-toolkit", 8)}),
    }
