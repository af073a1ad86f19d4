#!/usr/bin/env bash
# The prepared GPU checks (about 8 minutes on one CUDA GPU): see benchmarks/gpu_check.py.
#   bash benchmarks/gpu_check.sh                                   -> benchmarks/results/gpu/
#   bash benchmarks/gpu_check.sh --device cpu --tiny --out DIR     (the CPU smoke run of `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PY" benchmarks/gpu_check.py "$@"
