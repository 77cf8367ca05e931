# The verbs a user types. Everything runs from the repo's own virtual environments:
#   .venv/      the project (pipeline, service, frontend, tests)
#   .venv-sam/  aws-sam-cli, which pins its own dependencies
#   .venv-checkov/  checkov, pinned in pyproject.toml's `checkov` extra (it conflicts with the app's boto3)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
STAMP := $(VENV)/.installed
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install demo screenshot serve test test-fast lint typecheck bench bench-users bench-scale bench-spark eval reliability sam-validate checkov sam-local standin-image deploy train-emr clean

help:
	@echo "make install     the virtualenv .venv with every dependency (the other targets do it when needed)"
	@echo "make demo        local S3 + pipeline + API (:8000) + frontend (:8501); Ctrl-C stops all"
	@echo "                 ports: make demo API_PORT=8010 UI_PORT=8511 S3_PORT=5010"
	@echo "make screenshot  with the demo running: its Recommendations page, whole -> docs/img/dashboard.png"
	@echo "make serve MODEL=DIR|s3://bucket/prefix   serve a published model with uvicorn (:8000)"
	@echo "make test        install test dependencies, lint, type-check, and run the whole suite (slow tests included)"
	@echo "make test-fast   the suite without the slow integration tests"
	@echo "make bench       pipeline and service benchmarks -> docs/bench.json and docs/performance.md"
	@echo "make bench-users cold start and API memory at 10k and 1M users, with and without per-user arrays"
	@echo "make bench-scale 10k/100k/1M-item catalogues: index choice, recall, latency, cold start, RSS (long)"
	@echo "make bench-spark single-process vs Spark local[2] at 1M and 10M (prints figures; minutes)"
	@echo "make train-emr   pack the pipeline, upload it and start an EMR Serverless job run (REC_EMR_*, REC_SOURCE)"
	@echo "make eval        MovieLens-100K evaluation report -> docs/evaluation.md, the default run over the API, explanations"
	@echo "make reliability schemathesis, hot swap under load, store and user-state faults -> docs/reliability.md (~10 min)"
	@echo "make checkov     checkov's security scan of template.yaml (accepted findings are skipped inline, with reasons)"
	@echo "make sam-local   sam build + sam local start-api against the local S3"
	@echo "make deploy      sam build && sam deploy (needs an AWS account)"
	@echo "make lint        ruff check and ruff format --check"
	@echo "make typecheck   mypy"
	@echo "make clean       remove caches and build output (the virtualenvs stay)"

$(STAMP): pyproject.toml layers/reccore/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e layers/reccore -e '.[serve,frontend,dev,spark]'
	$(PY) -m pip install --quiet --no-deps recbole==1.2.1  # ships MovieLens-100K; never import its modules
	touch $@

install: $(STAMP)

# The version comes from pyproject.toml's `checkov` extra, the one place it is pinned.
$(CHECKOV_STAMP): pyproject.toml
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet $$($(CHECKOV_VENV)/bin/python -c \
	    'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["checkov"])')
	touch $@

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli
	touch $@

API_PORT ?= 8000
UI_PORT ?= 8501
S3_PORT ?= 5000
demo: $(STAMP)
	$(PY) scripts/demo.py --api-port $(API_PORT) --ui-port $(UI_PORT) --s3-port $(S3_PORT)

# The README's image: u0000001's Recommendations page in the running demo, whole, in headless Chromium.
screenshot: $(STAMP)
	$(PY) scripts/screenshot.py --ui-url http://127.0.0.1:$(UI_PORT) --api-url http://127.0.0.1:$(API_PORT)

MODEL ?=
serve: $(STAMP)
	$(PY) scripts/serve.py $(if $(MODEL),--model '$(MODEL)') --port $(API_PORT)

test: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) lint typecheck
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) scripts/bench_pipeline.py
	$(PY) scripts/bench_service.py
	$(PY) scripts/bench_realtime.py
	$(PY) scripts/bench_history.py
	$(PY) scripts/bench_report.py --write

# Cold start and API memory at 10k and 1M users, with and without per-user arrays (~10 min, ~4 GB at 1M users).
bench-users: $(STAMP)
	nice -n 10 $(PY) scripts/bench_users.py --record
	$(PY) scripts/bench_report.py --write

bench-scale: $(STAMP)
	nice -n 10 $(PY) scripts/bench_scale.py --sizes 10000,100000,1000000

bench-spark: $(STAMP)
	nice -n 10 $(PY) scripts/bench_spark.py

# The job's environment: a non-editable install (venv-pack packs installed files), without pyspark
# (EMR Serverless brings Spark). Its Python must match the EMR image's (see docs/pipeline.md, "Scale-out training on Spark").
EMR_VENV := .venv-emr
train-emr: $(STAMP)
	test -x $(EMR_VENV)/bin/python || $(PYTHON) -m venv $(EMR_VENV)
	$(EMR_VENV)/bin/pip install --quiet ./layers/reccore .
	$(PY) -m pipeline.emr --venv $(EMR_VENV)

eval: $(STAMP)  # the cold-start study starts the service (uvicorn, functions/recommend) and asks it over HTTP
	# One BLAS thread: with two, a busy 2-core machine ran the SVDs and solves many times slower.
	OPENBLAS_NUM_THREADS=1 $(PY) -m pipeline evaluate --source movielens-100k --report docs/evaluation.md
	$(PY) scripts/bench_tuning.py  # the default command on the standard splits, judged over the API -> docs/bench_tuning.json
	$(PY) scripts/bench_explain.py  # explain's cost, and how often a top reason shares the item's category (a sanity figure)

reliability: $(STAMP)
	$(PY) scripts/reliability.py --report docs/reliability.md

sam-validate: $(SAM_STAMP)
	AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x $(SAM) validate --lint

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact

standin-image:
	scripts/standin_base_image.sh

sam-local: $(STAMP) $(SAM_STAMP)
	$(PY) scripts/sam_local.py

deploy: $(SAM_STAMP)
	$(SAM) build && $(SAM) deploy

clean:
	rm -rf .aws-sam test-output .pytest_cache .ruff_cache .mypy_cache .cache/rie-venv-*
