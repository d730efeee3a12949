# vqladder — two commands matter: `make demo` and `make test`. Both set up .venv first.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU wheel of torch, pinned so that CI never pulls a multi-GB CUDA build.
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/vqladder demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -x tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_quantizers.py

clean:
	rm -rf $(VENV) runs data .pytest_cache
