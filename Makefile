# `make test` sets up a fresh clone and runs the test suite (CI runs exactly this).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
export CUDA_HOME ?= /usr/local/cuda

.PHONY: setup demo setup-test kernels lint-imports test test-oldest-torch gpu-checks

setup:
	$(PIP) install -q -e .

# The main job on a fresh clone: vocode the shipped samples/ with the shipped default model into DEMO_OUT/
# (one wav and one spectrogram PNG per clip).
DEMO_OUT ?= out
demo: setup
	$(PYTHON) -m vocoder synthesize samples/ --output $(DEMO_OUT)/ --spectrogram
	@echo "wrote $(DEMO_OUT)/: one .wav and one .png (input vs output spectrogram) per clip of samples/"

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

# The oldest torch / torchaudio pair pyproject.toml claims (torch>=2.4), in its own virtual environment that sees
# the packages `setup-test` installed but its own torch and torchaudio: the CPU kernel build and the fast subset
# (kernels, generators incl. Parallel WaveGAN, HiFTNet and its F0 network and source, twin deconvolution,
# checkpoints, inference, phase refinement, streaming). PyPI's Linux torch wheels bring their
# CUDA libraries: 2.85 GB to download (torch 0.80 GB, nvidia-*-cu12 1.84 GB, triton 0.21 GB), kept in
# OLDEST_WHEELS so a machine that keeps its home downloads them once. No CUDA build: the CUDA toolkit here is the one the newest torch wants.
# ONNX export needs a newer torch (README, "Supported torch versions"), so its tests are left out.
OLDEST_TORCH ?= 2.4.0
OLDEST_TORCHAUDIO ?= 2.4.0
OLDEST_WHEELS ?= $(HOME)/.cache/vocoder/wheels/torch-$(OLDEST_TORCH)
OLDEST_VENV ?= $(HOME)/.cache/vocoder/venv-torch-$(OLDEST_TORCH)
OLDEST_TESTS ?= tests/test_kernels.py tests/test_generators.py tests/checkpoints tests/test_inference.py tests/test_streaming.py \
	tests/test_phase_refinement.py tests/test_parallel_wavegan.py tests/test_hiftnet.py tests/test_harmonic_source.py \
	tests/test_f0_predictor.py tests/test_twin_deconv.py

test-oldest-torch: setup-test
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv --system-site-packages $(OLDEST_VENV)
	$(PIP) download -q -d $(OLDEST_WHEELS) torch==$(OLDEST_TORCH) torchaudio==$(OLDEST_TORCHAUDIO)
	$(OLDEST_VENV)/bin/python -m pip install -q --no-index --find-links $(OLDEST_WHEELS) \
		torch==$(OLDEST_TORCH) torchaudio==$(OLDEST_TORCHAUDIO)
	$(OLDEST_VENV)/bin/python -c "import torch, torchaudio; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
	$(OLDEST_VENV)/bin/python scripts/build_kernels.py --no-cuda
	$(OLDEST_VENV)/bin/python -m pytest -q -m "not slow" -k "not onnx" $(OLDEST_TESTS)

# On a machine with a CUDA GPU (after `make setup-test`): the kernel and inference tests, which run their GPU
# cases there, and the GPU benchmarks, each printing its ratio against the peer measured in the same run.
gpu-checks: kernels
	$(PYTHON) -m pytest -q -rs tests/test_kernels.py tests/test_inference.py
	$(PYTHON) scripts/bench_kernels.py --device cuda --repeat 5
	$(PYTHON) scripts/bench_inference.py --devices cuda --models base,v2_24k --seconds 10 --repeat 5
	$(PYTHON) scripts/bench_train.py --device cuda --recipes bigvgan_kernels,bigvgan --steps 20 --warmup 3
