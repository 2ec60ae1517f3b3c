"""GEMM with few rows (m <= the table's ``smallm``): the path that reads B in
place instead of packing it (src_c/kernels/*/gemm_smallm_*.c).

Every result is checked against a float64 NumPy reference with the forward
error bound of test_gemm.py, |C - ref| <= (k + 4) eps (|alpha| |A| |B| +
|beta| |C0|) + |bias| terms, and the activations through their 1-Lipschitz
bound. The small-m path is also bitwise identical to the blocked path (same K
blocks, same per-element arithmetic), so a row of a batch equals the same row
computed alone, for every thread count and on every kernel architecture.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmlp
from fastmlp import _reference, ops
from fastmlp._core import _gemm

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F32, F64]
ACTS = ["relu", "leaky_relu", "sigmoid", "tanh"]
ARCHS = [code for code in _gemm.arch_names() if _gemm.arch_usable(code)]
ARCH_IDS = [_gemm.arch_names()[code] for code in ARCHS]


def smallm(dtype, arch=_gemm.ARCH_AUTO):
    return _gemm.gemm_info(np.dtype(dtype) == F64, arch)["smallm"]


def make(rng, shape, dtype):
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-1, 1, size=shape)
    return np.asarray(x, dtype=dtype)


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def reference(a, b, alpha=1.0, beta=0.0, c0=None, bias=None, act=None, slope=0.01):
    """float64 act(alpha a@b + beta c0 + bias) and its error bound in a's dtype."""
    eps = np.finfo(a.dtype).eps
    k = a.shape[1]
    z = alpha * (_f64(a) @ _f64(b))
    mag = abs(alpha) * (np.abs(_f64(a)) @ np.abs(_f64(b)))
    if beta != 0:
        z = z + beta * _f64(c0)
        mag = mag + abs(beta) * np.abs(_f64(c0))
    if bias is not None:
        z = z + _f64(bias)
        mag = mag + np.abs(_f64(bias))
    ref = _reference.activation(act, z, alpha=slope) if act else z
    # (k + 4) eps for the products and sums, one more for alpha/beta/bias,
    # and the float32 vector sigmoid/tanh add ~4 ulp of their own value
    bound = (k + 5) * eps * mag + 16 * np.finfo(a.dtype).tiny
    if act in ("sigmoid", "tanh"):
        bound = bound + 8 * eps * np.abs(ref)
    return ref, bound


def check(c, ref, bound):
    err = np.abs(_f64(c) - ref)
    bad = ~(err <= bound)  # NaN counts as bad
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        pytest.fail(f"{int(bad.sum())} of {bad.size} off; worst at {i}: got {c[i]!r}, "
                    f"expected {ref[i]!r}, bound {bound[i]!r}")


def run(a, b, c, alpha=1.0, beta=0.0, bias=None, act=None, slope=0.01, threads=1,
        arch=_gemm.ARCH_AUTO):
    _gemm.gemm(a, b, c, alpha, beta, bias, _gemm.ACTIVATIONS[act], slope, threads, arch)
    return c


# ---------------------------------------------------------------- the path exists

def test_tables_have_a_small_m_path():
    for arch in ARCHS:
        for dt in DTYPES:
            assert 4 <= smallm(dt, arch) <= 64


# ---------------------------------------------------------------- values

# (k, n): n = 1, n below / not a multiple of the vector width (8 floats,
# 4 doubles) and of every chunk width, k = 1, k over several K blocks, and
# rows of 0.5-4 KB (the one-row streaming kernel) with a ragged end
KN = [(1, 1), (1, 37), (5, 1), (13, 8), (40, 61), (128, 10), (256, 130), (2100, 130), (9, 1021)]


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_values_every_epilogue(rng, m, dtype, arch):
    """Each (k, n) with one random epilogue: alpha, beta (0 over a NaN-filled C
    or not), bias or not, and an activation, all against float64."""
    for k, n in KN:
        a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
        alpha = float(rng.choice([1.0, -0.75, 2.5]))
        beta = float(rng.choice([0.0, 0.0, 1.0, -0.5]))
        bias = make(rng, (n,), dtype) if rng.random() < 0.7 else None
        act = rng.choice([None] + ACTS)
        c0 = make(rng, (m, n), dtype)
        c = c0.copy() if beta != 0 else np.full((m, n), np.nan, dtype)
        run(a, b, c, alpha, beta, bias, act, 0.2, arch=arch)
        check(c, *reference(a, b, alpha, beta, c0, bias, act, 0.2))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ACTS)
