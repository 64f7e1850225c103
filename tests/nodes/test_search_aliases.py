"""SEARCH_ALIASES: the words users type into ComfyUI's node search to find each node.

ComfyUI releases after 0.3.64 read the class attribute ``SEARCH_ALIASES`` (a list of strings) and send it
as ``search_aliases`` in /object_info (``getattr(obj_class, 'SEARCH_ALIASES', [])``); the frontend's node
search matches it. 0.3.64 ignores it: tests/e2e/test_comfyui_server.py checks it still loads every node.
"""

from __future__ import annotations

import json

import pytest
from contract import CONTRACT

PACK_WORDS = ("flux", "flux2", "lora", "aimlapi", "remote", "api")
# What a user looking for one node in particular types.
OWN_WORDS = {
    "Flux2LoraGenerate": ("text to image", "txt2img"),
    "Flux2LoraEdit": ("edit", "img2img"),
    "Flux2LoraImageSize": ("image size", "resolution"),
    "Flux2LoraSeed": ("seed",),
    "Flux2LoraAdapter": ("lora loader", "adapter"),
}


def test_every_node_of_the_pack_is_checked(pack):
    assert set(pack.NODE_CLASS_MAPPINGS) == set(CONTRACT) == set(OWN_WORDS)


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_search_aliases_is_a_list_of_distinct_lowercase_strings_as_comfyui_sends_it(pack, node_id):
    aliases = pack.NODE_CLASS_MAPPINGS[node_id].SEARCH_ALIASES
    assert type(aliases) is list and aliases
    assert all(isinstance(word, str) and word == word.strip().lower() and word for word in aliases)
    assert len(set(aliases)) == len(aliases)
    # What object_info sends: plain JSON, unchanged by the round trip.
    assert json.loads(json.dumps({"search_aliases": aliases}))["search_aliases"] == aliases


@pytest.mark.parametrize("node_id", list(CONTRACT))
def test_search_aliases_have_the_pack_words_and_the_node_words(pack, node_id):
    aliases = pack.NODE_CLASS_MAPPINGS[node_id].SEARCH_ALIASES
    assert set(PACK_WORDS) <= set(aliases)
    assert set(OWN_WORDS[node_id]) <= set(aliases)


def test_no_two_nodes_share_one_list_object(pack):
    lists = [cls.SEARCH_ALIASES for cls in pack.NODE_CLASS_MAPPINGS.values()]
    assert len({id(one) for one in lists}) == len(lists)
