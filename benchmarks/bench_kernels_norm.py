"""Normalisation-area benchmarks: fastmlp.ops against the idiomatic NumPy
expression, side by side, float32:

* ``BiasGrad``: ``ops.bias_grad(g, out=o)`` vs ``g.sum(axis=0, out=o)``,
  g 4096 x 1000;
* ``Dropout``: ``ops.dropout(x, 0.5, seed=0, out=o)`` vs
  ``mask = rng.random(x.shape, dtype=np.float32) < 1 - p; x * mask / (1 - p)``
  (``rng = np.random.default_rng(0)`` made in setup), x 1e7 elements;
* ``BatchNorm``: training forward + backward (batch statistics, running
  statistics update, the three gradients), 4096 x 1000;
* ``LayerNorm``: forward + backward, 4096 x 1000.

fastmlp writes into outputs preallocated in setup (``out=`` /
``grad_x_out=``, as a model's layers do); NumPy evaluates its expression
with the temporaries it needs. Parameters: impl (fastmlp | numpy) x threads
(1 and all cores; NumPy's element-wise code is single-threaded either way).

* ``time_*``: one call.
* ``*Ratio.track_ratio_vs_numpy``: NumPy's best time over fastmlp's (best of
  TRACK_REPEATS each, calls interleaved so that drifts of this shared machine
  hit both alike, after a warm-up) -- "x", > 1 means fastmlp is faster. It
  also checks that both compute the same thing.

Run: ``asv run --python=same --bench "BiasGrad|Dropout|BatchNorm|LayerNorm"``
(see bench_gemm.py for the rest of the asv workflow).
"""
import numpy as np

from fastmlp import ops

from .common import IMPLS, THREADS, wall_time, ThreadsMixin

ROWS, COLS = 4096, 1000
DROPOUT_SIZE = 10_000_000
P = 0.5
EPS = 1e-5
MOMENTUM = 0.1
#: Best-of-N for the ratios (the kernels take milliseconds: many repeats are cheap).
TRACK_REPEATS = 15


# ---------------------------------------------------------------- the kernels, both ways

