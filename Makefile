# nbship: the whole set-up is `make build` (pipeline) and `make test` (tests).
# Both create .venv with the pinned dependencies on first use.
# `make help` lists every target.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8

# Telemetry off and no network at run time; the venv also carries these defaults
# (config/nbship-offline.pth) so plain `ploomber`/`mlflow` calls inherit them.
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := true
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.DEFAULT_GOAL := help

.PHONY: help setup build test lab status plot mlflow-ui lint format lock clean clean-all bench \
        airflow-venv retrain export-airflow serve

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with the pinned dependencies and the `nbship` kernel

$(STAMP): requirements.lock.txt pyproject.toml config/nbship-offline.pth
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]' || { echo "error: set PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock.txt \
	  || $(BIN)/python -m pip install --quiet -r requirements.lock.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . \
	  || $(BIN)/python -m pip install --quiet --no-deps -e .
	cp config/nbship-offline.pth $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/
	$(BIN)/python -m ipykernel install --sys-prefix --name nbship --display-name nbship >/dev/null
	$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 || true
	touch $@

build: setup ## build the whole pipeline on the default data (incremental)
	$(BIN)/nbship build

test: setup airflow-venv ## run the whole test suite (unit, data, model, notebooks, pipeline, api)
	$(BIN)/python -m pytest

airflow-venv: ## create .venv-airflow (Airflow 3.3.2, only for the DAG export test)
	PYTHON=$(PYTHON) scripts/airflow-venv.sh

retrain: setup ## headless retrain: build, gate, promote or keep, score, monitor
	$(BIN)/nbship retrain

export-airflow: setup ## write deploy/airflow/nbship_dag.py (one task per pipeline task)
	$(BIN)/nbship export-airflow --out deploy/airflow/nbship_dag.py

serve: setup ## the real-time API on http://127.0.0.1:8000 (champion model)
	$(BIN)/nbship serve

lab: setup ## open JupyterLab (notebooks open as notebooks; see README)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser

status: setup ## which tasks are up to date
	$(BIN)/ploomber status

plot: setup ## draw the DAG to products/pipeline.png
	mkdir -p products && $(BIN)/ploomber plot --output products/pipeline.png

mlflow-ui: setup ## browse runs and the registry (env.yaml's tracking_uri) on http://127.0.0.1:5000
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri \
	  "$$($(BIN)/python -c 'from tasks.config import load_env; print(load_env()["tracking_uri"])')"

bench: setup ## run the benchmarks (prints tables)
	$(BIN)/python benchmarks/build.py

lint: setup ## ruff lint and format check
	$(BIN)/ruff check tasks tests benchmarks
	$(BIN)/ruff format --check tasks tests benchmarks

format: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix tasks tests benchmarks
	$(BIN)/ruff format tasks tests benchmarks

lock: ## re-resolve requirements.lock.txt from requirements.txt
	$(BIN)/uv pip compile requirements.txt --python-version 3.11 -o requirements.lock.txt

clean: ## delete products (keeps the MLflow store and the venv)
	rm -rf products products-test

clean-all: clean ## delete products, the MLflow stores and the venv
	rm -rf tracking tracking-test $(VENV) .venv-airflow .nbship
