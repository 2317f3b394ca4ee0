# `make test` sets up a fresh clone and runs the test suite (CI runs exactly this).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export CUDA_HOME ?= /usr/local/cuda

.PHONY: setup setup-test kernels lint-imports test gpu-checks

setup:
	$(PIP) install -q -e .

# Peers we compare against in tests: the official BigVGAN and Vocos model code (no weights) and ParallelWaveGAN's losses.
setup-test: setup
	$(PIP) install -q -e '.[test,eval,serve]'
	$(PIP) install -q import-linter
	$(PIP) install -q --no-deps bigvgan
	$(PIP) install -q --no-deps vocos encodec einops
	$(PIP) install -q matplotlib huggingface_hub
	$(PIP) install -q --no-build-isolation parallel-wavegan

kernels:
	$(PYTHON) scripts/build_kernels.py

# The layers contract in pyproject.toml ([tool.importlinter]): no cycles, no import pointing up.
lint-imports: setup-test
	lint-imports

test: setup-test kernels
	$(PYTHON) -m pytest -q

# On a machine with a CUDA GPU (after `make setup-test`): the kernel and inference tests, which run their GPU
# cases there, and the GPU benchmarks, each printing its ratio against the peer measured in the same run.
gpu-checks: kernels
	$(PYTHON) -m pytest -q -rs tests/test_kernels.py tests/test_inference.py
	$(PYTHON) scripts/bench_kernels.py --device cuda --repeat 5
	$(PYTHON) scripts/bench_inference.py --devices cuda --models base,v2_24k --seconds 10 --repeat 5
	$(PYTHON) scripts/bench_train.py --device cuda --recipes bigvgan_kernels,bigvgan --steps 20 --warmup 3
