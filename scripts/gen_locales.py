"""Write locales/en/nodeDefs.json from the nodes' own English texts.

    python scripts/gen_locales.py           # rewrite the file
    python scripts/gen_locales.py --check   # exit 1 if the file differs from the code

The English defaults stay in the code (display names, DESCRIPTION, input tooltips,
OUTPUT_TOOLTIPS); this file is their copy in the shape ComfyUI's frontend reads
for translations, the starting point for other languages (locales/<lang>/nodeDefs.json).
Rerun it after changing a node; tests/pack/test_locales.py fails while it is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "locales" / "en" / "nodeDefs.json"


def node_defs(pack: Any) -> dict[str, Any]:
    """The frontend's nodeDefs shape: display_name, description, inputs and outputs by index."""
    result: dict[str, Any] = {}
    for node_id in sorted(pack.NODE_CLASS_MAPPINGS):
        cls = pack.NODE_CLASS_MAPPINGS[node_id]
        types = cls.INPUT_TYPES()
        inputs = {}
        for section in ("required", "optional"):
            for name, spec in types.get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                inputs[name] = {"name": name, **({"tooltip": options["tooltip"]} if "tooltip" in options else {})}
        tooltips = getattr(cls, "OUTPUT_TOOLTIPS", ())
        names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
        outputs = {str(i): {"name": names[i], "tooltip": tooltips[i] if i < len(tooltips) else None}
                   for i in range(len(cls.RETURN_TYPES))}
        result[node_id] = {
            "display_name": pack.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id),
            "description": cls.DESCRIPTION,
            "inputs": inputs,
            "outputs": outputs,
        }
    return result


def render(pack: Any) -> str:
    return json.dumps(node_defs(pack), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, exit 1 if out of date")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from demo import load_pack_like_comfyui

    text = render(load_pack_like_comfyui())
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python scripts/gen_locales.py")
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
