"""The machine's FMA peak, measured: the limit benchmarks quote GFLOP/s against.

Design: a peak computed from the nominal clock and the width of the kernels
that run is wrong both ways -- turbo clocks run above the listed one, and the
widest ISA may be faster (Intel AVX-512: two 512-bit FMA pipes, twice AVX2)
or not (AMD Zen 4: 512-bit FMAs execute as two 256-bit halves). So the peak
is the best of a few short runs of a FMA probe (src_c/peak.c with
src_c/kernels/<isa>/peak_<isa>.c: 12 independent vector FMA chains per
thread), for the widest ISA the CPU and OS support, whatever kernel the GEMM
chose, on `threads` threads at once. Measured once per (dtype, threads) per
process (~30 ms) and cached.
"""
import functools
from collections import namedtuple

import numpy as np

from fastmlp._core import _runtime

#: One measurement: GFLOP/s, the ISA probed, threads, float dtype name.
Peak = namedtuple("Peak", "gflops isa threads dtype")

#: Probe repeats kept best-of (after one warm-up run that starts the OpenMP team).
REPEATS = 5
#: Target flops per thread and run (~5 ms at 100 GFLOP/s per core).
_FLOPS_PER_RUN = 5e8


def widest_isa():
    """The widest vector ISA whose FMA probe this CPU, OS and build can run:
    "avx512", "avx2" or "ref" (portable C, no FMA)."""
    f = _runtime.cpu_features()
    if f["avx512"]:
        return "avx512"
    if f["avx2"] and f["fma"]:
        return "avx2"
    return "ref"


@functools.lru_cache(maxsize=None)
def measure(dtype="float32", threads=1, isa=None):
    """Peak(gflops, isa, threads, dtype): the best of REPEATS probe runs of
    `isa` (default: widest_isa()) on `threads` threads (capped at the
    processors OpenMP sees, beyond which no more FMA units exist)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    isa = isa or widest_isa()
    dbl = dtype == np.float64
    nt = min(threads, max(1, _runtime.omp_num_procs()))
    # flops per probe step: 12 chains x lanes x 2 (kernels/peak.h)
    iters = max(1000, int(_FLOPS_PER_RUN / (12 * _runtime.fma_lanes(isa, dbl) * 2)))
    _runtime.fma_peak(isa, dbl, nt, iters // 10)   # warm-up: thread team, clocks
    best = max(_runtime.fma_peak(isa, dbl, nt, iters) for _ in range(REPEATS))
    return Peak(best, isa, nt, dtype.name)


def describe(peak):
    """'235.0 GFLOP/s (float32, avx512 FMA probe, 2 threads)'."""
    return (f"{peak.gflops:.1f} GFLOP/s ({peak.dtype}, {peak.isa} FMA probe, "
            f"{peak.threads} thread{'s' if peak.threads > 1 else ''})")
