# The entry point. `make up` starts the platform, `make test` runs the whole suite (both install
# what they need on a fresh machine). `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
# The stack's own steps (topics, principals, ACLs, the catalogue) and the test harness act as the
# stack's super user `admin` (its credentials file), whatever settings the calling shell holds.
AS_ADMIN := env -u KAFKA_SASL_USERNAME -u KAFKA_SASL_PASSWORD -u KAFKA_SECURITY_PROTOCOL CREDIT_PRINCIPAL=admin
PYTEST_ARGS ?=
DEMO_ARGS ?= --rate 50 --minutes 2

.PHONY: help deps stack topics catalog up down status demo test lint typecheck fmt schemas bench chaos

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: ## install uv (if missing) and the locked Python environment
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || { echo "[deps] installing uv from PyPI"; python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --break-system-packages --user uv; }
	@$(UV) sync --frozen --quiet
	@.venv/bin/python -m credit_common.docs_assets >/dev/null  # Swagger UI and the AsyncAPI viewer, pinned (deploy/docs-assets.json)
	@[ -d deploy/tools/node_modules/@asyncapi/parser ] || npm ci --prefix deploy/tools --no-audit --no-fund --silent  # the AsyncAPI parser the tests run

stack: deps ## start Kafka and PostgreSQL (or reuse what runs)
	@deploy/stack.sh up

topics: stack ## create the contract's topics
	@$(AS_ADMIN) $(RUN) python -m credit_common.messaging.topics

catalog: topics ## the principals, their credentials (.local/credentials) and ACLs; the reference catalogue published
	@$(AS_ADMIN) $(RUN) credit-keys provision deploy/catalog
	@$(AS_ADMIN) $(RUN) credit-reference publish deploy/catalog

up: catalog ## start the platform: Kafka, PostgreSQL, the catalogue, the five services (Ctrl-C stops all; DETACH=1: background)
ifdef DETACH
	@deploy/services.sh up
	@deploy/stack.sh status
	@deploy/services.sh status
	@echo "Platform up. Settings for a shell: eval \"\$$(deploy/stack.sh env)\"; make down stops it."
else
	@echo "Settings for another shell: eval \"\$$(deploy/stack.sh env)\""
	@.venv/bin/python deploy/supervise.py --stop-stack
endif

down: ## stop everything
	@deploy/services.sh down
	@deploy/stack.sh down

status: ## what runs
	@deploy/stack.sh status
	@deploy/services.sh status

demo: catalog ## realistic traffic into the platform (started in the background if it is not running); DEMO_ARGS="--rate 200 --minutes 10"
	@deploy/services.sh up
	@$(AS_ADMIN) $(RUN) python -m credit_demo $(DEMO_ARGS)

lint: deps ## ruff lint and format check
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .

typecheck: deps ## mypy
	@$(RUN) mypy

fmt: deps ## format and autofix
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

schemas: deps ## regenerate the JSON Schemas from the contract models
	@$(RUN) python -m credit_common.contracts.schemagen

test: lint typecheck catalog ## the whole suite: lint, types, schema checks, unit, integration, e2e, a short bench
	@deploy/stack.sh browser >/dev/null  # Chromium for the browser test
	@deploy/services.sh down  # the tests run their own service processes (replay needs the groups idle)
	@$(RUN) python -m credit_common.contracts.schemagen --check
	@$(AS_ADMIN) $(RUN) pytest $(PYTEST_ARGS)

bench: deps ## the benchmarks (tests/perf) on a throwaway stack: figures beside raw baselines, a CSV row each
	@deploy/bench.sh $(BENCH_ARGS)

chaos: deps ## the fault-injection suite (tests/chaos) on a throwaway stack: a row per fault in tests/perf/results/chaos.csv; CHAOS_ARGS="--faults broker_restart"
	@deploy/chaos.sh $(CHAOS_ARGS)
