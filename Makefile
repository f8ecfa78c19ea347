# The two commands a user needs: `make run` and `make test`. Everything else
# is a step of those, usable on its own.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STACK := scripts/stack.sh

.PHONY: run test services stop status lint typecheck bench clean help

help:
	@echo "make run        start the local stack (Mosquitto, PostgreSQL, Redis), apply the schema, run the bridge and a simulated fleet"
	@echo "make test       lint, type-check and run the whole test suite against real services"
	@echo "make services   start the local stack only"
	@echo "make stop       stop every project instance (dev and test)"
	@echo "make status     show what is running"
	@echo "make bench      decoder, Redis, end-to-end ingest, edge agent and read API (quick) benchmarks (results in bench/results/)"

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
	@echo "  Bridge      http://127.0.0.1:9108/metrics  (also /healthz, /readyz)"
	@echo "  Edge agent  http://127.0.0.1:9120/healthz  (also /metrics); 100 simulated pumps, log .stack/dev/log/edge-agent.log"
	@echo "  Read API    http://127.0.0.1:9180/docs  (key in .stack/dev/api.env), log .stack/dev/log/api.log"
	@echo "  Live view   http://127.0.0.1:9180/  (the line '[run] live view: ...' below has the URL with the dev key)"
	@echo
	@echo "Publish a reading as the demo device (its credentials are in .stack/dev/credentials.env):"
	@echo "  source .stack/dev/credentials.env; mosquitto_pub -p 11883 -u \$$DEVICE_USERNAME -P \$$DEVICE_PASSWORD -q 1 -t telemetry/site-1/pump-1 -m '{\"data\": {\"flow_rate\": 1234.5}}'"
	@echo "See it stored:"
	@echo "  psql -h 127.0.0.1 -p 15432 -U bridge bridge -c 'SELECT * FROM telemetry ORDER BY time DESC LIMIT 5'"
	@echo "Or through the read API:"
	@echo "  source .stack/dev/api.env; curl -H \"Authorization: Bearer \$$API_KEY\" http://127.0.0.1:9180/api/v1/devices?limit=5"
	@echo "Watch the fleet arrive:"
	@echo "  psql -h 127.0.0.1 -p 15432 -U bridge bridge -c 'SELECT device_id, count(*), max(time) FROM telemetry GROUP BY 1 ORDER BY 1 LIMIT 5'"
	@echo "Ctrl-C stops the bridge, the edge agent and the API; make stop stops the services."
	@echo
	@scripts/run-dev.sh

status:
	@$(STACK) status dev

stop:
	@$(STACK) down all

lint: $(STAMP)
	$(BIN)/ruff check bridge edge_agent tests
	$(BIN)/ruff format --check bridge edge_agent tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	@$(STACK) install
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_decoders.py
	$(BIN)/python bench/bench_redis.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_edge.py
	@command -v wrk >/dev/null || $$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq wrk >/dev/null
	$(BIN)/python bench/bench_api.py --quick

clean: stop
	rm -rf .stack $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
