"""Invalid arguments raise the documented exception with a message naming the
problem, before anything reaches the compiled kernels."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastmlp
from fastmlp import ops

F32, F64 = np.float32, np.float64


def _ones(*shape, dtype=F64):
    return np.ones(shape, dtype)


# ---------------------------------------------------------------- shapes

def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        fastmlp.matmul(_ones(3, 4), _ones(5, 2))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 4\)"):
        fastmlp.matmul(_ones(3, 4), _ones(3, 4))


def test_gemm_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        ops.gemm(_ones(3, 4), _ones(5, 2))
    # with transposes the message names op(a) and op(b)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 2\)"):
        ops.gemm(_ones(3, 4), _ones(5, 2), trans_a=True)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 5\)"):
        ops.gemm(_ones(3, 4), _ones(5, 2), trans_b=True)


def test_linear_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        ops.linear(_ones(3, 4), _ones(5, 2))


@pytest.mark.parametrize("shape", [(), (4,), (2, 2, 2)], ids=["0d", "1d", "3d"])
def test_non_2d_input(shape):
    good = _ones(2, 2)
    bad = np.ones(shape)
    with pytest.raises(ValueError, match=r"2-D.*%d-D" % len(shape)):
        fastmlp.matmul(bad, good)
    with pytest.raises(ValueError, match=r"b must be 2-D"):
        fastmlp.matmul(good, bad)
    with pytest.raises(ValueError, match=r"a must be 2-D"):
        ops.gemm(bad, good)
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        ops.linear(bad, good)
    with pytest.raises(ValueError, match=r"w must be 2-D"):
        ops.linear(good, bad)


# ---------------------------------------------------------------- dtypes

BAD_DTYPE_ARRAYS = {
    "int64": np.ones((2, 2), np.int64),
    "int32": np.ones((2, 2), np.int32),
    "bool": np.ones((2, 2), bool),
    "complex128": np.ones((2, 2), np.complex128),
    "complex64": np.ones((2, 2), np.complex64),
    "float16": np.ones((2, 2), np.float16),
    "object": np.ones((2, 2), object),
    "str": np.array([["a", "b"], ["c", "d"]]),
    "bytes": np.array([[b"a", b"b"], [b"c", b"d"]]),
}


@pytest.mark.parametrize("name", list(BAD_DTYPE_ARRAYS))
def test_unsupported_dtype_raises_type_error(name):
    bad = BAD_DTYPE_ARRAYS[name]
    good = _ones(2, 2)
    msg = rf"dtype {re.escape(str(bad.dtype))}.*float32 or float64"
    with pytest.raises(TypeError, match=msg):
        fastmlp.matmul(bad, good)
    with pytest.raises(TypeError, match=msg):
        fastmlp.matmul(good, bad)
    with pytest.raises(TypeError, match=msg):
        ops.gemm(good, bad)
    with pytest.raises(TypeError, match=msg):
        ops.linear(bad, good)
    with pytest.raises(TypeError, match=msg):
        ops.linear(good, good, bad[0])


def test_python_int_lists_are_rejected():
    with pytest.raises(TypeError, match="dtype int"):
        fastmlp.matmul([[1, 2], [3, 4]], [[1.0], [2.0]])


def test_unconvertible_input():
    with pytest.raises(TypeError, match="a cannot be converted|dtype object"):
        fastmlp.matmul([[1.0, 2.0], [3.0]], _ones(2, 2))


# ---------------------------------------------------------------- out / c

def test_out_wrong_shape():
    with pytest.raises(ValueError, match=r"out has shape \(3, 3\), expected \(3, 2\)"):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=_ones(3, 3))
    with pytest.raises(ValueError, match=r"out has shape \(2, 3\), expected \(3, 2\)"):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=_ones(2, 3))
    with pytest.raises(ValueError, match=r"out has shape \(6,\), expected \(3, 2\)"):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=_ones(6))
    with pytest.raises(ValueError, match=r"out has shape"):
        ops.linear(_ones(3, 4), _ones(4, 2), out=_ones(3, 3))


def test_out_wrong_dtype():
    with pytest.raises(ValueError, match=r"out has dtype float32, expected float64"):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=_ones(3, 2, dtype=F32))
    with pytest.raises(ValueError, match=r"out has dtype float64, expected float32"):
        fastmlp.matmul(_ones(3, 4, dtype=F32), _ones(4, 2, dtype=F32), out=_ones(3, 2))
    # mixed inputs give float64: a float32 out is wrong
    with pytest.raises(ValueError, match=r"out has dtype float32, expected float64"):
        fastmlp.matmul(_ones(3, 4, dtype=F32), _ones(4, 2), out=_ones(3, 2, dtype=F32))
    with pytest.raises(ValueError, match=r"out has dtype int64"):
        ops.linear(_ones(3, 4), _ones(4, 2), out=np.zeros((3, 2), np.int64))


def test_out_read_only():
    out = _ones(3, 2)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=out)
    with pytest.raises(ValueError, match="out is read-only"):
        ops.linear(_ones(3, 4), _ones(4, 2), out=out)
    with pytest.raises(ValueError, match="c is read-only"):
        ops.gemm(_ones(3, 4), _ones(4, 2), out)
    with pytest.raises(ValueError, match="read-only"):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=np.broadcast_to(0.0, (3, 2)))
    assert (out == 1).all()


def test_gemm_c_wrong_shape_or_dtype():
    with pytest.raises(ValueError, match=r"c has shape \(4, 2\), expected \(3, 2\)"):
        ops.gemm(_ones(3, 4), _ones(4, 2), _ones(4, 2))
    with pytest.raises(ValueError, match=r"c has shape \(3, 2\), expected \(4, 2\)"):
        ops.gemm(_ones(3, 4), _ones(3, 2), _ones(3, 2), trans_a=True)
    with pytest.raises(ValueError, match=r"c has dtype float32, expected float64"):
        ops.gemm(_ones(3, 4), _ones(4, 2), _ones(3, 2, dtype=F32))


@pytest.mark.parametrize("out", [[[0.0, 0.0]] * 3, (1, 2), 3.0, "out"],
                         ids=["list", "tuple", "float", "str"])
def test_out_not_an_ndarray(out):
    with pytest.raises(TypeError, match=r"out must be a numpy.ndarray, got " + type(out).__name__):
        fastmlp.matmul(_ones(3, 4), _ones(4, 2), out=out)
    with pytest.raises(TypeError, match=r"c must be a numpy.ndarray"):
        ops.gemm(_ones(3, 4), _ones(4, 2), out)
    with pytest.raises(TypeError, match=r"out must be a numpy.ndarray"):
        ops.linear(_ones(3, 4), _ones(4, 2), out=out)


def test_failed_call_leaves_out_untouched():
    out = np.full((3, 2), 7.0)
    with pytest.raises(ValueError):
        fastmlp.matmul(_ones(3, 4), _ones(5, 2), out=out)
    assert (out == 7.0).all()


# ---------------------------------------------------------------- linear arguments

@pytest.mark.parametrize("act", ["softmax", "RELU", "", "gelu", 1, ("relu",)])
def test_unknown_activation(act):
    with pytest.raises(ValueError, match=r"unknown activation"):
        ops.linear(_ones(3, 4), _ones(4, 2), None, act)


def test_bias_wrong_shape():
    with pytest.raises(ValueError, match=r"b has shape \(3,\), expected \(2,\)"):
        ops.linear(_ones(3, 4), _ones(4, 2), _ones(3))
    with pytest.raises(ValueError, match=r"b must be 1-D"):
        ops.linear(_ones(3, 4), _ones(4, 2), _ones(1, 2))
    with pytest.raises(ValueError, match=r"b must be 1-D"):
        ops.linear(_ones(3, 4), _ones(4, 2), np.float64(1.0))


@pytest.mark.parametrize("value", ["x", None, 1 + 2j, True, [1.0]],
                         ids=["str", "None", "complex", "bool", "list"])
def test_non_real_scalars(value):
    with pytest.raises(TypeError, match=r"alpha must be a real number"):
        ops.gemm(_ones(3, 4), _ones(4, 2), alpha=value)
    with pytest.raises(TypeError, match=r"beta must be a real number"):
        ops.gemm(_ones(3, 4), _ones(4, 2), _ones(3, 2), beta=value)
    with pytest.raises(TypeError, match=r"alpha must be a real number"):
        ops.linear(_ones(3, 4), _ones(4, 2), None, "leaky_relu", alpha=value)


def test_gemm_flags_are_keyword_only():
    with pytest.raises(TypeError):
        ops.gemm(_ones(3, 4), _ones(4, 2), None, 2.0)


# ---------------------------------------------------------------- size overflow

OVERFLOW_SCRIPT = textwrap.dedent("""
    import numpy as np
    import fastmlp
    from fastmlp import ops

    # zero-stride inputs whose m*n*k overflows int64 while the output is tiny
    cases = [(np.float32, 8, 2**57, 8), (np.float64, 16, 2**55, 16),
             (np.float32, 2**30, 2**30, 2**30)]   # and one whose output is huge
    for dt, m, k, n in cases:
        a = np.broadcast_to(dt(1), (m, k))
        b = np.broadcast_to(dt(1), (k, n))
        calls = [lambda: fastmlp.matmul(a, b),
                 lambda: ops.gemm(a, b.T, trans_b=True),
                 lambda: ops.gemm(b, a, trans_a=True, trans_b=True),
                 lambda: ops.linear(a, b, np.zeros(n, dt) if n < 100 else None, "relu")]
        for call in calls:
            try:
                call()
            except (ValueError, MemoryError) as exc:
                print(type(exc).__name__, str(exc)[:60].replace(" ", "_"))
            else:
                print("NO_ERROR")
    print("done")
""")


def test_huge_broadcast_sizes_raise_instead_of_crashing(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", OVERFLOW_SCRIPT], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"crashed (rc {r.returncode}): {r.stderr[-2000:]}"
    lines = r.stdout.split("\n")
    assert lines[-2:] == ["done", ""]
    results = lines[:-2]
    assert len(results) == 12
    assert "NO_ERROR" not in r.stdout
    # the small-output cases must be caught by the size check, not by an allocation
    for line in results[:8]:
        assert line.startswith("ValueError") and "overflow" in line, line
