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


# ---------------------------------------------------------------- activations, softmax, losses
#
# Element-wise kernels treat a C- or F-contiguous array of any ndim as one
# flat buffer (other layouts are copied once); row kernels (softmax and the
# softmax cross-entropy) take C-contiguous rows (copied when not). The work is
# split into fixed pieces, so results do not depend on the thread count; the
# loss reductions accumulate in float64. Each loss returns
# ``(loss, grad)`` from one fused pass: `loss` is a Python float and `grad`,
# a new array of the input's shape and dtype, is d loss / d input.

from fastmlp._core import _act as _act_core  # noqa: E402

#: Activations of `activation` / `activation_backward` ('logistic' = 'sigmoid').
ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "logistic", "tanh", "sign")

__all__ += ["ACTIVATIONS", "activation", "activation_backward", "softmax", "log_softmax",
            "softmax_cross_entropy", "sigmoid_binary_cross_entropy", "binary_cross_entropy",
            "mse", "mae", "poisson"]


def _as_float_nd(x, name, func):
    """`x` as a float32/float64 ndarray of any ndim (see `_as_float_array`)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: {name} cannot be converted to an array ({exc})") from None
    return _as_float_array(x, name, x.ndim, func)


def _as_real_array(x, name, func):
    """`x` as an ndarray of booleans, integers or floats (targets, weights)."""
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: {name} cannot be converted to an array ({exc})") from None
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} has dtype {x.dtype}; expected real numbers")
    return x


def _elt_act_code(name, func):
    if not isinstance(name, str) or name not in _act_core.ACTIVATIONS:
        raise ValueError(f"{func}: unknown activation {name!r}; expected one of "
                         f"{', '.join(ACTIVATIONS)}")
    return _act_core.ACTIVATIONS[name]


def _same_memory(a, b):
    """True when a and b are the same elements in the same layout (an exact alias)."""
    return (a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _flat_order(*arrays):
    """'F' when every array is Fortran- but not all C-contiguous, else 'C'."""
    if all(a.flags.f_contiguous for a in arrays) and \
            not all(a.flags.c_contiguous for a in arrays):
        return "F"
    return "C"


def _direct_out(out, order, inputs):
    """True when `out` can be written directly: contiguous in `order`, and either
    disjoint from every input or an exact alias of it (element-wise kernels
    read each element before writing it)."""
    contiguous = out.flags.c_contiguous if order == "C" else out.flags.f_contiguous
    if not contiguous or not out.flags.aligned:
        return False
    return all(not np.may_share_memory(out, x) or _same_memory(out, x) for x in inputs)


def _flat(x, order):
    return x.reshape(-1, order=order)


def _finish(out, result):
    """Copy `result` into the caller's `out` when it was computed in a temporary."""
    if out is None or result is out:
        return result
    out[...] = result
    return out


def activation(name, z, out=None, *, alpha=0.01):
    """Element-wise activation ``f(z)`` of an array of any shape.

    name: 'identity', 'relu', 'leaky_relu' (``z < 0 ? alpha*z : z``),
    'sigmoid' (alias 'logistic'), 'tanh' or 'sign' (the perceptron's sgn:
    -1, 0 or +1, with sign(0) = 0). float32 or float64; the result has z's
    dtype. NaN propagates (relu(NaN) = NaN). sigmoid is exactly 0 and 1 at
    -inf and +inf and never overflows; tanh keeps full relative precision near
    0. ``out`` (same shape and dtype) may be `z` itself for an in-place
    update; any other overlap with `z` is handled through a temporary.
    """
    func = "activation"
    code = _elt_act_code(name, func)
    alpha = _real(alpha, "alpha", func)
    z = _as_float_nd(z, "z", func)
    order = _flat_order(z)
    z = np.asarray(z, order=order)
    if out is None:
        res = np.empty(z.shape, z.dtype, order=order)
    else:
        _check_out(out, z.shape, z.dtype, func)
        res = out if _direct_out(out, order, (z,)) else np.empty(z.shape, z.dtype, order=order)
    _act_core.forward(code, _flat(z, order), _flat(res, order), alpha, get_num_threads())
    return _finish(out, res)


