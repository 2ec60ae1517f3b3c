"""Public functional ops: validate, allocate, call the compiled core.

Design: every function here checks its inputs completely (dtype, ndim,
shapes, alignment, writeability, aliasing) and raises a clear exception
(TypeError for unsupported dtypes, ValueError for shapes and bad arguments)
before anything reaches C, so the Cython/C layers can trust their inputs.
Arrays are passed with their strides: transposed, Fortran-ordered and sliced
inputs are not copied. ``out=`` follows NumPy: it must have exactly the
result's shape and dtype and be writeable; it may be non-contiguous; if it
overlaps an input the result is computed into a temporary first.
"""
import numbers

import numpy as np

from fastmlp._core import _gemm
from fastmlp._threads import get_num_threads

__all__ = ["matmul", "gemm", "linear", "GEMM_ACTIVATIONS"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Activations that `linear` can fuse into the GEMM store.
GEMM_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "logistic", "tanh")


def _as_float_array(x, name, ndim, func):
    """`x` as an ndarray of float32/float64 with `ndim` dims and element-aligned strides."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: {name} cannot be converted to an array ({exc})") from None
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{func}: {name} has dtype {x.dtype}; fastmlp kernels take float32 or float64 "
            f"(convert with {name}.astype(np.float32) or .astype(np.float64))")
    if x.ndim != ndim:
        raise ValueError(f"{func}: {name} must be {ndim}-D, got {x.ndim}-D array of shape {x.shape}")
    if not x.flags.aligned or any(s % x.itemsize for s in x.strides):
        # Misaligned views (e.g. from a byte offset into a buffer) cannot be
        # addressed with element strides: take an aligned copy.
        x = np.array(x, copy=True, order="C")
    return x


def _result_dtype(*arrays):
    """float32 if every array is float32, else float64 (inputs are float32/float64)."""
    for a in arrays:
        if a is not None and a.dtype != np.float32:
            return _FLOAT_DTYPES[1]
    return _FLOAT_DTYPES[0]


def _check_out(out, shape, dtype, func, name="out"):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{func}: {name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{func}: {name} has dtype {out.dtype}, expected {dtype} "
                         f"(the result dtype of the inputs)")
    if not out.flags.writeable:
        raise ValueError(f"{func}: {name} is read-only")


def _real(value, name, func):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def _needs_temp(out, *inputs):
    """True when `out` cannot be written in place: it overlaps an input, or
    its strides are not whole elements."""
    if not out.flags.aligned or any(s % out.itemsize for s in out.strides):
        return True
    return any(x is not None and np.may_share_memory(out, x) for x in inputs)


def _activation_code(activation, func):
    if activation is None:
        return _gemm.ACTIVATIONS[None]
    if not isinstance(activation, str) or activation not in _gemm.ACTIVATIONS:
        raise ValueError(f"{func}: unknown activation {activation!r}; expected None or one of "
                         f"{', '.join(GEMM_ACTIVATIONS)}")
    return _gemm.ACTIVATIONS[activation]


def _run_gemm(a, b, c, alpha, beta, bias, act, slope, inputs):
    """Call the core, through a temporary if a caller's `c` overlaps an input
    (`inputs` is None when `c` was allocated here and cannot)."""
    n_threads = get_num_threads()
    if inputs is not None and _needs_temp(c, *inputs):
        tmp = np.array(c, order="C", copy=True) if beta != 0.0 else np.empty(c.shape, c.dtype)
        _gemm.gemm(a, b, tmp, alpha, beta, bias, act, slope, n_threads)
        c[...] = tmp
    else:
        _gemm.gemm(a, b, c, alpha, beta, bias, act, slope, n_threads)
    return c


def _check_inner(func, a, b, an="a", bn="b"):
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"{func}: shapes {a.shape} and {b.shape} are not aligned: "
            f"{a.shape[1]} (dim 1 of {an}) != {b.shape[0]} (dim 0 of {bn})")


def matmul(a, b, out=None):
    """Matrix product of two 2-D arrays, ``a @ b``, on fastmlp's GEMM engine.

    float32 and float64 (mixed inputs promote to float64); any strides or
    memory order. ``out`` (optional) receives the result.
    """
    a = _as_float_array(a, "a", 2, "matmul")
    b = _as_float_array(b, "b", 2, "matmul")
    _check_inner("matmul", a, b)
    dtype = _result_dtype(a, b)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    shape = (a.shape[0], b.shape[1])
    inputs = None
    if out is None:
        out = np.empty(shape, dtype)
    else:
        _check_out(out, shape, dtype, "matmul")
        inputs = (a, b)
    return _run_gemm(a, b, out, 1.0, 0.0, None, 0, 0.0, inputs)


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """General matrix multiply: ``c = alpha * op(a) @ op(b) + beta * c``, in place.

    op(x) is ``x.T`` when the matching ``trans_`` flag is set (read in place,
    never copied). If `c` is None a new array is returned (beta is then
    irrelevant); otherwise `c` must have the result's shape and dtype, is
    updated in place and returned. As in BLAS, ``beta == 0`` ignores the
    previous contents of `c` (NaN included).
    """
    alpha = _real(alpha, "alpha", "gemm")
    beta = _real(beta, "beta", "gemm")
    a = _as_float_array(a, "a", 2, "gemm")
    b = _as_float_array(b, "b", 2, "gemm")
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    _check_inner("gemm", opa, opb, "op(a)", "op(b)")
    dtype = _result_dtype(a, b)
    opa, opb = opa.astype(dtype, copy=False), opb.astype(dtype, copy=False)
    shape = (opa.shape[0], opb.shape[1])
    inputs = None
    if c is None:
        c = np.empty(shape, dtype)
        beta = 0.0
    else:
        _check_out(c, shape, dtype, "gemm", "c")
        inputs = (a, b)
    return _run_gemm(opa, opb, c, alpha, beta, None, 0, 0.0, inputs)


def linear(x, w, b=None, activation=None, out=None, *, alpha=0.01):
    """Fully connected layer ``act(x @ w + b)`` in one pass over the output.

    x: (n_samples, n_in), w: (n_in, n_out), b: (n_out,) or None. activation:
    None/'identity', 'relu', 'leaky_relu' (negative slope `alpha`, default
    0.01), 'sigmoid' (alias 'logistic') or 'tanh', applied by the GEMM
    micro-kernel as it stores each tile (fused epilogue).
    """
    act = _activation_code(activation, "linear")
    alpha = _real(alpha, "alpha", "linear")
    x = _as_float_array(x, "x", 2, "linear")
    w = _as_float_array(w, "w", 2, "linear")
    _check_inner("linear", x, w, "x", "w")
    if b is not None:
        b = _as_float_array(b, "b", 1, "linear")
        if b.shape[0] != w.shape[1]:
            raise ValueError(f"linear: b has shape {b.shape}, expected ({w.shape[1]},) "
                             f"to match w of shape {w.shape}")
    dtype = _result_dtype(x, w, b)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    if b is not None:
        b = np.ascontiguousarray(b, dtype=dtype)
    shape = (x.shape[0], w.shape[1])
    inputs = None
    if out is None:
        out = np.empty(shape, dtype)
    else:
        _check_out(out, shape, dtype, "linear")
        inputs = (x, w, b)
    return _run_gemm(x, w, out, 1.0, 0.0, b, act, alpha, inputs)
