"""locales/en/nodeDefs.json is exactly what the nodes' English texts give, in the frontend's shape."""

from __future__ import annotations

import json

from conftest import ROOT

from scripts.gen_locales import OUTPUT, render


def test_committed_locale_file_equals_what_the_code_gives(pack):
    assert OUTPUT.read_text(encoding="utf-8") == render(pack), "run: python scripts/gen_locales.py"


def test_locale_file_has_the_frontend_shape_for_every_node(pack):
    data = json.loads((ROOT / "locales" / "en" / "nodeDefs.json").read_text(encoding="utf-8"))
    assert set(data) == set(pack.NODE_CLASS_MAPPINGS)
    for node_id, entry in data.items():
        cls = pack.NODE_CLASS_MAPPINGS[node_id]
        assert entry["display_name"] == pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]
        assert entry["description"] == cls.DESCRIPTION
        types = cls.INPUT_TYPES()
        assert list(entry["inputs"]) == [*types.get("required", {}), *types.get("optional", {})]
        assert all(v["name"] and v["tooltip"] for v in entry["inputs"].values())
        assert list(entry["outputs"]) == [str(i) for i in range(len(cls.RETURN_TYPES))]
        assert all(v["name"] and v["tooltip"] for v in entry["outputs"].values())
