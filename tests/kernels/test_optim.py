"""Fused optimizer steps: fastmlp.ops.optimizer_step and friends.

Every step is checked against the float64 references in fastmlp._reference
with a first-order running error bound (Wilkinson): each computed quantity x
of the update carries a magnitude M(x) >= |x| propagated through the formula
(M(a +- b) = M(a) + M(b), M(a b) = M(a)|b| + |a|M(b), M(a / b) = M(a)/b +
|a|M(b)/b^2 for positive denominators, M(sqrt a) = M(a)/sqrt(a) capped by
the Hoelder bound), starting from |input|. Then

    |fastmlp - reference| <= K * eps * M + K * tiny        (K = 32)

holds for any correct order of operations in either precision, and is tight
enough that a wrong coefficient, a skipped term, a stale state or a wrong
element is caught. Steps are compared one at a time from the same inputs
(state carried by the kernel, fed to the reference), so errors do not
compound over steps.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp import _reference, ops
from fastmlp._core import _gemm, _optim

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F32, F64]
METHODS = list(ops.OPTIMIZERS)
ADAM_FAMILY = ("adam", "amsgrad", "adamw", "adamax")
K = 32.0


# ---------------------------------------------------------------- helpers

def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _msqrt(a, ma, dtype):
    """M(sqrt(a)) for a >= 0 with magnitude ma: ma / sqrt(a), but never more
    than the Hoelder bound sqrt(K eps ma) / (K eps) (sqrt is 1/2-Hoelder)."""
    keps = K * np.finfo(dtype).eps
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = np.where(a > 0, ma / np.sqrt(a), np.inf)
    return np.minimum(lin, np.sqrt(ma / keps))


def _mdiv(a, ma, b, mb):
    """M(a / b) for b > 0 (denominators here are sums of non-negative terms)."""
    return ma / b + np.abs(a) * mb / (b * b)


def error_magnitudes(method, p, g, state, hp, scale, dtype):
    """M for params and each state buffer after one step (see the module doc).
    Inputs are the float64 values the kernel received; hp holds every
    hyperparameter (defaults filled in)."""
    p, g = _f64(p), _f64(g)
    state = [_f64(s) for s in state]
    wd, l1, lr = hp["weight_decay"], hp["l1"], hp["lr"]
    P = np.abs(p)
    gp, mg = scale * g, np.abs(scale * g)
    if wd and method != "adamw":
        gp, mg = gp + wd * p, mg + wd * P
    if l1:
        gp, mg = gp + l1 * np.sign(p), mg + l1 * np.abs(np.sign(p))
    g2, mg2 = gp * gp, 2 * np.abs(gp) * mg
    if method == "sgd":
        return [P + lr * mg]
    if method in ("momentum", "nesterov"):
        mu = hp["momentum"]
        v = mu * state[0] - lr * gp
        mv = mu * np.abs(state[0]) + lr * mg
        if method == "momentum":
            return [P + mv, mv]
        return [P + mu * mv + lr * mg, mv]
    if method in ("adagrad", "rmsprop"):
        if method == "adagrad":
            a, ma = state[0] + g2, np.abs(state[0]) + mg2
        else:
            rho = hp["rho"]
            a = rho * state[0] + (1 - rho) * g2
            ma = rho * np.abs(state[0]) + (1 - rho) * mg2
        den = np.sqrt(a) + hp["eps"]
        mden = _msqrt(a, ma, dtype) + hp["eps"]
        mu_ = _mdiv(lr * gp, lr * mg, den, mden)
        return [P + mu_, ma]
    if method == "adadelta":
        rho, eps = hp["rho"], hp["eps"]
        e = rho * state[0] + (1 - rho) * g2
        me = rho * np.abs(state[0]) + (1 - rho) * mg2
        a, ma = np.sqrt(state[1] + eps), _msqrt(state[1] + eps, np.abs(state[1]) + eps, dtype)
        b, mb = np.sqrt(e + eps), _msqrt(e + eps, me + eps, dtype)
        r, mr = a / b, _mdiv(a, ma, b, mb)
        dx, mdx = r * gp, mr * np.abs(gp) + r * mg
        md = rho * np.abs(state[1]) + (1 - rho) * 2 * np.abs(dx) * mdx
        return [P + lr * mdx, me, md]
    b1, b2, t, eps = hp["beta1"], hp["beta2"], hp["step"], hp["eps"]
    ss = lr / (1 - b1 ** t)
    m = b1 * state[0] + (1 - b1) * gp
    mm = b1 * np.abs(state[0]) + (1 - b1) * mg
    num, mnum = ss * m, ss * mm
    if method == "adamax":
        u = np.maximum(b2 * state[1], np.abs(gp))
        mu_ = np.maximum(b2 * np.abs(state[1]), mg)
        den = u + eps
        return [P + _mdiv(num, mnum, den, mu_ + eps), mm, mu_]
    v = b2 * state[1] + (1 - b2) * g2
    mv = b2 * np.abs(state[1]) + (1 - b2) * mg2
    out_state = [mm, mv]
    w, mw = v, mv
    if method == "amsgrad":
        w, mw = np.maximum(state[2], v), np.maximum(np.abs(state[2]), mv)
        out_state.append(mw)
    ibc2 = 1 / math.sqrt(1 - b2 ** t)
    den = np.sqrt(w) * ibc2 + eps
    mden = _msqrt(w, mw, dtype) * ibc2 + eps
    mp = P * abs(1 - lr * wd) if method == "adamw" else P
    return [mp + _mdiv(num, mnum, den, mden)] + out_state


def full_hp(method, kw):
    hp = dict(ops.OPTIMIZER_DEFAULTS[method])
    hp.update({k: v for k, v in kw.items() if v is not None})
    hp.setdefault("l1", 0.0)
    hp.setdefault("step", None)
    return hp


def check_step(method, p, g, state, dtype=None, **kw):
    """One fastmlp step on copies of (p, state) vs the float64 reference.
    Returns the fastmlp results (params, state)."""
    dtype = np.dtype(dtype or p.dtype)
    p_fm = np.array(p, dtype=dtype)
    s_fm = [np.array(s, dtype=dtype) for s in state]
    g_fm = np.array(g, dtype=dtype)
    norm = ops.optimizer_step(method, p_fm, g_fm, s_fm, **kw)
    p_ref = _f64(p_fm.dtype.type(0) + np.array(p, dtype=dtype))  # inputs as the kernel saw them
    p_in, s_in = p_ref.copy(), [_f64(np.array(s, dtype=dtype)) for s in state]
    s_ref = [s.copy() for s in s_in]
    ref_norm = _reference.optimizer_step(method, p_ref, _f64(g_fm), s_ref, **kw)
    scale = 1.0
    if kw.get("clip_norm") is not None:
        assert norm is not None and ref_norm is not None
        assert norm == pytest.approx(ref_norm, rel=1e-13, abs=0), "pre-clip norm"
        scale = _optim.clip_scale(norm, kw["clip_norm"])
    else:
        assert norm is None
    mags = error_magnitudes(method, p_in, _f64(g_fm), s_in, full_hp(method, kw), scale, dtype)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    names = ["params"] + [f"state[{i}] ({n})" for i, n in enumerate(ops.OPTIMIZER_STATE[method])]
    for name, got, ref, mag in zip(names, [p_fm] + s_fm, [p_ref] + s_ref, mags):
        assert got.dtype == dtype
        err = np.abs(_f64(got) - ref)
        tol = K * eps * mag + K * tiny
        bad = ~(err <= tol)
        if bad.any():
            i = int(np.argmax(np.where(bad, err / np.maximum(tol, tiny), 0)))
            pytest.fail(f"{method} {dtype}: {name}: {int(bad.sum())} of {bad.size} elements off; "
                        f"worst at {i}: got {got[i]!r}, expected {ref[i]!r}, tol {tol[i]!r}")
    return p_fm, s_fm


def make(rng, n, dtype, spread=1.0):
    """Normal values times 10**U(-spread, spread), some exact zeros."""
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-spread, spread, n)
    x[::11] = 0.0
    return x.astype(dtype)


def step_kw(method, t, **kw):
    if method in ADAM_FAMILY:
        kw["step"] = t
    return kw


def method_hp(method, rng):
    """Random hyperparameters that `method` takes (lr, momentum, rho, betas, eps)."""
    d = ops.OPTIMIZER_DEFAULTS[method]
    kw = {"lr": float(10 ** rng.uniform(-3, 0))}
    for name in ("momentum", "rho", "beta1", "beta2"):
        if name in d:
            kw[name] = float(rng.uniform(0, 0.999))
    if "eps" in d:
        kw["eps"] = float(10 ** rng.uniform(-8, -3))
    return kw


def bits(x):
    return np.ascontiguousarray(x).view(np.uint8)


# ---------------------------------------------------------------- per-step updates vs the reference

REGS = {
    "plain": {},
    "l2": {"weight_decay": 0.05},
    "l1": {"l1": 0.01},
    "clip": {"clip_norm": 1.0},
    "all": {"weight_decay": 0.05, "l1": 0.01, "clip_norm": 3.0},
}


@pytest.mark.parametrize("reg", list(REGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", METHODS)
def test_steps_match_reference(method, dtype, reg, rng):
    n = 1037  # vector body plus a tail of every width
    p = make(rng, n, dtype)
    state = list(ops.optimizer_state(method, p))
    hp = method_hp(method, rng)
    for t in range(1, 6):
        g = make(rng, n, dtype)
        p, state = check_step(method, p, g, state, **step_kw(method, t, **hp, **REGS[reg]))
    assert np.isfinite(p).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", METHODS)
def test_defaults_match_reference(method, dtype, rng):
    """No hyperparameters given: the documented defaults (shared by neither side)."""
    p = make(rng, 64, dtype)
    state = list(ops.optimizer_state(method, p))
    for t in (1, 2):
        p, state = check_step(method, p, make(rng, 64, dtype), state, **step_kw(method, t))


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 15, 16, 17, 31, 33])
def test_short_buffers(n, rng):
    for method in METHODS:
        for dtype in DTYPES:
            p = make(rng, n, dtype)
            state = list(ops.optimizer_state(method, p))
            for t in (1, 2):
                p, state = check_step(method, p, make(rng, n, dtype), state,
                                      **step_kw(method, t, weight_decay=0.1, l1=0.01,
                                                clip_norm=0.5))


def test_multi_step_state_carried(rng):
    """Ten steps without re-syncing: the kernel's own state carries over and
    stays close to the float64 reference run on its own."""
    n = 300
    for method in METHODS:
        p64 = make(rng, n, F64)
        p = p64.copy()
        s, s64 = list(ops.optimizer_state(method, p)), list(_reference.optimizer_state(method, p))
        for t in range(1, 11):
            g = make(rng, n, F64)
            kw = step_kw(method, t, weight_decay=0.01, clip_norm=10.0)
            ops.optimizer_step(method, p, g, s, **kw)
            _reference.optimizer_step(method, p64, g, s64, **kw)
        np.testing.assert_allclose(p, p64, rtol=1e-11, atol=1e-13, err_msg=method)
        for a, b in zip(s, s64):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13, err_msg=method)


# ---------------------------------------------------------------- hand-computed values

def test_hand_computed_sgd():
    for dtype in DTYPES:
        p = np.array([1.0, -2.0, 0.0], dtype)
        ops.sgd_step(p, np.array([0.5, 0.25, -4.0], dtype), lr=0.1)
        np.testing.assert_allclose(p, [0.95, -2.025, 0.4], rtol=np.finfo(dtype).eps * 4)
        # with L2 (g += wd p) and L1 (g += l1 sign(p)):
        # g' = 0.5 + 0.1 * 0.95 + 0.2 * 1 = 0.795 -> p = 0.95 - 0.1 * 0.795 = 0.8705
        q = np.array([0.95], dtype)
        ops.sgd_step(q, np.array([0.5], dtype), lr=0.1, weight_decay=0.1, l1=0.2)
        np.testing.assert_allclose(q, [0.8705], rtol=np.finfo(dtype).eps * 8)


def test_hand_computed_nesterov():
    # p = 1, v = 0, g = 0.5, lr = 0.1, mu = 0.9:
    #   v = 0.9 * 0 - 0.1 * 0.5 = -0.05;     p = 1 + (0.9 * -0.05 - 0.05) = 0.905
    #   v = 0.9 * -0.05 - 0.05 = -0.095;     p = 0.905 + (0.9 * -0.095 - 0.05) = 0.7695
    for dtype in DTYPES:
        p, v = np.ones(1, dtype), np.zeros(1, dtype)
        g = np.full(1, 0.5, dtype)
        ops.nesterov_step(p, g, v, lr=0.1, momentum=0.9)
        np.testing.assert_allclose([p[0], v[0]], [0.905, -0.05], rtol=np.finfo(dtype).eps * 8)
        ops.nesterov_step(p, g, v, lr=0.1, momentum=0.9)
        np.testing.assert_allclose([p[0], v[0]], [0.7695, -0.095], rtol=np.finfo(dtype).eps * 8)
        # classical momentum from the same start: p = 1 - 0.05 = 0.95, then 0.95 - 0.095
        p, v = np.ones(1, dtype), np.zeros(1, dtype)
        ops.momentum_step(p, g, v, lr=0.1, momentum=0.9)
        ops.momentum_step(p, g, v, lr=0.1, momentum=0.9)
        np.testing.assert_allclose([p[0], v[0]], [0.855, -0.095], rtol=np.finfo(dtype).eps * 8)


def test_hand_computed_adam():
    # p = 1, g = 0.5 at every step, lr = 0.1, betas (0.9, 0.999), eps = 1e-8.
    # t = 1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25
    #        p = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    # t = 2: m = 0.095, v = 0.00049975, m_hat = 0.095 / 0.19 = 0.5,
    #        v_hat = 0.00049975 / 0.001999 = 0.25: the same step again.
    step = 0.1 * 0.5 / (0.5 + 1e-8)
    for dtype in DTYPES:
        p, m, v = np.ones(1, dtype), np.zeros(1, dtype), np.zeros(1, dtype)
        g = np.full(1, 0.5, dtype)
        ops.adam_step(p, g, m, v, step=1, lr=0.1)
        rtol = np.finfo(dtype).eps * 8
        np.testing.assert_allclose([p[0], m[0], v[0]], [1 - step, 0.05, 0.00025], rtol=rtol)
        ops.adam_step(p, g, m, v, step=2, lr=0.1)
        np.testing.assert_allclose([p[0], m[0], v[0]], [1 - 2 * step, 0.095, 0.00049975],
                                   rtol=rtol)
    # eps is added to sqrt(v_hat), not to sqrt(v): with v_hat = 0.25e-16 the
    # denominator is 0.5e-8 + 1e-8.
    p, m, v = np.ones(1), np.zeros(1), np.zeros(1)
    ops.adam_step(p, np.full(1, 0.5e-8), m, v, step=1, lr=0.1)
    assert p[0] == pytest.approx(1 - 0.1 * 0.5e-8 / (0.5e-8 + 1e-8), rel=1e-15)


def test_hand_computed_adamw_amsgrad_adamax():
    # AdamW, t = 1, p = 2, g = 0.5, lr = 0.1, wd = 0.5:
    #   p = 2 * (1 - 0.05) - 0.1 * 0.5 / (0.5 + 1e-8)
    p, m, v = np.full(1, 2.0), np.zeros(1), np.zeros(1)
    ops.adamw_step(p, np.full(1, 0.5), m, v, step=1, lr=0.1, weight_decay=0.5)
    assert p[0] == pytest.approx(1.9 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-15)
    # AMSGrad keeps max(v): after g = 1 then g = 0, v_max = 0.001 (not 0.000999)
    p, m, v, vm = np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1)
    ops.amsgrad_step(p, np.ones(1), m, v, vm, step=1)
    ops.amsgrad_step(p, np.zeros(1), m, v, vm, step=2)
    assert vm[0] == pytest.approx(0.001, rel=1e-15) and v[0] == pytest.approx(0.000999, rel=1e-15)
    # AdaMax, t = 1, g = -2, lr = 0.002: m = -0.2, u = 2, p = 0 - 0.002 / 0.1 * -0.2 / (2 + 1e-8)
    p, m, u = np.zeros(1), np.zeros(1), np.zeros(1)
    ops.adamax_step(p, np.full(1, -2.0), m, u, step=1)
    assert (m[0], u[0]) == (pytest.approx(-0.2, rel=1e-15), 2.0)
    assert p[0] == pytest.approx(0.002 / 0.1 * 0.2 / (2 + 1e-8), rel=1e-14)


def test_hand_computed_clip():
    # g = (3, 4): norm 5; clip 1 -> scale 1 / (5 + 1e-6); SGD lr = 1
    p = np.zeros(2)
    norm = ops.sgd_step(p, np.array([3.0, 4.0]), lr=1.0, clip_norm=1.0)
    assert norm == 5.0
    np.testing.assert_allclose(p, [-3 / (5 + 1e-6), -4 / (5 + 1e-6)], rtol=1e-15)
    # below the threshold nothing is scaled, and the norm is still returned
    p = np.zeros(2)
    assert ops.sgd_step(p, np.array([3.0, 4.0]), lr=1.0, clip_norm=10.0) == 5.0
    np.testing.assert_array_equal(p, [-3.0, -4.0])
    # no clip_norm -> None
    assert ops.sgd_step(p, np.array([3.0, 4.0])) is None


# ---------------------------------------------------------------- scikit-learn's conventions

def _sklearn_optimizers():
    return pytest.importorskip("sklearn.neural_network._stochastic_optimizers")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov"])
def test_sgd_momentum_nesterov_equal_sklearn(kind, dtype, rng):
    """scikit-learn's SGDOptimizer does exactly our arithmetic: bitwise equal."""
    so = _sklearn_optimizers()
    n, lr, mu = 257, 0.05, (0.0 if kind == "sgd" else 0.9)
    p_sk = make(rng, n, dtype)
    p_fm = p_sk.copy()
    opt = so.SGDOptimizer([p_sk], learning_rate_init=lr, momentum=mu,
                          nesterov=(kind == "nesterov"))
    v = np.zeros(n, dtype)
    for _ in range(6):
        g = make(rng, n, dtype)
        opt.update_params([p_sk], [g])
        if kind == "sgd":
            ops.sgd_step(p_fm, g, lr=lr)
        else:
            ops.optimizer_step(kind, p_fm, g, (v,), lr=lr, momentum=mu)
            np.testing.assert_array_equal(v, opt.velocities[0])
        assert p_sk.dtype == dtype
        np.testing.assert_array_equal(p_fm, p_sk)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_adam_vs_sklearn(dtype, rng):
    """Same t counting, moments and bias corrections as scikit-learn's
    AdamOptimizer: m and v bitwise equal; the steps differ only where eps
    sits (ours: sqrt(v_hat) + eps, scikit-learn's: sqrt(v) + eps), i.e. by a
    relative ~eps / sqrt(v_hat) * (1/sqrt(1 - beta2^t) - 1)."""
    so = _sklearn_optimizers()
    n, lr, eps = 257, 0.01, 1e-8
    p_sk = make(rng, n, dtype)
    p_sk[p_sk == 0] = 1.0
    p_fm = p_sk.copy()
    opt = so.AdamOptimizer([p_sk], learning_rate_init=lr, epsilon=eps)
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    for t in range(1, 8):
        g = make(rng, n, dtype)
        g[g == 0] = 0.5
        before = p_fm.copy()
        opt.update_params([p_sk], [g])
        ops.adam_step(p_fm, g, m, v, step=t, lr=lr, eps=eps)
        np.testing.assert_array_equal(m, opt.ms[0])
        np.testing.assert_array_equal(v, opt.vs[0])
        step_fm, step_sk = _f64(p_fm) - _f64(before), _f64(p_sk) - _f64(before)
        if dtype == F64:
            # relative step difference: at most eps/sqrt(v_hat) * 1/sqrt(1 - b2^t)
            bound = eps / (np.sqrt(_f64(v) / (1 - 0.999 ** t))) / math.sqrt(1 - 0.999 ** t)
            np.testing.assert_array_less(np.abs(step_fm - step_sk),
                                         (bound + 1e-12) * np.abs(step_sk) + 1e-18)
        p_sk[...] = p_fm  # keep comparing single steps from the same params
    # With an eps far below sqrt(v) the two conventions coincide to rounding.
    if dtype == F64:
        p_sk = make(rng, n, dtype)
        p_fm = p_sk.copy()
        opt = so.AdamOptimizer([p_sk], learning_rate_init=lr, epsilon=1e-300)
        m, v = np.zeros(n), np.zeros(n)
        for t in range(1, 8):
            g = make(rng, n, dtype) + 3.0
            opt.update_params([p_sk], [g])
            ops.adam_step(p_fm, g, m, v, step=t, lr=lr, eps=1e-300)
        np.testing.assert_allclose(p_fm, p_sk, rtol=1e-14, atol=1e-14)


