# The two commands a user needs: `make run` and `make test`. Everything else
# is a step of those, usable on its own.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK := scripts/stack.sh

.PHONY: run test services stop status lint typecheck bench bench-peers bench-burst bench-cardinality clean help

help:
	@echo "make run        start the local stack (Mosquitto, PostgreSQL, Redis), apply the schema, run the bridge and a simulated fleet"
	@echo "make test       lint (with the architecture contracts), type-check and run the whole test suite against real services"
	@echo "make services   start the local stack only"
	@echo "make stop       stop every project instance (dev and test)"
	@echo "make status     show what is running"
	@echo "make bench      decoder, Redis, end-to-end ingest, edge agent, read API (quick), storage and peers benchmarks (results in bench/results/), then bridge plan's constants"
	@echo "make bench-peers  the bridge side by side with Node-RED and a naive bridge (installs them from npm on first use)"
	@echo "make bench-burst  the seed's burst scenario, open loop, on both HTTP ingest routes"

$(STAMP): pyproject.toml scripts/venv.sh
	@scripts/venv.sh
	@touch $(STAMP)

services: $(STAMP)
	@$(STACK) up dev

run: services
	@set -a; source <($(STACK) env dev); set +a; \
	  $(BIN)/bridge db migrate && echo && $(BIN)/bridge db status
	@echo
	@echo "Running on loopback:"
	@$(STACK) info dev
	@scripts/run-dev.sh

status:
	@$(STACK) status dev

stop:
	@$(STACK) down all

# lint-imports checks the architecture contracts in pyproject.toml
# ([tool.importlinter]): the sides and their layers, no import cycles. To see
# one fail, add e.g. `import bridge.router` to edge_agent/pack.py and run
# `$(BIN)/lint-imports`.
lint: $(STAMP)
	$(BIN)/ruff check core bridge edge_agent tests
	$(BIN)/ruff format --check core bridge edge_agent tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	@$(STACK) install
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_decoders.py
	$(BIN)/python bench/bench_alarm_engine.py
	$(BIN)/python bench/bench_redis.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_edge.py
	@command -v wrk >/dev/null || $$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq wrk >/dev/null
	$(BIN)/python bench/bench_api.py --quick
	$(BIN)/python bench/bench_storage.py
	$(BIN)/python bench/write_constants.py
	$(MAKE) bench-peers
	$(MAKE) bench-cardinality

bench-peers: $(STAMP)
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/bench_peers.py

bench-cardinality: $(STAMP)
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/bench_cardinality.py

bench-burst: $(STAMP)
	@$(BIN)/python -c "import matplotlib" 2>/dev/null || $(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/bench_burst.py

clean: stop
	rm -rf .stack $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache .grimp_cache
