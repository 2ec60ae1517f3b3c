#!/usr/bin/env bash
# Build fastmlp with AddressSanitizer + UndefinedBehaviorSanitizer (FASTMLP_SANITIZE=1, see setup.py) in a
# fresh virtual environment and run the kernel, gradient and some reliability tests under it. Any
# sanitizer report aborts the run with a non-zero exit. Usage: bash tools/sanitize.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(mktemp -d)/venv
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
FASTMLP_SANITIZE=1 pip install --quiet ".[test]"

# The Python interpreter itself is not instrumented, so the ASan runtime must be loaded first.
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
# Leak detection is off: CPython keeps interned objects alive at exit, which LeakSanitizer reports.
# allocator_may_return_null: an absurd allocation (the size-overflow tests) must fail with NULL, so NumPy
# raises MemoryError as it does without ASan, instead of ASan aborting.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Besides the kernel and gradient tests: the bad-input table, the damaged-file loads and the threaded
# predictions/fits (their subprocesses inherit LD_PRELOAD and the options).
LD_PRELOAD="$asan $ubsan" pytest -q -p no:cacheprovider tests/kernels tests/gradients \
    tests/reliability/test_bad_input_table.py tests/reliability/test_file_corruption.py \
    tests/reliability/test_thread_safety.py "$@"