# ---------------------------------------------------------------- convergence

def _quadratic(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((30, 10))
    b = a @ rng.uniform(-2, 2, 10) + 0.1 * rng.standard_normal(30)
    p_star = np.linalg.lstsq(a, b, rcond=None)[0]
    return a, b, p_star


# lr and, for the methods whose step does not shrink by itself on a
# deterministic problem, a geometric lr decay per step.
CONVERGE = {
    "sgd": ({"lr": 0.02}, 1.0), "momentum": ({"lr": 0.005}, 1.0),
    "nesterov": ({"lr": 0.005}, 1.0), "adagrad": ({"lr": 1.0}, 1.0),
    "adadelta": ({"lr": 1.0, "eps": 0.1}, 0.99), "rmsprop": ({"lr": 0.05}, 0.98),
    "adam": ({"lr": 0.1}, 1.0), "amsgrad": ({"lr": 0.1}, 1.0),
    "adamw": ({"lr": 0.1, "weight_decay": 0.0}, 1.0), "adamax": ({"lr": 0.1}, 1.0),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", METHODS)
def test_minimises_convex_quadratic(method, dtype):
    """0.5 ||A p - b||^2 from p = 0: within 600 steps every optimizer gets
    the loss gap below 1e-8 of the initial gap."""
    a, b, p_star = _quadratic()

    def loss(p):
        r = a @ _f64(p) - b
        return 0.5 * float(r @ r)

    kw, decay = CONVERGE[method]
    p = np.zeros(10, dtype)
    state = ops.optimizer_state(method, p)
    f0, f_star = loss(p), loss(p_star)
    gaps = []
    for t in range(1, 601):
        g = (a.T @ (a @ _f64(p) - b)).astype(dtype)
        lr = kw["lr"] * decay ** t
        ops.optimizer_step(method, p, g, state, **step_kw(method, t, **dict(kw, lr=lr)))
        if t % 100 == 0:
            gaps.append((loss(p) - f_star) / (f0 - f_star))
    assert gaps[0] < 0.1 and gaps[-1] < 1e-8, gaps
    np.testing.assert_allclose(p, p_star, atol=1e-3 if dtype == F32 else 1e-5)


def test_regularised_minimum():
    """With weight_decay the fixed point is the ridge solution (A^T A + wd I) p = A^T b."""
    a, b, _ = _quadratic(1)
    wd = 0.5
    ridge = np.linalg.solve(a.T @ a + wd * np.eye(10), a.T @ b)
    for method in ("sgd", "nesterov", "adam"):
        p = np.zeros(10)
        state = ops.optimizer_state(method, p)
        for t in range(1, 1501):
            g = a.T @ (a @ p - b)
            ops.optimizer_step(method, p, g, state, weight_decay=wd,
                               **step_kw(method, t, lr=0.05 if method == "adam" else 0.005))
        np.testing.assert_allclose(p, ridge, atol=1e-6, err_msg=method)


# ---------------------------------------------------------------- determinism, archs

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_threads_bitwise(dtype, rng):
    """1 vs 2 threads on 1e6+ elements (parallel path, 62 chunks): bitwise equal,
    clipping norm included."""
    n = 1_000_003
    assert n >= _optim.PAR_MIN
    p0 = make(rng, n, dtype)
    g = make(rng, n, dtype)
    for method in METHODS:
        results = []
        for threads in (1, 2):
            p = p0.copy()
            state = [np.full(n, 0.01, dtype) for _ in ops.OPTIMIZER_STATE[method]]
            with fastmlp.threads(threads):
                norm = ops.optimizer_step(method, p, g, state, **step_kw(
                    method, 3, weight_decay=0.01, l1=0.001, clip_norm=100.0))
            results.append((norm, [p] + state))
        (n1, r1), (n2, r2) = results
        assert n1 == n2, method
        for a, b in zip(r1, r2):
            np.testing.assert_array_equal(bits(a), bits(b), err_msg=method)
    with fastmlp.threads(1):
        a = ops.grad_norm(g)
    with fastmlp.threads(2):
        b = ops.grad_norm(g)
    assert a == b


@pytest.mark.skipif(not _gemm.arch_usable(_gemm.ARCH_AVX2), reason="no AVX2 on this CPU")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_avx2_equals_portable_bitwise(dtype, rng):
    """The AVX2 loops and the portable C loops perform the same operations:
    bitwise equal results, NaN/inf, zeros and odd tails included."""
    n = 1003
    p0 = make(rng, n, dtype, spread=3)
    g = make(rng, n, dtype, spread=3)
    g[[5, 6, 7]] = [np.nan, np.inf, -np.inf]
    p0[9] = -0.0
    for method, code in _optim.METHODS.items():
        for clip in (0.0, 1e9):
            gg = g if clip == 0.0 else np.nan_to_num(g, nan=1.0, posinf=2.0, neginf=-2.0)
            outs = []
            for arch in (_gemm.ARCH_REF, _gemm.ARCH_AVX2):
                p = p0.copy()
                state = [np.abs(make(rng, n, dtype)) if False else np.full(n, 0.25, dtype)
                         for _ in range(_optim.N_STATE[method])]
                _optim.step(code, p, gg, *state, lr=0.01, momentum=0.9, rho=0.9, beta1=0.9,
                            beta2=0.999, eps=1e-8, weight_decay=0.1, l1=0.01, clip_norm=clip,
                            step=3, arch=arch)
                outs.append([p] + state)
            for a, b in zip(*outs):
                np.testing.assert_array_equal(bits(a), bits(b), err_msg=method)
    for x in (g[:n - 3], np.nan_to_num(g)):
        assert (_optim.grad_norm(np.ascontiguousarray(x), arch=_gemm.ARCH_REF)
                == _optim.grad_norm(np.ascontiguousarray(x), arch=_gemm.ARCH_AVX2)) or np.isnan(
                    _optim.grad_norm(np.ascontiguousarray(x), arch=_gemm.ARCH_REF))


def test_chunk_boundaries_do_not_matter(rng):
    """Parallel (chunked) and single-call paths agree bitwise around chunk edges."""
    c = _optim.CHUNK
    for n in (_optim.PAR_MIN, _optim.PAR_MIN + 1, 5 * c - 3):
        p0, g = make(rng, n, F32), make(rng, n, F32)
        outs = []
        for threads in (1, 2):
            p = p0.copy()
            m, v = np.zeros(n, F32), np.zeros(n, F32)
            with fastmlp.threads(threads):
                ops.adam_step(p, g, m, v, step=1)
            outs.append((p, m, v))
        for a, b in zip(*outs):
            np.testing.assert_array_equal(bits(a), bits(b))


# ---------------------------------------------------------------- grad_norm

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 3 * 16384 + 5])
def test_grad_norm(n, dtype, rng):
    x = make(rng, n, dtype, spread=3)
    got = ops.grad_norm(x)
    assert isinstance(got, float)
    assert got == pytest.approx(_reference.grad_norm(x), rel=max(n, 1) * 2.3e-16, abs=0)
    # strided and list inputs
    y = make(rng, 2 * n, dtype)[::2]
    assert ops.grad_norm(y) == pytest.approx(_reference.grad_norm(y), rel=max(n, 1) * 2.3e-16)
    assert ops.grad_norm(list(_f64(x))) == pytest.approx(_reference.grad_norm(x),
                                                         rel=max(n, 1) * 2.3e-16, abs=0)


