"""Neural kernel benchmarks: fastmlp.ops against the idiomatic NumPy
expression, side by side, float32.

Activations and losses (the "act" kernels):

* ``Activation`` / ``ActivationRatio``: ``ops.activation(name, z, out=o)``
  on 1e7 elements for relu, sigmoid and tanh, against
  ``np.maximum(z, 0, out=o)``; ``1 / (1 + np.exp(-z))`` written with
  ``out=o`` step by step (negative, exp, add, reciprocal: no temporaries);
  ``np.tanh(z, out=o)``;
* ``ActivationBackward`` / ``ActivationBackwardRatio``:
  ``ops.activation_backward("relu", z, g, out=o)`` against
  ``np.multiply(g, z > 0, out=o)``;
* ``SoftmaxCrossEntropy`` / ``SoftmaxCrossEntropyRatio``: the fused
  ``ops.softmax_cross_entropy(logits, labels)`` (loss and gradient) on
  4096 x 1000 logits with integer labels, against NumPy's max-subtract, exp,
  sum, log, take_along_axis, grad = p - onehot, / N.

Parameters: impl (fastmlp | numpy) x threads (1 and all cores; NumPy's
element-wise code is single-threaded either way).

* ``time_*``: one call.
* ``track_gbytes_per_s`` (activations): bytes read + written (8 per element
  forward, 12 backward) over the best of TRACK_REPEATS wall times -- "GB/s".
* ``*Ratio.track_ratio_vs_numpy``: NumPy's best time over fastmlp's (best of
  TRACK_REPEATS each, calls interleaved so that drifts of this shared machine
  hit both alike, after a warm-up) -- "x", > 1 means fastmlp is faster. It
  also checks that both computed the same thing.

Run: ``asv run --python=same --bench "Activation|SoftmaxCrossEntropy"`` (see
bench_gemm.py for the rest of the asv workflow).
"""
import numpy as np

from fastmlp import ops

from .common import IMPLS, THREADS, wall_time, ThreadsMixin

ACT_SIZE = 10_000_000
XENT_ROWS, XENT_COLS = 4096, 1000
ACT_NAMES = ("relu", "sigmoid", "tanh")
#: Best-of-N for the track_* benchmarks (the kernels take milliseconds).
ACT_TRACK_REPEATS = 20


# ---------------------------------------------------------------- the kernels, both ways

def _np_sigmoid(z, o):
    np.negative(z, out=o)
    np.exp(o, out=o)
    np.add(o, 1, out=o)
    return np.reciprocal(o, out=o)


_NUMPY_ACT = {
    "relu": lambda z, o: np.maximum(z, 0, out=o),
    "sigmoid": _np_sigmoid,
    "tanh": lambda z, o: np.tanh(z, out=o),
}


