# The two commands a newcomer types: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) experiments/transfer_digits.py

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache

# Benchmarks against Keras (benchmarks/README.md). bench-quick: every family at small sizes, under
# 20 minutes on 2 CPU cores -> benchmarks/results/quick.{json,meta.json,md,png}; bench: full sizes ->
# benchmarks/results/<device>.*. Extra options: make bench BENCH_ARGS="--tf-python /path/to/python".
BENCH_ARGS ?=
.PHONY: bench bench-quick

bench-quick: $(STAMP)
	$(PY) -m jaxcomponents.cli bench --size quick $(BENCH_ARGS)

bench: $(STAMP)
	$(PY) -m jaxcomponents.cli bench --size full $(BENCH_ARGS)
