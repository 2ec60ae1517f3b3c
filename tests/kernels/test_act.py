"""Activations, softmax and fused losses: fastmlp.ops against the float64
NumPy reference (fastmlp._reference) and scikit-learn's loss definitions.

Tolerances: the float32 kernels are within a few ulp of the correctly
rounded value (exp polynomial + one division), float64 within a few ulp;
checks are relative with an absolute floor at a few times the smallest
normal number (denormal results are quantised in absolute terms).
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastmlp
from fastmlp import _reference, ops
from fastmlp._core import _act

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F32, F64]
NAMES = ["identity", "relu", "leaky_relu", "sigmoid", "logistic", "tanh", "sign"]
# One name per kernel (for the per-arch tests).
KERNEL_NAMES = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "sign"]
# Every kernel family this machine can run (the AVX-512 one runs the AVX2
# element-wise code); an AVX2-only host has no "avx512" case.
from fastmlp._core import _gemm  # noqa: E402
ARCHS = [code for code in _gemm.arch_names() if _gemm.arch_usable(code)]
ARCH_IDS = [_gemm.arch_names()[code] for code in ARCHS]
LOSSES = ["sigmoid_binary_cross_entropy", "binary_cross_entropy", "mse", "mae", "poisson"]
# Large enough to be cut into several pieces and run on several threads.
BIG = 3 * _act.PARALLEL_MIN + 12345


# ---------------------------------------------------------------- helpers

def _f64(x):
    return np.asarray(x, np.float64)


def tol(dtype, ulps=8):
    d = np.finfo(dtype)
    return ulps * d.eps, 4 * d.tiny


def assert_close(result, expected, dtype, ulps=8, what=""):
    """|result - expected| <= ulps * eps * |expected| + 4 tiny, NaN where NaN."""
    res, exp = _f64(result), _f64(expected)
    assert res.shape == exp.shape, (res.shape, exp.shape)
    nan_r, nan_e = np.isnan(res), np.isnan(exp)
    assert np.array_equal(nan_r, nan_e), f"{what}: NaN pattern differs"
    rtol, atol = tol(dtype, ulps)
    with np.errstate(invalid="ignore"):
        bad = ~nan_e & ~((res == exp) | (np.abs(res - exp) <= rtol * np.abs(exp) + atol))
    if bad.any():
        i = np.unravel_index(np.argmax(bad), bad.shape)
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} values off; first at {i}: "
                    f"got {res[i]!r}, expected {exp[i]!r}")


def make(rng, shape, dtype, scale=3.0, order="C"):
    x = rng.standard_normal(shape) * scale
    return np.asarray(x, dtype=dtype, order=order)


def wide_values(dtype):
    """Magnitudes from denormal to overflow range, both signs, and specials."""
    rng = np.random.default_rng(7)
    mags = np.concatenate([rng.standard_normal(400) * s
                           for s in (1e-30, 1e-6, 1e-2, 0.3, 1, 4, 15, 50, 120, 800)])
    special = [0.0, -0.0, 1e-45, -1e-45, np.inf, -np.inf, np.nan, 87.0, -87.0, 88.8, -88.8,
               103.9, -103.9, 104.1, -104.1, 700.0, -700.0, 745.5, -745.5, 1e4, -1e4]
    with np.errstate(over="ignore"):
        return np.concatenate([mags, special]).astype(dtype)


def call_layouts(rng, shape, dtype):
    """(name, array) pairs: C, F, strided and transposed views of the same values."""
    base = make(rng, shape, dtype)
    out = [("C", base), ("F", np.asfortranarray(base))]
    big = make(rng, tuple(2 * s + 1 for s in shape), dtype)
    view = big[tuple(slice(1, None, 2) for _ in shape)]
    view[...] = base
    out.append(("strided", view))
    if base.ndim >= 2:
        out.append(("transposed", np.ascontiguousarray(base.T).T))
    return out


def assert_softmax_close(result, z, log, dtype, ulps=8, what=""):
    """Against the float64 reference with the conditioning of the problem: an
    output's error is eps * (|z - max| + log(sum exp(z - max))) absolute for
    log_softmax, relative for softmax (exp turns absolute into relative)."""
    z = _f64(z)
    m = z.max(axis=1, keepdims=True)
    cond = np.abs(z - m) + np.log(np.exp(z - m).sum(axis=1, keepdims=True)) + 1
    ref = _reference.log_softmax(z) if log else _reference.softmax(z)
    bound = ulps * np.finfo(dtype).eps * cond * (1 if log else np.abs(ref)) + 4 * np.finfo(dtype).tiny
    err = np.abs(_f64(result) - ref)
    if not (err <= bound).all():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        pytest.fail(f"{what}: got {result[i]!r}, expected {ref[i]!r} at {i}")


def rel_close(a, b, rtol):
    return abs(a - b) <= rtol * max(abs(b), 1e-300)


# ---------------------------------------------------------------- activations: values

SHAPES = [(), (1,), (1, 1), (7, 13), (97, 131), (3, 4, 5), (0,), (0, 5)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)) or "0d")
def test_activation_matches_reference(rng, name, shape, dtype):
    z = make(rng, shape, dtype)
    z0 = z.copy()
    r = ops.activation(name, z, alpha=0.1)
    assert isinstance(r, np.ndarray) and r.shape == shape and r.dtype == dtype
    assert_close(r, _reference.activation(name, _f64(z), alpha=float(dtype.type(0.1))), dtype,
                 what=name)
    assert np.array_equal(z, z0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1,), (7, 13), (97, 131), (2, 3, 5)],
                         ids=lambda s: "x".join(map(str, s)))
def test_activation_backward_matches_reference(rng, name, shape, dtype):
    z, g = make(rng, shape, dtype), make(rng, shape, dtype)
    z0, g0 = z.copy(), g.copy()
    r = ops.activation_backward(name, z, g, alpha=0.1)
    assert r.shape == shape and r.dtype == dtype
    expected = _reference.activation_backward(name, _f64(z), _f64(g), alpha=float(dtype.type(0.1)))
    assert_close(r, expected, dtype, what=name)
    assert np.array_equal(z, z0) and np.array_equal(g, g0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_each_arch_over_the_whole_range(name, arch, dtype):
    """Both kernel families on values from denormals to overflow, +-0, +-inf, NaN."""
    if not _act.arch_usable(arch):
        pytest.skip("architecture not usable on this CPU/build")
    z = wide_values(dtype)
    g = np.resize(np.array([1.0, -2.5, 0.75, 3.0], dtype), z.shape)
    alpha = float(dtype.type(0.02))
    out = np.empty_like(z)
    _act.forward(_act.ACTIVATIONS[name], z, out, alpha, 1, arch)
    assert_close(out, _reference.activation(name, _f64(z), alpha=alpha), dtype, what=name)
    _act.backward(_act.ACTIVATIONS[name], z, g, out, alpha, 1, arch)
    assert_close(out, _reference.activation_backward(name, _f64(z), _f64(g), alpha=alpha),
                 dtype, what=name + "'")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_archs_agree_on_every_length_and_offset(rng, name, dtype):
    """Partial vectors at both ends (masked loads/stores) for n = 0..40 and every
    misalignment: same values as the reference, never a write out of bounds."""
    code = _act.ACTIVATIONS[name]
    buf = make(rng, 64, dtype)
    for arch in ARCHS:
        if not _act.arch_usable(arch):
            continue
        for off in range(4):
            for n in range(41):
                z = buf[off:off + n]
                outbuf = np.full(48, 7.0, dtype)
                out = outbuf[off:off + n]
                _act.forward(code, z, out, 0.5, 1, arch)
                assert_close(out, _reference.activation(name, _f64(z), alpha=0.5), dtype)
                assert (outbuf[:off] == 7).all() and (outbuf[off + n:] == 7).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_streaming_path_matches(rng, name, dtype):
    """Outputs above the non-temporal-store threshold, at unaligned offsets."""
    n = _act.STREAM_MIN_BYTES // dtype.itemsize + 1001
    z = make(rng, n + 3, dtype)[3:]
    g = make(rng, n + 1, dtype)[1:]
    out = np.empty(n + 5, dtype)[5:]
    r = ops.activation(name, z, out)
    assert r is out
    idx = np.r_[0:50, n // 2:n // 2 + 50, n - 50:n]
    assert_close(out[idx], _reference.activation(name, _f64(z[idx])), dtype)
    ops.activation_backward(name, z, g, out)
    assert_close(out[idx], _reference.activation_backward(name, _f64(z[idx]), _f64(g[idx])),
                 dtype)


# ---------------------------------------------------------------- activations: semantics

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_special_values(dtype):
    z = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -2.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        relu = ops.activation("relu", z)
        sig = ops.activation("sigmoid", z)
        th = ops.activation("tanh", z)
        sgn = ops.activation("sign", z)
        leaky = ops.activation("leaky_relu", z, alpha=0.25)
    nan = np.nan
    np.testing.assert_array_equal(relu, [nan, np.inf, 0, 0, 0, 2, 0])
    np.testing.assert_array_equal(sig[:3], [nan, 1.0, 0.0])
    np.testing.assert_array_equal(th[:3], [nan, 1.0, -1.0])
    np.testing.assert_array_equal(sgn, [nan, 1, -1, 0, 0, 1, -1])
    np.testing.assert_array_equal(leaky, [nan, np.inf, -np.inf, 0, 0, 2, -0.5])
    assert sig[3] == 0.5 and sig[4] == 0.5


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sigmoid_tails_exact_and_quiet(dtype):
    big = np.array([30.0, 50.0, 89.0, 200.0, 1e4, 1e30, np.finfo(dtype).max], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hi = ops.activation("sigmoid", big)
        lo = ops.activation("sigmoid", -big)
        d = ops.activation_backward("sigmoid", -big, np.ones_like(big))
    assert (hi <= 1).all() and hi[-3:].tolist() == [1.0, 1.0, 1.0]
    assert (lo >= 0).all() and lo[-3:].tolist() == [0.0, 0.0, 0.0]
    # the negative tail keeps its relative precision (no 1 - s cancellation)
    assert_close(lo[:3], _reference.activation("sigmoid", -_f64(big[:3])), dtype)
    assert_close(d[:3], _reference.activation_derivative("sigmoid", -_f64(big[:3])), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tanh_relative_precision_near_zero(dtype):
    z = np.array([1e-30, -1e-20, 1e-10, 3e-6, -1e-3, 0.02], dtype)
    if dtype == F32:
        z[0] = 1e-38  # still normal in float32
    r = ops.activation("tanh", z)
    assert_close(r, np.tanh(_f64(z)), dtype, ulps=4)
    assert (np.sign(r) == np.sign(z)).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_derivative_conventions(dtype):
    z = np.array([0.0, -0.0, 1.0, -1.0, np.nan], dtype)
    g = np.array([2.0, 2.0, 2.0, 2.0, 2.0], dtype)
    d = {n: ops.activation_backward(n, z, g, alpha=0.5) for n in KERNEL_NAMES}
    np.testing.assert_array_equal(d["relu"], [0, 0, 2, 0, np.nan])      # relu'(0) = 0
    np.testing.assert_array_equal(d["leaky_relu"], [2, 2, 2, 1, np.nan])  # leaky'(0) = 1
    np.testing.assert_array_equal(d["sign"], [0, 0, 0, 0, np.nan])
    np.testing.assert_array_equal(d["identity"], g)  # f' == 1, z not used
    assert d["sigmoid"][0] == 0.5 and d["tanh"][0] == 2.0
    assert np.isnan(d["sigmoid"][4]) and np.isnan(d["tanh"][4])
    # IEEE product: inf * 0 = NaN, NaN in grad propagates
    gi = np.array([np.inf, np.nan], dtype)
    r = ops.activation_backward("relu", np.array([-1.0, 1.0], dtype), gi)
    assert np.isnan(r).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(7, 13), (3, 4, 5)], ids=["7x13", "3x4x5"])
def test_layouts(rng, shape, dtype):
    for layout, z in call_layouts(rng, shape, dtype):
        for name in ("relu", "sigmoid", "tanh"):
            r = ops.activation(name, z)
            assert_close(r, _reference.activation(name, _f64(z)), dtype, what=layout)
        for _, g in call_layouts(rng, shape, dtype):
            r = ops.activation_backward("tanh", z, g)
            assert_close(r, _reference.activation_backward("tanh", _f64(z), _f64(g)), dtype,
                         what=layout)


def test_fortran_input_gives_fortran_output(rng):
    z = make(rng, (9, 11), F32, order="F")
    r = ops.activation("relu", z)
    assert r.flags.f_contiguous
    np.testing.assert_array_equal(r, np.maximum(z, 0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mixed_dtypes_backward_promote(rng, dtype):
    other = F64 if dtype == F32 else F32
    z, g = make(rng, (5, 6), dtype), make(rng, (5, 6), other)
    r = ops.activation_backward("sigmoid", z, g)
    assert r.dtype == F64
    assert_close(r, _reference.activation_backward("sigmoid", _f64(z), _f64(g)), F64)


def test_lists_are_accepted():
    r = ops.activation("relu", [[-1.0, 2.0]])
    assert r.dtype == F64 and r.tolist() == [[0.0, 2.0]]


# ---------------------------------------------------------------- activations: out=

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu", "sign", "identity"])
def test_out_and_in_place(rng, name, dtype):
    z = make(rng, (31, 17), dtype)
    expected = _reference.activation(name, _f64(z))
    out = np.full_like(z, np.nan)
    assert ops.activation(name, z, out) is out
    assert_close(out, expected, dtype)
    zz = z.copy()
    assert ops.activation(name, zz, out=zz) is zz  # documented in-place use
    assert_close(zz, expected, dtype)
    # in place on a strided view and on a Fortran array
    big = make(rng, (62, 17), dtype)
    view = big[::2]
    view[...] = z
    other_rows = big[1::2].copy()
    assert ops.activation(name, view, out=view) is view
    assert_close(view, expected, dtype)
    np.testing.assert_array_equal(big[1::2], other_rows)
    zf = np.asfortranarray(z)
    ops.activation(name, zf, out=zf)
    assert_close(zf, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_out_partial_overlap_and_odd_layouts(rng, dtype):
    a = make(rng, 40, dtype)
    z = a[1:].copy()
    ops.activation("tanh", a[1:], out=a[:-1])  # shifted overlap: through a temporary
    assert_close(a[:-1], np.tanh(_f64(z)), dtype)
    z = make(rng, (6, 8), dtype)
    out_f = np.empty((6, 8), dtype, order="F")
    ops.activation("sigmoid", z, out=out_f)
    assert_close(out_f, _reference.activation("sigmoid", _f64(z)), dtype)
    out_s = np.empty((6, 16), dtype)[:, ::2]
    ops.activation("sigmoid", z, out=out_s)
    assert_close(out_s, _reference.activation("sigmoid", _f64(z)), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_backward_in_place_on_grad_or_z(rng, dtype):
    z, g = make(rng, (13, 7), dtype), make(rng, (13, 7), dtype)
    expected = _reference.activation_backward("tanh", _f64(z), _f64(g))
    gg = g.copy()
    assert ops.activation_backward("tanh", z, gg, out=gg) is gg
    assert_close(gg, expected, dtype)
    zz = z.copy()
    assert ops.activation_backward("tanh", zz, g, out=zz) is zz
    assert_close(zz, expected, dtype)
    # z and grad the same array, written in place
    s = z.copy()
    ops.activation_backward("sigmoid", s, s, out=s)
    assert_close(s, _reference.activation_backward("sigmoid", _f64(z), _f64(z)), dtype)


def test_out_errors(rng):
    z = make(rng, (4, 5), F32)
    with pytest.raises(ValueError, match=r"out has shape \(5, 4\), expected \(4, 5\)"):
        ops.activation("relu", z, np.empty((5, 4), F32))
    with pytest.raises(ValueError, match=r"out has dtype float64, expected float32"):
        ops.activation("relu", z, np.empty((4, 5), F64))
    ro = np.empty((4, 5), F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.activation("relu", z, ro)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        ops.activation("relu", z, [[0.0] * 5] * 4)
    with pytest.raises(ValueError, match=r"out has dtype float32, expected float64"):
        ops.activation_backward("relu", z, z.astype(F64), np.empty((4, 5), F32))


def test_activation_bad_input():
    z = np.ones((3, 2))
    with pytest.raises(ValueError, match="unknown activation 'softplus'.*relu"):
        ops.activation("softplus", z)
    with pytest.raises(ValueError, match="unknown activation None"):
        ops.activation(None, z)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        ops.activation_backward("gelu", z, z)
    with pytest.raises(TypeError, match="int64.*float32 or float64"):
        ops.activation("relu", np.ones(3, np.int64))
    with pytest.raises(TypeError, match="float16"):
        ops.activation_backward("relu", z, np.ones((3, 2), np.float16))
    with pytest.raises(TypeError, match="alpha must be a real number"):
        ops.activation("leaky_relu", z, alpha="0.1")
    with pytest.raises(ValueError, match=r"z has shape \(3, 2\) but grad has shape \(2, 3\)"):
        ops.activation_backward("relu", z, np.ones((2, 3)))


# ---------------------------------------------------------------- softmax / log_softmax

SM_SHAPES = [(1, 1), (7, 13), (97, 131), (3, 1000), (0, 5), (4, 0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", SM_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_softmax_matches_reference(rng, shape, log, dtype):
    func = ops.log_softmax if log else ops.softmax
    ref = _reference.log_softmax if log else _reference.softmax
    for layout, z in call_layouts(rng, shape, dtype):
        z0 = z.copy()
        r = func(z)
        assert r.shape == shape and r.dtype == dtype
        if z.size:
            assert_softmax_close(r, z, log, dtype, what=layout)
        assert np.array_equal(z, z0)
    if not log and shape[0] and shape[1]:
        assert np.allclose(r.sum(axis=1), 1.0, rtol=shape[1] * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_softmax_each_arch_extreme_logits(rng, arch, dtype):
    if not _act.arch_usable(arch):
        pytest.skip("architecture not usable")
    z = make(rng, (23, 37), dtype, scale=1e4)
    z[0] = 0.0
    z[1, :5] = [1e4, -1e4, 1e4, -1e4, 0]
    out = np.empty_like(z)
    for log in (False, True):
        _act.softmax(z, out, log, 1, arch)
        assert np.isfinite(out).all()
        assert_softmax_close(out, z, log, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_out_and_in_place(rng, dtype):
    z = make(rng, (11, 29), dtype)
    for func, log in ((ops.softmax, False), (ops.log_softmax, True)):
        out = np.empty_like(z)
        assert func(z, out) is out
        assert_softmax_close(out, z, log, dtype)
        zz = z.copy()
        assert func(zz, out=zz) is zz
        assert_softmax_close(zz, z, log, dtype)
        of = np.empty(z.shape, dtype, order="F")
        assert func(z, of) is of
        assert_softmax_close(of, z, log, dtype)
        zf = np.asfortranarray(z)
        func(zf, out=zf)  # in place on an F array: through a temporary
        assert_softmax_close(zf, z, log, dtype)


def test_softmax_nan_row_and_bad_input(rng):
    z = make(rng, (3, 4), F64)
    z[1, 2] = np.nan
    r = ops.softmax(z)
    assert np.isnan(r[1]).all() and np.isfinite(r[[0, 2]]).all()
    with pytest.raises(ValueError, match="z must be 2-D, got 1-D"):
        ops.softmax(np.ones(3))
    with pytest.raises(TypeError, match="int32"):
        ops.log_softmax(np.ones((2, 2), np.int32))
    with pytest.raises(ValueError, match=r"out has shape \(2, 3\), expected \(3, 2\)"):
        ops.softmax(np.ones((3, 2)), np.empty((2, 3)))


# ---------------------------------------------------------------- softmax cross-entropy

XE_SHAPES = [(1, 1), (1, 5), (7, 13), (97, 131), (64, 1000)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", XE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", ["labels", "onehot", "probs"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_softmax_cross_entropy_matches_reference(rng, shape, kind, weighted, dtype):
    n, c = shape
    z = make(rng, shape, dtype)
    y = rng.integers(0, c, n)
    if kind == "labels":
        target = y
    elif kind == "onehot":
        target = np.eye(c, dtype=dtype)[y]
    else:
        target = rng.dirichlet(np.ones(c), n).astype(dtype)
    w = rng.uniform(0, 3, n) if weighted else None
    z0 = z.copy()
    loss, grad = ops.softmax_cross_entropy(z, target, w)
    assert type(loss) is float
    assert grad.shape == shape and grad.dtype == dtype
    lref, gref = _reference.softmax_cross_entropy(_f64(z), _f64(target) if kind != "labels"
                                                  else target, w)
    eps = np.finfo(dtype).eps
    assert rel_close(loss, lref, 64 * eps), (loss, lref)
    # gradient: entries are weighted probability differences, so compare to
    # its scale (w_i / sum w) rather than elementwise-relative
    scale = np.abs(gref).max()
    assert np.abs(grad - gref).max() <= 16 * eps * scale + 1e-300
    assert np.array_equal(z, z0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_softmax_cross_entropy_each_arch(rng, arch, dtype):
    if not _act.arch_usable(arch):
        pytest.skip("architecture not usable")
    for shape in [(1, 1), (5, 3), (33, 17), (40, 1003)]:
        z = make(rng, shape, dtype, scale=5)
        y = rng.integers(0, shape[1], shape[0])
        grad = np.empty_like(z)
        loss = _act.softmax_xent(z, y, None, None, float(shape[0]), grad, 1, arch)
        lref, gref = _reference.softmax_cross_entropy(_f64(z), y)
        eps = np.finfo(dtype).eps
        assert rel_close(loss, lref, 64 * eps)
        assert np.abs(grad - gref).max() <= 16 * eps / shape[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_cross_entropy_extreme_logits(rng, dtype):
    z = make(rng, (50, 20), dtype, scale=1e4)
    y = rng.integers(0, 20, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = ops.softmax_cross_entropy(z, y)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    lref, gref = _reference.softmax_cross_entropy(_f64(z), y)
    assert rel_close(loss, lref, 1e-6)
    assert np.abs(grad - gref).max() <= 1e-6 / 50
    # confident and right: tiny loss, gradient with relative precision
    z = np.zeros((2, 3), dtype)
    z[:, 1] = 30.0
    loss, grad = ops.softmax_cross_entropy(z, np.array([1, 1]))
    e = np.exp(-30.0)
    assert rel_close(loss, np.log1p(2 * e), 1e-6 if dtype == F32 else 1e-14)
    p = e / (1 + 2 * e)  # (the reference's rounded log-sum-exp is not this precise)
    assert_close(grad, np.array([[p, -2 * p, p]] * 2) / 2, dtype, ulps=16)


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32,
                                         np.int64, np.uint64])
def test_label_dtypes(rng, label_dtype):
    z = make(rng, (9, 6), F32)
    y = rng.integers(0, 6, 9)
    loss, grad = ops.softmax_cross_entropy(z, y.astype(label_dtype))
    loss0, grad0 = ops.softmax_cross_entropy(z, y)
    assert loss == loss0 and np.array_equal(grad, grad0)


def test_softmax_cross_entropy_target_conversions(rng):
    z = make(rng, (6, 4), F32)
    y = rng.integers(0, 4, 6)
    onehot_int = np.eye(4, dtype=np.int64)[y]
    l1, g1 = ops.softmax_cross_entropy(z, y)
    l2, g2 = ops.softmax_cross_entropy(z, onehot_int)
    assert abs(l1 - l2) <= 1e-6 * l1 and np.abs(g1 - g2).max() <= 1e-7
    l3, g3 = ops.softmax_cross_entropy(np.asfortranarray(z), y, sample_weight=np.ones(6, int))
    assert l3 == l1 and np.array_equal(g3, g1)
    l4, g4 = ops.softmax_cross_entropy(z.tolist(), y.tolist())
    assert g4.dtype == F64


def test_softmax_cross_entropy_weights_semantics(rng):
    z = make(rng, (8, 5), F64)
    y = rng.integers(0, 5, 8)
    w = rng.uniform(0.5, 2, 8)
    # integer weights = repeated samples
    wi = np.array([1, 2, 0, 1, 3, 1, 1, 2])
    rep = np.repeat(np.arange(8), wi)
    lw, gw = ops.softmax_cross_entropy(z, y, wi)
    lr, gr = ops.softmax_cross_entropy(z[rep], y[rep])
    assert rel_close(lw, lr, 1e-13)
    summed = np.zeros_like(gw)
    np.add.at(summed, rep, gr)
    np.testing.assert_allclose(gw, summed, rtol=1e-12, atol=1e-15)
    # scaling all weights changes nothing
    l1, g1 = ops.softmax_cross_entropy(z, y, w)
    l2, g2 = ops.softmax_cross_entropy(z, y, 4 * w)
    assert rel_close(l1, l2, 1e-14) and np.allclose(g1, g2, rtol=1e-14, atol=0)


def test_softmax_cross_entropy_matches_sklearn(rng):
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.metrics import log_loss

    n, c = 40, 7
    z = make(rng, (n, c), F64)
    y = rng.integers(0, c, n)
    w = rng.uniform(0.1, 2, n)
    sk = HalfMultinomialLoss(n_classes=c)
    loss, grad = ops.softmax_cross_entropy(z, y, w)
    per_sample, sk_grad = sk.loss_gradient(y.astype(F64), z)
    assert rel_close(loss, np.average(per_sample, weights=w), 1e-12)
    np.testing.assert_allclose(grad, sk_grad * (w / w.sum())[:, None], rtol=1e-10, atol=1e-15)
    loss_u, _ = ops.softmax_cross_entropy(z, y)
    assert rel_close(loss_u, log_loss(y, _reference.softmax(z), labels=np.arange(c)), 1e-10)


def test_softmax_cross_entropy_bad_input(rng):
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*from 0 to 3"):
        ops.softmax_cross_entropy(z, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*from -1 to 2"):
        ops.softmax_cross_entropy(z, np.array([0, -1, 2, 1]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        ops.softmax_cross_entropy(z, np.array([0, 1, 2, 2**63], np.uint64))
    with pytest.raises(ValueError, match="empty batch"):
        ops.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, int))
    with pytest.raises(ValueError, match="no classes"):
        ops.softmax_cross_entropy(np.zeros((2, 0)), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"target has shape \(5,\) but logits has shape \(4, 3\)"):
        ops.softmax_cross_entropy(z, np.zeros(5, int))
    with pytest.raises(ValueError, match=r"target has shape \(4, 2\) but logits has shape \(4, 3\)"):
        ops.softmax_cross_entropy(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="1-D labels or 2-D"):
        ops.softmax_cross_entropy(z, np.zeros((4, 3, 1)))
    with pytest.raises(TypeError, match="integer dtype, got float64"):
        ops.softmax_cross_entropy(z, np.zeros(4))
    with pytest.raises(TypeError, match="target has dtype <U1"):
        ops.softmax_cross_entropy(z, np.array(list("abcd")))
    with pytest.raises(ValueError, match="non-negative"):
        ops.softmax_cross_entropy(z, np.zeros(4, int), np.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="sums to 0"):
        ops.softmax_cross_entropy(z, np.zeros(4, int), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        ops.softmax_cross_entropy(z, np.zeros(4, int), np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"sample_weight has shape \(3,\), expected \(4,\)"):
        ops.softmax_cross_entropy(z, np.zeros(4, int), np.ones(3))
    with pytest.raises(TypeError, match="int64"):
        ops.softmax_cross_entropy(np.zeros((4, 3), np.int64), np.zeros(4, int))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        ops.softmax_cross_entropy(np.zeros(3), np.zeros(3, int))


# ---------------------------------------------------------------- element-wise losses

def loss_inputs(rng, name, shape, dtype):
    x = make(rng, shape, dtype, scale=2)
    if name == "binary_cross_entropy":
        x = rng.uniform(0, 1, shape).astype(dtype)
        t = rng.uniform(0, 1, shape).astype(dtype)
    elif name == "sigmoid_binary_cross_entropy":
        t = (rng.uniform(0, 1, shape) < 0.5).astype(dtype)
    elif name == "poisson":
        t = rng.poisson(2.0, shape).astype(dtype)
    else:
        t = make(rng, shape, dtype)
    return x, t


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1,), (1, 1), (7, 13), (97, 131), (1000,)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", LOSSES)
def test_elementwise_loss_matches_reference(rng, name, shape, dtype):
    x, t = loss_inputs(rng, name, shape, dtype)
    x0, t0 = x.copy(), t.copy()
    loss, grad = getattr(ops, name)(x, t)
    assert type(loss) is float and grad.shape == shape and grad.dtype == dtype
    # The reference in long double: its exp/log are libm's, the same on every
    # host (float64 np.exp / np.log move by a few ulp with NumPy's SIMD
    # dispatch, AVX-512 against AVX2).
    xl, tl = x.astype(np.longdouble), t.astype(np.longdouble)
    lref, gref = getattr(_reference, name)(xl, tl, **(
        {"eps": np.finfo(dtype).eps} if name == "binary_cross_entropy" else {}))
    # float32 inputs are exact in float64, where the loss is computed
    assert rel_close(loss, float(lref), 1e-12), (loss, lref)
    # The gradients are differences of two terms (s - t, exp(x) - t, ...):
    # each term is within an ulp or two, and the difference may cancel, so the
    # bound is relative to the terms' magnitudes, not to the result's.
    err = np.abs(grad.astype(np.longdouble) - gref)
    bound = 4 * np.finfo(dtype).eps * _loss_grad_scale(name, xl, tl) + 4 * np.finfo(dtype).tiny
    bad = ~(err <= bound)
    assert not bad.any(), (f"{int(bad.sum())} of {bad.size} off; worst "
                           f"{float((err / bound).max()):.2f} x the bound")
    assert np.array_equal(x, x0) and np.array_equal(t, t0)


def _loss_grad_scale(name, x, t):
    """Sum of the magnitudes of the terms of each gradient element (long double)."""
    n = x.size
    with np.errstate(over="ignore", divide="ignore"):
        if name == "sigmoid_binary_cross_entropy":
            return (1 / (1 + np.exp(-x)) + np.abs(t)) / n
        if name == "poisson":
            return (np.exp(x) + np.abs(t)) / n
        if name == "binary_cross_entropy":
            eps = np.finfo(np.longdouble).eps
            p = np.clip(x, eps, 1 - eps)
            return (np.abs((1 - t) / (1 - p)) + np.abs(t / p)) / n
        if name == "mse":
            return 2 * (np.abs(x) + np.abs(t)) / n
        return np.full(x.shape, np.longdouble(1) / n)  # mae: sign(x - t) / n, exact


@pytest.mark.parametrize("name", LOSSES)
def test_elementwise_loss_layouts_and_shapes(rng, name):
    x, t = loss_inputs(rng, name, (9, 5), F64)
    l0, g0 = getattr(ops, name)(x, t)
    for layout, xv in call_layouts(rng, (9, 5), F64):
        xv[...] = x
        for tlayout, tv in call_layouts(rng, (9, 5), F64):
            tv[...] = t
            loss, grad = getattr(ops, name)(xv, tv)
            assert rel_close(loss, l0, 1e-14), (layout, tlayout)
            np.testing.assert_array_equal(grad, g0)
    # (n, 1) predictions with (n,) targets and vice versa; integer targets
    xc, tc = x[:, :1].copy(), t[:, 0].copy()
    l1, g1 = getattr(ops, name)(xc, tc)
    l2, g2 = getattr(ops, name)(xc, tc[:, None])
    assert l1 == l2 and g1.shape == (9, 1) and np.array_equal(g1, g2)
    l3, g3 = getattr(ops, name)(xc[:, 0], tc[:, None])
    assert l3 == l1 and g3.shape == (9,)
    if name in ("sigmoid_binary_cross_entropy", "poisson", "mse", "mae"):
        ti = np.rint(np.abs(t)).astype(np.int32)
        assert getattr(ops, name)(x, ti)[0] == getattr(ops, name)(x, ti.astype(F64))[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_elementwise_losses_extreme_inputs(dtype):
    z = np.array([-1e4, -100.0, -30.0, 0.0, 30.0, 100.0, 1e4], dtype)
    t = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = ops.sigmoid_binary_cross_entropy(z, t)
    lref, gref = _reference.sigmoid_binary_cross_entropy(_f64(z), _f64(t))
    assert np.isfinite(loss) and rel_close(loss, lref, 1e-12)
    assert_close(grad, gref, dtype, ulps=4)
    # probabilities 0 and 1 are clipped: finite loss and gradient
    p = np.array([0.0, 1.0, 1.0, 0.0, 0.5], dtype)
    t = np.array([1.0, 0.0, 1.0, 0.0, 1.0], dtype)
    loss, grad = ops.binary_cross_entropy(p, t)
    eps = np.finfo(dtype).eps
    lref, gref = _reference.binary_cross_entropy(_f64(p), _f64(t), eps=eps)
    assert np.isfinite(loss) and np.isfinite(grad).all() and rel_close(loss, lref, 1e-12)
    assert_close(grad, gref, dtype, ulps=4)
    assert rel_close(ops.binary_cross_entropy(p, t, eps=1e-3)[0],
                     _reference.binary_cross_entropy(_f64(p), _f64(t), eps=1e-3)[0], 1e-12)


def test_mae_subgradient_and_nan():
    loss, grad = ops.mae(np.array([1.0, 2.0, 3.0, np.nan]), np.array([1.0, 1.0, 4.0, 0.0]))
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, [0.0, 0.25, -0.25, np.nan])


def test_elementwise_losses_match_sklearn(rng):
    from sklearn._loss.loss import (AbsoluteError, HalfBinomialLoss, HalfPoissonLoss,
                                    HalfSquaredError)
    from sklearn.neural_network._base import binary_log_loss, poisson_loss
    from scipy.special import xlogy

    n = 200
    raw = make(rng, n, F64, scale=1.5)
    y = rng.poisson(2.0, n).astype(F64)
    loss, grad = ops.poisson(raw, y)
    sk = HalfPoissonLoss()
    assert rel_close(loss, sk.loss(y, raw).mean(), 1e-12)
    np.testing.assert_allclose(grad * n, sk.gradient(y, raw), rtol=1e-13)
    # MLPRegressor's poisson_loss adds the constant y log y - y
    const = np.mean(xlogy(y, y) - y)
    assert rel_close(loss + const, poisson_loss(y, np.exp(raw)), 1e-12)

    yb = (rng.uniform(size=n) < 0.4).astype(F64)
    loss, grad = ops.sigmoid_binary_cross_entropy(raw, yb)
    sk = HalfBinomialLoss()
    assert rel_close(loss, sk.loss(yb, raw).mean(), 1e-12)
    np.testing.assert_allclose(grad * n, sk.gradient(yb, raw), rtol=1e-12, atol=1e-15)

    for dtype in DTYPES:
        p = rng.uniform(size=(n, 3)).astype(dtype)
        p[:5] = [0.0, 1.0, 1.0]
        t = (rng.uniform(size=(n, 3)) < 0.5).astype(dtype)
        loss, _ = ops.binary_cross_entropy(p, t)  # eps = finfo(dtype).eps like sklearn
        assert rel_close(loss * 3, binary_log_loss(t, p), 1e-5 if dtype == F32 else 1e-12)

    t = make(rng, n, F64)
    assert rel_close(ops.mse(raw, t)[0], 2 * HalfSquaredError().loss(t, raw).mean(), 1e-13)
    np.testing.assert_allclose(ops.mse(raw, t)[1] * n, 2 * HalfSquaredError().gradient(t, raw))
    assert rel_close(ops.mae(raw, t)[0], AbsoluteError().loss(t, raw).mean(), 1e-13)
    np.testing.assert_allclose(ops.mae(raw, t)[1] * n, AbsoluteError().gradient(t, raw))


@pytest.mark.parametrize("name", LOSSES)
def test_elementwise_loss_bad_input(name):
    f = getattr(ops, name)
    with pytest.raises(ValueError, match=r"has shape \(4, 3\) but target has shape \(4, 2\)"):
        f(np.ones((4, 3)) / 2, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"has shape \(4,\) but target has shape \(3,\)"):
        f(np.ones(4) / 2, np.ones(3))
    with pytest.raises(ValueError, match="empty batch"):
        f(np.ones((0, 3)), np.ones((0, 3)))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        f(np.ones((2, 2, 2)) / 2, np.ones((2, 2, 2)))
    with pytest.raises(TypeError, match="int64"):
        f(np.ones(3, np.int64), np.ones(3))
    with pytest.raises(TypeError, match="target has dtype complex128"):
        f(np.ones(3) / 2, np.ones(3, complex))


def test_binary_cross_entropy_eps_validation():
    p = np.full(3, 0.5)
    for bad in (0.0, -1e-3, 0.5, 2.0, np.nan):
        with pytest.raises(ValueError, match=r"eps must be in \(0, 0.5\)"):
            ops.binary_cross_entropy(p, p, eps=bad)
    with pytest.raises(TypeError, match="eps must be a real number"):
        ops.binary_cross_entropy(p, p, eps="small")


# ---------------------------------------------------------------- threads: bitwise identical

def _run_all(z, g, y, t):
    res = [ops.activation(n, z) for n in KERNEL_NAMES]
    res += [ops.activation_backward(n, z, g) for n in KERNEL_NAMES]
    zz = z.reshape(-1, 1000)
    res += [ops.softmax(zz), ops.log_softmax(zz)]
    loss, grad = ops.softmax_cross_entropy(zz, y)
    res += [np.array(loss), grad]
    for name in LOSSES:
        x = 1 / (1 + np.exp(-z)) if name == "binary_cross_entropy" else z
        loss, grad = getattr(ops, name)(x, t)
        res += [np.array(loss), grad]
    return res


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bitwise_identical_across_thread_counts(rng, dtype):
    n = (BIG // 1000) * 1000
    z, g = make(rng, n, dtype), make(rng, n, dtype)
    y = rng.integers(0, 1000, n // 1000)
    t = (rng.uniform(size=n) < 0.5).astype(dtype)
    with fastmlp.threads(1):
        one = _run_all(z, g, y, t)
    for nt in (2, 3):
        with fastmlp.threads(nt):
            many = _run_all(z, g, y, t)
        for a, b in zip(one, many):
            assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- property tests

floats64 = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@settings(max_examples=40, deadline=None)
@given(z=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
       name=st.sampled_from(KERNEL_NAMES), single=st.booleans())
def test_property_activation(z, name, single):
    dtype = F32 if single else F64
    with np.errstate(over="ignore"):
        z = z.astype(dtype)
    g = np.ones_like(z)
    assert_close(ops.activation(name, z), _reference.activation(name, _f64(z)), dtype)
    assert_close(ops.activation_backward(name, z, g),
                 _reference.activation_backward(name, _f64(z), _f64(g)), dtype)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 12), c=st.integers(1, 40), single=st.booleans())
def test_property_softmax_cross_entropy(data, n, c, single):
    dtype = F32 if single else F64
    z = data.draw(hnp.arrays(np.float64, (n, c), elements=floats64)).astype(dtype)
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    w = data.draw(st.none() | hnp.arrays(np.float64, n, elements=st.floats(0.5, 2.0)))
    loss, grad = ops.softmax_cross_entropy(z, y, w)
    lref, gref = _reference.softmax_cross_entropy(_f64(z), y, w)
    eps = np.finfo(dtype).eps
    # the loss is a difference of logits, so its error scales with their size
    assert abs(loss - lref) <= 64 * eps * (abs(lref) + np.abs(_f64(z)).max() + 1)
    assert np.abs(grad - gref).max() <= 16 * eps * np.abs(gref).max() + 1e-300
    assert_softmax_close(ops.log_softmax(z), z, True, dtype)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=20),
       name=st.sampled_from(LOSSES), single=st.booleans())
def test_property_elementwise_losses(data, shape, name, single):
    dtype = F32 if single else F64
    unit = st.floats(0, 1)
    if name == "binary_cross_entropy":
        x = data.draw(hnp.arrays(np.float64, shape, elements=unit))
    else:
        x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-30, 30)))
    t = data.draw(hnp.arrays(np.float64, shape, elements=unit if name != "poisson"
                             else st.floats(0, 50)))
    x, t = x.astype(dtype), t.astype(dtype)
    loss, grad = getattr(ops, name)(x, t)
    kw = {"eps": np.finfo(dtype).eps} if name == "binary_cross_entropy" else {}
    lref, gref = getattr(_reference, name)(_f64(x), _f64(t), **kw)
    # a mean of terms of either sign: bound the error by the terms' magnitude
    x64, t64 = _f64(x), _f64(t)
    mag = (np.abs(x64) + np.abs(t64) + 1) ** 2 + (np.exp(x64) if name == "poisson" else 0)
    assert abs(loss - lref) <= 1e-13 * mag.mean()
    # Each gradient element is a difference of terms divided by N, e.g.
    # (sigmoid(x) - t) / N: it may cancel, so bound its error by the terms'
    # magnitude, not by its own (4 ulps of the terms; exact formulas differ
    # between the kernel and the reference).
    n = x64.size
    if name == "binary_cross_entropy":
        p = np.clip(x64, np.finfo(dtype).eps, 1 - np.finfo(dtype).eps)
        terms = (t64 / p + (1 - t64) / (1 - p)) / n
    else:
        terms = (np.abs(x64) + np.abs(t64) + 1 + (np.exp(x64) if name == "poisson" else 0)) / n
    eps = np.finfo(dtype).eps
    g64, gr64 = _f64(grad), _f64(gref)
    assert np.array_equal(np.isnan(g64), np.isnan(gr64))
    assert np.all(np.abs(g64 - gr64) <= 4 * eps * np.maximum(np.abs(gr64), terms)
                  + 4 * np.finfo(dtype).tiny)
