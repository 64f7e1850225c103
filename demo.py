"""Offline demo: runs the real nodes against the local stand-in server and writes PNGs.

    python demo.py [--out demo_output] [--num-images 6]

Nothing leaves this machine and nothing is billed: the stand-in server answers on
127.0.0.1 with the official API's schema, and the credits it reports are pretend
(its own made-up price, so the credit budget and the node's display have a number). The pack is loaded the way ComfyUI
loads it (from its folder, under a name with dashes, next to a module called
``nodes``), then Seed -> Image Size -> Flux2 LoRA Adapter -> Flux2 LoRA Generate
run as ComfyUI would run them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import types
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent


def load_pack_like_comfyui(name: str = "ComfyUI-Flux2-LoRA") -> types.ModuleType:
    """Import the pack from its folder as ComfyUI's loader does, beside a foreign ``nodes`` module."""
    if name in sys.modules:
        return sys.modules[name]
    # ComfyUI has its own top-level module "nodes"; the pack must never pick it up.
    sys.modules.setdefault("nodes", types.ModuleType("nodes"))
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_node(pack: types.ModuleType, node_id: str, **inputs: object) -> tuple:
    """Call a node as ComfyUI does; return its result tuple."""
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    output = getattr(cls(), cls.FUNCTION)(**inputs)
    return output["result"] if isinstance(output, dict) else output


def save_pngs(images: object, out_dir: Path, prefix: str) -> list[Path]:
    """Write an IMAGE batch as PNG files, the way ComfyUI's SaveImage converts it."""
    import numpy as np
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, picture in enumerate(images):  # type: ignore[attr-defined]
        pixels = np.clip(picture.numpy() * 255.0, 0, 255).astype(np.uint8)
        path = out_dir / f"{prefix}_{i + 1:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def pack_error_type(pack: types.ModuleType) -> type[Exception]:
    """The pack's own error base class (its one-line messages are meant to be read as they are)."""
    return importlib.import_module(f"{pack.__name__}.api_client.errors").Flux2Error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="folder for the PNGs")
    parser.add_argument("--num-images", type=int, default=6, help="pictures to generate (1-16)")
    parser.add_argument("--prompt", default="a lighthouse on a cliff at dawn, in the style of MYSTYLE")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(PACK_DIR))
    from api_client.api.limits import LIMITS
    from api_client.standin import LoraHost, StandInServer

    key = "sk-demo-standin"
    with StandInServer(key=key, latency=0.2).start() as server, LoraHost().start() as lora_host, \
            tempfile.TemporaryDirectory() as cache_dir:
        # Only this process talks to the stand-in; the user's real key and result cache are not used.
        # The LoRA check reads the LoRA's header from the stand-in's LoRA host, with its own verdict cache.
        os.environ.update(AIML_API_BASE=server.base_url, AIML_API_KEY=key, FLUX2_LORA_CACHE_DIR=cache_dir,
                          HF_ENDPOINT=lora_host.root_url, XDG_CACHE_HOME=str(Path(cache_dir) / "xdg"))
        os.environ.pop("AIMLAPI_API_KEY", None)
        pack = load_pack_like_comfyui()
        try:
            (seed,) = run_node(pack, "Flux2LoraSeed", seed=42)
            size, width, height = run_node(pack, "Flux2LoraImageSize", preset="custom", width=768, height=512)
            (loras,) = run_node(pack, "Flux2LoraAdapter", path="example-user/flux2-watercolor-lora", scale=0.8)
            inputs = dict(
                prompt=args.prompt, seed=seed, num_images=args.num_images, guidance_scale=2.5,
                num_inference_steps=28, acceleration="regular", output_format="png",
                enable_prompt_expansion=True, enable_safety_checker=True, image_size=size, loras=loras,
            )
            images, info = run_node(pack, "Flux2LoraGenerate", **inputs)
            # The same inputs again: served by the result cache, without any request.
            _, info_again = run_node(pack, "Flux2LoraGenerate", **inputs)
        except pack_error_type(pack) as exc:
            # The pack's errors name the input, the range and the value: that line is the whole story.
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        print(f"stand-in server: {server.base_url} ({server.post_count} requests, nothing left this machine)")
    paths = save_pngs(images, args.out, "flux2_lora")
    details = json.loads(info)
    per_request = LIMITS.images_per_request_max
    split = [min(per_request, args.num_images - k) for k in range(0, args.num_images, per_request)]
    print(f"IMAGE tensor {tuple(images.shape)} {images.dtype}, {width}x{height} asked")
    print(f"{args.num_images} pictures from {len(split)} requests ({' + '.join(map(str, split))}): the API makes "
          f"at most {per_request} per request, and request k uses seed {seed} + k, so seeds {details['seeds']}")
    print(f"credits used {details['credits_used']:,.0f} (pretend: the stand-in's made-up price; nothing was billed)")
    print(f"second run with the same inputs: {json.loads(info_again)['cache_note']}")
    for check in details.get("lora_checks", []):
        print(f"LoRA check of {check['path']}: {check['verdict']} ({check['format']}, rank {check['rank']}; "
              "only its header was read)")
    for path in paths:
        print(f"wrote {path}")
    print(f"done: {len(paths)} pictures in {args.out}/ (each shows its size, seed, request index and LoRAs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
