"""GEMM layer: fastmlp.matmul, fastmlp.ops.gemm / linear and the compiled core.

Every result is checked against a float64 NumPy product with a rigorous
forward-error bound (Higham, Accuracy and Stability, §3.5): for
C = alpha * op(A) @ op(B) + beta * C0,

    |C - ref| <= (k + 4) * eps * (|alpha| |op(A)| @ |op(B)| + |beta| |C0|) + tiny

which holds for any summation order, blocking, FMA use or thread split, and
is tight enough that a dropped or doubled term, a wrong stride, a stale tile
or a half-applied alpha/beta is caught.
"""
import concurrent.futures
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp import _reference, ops
from fastmlp._core import _gemm

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F32, F64]
ACT_NAMES = [None, "identity", "relu", "leaky_relu", "sigmoid", "logistic", "tanh"]
# One name per distinct activation code (for the compiled-core tests).
ACT_CODES = {"none": None, "relu": "relu", "leaky_relu": "leaky_relu",
             "sigmoid": "sigmoid", "tanh": "tanh"}


# ---------------------------------------------------------------- helpers

def _f64(x):
    return np.asarray(x, dtype=np.float64)


def make(rng, shape, dtype, order="C"):
    """Random matrix: standard normal values with a spread of magnitudes."""
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-1, 1, size=shape)
    return np.asarray(x, dtype=dtype, order=order)


def gemm_ref_and_bound(opa, opb, alpha=1.0, beta=0.0, c0=None, dtype=None):
    """float64 reference of alpha*opa@opb + beta*c0 and the error bound for `dtype`."""
    eps = np.finfo(dtype).eps
    k = opa.shape[1]
    a64, b64 = _f64(opa), _f64(opb)
    ref = alpha * (a64 @ b64)
    mag = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if c0 is not None and beta != 0:
        ref = ref + beta * _f64(c0)
        mag = mag + abs(beta) * np.abs(_f64(c0))
    bound = (k + 4) * eps * mag + 16 * np.finfo(dtype).tiny
    return ref, bound


def assert_gemm(result, opa, opb, alpha=1.0, beta=0.0, c0=None, dtype=None):
    dtype = np.dtype(dtype or result.dtype)
    assert result.dtype == dtype
    assert result.shape == (opa.shape[0], opb.shape[1])
    ref, bound = gemm_ref_and_bound(opa, opb, alpha, beta, c0, dtype)
    res = _f64(result)
    assert np.isfinite(res).all(), "non-finite values in the result"
    err = np.abs(res - ref)
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        pytest.fail(f"{int(bad.sum())} of {bad.size} elements exceed the error bound; "
                    f"worst at {i}: got {res[i]!r}, expected {ref[i]!r}, bound {bound[i]!r}")


def linear_tol(x, w, b, dtype):
    """Tolerance for act(x @ w + b): every activation is 1-Lipschitz, so the
    error of z carries over; float32 ~1e-5 relative + 1e-6, float64 ~1e-12."""
    k = x.shape[1]
    eps = np.finfo(dtype).eps
    if dtype == F32:
        rtol, atol = max(1e-5, (k + 4) * eps), 1e-6
    else:
        rtol, atol = max(1e-12, (k + 4) * eps), 1e-12
    mag = np.abs(_f64(x)) @ np.abs(_f64(w))
    if b is not None:
        mag = mag + np.abs(_f64(b))
    return rtol * mag + atol


def assert_linear(out, x, w, b, activation, slope=0.01):
    dtype = out.dtype
    ref = _reference.linear(_f64(x), _f64(w), None if b is None else _f64(b), activation,
                            alpha=slope)
    tol = linear_tol(x, w, b, dtype)
    res = _f64(out)
    assert np.isfinite(res).all(), "non-finite values in the result"
    err = np.abs(res - ref)
    bad = err > tol
    if bad.any():
        i = np.unravel_index(np.argmax(err - tol), err.shape)
        pytest.fail(f"{activation}: {int(bad.sum())} of {bad.size} elements off; worst at {i}: "
                    f"got {res[i]!r}, expected {ref[i]!r}, tol {tol[i]!r}")


def usable_archs():
    return [code for code in _gemm.arch_names() if _gemm.arch_usable(code)]


def arch_id(code):
    return _gemm.arch_names()[code]


# ---------------------------------------------------------------- matmul: shapes and dtypes

SHAPES = [(0, 5, 3), (5, 0, 3), (3, 5, 0), (1, 1, 1), (7, 13, 5), (97, 131, 61),
          (1000, 1, 1000), (1, 1000, 1),
          (150, 2100, 70),   # k > KC = 1024 (three K blocks), m > MC (both dtypes)
          (13, 1100, 1100)]  # n > NC = 1024, k > KC


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_shapes(rng, shape, dtype):
    m, k, n = shape
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    a0, b0 = a.copy(), b.copy()
    c = fastmlp.matmul(a, b)
    assert isinstance(c, np.ndarray) and c.shape == (m, n) and c.dtype == dtype
    assert_gemm(c, a, b)
    if k == 0:
        assert np.array_equal(c, np.zeros((m, n), dtype))
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_blocking_matches_the_shapes_above():
    # The cache-crossing shapes in SHAPES assume these blocks: if the tables
    # change, these shapes must be revisited.
    for double in (False, True):
        info = _gemm.gemm_info(double)
        assert 2 * info["kc"] < 2100 and info["kc"] < 1100
        assert info["mc"] < 150
        assert info["nc"] < 1100


@pytest.mark.parametrize("a_dt,b_dt", [(F32, F64), (F64, F32)], ids=["f32xf64", "f64xf32"])
def test_mixed_dtypes_give_float64(rng, a_dt, b_dt):
    a, b = make(rng, (23, 41), a_dt), make(rng, (41, 19), b_dt)
    c = fastmlp.matmul(a, b)
    assert c.dtype == F64
    assert_gemm(c, a, b, dtype=F64)
    g = ops.gemm(a.T, b, trans_a=True, alpha=-2.0)
    assert g.dtype == F64
    assert_gemm(g, a, b, alpha=-2.0, dtype=F64)


def test_matmul_accepts_nested_lists():
    c = fastmlp.matmul([[1.0, 2.0], [3.0, 4.0]], np.array([[5.0], [6.0]]))
    assert c.dtype == F64
    assert np.array_equal(c, np.array([[17.0], [39.0]]))


def test_matmul_exact_small_integers(rng):
    # Integer-valued floats: every partial sum is exact, so the result must be too.
    a = rng.integers(-8, 9, size=(37, 53)).astype(np.float32)
    b = rng.integers(-8, 9, size=(53, 29)).astype(np.float32)
    expected = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float32)
    assert np.array_equal(fastmlp.matmul(a, b), expected)


# ---------------------------------------------------------------- gemm: transposes and memory orders

