"""GEMM benchmarks: fastmlp.matmul against NumPy (its BLAS) side by side.

Every configuration is dtype (float32, float64) x shape x threads (1 and
all cores, ``os.cpu_count()``), shapes written "m x k x n":

* ``GemmSquare`` / ``GemmSquareRatio``: 256, 512, 1024 and 2048 cubed;
* ``GemmMLP`` / ``GemmMLPRatio``: the three GEMMs of an MLP training step
  (batch 128, 784 inputs, 256 units): ``128x784x256`` (x @ W),
  ``784x128x256`` (x.T @ g, a is a transposed *view*) and ``128x256x784``
  (g @ W.T, b is a transposed *view*). Both implementations get the same
  views; neither copies them.

* ``GemmSmallM`` / ``GemmSmallMRatio``: prediction-sized products, m = 1 and
  4 rows of 784 inputs: ``matmul`` (x @ W, 784x256, into a preallocated
  output), ``linear_relu`` (``ops.linear(x, W, b, "relu")`` against
  ``np.maximum(x @ W + b, 0)``, both allocating their result) and ``mlp``
  (a whole 784-256-128-10 forward pass, relu hidden layers, with
  ``ops.linear`` against the same NumPy expressions). These run in
  microseconds, so a sample is a loop of SMALL_LOOP calls.

Benchmarks:

* ``time_matmul`` (param ``impl`` = fastmlp | numpy): one
  ``fastmlp.matmul(a, b, out=o)`` or ``np.matmul(a, b, out=o)`` call into an
  output preallocated in setup, so neither side pays allocation.
* ``track_gflops``: 2*m*n*k / t / 1e9 with t the best of 5 wall times
  (time.perf_counter, after one warm-up call) -- "GFLOP/s".
* ``track_percent_of_peak``: the same over the measured FMA peak of the
  machine's widest ISA on as many threads (``bench_peak.py``) -- "%", so
  results from AVX2 and AVX-512 hosts can be told apart across commits.
* ``track_ratio_vs_numpy``: fastmlp speed / NumPy speed (NumPy's best time
  per call over fastmlp's, best of 5 alternating blocks of ~20 ms each, after
  a warm-up of each; at 2+ threads a 0.3 s pause before every block lets the
  other library's spinning worker threads go idle, ``common.settled_ratio``)
  -- "x"; > 1 means fastmlp is faster. It also checks that the two results
  agree to rounding.

Threads: setup calls ``fastmlp.set_num_threads(n)`` and enters
``threadpoolctl.threadpool_limits(n, user_api="blas")`` for NumPy's BLAS;
teardown restores both. Data: ``np.random.default_rng(0)``.

How to run (from the repository root, which holds asv.conf.json)::

    pip install . asv threadpoolctl
    asv machine --yes                       # once per machine
    asv check --python=same                 # import and validate the suite
    asv run --python=same --quick           # installed fastmlp, one pass, no results kept per commit
    asv run --python=same --bench GemmMLP   # a subset (regex on benchmark names), full timing
    asv continuous main HEAD                # build both commits in virtualenvs, report changes
    asv compare main HEAD                   # tabulate stored results of two commits
    asv publish && asv preview              # HTML report in .asv/html

``--python=same`` benchmarks the fastmlp installed in the current
environment (rebuild/reinstall it after changing the C/Cython sources);
without it asv builds each commit into its own virtualenv under .asv/env.
Results go to .asv/results.
"""
import numpy as np

import fastmlp
from fastmlp import ops

from .common import (
    ThreadsMixin,
    DTYPES,
    IMPLS,
    MLP_SHAPES,
    SQUARE_SHAPES,
    THREADS,
    TRACK_REPEATS,
    check_close,
    gemm_flops,
    operands,
    parse_shape,
    settled_ratio,
    wall_time,
)

_MATMUL = {"fastmlp": fastmlp.matmul, "numpy": np.matmul}


class _GemmBench(ThreadsMixin):
    """fastmlp and NumPy side by side: impl x dtype x shape x threads."""

    param_names = ["impl", "dtype", "shape", "threads"]
    # Timing: one call per sample (asv re-runs setup before every timed
    # call anyway), 3..10 samples per round for at most ~10 s, 2 rounds.
    number = 1
    repeat = (3, 10, 10.0)
    warmup_time = 0.2
    timeout = 300

    def setup(self, impl, dtype, shape, threads):
        self.a, self.b, (self.out,) = operands(shape, dtype)
        self.matmul = _MATMUL[impl]
        self.flops = gemm_flops(shape)
        self._limit_threads(threads, blas=True)

    def teardown(self, impl, dtype, shape, threads):
        self._restore_threads()

    def _call(self):
        self.matmul(self.a, self.b, out=self.out)

    def time_matmul(self, impl, dtype, shape, threads):
        self.matmul(self.a, self.b, out=self.out)

    def track_gflops(self, impl, dtype, shape, threads):
        self._call()  # warm-up: thread pools, packing buffers, caches
        best = min(wall_time(self._call) for _ in range(TRACK_REPEATS))
        return self.flops / best / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_percent_of_peak(self, impl, dtype, shape, threads):
        # vs the measured FMA peak of the machine's widest ISA on `threads`
        # threads (fastmlp._peak, cached per process; see bench_peak.py)
        from fastmlp import _peak

        return 100.0 * self.track_gflops(impl, dtype, shape, threads) / \
            _peak.measure(dtype, threads).gflops

    track_percent_of_peak.unit = "%"


