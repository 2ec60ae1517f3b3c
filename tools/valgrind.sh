#!/usr/bin/env bash
# Run tools/valgrind_kernels.py (every compiled kernel family, float32 and float64, 1 and 2 threads,
# results checked against fastmlp._reference) under valgrind's memcheck, once with the run-time-selected
# kernels (AVX2 where the CPU has it) and once with FASTMLP_KERNEL=ref (the portable kernels).
# Exits non-zero on any memcheck error (invalid read/write, use of uninitialised memory, bad free) or
# wrong result. Uses the fastmlp installed in the active Python environment (a normal, -O3 build is fine;
# `FASTMLP_SANITIZE=1` builds are for tools/sanitize.sh, not for valgrind).
#
# PYTHONMALLOC=malloc makes CPython use malloc directly so that memcheck sees every allocation;
# tools/valgrind-python.supp suppresses the interpreter's own false positives (innermost frame in
# libpython only). Leak checking is off: CPython keeps its objects alive at exit by design.
#
# Usage: bash tools/valgrind.sh [python]        (a few minutes; needs valgrind >= 3.16)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-python}"
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 2; }
cd "$(mktemp -d)"                  # never import the source tree
status=0
for kernel in "" ref; do
    echo "== memcheck: FASTMLP_KERNEL=${kernel:-auto}"
    if ! FASTMLP_KERNEL="$kernel" PYTHONMALLOC=malloc OMP_NUM_THREADS=2 \
        valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --track-origins=yes \
                 --num-callers=40 --suppressions="$here/valgrind-python.supp" \
                 "$python" "$here/valgrind_kernels.py" 2>memcheck.log; then
        status=1
        grep -v "^==[0-9]*== *$" memcheck.log | tail -80 >&2
    fi
    grep "ERROR SUMMARY" memcheck.log
done
if [ "$status" -eq 0 ]; then echo "valgrind: 0 errors"; fi
exit "$status"
