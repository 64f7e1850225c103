"""End-to-end tests: a real ComfyUI process, its real frontend in headless Chromium (see conftest.py)."""
