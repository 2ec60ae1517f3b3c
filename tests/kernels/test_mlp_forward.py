"""The whole-network forward pass in one call (fastmlp/_core/_mlp.pyx over
src_c/nn/mlp.c), used by the estimators' predict.

It runs every layer's GEMM (bias and hidden activation fused) and the output
softmax inside one OpenMP parallel region through the team GEMM entry
(gemm.h fm_?gemm_team_prepare). Its contract is to give bitwise the result of
the same kernels called one by one -- so thread-count independence carries
over -- and it is checked against that and against a float64 NumPy forward
pass (independent reference, rounding-error tolerance).
"""
import numpy as np
import pytest

from fastmlp._core import _act, _gemm, _mlp

GEMM_ACT = {"identity": 0, "relu": 1, "leaky_relu": 2, "logistic": 3, "tanh": 4}
SLOPE = 0.01


def net(rng, units, dtype, fortran=False):
    ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(units[:-1], units[1:])]
    bs = [rng.standard_normal(b) * 0.1 for b in units[1:]]
    ws = [np.asarray(w, dtype, order="F" if fortran else "C") for w in ws]
    return ws, [b.astype(dtype) for b in bs]


def ref64(x, ws, bs, act, softmax):
    fn = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0),
          "leaky_relu": lambda z: np.where(z > 0, z, SLOPE * z),
          "logistic": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh}[act]
    a = x.astype(np.float64)
    for i, (w, b) in enumerate(zip(ws, bs)):
        a = a @ w.astype(np.float64) + b.astype(np.float64)
        if i < len(ws) - 1:
            a = fn(a)
    if softmax:
        e = np.exp(a - a.max(axis=1, keepdims=True))
        a = e / e.sum(axis=1, keepdims=True)
    return a


def one_by_one(x, ws, bs, act, softmax):
    """The same kernels called one at a time on one thread."""
    a = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = np.empty((x.shape[0], w.shape[1]), x.dtype)
        _gemm.gemm(a, w, h, 1.0, 0.0, b, GEMM_ACT[act] if i < len(ws) - 1 else 0, SLOPE, 1)
        a = h
    if softmax and a.shape[0]:
        out = np.empty_like(a)
        _act.softmax(a, out, False, 1)
        a = out
    return a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", list(GEMM_ACT))
@pytest.mark.parametrize("m", [0, 1, 5, 9, 130])
def test_forward_matches_kernels_and_reference(dtype, act, m):
    rng = np.random.default_rng(m)
    units = [37, 64, 19, 7]
    ws, bs = net(rng, units, dtype)
    x = rng.standard_normal((m, units[0])).astype(dtype)
    for softmax in (False, True):
        expect = one_by_one(x, ws, bs, act, softmax)
        for nt in (1, 2, 3):
            out, done = _mlp.forward(x, ws, bs, GEMM_ACT[act], SLOPE, softmax, nt)
            assert done == softmax and out.shape == (m, units[-1]) and out.dtype == dtype
            assert out.flags.c_contiguous
            np.testing.assert_array_equal(out, expect)
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out, ref64(x, ws, bs, act, softmax), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_big_layers_threads(dtype):
    # Layers wide enough for several threads (small-m and blocked paths).
    rng = np.random.default_rng(1)
    units = [784, 256, 128, 10]
    ws, bs = net(rng, units, dtype)
    for m in (1, 4, 64, 300):
        x = rng.standard_normal((m, units[0])).astype(dtype)
        expect = one_by_one(x, ws, bs, "relu", True)
        for nt in (1, 2, 4):
            out, _ = _mlp.forward(x, ws, bs, 1, SLOPE, True, nt)
            np.testing.assert_array_equal(out, expect)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out, ref64(x, ws, bs, "relu", True), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_strided_inputs(dtype):
    rng = np.random.default_rng(2)
    units = [30, 40, 5]
    ws, bs = net(rng, units, dtype, fortran=True)
    wide = rng.standard_normal((23, 2 * units[0])).astype(dtype)
    for x in (wide[:, ::2], np.asfortranarray(wide[:, :units[0]]), wide[::-2, 1::2],
              wide[:1, :units[0]]):
        expect = one_by_one(np.ascontiguousarray(x), [np.ascontiguousarray(w) for w in ws],
                            bs, "tanh", False)
        for nt in (1, 2):
            out, _ = _mlp.forward(x, ws, bs, GEMM_ACT["tanh"], SLOPE, False, nt)
            np.testing.assert_array_equal(out, expect)
    # a transposed view as weights
    wt = [np.ascontiguousarray(w.T).T for w in ws]
    x = wide[:, :units[0]]
    np.testing.assert_array_equal(_mlp.forward(x, wt, bs, 4, SLOPE, False, 2)[0],
                                  one_by_one(x, [np.ascontiguousarray(w) for w in ws], bs,
                                             "tanh", False))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_argmax(dtype):
    rng = np.random.default_rng(3)
    ws, bs = net(rng, [12, 9, 6], dtype)
    x = rng.standard_normal((50, 12)).astype(dtype)
    probs, _ = _mlp.forward(x, ws, bs, 1, SLOPE, True, 2)
    idx, done = _mlp.forward(x, ws, bs, 1, SLOPE, True, 2, True)
    assert done and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.argmax(probs, axis=1))
    # ties take the first largest, as numpy does; a NaN row its first NaN
    zero_w = [np.zeros_like(w) for w in ws]
    zero_b = [np.zeros_like(b) for b in bs]
    idx, _ = _mlp.forward(x, zero_w, zero_b, 1, SLOPE, False, 1, True)
    np.testing.assert_array_equal(idx, np.zeros(50, np.int64))
    bad_b = [bs[0], bs[1].copy()]
    bad_b[1][[2, 4]] = np.nan
    out, _ = _mlp.forward(x, ws, bad_b, 1, SLOPE, False, 1)
    idx, _ = _mlp.forward(x, ws, bad_b, 1, SLOPE, False, 1, True)
    np.testing.assert_array_equal(idx, np.argmax(out, axis=1))
    assert (idx == 2).all()