def activation_backward(name, z, grad, out=None, *, alpha=0.01):
    """Backward of `activation`: ``grad * f'(z)`` with z the PRE-activation.

    Derivatives: identity 1; relu ``z > 0`` (relu'(0) = 0, as scikit-learn);
    leaky_relu ``z < 0 ? alpha : 1``; sigmoid ``s(z) s(-z)`` and tanh
    ``1 - tanh(z)^2``, both evaluated without cancellation (accurate in the
    tails); sign 0. The product is plain IEEE arithmetic (inf * 0 = NaN) and
    f'(NaN) = NaN for every activation but identity. z and grad have the same
    shape; mixed dtypes promote to float64. ``out`` may be `z` or `grad`
    itself (in-place update of the gradient).
    """
    func = "activation_backward"
    code = _elt_act_code(name, func)
    alpha = _real(alpha, "alpha", func)
    z = _as_float_nd(z, "z", func)
    grad = _as_float_nd(grad, "grad", func)
    if z.shape != grad.shape:
        raise ValueError(f"{func}: z has shape {z.shape} but grad has shape {grad.shape}; "
                         f"they must be equal")
    dtype = _result_dtype(z, grad)
    order = _flat_order(z, grad)
    z = np.asarray(z, dtype=dtype, order=order)
    grad = np.asarray(grad, dtype=dtype, order=order)
    if out is None:
        res = np.empty(z.shape, dtype, order=order)
    else:
        _check_out(out, z.shape, dtype, func)
        res = out if _direct_out(out, order, (z, grad)) else np.empty(z.shape, dtype, order=order)
    _act_core.backward(code, _flat(z, order), _flat(grad, order), _flat(res, order), alpha,
                       get_num_threads())
    return _finish(out, res)


def _softmax(z, out, log, func):
    z = np.ascontiguousarray(_as_float_array(z, "z", 2, func))
    if out is None:
        res = np.empty(z.shape, z.dtype)
    else:
        _check_out(out, z.shape, z.dtype, func)
        res = out if _direct_out(out, "C", (z,)) else np.empty(z.shape, z.dtype)
    _act_core.softmax(z, res, log, get_num_threads())
    return _finish(out, res)


def softmax(z, out=None):
    """Row-wise softmax of a 2-D (n_samples, n_classes) array.

    Stable for any logits: each row's maximum is subtracted before the
    exponentials, whose sum is accumulated in float64. ``out`` may be `z`
    itself (in place). A row holding NaN or +inf gives a row of NaN.
    """
    return _softmax(z, out, False, "softmax")


def log_softmax(z, out=None):
    """Row-wise log-softmax, ``z - max - log(sum(exp(z - max)))``, of a 2-D array.

    Finite for any finite logits (no exp overflows or log(0)). ``out`` may be
    `z` itself.
    """
    return _softmax(z, out, True, "log_softmax")


def _sample_weight(sample_weight, n, func):
    """(float64 weights or None, their sum) after validation."""
    if sample_weight is None:
        return None, float(n)
    w = _as_real_array(sample_weight, "sample_weight", func)
    if w.shape != (n,):
        raise ValueError(f"{func}: sample_weight has shape {w.shape}, expected ({n},) "
                         f"(one weight per sample)")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"{func}: sample_weight must be finite")
    if (w < 0).any():
        raise ValueError(f"{func}: sample_weight must be non-negative")
    wsum = float(np.sum(w))
    if not wsum > 0:
        raise ValueError(f"{func}: sample_weight sums to 0; at least one weight must be positive")
    if not np.isfinite(wsum):
        raise ValueError(f"{func}: sample_weight sums to infinity")
    return w, wsum


def softmax_cross_entropy(logits, target, sample_weight=None):
    """Fused softmax + cross-entropy: ``(loss, grad)`` with grad = d loss / d logits.

    logits: (n_samples, n_classes) float32/float64. target: integer class
    labels of shape (n_samples,) (any integer dtype, values in
    [0, n_classes)), or (n_samples, n_classes) one-hot rows / probabilities
    (converted to the logits' dtype; rows are used as given, not normalised).
    With T_i = sum_j t_ij (1 for labels) and w_i the sample weights (all 1
    when None):

        CE_i = T_i logsumexp(z_i) - sum_j t_ij z_ij
        loss = sum_i w_i CE_i / sum_i w_i
        grad_i = w_i (T_i softmax(z_i) - t_i) / sum_i w_i

    Computed with a log-sum-exp (finite for logits of any size) in one pass
    per row; the loss is accumulated in float64.
    """
    func = "softmax_cross_entropy"
    logits = _as_float_array(logits, "logits", 2, func)
    n, c = logits.shape
    if n == 0:
        raise ValueError(f"{func}: empty batch (logits has shape {logits.shape})")
    if c == 0:
        raise ValueError(f"{func}: logits has shape {logits.shape}: no classes")
    logits = np.ascontiguousarray(logits)
    target = _as_real_array(target, "target", func)
    labels = probs = None
    if target.ndim == 1:
        if target.dtype.kind not in "iu":
            raise TypeError(f"{func}: a 1-D target holds class labels and must have an integer "
                            f"dtype, got {target.dtype}")
        if target.shape[0] != n:
            raise ValueError(f"{func}: target has shape {target.shape} but logits has shape "
                             f"{logits.shape}; expected labels of shape ({n},) or "
                             f"probabilities of shape ({n}, {c})")
        lo, hi = target.min(), target.max()
        if lo < 0 or hi >= c:
            raise ValueError(f"{func}: class labels must be in [0, {c}) for logits with {c} "
                             f"classes, got labels from {lo} to {hi}")
        labels = np.ascontiguousarray(target, dtype=np.int64)
    elif target.ndim == 2:
        if target.shape != logits.shape:
            raise ValueError(f"{func}: target has shape {target.shape} but logits has shape "
                             f"{logits.shape}; expected probabilities of shape ({n}, {c}) or "
                             f"labels of shape ({n},)")
        probs = np.ascontiguousarray(target, dtype=logits.dtype)
    else:
        raise ValueError(f"{func}: target must be 1-D labels or 2-D probabilities, got shape "
                         f"{target.shape}")
    w, wsum = _sample_weight(sample_weight, n, func)
    grad = np.empty(logits.shape, logits.dtype)
    loss = _act_core.softmax_xent(logits, labels, probs, w, wsum, grad, get_num_threads())
    return float(loss), grad