ORDERS = ["C", "F"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("c_order", ORDERS)
@pytest.mark.parametrize("b_order", ORDERS)
@pytest.mark.parametrize("a_order", ORDERS)
@pytest.mark.parametrize("trans_b", [False, True], ids=["N", "T"])
@pytest.mark.parametrize("trans_a", [False, True], ids=["N", "T"])
def test_gemm_trans_and_orders(rng, trans_a, trans_b, a_order, b_order, c_order, dtype):
    for m, k, n in [(37, 29, 23), (20, 270, 35)]:
        a = make(rng, (k, m) if trans_a else (m, k), dtype, a_order)
        b = make(rng, (n, k) if trans_b else (k, n), dtype, b_order)
        c0 = make(rng, (m, n), dtype, c_order)
        c = c0.copy(order=c_order)
        out = ops.gemm(a, b, c, alpha=1.5, beta=-0.5, trans_a=trans_a, trans_b=trans_b)
        assert out is c
        assert_gemm(c, a.T if trans_a else a, b.T if trans_b else b, 1.5, -0.5, c0)
        # c=None: a new array (beta irrelevant)
        new = ops.gemm(a, b, alpha=0.75, beta=3.0, trans_a=trans_a, trans_b=trans_b)
        assert new.shape == (m, n) and new.dtype == dtype
        assert_gemm(new, a.T if trans_a else a, b.T if trans_b else b, 0.75)


# ---------------------------------------------------------------- strided, broadcast, read-only inputs

VIEWS = {
    "step2x3": lambda x: x[::2, ::3],
    "rows_reversed": lambda x: x[::-1],
    "cols_reversed": lambda x: x[:, ::-1],
    "both_reversed_step": lambda x: x[::-2, ::-3],
    "transposed_slice": lambda x: x.T[1::2, ::-1],
}


def _view_of_shape(rng, view, shape, dtype):
    """A view of `shape` built by `view` on a bigger random buffer."""
    rows, cols = 4 * shape[0] + 3, 4 * shape[1] + 3
    if view == "transposed_slice":
        rows, cols = cols, rows
    v = VIEWS[view](make(rng, (rows, cols), dtype))[:shape[0], :shape[1]]
    assert v.shape == tuple(shape)
    return v


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("view", list(VIEWS))
def test_strided_inputs(rng, view, dtype):
    m, k, n = 31, 45, 27
    a = _view_of_shape(rng, view, (m, k), dtype)
    b = _view_of_shape(rng, view, (k, n), dtype)
    assert not a.flags.c_contiguous and not a.flags.f_contiguous
    assert_gemm(fastmlp.matmul(a, b), a, b)
    # the same views fed transposed
    at = _view_of_shape(rng, view, (k, m), dtype)
    bt = _view_of_shape(rng, view, (n, k), dtype)
    c0 = make(rng, (m, n), dtype)
    c = c0.copy()
    ops.gemm(at, bt, c, alpha=-0.7, beta=0.25, trans_a=True, trans_b=True)
    assert_gemm(c, at.T, bt.T, -0.7, 0.25, c0)


def test_misaligned_input_view(rng):
    # A float64 view at a 4-byte offset into a buffer: not element-aligned.
    raw = np.zeros(8 * 20 * 30 + 8, dtype=np.uint8)
    a = np.ndarray((20, 30), np.float64, buffer=raw, offset=4)
    assert not a.flags.aligned
    a[...] = make(rng, (20, 30), F64)
    b = make(rng, (30, 9), F64)
    assert_gemm(fastmlp.matmul(a, b), a, b)


BROADCASTS = {
    "a_row": lambda rng, m, k, n, dt: (np.broadcast_to(make(rng, (1, k), dt), (m, k)),
                                       make(rng, (k, n), dt)),
    "a_col": lambda rng, m, k, n, dt: (np.broadcast_to(make(rng, (m, 1), dt), (m, k)),
                                       make(rng, (k, n), dt)),
    "b_row": lambda rng, m, k, n, dt: (make(rng, (m, k), dt),
                                       np.broadcast_to(make(rng, (1, n), dt), (k, n))),
    "b_col": lambda rng, m, k, n, dt: (make(rng, (m, k), dt),
                                       np.broadcast_to(make(rng, (k, 1), dt), (k, n))),
    "both_scalar": lambda rng, m, k, n, dt: (np.broadcast_to(dt.type(1.5), (m, k)),
                                             np.broadcast_to(dt.type(-0.25), (k, n))),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", list(BROADCASTS))
@pytest.mark.parametrize("shape", [(29, 37, 21), (13, 1, 19), (8, 300, 17)],
                         ids=lambda s: "x".join(map(str, s)))
def test_broadcast_inputs(rng, kind, shape, dtype):
    m, k, n = shape
    a, b = BROADCASTS[kind](rng, m, k, n, dtype)
    assert 0 in a.strides or 0 in b.strides
    assert_gemm(fastmlp.matmul(a, b), a, b)
    # transposed zero-stride views through gemm
    c0 = make(rng, (m, n), dtype)
    c = c0.copy()
    ops.gemm(b.T, a.T, c.T, alpha=2.0, beta=-1.0)  # c.T = b.T @ a.T  <=>  c = a @ b
    assert_gemm(c, a, b, 2.0, -1.0, c0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_read_only_inputs_untouched(rng, dtype):
    m, k, n = 25, 33, 18
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype, "F")
    bias = make(rng, (n,), dtype)
    a0, b0, bias0 = a.copy(), b.copy(), bias.copy()
    for x in (a, b, bias):
        x.flags.writeable = False
    assert_gemm(fastmlp.matmul(a, b), a, b)
    assert_gemm(ops.gemm(b, a, trans_a=True, trans_b=True), b.T, a.T)
    assert_linear(ops.linear(a, b, bias, "tanh"), a, b, bias, "tanh")
    assert np.array_equal(a, a0) and np.array_equal(b, b0) and np.array_equal(bias, bias0)


# ---------------------------------------------------------------- non-contiguous c / out

C_VIEWS = {
    # name: (buffer order, view of the buffer)
    "rows_cols_stepped": ("C", lambda buf, m, n: buf[1:1 + 3 * m:3, 3:3 + 2 * n:2]),
    "wider_rows": ("C", lambda buf, m, n: buf[2:2 + m, 1:1 + n]),  # unit column stride, ld > n
    "fortran_slice": ("F", lambda buf, m, n: buf[1:1 + m, 2:2 + n]),
    "fortran_stepped": ("F", lambda buf, m, n: buf[2:2 + 2 * m:2, 1:1 + 3 * n:3]),
    "reversed": ("C", lambda buf, m, n: buf[::-1, ::-1][1:1 + m, 2:2 + n]),
    "rows_reversed": ("C", lambda buf, m, n: buf[::-2][:m, 3:3 + n]),
    "transposed": ("C", lambda buf, m, n: buf.T[1:1 + m, ::2][:, :n]),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cview", list(C_VIEWS))
@pytest.mark.parametrize("shape", [(19, 23, 37), (1, 5, 9), (40, 300, 3)],
                         ids=lambda s: "x".join(map(str, s)))
def test_noncontiguous_c_leaves_rest_of_buffer(rng, cview, shape, dtype):
    m, k, n = shape
    order, view = C_VIEWS[cview]
    buf = make(rng, (3 * max(m, n) + 8, 3 * max(m, n) + 8), dtype, order)
    before = buf.copy(order="K")
    c = view(buf, m, n)
    assert c.shape == (m, n) and np.shares_memory(c, buf)
    mask = np.zeros(buf.shape, bool)
    view(mask, m, n)[...] = True
    c0 = c.copy()
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    for alpha, beta in [(1.25, 0.5), (1.0, 0.0)]:
        c0 = c.copy()
        res = ops.gemm(a, b, c, alpha=alpha, beta=beta)
        assert res is c
        assert_gemm(c, a, b, alpha, beta, c0)
        assert np.array_equal(buf[~mask], before[~mask]), "gemm wrote outside the view of c"
    out = fastmlp.matmul(a, b, out=c)
    assert out is c
    assert_gemm(c, a, b)
    bias = make(rng, (n,), dtype)
    out = ops.linear(a, b, bias, "relu", out=c)
    assert out is c
    assert_linear(c, a, b, bias, "relu")
    assert np.array_equal(buf[~mask], before[~mask]), "wrote outside the view of c"


# ---------------------------------------------------------------- alpha / beta

ALPHA_BETA = [(1.0, 0.0), (2.5, 0.0), (-1.0, 0.5), (0.3, 1.0), (0.0, 0.7), (0.0, 0.0),
              (-0.125, -2.0), (1.0, 1.0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
@pytest.mark.parametrize("shape", [(31, 47, 29), (150, 600, 70), (6, 0, 16)],
                         ids=lambda s: "x".join(map(str, s)))
def test_alpha_beta(rng, shape, alpha, beta, dtype):
    m, k, n = shape
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    c0 = make(rng, (m, n), dtype)
    c = c0.copy()
    ops.gemm(a, b, c, alpha=alpha, beta=beta)
    assert_gemm(c, a, b, alpha, beta, c0)
    if alpha == 0 or k == 0:
        # nothing to multiply: result is beta * c, to the last rounding
        assert np.allclose(c, beta * _f64(c0), rtol=2 * np.finfo(dtype).eps, atol=0)
    if alpha == 0 and beta == 0:
        assert np.array_equal(c, np.zeros_like(c))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(13, 21, 17), (6, 8, 16), (4, 0, 3), (40, 300, 9)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("c_order", ORDERS)
def test_beta_zero_ignores_nan_in_c(rng, shape, fill, dtype, c_order):
    m, k, n = shape
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    c = np.full((m, n), fill, dtype=dtype, order=c_order)
    ops.gemm(a, b, c, alpha=0.5, beta=0.0)
    assert_gemm(c, a, b, 0.5)
    c[...] = fill
    ops.gemm(a, b, c, alpha=0.0, beta=0.0)
    assert np.array_equal(c, np.zeros_like(c))
    out = np.full((m, n), fill, dtype=dtype, order=c_order)
    fastmlp.matmul(a, b, out=out)
    assert_gemm(out, a, b)
    out[...] = fill
    ops.linear(a, b, None, "relu", out=out)
    assert_linear(out, a, b, None, "relu")


def test_alpha_beta_accept_numpy_and_int_scalars(rng):
    a, b = make(rng, (9, 7), F64), make(rng, (7, 5), F64)
    c0 = make(rng, (9, 5), F64)
    c = c0.copy()
    ops.gemm(a, b, c, alpha=np.float32(2.0), beta=np.int64(-1))
    assert_gemm(c, a, b, 2.0, -1.0, c0)
    c = c0.copy()
    ops.gemm(a, b, c, alpha=3, beta=2)
    assert_gemm(c, a, b, 3.0, 2.0, c0)


# ---------------------------------------------------------------- out= and aliasing

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("out_kind", ["C", "F", "strided", "misaligned"])
def test_matmul_out(rng, out_kind, dtype):
    m, k, n = 33, 57, 26
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    if out_kind == "strided":
        out = np.full((2 * m, 3 * n), np.nan, dtype)[::2, ::3]
    elif out_kind == "misaligned":
        raw = np.zeros(m * n * dtype.itemsize + 8, np.uint8)
        out = np.ndarray((m, n), dtype, buffer=raw, offset=1)
        assert not out.flags.aligned
    else:
        out = np.full((m, n), np.nan, dtype, order=out_kind)
    res = fastmlp.matmul(a, b, out=out)
    assert res is out
    assert_gemm(out, a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [1, 7, 37, 100])
def test_matmul_out_aliases_input(rng, n, dtype):
    a = make(rng, (n, n), dtype)
    a0 = a.copy()
    res = fastmlp.matmul(a, a, out=a)
    assert res is a
    assert_gemm(a, a0, a0)

    a = a0.copy()
    b = make(rng, (n, n), dtype, "F")
    b0 = b.copy()
    assert fastmlp.matmul(a, b, out=b) is b
    assert_gemm(b, a0, b0)

    # out is the transpose of an input (same memory, other layout)
    a = a0.copy()
    out = a.T
    assert fastmlp.matmul(a, b0, out=out) is out
    assert_gemm(out, a0, b0)


def test_needs_temp_is_numpys_bounds_test():
    """ops decides whether `out` can be written in place with one compiled
    bounds test (_gemm.needs_temp): it must agree with numpy.may_share_memory
    (also a bounds test) on views with strides of any sign, empty views and
    unrelated arrays, skip None, and refuse misaligned or fractional-stride outs."""
    base = np.zeros((40, 50))
    views = [base, base[::2], base[:, ::-1], base[5:9, 7:30], base.T, base[::-3, 1::4],
             base[10:10], base[:, 3], base[39, 49:], np.zeros(5), base[20:, :].T]
    for o in views:
        for x in views:
            assert _gemm.needs_temp(o, (x,)) == np.may_share_memory(o, x)
        assert _gemm.needs_temp(o, (None, np.zeros(3))) is False
    raw = np.zeros(8 * 11, np.uint8)
    misaligned = raw[1:81].view(np.float64)
    assert not misaligned.flags.aligned
    assert _gemm.needs_temp(misaligned, ())
    fractional = np.lib.stride_tricks.as_strided(base, shape=(3, 3), strides=(12, 8))
    assert _gemm.needs_temp(fractional, ())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_out_partially_overlaps_input(rng, dtype):
    m, k, n = 20, 15, 12
    buf = make(rng, (m + 10, max(k, n)), dtype)
    a = buf[3:3 + m, :k]
    out = buf[:m, :n]
    a0 = a.copy()
    b = make(rng, (k, n), dtype)
    assert fastmlp.matmul(a, b, out=out) is out
    assert_gemm(out, a0, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_c_aliases_input(rng, trans_a, dtype):
    n = 29
    a = make(rng, (n, n), dtype)
    b = make(rng, (n, n), dtype)
    a0 = a.copy()
    res = ops.gemm(a, b, a, alpha=0.5, beta=-1.5, trans_a=trans_a)
    assert res is a
    assert_gemm(a, a0.T if trans_a else a0, b, 0.5, -1.5, a0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear_out_aliases_input(rng, dtype):
    n = 23
    x = make(rng, (n, n), dtype)
    w = make(rng, (n, n), dtype)
    x0 = x.copy()
    bias = make(rng, (n,), dtype)
    assert ops.linear(x, w, bias, "tanh", out=x) is x
    assert_linear(x, x0, w, bias, "tanh")


# ---------------------------------------------------------------- linear

LINEAR_SHAPES = [(1, 1, 1), (6, 16, 16), (7, 5, 17), (13, 37, 33), (50, 20, 100), (4, 0, 9)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ACT_NAMES, ids=str)
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear(rng, shape, activation, with_bias, dtype):
    m, k, n = shape
    x, w = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    bias = make(rng, (n,), dtype) if with_bias else None
    out = ops.linear(x, w, bias, activation)
    assert out.shape == (m, n) and out.dtype == dtype
    assert_linear(out, x, w, bias, activation)
    if activation in ("sigmoid", "logistic"):
        assert ((out >= 0) & (out <= 1)).all()
    if activation == "tanh":
        assert (np.abs(out) <= 1).all()
    if activation == "relu":
        assert (out >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("slope", [0.2, 0.0, 1.5])
def test_linear_leaky_relu_slope(rng, slope, dtype):
    x, w, bias = make(rng, (17, 11), dtype), make(rng, (11, 21), dtype), make(rng, (21,), dtype)
    out = ops.linear(x, w, bias, "leaky_relu", alpha=slope)
    assert_linear(out, x, w, bias, "leaky_relu", slope)
    default = ops.linear(x, w, bias, "leaky_relu")
    assert_linear(default, x, w, bias, "leaky_relu", 0.01)
    neg = (x.astype(np.float64) @ w + bias) < -1e-3
    assert neg.any()
    if slope != 0.01:
        assert not np.array_equal(out[neg], default[neg])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("activation", ["identity", "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("out_kind", ["F", "strided", "F_strided"])
def test_linear_out_layouts(rng, out_kind, activation, with_bias, dtype):
    m, k, n = 19, 26, 35
    x, w = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    bias = make(rng, (n,), dtype) if with_bias else None
    if out_kind == "F":
        out = np.full((m, n), np.nan, dtype, order="F")
    elif out_kind == "strided":
        out = np.full((2 * m, 2 * n), np.nan, dtype)[::2, 1::2]
    else:
        out = np.full((3 * m, 2 * n), np.nan, dtype, order="F")[1::3, ::2]
    res = ops.linear(x, w, bias, activation, out=out)
    assert res is out
    assert_linear(out, x, w, bias, activation)


def test_linear_mixed_dtypes(rng):
    x, w, bias = make(rng, (9, 14), F32), make(rng, (14, 10), F64), make(rng, (10,), F32)
    out = ops.linear(x, w, bias, "sigmoid")
    assert out.dtype == F64
    assert_linear(out, x, w, bias, "sigmoid")
    out = ops.linear(x, x.T.copy(), make(rng, (9,), F64), "relu")
    assert out.dtype == F64


def test_linear_strided_bias(rng):
    x, w = make(rng, (10, 8), F32), make(rng, (8, 12), F32)
    bias = make(rng, (36,), F32)[::-3]
    assert_linear(ops.linear(x, w, bias, "tanh"), x, w, bias, "tanh")


LARGE_Z = np.array([100.0, -100.0, 1e4, -1e4, 50.0, -50.0, 20.0, -20.0, 89.0, -89.0,
                    0.0, 1e-3, -1e-3, 1e30, -1e30])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", ["sigmoid", "logistic", "tanh"])
@pytest.mark.parametrize("via", ["x", "bias"])
def test_linear_saturating_activations_large_z(activation, via, dtype):
    z = LARGE_Z.astype(dtype)
    n = 19  # not a multiple of NR: edge tiles too
    if via == "x":
        # z in rows: x (m, 1), w = ones (1, n)
        x = z[:, None].copy()
        w = np.ones((1, n), dtype)
        bias = None
        zz = np.repeat(z[:, None], n, axis=1)
    else:
        # z in columns through the bias
        x = np.zeros((7, 3), dtype)
        w = np.zeros((3, z.size), dtype)
        bias = z.copy()
        zz = np.broadcast_to(z, (7, z.size))
    out = ops.linear(x, w, bias, activation)
    assert not np.isnan(out).any()
    assert_linear(out, x, w, bias, activation)
    tol = 1e-6 if dtype == F32 else 1e-12
    big = np.abs(zz) >= 50
    if activation == "tanh":
        assert (np.abs(out) <= 1).all()
        assert np.all(np.abs(out[big] - np.sign(zz[big])) <= tol)
    else:
        assert ((out >= 0) & (out <= 1)).all()
        assert np.all(np.abs(out[big] - (zz[big] > 0)) <= tol)
    # exact 0 maps to 1/2 and 0
    zero = zz == 0
    assert np.all(out[zero] == (0.0 if activation == "tanh" else 0.5))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", ACT_NAMES, ids=str)
def test_linear_nan_propagates(rng, activation, dtype):
    m, k, n = 13, 20, 37
    x = make(rng, (m, k), dtype)
    w = make(rng, (k, n), dtype)
    bias = make(rng, (n,), dtype)
    x[5, 7] = np.nan
    for b in (bias, None):
        out = ops.linear(x, w, b, activation)
        assert np.isnan(out[5]).all(), f"{activation}: NaN in x row 5 lost in the output"
        rows = np.arange(m) != 5
        assert np.isfinite(out[rows]).all()
    # NaN in a column of w poisons that column; and a NaN bias its column
    x[5, 7] = 1.0
    w[3, 30] = np.nan
    out = ops.linear(x, w, bias, activation)
    assert np.isnan(out[:, 30]).all()
    assert np.isfinite(np.delete(out, 30, axis=1)).all()
    w[3, 30] = 1.0
    bias[2] = np.nan
    out = ops.linear(x, w, bias, activation)
    assert np.isnan(out[:, 2]).all()
    assert np.isfinite(np.delete(out, 2, axis=1)).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("activation", ACT_NAMES, ids=str)
def test_linear_k0_is_activation_of_bias(activation, dtype):
    bias = np.array([-3.0, -0.5, 0.0, 0.5, 3.0], dtype)
    out = ops.linear(np.empty((4, 0), dtype), np.empty((0, 5), dtype), bias, activation)
    expected = _reference.linear(np.zeros((4, 1)), np.zeros((1, 5)), bias.astype(np.float64),
                                 activation)
    assert np.allclose(out, expected, rtol=4 * np.finfo(dtype).eps, atol=0)


# ---------------------------------------------------------------- every kernel architecture

def test_arch_registry():
    names = _gemm.arch_names()
    assert "ref" in names.values()
    ref = [c for c, nm in names.items() if nm == "ref"][0]
    assert _gemm.arch_usable(ref) and _gemm.arch_compiled(ref)
    for code in names:
        if _gemm.arch_usable(code):
            assert _gemm.arch_compiled(code)
            for double in (False, True):
                info = _gemm.gemm_info(double, code)
                assert info["arch"] == names[code]
                assert info["name"].startswith(names[code])
                assert 1 <= info["mr"] <= 12 and 1 <= info["nr"] <= 32
                assert info["kc"] >= 1 and info["mc"] % info["mr"] == 0
                assert info["nc"] % info["nr"] == 0
    assert _gemm.best_arch() in usable_archs()
    assert _gemm.gemm_info(True)["arch"] == names[_gemm.best_arch()]
    cpu = fastmlp.get_config()["cpu_features"]
    avx2 = [c for c, nm in names.items() if nm == "avx2"]
    if avx2 and _gemm.arch_compiled(avx2[0]):
        assert _gemm.arch_usable(avx2[0]) == (cpu["avx2"] and cpu["fma"])


def test_unknown_or_unusable_arch_raises():
    a, b, c = np.ones((3, 4)), np.ones((4, 2)), np.zeros((3, 2))
    bad = [len(_gemm.arch_names()), 99, -7]
    bad += [code for code in _gemm.arch_names() if not _gemm.arch_usable(code)]
    for code in bad:
        with pytest.raises(ValueError, match="invalid argument"):
            _gemm.gemm(a, b, c, 1.0, 0.0, None, 0, 0.01, 1, code)
        with pytest.raises(ValueError):
            _gemm.gemm_info(True, code)
    with pytest.raises(ValueError, match="invalid argument"):
        _gemm.gemm(a, b, c, 1.0, 0.0, None, 17, 0.01, 1, _gemm.ARCH_REF)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("arch", usable_archs(), ids=arch_id)
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (97, 131, 61), (150, 600, 70),
                                   (13, 300, 4100), (5, 0, 3)],
                         ids=lambda s: "x".join(map(str, s)))
def test_each_arch_gemm(rng, shape, arch, dtype):
    m, k, n = shape
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    c0 = make(rng, (m, n), dtype)
    c = c0.copy()
    _gemm.gemm(a, b, c, -1.25, 0.5, None, 0, 0.01, 2, arch)
    assert_gemm(c, a, b, -1.25, 0.5, c0)
    # transposed / Fortran / strided operands, beta = 0 over NaN
    at = np.asfortranarray(a.T).T  # Fortran-ordered a
    bt = make(rng, (2 * n, k), dtype)[::-2].T  # strided, reversed, transposed b
    c = np.full((m, n), np.nan, dtype, order="F")
    _gemm.gemm(at, bt, c, 1.0, 0.0, None, 0, 0.01, 1, arch)
    assert_gemm(c, at, bt)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("arch", usable_archs(), ids=arch_id)
@pytest.mark.parametrize("act", list(ACT_CODES), ids=str)
def test_each_arch_fused_epilogue(rng, act, arch, dtype):
    m, k, n = 25, 270, 43
    name = ACT_CODES[act]
    x, w, bias = make(rng, (m, k), dtype), make(rng, (k, n), dtype), make(rng, (n,), dtype)
    out = np.full((m, n), np.nan, dtype)
    _gemm.gemm(x, w, out, 1.0, 0.0, bias, _gemm.ACTIVATIONS[name], 0.01, 2, arch)
    assert_linear(out, x, w, bias, name)
    # NaN in x propagates through every activation on every arch
    x[4, 100] = np.nan
    _gemm.gemm(x, w, out, 1.0, 0.0, bias, _gemm.ACTIVATIONS[name], 0.01, 2, arch)
    assert np.isnan(out[4]).all()
    assert np.isfinite(np.delete(out, 4, axis=0)).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_archs_agree(rng, dtype):
    archs = usable_archs()
    m, k, n = 61, 300, 47
    a, b, bias = make(rng, (m, k), dtype), make(rng, (k, n), dtype), make(rng, (n,), dtype)
    outs = []
    for arch in archs:
        c = np.empty((m, n), dtype)
        _gemm.gemm(a, b, c, 1.0, 0.0, bias, 0, 0.01, 1, arch)
        outs.append(c)
    _, bound = gemm_ref_and_bound(a, b, dtype=dtype)
    for c in outs[1:]:
        assert (np.abs(_f64(c) - outs[0]) <= 2 * bound + np.abs(bias) * 4 * np.finfo(dtype).eps).all()


def test_fastmlp_kernel_env_selects_ref(tmp_path):
    code = ("import fastmlp.ops as o; from fastmlp._core import _gemm; import numpy as np;"
            "print(_gemm.gemm_info(False)['arch'], _gemm.gemm_info(True)['arch']);"
            "a = np.arange(12.).reshape(3, 4); print(o.matmul(a, a.T).sum())")
    env = dict(os.environ, FASTMLP_KERNEL="ref")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "ref ref"
    a = np.arange(12.).reshape(3, 4)
    assert float(lines[1]) == (a @ a.T).sum()


SMALL_BLOCKS_SCRIPT = """
import numpy as np, fastmlp
from fastmlp import ops
from fastmlp._core import _gemm
for double in (False, True):
    info = _gemm.gemm_info(double)
    print(info["mc"], info["kc"], info["nc"], info["nr"])
rng = np.random.default_rng(3)
worst = 0.0
for i in range(60):
    m, k, n = (int(v) for v in rng.integers(1, 50, size=3))
    dt = (np.float32, np.float64)[i % 2]
    ta, tb = bool(i & 2), bool(i & 4)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
    c0 = rng.standard_normal((m, n)).astype(dt, order="CF"[(i >> 3) & 1])
    c = c0.copy(order="K")
    ops.gemm(a, b, c, alpha=1.5, beta=-0.5, trans_a=ta, trans_b=tb)
    A = (a.T if ta else a).astype(np.float64)
    B = (b.T if tb else b).astype(np.float64)
    ref = 1.5 * (A @ B) - 0.5 * c0
    bound = (k + 4) * np.finfo(dt).eps * (1.5 * (np.abs(A) @ np.abs(B)) + 0.5 * np.abs(c0))
    worst = max(worst, float(np.max(np.abs(c - ref) / (bound + 1e-300))))
    bias = rng.standard_normal(n).astype(dt)
    lin = ops.linear(A.astype(dt), B.astype(dt), bias, "relu")
    z = A @ B + bias
    worst = max(worst, float(np.max(np.abs(lin - np.maximum(z, 0))
                / ((k + 4) * np.finfo(dt).eps * (np.abs(A) @ np.abs(B) + np.abs(bias))))))
print(worst)
"""


def test_small_cache_blocks_from_environment(tmp_path):
    """FASTMLP_GEMM_MC/KC/NC shrink the cache blocks: many block boundaries
    (and KC = 7, not a multiple of the k-unroll) in small problems."""
    env = dict(os.environ, FASTMLP_GEMM_MC="12", FASTMLP_GEMM_KC="7", FASTMLP_GEMM_NC="40",
               OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", SMALL_BLOCKS_SCRIPT], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    for mc, kc, nc, nr in (lines[0:4], lines[4:8]):   # float32, float64
        nr = int(nr)
        assert (mc, kc) == ("12", "7")
        assert int(nc) == -(-40 // nr) * nr, (nc, nr)  # NC rounded up to a multiple of NR
    assert float(lines[8]) <= 1.0, f"error bound exceeded by a factor {lines[8]}"


# ---------------------------------------------------------------- micro-kernels

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [0, 1, 3, 257])
@pytest.mark.parametrize("act", list(ACT_CODES), ids=str)
@pytest.mark.parametrize("beta_kind", ["beta0_nan_c", "beta"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
def test_micro_kernel(rng, k, act, beta_kind, with_bias, dtype):
    double = dtype == F64
    name = ACT_CODES[act]
    code = _gemm.ACTIVATIONS[name]
    info = _gemm.gemm_info(double, _gemm.ARCH_REF)
    mr, nr = info["mr"], info["nr"]
    eps = np.finfo(dtype).eps
    a_panel = make(rng, (k * mr,), dtype)
    b_panel = make(rng, (k * nr,), dtype)
    bias = make(rng, (nr,), dtype) if with_bias else None
    alpha, slope = -1.3, 0.2
    if beta_kind == "beta":
        beta, c0 = 0.75, make(rng, (mr, nr), dtype)
    else:
        beta, c0 = 0.0, np.full((mr, nr), np.nan, dtype)

    A = _f64(a_panel).reshape(k, mr).T
    B = _f64(b_panel).reshape(k, nr)
    z = alpha * (A @ B)
    mag = abs(alpha) * (np.abs(A) @ np.abs(B))
    if beta != 0:
        z = z + beta * _f64(c0)
        mag = mag + abs(beta) * np.abs(_f64(c0))
    if bias is not None:
        z = z + _f64(bias)
        mag = mag + np.abs(_f64(bias))
    expected = _reference._act(z, name, slope)
    tol = (k + 4) * eps * mag + 8 * eps * np.abs(expected) + 16 * np.finfo(dtype).tiny

    results = {}
    for arch in usable_archs():
        ainfo = _gemm.gemm_info(double, arch)
        if (ainfo["mr"], ainfo["nr"]) != (mr, nr):
            continue
        # c: a C-contiguous tile at the start of a bigger buffer, to catch
        # stores past the tile
        buf = np.full(mr * nr + 2 * nr, 7.0, dtype)
        c = buf[:mr * nr].reshape(mr, nr)
        assert c.flags.c_contiguous and np.shares_memory(c, buf)
        c[...] = c0
        _gemm.ukr_call(arch, a_panel, b_panel, c, alpha, beta, bias, code, slope)
        assert (buf[mr * nr:] == 7.0).all(), "the micro-kernel wrote past the tile"
        res = _f64(c)
        assert np.isfinite(res).all()
        err = np.abs(res - expected)
        assert (err <= tol).all(), (arch_id(arch), np.max(err - tol))
        results[arch] = res
    assert _gemm.ARCH_REF in results
    ref = results[_gemm.ARCH_REF]
    for arch, res in results.items():
        assert (np.abs(res - ref) <= 2 * tol).all(), arch_id(arch)


def test_micro_kernel_avx2_present_when_cpu_supports_it():
    names = {nm: c for c, nm in _gemm.arch_names().items()}
    if "avx2" not in names or not _gemm.arch_usable(names["avx2"]):
        pytest.skip("no usable AVX2 kernel on this machine")
    for double in (False, True):
        info = _gemm.gemm_info(double, names["avx2"])
        ref = _gemm.gemm_info(double, names["ref"])
        # same register block, so the micro-kernel test above compares both
        assert (info["mr"], info["nr"]) == (ref["mr"], ref["nr"])


# ---------------------------------------------------------------- general micro-kernels

def _uint(x):
    return x.view(np.uint32 if x.dtype == F32 else np.uint64)


def _has_gen(arch, dtype):
    """Whether `arch` has a general kernel for `dtype` (a k = 0 call raises
    ValueError when it has none)."""
    nr = _gemm.gemm_info(dtype == F64, arch)["nr"]
    try:
        _gemm.gen_call(arch, np.zeros((1, 0), dtype), np.zeros(0, dtype), np.zeros((1, nr), dtype))
    except ValueError:
        return False
    return True


# The plain ones (no bias, no activation) take the kernels' fast store; the
# edge tiles always take the general epilogue: both must give the same bits.
GEN_EPILOGUES = [(1.0, 0.0, False, "none"), (-1.3, 0.75, True, "relu"),
                 (0.5, 0.0, True, "sigmoid"), (2.0, 1.0, False, "tanh"),
                 (1.0, -0.5, True, "leaky_relu"), (-0.7, 1.0, False, "none"),
                 (1.0, 0.25, False, "none")]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [0, 1, 5, 203])
@pytest.mark.parametrize("a_layout", ["packed", "rows"])
def test_general_kernel_equals_packed_kernel_bitwise(rng, k, a_layout, dtype):
    """The general kernel (M-edge tiles of mi < MR rows, one or two B panels,
    A packed or read in place from a row-major matrix) gives every element
    bitwise what the packed micro-kernel of the same architecture gives on
    the zero-padded MR-row panel, with every epilogue; and the values agree
    with a float64 reference. It writes only its mi x np*NR tile."""
    double = dtype == F64
    tested = 0
    for arch in usable_archs():
        if not _has_gen(arch, dtype):
            continue
        info = _gemm.gemm_info(double, arch)
        mr, nr = info["mr"], info["nr"]
        eps = np.finfo(dtype).eps
        case = 0
        for mi in range(1, mr + 1):
            for np_ in (1, 2):
                alpha, beta, with_bias, act = GEN_EPILOGUES[case % len(GEN_EPILOGUES)]
                case += 1
                code = _gemm.ACTIVATIONS[ACT_CODES[act]]
                A = make(rng, (mi, k), dtype)
                if a_layout == "packed":
                    panel = np.zeros((k, mr), dtype)
                    panel[:, :mi] = A.T
                    a_view = panel.T[:mi]  # A[i, p] at i + p * MR
                else:
                    big = make(rng, (mi, k + 7), dtype)
                    big[:, 3:3 + k] = A
                    a_view = big[:, 3:3 + k]  # row stride k + 7
                w = np_ * nr
                b_panels = make(rng, (np_ * k * nr,), dtype)
                bias = make(rng, (w,), dtype) if with_bias else None
                c0 = make(rng, (mi, w), dtype) if beta != 0 else np.full((mi, w), np.nan, dtype)
                buf = np.full(mi * w + 2 * nr, 7.0, dtype)
                c = buf[:mi * w].reshape(mi, w)
                c[...] = c0
                _gemm.gen_call(arch, a_view, b_panels, c, alpha, beta, bias, code, 0.2)
                assert (buf[mi * w:] == 7.0).all(), "the general kernel wrote past its tile"
                full = np.zeros((k, mr), dtype)
                full[:, :mi] = A.T
                for q in range(np_):
                    t = np.full((mr, nr), np.nan, dtype)
                    if beta != 0:
                        t[:mi] = c0[:, q * nr:(q + 1) * nr]
                        t[mi:] = 0
                    _gemm.ukr_call(arch, full.ravel(), b_panels[q * k * nr:(q + 1) * k * nr],
                                   t, alpha, beta,
                                   None if bias is None else bias[q * nr:(q + 1) * nr].copy(),
                                   code, 0.2)
                    got = c[:, q * nr:(q + 1) * nr]
                    assert np.array_equal(_uint(got), _uint(t[:mi])), (arch_id(arch), mi, np_, q)
                Bm = np.hstack([_f64(b_panels[q * k * nr:(q + 1) * k * nr]).reshape(k, nr)
                                for q in range(np_)])
                z = alpha * (_f64(A) @ Bm)
                mag = abs(alpha) * (np.abs(_f64(A)) @ np.abs(Bm))
                if beta != 0:
                    z, mag = z + beta * _f64(c0), mag + abs(beta) * np.abs(_f64(c0))
                if bias is not None:
                    z, mag = z + _f64(bias), mag + np.abs(_f64(bias))
                expected = _reference._act(z, ACT_CODES[act], 0.2)
                tol = (k + 4) * eps * mag + 8 * eps * np.abs(expected) + 16 * np.finfo(dtype).tiny
                assert (np.abs(_f64(c) - expected) <= tol).all(), (arch_id(arch), mi, np_)
                tested += 1
    # the reference architecture always has one
    assert tested >= 2 * _gemm.gemm_info(double, _gemm.ARCH_REF)["mr"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(128, 784, 256), (131, 2100, 50), (7, 30, 33), (50, 40, 1100),
                                   (256, 128, 10)], ids=lambda s: "x".join(map(str, s)))
def test_row_major_a_in_place_equals_packed_a_bitwise(rng, shape, dtype):
    """A row-major A is read in place (no packing) where the architecture has
    a general kernel; a Fortran-ordered copy of the same A is packed. Both
    must give bitwise the same C, for 1 and 2 threads and with a fused
    epilogue, M edges (m % 6) included."""
    m, k, n = shape
    a = make(rng, (m, k), dtype)
    fa = np.asfortranarray(a)
    b, bias = make(rng, (k, n), dtype), make(rng, (n,), dtype)
    c0 = make(rng, (m, n), dtype)
    for arch in usable_archs():
        for nt in (1, 2):
            outs = []
            for x in (a, fa):
                c = c0.copy()
                _gemm.gemm(x, b, c, 0.5, -1.0, bias, _gemm.ACTIVATIONS["tanh"], 0.01, nt, arch)
                outs.append(c)
            assert np.array_equal(_uint(outs[0]), _uint(outs[1])), (arch_id(arch), nt)
            if nt == 1:
                expected = np.tanh(0.5 * (_f64(a) @ _f64(b)) - _f64(c0) + _f64(bias))
                assert np.allclose(outs[0], expected, rtol=0,
                                   atol=(k + 8) * np.finfo(dtype).eps * (1 + np.abs(_f64(a)) @ np.abs(_f64(b))).max())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_hot_b_panels_equal_blocked_order_bitwise(rng, dtype):
    """When one thread's rows of A (rounded up to MR) take at most
    hot_a_bytes per K block, B panels are packed just before use ("hot");
    otherwise all of them up front, with A in M blocks. Either order gives
    every element the same arithmetic: the first rows of a product whose A is
    just over the limit (blocked order) must be bitwise the product of those
    rows alone (hot order), for A read in place (C order) and packed (Fortran
    order). K blocks, M edges, an odd number of B panels, beta and a fused
    epilogue included."""
    k, n = 2100, 100
    isz = np.dtype(dtype).itemsize
    tested = 0
    for arch in usable_archs():
        info = _gemm.gemm_info(dtype == np.float64, arch)
        assert info["hot_a_bytes"] > 0
        mr = info["mr"]
        kblocks = -(-k // info["kc"])
        kc = (-(-k // kblocks) + 7) // 8 * 8          # the driver's balanced K block
        rows_hot = info["hot_a_bytes"] // (kc * isz) // mr * mr  # most rows still hot
        m_big, m_small = rows_hot + 4, rows_hot - 1
        assert -(-m_big // mr) * mr * kc * isz > info["hot_a_bytes"] >= rows_hot * kc * isz
        assert m_big % mr and m_small % mr  # M edges in both
        a = make(rng, (m_big, k), dtype)
        b, bias = make(rng, (k, n), dtype), make(rng, (n,), dtype)
        c0 = make(rng, (m_big, n), dtype)
        tanh = _gemm.ACTIVATIONS["tanh"]
        for x in (a, np.asfortranarray(a)):
            big = c0.copy()
            _gemm.gemm(x, b, big, 0.5, -1.0, bias, tanh, 0.01, 1, arch)
            for nt in (1, 2):
                small = c0[:m_small].copy()
                _gemm.gemm(x[:m_small], b, small, 0.5, -1.0, bias, tanh, 0.01, nt, arch)
                assert np.array_equal(_uint(small), _uint(big[:m_small])), \
                    (arch_id(arch), nt, x.flags.c_contiguous)
            expected = np.tanh(0.5 * (_f64(a) @ _f64(b)) - _f64(c0) + _f64(bias))
            assert np.allclose(big, expected, rtol=0, atol=(k + 8) * np.finfo(dtype).eps
                               * (1 + np.abs(_f64(a)) @ np.abs(_f64(b))).max())
        tested += 1
    assert tested >= 1


# ---------------------------------------------------------------- determinism across thread counts

DET_CASES = [((300, 200, 100), False, False), ((128, 784, 256), True, False),
             ((128, 784, 256), False, True), ((257, 300, 130), True, True),
             ((131, 2100, 100), False, False),   # K blocks, 5-row M edge
             ((128, 256, 784), False, True),     # g @ W.T: 49 panels, the odd one split by rows
             ((125, 300, 1000), True, False)]    # 63 panels, a partial one, a 5-row M edge


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,trans_a,trans_b", DET_CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_bitwise_identical_across_thread_counts(rng, shape, trans_a, trans_b, dtype):
    m, k, n = shape
    a = make(rng, (k, m) if trans_a else (m, k), dtype)
    b = make(rng, (n, k) if trans_b else (k, n), dtype)
    c0 = make(rng, (m, n), dtype)
    uint = np.uint32 if dtype == F32 else np.uint64
    outs = []
    for nt in (1, 2, 3):
        with fastmlp.threads(nt):
            assert fastmlp.get_num_threads() == nt
            c = c0.copy()
            ops.gemm(a, b, c, alpha=0.7, beta=-0.3, trans_a=trans_a, trans_b=trans_b)
            outs.append(c.view(uint))
    assert_gemm(outs[0].view(dtype), a.T if trans_a else a, b.T if trans_b else b, 0.7, -0.3, c0)
    assert np.array_equal(outs[0], outs[1])
    assert np.array_equal(outs[0], outs[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear_tanh_bitwise_identical_across_thread_counts(rng, dtype):
    # scaled so that z = x @ w + b is O(1): tanh mostly far from saturation
    x = (rng.standard_normal((128, 784)) / 28).astype(dtype)
    w = rng.standard_normal((784, 256)).astype(dtype)
    bias = (0.5 * rng.standard_normal(256)).astype(dtype)
    uint = np.uint32 if dtype == F32 else np.uint64
    outs = []
    for nt in (1, 2, 3):
        with fastmlp.threads(nt):
            outs.append(ops.linear(x, w.T.copy().T, bias, "tanh").view(uint))
            outs.append(fastmlp.matmul(x, w).view(uint))
    assert_linear(outs[0].view(dtype), x, w, bias, "tanh")
    assert (np.abs(outs[0].view(dtype)) < 0.9).mean() > 0.5
    for i in (2, 4):
        assert np.array_equal(outs[0], outs[i])
        assert np.array_equal(outs[1], outs[i + 1])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_multithreaded_stress_matches_single_thread(rng, dtype):
    """Repeat products whose thread grid is 1 x tn and that cross a K or N
    block boundary; every result must equal the single-threaded one bitwise.
    Oversubscribing the cores makes a lagging thread likely.

    Regression test: before 34b4245 the column groups shared one packed-B
    layout (bbuf + jp*NR*kc) with no barrier when tm == 1, so a group that ran
    ahead into the next K or N block overwrote panels another group was
    still reading (wrong results in a few percent of calls)."""
    import time
    many = max(4, 2 * (os.cpu_count() or 1))
    for m, k, n in [(6, 257, 4000), (150, 257, 600), (12, 300, 4100)]:
        a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
        with fastmlp.threads(1):
            ref = fastmlp.matmul(a, b)
        assert_gemm(ref, a, b)
        for nt in (2, many):
            with fastmlp.threads(nt):
                start, i = time.perf_counter(), 0
                while i < 400 and time.perf_counter() - start < 0.25:  # a budget, not a timing check
                    c = fastmlp.matmul(a, b)
                    if not np.array_equal(c, ref):
                        bad = np.argwhere(c != ref)
                        pytest.fail(f"({m}, {k}) @ ({k}, {n}) with {nt} threads, call {i}: "
                                    f"{len(bad)} elements differ from the 1-thread result, "
                                    f"columns {bad[:, 1].min()}..{bad[:, 1].max()}")
                    i += 1


def test_concurrent_calls_from_python_threads(rng):
    # Each calling thread has its own packing workspace: concurrent calls
    # with different shapes must not interfere.
    cases = []
    for i in range(8):
        m, k, n = 40 + 13 * i, 300 - 17 * i, 30 + 11 * i
        dt = DTYPES[i % 2]
        cases.append((make(rng, (m, k), dt), make(rng, (k, n), dt)))

    def work(ab):
        a, b = ab
        return [fastmlp.matmul(a, b) for _ in range(3)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, cases))
    for (a, b), outs in zip(cases, results):
        for c in outs:
            assert_gemm(c, a, b)
        assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


# ---------------------------------------------------------------- property test

@st.composite
def gemm_problems(draw):
    m, k, n = (draw(st.integers(0, 40)) for _ in range(3))
    a_dt = draw(st.sampled_from(["float32", "float64"]))
    b_dt = draw(st.sampled_from([a_dt, a_dt, "float32", "float64"]))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    a_order, b_order, c_order = (draw(st.sampled_from("CF")) for _ in range(3))
    alpha = draw(st.sampled_from([1.0, 0.0, -1.0, 0.5, 2.5]) | st.floats(-4, 4, width=32))
    beta = draw(st.sampled_from([0.0, 1.0, -0.5]) | st.floats(-4, 4, width=32))
    seed = draw(st.integers(0, 2**32 - 1))
    return m, k, n, a_dt, b_dt, trans_a, trans_b, a_order, b_order, c_order, alpha, beta, seed


@settings(max_examples=50, deadline=None)
@given(gemm_problems())
def test_gemm_property(problem):
    m, k, n, a_dt, b_dt, trans_a, trans_b, a_order, b_order, c_order, alpha, beta, seed = problem
    rng = np.random.default_rng(seed)
    a = make(rng, (k, m) if trans_a else (m, k), np.dtype(a_dt), a_order)
    b = make(rng, (n, k) if trans_b else (k, n), np.dtype(b_dt), b_order)
    dtype = np.result_type(a, b)
    c0 = make(rng, (m, n), dtype, c_order)
    if beta == 0 and c0.size:
        c0[rng.random(c0.shape) < 0.3] = np.nan  # must be ignored
    c = c0.copy(order=c_order)
    res = ops.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    assert res is c
    assert_gemm(c, a.T if trans_a else a, b.T if trans_b else b, alpha, beta, c0, dtype)


@pytest.mark.parametrize("env", [{"OMP_THREAD_LIMIT": "1"}, {"OMP_DYNAMIC": "true"}])
def test_smaller_openmp_team_than_requested_is_still_correct(env, tmp_path):
    # When OpenMP grants fewer threads than the plan asked for (thread limit,
    # dynamic teams), the engine must fall back instead of leaving parts of C
    # uncomputed.
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np, fastmlp\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.standard_normal((300, 200)); b = rng.standard_normal((200, 250))\n"
        "with fastmlp.threads(2):\n"
        "    c = fastmlp.matmul(a, b)\n"
        "    d = fastmlp.matmul(a.astype(np.float32), b.astype(np.float32))\n"
        "assert np.allclose(c, a @ b, rtol=1e-12, atol=1e-10), abs(c - a @ b).max()\n"
        "assert np.allclose(d, a @ b, rtol=1e-4, atol=1e-3), abs(d - a @ b).max()\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
