# vqladder — two commands matter: `make demo` and `make test`. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU wheel of torch, pinned so that CI never pulls a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup demo test test-slow test-all lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/vqladder demo

# `make test`: lint (ruff: pyflakes, pycodestyle, import order) + every test not marked slow, in two pytest-xdist
# workers of one thread each (CI runs this).
# `make test-slow`: only the tests marked slow (full experiments end to end, torchrun, the fuzzed configs trained
# for real); `make test-all`: both. CI runs `make test`, then `make test-slow`.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q -x -n 2 --dist loadscope tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -x -m slow tests

test-all: lint
	$(BIN)/python -m pytest -q -x -m '' tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_quantizers.py

clean:
	rm -rf $(VENV) runs data .pytest_cache