class _ActCase:
    """z (1e7 standard normal float32), g, and one output per implementation,
    written once so that no page fault lands in a timed call."""

    def __init__(self, name, backward=False):
        rng = np.random.default_rng(0)
        self.z = rng.standard_normal(ACT_SIZE, dtype=np.float32)
        self.g = rng.standard_normal(ACT_SIZE, dtype=np.float32) if backward else None
        self.out_f = np.full(ACT_SIZE, np.nan, np.float32)
        self.out_n = np.full(ACT_SIZE, np.nan, np.float32)
        self.name = name
        self.backward = backward
        self.bytes = ACT_SIZE * 4 * (3 if backward else 2)

    def fastmlp(self):
        if self.backward:
            return ops.activation_backward(self.name, self.z, self.g, out=self.out_f)
        return ops.activation(self.name, self.z, out=self.out_f)

    def numpy(self):
        if self.backward:
            return np.multiply(self.g, self.z > 0, out=self.out_n)
        return _NUMPY_ACT[self.name](self.z, self.out_n)

    def check(self, a, b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class _XentCase:
    """4096 x 1000 standard normal float32 logits and integer labels."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.z = rng.standard_normal((XENT_ROWS, XENT_COLS), dtype=np.float32)
        self.y = rng.integers(0, XENT_COLS, XENT_ROWS)
        self.rows = np.arange(XENT_ROWS)

    def fastmlp(self):
        return ops.softmax_cross_entropy(self.z, self.y)

    def numpy(self):
        z, y, n = self.z, self.y, XENT_ROWS
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        logp_y = np.take_along_axis(z - m, y[:, None], axis=1) - np.log(s)
        loss = -logp_y.mean()
        grad = e / s
        grad[self.rows, y] -= 1
        grad /= n
        return loss, grad

    def check(self, a, b):
        assert abs(a[0] - b[0]) <= 1e-5 * abs(b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-9)


def _ratio(case, repeats=ACT_TRACK_REPEATS):
    """NumPy's best time over fastmlp's, calls interleaved, after a warm-up."""
    a, b = case.fastmlp(), case.numpy()
    case.check(a, b)
    t_f = t_n = float("inf")
    for _ in range(repeats):
        t_f = min(t_f, wall_time(case.fastmlp))
        t_n = min(t_n, wall_time(case.numpy))
    return t_n / t_f


class _Bench(ThreadsMixin):
    """fastmlp and NumPy side by side: impl x ... x threads."""

    number = 1
    repeat = (5, 20, 10.0)
    warmup_time = 0.1
    timeout = 300

    def _setup(self, case, impl, threads):
        self.case = case
        self.call = getattr(case, impl)
        self._limit_threads(threads)

    def teardown(self, *args):
        self._restore_threads()


class Activation(_Bench):
    params = [IMPLS, ACT_NAMES, THREADS]
    param_names = ["impl", "activation", "threads"]

    def setup(self, impl, activation, threads):
        self._setup(_ActCase(activation), impl, threads)

    def time_activation(self, impl, activation, threads):
        self.call()

    def track_gbytes_per_s(self, impl, activation, threads):
        self.call()  # warm-up
        best = min(wall_time(self.call) for _ in range(ACT_TRACK_REPEATS))
        return self.case.bytes / best / 1e9

    track_gbytes_per_s.unit = "GB/s"


class ActivationRatio(ThreadsMixin):
    params = [ACT_NAMES, THREADS]
    param_names = ["activation", "threads"]
    timeout = 300

    def setup(self, activation, threads):
        self.case = _ActCase(activation)
        self._limit_threads(threads)

    def teardown(self, activation, threads):
        self._restore_threads()

    def track_ratio_vs_numpy(self, activation, threads):
        return _ratio(self.case)

    track_ratio_vs_numpy.unit = "x"


class ActivationBackward(_Bench):
    params = [IMPLS, ("relu",), THREADS]
    param_names = ["impl", "activation", "threads"]

    def setup(self, impl, activation, threads):
        self._setup(_ActCase(activation, backward=True), impl, threads)

    def time_activation_backward(self, impl, activation, threads):
        self.call()

    def track_gbytes_per_s(self, impl, activation, threads):
        self.call()
        best = min(wall_time(self.call) for _ in range(ACT_TRACK_REPEATS))
        return self.case.bytes / best / 1e9

    track_gbytes_per_s.unit = "GB/s"


class ActivationBackwardRatio(ThreadsMixin):
    params = [("relu",), THREADS]
    param_names = ["activation", "threads"]
    timeout = 300

    def setup(self, activation, threads):
        self.case = _ActCase(activation, backward=True)
        self._limit_threads(threads)

    def teardown(self, activation, threads):
        self._restore_threads()

    def track_ratio_vs_numpy(self, activation, threads):
        return _ratio(self.case)

    track_ratio_vs_numpy.unit = "x"


class SoftmaxCrossEntropy(_Bench):
    params = [IMPLS, THREADS]
    param_names = ["impl", "threads"]

    def setup(self, impl, threads):
        self._setup(_XentCase(), impl, threads)

    def time_softmax_cross_entropy(self, impl, threads):
        self.call()


class SoftmaxCrossEntropyRatio(ThreadsMixin):
    params = [THREADS]
    param_names = ["threads"]
    timeout = 300

    def setup(self, threads):
        self.case = _XentCase()
        self._limit_threads(threads)

    def teardown(self, threads):
        self._restore_threads()

    def track_ratio_vs_numpy(self, threads):
        return _ratio(self.case)

    track_ratio_vs_numpy.unit = "x"
