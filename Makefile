# Two commands on a fresh clone: `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint serve worker flower bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Test files run in TEST_WORKERS processes (pytest-xdist), a file's tests in one of them, so its
# module fixtures (a service stack, a shared render) are made once. Four on 2 cores: many stack
# tests spend their time waiting (a worker's redelivery, a store that is down), and the whole
# suite took 595 s of pytest against 671 s with three. Files go out in collection order, the
# slowest first (tests/conftest.py SLOW_FIRST), not reordered by their number of tests, which
# xdist does by default (3.8 added the option not to) and which sent the few long stack tests
# out last.
TEST_WORKERS ?= 4
test: lint
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# On a laptop the storage defaults to ./data (the service's own default, /data, is the
# container volume); set RENDER_STORAGE to put it elsewhere.
serve demo flower: export RENDER_STORAGE ?= $(CURDIR)/data

serve: $(STAMP)
	$(PY) -m api.launch serve

worker: $(STAMP)
	$(VENV)/bin/celery -A tasks.app worker --loglevel=INFO

# Flower on :5555 against REDIS_URL, or the embedded Redis of a running `make serve`; basic
# auth from FLOWER_BASIC_AUTH (user:password), which it refuses to start without.
flower: $(STAMP)
	$(PY) -m tasks.flower

demo: $(STAMP)
	$(PY) -m api.launch demo --port 8090

bench: $(STAMP)
	$(PY) -m tests.bench
	$(PY) -m tests.bench_transitions
	$(PY) -m tests.bench_queue
	$(PY) -m tests.bench_scale
	$(PY) -m tests.bench_captions
	$(PY) -m tests.bench_batch
	$(PY) -m tests.bench_s3
	$(PY) -m tests.bench_text
	$(PY) -m tests.bench_console
	$(PY) -m tests.bench_clips

# docs/api-reference.md from the app's /openapi.json (tests/api/test_apidoc.py checks it is current).
docs: $(STAMP)
	$(PY) -m api.apidoc

clean:
	rm -rf $(VENV) dist .bench .pytest_cache .mypy_cache .ruff_cache