def _elementwise_loss(func, kind, x, xname, target, eps=0.0):
    """Mean over all elements of an element-wise loss, and its gradient."""
    x = _as_float_nd(x, xname, func)
    if x.ndim not in (1, 2):
        raise ValueError(f"{func}: {xname} must be 1-D or 2-D, got shape {x.shape}")
    target = _as_real_array(target, "target", func)
    if target.shape != x.shape:
        column = {x.shape, target.shape} == {(x.shape[0],), (x.shape[0], 1)}
        if not column:
            raise ValueError(f"{func}: {xname} has shape {x.shape} but target has shape "
                             f"{target.shape}; they must be equal (or (n,) and (n, 1))")
        target = target.reshape(x.shape)
    if x.size == 0:
        raise ValueError(f"{func}: empty batch ({xname} has shape {x.shape})")
    order = _flat_order(x)
    x = np.asarray(x, order=order)
    t = np.asarray(target, dtype=x.dtype, order=order)
    grad = np.empty(x.shape, x.dtype, order=order)
    loss = _act_core.eloss(kind, _flat(x, order), _flat(t, order), _flat(grad, order), eps,
                           get_num_threads())
    return float(loss), grad


def sigmoid_binary_cross_entropy(logits, target):
    """Fused sigmoid + binary cross-entropy (multi-label), ``(loss, grad)``.

    Element-wise ``max(z, 0) - z t + log1p(exp(-|z|))`` (stable for any z),
    averaged over ALL elements; grad = (sigmoid(z) - t) / n_elements.
    logits: (n,) or (n, k); target of the same shape ((n,) is accepted for
    logits of shape (n, 1) and vice versa), any real dtype, converted to the
    logits' dtype; targets in [0, 1] (not checked).
    """
    return _elementwise_loss("sigmoid_binary_cross_entropy", _act_core.LOSSES["sigmoid_bce"],
                             logits, "logits", target)


def binary_cross_entropy(prob, target, eps=None):
    """Binary cross-entropy on probabilities, ``(loss, grad)``.

    p = clip(prob, eps, 1 - eps); loss = mean over all elements of
    ``-(t log p + (1 - t) log(1 - p))``; grad = ((1 - t)/(1 - p) - t/p) /
    n_elements, i.e. the derivative of the formula evaluated at the clipped
    p (finite everywhere; equal to the exact derivative where prob lies in
    (eps, 1 - eps)). eps defaults to ``np.finfo(prob.dtype).eps``, the
    clipping of scikit-learn's ``binary_log_loss``; it must be in (0, 0.5).
    Shapes as in `sigmoid_binary_cross_entropy`.
    """
    func = "binary_cross_entropy"
    if eps is None:
        x = _as_float_nd(prob, "prob", func)
        eps = float(np.finfo(x.dtype).eps)
        prob = x
    else:
        eps = _real(eps, "eps", func)
        if not 0.0 < eps < 0.5:
            raise ValueError(f"{func}: eps must be in (0, 0.5), got {eps!r}")
    return _elementwise_loss(func, _act_core.LOSSES["bce"], prob, "prob", target, eps)


def mse(pred, target):
    """Mean squared error ``mean((pred - target)^2)`` and grad ``2 (pred - target) / n_elements``.

    Shapes as in `sigmoid_binary_cross_entropy`.
    """
    return _elementwise_loss("mse", _act_core.LOSSES["mse"], pred, "pred", target)


def mae(pred, target):
    """Mean absolute error ``mean(|pred - target|)`` and grad ``sign(pred - target) / n_elements``.

    The subgradient at pred == target is 0.
    """
    return _elementwise_loss("mae", _act_core.LOSSES["mae"], pred, "pred", target)


def poisson(log_pred, target):
    """Half Poisson deviance with log link, as scikit-learn's ``HalfPoissonLoss``.

    log_pred is the raw prediction (the model predicts exp(log_pred)); loss =
    mean over all elements of ``exp(log_pred) - target * log_pred``, grad =
    (exp(log_pred) - target) / n_elements. Like ``HalfPoissonLoss`` (and
    unlike the reported value of MLPRegressor(loss='poisson')), the constant
    ``target * log(target) - target`` is NOT included: it does not change the
    gradient. target must be non-negative (not checked).
    """
    return _elementwise_loss("poisson", _act_core.LOSSES["poisson"], log_pred, "log_pred",
                             target)
