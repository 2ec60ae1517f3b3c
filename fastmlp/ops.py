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


def _to_ndarray(x, name, func):
    """`x` as an ndarray; TypeError naming `func` and `name` if it cannot be one."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}: {name} cannot be converted to an array ({exc})") from None


def _element_strided(x):
    """True if `x` is aligned and every stride is a whole number of elements.

    (A plain loop: these helpers run on every call, and for the one-row
    products of prediction their cost is comparable to the kernel's.)
    """
    if not x.flags.aligned:
        return False
    isz = x.itemsize
    for s in x.strides:
        if s % isz:
            return False
    return True


def _as_float_array(x, name, ndim, func):
    """`x` as an ndarray of float32/float64 with `ndim` dims and element-aligned strides."""
    x = _to_ndarray(x, name, func)
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{func}: {name} has dtype {x.dtype}; fastmlp kernels take float32 or float64 "
            f"(convert with {name}.astype(np.float32) or .astype(np.float64))")
    if x.ndim != ndim:
        raise ValueError(f"{func}: {name} must be {ndim}-D, got {x.ndim}-D array of shape {x.shape}")
    if not _element_strided(x):
        # Misaligned views (e.g. from a byte offset into a buffer) cannot be
        # addressed with element strides: take an aligned copy.
        x = np.array(x, copy=True, order="C")
    return x


def _result_dtype(*arrays):
    """float32 if every array is float32, else float64 (inputs are float32/float64)."""
    f32 = _FLOAT_DTYPES[0]
    for a in arrays:
        if a is not None and a.dtype != f32:
            return _FLOAT_DTYPES[1]
    return f32


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
    if type(value) is float:  # the common case, without the slower ABC check below
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def _needs_temp(out, *inputs):
    """True when `out` cannot be written in place: it overlaps an input, or
    it is misaligned or its strides are not whole elements."""
    return _gemm.needs_temp(out, inputs)


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
    if a.dtype != dtype or b.dtype != dtype:
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
    if x.dtype != dtype or w.dtype != dtype:
        x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    if b is not None and (b.dtype != dtype or b.strides[0] != b.itemsize):
        b = np.ascontiguousarray(b, dtype=dtype)
    shape = (x.shape[0], w.shape[1])
    inputs = None
    if out is None:
        out = np.empty(shape, dtype)
    else:
        _check_out(out, shape, dtype, "linear")
        inputs = (x, w, b)
    return _run_gemm(x, w, out, 1.0, 0.0, b, act, alpha, inputs)


# ---------------------------------------------------------------- optimizers
#
# Fused in-place optimizer steps over FLAT buffers (src_c/nn/optim.c): a
# model keeps all its parameters in one contiguous 1-D buffer, its gradients
# in another and each optimizer state in one more, so a step is one kernel
# call that reads every element once and writes params and state once.

import math as _math
import operator as _operator
import types as _types

from fastmlp._core import _optim

__all__ += [
    "OPTIMIZERS", "OPTIMIZER_STATE", "OPTIMIZER_DEFAULTS", "optimizer_state",
    "optimizer_step", "grad_norm", "sgd_step", "momentum_step", "nesterov_step",
    "adagrad_step", "adadelta_step", "rmsprop_step", "adam_step", "amsgrad_step",
    "adamw_step", "adamax_step",
]

#: Methods of `optimizer_step`.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop",
              "adam", "amsgrad", "adamw", "adamax")

#: The state buffers each method takes, in order (all start at zero).
OPTIMIZER_STATE = _types.MappingProxyType({
    "sgd": (),
    "momentum": ("velocity",),
    "nesterov": ("velocity",),
    "adagrad": ("sum_sq",),
    "adadelta": ("sq_avg", "delta_sq_avg"),
    "rmsprop": ("sq_avg",),
    "adam": ("m", "v"),
    "amsgrad": ("m", "v", "v_max"),
    "adamw": ("m", "v"),
    "adamax": ("m", "u"),
})

_ADAM_DEFAULTS = {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}

#: The hyperparameters each method takes, with their defaults. Passing one
#: a method does not take is an error. `l1` and `clip_norm` (default off)
#: apply to every method; `step` is required by the Adam family.
OPTIMIZER_DEFAULTS = _types.MappingProxyType({
    "sgd": _types.MappingProxyType({"lr": 0.01, "weight_decay": 0.0}),
    "momentum": _types.MappingProxyType({"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}),
    "nesterov": _types.MappingProxyType({"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}),
    "adagrad": _types.MappingProxyType({"lr": 0.01, "eps": 1e-10, "weight_decay": 0.0}),
    "adadelta": _types.MappingProxyType({"lr": 1.0, "rho": 0.9, "eps": 1e-6,
                                         "weight_decay": 0.0}),
    "rmsprop": _types.MappingProxyType({"lr": 0.001, "rho": 0.9, "eps": 1e-8,
                                        "weight_decay": 0.0}),
    "adam": _types.MappingProxyType(dict(_ADAM_DEFAULTS)),
    "amsgrad": _types.MappingProxyType(dict(_ADAM_DEFAULTS)),
    "adamw": _types.MappingProxyType(dict(_ADAM_DEFAULTS, weight_decay=0.01)),
    "adamax": _types.MappingProxyType(dict(_ADAM_DEFAULTS, lr=0.002)),
})

_ADAM_FAMILY = ("adam", "amsgrad", "adamw", "adamax")


def _optimizer_method(method, func):
    if not isinstance(method, str) or method not in OPTIMIZER_STATE:
        raise ValueError(f"{func}: unknown optimizer {method!r}; expected one of "
                         f"{', '.join(OPTIMIZERS)}")
    return method


def _inplace_buffer(x, name, func, dtype=None, n=None):
    """A caller's flat buffer that is updated in place: a 1-D C-contiguous,
    aligned, writeable float32/float64 ndarray (no copy can stand in for it),
    of `dtype` and length `n` when given."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{func}: {name} must be a numpy.ndarray (it is updated in place), "
                        f"got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{func}: {name} has dtype {x.dtype}; fastmlp optimizers take float32 "
                        f"or float64 buffers")
    if x.ndim != 1:
        raise ValueError(f"{func}: {name} must be a 1-D (flat) buffer, got {x.ndim}-D array of "
                         f"shape {x.shape}")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"{func}: {name} has dtype {x.dtype}, expected {dtype} (the dtype of "
                         f"params)")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{func}: {name} has length {x.shape[0]}, expected {n} (the length of "
                         f"params)")
    if not x.flags.c_contiguous or not x.flags.aligned:
        raise ValueError(f"{func}: {name} must be C-contiguous and aligned (it is updated in "
                         f"place, so a strided view cannot be copied instead)")
    if not x.flags.writeable:
        raise ValueError(f"{func}: {name} is read-only (it is updated in place)")
    return x


