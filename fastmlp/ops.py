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


# ================================================================ bias_grad, linear_backward,
# dropout, batch norm, layer norm  (compiled core: fastmlp/_core/_norm.pyx, src_c/nn/norm*)
#
# Determinism: every sum over rows (bias_grad, the batch-norm statistics and
# gradients, the layer-norm parameter gradients) is computed in float64 per
# fixed block of 64 rows, sequentially in row order, and the block sums are
# added by a fixed pairwise tree; per-row sums (layer norm) use 16 fixed
# interleaved lanes. Nothing depends on the number of threads, so results are
# bitwise identical for any thread count. float32 inputs are widened to
# float64 for every reduction and per-element formula and rounded once.

import collections as _collections  # noqa: E402

from fastmlp._core import _norm  # noqa: E402

__all__ += ["bias_grad", "linear_backward", "dropout", "dropout_backward",
            "batch_norm_forward", "batch_norm_backward", "layer_norm_forward",
            "layer_norm_backward", "BatchNormCache", "LayerNormCache"]

_F64 = _FLOAT_DTYPES[1]

#: What batch_norm_forward hands to batch_norm_backward. x: the input as used
#: (result dtype, a reference, not a copy, unless `out` overlapped it); mean,
#: inv_std: float64 (C,) statistics used to normalise (batch statistics in
#: training, running statistics in eval); gamma: float64 (C,) (ones if None
#: was given); training: which formula the forward used.
BatchNormCache = _collections.namedtuple("BatchNormCache", "x mean inv_std gamma training")
#: What layer_norm_forward hands to layer_norm_backward: x (as above), mean and
#: inv_std float64 (N,) per-row statistics, gamma float64 (C,).
LayerNormCache = _collections.namedtuple("LayerNormCache", "x mean inv_std gamma")


def _nm_rows(x):
    """`x` with unit column stride (the row kernels' layout): a copy only if needed."""
    if x.ndim == 2 and x.shape[1] > 1 and x.strides[1] != x.itemsize:
        return np.ascontiguousarray(x)
    return x


def _nm_target(out, shape, dtype, func, inputs, name="out"):
    """(array the kernel writes, caller's out or None). The kernels write rows
    with unit column stride and never into an input; otherwise a temporary is
    used and copied to `out` by _nm_finish."""
    if out is None:
        return np.empty(shape, dtype), None
    _check_out(out, shape, dtype, func, name)
    if (len(shape) == 2 and shape[1] > 1 and out.strides[1] != out.itemsize) \
            or _needs_temp(out, *inputs):
        return np.empty(shape, dtype), out
    return out, out


def _nm_finish(target, out):
    if out is None:
        return target
    if target is not out:
        out[...] = target
    return out


def _nm_param(v, name, c, func):
    """An optional per-feature parameter (gamma / beta) as an array of shape (c,)."""
    if v is None:
        return None
    v = _as_float_array(v, name, 1, func)
    if v.shape[0] != c:
        raise ValueError(f"{func}: {name} has shape {v.shape}, expected ({c},) "
                         f"(one value per feature of x)")
    return v


def _nm_f64(v, c, fill):
    """float64 contiguous copy of a parameter, or `fill` repeated c times if None."""
    if v is None:
        return np.full(c, fill, _F64)
    return np.ascontiguousarray(v, dtype=_F64)


def _nm_eps(eps, func):
    eps = _real(eps, "eps", func)
    if not (eps > 0.0 and np.isfinite(eps)):
        raise ValueError(f"{func}: eps must be a positive finite number, got {eps}")
    return eps


def bias_grad(g, out=None):
    """Bias gradient of ``y = x @ w + b``: the column sums ``g.sum(axis=0)`` of a
    2-D (N, C) gradient.

    Deterministic: the sums are accumulated in float64 (for float32 input too)
    per fixed block of 64 rows, in row order, and the block sums added by a
    fixed pairwise tree, so the result is bitwise identical for any thread
    count and its error is about (64 + log2(N/64)) float64 roundings before the
    final rounding to g's dtype. The result has g's dtype; N == 0 gives zeros.
    ``out`` (optional, shape (C,), g's dtype) receives it.
    """
    g = _as_float_array(g, "g", 2, "bias_grad")
    dtype = g.dtype
    shape = (g.shape[1],)
    target, out = _nm_target(out, shape, dtype, "bias_grad", (g,))
    _norm.bias_grad(_nm_rows(g), target, get_num_threads())
    return _nm_finish(target, out)