class _Case:
    """Data and the two implementations (callables returning their result)."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def matrix(self):
        return self.rng.standard_normal((ROWS, COLS), dtype=np.float32)


class _BiasGradCase(_Case):
    def __init__(self):
        super().__init__()
        self.g = self.matrix()
        self.out_f = np.zeros(COLS, np.float32)
        self.out_n = np.zeros(COLS, np.float32)

    def fastmlp(self):
        return ops.bias_grad(self.g, out=self.out_f)

    def numpy(self):
        return self.g.sum(axis=0, out=self.out_n)

    def check(self, a, b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


class _DropoutCase(_Case):
    def __init__(self):
        super().__init__()
        self.x = self.rng.standard_normal(DROPOUT_SIZE, dtype=np.float32)
        self.out = np.zeros_like(self.x)
        self.np_rng = np.random.default_rng(0)

    def fastmlp(self):
        return ops.dropout(self.x, P, seed=0, out=self.out)

    def numpy(self):
        mask = self.np_rng.random(self.x.shape, dtype=np.float32) < 1 - P
        return self.x * mask / (1 - P)

    def check(self, a, b):
        # different generators: compare the keep fraction and the kept values
        for y in (a, b):
            kept = y != 0
            assert abs(kept.mean() - (1 - P)) < 1e-3
            np.testing.assert_allclose(y[kept], self.x[kept] / (1 - P), rtol=1e-6)


class _BatchNormCase(_Case):
    def __init__(self):
        super().__init__()
        self.x = self.matrix() * 2 + 1
        self.dy = self.matrix()
        self.gamma = self.rng.standard_normal(COLS, dtype=np.float32)
        self.beta = self.rng.standard_normal(COLS, dtype=np.float32)
        self.rm, self.rv = np.zeros(COLS, np.float32), np.ones(COLS, np.float32)
        self.y = np.zeros_like(self.x)
        self.dx = np.zeros_like(self.x)

    def fastmlp(self):
        y, cache = ops.batch_norm_forward(self.x, self.gamma, self.beta, self.rm, self.rv,
                                          momentum=MOMENTUM, eps=EPS, out=self.y)
        return (y,) + ops.batch_norm_backward(self.dy, cache, grad_x_out=self.dx)

    def numpy(self):
        x, dy, gamma = self.x, self.dy, self.gamma
        n = x.shape[0]
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        inv_std = 1 / np.sqrt(var + EPS)
        xhat = (x - mean) * inv_std
        y = xhat * gamma + self.beta
        self.rm[...] = (1 - MOMENTUM) * self.rm + MOMENTUM * mean
        self.rv[...] = (1 - MOMENTUM) * self.rv + MOMENTUM * var * (n / (n - 1))
        grad_beta = dy.sum(axis=0)
        grad_gamma = (dy * xhat).sum(axis=0)
        dx = (gamma * inv_std / n) * (n * dy - grad_beta - xhat * grad_gamma)
        return y, dx, grad_gamma, grad_beta

    def check(self, a, b):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-3 * float(np.abs(v).max()))


class _LayerNormCase(_BatchNormCase):
    def fastmlp(self):
        y, cache = ops.layer_norm_forward(self.x, self.gamma, self.beta, eps=EPS, out=self.y)
        return (y,) + ops.layer_norm_backward(self.dy, cache, grad_x_out=self.dx)

    def numpy(self):
        x, dy, gamma = self.x, self.dy, self.gamma
        mean = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        inv_std = 1 / np.sqrt(var + EPS)
        xhat = (x - mean) * inv_std
        y = xhat * gamma + self.beta
        grad_beta = dy.sum(axis=0)
        grad_gamma = (dy * xhat).sum(axis=0)
        g = dy * gamma
        dx = inv_std * (g - g.mean(axis=1, keepdims=True)
                        - xhat * (g * xhat).mean(axis=1, keepdims=True))
        return y, dx, grad_gamma, grad_beta


_CASES = {"bias_grad": _BiasGradCase, "dropout": _DropoutCase,
          "batch_norm": _BatchNormCase, "layer_norm": _LayerNormCase}
_cache = {}


def _case(name):
    """One instance per kernel and process (asv re-runs setup before every sample)."""
    if name not in _cache:
        _cache[name] = _CASES[name]()
    return _cache[name]


# ---------------------------------------------------------------- asv classes

class _TimeBench(ThreadsMixin):
    param_names = ["impl", "threads"]
    params = [IMPLS, THREADS]
    number = 1
    repeat = (5, 20, 10.0)
    warmup_time = 0.2
    timeout = 300
    case = None

    def setup(self, impl, threads):
        self.call = getattr(_case(self.case), impl)
        self._limit_threads(threads)

    def teardown(self, impl, threads):
        self._restore_threads()


class _RatioBench(ThreadsMixin):
    param_names = ["threads"]
    params = [THREADS]
    timeout = 300
    case = None

    def setup(self, threads):
        self.c = _case(self.case)
        self._limit_threads(threads)

    def teardown(self, threads):
        self._restore_threads()

    def track_ratio_vs_numpy(self, threads):
        a = self.c.fastmlp()  # warm-up both (and compare)
        b = self.c.numpy()
        self.c.check(a, b)
        t_fastmlp = t_numpy = float("inf")
        for _ in range(TRACK_REPEATS):
            t_fastmlp = min(t_fastmlp, wall_time(self.c.fastmlp))
            t_numpy = min(t_numpy, wall_time(self.c.numpy))
        return t_numpy / t_fastmlp

    track_ratio_vs_numpy.unit = "x"


class BiasGrad(_TimeBench):
    case = "bias_grad"

    def time_bias_grad(self, impl, threads):
        self.call()


class Dropout(_TimeBench):
    case = "dropout"

    def time_dropout(self, impl, threads):
        self.call()


class BatchNorm(_TimeBench):
    case = "batch_norm"

    def time_batch_norm_fwd_bwd(self, impl, threads):
        self.call()


class LayerNorm(_TimeBench):
    case = "layer_norm"

    def time_layer_norm_fwd_bwd(self, impl, threads):
        self.call()


class BiasGradRatio(_RatioBench):
    case = "bias_grad"


class DropoutRatio(_RatioBench):
    case = "dropout"


class BatchNormRatio(_RatioBench):
    case = "batch_norm"


class LayerNormRatio(_RatioBench):
    case = "layer_norm"