def test_linear_each_activation(rng, act, dtype):
    for m, (k, n) in [(1, (784, 256)), (3, (256, 128)), (1, (128, 10)), (4, (33, 19))]:
        x, w, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype), make(rng, (n,), dtype)
        out = ops.linear(x, w, b, act, alpha=0.05)
        assert out.dtype == dtype and out.shape == (m, n)
        check(out, *reference(x, w, bias=b, act=act, slope=0.05))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_k0_is_epilogue_of_beta_c_and_bias(rng, dtype):
    c0 = make(rng, (2, 9), dtype)
    bias = make(rng, (9,), dtype)
    a, b = np.empty((2, 0), dtype), np.empty((0, 9), dtype)
    c = c0.copy()
    run(a, b, c, 2.0, 0.5, bias, "relu")
    np.testing.assert_array_equal(c, np.maximum(dtype.type(0.5) * c0 + bias, 0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_and_inf_propagate(rng, dtype):
    k, n = 300, 45
    a, b = make(rng, (2, k), dtype), make(rng, (k, n), dtype)
    a[0, 7] = np.nan
    b[11, 3] = np.inf
    for act in [None] + ACTS:
        c = run(a, b, np.zeros((2, n), dtype), act=act)
        assert np.isnan(c[0]).all(), act            # NaN in a row of A: the whole row
        assert not np.isnan(c[1]).any(), act        # one inf in B: no NaN elsewhere
        z = np.inf * np.sign(a[1, 11] * b[11, 3])
        assert c[1, 3] == _reference.activation(act or "identity", np.array([z]))[0], act


# ---------------------------------------------------------------- layouts

def _layouts(rng, m, k, n, dtype):
    """(name, A, B, C) with A, B, C of every layout the engine accepts."""
    a, b = make(rng, (m, k), dtype), make(rng, (k, n), dtype)
    big_a = make(rng, (2 * m, 3 * k), dtype)
    big_b = make(rng, (k + 3, n + 5), dtype)
    big_b[:k, :n] = b
    cbuf = np.full((2 * m, 3 * n), np.nan, dtype)
    return {
        "a_strided": (big_a[::2, ::3], b, np.empty((m, n), dtype)),
        "a_transposed": (np.ascontiguousarray(a.T).T, b, np.empty((m, n), dtype)),
        "a_broadcast_row": (np.broadcast_to(a[:1], (m, k)), b, np.empty((m, n), dtype)),
        "b_row_slice": (a, big_b[:k, :n], np.empty((m, n), dtype)),      # rsb > n
        "b_reversed_rows": (a, np.ascontiguousarray(b[::-1])[::-1], np.empty((m, n), dtype)),
        "b_transposed": (a, np.ascontiguousarray(b.T).T, np.empty((m, n), dtype)),
        "b_strided_cols": (a, np.repeat(b, 2, axis=1)[:, ::2], np.empty((m, n), dtype)),
        "c_strided": (a, b, cbuf[::2, ::3]),
        "c_fortran": (a, b, np.empty((m, n), dtype, order="F")),
        "c_reversed": (a, b, np.empty((m, n), dtype)[::-1, ::-1]),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", [1, 3, 5])
def test_layouts(rng, m, dtype):
    """Strided/transposed/broadcast A, B with and without unit column stride,
    strided C: same values, and bitwise the contiguous result."""
    k = 300
    for n, (name, (a, b, c)) in [(n, item) for n in (37, 130)
                                 for item in _layouts(rng, m, k, n, dtype).items()]:
        bias = make(rng, (n,), dtype)
        c0 = make(rng, (m, n), dtype)
        c[...] = c0
        run(a, b, c, 1.5, -0.5, bias, "leaky_relu", 0.1)
        ref, bound = reference(a, b, 1.5, -0.5, c0, bias, "leaky_relu", 0.1)
        check(c, ref, bound)
        contiguous = run(np.ascontiguousarray(a), np.ascontiguousarray(b), c0.copy(), 1.5,
                         -0.5, bias, "leaky_relu", 0.1)
        assert np.array_equal(c, contiguous), name


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_c_strided_leaves_the_gaps_alone(rng, dtype):
    m, k, n = 3, 50, 29
    buf = np.full((2 * m, 3 * n), -7.0, dtype)
    c = buf[::2, ::3]
    run(make(rng, (m, k), dtype), make(rng, (k, n), dtype), c, bias=make(rng, (n,), dtype),
        act="tanh")
    mask = np.ones(buf.shape, bool)
    mask[::2, ::3] = False
    assert (buf[mask] == -7.0).all()
    assert not (c == -7.0).any()


# ---------------------------------------------------------------- bitwise identities

@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rows_equal_the_blocked_batch_bitwise(rng, dtype, arch):
    """Rows computed on the small-m path equal the same rows of a batch too
    tall for it (blocked, packed path): same K blocks, same arithmetic."""
    big_m = smallm(dtype, arch) + 3
    for k, n in [(784, 256), (37, 21), (2100, 9)]:  # 2100: three K blocks
        x = make(rng, (big_m, k), dtype)
        w, bias = make(rng, (k, n), dtype), make(rng, (n,), dtype)
        for act in [None] + ACTS:
            c0 = make(rng, (big_m, n), dtype)
            batch = run(x, w, c0.copy(), 0.5, 2.0, bias, act, arch=arch)
            for lo, hi in [(0, 1), (1, 3), (2, 7), (0, smallm(dtype, arch))]:
                part = run(x[lo:hi], w, c0[lo:hi].copy(), 0.5, 2.0, bias, act, arch=arch)
                assert np.array_equal(part, batch[lo:hi]), (k, n, act, lo, hi)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_bitwise_identical_across_thread_counts(rng, dtype):
    """Big enough for the path to split N over threads (ranges of 64 bytes
    of columns); n = 1000 leaves a ragged last range."""
    for m, k, n in [(1, 784, 256), (2, 700, 1000), (5, 300, 1000), (4, 2000, 130)]:
        a, b, bias = make(rng, (m, k), dtype), make(rng, (k, n), dtype), make(rng, (n,), dtype)
        outs = [run(a, b, np.empty((m, n), dtype), 1.0, 0.0, bias, "tanh", threads=t)
                for t in (1, 2, 3)]
        check(outs[0], *reference(a, b, bias=bias, act="tanh"))
        assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_ops_rows_equal_batch_with_threads(rng):
    x = make(rng, (12, 784), F32)
    w, b = make(rng, (784, 256), F32), make(rng, (256,), F32)
    with fastmlp.threads(2):
        batch = ops.linear(x, w, b, "relu")
        rows = np.vstack([ops.linear(x[i:i + 1], w, b, "relu") for i in range(12)])
        mm = np.vstack([fastmlp.matmul(x[i:i + 1], w) for i in range(12)])
    assert np.array_equal(rows, batch)
    assert np.array_equal(mm, fastmlp.matmul(x, w))


# ---------------------------------------------------------------- environment

ENV_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from fastmlp._core import _gemm
    info = _gemm.gemm_info(False), _gemm.gemm_info(True)
    print(info[0]["arch"], info[0]["smallm"], info[1]["smallm"])
    data = np.load(sys.argv[1])
    out = {}
    for dt in ("float32", "float64"):
        a, b, bias = (data[f"{v}_{dt}"] for v in ("a", "b", "bias"))
        c = np.empty((a.shape[0], b.shape[1]), dt)
        _gemm.gemm(a, b, c, 1.0, 0.0, bias, _gemm.ACTIVATIONS["sigmoid"], 0.01, 2)
        out[dt] = c
    np.savez(sys.argv[2], **out)
""")


def _run_env(tmp_path, env, data):
    np.savez(tmp_path / "in.npz", **data)
    r = subprocess.run([sys.executable, "-c", ENV_SCRIPT, str(tmp_path / "in.npz"),
                        str(tmp_path / "out.npz")], env={**os.environ, **env}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as f:
        return r.stdout.split(), {k: f[k] for k in f.files}


@pytest.mark.parametrize("env,arch_name", [({"FASTMLP_KERNEL": "ref"}, "ref"),
                                           ({"FASTMLP_GEMM_SMALLM": "0"}, None)],
                         ids=["kernel_ref", "smallm_off"])
def test_environment(tmp_path, rng, env, arch_name):
    """FASTMLP_KERNEL=ref runs the reference small-m kernel (bitwise what
    arch=ref gives here); FASTMLP_GEMM_SMALLM=0 turns the path off (the
    blocked path then gives bitwise the same result)."""
    data, expect = {}, {}
    for dt in DTYPES:
        a, b, bias = make(rng, (3, 500), dt), make(rng, (500, 77), dt), make(rng, (77,), dt)
        data.update({f"a_{dt}": a, f"b_{dt}": b, f"bias_{dt}": bias})
        arch = _gemm.ARCH_REF if arch_name == "ref" else _gemm.ARCH_AUTO
        expect[str(dt)] = run(a, b, np.empty((3, 77), dt), bias=bias, act="sigmoid", arch=arch)
    words, got = _run_env(tmp_path, env, data)
    if arch_name == "ref":
        assert words == ["ref", str(smallm(F32, _gemm.ARCH_REF)), str(smallm(F64, _gemm.ARCH_REF))]
    else:
        assert words[1:] == ["0", "0"]
    for dt in ("float32", "float64"):
        assert np.array_equal(got[dt], expect[dt]), dt


OVERFLOW_SCRIPT = textwrap.dedent("""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided
    from fastmlp._core import _gemm
    # m * n * k overflows int64 while every array is a valid (zero-stride)
    # view; B has unit column stride, the small-m layout (m = 8: the AVX2
    # table's limit; m = 16: the reference table's).
    for dt, m, k, n in [(np.float32, 8, 2**57, 8), (np.float64, 16, 2**55, 16)]:
        isz = np.dtype(dt).itemsize
        row = np.ones(n, dt)
        a = as_strided(row, (m, k), (0, 0))
        b = as_strided(row, (k, n), (0, isz))
        c = as_strided(np.zeros(n, dt), (m, n), (0, isz), writeable=True)
        try:
            _gemm.gemm(a, b, c, 1.0, 0.0, None, 1, 0.01, 2)
        except ValueError as exc:
            print("ValueError", "overflow" in str(exc))
        else:
            print("NO_ERROR")
""")


@pytest.mark.parametrize("kernel", ["", "ref"])
def test_size_overflow_is_caught_before_the_small_m_path(tmp_path, kernel):
    env = dict(os.environ, FASTMLP_KERNEL=kernel)
    r = subprocess.run([sys.executable, "-c", OVERFLOW_SCRIPT], cwd=tmp_path, timeout=60,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n") == ["ValueError True"] * 2 + [""]


# ---------------------------------------------------------------- the core's own checks

def test_core_rejects_what_it_cannot_address():
    """_gemm.gemm reads ndarrays through the NumPy C API (no memoryviews):
    it must refuse anything whose pointer/stride description would be wrong."""
    a, b, c = np.ones((2, 3), F32), np.ones((3, 4), F32), np.zeros((2, 4), F32)
    bias = np.ones(4, F32)
    run(a, b, c, bias=bias)
    assert (c == 4).all()
    with pytest.raises(TypeError, match="a must be a numpy.ndarray"):
        _gemm.gemm(a.tolist(), b, c)
    with pytest.raises(TypeError, match="c must be a numpy.ndarray"):
        _gemm.gemm(a, b, memoryview(c))
    with pytest.raises(ValueError, match="expected float32 or float64"):
        _gemm.gemm(a.astype(np.int32), b, c)
    with pytest.raises(ValueError, match="b has dtype float64"):
        _gemm.gemm(a, b.astype(F64), c)
    with pytest.raises(ValueError, match="c has dtype >f4"):
        _gemm.gemm(a, b, c.astype(">f4"))
    with pytest.raises(ValueError, match="bias has dtype float64"):
        _gemm.gemm(a, b, c, bias=bias.astype(F64))
    with pytest.raises(ValueError, match="c must be 2-D"):
        _gemm.gemm(a, b, c.ravel())
    with pytest.raises(ValueError, match="do not match"):
        _gemm.gemm(a, b[:2], c)
    with pytest.raises(ValueError, match="do not match"):
        _gemm.gemm(a, b, c[:, :3])
    with pytest.raises(ValueError, match="bias must be contiguous"):
        _gemm.gemm(a, b, c, bias=np.ones(8, F32)[::2])
    with pytest.raises(ValueError, match="bias must be contiguous"):
        _gemm.gemm(a, b, c, bias=np.ones(5, F32))
    ro = c.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="c is read-only"):
        _gemm.gemm(a, b, ro)
    raw = np.zeros(2 * 4 * 4 + 1, np.uint8)
    misaligned = np.ndarray((2, 4), F32, buffer=raw, offset=1)
    with pytest.raises(ValueError, match="c is not aligned"):
        _gemm.gemm(a, b, misaligned)
    odd = np.ndarray((3, 4), F32, buffer=np.zeros(64, np.uint8), strides=(8, 2))
    with pytest.raises(ValueError, match="not whole elements|not aligned"):
        _gemm.gemm(a, odd, c)
    assert (c == 4).all()  # nothing was written by a rejected call