def linear_backward(x, w, grad_y, *, need_grad_x=True, grad_x_out=None, grad_w_out=None,
                    grad_b_out=None):
    """Gradients of ``y = x @ w + b`` for x (N, in), w (in, out), grad_y (N, out).

    Returns ``(grad_x, grad_w, grad_b)`` with grad_x = grad_y @ w.T (None when
    ``need_grad_x`` is False, e.g. for the first layer), grad_w = x.T @ grad_y
    and grad_b = bias_grad(grad_y). Both products run on the GEMM engine with
    the transposes read in place (no transposed copies). Mixed float32/float64
    inputs promote to float64. The optional ``grad_*_out`` arrays receive the
    results (exact shape and dtype, writeable, any strides; they may overlap
    the inputs, e.g. grad_w_out=w, but not each other).
    """
    func = "linear_backward"
    x = _as_float_array(x, "x", 2, func)
    w = _as_float_array(w, "w", 2, func)
    grad_y = _as_float_array(grad_y, "grad_y", 2, func)
    _check_inner(func, x, w, "x", "w")
    if grad_y.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"{func}: grad_y has shape {grad_y.shape}, expected "
                         f"{(x.shape[0], w.shape[1])} (the shape of x @ w)")
    if not need_grad_x and grad_x_out is not None:
        raise ValueError(f"{func}: grad_x_out given but need_grad_x is False")
    dtype = _result_dtype(x, w, grad_y)
    x, w, grad_y = (a.astype(dtype, copy=False) for a in (x, w, grad_y))
    n, n_in = x.shape
    n_out = w.shape[1]
    if grad_x_out is not None:
        _check_out(grad_x_out, (n, n_in), dtype, func, "grad_x_out")
    if grad_w_out is not None:
        _check_out(grad_w_out, (n_in, n_out), dtype, func, "grad_w_out")
    if grad_b_out is not None:
        _check_out(grad_b_out, (n_out,), dtype, func, "grad_b_out")
    # An output that overlaps an input is computed into a temporary and copied
    # at the very end, so no product reads an input another one overwrote.
    targets = []
    for o, shape in ((grad_x_out, (n, n_in)), (grad_w_out, (n_in, n_out)), (grad_b_out, (n_out,))):
        if o is None or _needs_temp(o, x, w, grad_y):
            targets.append(np.empty(shape, dtype))
        else:
            targets.append(o)
    grad_x = None
    if need_grad_x:
        grad_x = _run_gemm(grad_y, w.T, targets[0], 1.0, 0.0, None, 0, 0.0, None)
    grad_w = _run_gemm(x.T, grad_y, targets[1], 1.0, 0.0, None, 0, 0.0, None)
    grad_b = bias_grad(grad_y, out=targets[2])
    results = [grad_x, grad_w, grad_b]
    for i, o in enumerate((grad_x_out, grad_w_out, grad_b_out)):
        if o is not None and results[i] is not None and results[i] is not o:
            o[...] = results[i]
            results[i] = o
    return tuple(results)


