"""A test-only ComfyUI node: one prompt per line, as a list, so the next node runs once per prompt.

ComfyUI's core nodes have no list of strings; the end-to-end tests install this file
next to the pack (tests/e2e/test_async_nodes.py) to feed Generate a list of prompts.
"""


class Flux2E2EPromptList:
    CATEGORY = "testing"
    FUNCTION = "split"
    RETURN_TYPES = ("STRING",)
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "tooltip": "One prompt per line."})}}

    def split(self, text):
        return ([line.strip() for line in text.splitlines() if line.strip()],)


NODE_CLASS_MAPPINGS = {"Flux2E2EPromptList": Flux2E2EPromptList}