def test_forward_rejects_what_it_cannot_address():
    rng = np.random.default_rng(4)
    ws, bs = net(rng, [5, 4, 3], np.float32)
    x = np.ones((2, 5), np.float32)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _mlp.forward(x.tolist(), ws, bs, 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="float32 or float64"):
        _mlp.forward(x.astype(np.int32), ws, bs, 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="dtype"):
        _mlp.forward(x.astype(np.float64), ws, bs, 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="layer 1"):
        _mlp.forward(x, [ws[0], ws[1][:3]], bs, 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="layer 0"):
        _mlp.forward(np.ones((2, 6), np.float32), ws, bs, 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="contiguous"):
        wide = np.ones(8, np.float32)
        _mlp.forward(x, ws, [bs[0], wide[::2][:3]], 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="layers"):
        _mlp.forward(x, ws, bs[:1], 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="layers"):
        _mlp.forward(x, [], [], 1, SLOPE, False, 1)
    with pytest.raises(ValueError, match="invalid"):
        _mlp.forward(x, ws, bs, 99, SLOPE, False, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite(dtype):
    x = np.arange(60, dtype=dtype).reshape(6, 10)
    assert _mlp.all_finite(x) and _mlp.all_finite(x[:, ::3]) and _mlp.all_finite(x.T)
    assert _mlp.all_finite(x[:0])
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[4, 7] = bad
        assert not _mlp.all_finite(y)
        assert not _mlp.all_finite(np.asfortranarray(y))
        assert _mlp.all_finite(y[:, ::2])          # the bad value is skipped by the view
        assert not _mlp.all_finite(y[:, 1::2])
    big = np.full((2, 3), np.finfo(dtype).max, dtype)
    assert _mlp.all_finite(big) and _mlp.all_finite(-big)
    # anything the fast path does not take is "not known finite"
    assert not _mlp.all_finite(x.astype(np.int64))
    assert not _mlp.all_finite(x.reshape(2, 3, 10))
    assert not _mlp.all_finite(x.astype(x.dtype.newbyteorder()))
    assert not _mlp.all_finite(x.tolist())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_vectors_and_threads(dtype):
    # vectors (long ones are checked as rows plus a tail) and big arrays
    # checked by several threads: a bad value anywhere is found
    for n in (0, 1, 17, 4096, 4097, 3 * 4096 + 5):
        v = np.linspace(-1, 1, n).astype(dtype)
        assert _mlp.all_finite(v) and _mlp.all_finite(v[::-3])
        for pos in {0, n // 2, n - 1} if n else ():
            w = v.copy()
            w[pos] = np.nan
            assert not _mlp.all_finite(w)
            assert _mlp.all_finite(w[pos + 1:])
    big = np.ones((3000, 700), dtype)
    for nt in (1, 2, 3):
        assert _mlp.all_finite(big, nt)
    for r, c in ((0, 0), (1500, 350), (2999, 699)):
        b = big.copy()
        b[r, c] = -np.inf
        for nt in (1, 2, 3):
            assert not _mlp.all_finite(b, nt)
            assert not _mlp.all_finite(b.ravel(), nt)