def _nm_as_float_nd(x, name, func):
    """`x` as a float32/float64 ndarray of any shape with element-aligned strides."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: {name} cannot be converted to an array ({exc})") from None
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{func}: {name} has dtype {x.dtype}; fastmlp kernels take float32 or float64 "
            f"(convert with {name}.astype(np.float32) or .astype(np.float64))")
    if not x.flags.aligned or any(s % x.itemsize for s in x.strides):
        x = np.array(x, copy=True, order="C")
    return x


def _nm_dropout(x, p, seed, out, func, name):
    p = _real(p, "p", func)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{func}: p must be in [0, 1) (the probability of dropping an "
                         f"element), got {p}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{func}: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"{func}: seed must be in [0, 2**64), got {seed}")
    x = _nm_as_float_nd(x, name, func)
    dtype = x.dtype
    if out is None:
        out_given = None
        out = np.empty(x.shape, dtype)
    else:
        _check_out(out, x.shape, dtype, func)
        out_given = out
    if p == 0.0:
        if out is not x:
            np.copyto(out, x)
        return out
    # The mask is indexed by the C-order flat index of the logical array:
    # non-C-contiguous inputs are read through a C-ordered copy.
    xf = np.ascontiguousarray(x).reshape(-1)
    direct = out_given is None or (
        out.flags.c_contiguous and out.flags.aligned
        and (not np.may_share_memory(out, x)
             # exactly x itself: element-wise, so writing in place is safe
             or (x.flags.c_contiguous
                 and out.__array_interface__["data"][0] == x.__array_interface__["data"][0])))
    target = out.reshape(-1) if direct else np.empty(x.size, dtype)
    _norm.dropout(xf, target, 1.0 - p, seed, 0, get_num_threads())
    if not direct:
        out[...] = target.reshape(x.shape)
    return out


def dropout(x, p, *, seed, out=None):
    """Inverted dropout: each element of x is zeroed with probability p and the
    kept ones are scaled by 1/(1-p), so that E[dropout(x)] = x.

    x: float32/float64 array of any shape (memory order and strides are
    free). p in [0, 1): p == 0 returns x unchanged (a copy, or written to
    out). seed: int in [0, 2**64); the same (seed, shape, dtype, p) always
    gives the same mask, whatever the memory layout or thread count, and
    ``dropout_backward`` with the same arguments regenerates it (the mask is
    never stored).

    The mask comes from the counter-based generator Philox4x32-10 (Salmon et
    al., SC'11) keyed by the 64-bit seed. Element i (C-order flat index):
    float32 takes 32-bit word i % 4 of Philox block i // 4 (counter
    {i // 4 as two 32-bit words, 0, 0}) and keeps the element iff its top 24
    bits u24 satisfy u24 / 2**24 < 1 - p; float64 takes words 2(i % 2) and
    2(i % 2) + 1 of block i // 2, builds a 53-bit u53 from their top 27 and 26
    bits and keeps iff u53 / 2**53 < 1 - p. Kept values are multiplied by
    1/(1-p) rounded to x's dtype; dropped ones by 0 (so NaN/inf inputs stay
    NaN, as with ``x * mask / (1 - p)``). ``out`` may be x itself (in place).
    """
    return _nm_dropout(x, p, seed, out, "dropout", "x")


def dropout_backward(grad, p, *, seed, out=None):
    """Gradient of ``dropout(x, p, seed=seed)`` with respect to x: the same mask
    (regenerated from the seed) and scale applied to ``grad``, which must have
    the shape and dtype of the forward's x. ``out`` may be grad itself."""
    return _nm_dropout(grad, p, seed, out, "dropout_backward", "grad")


def _nm_running(v, name, c, func, training):
    if v is None:
        return None
    if not isinstance(v, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray (updated in place), "
                        f"got {type(v).__name__}")
    if v.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{func}: {name} has dtype {v.dtype}; expected float32 or float64")
    if v.shape != (c,):
        raise ValueError(f"{func}: {name} has shape {v.shape}, expected ({c},) "
                         f"(one value per feature of x)")
    if training and not v.flags.writeable:
        raise ValueError(f"{func}: {name} is read-only (it is updated in place in training)")
    return v


def batch_norm_forward(x, gamma, beta, running_mean, running_var, *, training=True,
                       momentum=0.1, eps=1e-5, out=None):
    """Batch normalisation of x (N, C) over the batch, per feature (column).

    ``y = (x - mean) / sqrt(var + eps) * gamma + beta``; returns ``(y, cache)``
    for :func:`batch_norm_backward`.

    * training=True: mean and the biased variance (divided by N) of the batch;
      N must be >= 2. running_mean and running_var are then updated IN PLACE
      as in PyTorch: ``running = (1 - momentum) * running + momentum * stat``,
      with the UNBIASED batch variance (divided by N - 1) for running_var.
    * training=False: running_mean and running_var are used (not changed).

    gamma, beta: (C,) or None (1 and 0). running_mean, running_var: float
    ndarrays (C,) of any float dtype, or both None (no running statistics:
    training only). Statistics: in float64, for each fixed block of 64 rows
    the mean and the sum of squared deviations from it (two passes over the
    block while it is in cache: no E[x^2] - E[x]^2 cancellation), then the
    blocks merged by a fixed pairwise tree with Chan et al.'s update, so one
    pass over x and bitwise identical results for any thread count; the
    normalisation is evaluated in float64 and rounded once. y has the dtype
    of x, gamma and beta (float32 unless one is float64). ``out``: optional
    (N, C) result array; the cache keeps a reference to x (a copy if out
    overlaps x), so x must not be modified before the backward pass. Inputs
    without unit column stride are copied once (row-major kernels).
    """
    func = "batch_norm_forward"
    x = _as_float_array(x, "x", 2, func)
    n, c = x.shape
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{func}: training must be a bool, got {type(training).__name__}")
    training = bool(training)
    momentum = _real(momentum, "momentum", func)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{func}: momentum must be in [0, 1], got {momentum}")
    eps = _nm_eps(eps, func)
    gamma = _nm_param(gamma, "gamma", c, func)
    beta = _nm_param(beta, "beta", c, func)
    running_mean = _nm_running(running_mean, "running_mean", c, func, training)
    running_var = _nm_running(running_var, "running_var", c, func, training)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{func}: give both running_mean and running_var, or neither")
    if n == 0:
        raise ValueError(f"{func}: x is an empty batch (0 samples)")
    if training and n == 1:
        raise ValueError(f"{func}: expected more than 1 sample per feature in training "
                         f"(the batch variance of 1 sample is undefined), got x of shape "
                         f"{x.shape}")
    if not training and running_mean is None:
        raise ValueError(f"{func}: training=False needs running_mean and running_var")
    dtype = _result_dtype(x, gamma, beta)
    x = _nm_rows(x.astype(dtype, copy=False))
    g64, b64 = _nm_f64(gamma, c, 1.0), _nm_f64(beta, c, 0.0)
    if out is not None and np.may_share_memory(out, x):
        x = x.copy()  # the cache must keep the input
    target, out = _nm_target(out, (n, c), dtype, func, (x,))
    nt = get_num_threads()
    if training:
        mean = np.empty(c, _F64)
        m2 = np.empty(c, _F64)
        _norm.column_stats(x, mean, m2, nt)
        inv_std = 1.0 / np.sqrt(m2 / n + eps)
        if running_mean is not None:
            running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
            running_var[...] = (1.0 - momentum) * running_var + momentum * (m2 / (n - 1))
    else:
        mean = np.array(running_mean, dtype=_F64)
        inv_std = 1.0 / np.sqrt(np.asarray(running_var, dtype=_F64) + eps)
    _norm.affine(x, mean, g64 * inv_std, b64, target, nt)
    return _nm_finish(target, out), BatchNormCache(x, mean, inv_std, g64, training)


def _nm_grad_and_x(grad_y, cache, func):
    grad_y = _as_float_array(grad_y, "grad_y", 2, func)
    x = cache.x
    if grad_y.shape != x.shape:
        raise ValueError(f"{func}: grad_y has shape {grad_y.shape}, expected {x.shape} "
                         f"(the shape of the forward's x)")
    dtype = _result_dtype(grad_y, x)
    return (_nm_rows(grad_y.astype(dtype, copy=False)), _nm_rows(x.astype(dtype, copy=False)),
            dtype)


def batch_norm_backward(grad_y, cache, *, grad_x_out=None):
    """Gradients of :func:`batch_norm_forward`: ``(grad_x, grad_gamma, grad_beta)``.

    With xhat = (x - mean) * inv_std (from the cache): grad_beta = sum_n grad_y,
    grad_gamma = sum_n grad_y * xhat (deterministic blocked column sums in
    float64), and in training
    ``grad_x = gamma * inv_std * (grad_y - grad_beta / N - xhat * grad_gamma / N)``
    (the batch statistics depend on x); in eval
    ``grad_x = gamma * inv_std * grad_y``. Results have the dtype of grad_y
    and x (float64 if either is); ``grad_x_out`` optionally receives grad_x.
    """
    func = "batch_norm_backward"
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"{func}: cache must be the BatchNormCache returned by "
                        f"batch_norm_forward, got {type(cache).__name__}")
    grad_y, x, dtype = _nm_grad_and_x(grad_y, cache, func)
    n, c = x.shape
    nt = get_num_threads()
    sum_dy = np.empty(c, _F64)
    sum_dyxc = np.empty(c, _F64)
    _norm.batch_norm_backward_sums(grad_y, x, cache.mean, sum_dy, sum_dyxc, nt)
    grad_gamma = sum_dyxc * cache.inv_std
    a = cache.gamma * cache.inv_std
    target, out = _nm_target(grad_x_out, (n, c), dtype, func, (grad_y, x), "grad_x_out")
    if cache.training:
        _norm.batch_norm_backward_dx(grad_y, x, cache.mean, a, a * cache.inv_std * grad_gamma / n,
                                     a * sum_dy / n, target, nt)
    else:
        zero = np.zeros(c, _F64)
        _norm.affine(grad_y, zero, a, zero, target, nt)
    return (_nm_finish(target, out), grad_gamma.astype(dtype), sum_dy.astype(dtype))


