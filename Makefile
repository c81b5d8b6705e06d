# Two entry points: `make demo` (the main job, no API key needed) and `make test`.
# Each creates .venv and installs lmrl into it first (torch is pinned to the CPU wheel in pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# Scripted baselines (random / behavior / optimal) on every task, ending with the summary table.
demo: install
	$(BIN)/lmrl run --task maze-fo --task maze-po --task wordle \
		--model scripted/random --model scripted/behavior --model scripted/optimal \
		--episodes 100 --concurrency 64 --out runs/demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/harness_overhead.py
	$(BIN)/python bench/http_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
