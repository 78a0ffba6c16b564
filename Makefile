# order-service — every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv from PATH, else a private copy in .uv/ (a venv of its own: works where pip refuses to
# install into the system Python, PEP 668).
UV := $(or $(shell command -v uv 2>/dev/null),.uv/bin/uv)

.DEFAULT_GOAL := help
.PHONY: help install dev observe observe-install test test-fast lint format typecheck bench migrate clean system-deps kafka

help: ## list the commands
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/order-service: pyproject.toml uv.lock
	@if [ ! -x "$(UV)" ]; then \
	  $(PYTHON) -m venv .uv && .uv/bin/pip install --quiet --disable-pip-version-check uv; fi
	$(UV) sync --frozen --python $(PYTHON) --extra aws --extra devstack --extra loadtest
	@touch $@

install: $(BIN)/order-service ## create .venv/ from the lock file (uv), CLI at .venv/bin/order-service

system-deps: ## Debian tools the tests use (promtool, wrk, docker-compose, ip, iptables), installed when missing
	@bash scripts/system-deps.sh

kafka: install ## Apache Kafka's broker runtime (Maven Central, pinned), cached in ~/.cache/order-service
	@$(BIN)/python -m order_service.devstack.kafka_runtime

dev: install ## the whole stack embedded (PostgreSQL + broker + api + relay + worker); BROKER=kafka for Apache Kafka
	$(if $(filter kafka,$(BROKER)),@$(BIN)/python -m order_service.devstack.kafka_runtime)
	$(BIN)/order-service dev $(if $(BROKER),--broker $(BROKER))

observe-install: ## build Jaeger and the OpenTelemetry Collector from source into ~/.cache (once)
	@bash scripts/observe-install.sh

observe: install system-deps observe-install ## make dev + Prometheus, Alertmanager, exporters, Collector, Jaeger (BROKER= too)
	$(if $(filter kafka,$(BROKER)),@$(BIN)/python -m order_service.devstack.kafka_runtime)
	$(BIN)/order-service dev --observe $(if $(BROKER),--broker $(BROKER))

test: install system-deps kafka observe-install lint typecheck ## install everything, then run every test
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: install ## unit tests only
	$(BIN)/pytest -q tests/unit

lint: install ## ruff + black --check
	$(BIN)/ruff check src tests bench order deploy
	$(BIN)/black --check --quiet src tests bench order deploy

format: install ## black + ruff --fix
	$(BIN)/ruff check --fix src tests bench order deploy
	$(BIN)/black --quiet src tests bench order deploy

typecheck: install ## mypy --strict on src/
	$(BIN)/mypy src

migrate: install ## alembic upgrade head against POSTGRES_DSN
	$(BIN)/order-service migrate

bench: install system-deps kafka ## measure on Apache Kafka and Tansu: ceiling, seed design, ours, load curve, backlog drain (BACKLOG=1000000 for the full drain)
	$(BIN)/python -m bench $(if $(BACKLOG),--backlog $(BACKLOG))

clean: ## remove the venv and the dev data
	rm -rf $(VENV) .venv-helm .uv .dev .mypy_cache .ruff_cache