def _finite(value, name, func, *, low, low_open, high=None):
    """A finite real in [low, high) (or (low, ...) when low_open)."""
    value = _real(value, name, func)
    ok = _math.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and value < high
    if not ok:
        rng = f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g})'}"
        raise ValueError(f"{func}: {name} must be a finite number in {rng}, got {value!r}")
    return value


def optimizer_state(method, params):
    """Zero-initialised state buffers for `method`, shaped and typed like the
    flat `params` buffer, in the order `optimizer_step` takes them (see
    OPTIMIZER_STATE for their names)."""
    method = _optimizer_method(method, "optimizer_state")
    params = _as_float_array(params, "params", 1, "optimizer_state")
    return tuple(np.zeros(params.shape[0], params.dtype) for _ in OPTIMIZER_STATE[method])


def grad_norm(x):
    """Global L2 norm ``sqrt(sum(x**2))`` of a 1-D float32/float64 array.

    Accumulated in float64 with a fixed blocking (per-chunk partial sums
    added in chunk order), so the value is bitwise the same for any number
    of threads; float64 sums that overflow are recomputed scaled by
    1/max|x|. This is the norm ``optimizer_step`` clips with.
    """
    x = _as_float_array(x, "x", 1, "grad_norm")
    return _optim.grad_norm(np.ascontiguousarray(x), get_num_threads())


