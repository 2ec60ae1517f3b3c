"""The compiled training step (DenseMLP.trainer / FlatOptimizer.fused_step and
fused_update, over fastmlp/_core/_mlp.pyx Trainer and src_c/nn/mlp.c): a
softmax classifier's whole step in one call, any other output's in two calls
around the caller's loss.

Its contract: the parameters and optimizer state it leaves are bitwise those
of the kernel-by-kernel step (forward_train, the fused softmax cross-entropy
kernel, backward, FlatOptimizer.step), whose kernels are checked against
NumPy references and finite differences elsewhere; and the same for every
thread count. The loss it returns is that kernel's value, the weight norm is
_optim.grad_norm's, the L1 sum is checked against NumPy.
"""
import numpy as np
import pytest

import fastmlp
from fastmlp._core import _act, _optim
from fastmlp.nn.mlp import DenseMLP, FlatOptimizer

HYPER = {"sgd": {}, "momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.8},
         "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
         "adamax": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, "adagrad": {"eps": 1e-8},
         "rmsprop": {"rho": 0.9, "eps": 1e-8}, "adadelta": {"rho": 0.9, "eps": 1e-6}}


def setup(units, act, dtype, method, seed=0, n=300):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, units[0])).astype(dtype)
    labels = rng.integers(0, units[-1], n).astype(np.int64)
    engines = []
    for _ in range(2):
        eng = DenseMLP(units, act, dtype)
        r = np.random.default_rng(seed + 1)
        eng.params[...] = r.standard_normal(eng.params.shape) * 0.3
        engines.append((eng, FlatOptimizer(method, eng, **HYPER[method])))
    return X, labels, engines