class _RatioBench(ThreadsMixin):
    """fastmlp speed / NumPy speed per dtype x shape x threads."""

    param_names = ["dtype", "shape", "threads"]
    timeout = 300

    def setup(self, dtype, shape, threads):
        self.a, self.b, (self.out_fastmlp, self.out_numpy) = operands(shape, dtype, n_out=2)
        self._limit_threads(threads, blas=True)

    def teardown(self, dtype, shape, threads):
        self._restore_threads()

    def _fastmlp(self):
        fastmlp.matmul(self.a, self.b, out=self.out_fastmlp)

    def _numpy(self):
        np.matmul(self.a, self.b, out=self.out_numpy)

    def track_ratio_vs_numpy(self, dtype, shape, threads):
        # alternating blocks, with a settle pause at 2+ threads (common.py)
        ratio = settled_ratio(self._fastmlp, self._numpy, threads)
        check_close(self.out_fastmlp, self.out_numpy, parse_shape(shape)[1],
                    f"fastmlp.matmul {dtype} {shape}")
        return ratio

    track_ratio_vs_numpy.unit = "x"


class GemmSquare(_GemmBench):
    params = [IMPLS, DTYPES, SQUARE_SHAPES, THREADS]


class GemmMLP(_GemmBench):
    params = [IMPLS, DTYPES, MLP_SHAPES, THREADS]


class GemmSquareRatio(_RatioBench):
    params = [DTYPES, SQUARE_SHAPES, THREADS]


class GemmMLPRatio(_RatioBench):
    params = [DTYPES, MLP_SHAPES, THREADS]


# ---------------------------------------------------------------- small m (prediction)

SMALL_M = (1, 4)
SMALL_OPS = ("matmul", "linear_relu", "mlp")
#: Calls per timed sample of the small-m benchmarks (each call takes ~1-50 us).
SMALL_LOOP = 200
_MLP_SIZES = (784, 256, 128, 10)


def _small_operands(m, dtype):
    """x (m x 784), layers [(W, b)] of a 784-256-128-10 MLP, and an m x 256
    output; np.random.default_rng(0), C-ordered, read-only inputs."""
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    x = rng.standard_normal((m, _MLP_SIZES[0]), dtype=dtype)
    layers = [((rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype),
               rng.standard_normal(n, dtype=dtype))
              for k, n in zip(_MLP_SIZES[:-1], _MLP_SIZES[1:])]
    for arr in [x] + [t for layer in layers for t in layer]:
        arr.flags.writeable = False
    return x, layers, np.full((m, _MLP_SIZES[1]), np.nan, dtype=dtype)


def _small_call(impl, op, x, layers, out):
    """A no-argument callable running `op` with `impl` (fastmlp | numpy)."""
    (w, b), rest = layers[0], layers[1:]
    if impl == "fastmlp":
        if op == "matmul":
            return lambda: fastmlp.matmul(x, w, out=out)
        if op == "linear_relu":
            return lambda: ops.linear(x, w, b, "relu")

        def mlp():
            h = ops.linear(x, w, b, "relu")
            for w2, b2 in rest[:-1]:
                h = ops.linear(h, w2, b2, "relu")
            return ops.linear(h, *rest[-1])
        return mlp
    if op == "matmul":
        return lambda: np.matmul(x, w, out=out)
    if op == "linear_relu":
        return lambda: np.maximum(x @ w + b, 0)

    def mlp_np():
        h = np.maximum(x @ w + b, 0)
        for w2, b2 in rest[:-1]:
            h = np.maximum(h @ w2 + b2, 0)
        return h @ rest[-1][0] + rest[-1][1]
    return mlp_np


def _loop(func):
    def run():
        for _ in range(SMALL_LOOP):
            func()
    return run


class GemmSmallM(ThreadsMixin):
    """Per-call time of few-row products: impl x op x m x dtype x threads."""

    param_names = ["impl", "op", "m", "dtype", "threads"]
    params = [IMPLS, SMALL_OPS, SMALL_M, DTYPES, THREADS]
    number = SMALL_LOOP
    repeat = (5, 20, 10.0)
    warmup_time = 0.2
    timeout = 300

    def setup(self, impl, op, m, dtype, threads):
        self.call = _small_call(impl, op, *_small_operands(m, dtype))
        self._limit_threads(threads, blas=True)

    def teardown(self, impl, op, m, dtype, threads):
        self._restore_threads()

    def time_call(self, impl, op, m, dtype, threads):
        self.call()


class GemmSmallMRatio(ThreadsMixin):
    """NumPy's time / fastmlp's time per call ("x"; > 1: fastmlp faster), best
    of TRACK_REPEATS alternating blocks of loops of SMALL_LOOP calls, settled
    at 2+ threads (common.settled_ratio)."""

    param_names = ["op", "m", "dtype", "threads"]
    params = [SMALL_OPS, SMALL_M, DTYPES, THREADS]
    timeout = 300

    def setup(self, op, m, dtype, threads):
        x, layers, out = _small_operands(m, dtype)
        self.fm = _small_call("fastmlp", op, x, layers, out)
        self.np = _small_call("numpy", op, x, layers, out.copy())
        self.k = _MLP_SIZES[0]
        self._limit_threads(threads, blas=True)

    def teardown(self, op, m, dtype, threads):
        self._restore_threads()

    def track_ratio_vs_numpy(self, op, m, dtype, threads):
        ratio = settled_ratio(_loop(self.fm), _loop(self.np), threads)
        check_close(np.asarray(self.fm()), np.asarray(self.np()), self.k,
                    f"small-m {op} m={m} {dtype}")
        return ratio

    track_ratio_vs_numpy.unit = "x"
