# Pulse: `make run` runs the whole platform on this machine; `make test` runs every test.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install test-tools run test test-chaos lint check rebuild reconcile bench images up down clean-data widget-baselines

help:
	@echo "make run        run the whole platform locally (embedded broker and PostgreSQL by default)"
	@echo "make test       run every test (unit, component, end-to-end) on Apache Kafka (TEST_BROKER=tansu: on tansu)"
	@echo "make test-chaos the fault suite: the whole platform under kill -9, broker crash, network and vendor faults"
	@echo "make bench      every benchmark on tansu and Apache Kafka, one table (bench/results/latest.*)"
	@echo "make lint       ruff and mypy (strict)"
	@echo "make rebuild    recompute scoring aggregates from stored answers (ARGS=--apply to replace them)"
	@echo "make reconcile  re-push every account's scores to the CRMs (ARGS=--dry-run)"
	@echo "make images     build the service images (needs Docker)"
	@echo "make up / down  the platform on Docker with Apache Kafka and PostgreSQL (docker-compose.yml)"
	@echo "make clean-data forget the local PostgreSQL data in .pulse/"

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	$(UV) sync --frozen

run: install
	$(UV) run --frozen python scripts/dev.py

# What the tests run beside Python: Debian's Chromium for the widget (never a downloaded browser build), zsh for
# the documentation's examples, Java and Maven for Apache Kafka (the suite's broker; on TEST_BROKER=tansu the
# tests of Kafka's own behaviour, such as a broker crash, still start one). Installed when run as root on Debian; otherwise the missing ones are named.
test-tools:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v zsh >/dev/null 2>&1 || missing="$$missing zsh"; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "The tests need: $$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; fi

# The suite on Apache Kafka (the broker production runs), then the walking skeleton on tansu (the broker `make
# run` uses). TEST_BROKER=tansu runs the whole suite on tansu.
test: install test-tools
	$(UV) run --frozen pytest
	@if [ "$${TEST_BROKER:-kafka}" = kafka ]; then TEST_BROKER=tansu $(UV) run --frozen pytest -q tests/test_walking_skeleton.py; fi

# The whole-platform fault suite (about 10 minutes): two replicas of each service on Apache Kafka, one fault per
# scenario, every result counted against a plain-Python oracle; one line per scenario.
test-chaos: install test-tools
	$(UV) run --frozen pytest -m chaos -s -q tests/chaos

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy shared/src services/ingest/src services/scoring/src services/alerts/src services/crm-sync/src

check: lint test

# Uses DATABASE_URL from the environment, else the one `make run` is using (.pulse/dev.env).
rebuild: install
	@set -a; [ -n "$$DATABASE_URL" ] || { [ -f .pulse/dev.env ] && . .pulse/dev.env; }; set +a; \
	$(UV) run --frozen python -m scoring rebuild $(ARGS)

# Re-push every account to the CRMs (ARGS=--dry-run to see what it would do; --connector hubspot).
reconcile: install
	@set -a; [ -n "$$DATABASE_URL" ] || { [ -f .pulse/dev.env ] && . .pulse/dev.env; }; set +a; \
	$(UV) run --frozen python -m crm_sync reconcile $(ARGS)

clean-data:
	rm -rf .pulse

# Benchmarks: every one on tansu and on Apache Kafka, each figure next to its reference measured in the same run,
# one table at the end (also bench/results/latest.txt and .json). About 15 minutes; not part of `make test`.
bench: install test-tools
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } || { echo "make bench needs wrk (apt-get install wrk)" >&2; exit 1; }
	$(UV) run --frozen python bench/run.py $(ARGS)

IMAGE_TAG ?= local

images:
	docker build -f services/ingest/Dockerfile -t pulse/ingest:$(IMAGE_TAG) .
	docker build -f services/scoring/Dockerfile -t pulse/scoring:$(IMAGE_TAG) .
	docker build -f services/alerts/Dockerfile -t pulse/alerts:$(IMAGE_TAG) .
	docker build -f services/crm-sync/Dockerfile -t pulse/crm-sync:$(IMAGE_TAG) .
	docker build -f deploy/docker/migrate.Dockerfile -t pulse/migrate:$(IMAGE_TAG) .

up:
	docker compose up --build --detach --wait

down:
	docker compose down

# After a change to the widget's look: regenerate the screenshots its browser test compares with (then look at
# services/ingest/tests/widget_baselines/*.png before committing them).
widget-baselines: install test-tools
	PULSE_UPDATE_BASELINES=1 $(UV) run --frozen pytest services/ingest/tests/test_widget_browser.py -k screenshots
