"""Optimizer-step benchmarks: fastmlp's fused kernels against idiomatic NumPy.

One optimizer step on a flat buffer of 1e7 parameters (the layout a model's
parameters have in fastmlp: one contiguous buffer, gradients and each state
in buffers of the same length), configurations method x dtype x threads:

* method ``adam``: ``fastmlp.ops.adam_step(p, g, m, v, step=t)`` against the
  in-place NumPy expression with one preallocated temporary::

      np.multiply(m, b1, out=m); np.multiply(g, 1 - b1, out=tmp); np.add(m, tmp, out=m)
      np.multiply(v, b2, out=v); np.multiply(g, g, out=tmp)
      np.multiply(tmp, 1 - b2, out=tmp); np.add(v, tmp, out=v)
      np.sqrt(v, out=tmp); np.multiply(tmp, 1 / sqrt(1 - b2**t), out=tmp)
      np.add(tmp, eps, out=tmp); np.divide(m, tmp, out=tmp)
      np.multiply(tmp, lr / (1 - b1**t), out=tmp); np.subtract(p, tmp, out=p)

  (the same formula: p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)),
  11 passes over memory against fastmlp's one;
* method ``momentum``: ``fastmlp.ops.momentum_step(p, g, v)`` against::

      np.multiply(v, mu, out=v); np.multiply(g, lr, out=tmp)
      np.subtract(v, tmp, out=v); np.add(p, v, out=p)

Benchmarks:

* ``OptimStep.time_step`` (param ``impl`` = fastmlp | numpy): one step,
  buffers allocated and touched in setup (no page faults in the timing).
* ``OptimStepRatio.track_ratio_vs_numpy``: NumPy's best time over fastmlp's
  (best of TRACK_REPEATS each, calls interleaved, after a warm-up of each) --
  "x"; > 1 means fastmlp is faster. Both sides take the same steps from the
  same data, and the results are checked to agree.
* ``OptimStepRatio.track_gbytes_per_s``: fastmlp's effective memory
  traffic (bytes each element of the fused pass must move: Adam reads p, g,
  m, v and writes p, m, v; momentum reads p, g, v and writes p, v) / time.

Threads: 1 and all cores (``os.cpu_count()``) for fastmlp, set in setup and
restored in teardown; NumPy's element-wise ufuncs are single-threaded
whatever the setting. Data: ``np.random.default_rng(0)``.

Run (from the repository root)::

    pip install . asv
    asv machine --yes
    asv check --python=same
    asv run --python=same --bench OptimStep
"""
import functools
import math

import numpy as np

from fastmlp import ops

from .common import DTYPES, IMPLS, THREADS, TRACK_REPEATS, wall_time, ThreadsMixin

N_PARAMS = 10_000_000
METHODS = ("adam", "momentum")
LR, MU, B1, B2, EPS, T = 1e-3, 0.9, 0.9, 0.999, 1e-8, 10
#: Bytes moved per element of the fused step, in units of the element size.
_TRAFFIC = {"adam": 7, "momentum": 5}


@functools.lru_cache(maxsize=4)
def _buffers(dtype, which):
    """params, grads, two state buffers and a NumPy temporary for `which` user,
    every page written once (np.zeros would leave the page faults of a fresh
    allocation to the first timed step). Cached per process: asv re-runs
    setup before every sample. Data: np.random.default_rng(0), the same for
    every `which`, so that two users take the same steps."""
    dtype = np.dtype(dtype)
    bufs = tuple(np.full(N_PARAMS, np.nan, dtype) for _ in range(5))
    _reset(bufs)
    return bufs


def _reset(bufs):
    """Back to the initial data: p, g ~ N(0, 1), zero state."""
    p, g, s0, s1, tmp = bufs
    rng = np.random.default_rng(0)
    rng.standard_normal(dtype=p.dtype, out=p)
    rng.standard_normal(dtype=g.dtype, out=g)
    for x in (s0, s1, tmp):
        x.fill(0)


