# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
#
# Python 3.12 is required (nautilus_trader 1.231 wheels). The interpreter is found, in this order:
#   1. PYTHON=/path/to/python3.12 on the make command line;
#   2. the first of python3.12, python3, python on PATH that really runs Python 3.12 (a pyenv shim
#      for a version that is not active answers "command not found": it is skipped, not trusted);
#   3. pyenv's own versions folder: $(pyenv root)/versions/3.12.*/bin/python3.12 (pyenv root, else
#      $PYENV_ROOT, else ~/.pyenv), also when pyenv itself is not on PATH.
# Trading (`make demo`) installs no torch. The training extra (torch, onnx, xgboost...) comes with
# `make test` and `make train`. On Python 3.12 the registry's torch is a CUDA build (several GB);
# for a CPU-only torch: make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
PYTHON_VERSION := 3.12
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
TORCH_INDEX_URL ?=
TORCH_SPEC := torch>=2.4,<2.15# the same range as pyproject.toml's train extra

define FIND_PYTHON
for candidate in python$(PYTHON_VERSION) python3 python; do \
  path=$$(command -v $$candidate 2>/dev/null) || continue; \
  $$path -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma) ,$(PYTHON_VERSION))))' \
    >/dev/null 2>&1 && { echo $$path; exit 0; }; \
done; \
root=$$(pyenv root 2>/dev/null || echo $${PYENV_ROOT:-$$HOME/.pyenv}); \
for path in $$root/versions/$(PYTHON_VERSION).*/bin/python$(PYTHON_VERSION); do \
  test -x $$path && $$path -c 'import sys' >/dev/null 2>&1 && { echo $$path; exit 0; }; \
done
endef
comma := ,
PYTHON ?= $(shell $(FIND_PYTHON))

.PHONY: demo test test-all train lint bench clean venv

# The venv itself: recreated when it holds another Python (e.g. a 3.11 venv from before the move).
$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no Python $(PYTHON_VERSION) found (looked at python$(PYTHON_VERSION), python3, python on PATH" >&2; \
	  echo "       and pyenv's versions folder). Install one: 'pyenv install $(PYTHON_VERSION)'," >&2; \
	  echo "       'apt install python$(PYTHON_VERSION)-venv' or 'uv python install $(PYTHON_VERSION)'," >&2; \
	  echo "       or name it: make demo PYTHON=/path/to/python$(PYTHON_VERSION)" >&2; \
	  exit 2; \
	fi
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma) ,$(PYTHON_VERSION))))' || { \
	  echo "$(VENV) holds Python $$($(BIN)/python -c 'import platform; print(platform.python_version())'), not $(PYTHON_VERSION): recreating it"; \
	  rm -rf $(VENV) && $(MAKE) --no-print-directory $(BIN)/python; }

# Trading only: no torch, no training extras.
$(RUN_STAMP): pyproject.toml | venv
	$(PIP) install --quiet -e .
	@touch $@

# Tests and training: the dev, train and sweep extras (torch and Ray included).
$(DEV_STAMP): pyproject.toml | venv
	@if [ -n "$(TORCH_INDEX_URL)" ]; then $(PIP) install --quiet "$(TORCH_SPEC)" --index-url $(TORCH_INDEX_URL); fi
	$(PIP) install --quiet -e ".[dev,train,sweep]"
	@touch $@ $(RUN_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/python run_backtest.py

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

test-all: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

train: $(DEV_STAMP)
	@echo "training extras installed; e.g. $(BIN)/qa train all --config configs/train/trinity.toml --out runs/trinity"

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
