"""Small workout of every compiled kernel family, for tools/valgrind.sh.

Runs GEMM (matmul / gemm with transposes, strided and aliased outputs,
linear with fused bias and activations), element-wise activations and their
backward, softmax / log-softmax, every loss, bias_grad / linear_backward,
dropout, batch norm and layer norm (forward and backward), every optimizer
step and grad_norm, the whole-network forward pass and the compiled training
step (src_c/nn/mlp.c) -- in float32 and float64, on shapes that are not
multiples of the micro-tiles (edge tiles, short tails) and with 1 and 2
threads (some sizes above the kernels' parallel thresholds) -- and checks each result against fastmlp._reference, so that a
kernel that reads or writes out of bounds, or uses uninitialised memory, is
seen by memcheck while the script still verifies what it computed.

Shapes are small: under valgrind everything runs ~50x slower. Run it from
outside the source tree (it imports the installed fastmlp). Exits non-zero
if a result is wrong.
"""
import sys

import numpy as np

import fastmlp
from fastmlp import _reference as R
from fastmlp import ops

rng = np.random.default_rng(0)
failures = []


def check(what, got, want, rtol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=rtol,
                                                  equal_nan=True):
        failures.append(what)
        print(f"WRONG: {what}", flush=True)


def run(dtype, n_threads):
    tag = f"{np.dtype(dtype).name}/{n_threads}t"
    tol = 2e-4 if dtype == np.float32 else 1e-10

    def mk(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    # ---- GEMM engine: edge tiles in M and N, K across a block boundary, strides
    # (the last two are big enough to be split over 2 threads)
    for m, k, n in ((7, 5, 17), (13, 300, 9), (1, 1, 1), (25, 40, 33), (70, 120, 80),
                    (130, 64, 70)):
        a, b = mk(m, k), mk(k, n)
        check(f"{tag} matmul {m}x{k}x{n}", ops.matmul(a, b), R.matmul(a, b), tol)
        check(f"{tag} gemm T", ops.gemm(b, a, trans_a=True, trans_b=True),
              R.gemm(b, a, trans_a=True, trans_b=True), tol)
        c = np.asfortranarray(mk(m, n))
        want = R.gemm(a, b, c, alpha=0.5, beta=-1.0)
        check(f"{tag} gemm F-order c", ops.gemm(a, b, c, alpha=0.5, beta=-1.0), want, tol)
        big = mk(2 * m, 3 * n)
        view = big[::2, ::3]
        check(f"{tag} matmul strided out", ops.matmul(a[::-1], b, out=view),
              R.matmul(a[::-1], b), tol)
        bias = mk(n)
        for act in ops.GEMM_ACTIVATIONS:
            check(f"{tag} linear {act}", ops.linear(a, b, bias, act),
                  R.linear(a, b, bias, act), tol)
    sq = mk(6, 6)
    x = mk(6, 6)
    want = R.matmul(x, sq)
    check(f"{tag} matmul out=a", ops.matmul(x, sq, out=x), want, tol)

    # ---- activations (SIMD bodies and scalar tails)
    for size in (1, 7, 33, 1000, 70001):
        z = mk(size, scale=4.0)
        g = mk(size)
        for name in ops.ACTIVATIONS:
            check(f"{tag} {name}({size})", ops.activation(name, z), R.activation(name, z), tol)
            check(f"{tag} {name}'({size})", ops.activation_backward(name, z, g),
                  R.activation_backward(name, z, g), tol)
    z = mk(9, 11)
    ops.activation("tanh", z.T, out=z.T)

    # ---- softmax and losses
    for n, c in ((1, 1), (5, 3), (17, 10), (3, 70)):
        z = mk(n, c, scale=3.0)
        check(f"{tag} softmax {n}x{c}", ops.softmax(z), R.softmax(z), tol)
        check(f"{tag} log_softmax", ops.log_softmax(z), R.log_softmax(z), tol)
        y = rng.integers(0, c, n)
        w = rng.random(n) + 0.1
        loss, grad = ops.softmax_cross_entropy(z, y, w)
        lref, gref = R.softmax_cross_entropy(z, y, w)
        check(f"{tag} softmax_xent", [loss, *grad.ravel()], [lref, *gref.ravel()], tol)
        probs = R.softmax(mk(n, c)).astype(dtype)
        loss, grad = ops.softmax_cross_entropy(z, probs)
        lref, gref = R.softmax_cross_entropy(z, probs)
        check(f"{tag} softmax_xent probs", [loss, *grad.ravel()], [lref, *gref.ravel()], tol)
        t = rng.random((n, c)).astype(dtype)
        for name in ("mse", "mae", "poisson", "sigmoid_binary_cross_entropy"):
            loss, grad = getattr(ops, name)(z, t)
            lref, gref = getattr(R, name)(z, t)
            check(f"{tag} {name}", [loss, *grad.ravel()], [lref, *gref.ravel()], tol)
        p = np.clip(R.softmax(z), 0.01, 0.99).astype(dtype)
        loss, grad = ops.binary_cross_entropy(p, t)
        lref, gref = R.binary_cross_entropy(p, t)
        check(f"{tag} bce", [loss, *grad.ravel()], [lref, *gref.ravel()], tol)

    # ---- bias_grad, linear_backward, dropout, batch norm, layer norm
    for n, c in ((1, 3), (65, 7), (130, 33), (400, 100)):    # 400 x 100: multi-threaded
        g = mk(n, c)
        check(f"{tag} bias_grad {n}x{c}", ops.bias_grad(g), R.bias_grad(g), tol)
        gt = mk(c, n).T
        check(f"{tag} bias_grad transposed", ops.bias_grad(gt), R.bias_grad(gt), tol)
        x, w = mk(n, 5), mk(5, c)
        for got, want in zip(ops.linear_backward(x, w, g), R.linear_backward(x, w, g)):
            check(f"{tag} linear_backward", got, want, tol)
        xs = mk(n, c)
        for p in (0.0, 0.3):
            check(f"{tag} dropout p={p}", ops.dropout(xs, p, seed=42),
                  R.dropout(xs, p, seed=42), tol)
            check(f"{tag} dropout_backward", ops.dropout_backward(xs, p, seed=42),
                  R.dropout_backward(xs, p, seed=42), tol)
        gamma, beta = mk(c) + 1, mk(c)
        if n > 1:
            rm, rv = np.zeros(c), np.ones(c)
            y, cache = ops.batch_norm_forward(xs, gamma, beta, rm, rv, training=True)
            yr, cr = R.batch_norm_forward(xs, gamma, beta, np.zeros(c), np.ones(c))
            check(f"{tag} batch_norm", y, yr, tol)
            for got, want in zip(ops.batch_norm_backward(g, cache), R.batch_norm_backward(g, cr)):
                check(f"{tag} batch_norm_backward", got, want, 10 * tol)
            y, cache = ops.batch_norm_forward(xs, gamma, beta, rm, rv, training=False)
            check(f"{tag} batch_norm eval", y,
                  R.batch_norm_forward(xs, gamma, beta, rm, rv, training=False)[0], tol)
        y, cache = ops.layer_norm_forward(xs, gamma, beta)
        yr, cr = R.layer_norm_forward(xs, gamma, beta)
        check(f"{tag} layer_norm", y, yr, tol)
        for got, want in zip(ops.layer_norm_backward(g, cache), R.layer_norm_backward(g, cr)):
            check(f"{tag} layer_norm_backward", got, want, 10 * tol)

    # ---- optimizers over a flat buffer (SIMD body + tail), clipping
    for n in (5, 1000, 70001):                 # 70001: over the parallel threshold
        for method in ops.OPTIMIZERS:
            p = mk(n)
            state = ops.optimizer_state(method, p)
            pr = p.astype(np.float64)
            sr = R.optimizer_state(method, pr)
            kw = {"clip_norm": 1.0, "weight_decay": 1e-3, "l1": 1e-4}
            for t in (1, 2):
                g = mk(n)
                if method in ("adam", "amsgrad", "adamw", "adamax"):
                    kw["step"] = t
                ops.optimizer_step(method, p, g, state, **kw)
                R.optimizer_step(method, pr, g.astype(np.float64), sr, **kw)
            check(f"{tag} {method}({n})", p, pr, 10 * tol)
        g = mk(n)
        check(f"{tag} grad_norm", ops.grad_norm(g), R.grad_norm(g), tol)


def run_network(dtype, n_threads):
    """src_c/nn/mlp.c: the one-call forward pass (against chained NumPy) and the
    compiled training step (against the kernel-by-kernel step, bitwise)."""
    from fastmlp._core import _act, _mlp
    from fastmlp.nn.mlp import DenseMLP, FlatOptimizer
    tag = f"{np.dtype(dtype).name}/{n_threads}t"
    tol = 2e-4 if dtype == np.float32 else 1e-10
    units = [37, 29, 11, 5]
    ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in
          zip(units[:-1], units[1:])]
    bs = [rng.standard_normal(b).astype(dtype) for b in units[1:]]
    for m in (1, 7, 40):
        x = rng.standard_normal((m, units[0])).astype(dtype)
        a = x.astype(np.float64)
        for i, (w, b) in enumerate(zip(ws, bs)):
            a = a @ w + b
            if i < len(ws) - 1:
                a = np.maximum(a, 0)
        e = np.exp(a - a.max(axis=1, keepdims=True))
        out, _ = _mlp.forward(x, ws, bs, 1, 0.01, True, n_threads)
        check(f"{tag} network forward m={m}", out, e / e.sum(axis=1, keepdims=True), tol)
    X = rng.standard_normal((60, units[0])).astype(dtype)
    labels = rng.integers(0, units[-1], 60).astype(np.int64)
    engs = [DenseMLP(units, "tanh", dtype) for _ in range(2)]
    for e in engs:
        e.params[...] = np.random.default_rng(1).standard_normal(e.params.shape) * 0.3
    opts = [FlatOptimizer("adam", e, beta1=0.9, beta2=0.999, eps=1e-8) for e in engs]
    trainer = engs[1].trainer(X, labels, opts[1], 25)
    for rows in (np.arange(25, 0, -1, dtype=np.int64), None):
        m = 25
        xb = engs[0].input_buffer(m)
        xb[...] = X[rows] if rows is not None else X[:m]
        z = engs[0].forward_train(xb)
        lab = labels[rows] if rows is not None else labels[:m].copy()
        _act.softmax_xent(z, lab, None, None, float(m), engs[0].delta_buffer(m), n_threads)
        engs[0].backward()
        opts[0].step(engs[0], 0.01, 1e-3)
        opts[1].fused_step(trainer, rows, 0, m, None, float(m), 0.01, 1e-3, 0.0, 1.0, True, True)
        check(f"{tag} training step", engs[1].params, engs[0].params, 0.0)
    # a run of steps in one call (the last batch short, the next batch's rows
    # prefetched) against the same steps one call each, bitwise
    order = rng.permutation(60).astype(np.int64)
    pair = [DenseMLP(units, "tanh", dtype) for _ in range(2)]
    for e in pair:
        e.params[...] = engs[1].params
    popt = [FlatOptimizer("adam", e, beta1=0.9, beta2=0.999, eps=1e-8) for e in pair]
    ptr = [e.trainer(X, labels, o, 25) for e, o in zip(pair, popt)]
    for lo in range(0, 60, 25):
        rows = order[lo:lo + 25]
        popt[0].fused_step(ptr[0], rows, 0, len(rows), None, float(len(rows)), 0.01)
    popt[1].fused_steps(ptr[1], order, 0, 60, 25, None, None, 0.01)
    check(f"{tag} training steps run", pair[1].params, pair[0].params, 0.0)


def main():
    for n_threads in (1, 2):
        with fastmlp.threads(n_threads):
            for dtype in (np.float32, np.float64):
                run(dtype, n_threads)
                run_network(dtype, n_threads)
    print(f"valgrind_kernels: kernel {fastmlp.get_config()['gemm_float32']['name']}, "
          f"{len(failures)} wrong results", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
