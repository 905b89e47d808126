# One entry point per job. `make serve` and `make test` work on a fresh machine: they create .venv,
# install the torch build this machine should run (deploy/install_torch.py: CPU unless an NVIDIA GPU
# is present, or as TORCH=cpu|cu126|cu128 says), then the project with only what the job needs:
# serving gets the package alone, training adds [train], tests add [dev]. `make test` is exactly
# what CI (.ci/run) runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= auto
TORCH_VERSION ?= 2.13.0
SHARED_NAMES := ../shared/data/names
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps data lint test serve train evaluate bench

$(VENV)/.torch:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python deploy/install_torch.py --torch $(TORCH) --version $(TORCH_VERSION)
	touch $@

$(VENV)/.serve-installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.train-installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e ".[train]"
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Headless Chromium for the web-page test, with Noto fonts so its screenshots draw CJK, Arabic and
# Greek letters rather than boxes; wrk for the benchmark; a headless JRE (17+) for the Spark tests of
# batch/ (Debian packages).
system-deps:
	@command -v chromium >/dev/null && command -v wrk >/dev/null && command -v java >/dev/null && \
	  dpkg -s fonts-noto-core fonts-noto-cjk >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -qq && \
	   DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium wrk \
	     default-jre-headless fonts-noto-core fonts-noto-cjk >/dev/null)

# The names dataset, verified by fingerprint: from ../shared when it is there, else downloaded.
data: $(VENV)/.serve-installed
	@test -f data/names/Russian.txt || \
	  $(BIN)/python -m training.fetch_data $(if $(wildcard $(SHARED_NAMES)),--from $(SHARED_NAMES))

# ruff (lint and format) and mypy (strict on model/), configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install system-deps data lint
	$(BIN)/python -m pytest

serve: $(VENV)/.serve-installed
	$(BIN)/python -m app

train: $(VENV)/.train-installed data
	$(BIN)/python -m training.train --output-dir runs/default

evaluate: install data
	$(BIN)/python -m training.evaluate runs/default/model.safetensors

bench: install system-deps data
	$(BIN)/python -m bench
