# One command each, from a fresh clone: `make demo` and `make test`.
# Both set up a virtual environment in this folder (.venv) the first time: the
# requirements, then a CPU torch unless the venv can already import one. Later runs
# reuse it and only reinstall when a requirements file changed.
#
# Overrides: make test PYTHON=python3.12 VENV=/tmp/venv TORCH_SPEC=torch==2.13.0
#            TORCH_INDEX=   (empty: take torch from pip's configured indexes only)

PYTHON ?= python3
VENV ?= .venv
# The torch the tests and the benchmark figures were made with.
TORCH_SPEC ?= torch==2.13.0
# PyTorch's CPU wheels. As an *extra* index it only adds candidates: on Linux its
# "2.13.0+cpu" outranks PyPI's "2.13.0" (the CUDA build, several GB), on macOS and
# Windows PyPI's build is already the CPU one, and a machine that has the wheel
# locally (a pip find-links folder) installs it without reaching the index at all.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

# Where the demo writes its pictures.
DEMO_OUT ?= demo_output

.PHONY: demo test setup lint bench clean-venv

demo: $(VENV)/.demo-ready  ## the offline demo: writes demo_output/*.png, nothing is billed
	$(PY) demo.py --out $(DEMO_OUT)

test: $(VENV)/.test-ready  ## the test suite (offline; e2e/browser tests run when COMFYUI_* is set)
	$(PY) -m pytest -q

setup: $(VENV)/.test-ready  ## only the set-up: .venv with everything the demo and the tests need

lint: $(VENV)/.test-ready
	$(PY) -m ruff check .

bench: $(VENV)/.demo-ready
	$(PY) bench/run.py

clean-venv:
	rm -rf $(VENV)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch last, and only when missing, so a venv that already has one (say a CUDA
# build someone put there on purpose) keeps it. Two steps: torch alone with the CPU
# index, then its dependencies (filelock, sympy, ...) from the usual indexes, against
# the torch now installed, so only torch itself is looked up on the CPU index.
$(VENV)/.demo-ready: requirements.txt | $(PY)
	@echo "== setting up $(VENV): requirements.txt, then a CPU torch if none is importable"
	$(PIP) install --quiet -r requirements.txt
	@$(PY) -c "import torch" 2>/dev/null || { \
	    echo "== installing $(TORCH_SPEC) (CPU build)" && \
	    $(PIP) install --quiet --no-deps "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) && \
	    $(PIP) install --quiet "$(TORCH_SPEC)"; }
	@touch $@

$(VENV)/.test-ready: requirements-test.txt $(VENV)/.demo-ready
	$(PIP) install --quiet -r requirements-test.txt
	@touch $@
