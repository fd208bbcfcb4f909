# The README's commands. Each creates .venv with what it needs on a machine that has only Python 3.11.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export LUIGI_CONFIG_PATH := $(CURDIR)/luigi.cfg

.PHONY: demo demo-luigid test test-slow lint scheduler scheduler-stop clean

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## demo: run RedCapsOfficial offline against the sandbox and print where the tars are
demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

## demo-luigid: the same through a real luigid (web UI on 127.0.0.1:8082) with two workers
demo-luigid: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" DEMO_SCHEDULER=luigid bash scripts/demo.sh

## test: the default suite (about a minute); test-slow: kill-and-resume end to end
test: $(VENV)/.installed
	$(BIN)/pytest -q -m "not slow"

test-slow: $(VENV)/.installed
	$(BIN)/pytest -q -m slow || [ $$? -eq 5 ]

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## scheduler: luigid on loopback only (it has no authentication), with state and task history
scheduler: $(VENV)/.installed
	mkdir -p datasets/luigid
	$(BIN)/luigid --background --address 127.0.0.1 --port 8082 \
		--pidfile datasets/luigid/luigid.pid --logdir datasets/luigid \
		--state-path datasets/luigid/state.pickle
	@echo "luigid: http://127.0.0.1:8082/static/visualiser/index.html"

scheduler-stop:
	-kill $$(cat datasets/luigid/luigid.pid)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