def optimizer_step(method, params, grads, state=(), *, lr=None, momentum=None, rho=None,
                   beta1=None, beta2=None, eps=None, weight_decay=None, l1=0.0,
                   clip_norm=None, step=None):
    r"""One optimizer step on flat buffers, fused into one pass, in place.

    params : 1-D C-contiguous writeable float32/float64 ndarray, updated in place.
    grads : 1-D array of the same length and dtype (any strides; never
        written; copied first if it overlaps params or the state).
    state : sequence of the method's state buffers (``OPTIMIZER_STATE[method]``,
        each like params, zero before the first step, updated in place, not
        overlapping params or each other; ``optimizer_state`` makes them). A
        2-D (k, n) C-ordered array works as k buffers; a single 1-D array as one.
    step : the step count t = 1, 2, ... (required by adam, amsgrad, adamw and
        adamax for the bias corrections; others ignore it).
    Hyperparameters left as None take ``OPTIMIZER_DEFAULTS[method]``; passing
    one the method does not take raises ValueError.

    Returns the global L2 norm of `grads` before clipping if `clip_norm` is
    given (see ``grad_norm``), else None.

    Per element, the gradient used is first clipped and regularised:

        g' = scale * g + weight_decay * p + l1 * sign(p)     (sign(0) = sign(NaN) = 0)

    * clipping (PyTorch's clip_grad_norm_ rule): with N the global L2 norm of
      `grads`, scale = clip_norm / (N + 1e-6) if N + 1e-6 > clip_norm, else 1.
      N is a deterministic float64 reduction. If N is inf/NaN nothing is
      scaled (the non-finite gradients propagate, see below).
    * weight_decay * p is the gradient of the L2 penalty
      (weight_decay / 2) * ||p||^2 -- the form of scikit-learn's MLP `alpha`;
      for adamw it is replaced by decoupled decay (below). Regularisers are
      added after clipping (PyTorch's order) and are not clipped.
    * l1 * sign(p) is a subgradient of l1 * ||p||_1.

    Then, with lr the learning rate, mu = momentum and t = step:

    * sgd:      p -= lr g'
    * momentum: v = mu v - lr g';  p += v    (scikit-learn's form; for a constant
      lr this equals PyTorch's v = mu v + g', p -= lr v)
    * nesterov: v = mu v - lr g';  p += mu v - lr g'   (scikit-learn's NAG)
    * adagrad:  G += g'^2;  p -= lr g' / (sqrt(G) + eps)
    * adadelta (Zeiler 2012, lr = 1 in the paper):
      E = rho E + (1 - rho) g'^2;  dx = sqrt(D + eps) / sqrt(E + eps) * g';
      D = rho D + (1 - rho) dx^2;  p -= lr dx
    * rmsprop:  E = rho E + (1 - rho) g'^2;  p -= lr g' / (sqrt(E) + eps)
    * adam (Kingma & Ba 2015, Algorithm 1):
      m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2;
      m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t);
      p -= lr m_hat / (sqrt(v_hat) + eps)
      computed as p -= (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
      like PyTorch. scikit-learn's AdamOptimizer adds eps to sqrt(v) instead
      (the paper's "eps-hat" variant); m and v are identical, and the steps
      agree up to that eps term.
    * amsgrad:  adam with v_max = max(v_max, v) and sqrt(v_max) in the denominator.
    * adamw (Loshchilov & Hutter 2019, PyTorch's AdamW): g' has no
      weight_decay term; p *= 1 - lr weight_decay, then the adam update.
    * adamax (Kingma & Ba 2015, sec. 7.1): m = beta1 m + (1 - beta1) g';
      u = max(beta2 u, |g'|);  p -= (lr / (1 - beta1^t)) m / (u + eps).
      The paper has no eps; u = 0 where all gradients so far were 0, and the
      eps avoids 0/0 there (u itself is stored without eps).

    float32 buffers are updated in float32 arithmetic with every coefficient
    (1 - beta1, lr / (1 - beta1^t), ...) computed in float64 and rounded once.
    Results are bitwise identical for any number of threads and for the
    portable and AVX2 kernels. NaN/inf in `grads` propagate into the params
    and state of their own elements only (``max`` lets NaN through). The
    second-moment states hold g'^2, so in float32 a gradient above ~1.8e19
    overflows them to inf, after which that element's Adam/RMSprop/Adagrad
    steps are 0 (m / inf).
    """
    func = "optimizer_step"
    method = _optimizer_method(method, func)
    defaults = OPTIMIZER_DEFAULTS[method]
    given = {"lr": lr, "momentum": momentum, "rho": rho, "beta1": beta1, "beta2": beta2,
             "eps": eps, "weight_decay": weight_decay}
    hp = {}
    for name, value in given.items():
        if name in defaults:
            hp[name] = defaults[name] if value is None else value
        elif value is not None:
            raise ValueError(f"{func}: {method} takes no {name} (its hyperparameters: "
                             f"{', '.join(defaults)}, l1, clip_norm"
                             f"{', step' if method in _ADAM_FAMILY else ''})")
    kw = {"lr": _finite(hp["lr"], "lr", func, low=0.0, low_open=True)}
    for name in ("momentum", "rho", "beta1", "beta2"):
        if name in hp:
            kw[name] = _finite(hp[name], name, func, low=0.0, low_open=False, high=1.0)
    if "eps" in hp:
        kw["eps"] = _finite(hp["eps"], "eps", func, low=0.0, low_open=True)
    kw["weight_decay"] = _finite(hp["weight_decay"], "weight_decay", func, low=0.0,
                                 low_open=False)
    kw["l1"] = _finite(l1, "l1", func, low=0.0, low_open=False)
    if clip_norm is not None:
        kw["clip_norm"] = _finite(clip_norm, "clip_norm", func, low=0.0, low_open=True)
    if step is not None:
        if isinstance(step, (bool, np.bool_)):
            raise TypeError(f"{func}: step must be an int, got bool")
        try:
            step = _operator.index(step)
        except TypeError:
            raise TypeError(f"{func}: step must be an int, got {type(step).__name__}") from None
        if step < 1:
            raise ValueError(f"{func}: step must be >= 1 (the first step is 1), got {step}")
    if method in _ADAM_FAMILY:
        if step is None:
            raise ValueError(f"{func}: {method} needs step=t, the step count (1 for the first "
                             f"step), for its bias corrections")
        if step >= 2 ** 63:
            raise ValueError(f"{func}: step {step} does not fit in 64 bits")
        kw["step"] = step

    params = _inplace_buffer(params, "params", func)
    n, dtype = params.shape[0], params.dtype
    if isinstance(state, np.ndarray) and state.ndim == 1:
        state = (state,)
    try:
        state = tuple(state)
    except TypeError:
        raise TypeError(f"{func}: state must be a sequence of arrays, got "
                        f"{type(state).__name__}") from None
    names = OPTIMIZER_STATE[method]
    if len(state) != len(names):
        raise ValueError(f"{func}: {method} takes {len(names)} state buffer(s) "
                         f"({', '.join(names) or 'none'}), got {len(state)}")
    for i, (s, name) in enumerate(zip(state, names)):
        _inplace_buffer(s, f"state[{i}] ({name})", func, dtype, n)
    written = (params,) + state
    for i in range(len(written)):
        for j in range(i):
            if np.may_share_memory(written[i], written[j]):
                what = ["params"] + [f"state[{k}]" for k in range(len(state))]
                raise ValueError(f"{func}: {what[i]} overlaps {what[j]} in memory; every "
                                 f"buffer updated in place must be distinct")

    grads = _as_float_array(grads, "grads", 1, func)
    if grads.dtype != dtype:
        raise ValueError(f"{func}: grads has dtype {grads.dtype}, expected {dtype} (the dtype "
                         f"of params; convert with grads.astype(np.{dtype}))")
    if grads.shape[0] != n:
        raise ValueError(f"{func}: grads has length {grads.shape[0]}, expected {n} (the length "
                         f"of params)")
    if not grads.flags.c_contiguous or any(np.may_share_memory(grads, w) for w in written):
        grads = np.array(grads, order="C", copy=True)

    return _optim.step(_optim.METHODS[method], params, grads, *state,
                       n_threads=get_num_threads(), **kw)


