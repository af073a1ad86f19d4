# Two entry points for a fresh machine: `make demo` and `make test`. Each builds .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch and torchvision that install together (x86_64: CUDA build that runs on the CPU; aarch64: CPU build)
ifeq ($(shell uname -m),aarch64)
TORCH := torch==2.9.1 torchvision==0.24.1
else
TORCH := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: demo test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py --out demo_out

# one torch thread: on a shared 2-core machine two threads per process are often far slower
test: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_models.py && $(PY) benchmarks/bench_bank.py && $(PY) benchmarks/bench_transforms.py \
		&& $(PY) benchmarks/bench_operator.py && $(PY) benchmarks/bench_allocator.py && $(PY) benchmarks/bench_augment.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
