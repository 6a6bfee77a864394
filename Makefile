# Two entry points, both safe to run on a fresh machine (Debian + Python 3.11):
#   make demo   set up, then ingest the sample contracts, answer questions, verify the audit log
#   make test   set up, then run the whole test suite (what .ci/run calls); the PostgreSQL tests also
#               need a server at 127.0.0.1:5432 (trust auth, database "test"), see scripts/ensure-postgres.sh
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.docket-installed
# The demo keeps its workspace inside the checkout, so it never touches a user's real one.
DEMO_HOME ?= $(CURDIR)/.docket/demo
# Where pip takes torch from. Empty: pip's own configuration decides (on machines whose pip is
# configured with a local folder holding the CPU wheel, that wheel). Elsewhere PyPI serves a CUDA
# build; pass TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one.
TORCH_INDEX ?=

.PHONY: setup system-deps demo test bench lock clean

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

# torch first, pinned; from the index TORCH_INDEX names when set (see above).
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0$(if $(TORCH_INDEX), --index-url $(TORCH_INDEX))
	$(PIP) install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DOCKET_HOME=$(DEMO_HOME) $(VENV)/bin/docket demo --fresh

test: setup
	@bash scripts/ensure-postgres.sh
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PIP) install -q -c constraints.txt -e '.[test,bench]'
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m bench $(BENCH_ARGS)

# Pin what this venv holds now (after a deliberate upgrade and a passing make test).
lock: setup
	$(PIP) install -q -c constraints.txt -e '.[test,bench]'
	{ sed -n '1,3p' constraints.txt; $(PIP) freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.tmp && mv constraints.tmp constraints.txt

clean:
	rm -rf .docket .pytest_cache