def unfused_step(eng, opt, X, labels, rows, m, w, wsum, lr, wd, l1, eps_scale):
    xb = eng.input_buffer(m)
    if rows is None:
        xb = X[:m]
        lb = labels[:m]
    else:
        xb[...] = X[rows]
        lb = labels[rows]
    z = eng.forward_train(xb)
    loss = _act.softmax_xent(z, np.ascontiguousarray(lb), None, w, wsum, eng.delta_buffer(m),
                             fastmlp.get_num_threads())
    nrm = _optim.grad_norm(eng.params[:eng.n_coef], fastmlp.get_num_threads())
    l1sum = float(np.abs(eng.params[:eng.n_coef]).sum(dtype=np.float64))
    eng.backward()
    opt.step(eng, lr, wd, l1, eps_scale)
    return loss, nrm, l1sum


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("method", sorted(HYPER))
def test_fused_step_is_bitwise_the_unfused_step(dtype, act, method):
    units = [23, 17, 11, 5]
    X, labels, [(ref, ropt), (eng, opt)] = setup(units, act, dtype, method)
    rng = np.random.default_rng(7)
    trainer = eng.trainer(X, labels, opt, 64)
    for step in range(4):
        m = [64, 37, 1, 64][step]
        rows = None if step == 3 else np.sort(rng.choice(300, m, replace=False)).astype(np.int64)
        w = rng.uniform(0.5, 2.0, m) if step % 2 else None
        wsum = float(w.sum()) if w is not None else float(m)
        lr, wd, l1, es = 0.05, 1e-3 / wsum, (2e-3 / wsum if step == 2 else 0.0), 1.3
        expect = unfused_step(ref, ropt, X, labels, rows, m, w, wsum, lr, wd, l1, es)
        got = opt.fused_step(trainer, rows, 0, m, w, wsum, lr, wd, l1, es, True, True)
        np.testing.assert_array_equal(eng.params, ref.params)
        for a, b in zip(opt.state, ropt.state):
            np.testing.assert_array_equal(a, b)
        assert got[0] == expect[0] and got[1] == expect[1]
        assert got[2] == pytest.approx(expect[2], rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_step_any_thread_count(dtype):
    # shapes that make the GEMMs split M with a shared B, split N, or stay on
    # one thread, and a small-m last batch
    for units, m in (([50, 8, 3], 300), ([120, 96, 64, 10], 128), ([9, 4, 2], 5)):
        results = []
        for nt in (1, 2, 3, 4):
            X, labels, [_, (eng, opt)] = setup(units, "relu", dtype, "momentum", n=m + 20)
            trainer = eng.trainer(X, labels, opt, m)
            rows = np.arange(m, 0, -1, dtype=np.int64)
            with fastmlp.threads(nt):
                out = [opt.fused_step(trainer, rows, 0, m, None, float(m), 0.1, 1e-4, 0.0, 1.0,
                                      True, False) for _ in range(3)]
                out.append(opt.fused_step(trainer, None, 7, m // 2 + 1, None, m / 2.0, 0.1))
            results.append((eng.params.copy(), opt.state[0].copy(), out))
        for p, s, out in results[1:]:
            np.testing.assert_array_equal(p, results[0][0])
            np.testing.assert_array_equal(s, results[0][1])
            assert out == results[0][2]


def test_fused_step_matches_unfused_in_parallel():
    # the kernel-by-kernel step with 2 threads (its own parallel kernels)
    units = [200, 150, 10]
    X, labels, [(ref, ropt), (eng, opt)] = setup(units, "tanh", np.float32, "adam", n=400)
    trainer = eng.trainer(X, labels, opt, 400)
    rows = np.random.default_rng(3).permutation(400)[:333].astype(np.int64)
    with fastmlp.threads(2):
        for _ in range(2):
            e = unfused_step(ref, ropt, X, labels, rows, 333, None, 333.0, 0.01, 0.0, 0.0, 1.0)
            g = opt.fused_step(trainer, rows, 0, 333, None, 333.0, 0.01, 0.0, 0.0, 1.0)
            np.testing.assert_array_equal(eng.params, ref.params)
            assert g[0] == e[0]


def test_fused_step_reads_strided_x_in_place():
    units = [6, 5, 3]
    X, labels, [(ref, ropt), (eng, opt)] = setup(units, "relu", np.float64, "sgd", n=40)
    wide = np.zeros((40, 12))
    wide[:, ::2] = X
    Xs = wide[:, ::2]
    trainer = eng.trainer(Xs, labels, opt, 16)
    xb = ref.input_buffer(16)
    xb[...] = X[5:21]
    z = ref.forward_train(xb)
    _act.softmax_xent(z, labels[5:21].copy(), None, None, 16.0, ref.delta_buffer(16), 1)
    ref.backward()
    ropt.step(ref, 0.1)
    opt.fused_step(trainer, None, 5, 16, None, 16.0, 0.1)
    np.testing.assert_array_equal(eng.params, ref.params)
    # gathered rows of a Fortran-ordered X and of a reversed view
    rows = np.array([3, 39, 0, 17, 17, 8], np.int64)
    for view in (np.asfortranarray(X), X[::-1]):
        src = np.ascontiguousarray(view)
        t = eng.trainer(view, labels if view.flags.f_contiguous else labels[::-1].copy(), opt, 16)
        xb = ref.input_buffer(6)
        xb[...] = src[rows]
        z = ref.forward_train(xb)
        lab = (labels if view.flags.f_contiguous else labels[::-1])[rows].copy()
        _act.softmax_xent(z, lab, None, None, 6.0, ref.delta_buffer(6), 1)
        ref.backward()
        ropt.step(ref, 0.1)
        opt.fused_step(t, rows, 0, 6, None, 6.0, 0.1)
        np.testing.assert_array_equal(eng.params, ref.params)


def test_fused_step_rejects_bad_batches_without_updating():
    units = [4, 3, 2]
    X, labels, [_, (eng, opt)] = setup(units, "relu", np.float32, "momentum", n=10)
    trainer = eng.trainer(X, labels, opt, 4)
    before = eng.params.copy()
    cases = [(np.array([0, 10], np.int64), 0, 2, 2.0),       # row out of range
             (np.array([-1, 2], np.int64), 0, 2, 2.0),
             (None, 8, 3, 3.0),                               # slice past the end
             (np.arange(5, dtype=np.int64), 0, 5, 5.0),       # more rows than the buffers
             (np.array([1, 2], np.int64), 0, 2, 0.0)]         # wsum 0
    for rows, row0, m, wsum in cases:
        with pytest.raises(ValueError, match="out of range|larger|wsum"):
            opt.fused_step(trainer, rows, row0, m, None, wsum, 0.1)
        np.testing.assert_array_equal(eng.params, before)
    bad = labels.copy()
    bad[3] = 2
    t2 = eng.trainer(X, bad, opt, 4)
    with pytest.raises(ValueError, match="out of range"):
        opt.fused_step(t2, np.array([3], np.int64), 0, 1, None, 1.0, 0.1)
    np.testing.assert_array_equal(eng.params, before)
    with pytest.raises(ValueError, match="rows must be"):
        opt.fused_step(trainer, np.array([1, 2], np.int32), 0, 2, None, 2.0, 0.1)
    with pytest.raises(ValueError, match="columns"):
        eng.trainer(X[:, :3], labels, opt, 4)
    with pytest.raises(ValueError, match="labels"):
        eng.trainer(X, labels[:5], opt, 4)
    assert DenseMLP(units, "relu", np.float32, dropout=0.5).trainer(
        X, labels, opt, 4) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_act", ["identity", "logistic"])
@pytest.mark.parametrize("method", ["momentum", "adam"])
def test_split_step_is_bitwise_the_unfused_step(dtype, out_act, method):
    # forward, the caller's loss gradient into delta_buffer, then update
    from fastmlp.nn.mlp import apply_output_activation
    units = [19, 13, 3]
    X, labels, [(ref, ropt), (eng, opt)] = setup(units, "tanh", dtype, method, n=120)
    Y = np.random.default_rng(5).uniform(0, 1, (120, 3)).astype(dtype)
    trainer = eng.trainer(X, None, opt, 50)
    rng = np.random.default_rng(6)
    for step in range(3):
        m = [50, 17, 50][step]
        rows = None if step == 2 else rng.permutation(120)[:m].astype(np.int64)
        sel = slice(0, m) if rows is None else rows
        c = dtype(1.0 / m)
        before = ref.params[:ref.n_coef].copy()
        # unfused
        xb = ref.input_buffer(m)
        xb[...] = X[sel]
        z = ref.forward_train(xb)
        out = apply_output_activation(z, out_act, 1)
        np.subtract(out, Y[sel], out=ref.delta_buffer(m))
        ref.delta_buffer(m)[...] *= c
        nrm = _optim.grad_norm(ref.params[:ref.n_coef], 1)
        ref.backward()
        ropt.step(ref, 0.03, 1e-3, 0.0, 1.0)
        # compiled
        with fastmlp.threads(2):
            trainer.forward(rows, 0, m, 2)
            z2 = eng.output_buffer(m)
            out2 = apply_output_activation(z2, out_act, 2)
            np.testing.assert_array_equal(out2, out)
            np.subtract(out2, Y[sel], out=eng.delta_buffer(m))
            eng.delta_buffer(m)[...] *= c
            got = opt.fused_update(trainer, rows, 0, m, 0.03, 1e-3, 0.0, 1.0, True, True)
        np.testing.assert_array_equal(eng.params, ref.params)
        assert got[0] == nrm
        assert got[1] == pytest.approx(float(np.abs(before).sum(dtype=np.float64)), rel=1e-12)
    with pytest.raises(ValueError, match="labels"):
        opt.fused_step(trainer, None, 0, 5, None, 5.0, 0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["momentum", "adam", "rmsprop"])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_steps_are_bitwise_the_step_by_step_loop(dtype, method, in_place, weighted):
    """Trainer.steps (a run of steps in one parallel region, with the next
    batch's rows prefetched) against the same steps made one call each: same
    parameters, optimizer state and per-step results, for 1-4 threads, with a
    short last batch, per-step eps factors (scikit-learn's Adam), penalties
    scaled per batch and sample weights."""
    units = [23, 17, 11, 5]
    X, labels, [(ref, ropt), (eng0, _)] = setup(units, "relu", dtype, method)
    rng = np.random.default_rng(3)
    order = None if in_place else rng.permutation(300).astype(np.int64)
    sw = rng.uniform(0.5, 2.0, 300) if weighted else None
    batch, start, stop = 40, 10, 297            # 8 steps, the last of 7 rows
    los = list(range(start, stop, batch))
    wsums = None if sw is None else np.array(
        [float(sw[lo:min(lo + batch, stop)].sum()) for lo in los])
    es = np.array([1.0 / np.sqrt(1.0 - 0.999 ** (t + 1)) for t in range(len(los))])
    lr, alpha, l1 = 0.05, 1e-3, 2e-3
    trainer = ref.trainer(X, labels, ropt, batch)
    expect = []
    for s, lo in enumerate(los):
        hi = min(lo + batch, stop)
        rows = None if order is None else order[lo:hi]
        w = None if sw is None else sw[lo:hi]
        wsum = float(hi - lo) if sw is None else wsums[s]
        expect.append(ropt.fused_step(trainer, rows, lo if order is None else 0, hi - lo, w,
                                      wsum, lr, alpha / wsum, l1 / wsum, es[s], True, True))
    for nt in (1, 2, 3, 4):
        eng = DenseMLP(units, "relu", dtype)
        eng.params[...] = eng0.params
        opt = FlatOptimizer(method, eng, **HYPER[method])
        tr = eng.trainer(X, labels, opt, batch)
        with fastmlp.threads(nt):
            got = opt.fused_steps(tr, order, start, stop, batch, sw, wsums, lr, alpha, l1, es,
                                  True, True)
        assert opt.t == len(los)
        np.testing.assert_array_equal(got, np.array(expect))
        np.testing.assert_array_equal(eng.params, ref.params)
        for a, b in zip(opt.state, ropt.state):
            np.testing.assert_array_equal(a, b)


def test_fused_steps_bad_row_stops_there():
    """A bad row index in a later batch: ValueError naming the step; the
    steps before it are applied (bitwise the one-call steps), the bad one
    updates nothing."""
    units = [23, 17, 11, 5]
    X, labels, [(ref, ropt), (eng, opt)] = setup(units, "relu", np.float32, "momentum")
    order = np.arange(300, dtype=np.int64)
    order[100] = 300
    tr = eng.trainer(X, labels, opt, 40)
    with fastmlp.threads(2):
        with pytest.raises(ValueError, match="step 2 of 8"):
            opt.fused_steps(tr, order, 0, 300, 40, None, None, 0.05)
    rtr = ref.trainer(X, labels, ropt, 40)
    for lo in (0, 40):
        ropt.fused_step(rtr, order[lo:lo + 40], 0, 40, None, 40.0, 0.05)
    np.testing.assert_array_equal(eng.params, ref.params)
    with pytest.raises(ValueError, match="order"):
        opt.fused_steps(tr, order[:50], 0, 60, 40, None, None, 0.05)
    with pytest.raises(ValueError, match="wsums"):
        opt.fused_steps(tr, order, 0, 60, 40, np.ones(300), None, 0.05)
    with pytest.raises(ValueError, match="past X"):
        opt.fused_steps(tr, None, 0, 301, 40, None, None, 0.05)
