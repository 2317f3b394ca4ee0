# `make test` sets up a fresh clone and runs the test suite (CI runs exactly this).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export CUDA_HOME ?= /usr/local/cuda

.PHONY: setup setup-test kernels test

setup:
	$(PIP) install -q -e .

# Peers we compare against in tests: the official BigVGAN model code (no weights) and ParallelWaveGAN's losses.
setup-test: setup
	$(PIP) install -q -e '.[test,eval]'
	$(PIP) install -q --no-deps bigvgan
	$(PIP) install -q matplotlib huggingface_hub
	$(PIP) install -q --no-build-isolation parallel-wavegan

kernels:
	$(PYTHON) scripts/build_kernels.py

test: setup-test kernels
	$(PYTHON) -m pytest -q