def layer_norm_forward(x, gamma, beta, *, eps=1e-5, out=None):
    """Layer normalisation: each ROW of x (N, C) normalised over its C features,
    ``y = (x - mean_row) / sqrt(var_row + eps) * gamma + beta`` (biased
    variance, as in PyTorch). Returns ``(y, cache)`` for
    :func:`layer_norm_backward`.

    gamma, beta: (C,) or None (1 and 0). Each row's statistics are computed by
    one thread, two-pass (mean, then squared deviations) in float64 with 16
    fixed interleaved accumulators: deterministic for any thread count. y has
    the dtype of x, gamma and beta; ``out`` optionally receives it. C must be
    >= 1; N == 0 gives an empty result. The cache keeps a reference to x (a
    copy if out overlaps x).
    """
    func = "layer_norm_forward"
    x = _as_float_array(x, "x", 2, func)
    n, c = x.shape
    eps = _nm_eps(eps, func)
    gamma = _nm_param(gamma, "gamma", c, func)
    beta = _nm_param(beta, "beta", c, func)
    if c == 0:
        raise ValueError(f"{func}: x has 0 features (shape {x.shape}): nothing to normalise over")
    dtype = _result_dtype(x, gamma, beta)
    x = _nm_rows(x.astype(dtype, copy=False))
    g64, b64 = _nm_f64(gamma, c, 1.0), _nm_f64(beta, c, 0.0)
    if out is not None and np.may_share_memory(out, x):
        x = x.copy()
    target, out = _nm_target(out, (n, c), dtype, func, (x,))
    mean = np.empty(n, _F64)
    inv_std = np.empty(n, _F64)
    _norm.layer_norm_forward(x, g64, b64, eps, target, mean, inv_std, get_num_threads())
    return _nm_finish(target, out), LayerNormCache(x, mean, inv_std, g64)


