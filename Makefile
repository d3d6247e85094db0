# The two commands a newcomer types: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean wheel

$(STAMP): pyproject.toml setup.py jaxcomponents/ops/native/onednn_conv.cc
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m jaxcomponents.cli status
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.transfer_digits

# Two pytest workers, one test file each at a time (module-scoped Keras references are built once per file). A
# worker that dies ends the run, naming the test it was running: pytest-xdist 3.8 replaces a dead worker but under
# --dist loadfile its scheduler can then wait forever at the end of the run.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --max-worker-restart 0

clean:
	rm -rf $(VENV) runs .pytest_cache dist build

# The wheel `pip install` builds: on Linux x86-64 it carries the native CPU library (setup.py) -> dist/.
wheel: $(STAMP)
	$(PY) -m pip wheel --no-deps -w dist .

# Benchmarks against Keras (benchmarks/README.md). bench-quick: every family at small sizes, under
# 20 minutes on 2 CPU cores -> benchmarks/results/quick.{json,meta.json,md,png}; bench: full sizes ->
# benchmarks/results/<device>.*; bench-matrix: the configurations users set on the components, training,
# jaxcomponents as imported and tuned (from this checkout and from a fresh `pip install .`) beside both Keras
# backends -> benchmarks/results/matrix-quick.*. Extra options: make bench BENCH_ARGS="--tf-python /path/to/python".
# keras-tf, the optional contender, runs in its own virtualenv: `make tf-venv` once (TensorFlow stays out of
# the default install), then the bench commands find .venv-tf by themselves.
BENCH_ARGS ?=
.PHONY: bench bench-quick bench-matrix bench-unet-zoo tf-venv kuc-venv

tf-venv: .venv-tf/.installed

.venv-tf/.installed:
	$(PYTHON) -m venv .venv-tf
	.venv-tf/bin/python -m pip install --quiet --upgrade pip
	.venv-tf/bin/python -m pip install --quiet "tensorflow-cpu>=2.18" "keras>=3.10" numpy
	touch .venv-tf/.installed

# The SavedModel export test (tests_tensorflow, outside `make test`): jaxcomponents beside TensorFlow in .venv-tf,
# with the JAX and Flax versions of .venv (without its extras, so TensorFlow's own pins stay).
TF_JAX := "jax==0.10.2" "jaxlib==0.10.2" "flax==0.12.8" "optax==0.2.8" "orbax-checkpoint==0.11.36" h5py tqdm \
  "grain>=0.2.12,<0.3" "pytest>=8"
.PHONY: test-tf

.venv-tf/.installed-jax: .venv-tf/.installed pyproject.toml
	.venv-tf/bin/python -m pip install --quiet $(TF_JAX)
	.venv-tf/bin/python -m pip install --quiet --no-deps -e .
	touch .venv-tf/.installed-jax

test-tf: .venv-tf/.installed-jax
	.venv-tf/bin/python -m pytest tests_tensorflow

bench-quick: $(STAMP)
	$(PY) -m jaxcomponents.cli bench --size quick $(BENCH_ARGS)

bench: $(STAMP)
	$(PY) -m jaxcomponents.cli bench --size full $(BENCH_ARGS)

# keras-unet-collection's models against kuc itself, which needs tf.keras (Keras 2): its contender runs in .venv-kuc.
kuc-venv: .venv-kuc/.installed

.venv-kuc/.installed:
	$(PYTHON) -m venv .venv-kuc
	.venv-kuc/bin/python -m pip install --quiet --upgrade pip
	.venv-kuc/bin/python -m pip install --quiet "tensorflow-cpu==2.15.1" "keras-unet-collection==0.1.13" "numpy<2" \
	  h5py pillow
	touch .venv-kuc/.installed

bench-unet-zoo: $(STAMP) .venv-kuc/.installed
	$(PY) -m jaxcomponents.cli bench --unet-zoo --size quick --modes train \
	  --frameworks jaxcomponents,jaxcomponents-tuned,keras-tf --tf-python .venv-kuc/bin/python $(BENCH_ARGS)

bench-matrix: $(STAMP)
	$(PY) -m jaxcomponents.cli bench --matrix --size quick --modes train \
	  --frameworks jaxcomponents,jaxcomponents-tuned,jaxcomponents-pip,jaxcomponents-pip-tuned,keras-jax,keras-tf \
	  $(BENCH_ARGS)
