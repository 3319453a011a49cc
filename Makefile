# Every target installs what it needs first; see README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: install test test-deps lint demo run simulators bench clean airflow doctor mutants

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

# Debian packages the stack tests need (headless Chromium + its driver, Redis for the Celery test),
# installed only when missing (as root, or through sudo)
TEST_DEBS := chromium chromium-driver redis-server
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian packages for the browser and Celery tests)"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

test: install lint test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

simulators: install
	$(BIN)/python -m latam_messaging.simulators $(SIM_ARGS)

# WAREHOUSE=postgres: the whole demo on a throwaway PostgreSQL cluster (as the tests start theirs)
demo: install
	$(BIN)/python scripts/demo.py $(if $(filter postgres,$(WAREHOUSE)),--warehouse postgres)

run: install
	@test -n "$(DAG)" || (echo "usage: make run DAG=<dag_id>" && exit 2)
	$(BIN)/python scripts/demo.py --dag $(DAG)

# A real local Airflow (api-server, scheduler, dag-processor, triggerer) + simulators + receiver; Ctrl-C stops it
airflow: install
	$(BIN)/python scripts/airflow_local.py

# Is this Airflow ready? connections, pools, warehouse migrations, receiver (exit 1 on a problem)
doctor: install
	$(BIN)/python -m latam_messaging doctor $(DOCTOR_ARGS)

# Mutation testing of the promise modules (minutes; not part of make test): score per module,
# survivors and their verdicts in docs/mutants-survivors.md. See README "Mutation testing".
mutants: install
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/python scripts/mutants.py $(MUTANTS_ARGS)

# HISTORY=full: the history lines on the issue's full sizes (README "Benchmarks"); BENCH_ARGS: more flags
bench: install
	$(BIN)/python scripts/bench.py $(if $(HISTORY),--history $(HISTORY)) $(BENCH_ARGS)

clean:
	rm -rf .airflow data/drops reports