def numpy_adam(p, g, m, v, tmp, t=T, lr=LR, b1=B1, b2=B2, eps=EPS):
    np.multiply(m, b1, out=m)
    np.multiply(g, 1 - b1, out=tmp)
    np.add(m, tmp, out=m)
    np.multiply(v, b2, out=v)
    np.multiply(g, g, out=tmp)
    np.multiply(tmp, 1 - b2, out=tmp)
    np.add(v, tmp, out=v)
    np.sqrt(v, out=tmp)
    np.multiply(tmp, 1 / math.sqrt(1 - b2 ** t), out=tmp)
    np.add(tmp, eps, out=tmp)
    np.divide(m, tmp, out=tmp)
    np.multiply(tmp, lr / (1 - b1 ** t), out=tmp)
    np.subtract(p, tmp, out=p)


def numpy_momentum(p, g, v, tmp, lr=LR, mu=MU):
    np.multiply(v, mu, out=v)
    np.multiply(g, lr, out=tmp)
    np.subtract(v, tmp, out=v)
    np.add(p, v, out=p)


def _step_fn(impl, method, bufs):
    p, g, s0, s1, tmp = bufs
    if impl == "fastmlp":
        if method == "adam":
            return lambda: ops.adam_step(p, g, s0, s1, step=T, lr=LR, beta1=B1, beta2=B2, eps=EPS)
        return lambda: ops.momentum_step(p, g, s0, lr=LR, momentum=MU)
    if method == "adam":
        return lambda: numpy_adam(p, g, s0, s1, tmp)
    return lambda: numpy_momentum(p, g, s0, tmp)


class OptimStep(ThreadsMixin):
    """One optimizer step, fastmlp and NumPy side by side."""

    param_names = ["impl", "method", "dtype", "threads"]
    params = [IMPLS, METHODS, DTYPES, THREADS]
    number = 1
    repeat = (5, 20, 10.0)
    warmup_time = 0.2
    timeout = 300

    def setup(self, impl, method, dtype, threads):
        self.bufs = _buffers(dtype, "time")
        self.step = _step_fn(impl, method, self.bufs)
        self._limit_threads(threads)

    def teardown(self, impl, method, dtype, threads):
        self._restore_threads()

    def time_step(self, impl, method, dtype, threads):
        self.step()


class OptimStepRatio(ThreadsMixin):
    """fastmlp speed / NumPy speed, and fastmlp's memory throughput."""

    param_names = ["method", "dtype", "threads"]
    params = [METHODS, DTYPES, THREADS]
    timeout = 300

    def setup(self, method, dtype, threads):
        self.fm_bufs = _buffers(dtype, "fastmlp")
        self.np_bufs = _buffers(dtype, "numpy")
        _reset(self.fm_bufs)  # both sides start from the same data
        _reset(self.np_bufs)
        self.fm_step = _step_fn("fastmlp", method, self.fm_bufs)
        self.np_step = _step_fn("numpy", method, self.np_bufs)
        self._limit_threads(threads)

    def teardown(self, method, dtype, threads):
        self._restore_threads()

    def _check(self, what):
        p_fm, p_np = self.fm_bufs[0], self.np_bufs[0]
        tol = 1e-4 if p_fm.dtype == np.float32 else 1e-10
        err = float(np.max(np.abs(p_fm - p_np)))
        if not err <= tol:
            raise AssertionError(f"{what}: fastmlp and NumPy steps differ by {err:.3g}")

    def track_ratio_vs_numpy(self, method, dtype, threads):
        self.fm_step()  # warm-up both (same number of steps on each side)
        self.np_step()
        t_fm = t_np = float("inf")
        for _ in range(TRACK_REPEATS):
            t_fm = min(t_fm, wall_time(self.fm_step))
            t_np = min(t_np, wall_time(self.np_step))
        self._check(f"{method} {dtype}")
        return t_np / t_fm

    track_ratio_vs_numpy.unit = "x"

    def track_gbytes_per_s(self, method, dtype, threads):
        self.fm_step()  # warm-up
        best = min(wall_time(self.fm_step) for _ in range(TRACK_REPEATS))
        nbytes = _TRAFFIC[method] * N_PARAMS * np.dtype(dtype).itemsize
        return nbytes / best / 1e9

    track_gbytes_per_s.unit = "GB/s"