def layer_norm_backward(grad_y, cache, *, grad_x_out=None):
    """Gradients of :func:`layer_norm_forward`: ``(grad_x, grad_gamma, grad_beta)``.

    Per row, with xhat = (x - mean) * inv_std and g = grad_y * gamma:
    ``grad_x = inv_std * (g - mean(g) - xhat * mean(g * xhat))`` (row means
    over the C features); grad_gamma = sum_n grad_y * xhat and grad_beta =
    sum_n grad_y are deterministic blocked column sums in float64. Results
    have the dtype of grad_y and x; ``grad_x_out`` optionally receives grad_x.
    """
    func = "layer_norm_backward"
    if not isinstance(cache, LayerNormCache):
        raise TypeError(f"{func}: cache must be the LayerNormCache returned by "
                        f"layer_norm_forward, got {type(cache).__name__}")
    grad_y, x, dtype = _nm_grad_and_x(grad_y, cache, func)
    n, c = x.shape
    target, out = _nm_target(grad_x_out, (n, c), dtype, func, (grad_y, x), "grad_x_out")
    grad_gamma = np.empty(c, _F64)
    grad_beta = np.empty(c, _F64)
    _norm.layer_norm_backward(grad_y, x, cache.mean, cache.inv_std, cache.gamma, target,
                              grad_gamma, grad_beta, get_num_threads())
    return _nm_finish(target, out), grad_gamma.astype(dtype), grad_beta.astype(dtype)
