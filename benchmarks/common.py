"""Shared parameters, operand construction and timing helpers for the benchmarks.

Nothing here is a benchmark (asv only collects ``time_*`` / ``track_*`` /
... names, and no such name is defined in this module).
"""
import functools
import gc
import os
import time

import numpy as np

#: Implementations compared side by side.
IMPLS = ("fastmlp", "numpy")
DTYPES = ("float32", "float64")
#: 1 thread and every core (deduplicated on a single-core machine).
THREADS = tuple(sorted({1, os.cpu_count() or 1}))

#: Square GEMMs, "m x k x n".
SQUARE_SHAPES = ("256x256x256", "512x512x512", "1024x1024x1024", "2048x2048x2048")

#: The three GEMMs of an MLP layer's training step with a 128-sample batch,
#: 784 inputs and 256 units, as "m x k x n", with the memory layout of each
#: operand: "N" = C-ordered array of the operand's own shape, "T" = transposed
#: view (``.T``, no copy) of a C-ordered array of the transposed shape.
MLP_LAYOUTS = {
    "128x784x256": ("N", "N"),  # forward:     h  = x @ W      x: 128x784, W: 784x256
    "784x128x256": ("T", "N"),  # weight grad: dW = x.T @ g    x: 128x784, g: 128x256
    "128x256x784": ("N", "T"),  # input grad:  dx = g @ W.T    g: 128x256, W: 784x256
}
MLP_SHAPES = tuple(MLP_LAYOUTS)

#: Best-of-N for the track_* benchmarks (after one untimed warm-up call).
TRACK_REPEATS = 5


def parse_shape(shape):
    """"m x k x n" string -> (m, k, n) ints."""
    m, k, n = (int(s) for s in shape.split("x"))
    return m, k, n


def gemm_flops(shape):
    m, k, n = parse_shape(shape)
    return 2.0 * m * n * k


def _operand(rng, rows, cols, layout, dtype):
    if layout == "N":
        x = rng.standard_normal((rows, cols), dtype=dtype)
    else:
        x = rng.standard_normal((cols, rows), dtype=dtype).T
        assert x.base is not None and x.flags.f_contiguous  # a view, not a copy
    return x


@functools.lru_cache(maxsize=2)
def operands(shape, dtype, n_out=1):
    """(a, b, outs) for an "m x k x n" shape: a is m x k, b is k x n, and
    `n_out` preallocated m x n outputs, already written once so that no page
    fault of a fresh allocation lands in a timed call.

    Cached per process: asv re-runs setup before every timed call, and
    regenerating 2048x2048 operands each time would only cost wall time.
    The data is np.random.default_rng(0); a and b are read-only.
    """
    m, k, n = parse_shape(shape)
    layout_a, layout_b = MLP_LAYOUTS.get(shape, ("N", "N"))
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    a = _operand(rng, m, k, layout_a, dtype)
    b = _operand(rng, k, n, layout_b, dtype)
    a.flags.writeable = False
    b.flags.writeable = False
    outs = tuple(np.full((m, n), np.nan, dtype=dtype) for _ in range(n_out))
    return a, b, outs


# Pause before each timed block when several threads run: after a call, the
# worker threads of OpenMP (fastmlp) and of OpenBLAS (NumPy) keep spinning for
# up to ~0.1-0.3 s, and on a 2-core machine a spinning worker of the other
# library takes a core from the next call (measured: 2-thread ratios of 0.75x
# or 3.2x for the same product, depending on which library ran last).
SETTLE_S = 0.3


def settled_ratio(fastmlp_call, numpy_call, threads, repeats=TRACK_REPEATS, block_s=0.02):
    """NumPy's best time per call over fastmlp's. Each repeat times a block of
    calls of each (about block_s long) in turn; with threads > 1 a SETTLE_S
    pause precedes every block, so neither library's idle workers are still
    spinning when the other runs, and then about block_s / 2 of untimed calls:
    after the pause the first calls of either library run 2-3x slower (idle
    cores waking up and ramping their clock: measured ~900, 600, 500 us for
    a 290 us product), which would otherwise add several % of noise to the
    block."""
    fastmlp_call()  # warm-up both; size the blocks
    numpy_call()
    n = max(1, int(block_s / max(1e-7, min(wall_time(fastmlp_call), wall_time(numpy_call)))))

    def block(f):
        if threads > 1:
            time.sleep(SETTLE_S)
            for _ in range(n // 2 + 1):
                f()
        return wall_time(lambda: [f() for _ in range(n)]) / n

    t_f = t_n = float("inf")
    for _ in range(repeats):
        t_f = min(t_f, block(fastmlp_call))
        t_n = min(t_n, block(numpy_call))
    return t_n / t_f


def wall_time(func):
    """Wall time of one call of `func`, with the garbage collector off."""
    gcold = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        func()
        return time.perf_counter() - t0
    finally:
        if gcold:
            gc.enable()


def check_close(result, expected, k, what):
    """Raise if `result` differs from `expected` by more than rounding allows
    (normwise, for a K-term dot product in result's precision)."""
    eps = np.finfo(result.dtype).eps
    err = float(np.max(np.abs(result - expected)))
    scale = float(np.max(np.abs(expected))) or 1.0
    if not err <= 10 * k * eps * scale:
        raise AssertionError(f"{what}: max abs error {err:.3g} vs max |result| {scale:.3g}")


class ThreadsMixin:
    """Limit fastmlp (and, with ``blas=True``, NumPy's BLAS through
    threadpoolctl) to `n` threads in setup; restore in teardown. A fastmlp
    that cannot run `n` threads (e.g. built with FASTMLP_NO_OPENMP=1) makes
    setup raise NotImplementedError, which asv reports as skipped."""

    def _limit_threads(self, n, blas=False):
        import fastmlp
        from threadpoolctl import threadpool_limits

        self._prev_fastmlp_threads = fastmlp.get_num_threads()
        fastmlp.set_num_threads(n)
        # The constructor applies the limit (as entering the `with` block
        # does); restore_original_limits() in teardown is its __exit__.
        self._blas_limits = threadpool_limits(limits=n, user_api="blas") if blas else None
        got = fastmlp.get_num_threads()
        if got != n:
            self._restore_threads()
            raise NotImplementedError(f"fastmlp runs {got} thread(s) here, not {n} "
                                      f"(built without OpenMP?)")

    def _restore_threads(self):
        import fastmlp

        limits = getattr(self, "_blas_limits", None)
        if limits is not None:
            limits.restore_original_limits()
            self._blas_limits = None
        prev = getattr(self, "_prev_fastmlp_threads", None)
        if prev is not None:
            fastmlp.set_num_threads(prev)
            self._prev_fastmlp_threads = None