def sgd_step(params, grads, *, lr=0.01, weight_decay=0.0, l1=0.0, clip_norm=None):
    """Plain SGD, ``p -= lr * g'``; see `optimizer_step` (method "sgd")."""
    return optimizer_step("sgd", params, grads, (), lr=lr, weight_decay=weight_decay, l1=l1,
                          clip_norm=clip_norm)


def momentum_step(params, grads, velocity, *, lr=0.01, momentum=0.9, weight_decay=0.0, l1=0.0,
                  clip_norm=None):
    """Classical momentum, ``v = mu v - lr g'; p += v``; see `optimizer_step`."""
    return optimizer_step("momentum", params, grads, (velocity,), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def nesterov_step(params, grads, velocity, *, lr=0.01, momentum=0.9, weight_decay=0.0, l1=0.0,
                  clip_norm=None):
    """Nesterov momentum, ``v = mu v - lr g'; p += mu v - lr g'``; see `optimizer_step`."""
    return optimizer_step("nesterov", params, grads, (velocity,), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def adagrad_step(params, grads, sum_sq, *, lr=0.01, eps=1e-10, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
    """Adagrad, ``G += g'^2; p -= lr g' / (sqrt(G) + eps)``; see `optimizer_step`."""
    return optimizer_step("adagrad", params, grads, (sum_sq,), lr=lr, eps=eps,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def adadelta_step(params, grads, sq_avg, delta_sq_avg, *, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, l1=0.0, clip_norm=None):
    """Adadelta (Zeiler 2012); see `optimizer_step`."""
    return optimizer_step("adadelta", params, grads, (sq_avg, delta_sq_avg), lr=lr, rho=rho,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def rmsprop_step(params, grads, sq_avg, *, lr=0.001, rho=0.9, eps=1e-8, weight_decay=0.0,
                 l1=0.0, clip_norm=None):
    """RMSprop, ``E = rho E + (1-rho) g'^2; p -= lr g' / (sqrt(E) + eps)``; see `optimizer_step`."""
    return optimizer_step("rmsprop", params, grads, (sq_avg,), lr=lr, rho=rho, eps=eps,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def adam_step(params, grads, m, v, *, step, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, l1=0.0, clip_norm=None):
    """Adam with bias correction (t = `step` >= 1); see `optimizer_step`."""
    return optimizer_step("adam", params, grads, (m, v), lr=lr, beta1=beta1, beta2=beta2,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                          step=step)


def amsgrad_step(params, grads, m, v, v_max, *, step, lr=0.001, beta1=0.9, beta2=0.999,
                 eps=1e-8, weight_decay=0.0, l1=0.0, clip_norm=None):
    """AMSGrad (Adam with the running max of v); see `optimizer_step`."""
    return optimizer_step("amsgrad", params, grads, (m, v, v_max), lr=lr, beta1=beta1,
                          beta2=beta2, eps=eps, weight_decay=weight_decay, l1=l1,
                          clip_norm=clip_norm, step=step)


def adamw_step(params, grads, m, v, *, step, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.01, l1=0.0, clip_norm=None):
    """AdamW (decoupled weight decay, ``p *= 1 - lr wd`` then Adam); see `optimizer_step`."""
    return optimizer_step("adamw", params, grads, (m, v), lr=lr, beta1=beta1, beta2=beta2,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                          step=step)


def adamax_step(params, grads, m, u, *, step, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, l1=0.0, clip_norm=None):
    """AdaMax (Adam with the infinity norm); see `optimizer_step`."""
    return optimizer_step("adamax", params, grads, (m, u), lr=lr, beta1=beta1, beta2=beta2,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                          step=step)

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
    x = _to_ndarray(x, name, func)
    return _as_float_array(x, name, x.ndim, func)


def _as_real_array(x, name, func):
    """`x` as an ndarray of booleans, integers or floats (targets, weights)."""
    x = _to_ndarray(x, name, func)
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
    x = _as_float_nd(x, name, func)
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