def test_grad_norm_extremes():
    huge = np.full(100, 1e300)
    assert ops.grad_norm(huge) == pytest.approx(1e301, rel=1e-14)  # no overflow
    mixed = np.array([3e200, 4e200, 1.0])
    assert ops.grad_norm(mixed) == pytest.approx(5e200, rel=1e-15)
    assert ops.grad_norm(np.full(10, 3e38, np.float32)) == pytest.approx(3e38 * math.sqrt(10),
                                                                         rel=1e-7)
    tiny = np.full(4, 1e-40, np.float32)  # float32 denormals, squared in float64
    assert ops.grad_norm(tiny) == pytest.approx(2 * float(np.float32(1e-40)), rel=1e-6)
    assert ops.grad_norm(np.array([1.0, np.inf])) == np.inf
    assert ops.grad_norm(np.array([1e300, np.inf])) == np.inf
    assert math.isnan(ops.grad_norm(np.array([1.0, np.nan, np.inf])))
    assert ops.grad_norm(np.zeros(5)) == 0.0


# ---------------------------------------------------------------- extreme inputs

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", METHODS)
def test_nonfinite_gradients_propagate_elementwise(method, dtype, rng):
    """NaN/inf gradients make their own elements non-finite and leave the
    others as without them; with clipping the norm is non-finite, returned,
    and nothing is scaled."""
    n = 41
    p0, g = make(rng, n, dtype), make(rng, n, dtype)
    p0[p0 == 0] = 1.0
    g[[3, 20]] = [np.nan, np.inf]
    kw = step_kw(method, 1, clip_norm=1e-3)
    p = p0.copy()
    state = list(ops.optimizer_state(method, p))
    norm = ops.optimizer_step(method, p, g, state, **kw)
    assert math.isnan(norm)
    assert not np.isfinite(p[3]) and not np.isfinite(p[20])
    for s in state:
        assert np.isnan(s[3])
    ok = np.ones(n, bool)
    ok[[3, 20]] = False
    # the finite elements: exactly as a step without the bad ones and without clipping
    q = p0[ok].copy()
    qs = list(ops.optimizer_state(method, q))
    ops.optimizer_step(method, q, g[ok], qs, **step_kw(method, 1))
    np.testing.assert_array_equal(p[ok], q)
    for s, s2 in zip(state, qs):
        np.testing.assert_array_equal(s[ok], s2)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_zero_gradients_are_safe(dtype):
    """All-zero gradients from zero state: no 0/0 anywhere (AdaMax's eps,
    Adam's eps, Adagrad's eps), the params do not move."""
    for method in METHODS:
        p = np.linspace(-1, 1, 19).astype(dtype)
        p0 = p.copy()
        state = list(ops.optimizer_state(method, p))
        for t in (1, 2):
            ops.optimizer_step(method, p, np.zeros(19, dtype), state, weight_decay=0.0,
                               **step_kw(method, t))
        np.testing.assert_array_equal(p, p0, err_msg=method)
        assert all(np.isfinite(s).all() for s in state), method


def test_extreme_magnitudes(rng):
    """Very large and very small gradients: scale-invariant methods take
    ~lr-sized steps, nothing overflows or divides by zero. (In float32 the
    second moments hold g^2, so |g| must stay below ~1e19.)"""
    for dtype, big, small in ((F32, 1e15, 1e-15), (F64, 1e150, 1e-150)):
        for g0 in (big, small):
            for method in ("adam", "amsgrad", "adamax", "rmsprop", "adagrad"):
                p = np.zeros(9, dtype)
                state = list(ops.optimizer_state(method, p))
                g = np.full(9, g0, dtype)
                ops.optimizer_step(method, p, g, state, lr=0.01, **step_kw(method, 1))
                assert np.isfinite(p).all(), (method, g0)
                if g0 == big:
                    np.testing.assert_allclose(p, -0.01 if method != "rmsprop" else
                                               -0.01 / math.sqrt(0.1), rtol=1e-5)
        # huge float64 gradients with clipping: the norm does not overflow
        if dtype == F64:
            p = np.zeros(4)
            norm = ops.sgd_step(p, np.full(4, 1e300), lr=1.0, clip_norm=2.0)
            assert norm == pytest.approx(2e300, rel=1e-14)
            np.testing.assert_allclose(p, -1.0, rtol=1e-12)


def test_large_step_count():
    """Bias corrections at huge t: beta^t underflows to 0 and the corrections
    become 1 (no inf/NaN)."""
    for method in ADAM_FAMILY:
        p = np.ones(3)
        state = [np.full(3, 0.25) for _ in ops.OPTIMIZER_STATE[method]]
        ops.optimizer_step(method, p, np.full(3, 0.5), state, step=10 ** 12)
        assert np.isfinite(p).all() and (p < 1).all(), method


# ---------------------------------------------------------------- buffers and layouts

def test_grads_strided_list_and_never_written(rng):
    n = 50
    for dtype in DTYPES:
        p0 = make(rng, n, dtype)
        gbig = make(rng, 3 * n, dtype)
        g = gbig[::3]
        keep = gbig.copy()
        expected = p0.copy()
        ops.adam_step(expected, np.ascontiguousarray(g), *ops.optimizer_state("adam", p0), step=1)
        p = p0.copy()
        ops.adam_step(p, g, *ops.optimizer_state("adam", p0), step=1)
        np.testing.assert_array_equal(p, expected)
        np.testing.assert_array_equal(gbig, keep)
        if dtype == F64:
            p = p0.copy()
            ops.adam_step(p, list(g), *ops.optimizer_state("adam", p0), step=1)
            np.testing.assert_array_equal(p, expected)
        # read-only grads are fine
        gro = np.ascontiguousarray(g)
        gro.flags.writeable = False
        p = p0.copy()
        ops.adam_step(p, gro, *ops.optimizer_state("adam", p0), step=1)
        np.testing.assert_array_equal(p, expected)


def test_grads_aliasing_params_or_state_is_copied(rng):
    """grads overlapping params/state: the step uses the gradient's values
    from before the call (it is copied first)."""
    p0 = make(rng, 20, F64)
    expected, v = p0.copy(), np.zeros(20)
    ops.momentum_step(expected, p0.copy(), v)
    p, v = p0.copy(), np.zeros(20)
    ops.momentum_step(p, p, v)  # g is p itself
    np.testing.assert_array_equal(p, expected)
    buf = np.zeros((2, 20))
    buf[1] = p0
    p, v = p0.copy(), buf[0]
    ops.momentum_step(p, buf.ravel()[20:], v)  # g shares a base with the state
    np.testing.assert_array_equal(p, expected)


def test_state_as_2d_buffer_and_single_array(rng):
    n = 33
    p0 = make(rng, n, F32)
    g = make(rng, n, F32)
    p1, s1 = p0.copy(), np.zeros((3, n), F32)
    ops.optimizer_step("amsgrad", p1, g, s1, step=1)
    p2, s2 = p0.copy(), [np.zeros(n, F32) for _ in range(3)]
    ops.optimizer_step("amsgrad", p2, g, s2, step=1)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1, np.stack(s2))
    p3, v3 = p0.copy(), np.zeros(n, F32)
    ops.optimizer_step("momentum", p3, g, v3)  # one 1-D array = one state buffer
    p4, v4 = p0.copy(), np.zeros(n, F32)
    ops.optimizer_step("momentum", p4, g, [v4])
    np.testing.assert_array_equal(p3, p4)


def test_empty_buffers():
    for method in METHODS:
        p = np.zeros(0, np.float32)
        state = ops.optimizer_state(method, p)
        assert ops.optimizer_step(method, p, np.zeros(0, np.float32), state,
                                  **step_kw(method, 1)) is None
        assert ops.optimizer_step(method, p, np.zeros(0, np.float32), state, clip_norm=1.0,
                                  **step_kw(method, 1)) == 0.0


def test_wrappers_equal_optimizer_step(rng):
    n = 45
    wrappers = {"sgd": ops.sgd_step, "momentum": ops.momentum_step,
                "nesterov": ops.nesterov_step, "adagrad": ops.adagrad_step,
                "adadelta": ops.adadelta_step, "rmsprop": ops.rmsprop_step,
                "adam": ops.adam_step, "amsgrad": ops.amsgrad_step, "adamw": ops.adamw_step,
                "adamax": ops.adamax_step}
    assert set(wrappers) == set(ops.OPTIMIZERS) == set(ops.OPTIMIZER_STATE)
    for method, fn in wrappers.items():
        p0, g = make(rng, n, F32), make(rng, n, F32)
        a, sa = p0.copy(), ops.optimizer_state(method, p0)
        b, sb = p0.copy(), ops.optimizer_state(method, p0)
        kw = step_kw(method, 2, l1=0.01, clip_norm=0.5)
        fn(a, g, *sa, **kw)
        ops.optimizer_step(method, b, g, sb, **kw)  # defaults from OPTIMIZER_DEFAULTS
        np.testing.assert_array_equal(a, b, err_msg=method)
        # and the reference's wrapper agrees with the reference's optimizer_step
        c, sc = _f64(p0), _reference.optimizer_state(method, p0)
        getattr(_reference, f"{method}_step")(c, _f64(g), *sc, **kw)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6, err_msg=method)


def test_adamw_decay_is_decoupled(rng):
    """AdamW's weight decay does not enter the moments (Adam's L2 does)."""
    p0, g = make(rng, 30, F64), make(rng, 30, F64)
    p, m, v = p0.copy(), np.zeros(30), np.zeros(30)
    ops.adamw_step(p, g, m, v, step=1, weight_decay=0.1)
    q, m2, v2 = p0.copy(), np.zeros(30), np.zeros(30)
    ops.adam_step(q, g, m2, v2, step=1)
    np.testing.assert_array_equal(m, m2)
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_allclose(p, q - 0.001 * 0.1 * p0, rtol=1e-14, atol=1e-16)
    p3, m3, v3 = p0.copy(), np.zeros(30), np.zeros(30)
    ops.adam_step(p3, g, m3, v3, step=1, weight_decay=0.1)
    np.testing.assert_allclose(m3, 0.1 * (g + 0.1 * p0), rtol=1e-15)


# ---------------------------------------------------------------- bad input

def _bufs(method="adam", n=4, dtype=F64):
    p = np.zeros(n, dtype)
    return p, np.ones(n, dtype), list(ops.optimizer_state(method, p))


def test_bad_method():
    p, g, _ = _bufs()
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamx'.*sgd, momentum"):
        ops.optimizer_step("adamx", p, g, ())
    with pytest.raises(ValueError, match=r"unknown optimizer None"):
        ops.optimizer_step(None, p, g, ())
    with pytest.raises(ValueError, match=r"unknown optimizer"):
        ops.optimizer_state("Adam", p)


def test_bad_params():
    _, g, s = _bufs()
    with pytest.raises(TypeError, match=r"params must be a numpy.ndarray.*in place.*list"):
        ops.optimizer_step("adam", [0.0] * 4, g, s, step=1)
    with pytest.raises(TypeError, match=r"params has dtype int64"):
        ops.optimizer_step("adam", np.zeros(4, np.int64), g, s, step=1)
    with pytest.raises(ValueError, match=r"params must be a 1-D.*shape \(2, 2\)"):
        ops.optimizer_step("adam", np.zeros((2, 2)), g, s, step=1)
    with pytest.raises(ValueError, match=r"params must be C-contiguous"):
        ops.optimizer_step("adam", np.zeros(8)[::2], g, s, step=1)
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params is read-only"):
        ops.optimizer_step("adam", ro, g, s, step=1)


def test_bad_grads():
    p, g, s = _bufs()
    with pytest.raises(ValueError, match=r"grads has length 5, expected 4"):
        ops.optimizer_step("adam", p, np.ones(5), s, step=1)
    with pytest.raises(ValueError, match=r"grads has dtype float32, expected float64"):
        ops.optimizer_step("adam", p, np.ones(4, np.float32), s, step=1)
    with pytest.raises(TypeError, match=r"grads has dtype int64"):
        ops.optimizer_step("adam", p, np.ones(4, np.int64), s, step=1)
    with pytest.raises(ValueError, match=r"grads must be 1-D"):
        ops.optimizer_step("adam", p, np.ones((4, 1)), s, step=1)
    with pytest.raises(TypeError, match=r"grads"):
        ops.optimizer_step("adam", p, "abcd", s, step=1)


def test_bad_state():
    p, g, s = _bufs()
    with pytest.raises(ValueError, match=r"adam takes 2 state buffer\(s\) \(m, v\), got 1"):
        ops.optimizer_step("adam", p, g, s[:1], step=1)
    with pytest.raises(ValueError, match=r"sgd takes 0 state buffer\(s\) \(none\), got 1"):
        ops.optimizer_step("sgd", p, g, [np.zeros(4)])
    with pytest.raises(TypeError, match=r"state must be a sequence"):
        ops.optimizer_step("adam", p, g, 5, step=1)
    with pytest.raises(TypeError, match=r"state\[1\] \(v\) must be a numpy.ndarray"):
        ops.optimizer_step("adam", p, g, [s[0], [0.0] * 4], step=1)
    with pytest.raises(ValueError, match=r"state\[0\] \(m\) has dtype float32, expected float64"):
        ops.optimizer_step("adam", p, g, [np.zeros(4, np.float32), s[1]], step=1)
    with pytest.raises(ValueError, match=r"state\[1\] \(v\) has length 3, expected 4"):
        ops.optimizer_step("adam", p, g, [s[0], np.zeros(3)], step=1)
    with pytest.raises(ValueError, match=r"state\[1\] \(v\) must be C-contiguous"):
        ops.optimizer_step("adam", p, g, [s[0], np.zeros(8)[::2]], step=1)
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"state\[0\] \(m\) is read-only"):
        ops.optimizer_step("adam", p, g, [ro, s[1]], step=1)
    with pytest.raises(ValueError, match=r"state\[1\] overlaps state\[0\]"):
        ops.optimizer_step("adam", p, g, [s[0], s[0]], step=1)
    with pytest.raises(ValueError, match=r"state\[0\] overlaps params"):
        ops.optimizer_step("adam", p, g, [p, s[1]], step=1)
    with pytest.raises(ValueError, match=r"2-D array"):
        ops.optimizer_step("adam", p, g, np.zeros((2, 2, 4)), step=1)


