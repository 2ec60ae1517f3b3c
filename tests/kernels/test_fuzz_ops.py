"""Hypothesis fuzzing of every public op against its NumPy reference
(fastmlp._reference) over shapes (empty and single-element included), dtypes
(float32, float64, mixed) and MEMORY LAYOUTS: C and Fortran order, slices with
steps of +-1..3 on every axis, permuted axes, misaligned views (a byte offset
into a buffer), broadcast (stride-0) inputs -- and ``out=`` arguments that are
strided, or the input itself.

The other property tests (test_gemm/act/norm/optim.py) draw values and shapes
for contiguous or C/F-ordered arrays; these add the layouts, and check that
inputs are never written to. Tolerances are those of the operation's
conditioning in the result's dtype (the inputs are exact in both).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fastmlp import _reference as R
from fastmlp import ops

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
SETTINGS = settings(max_examples=40, deadline=None)
LAYOUTS = ("C", "F", "steps", "permuted", "misaligned", "broadcast")


def _alloc(shape, dtype, layout, steps, perm):
    """An uninitialised, writeable (except 'broadcast') array of `shape` in `layout`."""
    ndim = len(shape)
    if layout == "F":
        return np.empty(shape, dtype, order="F")
    if layout == "steps" and ndim:
        base = np.empty([n * abs(s) for n, s in zip(shape, steps)], dtype)
        return base[tuple(slice(None, None, s) for s in steps)]
    if layout == "permuted" and ndim > 1:
        base = np.empty([shape[p] for p in perm], dtype)
        return base.transpose(np.argsort(perm))
    if layout == "misaligned":
        n = int(np.prod(shape)) * dtype.itemsize
        buf = np.empty(n + dtype.itemsize + 1, np.uint8)
        return np.ndarray(shape, dtype, buffer=buf, offset=1)
    return np.empty(shape, dtype)


@st.composite
def layouts(draw, ndim):
    layout = draw(st.sampled_from(LAYOUTS))
    steps = [draw(st.sampled_from([1, 2, 3, -1, -2])) for _ in range(ndim)]
    perm = draw(st.permutations(range(ndim))) if ndim else []
    return layout, steps, perm


@st.composite
def arrays(draw, shape, dtype, scale=3.0, special=False, writeable=False):
    """An array holding random values of `shape` in a random layout (a view
    whose strides are arbitrary). writeable=True excludes broadcast views."""
    shape = tuple(shape)
    layout, steps, perm = draw(layouts(len(shape)))
    if writeable and layout == "broadcast":
        layout = "steps"
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = rng.standard_normal(shape) * scale
    if special and values.size:
        k = draw(st.integers(0, 3))
        idx = rng.integers(0, values.size, k)
        values.reshape(-1)[idx] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], k)
    if layout == "broadcast" and len(shape) and shape[0] > 0:
        return np.broadcast_to(values[:1].astype(dtype), shape)
    a = _alloc(shape, np.dtype(dtype), layout, steps, perm)
    a[...] = values
    return a


def f64(a):
    return np.array(a, dtype=np.float64)


def snapshot(*arrays_):
    return [np.array(a, copy=True) for a in arrays_]


def assert_unchanged(arrays_, snaps):
    for a, s in zip(arrays_, snaps):
        assert np.array_equal(np.asarray(a), s, equal_nan=True), "an input was written to"


def assert_close(got, want, bound, what=""):
    got, want = f64(got), f64(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN pattern differs"
    with np.errstate(invalid="ignore"):
        ok = np.isnan(want) | (got == want) | (np.abs(got - want) <= bound)
    if not ok.all():
        i = np.unravel_index(np.argmin(ok), ok.shape)
        b = bound if np.ndim(bound) == 0 else np.broadcast_to(bound, ok.shape)[i]
        pytest.fail(f"{what}: {int((~ok).sum())} values off; at {i} got {got[i]!r}, "
                    f"expected {want[i]!r} (bound {b!r})")


def out_array(draw, shape, dtype, kind):
    """None, or a writeable result array of a random layout."""
    if kind == "none":
        return None
    return draw(arrays(shape, dtype, writeable=True))


dims = st.integers(0, 23)
dtypes = st.sampled_from([F32, F64])


# ---------------------------------------------------------------- matmul, gemm, linear

@SETTINGS
@given(data=st.data(), m=dims, k=dims, n=dims, a_dt=dtypes, b_dt=dtypes,
       act=st.sampled_from([None] + list(ops.GEMM_ACTIVATIONS)), bias=st.booleans(),
       out_kind=st.sampled_from(["none", "array", "alias"]))
def test_fuzz_linear(data, m, k, n, a_dt, b_dt, act, bias, out_kind):
    x = data.draw(arrays((m, k), a_dt))
    w = data.draw(arrays((k, n), b_dt))
    b = data.draw(arrays((n,), b_dt)) if bias else None
    dtype = F64 if F64 in (a_dt, b_dt) else F32
    slope = data.draw(st.sampled_from([0.01, 0.3]))
    snaps = snapshot(x, w, *([b] if bias else []))
    out = None
    if out_kind == "array":
        out = out_array(data.draw, (m, n), dtype, "array")
    elif out_kind == "alias" and k == n and x.dtype == dtype and x.flags.writeable:
        out = x                       # the result overwrites its own input
    res = ops.linear(x, w, b, act, out=out, alpha=slope)
    if out is not None:
        assert res is out
    else:
        assert_unchanged([x, w] + ([b] if bias else []), snaps)
    x64, w64 = snaps[0].astype(np.float64), snaps[1].astype(np.float64)
    ref = R.linear(x64, w64, None if b is None else snaps[2], act, alpha=slope)
    mag = np.abs(x64) @ np.abs(w64) + (0 if b is None else np.abs(f64(snaps[2])))
    eps = np.finfo(dtype).eps
    assert_close(res, ref, 2 * eps * (k + 2) * mag + 4 * eps * np.abs(ref) + 1e-300, "linear")
    if act is None and b is None and out is None:
        assert_close(ops.matmul(x, w), ref, 2 * eps * (k + 2) * mag + 1e-300, "matmul")


@SETTINGS
@given(data=st.data(), m=dims, k=dims, n=dims, dt=dtypes, trans_a=st.booleans(),
       trans_b=st.booleans(), alpha=st.sampled_from([1.0, -0.5, 2.0]),
       beta=st.sampled_from([0.0, 1.0, -2.0]))
def test_fuzz_gemm_strided_c(data, m, k, n, dt, trans_a, trans_b, alpha, beta):
    a = data.draw(arrays((k, m) if trans_a else (m, k), dt))
    b = data.draw(arrays((n, k) if trans_b else (k, n), dt))
    c = data.draw(arrays((m, n), dt, writeable=True))
    a0, b0, c0 = snapshot(a, b, c)
    res = ops.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    assert res is c
    assert_unchanged([a, b], [a0, b0])
    ref = R.gemm(a0, b0, c0, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    opa, opb = (a0.T if trans_a else a0), (b0.T if trans_b else b0)
    mag = abs(alpha) * (np.abs(f64(opa)) @ np.abs(f64(opb))) + abs(beta) * np.abs(f64(c0))
    eps = np.finfo(dt).eps
    assert_close(c, ref, 2 * eps * (k + 3) * mag + 1e-300, "gemm")


# ---------------------------------------------------------------- activations

shapes = st.lists(st.integers(0, 7), min_size=0, max_size=3).map(tuple)


@SETTINGS
@given(data=st.data(), shape=shapes, dt=dtypes, name=st.sampled_from(ops.ACTIVATIONS),
       out_kind=st.sampled_from(["none", "array", "inplace"]))
def test_fuzz_activation_and_backward(data, shape, dt, name, out_kind):
    z = data.draw(arrays(shape, dt, special=True, writeable=out_kind == "inplace"))
    g = data.draw(arrays(shape, dt, special=True, writeable=out_kind == "inplace"))
    z0, g0 = snapshot(z, g)
    eps = np.finfo(dt).eps
    with np.errstate(all="ignore"):
        ref = R.activation(name, f64(z0), alpha=0.2)
        ref_b = R.activation_backward(name, f64(z0), f64(g0), alpha=0.2)
    out = out_array(data.draw, shape, dt, "array") if out_kind == "array" else None
    res = ops.activation(name, z, out=out, alpha=0.2)
    assert_unchanged([z], [z0])
    assert_close(res, ref, 8 * eps * np.abs(ref) + 4 * np.finfo(dt).tiny, f"{name}")
    if out_kind == "inplace":
        res = ops.activation_backward(name, z, g, out=g, alpha=0.2)    # gradient in place
        assert res is g
        assert_unchanged([z], [z0])
    else:
        out = out_array(data.draw, shape, dt, "array") if out_kind == "array" else None
        res = ops.activation_backward(name, z, g, out=out, alpha=0.2)
        assert_unchanged([z, g], [z0, g0])
    assert_close(res, ref_b, 8 * eps * np.abs(ref_b) + 4 * np.finfo(dt).tiny, f"{name}'")
    if out_kind == "inplace":
        assert ops.activation(name, z, out=z, alpha=0.2) is z
        assert_close(z, ref, 8 * eps * np.abs(ref) + 4 * np.finfo(dt).tiny, f"{name} in place")


# ---------------------------------------------------------------- softmax and losses

@SETTINGS
@given(data=st.data(), n=st.integers(0, 12), c=st.integers(1, 30), dt=dtypes, log=st.booleans(),
       inplace=st.booleans())
def test_fuzz_softmax(data, n, c, dt, log, inplace):
    z = data.draw(arrays((n, c), dt, scale=5.0, writeable=inplace))
    z0 = snapshot(z)[0]
    f = ops.log_softmax if log else ops.softmax
    res = f(z, out=z if inplace else None)
    if inplace:
        assert res is z
    else:
        assert_unchanged([z], [z0])
    zz = f64(z0)
    ref = R.log_softmax(zz) if log else R.softmax(zz)
    cond = np.abs(zz - zz.max(axis=1, keepdims=True)) + np.log(c) + 1 if n else 1
    eps = np.finfo(dt).eps
    assert_close(res, ref, 8 * eps * cond * (1 if log else np.abs(ref)) + 4 * np.finfo(dt).tiny)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 12), c=st.integers(1, 12), dt=dtypes,
       probs=st.booleans(), weighted=st.booleans())
def test_fuzz_softmax_cross_entropy(data, n, c, dt, probs, weighted):
    z = data.draw(arrays((n, c), dt))
    if probs:
        t = np.abs(data.draw(arrays((n, c), dt, scale=1.0)))
    else:
        t = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                     dtype=data.draw(st.sampled_from([np.int64, np.int32, np.uint8])))
        t = data.draw(st.sampled_from([t, t[::-1][::-1], np.concatenate([t, t])[::2]]))
    w = np.abs(data.draw(arrays((n,), F64, scale=1.0))) + 0.1 if weighted else None
    snaps = snapshot(z, t)
    loss, grad = ops.softmax_cross_entropy(z, t, w)
    assert_unchanged([z, t], snaps)
    lref, gref = R.softmax_cross_entropy(f64(snaps[0]), snaps[1] if not probs else f64(snaps[1]),
                                         w)
    eps = np.finfo(dt).eps
    scale = np.abs(f64(snaps[0])).max() + np.log(c) + 1
    tmax = (f64(snaps[1]).sum(axis=1).max() if probs else 1.0) + 1
    assert abs(loss - lref) <= 64 * eps * scale * tmax
    assert grad.dtype == dt and grad.shape == (n, c)
    assert_close(grad, gref, 16 * eps * tmax * (np.abs(gref).max() + 1.0 / n))


LOSSES = ("mse", "mae", "poisson", "sigmoid_binary_cross_entropy", "binary_cross_entropy")


@SETTINGS
@given(data=st.data(), shape=st.sampled_from([(1,), (7,), (5, 1), (4, 3), (13, 2)]),
       dt=dtypes, name=st.sampled_from(LOSSES), column=st.booleans(),
       t_kind=st.sampled_from(["float", "int", "bool"]))
def test_fuzz_elementwise_losses(data, shape, dt, name, column, t_kind):
    x = data.draw(arrays(shape, dt, scale=2.0))
    if name == "binary_cross_entropy":
        x = np.clip(np.abs(f64(x)) / 4, 0, 1).astype(dt)[..., ::1]
    t_shape = shape
    if column and len(shape) == 2 and shape[1] == 1:
        t_shape = (shape[0],)            # (n, 1) predictions with (n,) targets
    elif column and len(shape) == 1:
        t_shape = (shape[0], 1)
    t = np.abs(data.draw(arrays(t_shape, F64, scale=1.0)))
    if t_kind == "int":
        t = np.rint(t).astype(np.int64) if name == "poisson" else (t > 0.5).astype(np.int32)
    elif t_kind == "bool":
        t = t > 0.5
    elif name != "poisson":
        t = np.clip(t, 0, 1)
    snaps = snapshot(x, t)
    loss, grad = getattr(ops, name)(x, t)
    assert_unchanged([x, t], snaps)
    kw = {"eps": float(np.finfo(dt).eps)} if name == "binary_cross_entropy" else {}
    lref, gref = getattr(R, name)(f64(snaps[0]), f64(snaps[1]), **kw)
    x64, t64 = f64(snaps[0]), f64(snaps[1]).reshape(shape)
    eps = np.finfo(dt).eps
    if name == "binary_cross_entropy":
        p = np.clip(x64, eps, 1 - eps)
        terms = t64 / p + (1 - t64) / (1 - p)
        lterms = -np.log(p) - np.log(1 - p)
    else:
        terms = np.abs(x64) + np.abs(t64) + 1 + (np.exp(x64) if name == "poisson" else 0)
        lterms = terms ** 2
    assert abs(loss - lref) <= 16 * eps * lterms.mean() + 1e-300, (loss, lref)
    assert grad.shape == x.shape and grad.dtype == dt
    assert_close(grad, gref, 8 * eps * terms / x.size + 4 * np.finfo(dt).tiny)


# ---------------------------------------------------------------- bias_grad, linear_backward

@SETTINGS
@given(data=st.data(), n=dims, k=st.integers(1, 23), c=st.integers(1, 23), dt=dtypes,
       need_x=st.booleans(), outs=st.booleans())
def test_fuzz_linear_backward_and_bias_grad(data, n, k, c, dt, need_x, outs):
    x = data.draw(arrays((n, k), dt))
    w = data.draw(arrays((k, c), dt))
    gy = data.draw(arrays((n, c), dt))
    snaps = snapshot(x, w, gy)
    kw = {}
    if outs:
        kw = dict(grad_w_out=data.draw(arrays((k, c), dt, writeable=True)),
                  grad_b_out=data.draw(arrays((c,), dt, writeable=True)))
        if need_x:
            kw["grad_x_out"] = data.draw(arrays((n, k), dt, writeable=True))
    gx, gw, gb = ops.linear_backward(x, w, gy, need_grad_x=need_x, **kw)
    assert_unchanged([x, w, gy], snaps)
    for name, o in kw.items():
        assert {"grad_x_out": gx, "grad_w_out": gw, "grad_b_out": gb}[name] is o
    rx, rw, rb = R.linear_backward(*snaps, need_grad_x=need_x)
    x64, w64, g64 = (np.abs(f64(a)) for a in snaps)
    eps = np.finfo(dt).eps
    if need_x:
        assert_close(gx, rx, 2 * eps * (c + 2) * (g64 @ w64.T) + 1e-300, "grad_x")
    else:
        assert gx is None
    assert_close(gw, rw, 2 * eps * (n + 2) * (x64.T @ g64) + 1e-300, "grad_w")
    assert_close(gb, rb, 4 * eps * (g64.sum(axis=0) + 1e-300), "grad_b")
    assert_close(ops.bias_grad(gy), rb, 4 * eps * (g64.sum(axis=0) + 1e-300), "bias_grad")


# ---------------------------------------------------------------- dropout

@SETTINGS
@given(data=st.data(), shape=shapes, dt=dtypes, p=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       seed=st.integers(0, 2 ** 64 - 1), out_kind=st.sampled_from(["none", "array", "inplace"]))
def test_fuzz_dropout(data, shape, dt, p, seed, out_kind):
    x = data.draw(arrays(shape, dt, special=True, writeable=out_kind == "inplace"))
    x0 = snapshot(x)[0]
    with np.errstate(invalid="ignore"):
        ref = R.dropout(x0, p, seed=seed)
    out = {"none": None, "inplace": x,
           "array": out_array(data.draw, shape, dt, "array")}[out_kind]
    with np.errstate(invalid="ignore"):
        res = ops.dropout(x, p, seed=seed, out=out)
        back = ops.dropout_backward(x0, p, seed=seed)
    if out is not None:
        assert res is out
    else:
        assert_unchanged([x], [x0])
    # exact: x * (1/(1-p) rounded to the dtype) where kept, x * 0 where dropped
    if p == 0:
        want = x0
    else:
        keep = R.dropout_keep_mask(x0.size, p, seed, dt).reshape(x0.shape)
        with np.errstate(invalid="ignore"):
            want = np.where(keep, x0 * dt.type(1.0 / (1.0 - p)), x0 * dt.type(0))
    assert res.dtype == dt and back.dtype == dt
    assert np.array_equal(res, want, equal_nan=True)
    assert np.array_equal(back, want, equal_nan=True)
    with np.errstate(invalid="ignore"):
        assert_close(res, ref.astype(dt), 2 * np.finfo(dt).eps * np.abs(ref))


# ---------------------------------------------------------------- batch norm, layer norm

@settings(max_examples=30, deadline=None)
@given(data=st.data(), n=st.integers(2, 20), c=st.integers(1, 20), dt=dtypes,
       training=st.booleans(), affine=st.booleans(), out_kind=st.sampled_from(["none", "array"]))
def test_fuzz_batch_norm(data, n, c, dt, training, affine, out_kind):
    x = data.draw(arrays((n, c), dt))
    assume(not training or np.ptp(f64(x), axis=0).min() > 1e-3)   # broadcast rows: var 0
    gamma = data.draw(arrays((c,), dt)) if affine else None
    beta = data.draw(arrays((c,), dt)) if affine else None
    rm, rv = np.zeros(c), np.ones(c) + np.arange(c) / c
    snaps = snapshot(x, *([gamma, beta] if affine else []))
    out = out_array(data.draw, (n, c), dt, out_kind)
    y, cache = ops.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                                      out=out)
    assert_unchanged([x] + ([gamma, beta] if affine else []), snaps)
    ry, rcache = R.batch_norm_forward(f64(snaps[0]), None if gamma is None else snaps[1],
                                      None if beta is None else snaps[2], rm.copy(), rv.copy(),
                                      training=training)
    eps = np.finfo(dt).eps
    g = 1.0 if gamma is None else np.abs(f64(snaps[1]))
    xs = np.abs(f64(snaps[0]) - rcache["mean"]) / np.sqrt(rcache["var"] + 1e-5) + 1
    assert_close(y, ry, 64 * eps * (g * xs + np.abs(ry)), "y")
    gy = data.draw(arrays((n, c), dt))
    gy0 = snapshot(gy)[0]
    gx, gg, gb = ops.batch_norm_backward(gy, cache)
    assert_unchanged([gy], [gy0])
    rx, rg, rb = R.batch_norm_backward(f64(gy0), rcache)
    big = np.abs(f64(gy0)).sum(axis=0) * xs.max(axis=0)
    assert_close(gb, rb, 64 * eps * (np.abs(f64(gy0)).sum(axis=0) + 1e-30), "grad_beta")
    assert_close(gg, rg, 64 * eps * big, "grad_gamma")
    inv = 1 / np.sqrt(rcache["var"] + 1e-5)
    assert_close(gx, rx, 64 * eps * g * inv * (np.abs(f64(gy0)) + big / n) * xs, "grad_x")


@settings(max_examples=30, deadline=None)
@given(data=st.data(), n=st.integers(0, 20), c=st.integers(2, 20), dt=dtypes,
       affine=st.booleans())
def test_fuzz_layer_norm(data, n, c, dt, affine):
    x = data.draw(arrays((n, c), dt))
    # a row of equal values (broadcast along columns cannot happen: axis 0 only)
    gamma = data.draw(arrays((c,), dt)) if affine else None
    beta = data.draw(arrays((c,), dt)) if affine else None
    snaps = snapshot(x, *([gamma, beta] if affine else []))
    y, cache = ops.layer_norm_forward(x, gamma, beta)
    assert_unchanged([x] + ([gamma, beta] if affine else []), snaps)
    ry, rcache = R.layer_norm_forward(f64(snaps[0]), None if gamma is None else snaps[1],
                                      None if beta is None else snaps[2])
    eps = np.finfo(dt).eps
    g = 1.0 if gamma is None else np.abs(f64(snaps[1]))
    xs = np.abs(f64(snaps[0]) - rcache["mean"]) / np.sqrt(rcache["var"] + 1e-5) + 1
    assert_close(y, ry, 64 * eps * (g * xs + np.abs(ry)), "y")
    gy = data.draw(arrays((n, c), dt))
    gy0 = snapshot(gy)[0]
    gx, gg, gb = ops.layer_norm_backward(gy, cache)
    assert_unchanged([gy], [gy0])
    rx, rg, rb = R.layer_norm_backward(f64(gy0), rcache)
    a = np.abs(f64(gy0))
    assert_close(gb, rb, 64 * eps * (a.sum(axis=0) + 1e-30), "grad_beta")
    assert_close(gg, rg, 64 * eps * (a * xs).sum(axis=0) + 1e-30, "grad_gamma")
    inv = 1 / np.sqrt(rcache["var"] + 1e-5)
    row = (a * g).sum(axis=1, keepdims=True) * xs.max(axis=1, keepdims=True) ** 2 / c
    assert_close(gx, rx, 64 * eps * inv * (a * g + row) * xs + 1e-30, "grad_x")


# ---------------------------------------------------------------- optimizers, grad_norm

@SETTINGS
@given(data=st.data(), n=st.integers(0, 40), dt=dtypes,
       method=st.sampled_from(ops.OPTIMIZERS), clip=st.sampled_from([None, 0.5]),
       steps=st.integers(1, 3))
def test_fuzz_optimizer_strided_grads(data, n, dt, method, clip, steps):
    p = np.array(data.draw(arrays((n,), dt)), order="C", copy=True)   # updated in place
    state = [np.zeros(n, dt) for _ in ops.OPTIMIZER_STATE[method]]
    p_ref, s_ref = f64(p), [np.zeros(n) for _ in state]
    kw = {"clip_norm": clip, "weight_decay": 0.01}
    if method in ("adam", "amsgrad", "adamw", "adamax"):
        kw["lr"] = 0.01
    for t in range(1, steps + 1):
        g = data.draw(arrays((n,), dt))          # any layout: grads are only read
        g0 = snapshot(g)[0]
        if method in ("adam", "amsgrad", "adamw", "adamax"):
            kw["step"] = t
        norm = ops.optimizer_step(method, p, g, state, **kw)
        assert_unchanged([g], [g0])
        rnorm = R.optimizer_step(method, p_ref, f64(g0), s_ref, **kw)
        if clip is not None:
            assert norm == pytest.approx(rnorm, rel=16 * float(np.finfo(dt).eps), abs=1e-30)
        assert ops.grad_norm(g) == pytest.approx(R.grad_norm(g0), abs=1e-30,
                                                 rel=16 * float(np.finfo(dt).eps))
    eps = np.finfo(dt).eps
    # a few steps of size <= lr (Adam family) or lr * |g'| (others): error ~ steps * eps * scale
    scale = np.abs(p_ref) + 10 * steps * (np.abs(f64(p)).max(initial=0) + 1)
    assert_close(p, p_ref, 64 * steps * eps * scale)
