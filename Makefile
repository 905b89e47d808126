# One entry point per job. `make serve` and `make test` work on a fresh machine: they create
# .venv, install the CPU torch pin first (an unpinned torch pulls a multi-GB CUDA build), then
# the project. `make test` is exactly what CI (.ci/run) runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0
SHARED_NAMES := ../shared/data/names
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps data test serve train evaluate bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Headless Chromium for the web-page test, wrk for the benchmark, a headless JRE (17+) for the Spark
# tests of batch/ (Debian packages).
system-deps:
	@command -v chromium >/dev/null && command -v wrk >/dev/null && command -v java >/dev/null || \
	  ($(SUDO) apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium wrk default-jre-headless >/dev/null)

# The names dataset, verified by fingerprint: from ../shared when it is there, else downloaded.
data: install
	@test -f data/names/Russian.txt || \
	  $(BIN)/python -m training.fetch_data $(if $(wildcard $(SHARED_NAMES)),--from $(SHARED_NAMES))

test: install system-deps data
	$(BIN)/python -m pytest

serve: install
	$(BIN)/python -m app

train: install data
	$(BIN)/python -m training.train --output-dir runs/default

evaluate: install data
	$(BIN)/python -m training.evaluate runs/default/model.safetensors

bench: install system-deps data
	$(BIN)/python -m bench
