# needle: build the native backends in place, test, train, benchmark.
PYTHON ?= python3
BUILD ?= build
JOBS ?= 2

.PHONY: lib test deps train bench lint format clean

lib:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DNEEDLE_NATIVE=ON -DPython_EXECUTABLE="$$(command -v $(PYTHON))"
	cmake --build $(BUILD) -j $(JOBS)

deps:
	$(PYTHON) -m pip install -q -r requirements-test.txt

test: deps lib
	$(PYTHON) -m pytest -q tests

train: lib
	$(PYTHON) -m apps.train

bench: lib
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PYTHON) benchmarks/bench_matmul.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PYTHON) benchmarks/bench_overhead.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PYTHON) benchmarks/bench_conv.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PYTHON) benchmarks/bench_train.py

lint:
	$(PYTHON) -m ruff check python apps tests benchmarks

format:
	$(PYTHON) -m ruff format python apps tests benchmarks
	clang-format -i src/*.cc src/*.cu src/cpu/*.h src/cuda/*.cuh

clean:
	rm -rf $(BUILD) _skbuild dist *.egg-info python/*.egg-info
	rm -f python/needle/backend_ndarray/ndarray_backend_cpu*.so python/needle/backend_ndarray/ndarray_backend_cuda*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache
