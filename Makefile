# needle: build the native backends in place, test, train, benchmark.
PYTHON ?= python3
BUILD ?= build
JOBS ?= 2

# The CUDA backend. CUDA=1 builds it (nvcc required), CUDA=0 skips it. Left unset, `make` and
# `make train` build it only where a GPU is present (`nvidia-smi -L` lists one) and nvcc is
# found, while `make test` builds it wherever nvcc is found: compiling the CUDA code is a check
# worth having even on a machine without a GPU. The choice is passed to CMake as NEEDLE_CUDA on
# every build, so switching takes effect on the next one.
CUDA ?=
GPU_CUDA = $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo AUTO || echo OFF)
NEEDLE_CUDA = $(if $(filter 1 on ON yes true,$(CUDA)),ON,$(if $(filter 0 off OFF no false,$(CUDA)),OFF,$(GPU_CUDA)))
test: GPU_CUDA = AUTO

# What `make train` needs: requirements.txt (cmake, pybind11, numpy, tqdm, matplotlib). pip runs
# only when one of them is missing, so after the first run this is a quick check.
TRAIN_MODULES = numpy pybind11 tqdm matplotlib
PIP_INSTALL = PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 $(PYTHON) -m pip install -q

.PHONY: lib test deps train-deps train bench lint format clean

lib:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DNEEDLE_NATIVE=ON -DNEEDLE_CUDA=$(NEEDLE_CUDA) -DPython_EXECUTABLE="$$(command -v $(PYTHON))"
	cmake --build $(BUILD) -j $(JOBS)

deps:
	$(PIP_INSTALL) -r requirements-test.txt

test: deps lib
	$(PYTHON) -m pytest -q tests

train-deps:
	@$(PYTHON) -c 'import importlib.util as u, shutil, sys; sys.exit(shutil.which("cmake") is None or any(u.find_spec(m) is None for m in sys.argv[1:]))' $(TRAIN_MODULES) \
		|| { echo "installing requirements.txt"; $(PIP_INSTALL) -r requirements.txt \
		|| echo "note: pip could not install requirements.txt; without tqdm and matplotlib there is no progress bar and no curves.png"; }

train: train-deps lib
	$(PYTHON) -m apps.train

bench: lib
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PYTHON) benchmarks/bench_matmul.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PYTHON) benchmarks/bench_conv.py
	# what users run, in the default environment
	$(PYTHON) benchmarks/bench_overhead.py
	$(PYTHON) benchmarks/bench_train.py

lint:
	$(PYTHON) -m ruff check python apps tests benchmarks

format:
	$(PYTHON) -m ruff format python apps tests benchmarks
	clang-format -i src/*.cc src/*.cu src/common/*.h src/cpu/*.h src/cpu/conv/*.h src/cuda/*.cuh

clean:
	rm -rf $(BUILD) _skbuild dist *.egg-info python/*.egg-info
	rm -f python/needle/backend_ndarray/ndarray_backend_cpu*.so python/needle/backend_ndarray/ndarray_backend_cuda*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache
