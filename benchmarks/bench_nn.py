"""Model-layer overhead: one training step of a Sequential 784-256-128-10 MLP
(fused Linear+ReLU, softmax cross-entropy, SGD with momentum) against the same
step written directly with the kernels (``fastmlp.ops``) and preallocated
buffers. The gap is the Python overhead of fastmlp.nn (issue target: < 10% at
batch 128). ``impl="numpy"`` is the NumPy counterpart: the same step (batch
128, SGD momentum 0.9, lr 0.01) by the NumPy reference trainer
(numpy_reference.NumpyMLP, one epoch over one batch, no shuffling).

    asv run --python=same --quick --bench TrainStep   # also TrainStepOverhead
    python benchmarks/bench_nn.py          # prints the side-by-side table
"""
import time

import numpy as np

from fastmlp import nn, ops

try:
    from .common import THREADS, ThreadsMixin
    from .numpy_reference import NumpyMLP
except ImportError:      # run as a script: python benchmarks/bench_nn.py
    from common import THREADS, ThreadsMixin
    from numpy_reference import NumpyMLP

SIZES = (784, 256, 128, 10)


def _data(batch, dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], batch)
    return X, y


class _KernelStep:
    """The same training step, kernels only, every buffer preallocated."""

    def __init__(self, model, batch, lr=0.01, momentum=0.9):
        self.lin = [l for l in model.layers if isinstance(l, nn.Linear)]
        self.params = model.parameters()[0].base
        self.grads = model.gradients()[0].base
        self.state = ops.optimizer_state("momentum", self.params)
        self.lr, self.mu = lr, momentum
        dt = self.params.dtype
        self.h = [np.empty((batch, l.W.shape[1]), dt) for l in self.lin]
        self.gx = [np.empty((batch, l.W.shape[0]), dt) for l in self.lin]

    def __call__(self, X, y):
        acts = ["relu", "relu", None]
        x = X
        for l, h, a in zip(self.lin, self.h, acts):
            ops.linear(x, l.W, l.b, a, out=h)
            x = h
        _, g = ops.softmax_cross_entropy(x, y)
        for i in range(len(self.lin) - 1, -1, -1):
            l = self.lin[i]
            xin = X if i == 0 else self.h[i - 1]
            ops.linear_backward(xin, l.W, g, need_grad_x=i > 0,
                                grad_x_out=self.gx[i] if i > 0 else None,
                                grad_w_out=l.dW, grad_b_out=l.db)
            if i > 0:
                # ReLU derivative from the layer's output: dz = dx * (h > 0).
                g = ops.activation_backward("relu", self.h[i - 1], self.gx[i], out=self.gx[i])
        ops.optimizer_step("momentum", self.params, self.grads, self.state,
                           lr=self.lr, momentum=self.mu)


def _model(dtype=np.float32):
    return nn.Sequential(nn.Linear(784, 256, dtype=dtype, random_state=0), nn.ReLU(),
                         nn.Linear(256, 128, dtype=dtype, random_state=1), nn.ReLU(),
                         nn.Linear(128, 10, dtype=dtype, random_state=2))


class _StepBench(ThreadsMixin):
    def _build(self, threads):
        self._limit_threads(threads, blas=True)
        self.X, self.y = _data(128)
        self.model = _model()
        self.loss = nn.SoftmaxCrossEntropy()
        self.opt = nn.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.kstep = _KernelStep(self.model, 128)
        # one step per fit_epoch: a single 128-row batch, taken in order
        self.ref = NumpyMLP(hidden_layer_sizes=SIZES[1:-1], solver="sgd", learning_rate_init=0.01,
                            momentum=0.9, nesterovs_momentum=False, alpha=0.0, batch_size=128,
                            shuffle=False, random_state=0)
        self.ref.fit_epoch(self.X, self.y)

    def _nn_step(self):
        out = self.model.forward(self.X, training=True)
        _, g = self.loss(out, self.y)
        self.model.backward(g, need_input_grad=False)
        self.opt.step(self.model.gradients())


class TrainStep(_StepBench):
    params = (["nn", "kernels", "numpy"], THREADS)
    param_names = ["impl", "threads"]

    def setup(self, impl, threads):
        self._build(threads)

    def teardown(self, impl, threads):
        self._restore_threads()

    def time_step(self, impl, threads):
        if impl == "nn":
            self._nn_step()
        elif impl == "kernels":
            self.kstep(self.X, self.y)
        else:
            self.ref.fit_epoch(self.X, self.y)


class TrainStepOverhead(_StepBench):
    params = (THREADS,)
    param_names = ["threads"]
    timeout = 300

    def setup(self, threads):
        self._build(threads)

    def teardown(self, threads):
        self._restore_threads()

    def track_overhead_percent(self, threads):
        """(nn step time / kernels-only step time - 1) * 100, best of interleaved runs."""
        bn, bk = measure(self._nn_step, lambda: self.kstep(self.X, self.y))
        return (bn / bk - 1.0) * 100.0

    track_overhead_percent.unit = "%"


def measure(f, g, rounds=15, reps=20):
    bf = bg = float("inf")
    for _ in range(3):
        f(); g()
    for _ in range(rounds):
        for _ in range(reps):
            t = time.perf_counter(); f(); bf = min(bf, time.perf_counter() - t)
        for _ in range(reps):
            t = time.perf_counter(); g(); bg = min(bg, time.perf_counter() - t)
    return bf, bg


if __name__ == "__main__":
    for threads in THREADS:
        b = TrainStep()
        b.setup("nn", threads)
        bn, bk = measure(b._nn_step, lambda: b.kstep(b.X, b.y))
        _, bnp = measure(b._nn_step, lambda: b.ref.fit_epoch(b.X, b.y))
        print(f"threads={threads}: nn step {bn * 1e6:8.1f} us, kernels only {bk * 1e6:8.1f} us, "
              f"overhead {100 * (bn / bk - 1):+.1f}%; NumPy reference step {bnp * 1e6:8.1f} us")
        b.teardown("nn", threads)