@pytest.mark.parametrize("name, value, match", [
    ("lr", 0.0, r"lr must be a finite number in \(0, inf\), got 0.0"),
    ("lr", -0.1, r"lr must be"),
    ("lr", float("nan"), r"lr must be"),
    ("lr", float("inf"), r"lr must be"),
    ("beta1", 1.0, r"beta1 must be a finite number in \[0, 1\), got 1.0"),
    ("beta1", -0.1, r"beta1 must be"),
    ("beta2", 1.5, r"beta2 must be"),
    ("eps", 0.0, r"eps must be a finite number in \(0, inf\)"),
    ("eps", -1e-8, r"eps must be"),
    ("weight_decay", -1.0, r"weight_decay must be a finite number in \[0, inf\)"),
    ("l1", -0.5, r"l1 must be"),
    ("l1", float("nan"), r"l1 must be"),
    ("clip_norm", 0.0, r"clip_norm must be a finite number in \(0, inf\)"),
    ("clip_norm", -1.0, r"clip_norm must be"),
    ("clip_norm", float("inf"), r"clip_norm must be"),
])
def test_bad_hyperparameters(name, value, match):
    p, g, s = _bufs()
    with pytest.raises(ValueError, match=match):
        ops.optimizer_step("adam", p, g, s, step=1, **{name: value})


def test_bad_hyperparameters_other_methods():
    p, g, _ = _bufs()
    v = [np.zeros(4)]
    with pytest.raises(ValueError, match=r"momentum must be a finite number in \[0, 1\)"):
        ops.optimizer_step("momentum", p, g, v, momentum=1.0)
    with pytest.raises(ValueError, match=r"momentum must be"):
        ops.nesterov_step(p, g, v[0], momentum=-0.5)
    with pytest.raises(ValueError, match=r"rho must be a finite number in \[0, 1\)"):
        ops.rmsprop_step(p, g, v[0], rho=1.0)
    with pytest.raises(ValueError, match=r"rho must be"):
        ops.adadelta_step(p, g, np.zeros(4), np.zeros(4), rho=2.0)
    with pytest.raises(ValueError, match=r"eps must be"):
        ops.adagrad_step(p, g, v[0], eps=0.0)
    with pytest.raises(TypeError, match=r"lr must be a real number, got str"):
        ops.sgd_step(p, g, lr="0.1")
    with pytest.raises(TypeError, match=r"momentum must be a real number, got bool"):
        ops.momentum_step(p, g, v[0], momentum=True)


def test_hyperparameter_not_taken_by_method():
    p, g, s = _bufs()
    with pytest.raises(ValueError, match=r"adam takes no momentum.*lr, beta1, beta2, eps, "
                                         r"weight_decay, l1, clip_norm, step"):
        ops.optimizer_step("adam", p, g, s, step=1, momentum=0.9)
    with pytest.raises(ValueError, match=r"sgd takes no eps"):
        ops.optimizer_step("sgd", p, g, (), eps=1e-8)
    with pytest.raises(ValueError, match=r"momentum takes no beta1"):
        ops.optimizer_step("momentum", p, g, [np.zeros(4)], beta1=0.9)


def test_bad_step():
    p, g, s = _bufs()
    with pytest.raises(ValueError, match=r"adam needs step=t.*bias corrections"):
        ops.optimizer_step("adam", p, g, s)
    with pytest.raises(ValueError, match=r"step must be >= 1.*got 0"):
        ops.optimizer_step("adam", p, g, s, step=0)
    with pytest.raises(TypeError, match=r"step must be an int, got float"):
        ops.optimizer_step("adam", p, g, s, step=1.0)
    with pytest.raises(TypeError, match=r"step must be an int, got bool"):
        ops.optimizer_step("adam", p, g, s, step=True)
    with pytest.raises(ValueError, match=r"does not fit in 64 bits"):
        ops.optimizer_step("adam", p, g, s, step=2 ** 64)
    with pytest.raises(TypeError, match=r"step"):
        ops.adam_step(p, g, *s)  # keyword-only and required
    ops.optimizer_step("adam", p, g, s, step=np.int64(3))  # NumPy integers are fine
    ops.optimizer_step("sgd", p, g, (), step=7)  # ignored by methods without t


def test_bad_grad_norm_input():
    with pytest.raises(ValueError, match=r"x must be 1-D"):
        ops.grad_norm(np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"x has dtype int64"):
        ops.grad_norm(np.ones(3, np.int64))


def test_bad_input_leaves_buffers_untouched():
    p, g, s = _bufs()
    p[...] = 1.0
    with pytest.raises(ValueError):
        ops.optimizer_step("adam", p, g, s, step=1, lr=-1.0)
    with pytest.raises(ValueError):
        ops.optimizer_step("adam", p, np.ones(3), s, step=1)
    np.testing.assert_array_equal(p, 1.0)
    assert all((x == 0).all() for x in s)


def test_public_names():
    for name in ("optimizer_step", "optimizer_state", "grad_norm", "OPTIMIZERS",
                 "OPTIMIZER_STATE", "OPTIMIZER_DEFAULTS", "adam_step", "sgd_step"):
        assert name in ops.__all__ and hasattr(ops, name)
    assert ops.OPTIMIZER_DEFAULTS["adamw"]["weight_decay"] == 0.01
    assert ops.OPTIMIZER_DEFAULTS["adadelta"]["lr"] == 1.0
    with pytest.raises(TypeError):
        ops.OPTIMIZER_DEFAULTS["adam"]["lr"] = 1.0  # read-only
    for method, names in ops.OPTIMIZER_STATE.items():
        assert _optim.N_STATE[method] == len(names)


# ---------------------------------------------------------------- property test

@settings(max_examples=40, deadline=None)
@given(method=st.sampled_from(METHODS), dtype=st.sampled_from(DTYPES),
       n=st.integers(1, 70), seed=st.integers(0, 2 ** 32 - 1),
       spread=st.floats(0.0, 4.0), gscale=st.floats(-4.0, 4.0),
       wd=st.sampled_from([0.0, 1e-4, 0.1, 2.0]), l1=st.sampled_from([0.0, 1e-3, 0.5]),
       clip=st.sampled_from([None, 1e-3, 1.0, 1e6]), steps=st.integers(1, 4))
def test_property_vs_reference(method, dtype, n, seed, spread, gscale, wd, l1, clip, steps):
    rng = np.random.default_rng(seed)
    p = make(rng, n, dtype, spread)
    state = list(ops.optimizer_state(method, p))
    hp = method_hp(method, rng)
    for t in range(1, steps + 1):
        g = (make(rng, n, F64, spread) * 10.0 ** gscale).astype(dtype)
        p, state = check_step(method, p, g, state, **step_kw(
            method, t, weight_decay=wd, l1=l1, clip_norm=clip, **hp))
