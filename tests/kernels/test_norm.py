"""bias_grad, linear_backward, dropout (Philox4x32-10), batch norm and layer norm:
fastmlp.ops against the float64 NumPy references in fastmlp._reference.

Tolerances: the kernels accumulate every reduction in float64 and evaluate
every per-element formula in float64, rounding once to the output dtype, so
float32 results must be within a few float32 ulps of the float64 reference
(scaled by the magnitude of the terms), and float64 results within a small
multiple of the blocked-summation bound (64 + log2(N / 64)) * eps.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp
from fastmlp import _reference as R
from fastmlp import ops
from fastmlp._core import _norm

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F32, F64]
SHAPES = [(1, 1), (7, 13), (97, 131), (64, 3), (65, 3), (130, 600)]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]
def _usable_archs():
    from fastmlp._core import _gemm
    return [code for code in _gemm.arch_names() if _gemm.arch_usable(code)]


ARCHS = _usable_archs()


def _arch_name(code):
    from fastmlp._core import _gemm
    return _gemm.arch_names()[code]


def f64(x):
    return np.asarray(x, dtype=np.float64)


def make(rng, shape, dtype, order="C", scale=1.0, offset=0.0):
    x = rng.standard_normal(shape) * scale * 10.0 ** rng.uniform(-0.5, 0.5, size=shape) + offset
    return np.asarray(x, dtype=dtype, order=order)


def assert_close(got, ref, tol, what=""):
    got, ref = f64(got), f64(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    err = np.abs(got - ref)
    bad = ~(err <= tol)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - tol, -np.inf)), err.shape) \
            if err.ndim else ()
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} off; worst at {i}: got {got[i]!r}, "
                    f"expected {ref[i]!r}, tol {np.broadcast_to(tol, err.shape)[i]!r}")


def sum_tol(g, dtype):
    """Bound for column sums of g in `dtype` (float64 accumulation, one rounding)."""
    g = f64(g)
    mag = np.abs(g).sum(axis=0)
    eps = np.finfo(dtype).eps
    n_blocks = max(1, -(-g.shape[0] // _norm.BLOCK_ROWS))
    acc = (_norm.BLOCK_ROWS + np.log2(n_blocks) + 4) * np.finfo(F64).eps * mag
    return eps * np.abs(g.sum(axis=0)) + acc + np.finfo(dtype).tiny


VIEWS = {
    "C": lambda a: a,
    "F": lambda a: np.asfortranarray(a),
    "strided": lambda a: np.repeat(np.repeat(a, 2, axis=0), 3, axis=1)[::2, ::3],
    "reversed": lambda a: a[::-1, ::-1].copy()[::-1, ::-1],  # negative strides
    "padded_rows": lambda a: np.pad(a, ((0, 0), (0, 5)))[:, :a.shape[1]],
    "negative_row_stride": lambda a: a[::-1].copy()[::-1],
}


def _view(a, kind):
    v = VIEWS[kind](a)
    assert np.array_equal(v, a)
    return v


# ================================================================ bias_grad

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(0, 5), (5, 0), (1000, 37)],
                         ids=SHAPE_IDS + ["0x5", "5x0", "1000x37"])
def test_bias_grad_shapes(rng, shape, dtype):
    g = make(rng, shape, dtype)
    g0 = g.copy()
    res = ops.bias_grad(g)
    assert res.shape == (shape[1],) and res.dtype == dtype
    assert_close(res, R.bias_grad(g), sum_tol(g, dtype), "bias_grad")
    assert np.array_equal(g, g0)
    if shape[0] == 0:
        assert np.array_equal(res, np.zeros(shape[1], dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", list(VIEWS))
def test_bias_grad_layouts(rng, kind, dtype):
    g = make(rng, (150, 41), dtype)
    expected = ops.bias_grad(g)
    assert np.array_equal(ops.bias_grad(_view(g, kind)), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bias_grad_exact_on_integers(rng, dtype):
    g = rng.integers(-1000, 1000, size=(777, 23)).astype(dtype)
    assert np.array_equal(ops.bias_grad(g), g.astype(np.int64).sum(axis=0).astype(dtype))


def test_bias_grad_float32_accumulates_in_float64():
    # 1 + 2^24 ones: a float32 accumulator would stop at 2^24.
    g = np.ones((1 << 12, 3), np.float32)
    g[0] = 2.0 ** 24
    assert np.array_equal(ops.bias_grad(g), np.full(3, 2.0 ** 24 + (1 << 12) - 1, np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("out_kind", ["C", "strided", "misaligned", "reversed"])
def test_bias_grad_out(rng, out_kind, dtype):
    g = make(rng, (70, 19), dtype)
    if out_kind == "strided":
        out = np.full(38, np.nan, dtype)[::2]
    elif out_kind == "reversed":
        out = np.full(19, np.nan, dtype)[::-1]
    elif out_kind == "misaligned":
        raw = np.zeros(19 * dtype.itemsize + 8, np.uint8)
        out = np.ndarray((19,), dtype, buffer=raw, offset=1)
    else:
        out = np.full(19, np.nan, dtype)
    res = ops.bias_grad(g, out=out)
    assert res is out
    assert np.array_equal(out, ops.bias_grad(g))


def test_bias_grad_out_aliases_input(rng):
    g = make(rng, (19, 19), F64)
    expected = ops.bias_grad(g)
    out = g[3]  # a row of g itself
    g0 = g.copy()
    assert ops.bias_grad(g, out=out) is out
    assert np.array_equal(out, expected)
    assert np.array_equal(np.delete(g, 3, axis=0), np.delete(g0, 3, axis=0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bias_grad_nan_and_inf_stay_in_their_column(rng, dtype):
    g = make(rng, (300, 9), dtype)
    g[7, 2] = np.nan
    g[200, 5] = np.inf
    res = ops.bias_grad(g)
    assert np.isnan(res[2]) and res[5] == np.inf
    assert np.isfinite(np.delete(res, [2, 5])).all()


def test_bias_grad_float32_huge_values_round_once():
    # Partial sums beyond float32's range are fine in the float64 accumulator.
    g = np.full((4, 2), 3e38, np.float32)
    g[1::2] = -3e38
    assert np.array_equal(ops.bias_grad(g), np.zeros(2, np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bias_grad_threads_bitwise(rng, dtype):
    g = make(rng, (3000, 700), dtype)
    with fastmlp.threads(1):
        a = ops.bias_grad(g)
    with fastmlp.threads(2):
        b = ops.bias_grad(g)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_column_reductions_few_row_blocks_threads_bitwise(rng, dtype):
    # 2 row blocks x 2000 columns: the tiles are split over columns, in a
    # way that depends on the thread count; the results may not.
    x = make(rng, (100, 2000), dtype, offset=3.0)
    gy = make(rng, (100, 2000), dtype)
    res = []
    for n in (1, 2):
        with fastmlp.threads(n):
            y, cache = ops.batch_norm_forward(x, None, None, None, None)
            res.append((ops.bias_grad(x), y) + ops.batch_norm_backward(gy, cache))
    for u, v in zip(*res):
        assert np.array_equal(u, v)


@pytest.fixture
def parallel_everywhere():
    """Run every kernel and block-table reduction in parallel, however small."""
    old = _norm._set_parallel_thresholds(1, 1)
    yield
    _norm._set_parallel_thresholds(*old)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (97, 131), (200, 1100), (3, 2000)],
                         ids=lambda s: "x".join(map(str, s)))
def test_parallel_paths_small_shapes(rng, shape, dtype, parallel_everywhere):
    x = make(rng, shape, dtype, offset=1.0)
    gy = make(rng, shape, dtype)
    gamma, beta = bn_params(rng, shape[1], dtype)
    res = []
    for n in (1, 2, 3):
        with fastmlp.threads(n):
            r = [ops.bias_grad(x), ops.dropout(x, 0.3, seed=9)]
            if shape[0] > 1:
                y, cache = ops.batch_norm_forward(x, gamma, beta, None, None)
                r += [y, *ops.batch_norm_backward(gy, cache)]
            y, cache = ops.layer_norm_forward(x, gamma, beta)
            r += [y, *ops.layer_norm_backward(gy, cache)]
            res.append(r)
    for other in res[1:]:
        for u, v in zip(res[0], other):
            assert np.array_equal(u, v)
    assert_close(res[1][0], R.bias_grad(x), sum_tol(x, dtype), "bias_grad")
    check_dropout(res[1][1], x, 0.3, 9)
    if shape[0] > 1:
        y_ref, _ = R.batch_norm_forward(x, gamma, beta, None, None)
        assert_close(res[1][2], y_ref, norm_tol(y_ref, gamma, beta, dtype, 10), "bn y")
    y_ref, _ = R.layer_norm_forward(x, gamma, beta)
    assert_close(res[1][-4], y_ref, norm_tol(y_ref, gamma, beta, dtype, 10), "ln y")


# ================================================================ linear_backward

def gemm_tol(a, b, dtype):
    k = a.shape[1]
    return (k + 4) * np.finfo(dtype).eps * (np.abs(f64(a)) @ np.abs(f64(b))) + np.finfo(dtype).tiny


def check_linear_backward(res, x, w, gy, dtype, need_grad_x=True):
    gx, gw, gb = res
    if need_grad_x:
        assert gx.dtype == dtype and gx.shape == x.shape
        assert_close(gx, f64(gy) @ f64(w).T, gemm_tol(gy, w.T, dtype), "grad_x")
    else:
        assert gx is None
    assert gw.dtype == dtype and gw.shape == w.shape
    assert_close(gw, f64(x).T @ f64(gy), gemm_tol(x.T, gy, dtype), "grad_w")
    assert gb.dtype == dtype
    assert_close(gb, f64(gy).sum(axis=0), sum_tol(gy, dtype), "grad_b")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 13, 5), (97, 131, 61), (0, 3, 4), (300, 20, 9)],
                         ids=lambda s: "x".join(map(str, s)))
def test_linear_backward(rng, shape, dtype):
    n, n_in, n_out = shape
    x, w = make(rng, (n, n_in), dtype), make(rng, (n_in, n_out), dtype)
    gy = make(rng, (n, n_out), dtype)
    copies = [a.copy() for a in (x, w, gy)]
    check_linear_backward(ops.linear_backward(x, w, gy), x, w, gy, dtype)
    check_linear_backward(ops.linear_backward(x, w, gy, need_grad_x=False), x, w, gy, dtype, False)
    for a, a0 in zip((x, w, gy), copies):
        assert np.array_equal(a, a0)
    ref = R.linear_backward(x, w, gy)
    assert ref[0].shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("order", ["C", "F"])
def test_linear_backward_layouts_and_outs(rng, order, dtype):
    n, n_in, n_out = 37, 29, 23
    x = make(rng, (n, n_in), dtype, order)
    w = _view(make(rng, (n_in, n_out), dtype), "strided")
    gy = make(rng, (n, n_out), dtype, order)
    gx_out = np.full((n, n_in), np.nan, dtype, order="F")
    gw_out = np.full((2 * n_in, n_out), np.nan, dtype)[::2]
    gb_out = np.full(n_out, np.nan, dtype)
    res = ops.linear_backward(x, w, gy, grad_x_out=gx_out, grad_w_out=gw_out, grad_b_out=gb_out)
    assert res[0] is gx_out and res[1] is gw_out and res[2] is gb_out
    check_linear_backward(res, x, w, gy, dtype)


def test_linear_backward_outs_alias_inputs(rng):
    # In-place use: grad_w written over w and grad_x over x must still see the
    # original inputs in every product.
    n = 24
    x, w, gy = make(rng, (n, n), F64), make(rng, (n, n), F64), make(rng, (n, n), F64)
    x0, w0, gy0 = x.copy(), w.copy(), gy.copy()
    res = ops.linear_backward(x, w, gy, grad_x_out=x, grad_w_out=w, grad_b_out=gy[0])
    assert res[0] is x and res[1] is w
    check_linear_backward(res, x0, w0, gy0, F64)


def test_linear_backward_mixed_dtypes(rng):
    x, w, gy = make(rng, (9, 5), F32), make(rng, (5, 4), F64), make(rng, (9, 4), F32)
    res = ops.linear_backward(x, w, gy)
    check_linear_backward(res, x, w, gy, F64)


def test_linear_backward_bad_input(rng):
    x, w, gy = np.ones((4, 3)), np.ones((3, 2)), np.ones((4, 2))
    with pytest.raises(ValueError, match=r"not aligned"):
        ops.linear_backward(x, np.ones((4, 2)), gy)
    with pytest.raises(ValueError, match=r"grad_y has shape \(4, 3\), expected \(4, 2\)"):
        ops.linear_backward(x, w, np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"grad_x_out given but need_grad_x is False"):
        ops.linear_backward(x, w, gy, need_grad_x=False, grad_x_out=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"grad_w_out has shape \(2, 3\), expected \(3, 2\)"):
        ops.linear_backward(x, w, gy, grad_w_out=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"grad_b_out has dtype float32"):
        ops.linear_backward(x, w, gy, grad_b_out=np.ones(2, np.float32))
    with pytest.raises(TypeError, match=r"grad_y has dtype int64"):
        ops.linear_backward(x, w, np.ones((4, 2), np.int64))


def test_linear_backward_threads_bitwise(rng):
    x, w, gy = make(rng, (600, 300), F32), make(rng, (300, 200), F32), make(rng, (600, 200), F32)
    with fastmlp.threads(1):
        a = ops.linear_backward(x, w, gy)
    with fastmlp.threads(2):
        b = ops.linear_backward(x, w, gy)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


# ================================================================ Philox4x32-10

# Random123 kat_vectors, philox4x32_10: (counter, key, expected)
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: _arch_name(a))
@pytest.mark.parametrize("kat", PHILOX_KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers(kat, arch):
    ctr, key, expected = kat
    # 11 copies: the AVX2 path does 8 at a time, the rest one by one.
    ctrs = np.array([ctr] * 11, np.uint32)
    out = _norm.philox4x32_10(ctrs, np.array(key, np.uint32), arch)
    assert (out == np.array(expected, np.uint32)).all()
    assert (R.philox4x32_10(ctrs[:1], key) == np.array(expected, np.uint32)).all()


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: _arch_name(a))
def test_philox_random_counters_match_reference(rng, arch):
    ctrs = rng.integers(0, 1 << 32, size=(37, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, 1 << 32, size=2, dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(_norm.philox4x32_10(ctrs, key, arch), R.philox4x32_10(ctrs, key))


# ================================================================ dropout

DROPOUT_SHAPES = [(), (1,), (7,), (13, 7), (3, 5, 7), (1001,)]


def check_dropout(res, x, p, seed):
    """Mask exactly as the reference; kept values x / (1 - p) to one rounding."""
    dtype = x.dtype
    assert res.shape == x.shape and res.dtype == dtype
    keep = R.dropout_keep_mask(x.size, p, seed, dtype).reshape(x.shape)
    ref = R.dropout(x, p, seed=seed)
    assert_close(res, ref, 2 * np.finfo(dtype).eps * np.abs(ref), "dropout")
    nz = f64(x) != 0
    assert np.array_equal(f64(res)[nz] != 0, keep[nz])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", DROPOUT_SHAPES, ids=str)
def test_dropout_matches_reference(rng, shape, p, dtype):
    x = make(rng, shape, dtype)
    x0 = x.copy()
    res = ops.dropout(x, p, seed=12345)
    check_dropout(res, x, p, 12345)
    assert np.array_equal(x, x0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_p_zero_is_identity(rng, dtype):
    x = make(rng, (9, 4), dtype)
    res = ops.dropout(x, 0.0, seed=1)
    assert res is not x and np.array_equal(res, x)
    out = np.empty_like(x)
    assert ops.dropout(x, 0, seed=1, out=out) is out and np.array_equal(out, x)
    assert np.array_equal(ops.dropout_backward(x, 0.0, seed=1), x)


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: _arch_name(a))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_kernel_any_start_and_length(rng, dtype, arch):
    # Element i's mask depends only on (seed, i): every sub-range, at any
    # offset, in either implementation, agrees with the whole (reference) array.
    n = 300
    x = make(rng, n + 40, dtype)
    full = R.dropout(x, 0.4, seed=77)
    for start in range(9):
        for length in (0, 1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 250):
            y = np.full(length, np.nan, dtype)
            _norm.dropout(x[start:start + length], y, 0.6, 77, start, 1, arch)
            assert_close(y, full[start:start + length],
                         2 * np.finfo(dtype).eps * np.abs(full[start:start + length]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_archs_bitwise_and_far_counters(rng, dtype):
    # Indices past 2^32 blocks use the counter's second word.
    x = make(rng, 5000, dtype)
    start = (1 << 34) + 3
    outs = []
    for arch in ARCHS:
        y = np.empty_like(x)
        _norm.dropout(x, y, 0.7, 2 ** 64 - 1, start, 2, arch)  # keep = 0.7
        outs.append(y)
    for y in outs[1:]:
        assert np.array_equal(y, outs[0])
    per = 4 if dtype == F32 else 2
    i = np.arange(start, start + x.size)
    blocks = np.unique(i // per).astype(np.uint64)
    ctr = np.zeros((blocks.size, 4), np.uint64)
    ctr[:, 0] = blocks & np.uint64(0xFFFFFFFF)
    ctr[:, 1] = blocks >> np.uint64(32)
    words = R.philox4x32_10(ctr, (0xFFFFFFFF, 0xFFFFFFFF)).astype(np.uint64)
    rows = (i // per - int(blocks[0])).astype(np.int64)
    if dtype == F32:
        u = (words[rows, i % 4] >> np.uint64(8)).astype(np.float64) / 2.0 ** 24
    else:
        h = 2 * (i % 2)
        u = (((words[rows, h] >> np.uint64(5)) << np.uint64(26))
             | (words[rows, h + 1] >> np.uint64(6))).astype(np.float64) / 2.0 ** 53
    assert np.array_equal(outs[0] != 0, u < 0.7)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ["F", "strided", "reversed", "transposed"])
def test_dropout_mask_follows_logical_index(rng, kind, dtype):
    x = make(rng, (23, 17), dtype)
    expected = ops.dropout(x, 0.5, seed=3)
    if kind == "transposed":
        v = np.ascontiguousarray(x.T).T
    elif kind == "strided":
        v = _view(x, "strided")
    else:
        v = _view(x, "F" if kind == "F" else "reversed")
    assert np.array_equal(ops.dropout(v, 0.5, seed=3), expected)
    out = np.full((23, 17), np.nan, dtype, order="F")
    assert ops.dropout(v, 0.5, seed=3, out=out) is out
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_in_place_and_overlapping_out(rng, dtype):
    x = make(rng, (31, 9), dtype)
    expected = ops.dropout(x, 0.25, seed=11)
    y = x.copy()
    assert ops.dropout(y, 0.25, seed=11, out=y) is y
    assert np.array_equal(y, expected)
    buf = np.concatenate([x.ravel(), np.zeros(9, dtype)])
    xv = buf[:x.size].reshape(x.shape)
    out = buf[9:].reshape(x.shape)  # shifted by one row: overlaps x
    assert ops.dropout(xv, 0.25, seed=11, out=out) is out
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_backward_is_the_same_mask(rng, dtype):
    x = make(rng, (40, 30), dtype)
    g = make(rng, (40, 30), dtype)
    y = ops.dropout(x, 0.35, seed=2024)
    gx = ops.dropout_backward(g, 0.35, seed=2024)
    assert np.array_equal(y != 0, gx != 0)
    assert np.array_equal(gx, ops.dropout(g, 0.35, seed=2024))
    check_dropout(gx, g, 0.35, 2024)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_dropout_statistics(p, dtype):
    n = 1_000_000
    y = ops.dropout(np.ones(n, dtype), p, seed=987654321)
    kept = np.count_nonzero(y)
    q = 1 - p
    assert abs(kept - n * q) <= 5 * np.sqrt(n * p * q), (kept, n * q)
    # E[dropout(x)] = x: mean of the mask scaled by 1/(1-p) is 1, std sqrt(p/q/n)
    assert abs(f64(y).mean() - 1.0) <= 5 * np.sqrt(p / q / n)
    # No visible period: the keep fractions of the 4 words of a block agree.
    by_word = (y.reshape(-1, 4) != 0).mean(axis=0)
    assert np.all(np.abs(by_word - q) <= 5 * np.sqrt(p * q / (n / 4)))


def test_dropout_seeds_give_different_masks():
    x = np.ones(4096, np.float32)
    masks = [ops.dropout(x, 0.5, seed=s) != 0 for s in (0, 1, 1 << 32, 2 ** 64 - 1)]
    for i in range(len(masks)):
        for j in range(i):
            agree = np.mean(masks[i] == masks[j])
            assert 0.45 < agree < 0.55, (i, j, agree)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_nan_inf(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1.0] * 64, dtype)
    y = ops.dropout(x, 0.5, seed=5)
    keep = R.dropout_keep_mask(x.size, 0.5, 5, dtype)
    # dropped NaN/inf become NaN (x * 0), kept ones stay NaN/inf
    assert np.isnan(y[0::4]).all()
    assert np.array_equal(y[1::4], np.where(keep[1::4], np.inf, np.nan), equal_nan=True)
    assert np.array_equal(y[3::4], np.where(keep[3::4], 2.0, 0.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dropout_threads_bitwise(rng, dtype):
    x = make(rng, (700, 500), dtype)
    with fastmlp.threads(1):
        a = ops.dropout(x, 0.2, seed=42)
    with fastmlp.threads(2):
        b = ops.dropout(x, 0.2, seed=42)
    assert np.array_equal(a, b)


def test_dropout_bad_input():
    x = np.ones((3, 4))
    for p in (1.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
            ops.dropout(x, p, seed=0)
    with pytest.raises(TypeError, match=r"p must be a real number"):
        ops.dropout(x, "0.5", seed=0)
    for seed in (-1, 2 ** 64):
        with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
            ops.dropout(x, 0.5, seed=seed)
    for seed in (1.5, True, None, "1"):
        with pytest.raises(TypeError, match=r"seed must be an int"):
            ops.dropout_backward(x, 0.5, seed=seed)
    with pytest.raises(TypeError):
        ops.dropout(x, 0.5)  # seed is required
    with pytest.raises(TypeError, match=r"x has dtype int64"):
        ops.dropout(np.ones(3, np.int64), 0.5, seed=0)
    with pytest.raises(TypeError, match=r"grad has dtype int64"):
        ops.dropout_backward(np.ones(3, np.int64), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"out has shape \(4, 3\), expected \(3, 4\)"):
        ops.dropout(x, 0.5, seed=0, out=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"out is read-only"):
        ro = np.ones((3, 4))
        ro.flags.writeable = False
        ops.dropout(x, 0.5, seed=0, out=ro)
    assert ops.dropout(np.int64(2 ** 40) * 0.0 + x, 0.5, seed=np.uint64(2 ** 63)).shape == (3, 4)


# ================================================================ batch norm

def norm_tol(y_ref, gamma, beta, dtype, cond=1.0):
    """A few roundings of the output plus float64-level errors scaled by cond."""
    eps = np.finfo(dtype).eps
    g = np.abs(f64(gamma)) if gamma is not None else 1.0
    b = np.abs(f64(beta)) if beta is not None else 0.0
    return 4 * eps * np.abs(y_ref) + (4 * eps + 1e-12 * cond) * (g + b) + np.finfo(dtype).tiny


def bn_params(rng, c, dtype, with_gamma=True, with_beta=True):
    gamma = make(rng, (c,), dtype) if with_gamma else None
    beta = make(rng, (c,), dtype) if with_beta else None
    return gamma, beta


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(2, 1)] + SHAPES[1:], ids=["2x1"] + SHAPE_IDS[1:])
@pytest.mark.parametrize("params", ["affine", "gamma_only", "none"])
def test_batch_norm_training(rng, shape, params, dtype):
    n, c = shape
    x = make(rng, shape, dtype, offset=rng.uniform(-3, 3))
    gamma, beta = bn_params(rng, c, dtype, params != "none", params == "affine")
    rm, rv = make(rng, (c,), F32), np.abs(make(rng, (c,), F64)) + 0.5
    rm_ref, rv_ref = f64(rm), rv.copy()
    x0 = x.copy()
    y, cache = ops.batch_norm_forward(x, gamma, beta, rm, rv, momentum=0.3, eps=1e-3)
    y_ref, cache_ref = R.batch_norm_forward(x, gamma, beta, rm_ref, rv_ref, momentum=0.3, eps=1e-3)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, y_ref, norm_tol(y_ref, gamma, beta, dtype), "y")
    assert np.array_equal(x, x0)
    assert rm.dtype == F32 and rv.dtype == F64
    assert_close(rm, rm_ref, 2 * np.finfo(F32).eps * (np.abs(rm_ref) + 1), "running_mean")
    assert_close(rv, rv_ref, 1e-12 * (np.abs(rv_ref) + 1) if dtype == F64 else
                 1e-6 * (np.abs(rv_ref) + 1), "running_var")
    assert cache.training and cache.mean.dtype == F64
    # backward
    gy = make(rng, shape, dtype)
    gx, gg, gb = ops.batch_norm_backward(gy, cache)
    rx, rg, rb = R.batch_norm_backward(gy, cache_ref)
    assert gx.dtype == gg.dtype == gb.dtype == dtype
    scale = np.abs(f64(gy)).sum(axis=0)
    eps = np.finfo(dtype).eps
    assert_close(gb, rb, sum_tol(gy, dtype), "grad_beta")
    assert_close(gg, rg, 8 * eps * scale * np.sqrt(n) + 1e-300, "grad_gamma")
    gam = np.abs(f64(gamma)) if gamma is not None else 1.0
    xscale = gam / np.sqrt(cache_ref["var"] + 1e-3) * (np.abs(f64(gy)) + scale / n)
    assert_close(gx, rx, 16 * eps * xscale * np.sqrt(n) + 1e-300, "grad_x")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batch_norm_eval_uses_running_stats(rng, dtype):
    n, c = 31, 12
    x = make(rng, (n, c), dtype)
    gamma, beta = bn_params(rng, c, dtype)
    rm = make(rng, (c,), dtype)
    rv = np.abs(make(rng, (c,), dtype)) + 0.1
    rm0, rv0 = rm.copy(), rv.copy()
    y, cache = ops.batch_norm_forward(x, gamma, beta, rm, rv, training=False)
    y_ref, cache_ref = R.batch_norm_forward(x, gamma, beta, rm, rv, training=False)
    assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0)
    assert_close(y, y_ref, norm_tol(y_ref, gamma, beta, dtype), "y")
    assert not cache.training
    gy = make(rng, (n, c), dtype)
    gx, gg, gb = ops.batch_norm_backward(gy, cache)
    rx, rg, rb = R.batch_norm_backward(gy, cache_ref)
    eps = np.finfo(dtype).eps
    assert_close(gx, rx, 4 * eps * np.abs(rx) + 1e-300, "grad_x")
    assert_close(gg, rg, 8 * eps * np.abs(f64(gy) * (f64(x) - f64(rm)) / np.sqrt(f64(rv) + 1e-5))
                 .sum(axis=0) + 1e-300, "grad_gamma")
    assert_close(gb, rb, sum_tol(gy, dtype), "grad_beta")
    # batch of 1 is fine in eval
    y1, _ = ops.batch_norm_forward(x[:1], gamma, beta, rm, rv, training=False)
    assert np.array_equal(y1, y[:1])


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_batch_norm_momentum_limits(rng, momentum):
    x = make(rng, (50, 6), F64)
    rm, rv = np.full(6, 7.0), np.full(6, 9.0)
    ops.batch_norm_forward(x, None, None, rm, rv, momentum=momentum)
    if momentum == 0.0:
        assert np.array_equal(rm, np.full(6, 7.0)) and np.array_equal(rv, np.full(6, 9.0))
    else:
        assert_close(rm, x.mean(axis=0), 1e-14 * (1 + np.abs(x).max()))
        assert_close(rv, x.var(axis=0, ddof=1), 1e-13 * x.var(axis=0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batch_norm_large_offset_is_stable(rng, dtype):
    # mean 1e4, std 1: a one-pass E[x^2] - E[x]^2 in float32 would lose every
    # digit; the two-pass float64 statistics keep y accurate to the output rounding.
    x = (1e4 + rng.standard_normal((500, 8))).astype(dtype)
    y, _ = ops.batch_norm_forward(x, None, None, None, None, eps=1e-12)
    y_ref, _ = R.batch_norm_forward(x, None, None, None, None, eps=1e-12)
    assert_close(y, y_ref, 4 * np.finfo(dtype).eps * (np.abs(y_ref) + 1) + 1e-9, "y")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batch_norm_constant_column_gives_beta(rng, dtype):
    x = make(rng, (100, 5), dtype)
    x[:, 2] = dtype.type(0.375)  # few bits: the float64 column sum is exact
    x[:, 3] = dtype.type(0.1)
    beta = make(rng, (5,), dtype)
    y, cache = ops.batch_norm_forward(x, None, beta, None, None)
    assert np.all(y[:, 2] == beta[2])
    # 0.1 in float64: the mean is off by rounding only, y stays ~beta
    assert np.all(np.abs(f64(y[:, 3]) - f64(beta[3])) <= 1e-9 + 2 * np.finfo(dtype).eps * abs(beta[3]))
    gx, gg, gb = ops.batch_norm_backward(np.ones_like(x), cache)
    assert np.isfinite(gx).all() and np.all(gx[:, 2] == 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", list(VIEWS))
def test_batch_norm_layouts(rng, kind, dtype):
    x = make(rng, (70, 21), dtype)
    gamma, beta = bn_params(rng, 21, dtype)
    gy = make(rng, (70, 21), dtype)
    y, cache = ops.batch_norm_forward(x, gamma, beta, None, None)
    grads = ops.batch_norm_backward(gy, cache)
    y2, cache2 = ops.batch_norm_forward(_view(x, kind), _view(gamma[None], kind)[0], beta,
                                        None, None)
    assert np.array_equal(y2, y)
    for u, v in zip(ops.batch_norm_backward(_view(gy, kind), cache2), grads):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("out_kind", ["F", "strided", "x_itself"])
def test_batch_norm_out(rng, out_kind, dtype):
    x = make(rng, (40, 11), dtype)
    gy = make(rng, (40, 11), dtype)
    gamma, beta = bn_params(rng, 11, dtype)
    y, cache = ops.batch_norm_forward(x, gamma, beta, None, None)
    grads = ops.batch_norm_backward(gy, cache)
    if out_kind == "F":
        out, gout = np.full((40, 11), np.nan, dtype, "F"), np.full((40, 11), np.nan, dtype, "F")
    elif out_kind == "strided":
        out = np.full((80, 22), np.nan, dtype)[::2, ::2]
        gout = np.full((80, 22), np.nan, dtype)[1::2, 1::2]
    else:
        out, gout = x.copy(), gy.copy()
    xin = out if out_kind == "x_itself" else x
    gin = gout if out_kind == "x_itself" else gy
    res, cache2 = ops.batch_norm_forward(xin, gamma, beta, None, None, out=out)
    assert res is out and np.array_equal(out, y)
    gx, gg, gb = ops.batch_norm_backward(gin, cache2, grad_x_out=gout)
    assert gx is gout
    for u, v in zip((gx, gg, gb), grads):
        assert np.array_equal(u, v)


def test_batch_norm_mixed_dtypes(rng):
    x = make(rng, (20, 4), F32)
    gamma = make(rng, (4,), F64)
    y, cache = ops.batch_norm_forward(x, gamma, None, None, None)
    assert y.dtype == F64
    y32, cache32 = ops.batch_norm_forward(x, None, None, None, None)
    gx, gg, gb = ops.batch_norm_backward(make(rng, (20, 4), F64), cache32)
    assert gx.dtype == gg.dtype == gb.dtype == F64


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_batch_norm_threads_bitwise(rng, dtype):
    x = make(rng, (3000, 700), dtype, offset=2.0)
    gy = make(rng, (3000, 700), dtype)
    gamma, beta = bn_params(rng, 700, dtype)
    res = []
    for n in (1, 2):
        rm, rv = np.zeros(700), np.ones(700)
        with fastmlp.threads(n):
            y, cache = ops.batch_norm_forward(x, gamma, beta, rm, rv)
            res.append((y, rm, rv) + ops.batch_norm_backward(gy, cache))
    for u, v in zip(*res):
        assert np.array_equal(u, v)


def test_batch_norm_bad_input(rng):
    x = np.ones((4, 3))
    g = np.ones(3)
    bn = ops.batch_norm_forward
    with pytest.raises(ValueError, match=r"more than 1 sample.*\(1, 3\)"):
        bn(x[:1], g, g, None, None)
    with pytest.raises(ValueError, match=r"empty batch"):
        bn(x[:0], g, g, None, None)
    with pytest.raises(ValueError, match=r"gamma has shape \(4,\), expected \(3,\)"):
        bn(x, np.ones(4), g, None, None)
    with pytest.raises(ValueError, match=r"beta must be 1-D"):
        bn(x, g, np.ones((3, 1)), None, None)
    with pytest.raises(TypeError, match=r"running_mean must be a numpy.ndarray"):
        bn(x, g, g, [0.0, 0.0, 0.0], np.ones(3))
    with pytest.raises(ValueError, match=r"running_var has shape \(2,\), expected \(3,\)"):
        bn(x, g, g, np.zeros(3), np.ones(2))
    with pytest.raises(TypeError, match=r"running_var has dtype int64"):
        bn(x, g, g, np.zeros(3), np.ones(3, np.int64))
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"running_mean is read-only"):
        bn(x, g, g, ro, np.ones(3))
    bn(x, g, g, ro, np.ones(3), training=False)  # read-only is fine in eval
    with pytest.raises(ValueError, match=r"both running_mean and running_var, or neither"):
        bn(x, g, g, np.zeros(3), None)
    with pytest.raises(ValueError, match=r"training=False needs running_mean"):
        bn(x, g, g, None, None, training=False)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        bn(x, g, g, None, None, momentum=1.5)
    for eps in (0.0, -1e-5, float("inf")):
        with pytest.raises(ValueError, match=r"eps must be a positive finite number"):
            bn(x, g, g, None, None, eps=eps)
    with pytest.raises(TypeError, match=r"training must be a bool"):
        bn(x, g, g, None, None, training="yes")
    with pytest.raises(TypeError, match=r"x has dtype int64"):
        bn(np.ones((4, 3), np.int64), g, g, None, None)
    with pytest.raises(ValueError, match=r"out has shape"):
        bn(x, g, g, None, None, out=np.ones((3, 4)))
    _, cache = bn(x, g, g, None, None)
    with pytest.raises(ValueError, match=r"grad_y has shape \(4, 2\), expected \(4, 3\)"):
        ops.batch_norm_backward(np.ones((4, 2)), cache)
    with pytest.raises(TypeError, match=r"cache must be the BatchNormCache"):
        ops.batch_norm_backward(np.ones((4, 3)), tuple(cache))
    _, lcache = ops.layer_norm_forward(x, g, g)
    with pytest.raises(TypeError, match=r"cache must be the BatchNormCache"):
        ops.batch_norm_backward(np.ones((4, 3)), lcache)
    with pytest.raises(ValueError, match=r"grad_x_out has dtype float32"):
        ops.batch_norm_backward(np.ones((4, 3)), cache, grad_x_out=np.ones((4, 3), np.float32))


# ================================================================ layer norm

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES + [(5, 1000), (3, 9)], ids=SHAPE_IDS + ["5x1000", "3x9"])
@pytest.mark.parametrize("params", ["affine", "none"])
def test_layer_norm(rng, shape, params, dtype):
    n, c = shape
    x = make(rng, shape, dtype, offset=rng.uniform(-3, 3))
    gamma, beta = bn_params(rng, c, dtype, params == "affine", params == "affine")
    x0 = x.copy()
    y, cache = ops.layer_norm_forward(x, gamma, beta, eps=1e-4)
    y_ref, cache_ref = R.layer_norm_forward(x, gamma, beta, eps=1e-4)
    assert y.dtype == dtype and y.shape == shape and np.array_equal(x, x0)
    assert_close(y, y_ref, norm_tol(y_ref, gamma, beta, dtype), "y")
    gy = make(rng, shape, dtype)
    gx, gg, gb = ops.layer_norm_backward(gy, cache)
    rx, rg, rb = R.layer_norm_backward(gy, cache_ref)
    assert gx.dtype == gg.dtype == gb.dtype == dtype
    eps = np.finfo(dtype).eps
    assert_close(gb, rb, sum_tol(gy, dtype), "grad_beta")
    xhat = np.abs((f64(x) - cache_ref["mean"]) / np.sqrt(cache_ref["var"] + 1e-4))
    # xhat carries the float64 error of the row statistics (~ (c/8 + 8) eps)
    acc = (c / _norm.LANES + n + 64) * np.finfo(F64).eps
    assert_close(gg, rg, (8 * eps + acc) * (np.abs(f64(gy)) * xhat).sum(axis=0) + 1e-300,
                 "grad_gamma")
    gam = np.abs(f64(gamma)) if gamma is not None else np.ones(c)
    g = np.abs(f64(gy)) * gam
    rowscale = (g.sum(axis=1, keepdims=True) + (g * xhat).sum(axis=1, keepdims=True) * xhat) / c
    xscale = (g + rowscale) / np.sqrt(cache_ref["var"] + 1e-4)
    assert_close(gx, rx, 16 * eps * xscale * np.sqrt(c) + 1e-300, "grad_x")


def test_layer_norm_empty_batch_and_bad_input(rng):
    y, cache = ops.layer_norm_forward(np.ones((0, 4)), None, None)
    assert y.shape == (0, 4)
    gx, gg, gb = ops.layer_norm_backward(np.ones((0, 4)), cache)
    assert gx.shape == (0, 4) and np.array_equal(gg, np.zeros(4)) and np.array_equal(gb, gg)
    with pytest.raises(ValueError, match=r"0 features"):
        ops.layer_norm_forward(np.ones((3, 0)), None, None)
    with pytest.raises(ValueError, match=r"gamma has shape \(3,\), expected \(4,\)"):
        ops.layer_norm_forward(np.ones((2, 4)), np.ones(3), None)
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        ops.layer_norm_forward(np.ones(4), None, None)
    with pytest.raises(ValueError, match=r"eps must be a positive finite number"):
        ops.layer_norm_forward(np.ones((2, 4)), None, None, eps=0)
    with pytest.raises(TypeError, match=r"eps must be a real number"):
        ops.layer_norm_forward(np.ones((2, 4)), None, None, eps="1")
    with pytest.raises(TypeError, match=r"gamma has dtype complex128"):
        ops.layer_norm_forward(np.ones((2, 4)), np.ones(4, complex), None)
    _, cache = ops.layer_norm_forward(np.ones((2, 4)), None, None)
    with pytest.raises(TypeError, match=r"cache must be the LayerNormCache"):
        ops.layer_norm_backward(np.ones((2, 4)), None)
    with pytest.raises(ValueError, match=r"grad_y has shape \(4, 2\), expected \(2, 4\)"):
        ops.layer_norm_backward(np.ones((4, 2)), cache)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_norm_large_offset_and_constant_rows(rng, dtype):
    x = (1e4 + rng.standard_normal((20, 300))).astype(dtype)
    x[3] = dtype.type(5.5)
    beta = make(rng, (300,), dtype)
    y, cache = ops.layer_norm_forward(x, None, beta, eps=1e-12)
    y_ref, _ = R.layer_norm_forward(x, None, beta, eps=1e-12)
    assert np.array_equal(y[3], beta)
    assert_close(y, y_ref, 4 * np.finfo(dtype).eps * (np.abs(y_ref) + 1) + 1e-9, "y")
    gx, _, _ = ops.layer_norm_backward(np.ones_like(x), cache)
    assert np.isfinite(gx).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", list(VIEWS))
def test_layer_norm_layouts_and_out(rng, kind, dtype):
    x = make(rng, (45, 19), dtype)
    gy = make(rng, (45, 19), dtype)
    gamma, beta = bn_params(rng, 19, dtype)
    y, cache = ops.layer_norm_forward(x, gamma, beta)
    grads = ops.layer_norm_backward(gy, cache)
    out = _view(np.full((45, 19), -7.0, dtype), kind)
    gout = _view(np.full((45, 19), -7.0, dtype), kind)
    res, cache2 = ops.layer_norm_forward(_view(x, kind), gamma, _view(beta[None], kind)[0],
                                         out=out)
    assert res is out and np.array_equal(out, y)
    gx, gg, gb = ops.layer_norm_backward(_view(gy, kind), cache2, grad_x_out=gout)
    assert gx is gout
    for u, v in zip((gx, gg, gb), grads):
        assert np.array_equal(u, v)
    # out overlapping x: the cache keeps a copy
    xx = x.copy()
    res, cache3 = ops.layer_norm_forward(xx, gamma, beta, out=xx)
    assert res is xx and np.array_equal(xx, y)
    for u, v in zip(ops.layer_norm_backward(gy, cache3), grads):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_norm_threads_bitwise(rng, dtype):
    x = make(rng, (3000, 700), dtype)
    gy = make(rng, (3000, 700), dtype)
    gamma, beta = bn_params(rng, 700, dtype)
    res = []
    for n in (1, 2):
        with fastmlp.threads(n):
            y, cache = ops.layer_norm_forward(x, gamma, beta)
            res.append((y, cache.mean, cache.inv_std) + ops.layer_norm_backward(gy, cache))
    for u, v in zip(*res):
        assert np.array_equal(u, v)


# ================================================================ the compiled core: archs agree

@pytest.mark.skipif(len(ARCHS) < 2, reason="only the reference kernels are usable here")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_archs_bitwise_identical(rng, dtype):
    # Same source compiled for two ISAs without FP contraction: same roundings.
    n, c = 200, 77
    x, dy = make(rng, (n, c), dtype, offset=1.0), make(rng, (n, c), dtype)
    mean, a, b, k = (make(rng, (c,), F64) for _ in range(4))
    rstd = np.abs(make(rng, (n,), F64)) + 0.5
    gamma = make(rng, (c,), F64)
    results = []
    for arch in ARCHS:
        r = {}
        for key in ("sum", "sumsq", "sdy", "sdyxc", "dgamma", "dbeta", "smean", "sm2"):
            r[key] = np.empty(c)
        for key in ("affine", "dx", "ln_y", "ln_dx"):
            r[key] = np.empty((n, c), dtype)
        r["ln_mean"], r["ln_rstd"] = np.empty(n), np.empty(n)
        r["bias"] = np.empty(c, dtype)
        _norm.bias_grad(x, r["bias"], 2, arch)
        _norm.column_sums(x, r["sum"], None, 2, arch)
        _norm.column_sums(x, r["sumsq"], mean, 2, arch)
        _norm.column_stats(x, r["smean"], r["sm2"], 2, arch)
        _norm.affine(x, mean, a, b, r["affine"], 2, arch)
        _norm.batch_norm_backward_sums(dy, x, mean, r["sdy"], r["sdyxc"], 2, arch)
        _norm.batch_norm_backward_dx(dy, x, mean, a, b, k, r["dx"], 2, arch)
        _norm.layer_norm_forward(x, gamma, b, 1e-5, r["ln_y"], r["ln_mean"], r["ln_rstd"], 2, arch)
        _norm.layer_norm_backward(dy, x, mean[:1].repeat(n), rstd, gamma, r["ln_dx"],
                                  r["dgamma"], r["dbeta"], 2, arch)
        results.append(r)
    for key in results[0]:
        assert np.array_equal(results[0][key], results[1][key]), key


def test_bad_arch_is_rejected():
    with pytest.raises(ValueError, match=r"not usable"):
        _norm.bias_grad(np.ones((2, 2)), np.empty(2), 1, 7)
    with pytest.raises(ValueError, match=r"not usable"):
        _norm.philox4x32_10(np.zeros((1, 4), np.uint32), np.zeros(2, np.uint32), 7)


# ================================================================ hypothesis: vs the reference

_dims = st.integers(1, 70)


@settings(max_examples=40, deadline=None)
@given(n=_dims, c=_dims, f32=st.booleans(), seed=st.integers(0, 2 ** 32 - 1),
       transpose=st.booleans())
def test_property_bias_grad(n, c, f32, seed, transpose):
    rng = np.random.default_rng(seed)
    dtype = F32 if f32 else F64
    g = make(rng, (c, n) if transpose else (n, c), dtype)
    g = g.T if transpose else g
    assert_close(ops.bias_grad(g), R.bias_grad(g), sum_tol(g, dtype))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 70), c=_dims, f32=st.booleans(), seed=st.integers(0, 2 ** 32 - 1),
       offset=st.floats(-100, 100), training=st.booleans())
def test_property_batch_norm(n, c, f32, seed, offset, training):
    rng = np.random.default_rng(seed)
    dtype = F32 if f32 else F64
    x = make(rng, (n, c), dtype, offset=offset)
    gamma, beta = bn_params(rng, c, dtype)
    rm, rv = make(rng, (c,), F64), np.abs(make(rng, (c,), F64)) + 0.1
    y, cache = ops.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training)
    y_ref, cache_ref = R.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(),
                                            training=training)
    cond = 1 + abs(offset) / np.sqrt(cache_ref["var"] + 1e-5)
    assert_close(y, y_ref, norm_tol(y_ref, gamma, beta, dtype, cond) * (1 if f32 else cond), "y")
    gy = make(rng, (n, c), dtype)
    gx, gg, gb = ops.batch_norm_backward(gy, cache)
    rx, rg, rb = R.batch_norm_backward(gy, cache_ref)
    tol = (1e-4 if f32 else 1e-10) * cond
    assert_close(gb, rb, tol * (np.abs(f64(gy)).sum(axis=0) + 1))
    assert_close(gg, rg, tol * (np.abs(f64(gy) * cache_ref["x"]).sum(axis=0) + 1))
    assert_close(gx, rx, tol * (np.abs(rx).max() + np.abs(f64(gy)).max()))


@settings(max_examples=30, deadline=None)
@given(n=_dims, c=_dims, f32=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_property_layer_norm(n, c, f32, seed):
    rng = np.random.default_rng(seed)
    dtype = F32 if f32 else F64
    x = make(rng, (n, c), dtype)
    gamma, beta = bn_params(rng, c, dtype)
    y, cache = ops.layer_norm_forward(x, gamma, beta)
    y_ref, cache_ref = R.layer_norm_forward(x, gamma, beta)
    assert_close(y, y_ref, norm_tol(y_ref, gamma, beta, dtype, 10), "y")
    gy = make(rng, (n, c), dtype)
    gx, gg, gb = ops.layer_norm_backward(gy, cache)
    rx, rg, rb = R.layer_norm_backward(gy, cache_ref)
    tol = 1e-4 if f32 else 1e-10
    assert_close(gb, rb, tol * (np.abs(f64(gy)).sum(axis=0) + 1))
    assert_close(gg, rg, tol * (np.abs(f64(gy)).sum(axis=0) * 10 + 1))
    assert_close(gx, rx, tol * (np.abs(rx).max() + 1) * 10)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 300), p=st.floats(0.0, 0.99), seed=st.integers(0, 2 ** 64 - 1),
       f32=st.booleans())
def test_property_dropout(size, p, seed, f32):
    dtype = F32 if f32 else F64
    x = np.linspace(-3, 3, size).astype(dtype) + dtype.type(0.01)
    res = ops.dropout(x, p, seed=seed)
    if p == 0:
        assert np.array_equal(res, x)
    else:
        check_dropout(res, x, p, seed)
