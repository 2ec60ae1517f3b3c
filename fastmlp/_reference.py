"""Pure-NumPy reference of every compiled kernel, signature for signature.

Design: tests compare fastmlp.ops against these in float64. They are written
for clarity, not speed, and share no code with the compiled path.

Transcendental functions (exp, log, tanh, cosh, logaddexp) are evaluated in
long double and rounded to the working dtype (_exp, _log, ...): NumPy's
float64 ufuncs take different SIMD code on AVX-512 and AVX2 hosts, a few ulp
apart, while its long double functions are libm's, the same on every host. So
a reference value never moves with the machine the tests run on. Passing long
double arrays keeps the whole computation in long double (tests use that where
a result cancels, e.g. the gradient of a loss).
"""
import numpy as np


def _ld_ufunc(f):
    def g(*xs):
        dt = np.result_type(*xs, np.float64)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            r = f(*(np.asarray(x, np.longdouble) for x in xs))
        return r.astype(dt) if isinstance(r, np.ndarray) else dt.type(r)
    g.__name__ = f.__name__
    return g


_exp = _ld_ufunc(np.exp)
_log = _ld_ufunc(np.log)
_tanh = _ld_ufunc(np.tanh)
_cosh = _ld_ufunc(np.cosh)
_logaddexp = _ld_ufunc(np.logaddexp)


def _act(z, activation, alpha=0.01):
    if activation in (None, "identity"):
        return z
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "leaky_relu":
        return np.where(z < 0, alpha * z, z)
    if activation in ("sigmoid", "logistic"):
        # Stable in both tails: exp of a non-positive number only.
        e = _exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    if activation == "tanh":
        return _tanh(z)
    raise ValueError(activation)


def matmul(a, b, out=None):
    r = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    if out is not None:
        out[...] = r
        return out
    return r


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    r = alpha * (opa @ opb)
    if c is not None and beta != 0:
        r = r + beta * np.asarray(c, np.float64)
    return r


def linear(x, w, b=None, activation=None, out=None, *, alpha=0.01):
    z = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    if b is not None:
        z = z + np.asarray(b, np.float64)
    return _act(z, activation, alpha)


# ---------------------------------------------------------------- optimizers
# Float64 references of ops.optimizer_step and friends. They update float64
# `params` and `state` arrays in place and return what the op returns. The
# formulas are written as in the papers (m_hat, v_hat, ...), not in the
# kernels' arithmetic.

_OPT_STATE = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "adadelta": 2,
              "rmsprop": 1, "adam": 2, "amsgrad": 3, "adamw": 2, "adamax": 2}
_ADAM = {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
_OPT_DEFAULTS = {
    "sgd": {"lr": 0.01, "weight_decay": 0.0},
    "momentum": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0},
    "nesterov": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0},
    "adagrad": {"lr": 0.01, "eps": 1e-10, "weight_decay": 0.0},
    "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
    "rmsprop": {"lr": 0.001, "rho": 0.9, "eps": 1e-8, "weight_decay": 0.0},
    "adam": dict(_ADAM),
    "amsgrad": dict(_ADAM),
    "adamw": dict(_ADAM, weight_decay=0.01),
    "adamax": dict(_ADAM, lr=0.002),
}


def optimizer_state(method, params):
    return tuple(np.zeros(np.shape(params)[0]) for _ in range(_OPT_STATE[method]))


def grad_norm(x):
    """sqrt(sum(x^2)) without overflow: max|x| * ||x / max|x|||."""
    x = np.asarray(x, np.float64)
    s = float(np.max(np.abs(x))) if x.size else 0.0
    if s == 0.0 or not np.isfinite(s):
        return s
    return s * float(np.sqrt(np.sum((x / s) ** 2)))


def optimizer_step(method, params, grads, state=(), *, lr=None, momentum=None, rho=None,
                   beta1=None, beta2=None, eps=None, weight_decay=None, l1=0.0,
                   clip_norm=None, step=None):
    hp = dict(_OPT_DEFAULTS[method])
    for name, value in (("lr", lr), ("momentum", momentum), ("rho", rho), ("beta1", beta1),
                        ("beta2", beta2), ("eps", eps), ("weight_decay", weight_decay)):
        if value is not None:
            hp[name] = value
    p = params
    assert p.dtype == np.float64 and all(s.dtype == np.float64 for s in state)
    g = np.array(grads, dtype=np.float64)
    norm = None
    if clip_norm is not None:
        norm = grad_norm(g)
        if np.isfinite(norm) and norm + 1e-6 > clip_norm:
            g = g * (clip_norm / (norm + 1e-6))
    wd = hp["weight_decay"]
    if method != "adamw":
        g = g + wd * p
    g = g + l1 * np.sign(p)
    lr = hp["lr"]
    if method == "sgd":
        p -= lr * g
    elif method in ("momentum", "nesterov"):
        (v,) = state
        mu = hp["momentum"]
        v[...] = mu * v - lr * g
        p += v if method == "momentum" else mu * v - lr * g
    elif method == "adagrad":
        (acc,) = state
        acc += g ** 2
        p -= lr * g / (np.sqrt(acc) + hp["eps"])
    elif method == "adadelta":
        e_g2, e_dx2 = state
        rho, eps = hp["rho"], hp["eps"]
        e_g2[...] = rho * e_g2 + (1 - rho) * g ** 2
        dx = -np.sqrt(e_dx2 + eps) / np.sqrt(e_g2 + eps) * g
        e_dx2[...] = rho * e_dx2 + (1 - rho) * dx ** 2
        p += lr * dx
    elif method == "rmsprop":
        (e_g2,) = state
        rho = hp["rho"]
        e_g2[...] = rho * e_g2 + (1 - rho) * g ** 2
        p -= lr * g / (np.sqrt(e_g2) + hp["eps"])
    elif method in ("adam", "amsgrad", "adamw"):
        m, v = state[0], state[1]
        b1, b2, t = hp["beta1"], hp["beta2"], step
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g ** 2
        vv = v
        if method == "amsgrad":
            state[2][...] = np.maximum(state[2], v)
            vv = state[2]
        if method == "adamw":
            p -= lr * wd * p
        m_hat = m / (1 - b1 ** t)
        v_hat = vv / (1 - b2 ** t)
        p -= lr * m_hat / (np.sqrt(v_hat) + hp["eps"])
    elif method == "adamax":
        m, u = state
        b1, b2, t = hp["beta1"], hp["beta2"], step
        m[...] = b1 * m + (1 - b1) * g
        u[...] = np.maximum(b2 * u, np.abs(g))
        p -= (lr / (1 - b1 ** t)) * m / (u + hp["eps"])
    else:
        raise ValueError(method)
    return norm


def sgd_step(params, grads, *, lr=0.01, weight_decay=0.0, l1=0.0, clip_norm=None):
    return optimizer_step("sgd", params, grads, (), lr=lr, weight_decay=weight_decay, l1=l1,
                          clip_norm=clip_norm)


def momentum_step(params, grads, velocity, *, lr=0.01, momentum=0.9, weight_decay=0.0, l1=0.0,
                  clip_norm=None):
    return optimizer_step("momentum", params, grads, (velocity,), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def nesterov_step(params, grads, velocity, *, lr=0.01, momentum=0.9, weight_decay=0.0, l1=0.0,
                  clip_norm=None):
    return optimizer_step("nesterov", params, grads, (velocity,), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def adagrad_step(params, grads, sum_sq, *, lr=0.01, eps=1e-10, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
    return optimizer_step("adagrad", params, grads, (sum_sq,), lr=lr, eps=eps,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def adadelta_step(params, grads, sq_avg, delta_sq_avg, *, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, l1=0.0, clip_norm=None):
    return optimizer_step("adadelta", params, grads, (sq_avg, delta_sq_avg), lr=lr, rho=rho,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def rmsprop_step(params, grads, sq_avg, *, lr=0.001, rho=0.9, eps=1e-8, weight_decay=0.0,
                 l1=0.0, clip_norm=None):
    return optimizer_step("rmsprop", params, grads, (sq_avg,), lr=lr, rho=rho, eps=eps,
                          weight_decay=weight_decay, l1=l1, clip_norm=clip_norm)


def adam_step(params, grads, m, v, *, step, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, l1=0.0, clip_norm=None):
    return optimizer_step("adam", params, grads, (m, v), lr=lr, beta1=beta1, beta2=beta2,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                          step=step)


def amsgrad_step(params, grads, m, v, v_max, *, step, lr=0.001, beta1=0.9, beta2=0.999,
                 eps=1e-8, weight_decay=0.0, l1=0.0, clip_norm=None):
    return optimizer_step("amsgrad", params, grads, (m, v, v_max), lr=lr, beta1=beta1,
                          beta2=beta2, eps=eps, weight_decay=weight_decay, l1=l1,
                          clip_norm=clip_norm, step=step)


def adamw_step(params, grads, m, v, *, step, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.01, l1=0.0, clip_norm=None):
    return optimizer_step("adamw", params, grads, (m, v), lr=lr, beta1=beta1, beta2=beta2,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                          step=step)


def adamax_step(params, grads, m, u, *, step, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, l1=0.0, clip_norm=None):
    return optimizer_step("adamax", params, grads, (m, u), lr=lr, beta1=beta1, beta2=beta2,
                          eps=eps, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
                          step=step)

# ---------------------------------------------------------------- activations, softmax, losses
# float64 throughout; formulas chosen independently of the compiled ones
# where possible (logaddexp, cosh, s(z) s(-z)).

def _sigmoid(z):
    e = _exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def activation(name, z, out=None, *, alpha=0.01):
    z = np.asarray(z, np.float64)
    if name == "identity":
        r = z.copy()
    elif name == "relu":
        r = np.where(z < 0, 0.0, z)  # NaN kept (np.maximum would keep it too)
    elif name == "leaky_relu":
        r = np.where(z < 0, alpha * z, z)
    elif name in ("sigmoid", "logistic"):
        r = _sigmoid(z)
    elif name == "tanh":
        r = _tanh(z)
    elif name == "sign":
        r = np.sign(z)
    else:
        raise ValueError(name)
    if out is not None:
        out[...] = r
        return out
    return r


def activation_derivative(name, z, alpha=0.01):
    """f'(z), with f'(NaN) = NaN except for identity."""
    z = np.asarray(z, np.float64)
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        d = (z > 0).astype(np.float64)
    elif name == "leaky_relu":
        d = np.where(z < 0, alpha, 1.0)
    elif name in ("sigmoid", "logistic"):
        d = _sigmoid(z) * _sigmoid(-z)
    elif name == "tanh":
        with np.errstate(over="ignore"):
            d = (1.0 / _cosh(z)) ** 2
    elif name == "sign":
        d = np.zeros_like(z)
    else:
        raise ValueError(name)
    return np.where(np.isnan(z), np.nan, d)


def activation_backward(name, z, grad, out=None, *, alpha=0.01):
    with np.errstate(invalid="ignore"):
        r = np.asarray(grad, np.float64) * activation_derivative(name, z, alpha)
    if out is not None:
        out[...] = r
        return out
    return r


def log_softmax(z, out=None):
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    r = z - m - _log(_exp(z - m).sum(axis=1, keepdims=True))
    if out is not None:
        out[...] = r
        return out
    return r


def softmax(z, out=None):
    r = _exp(log_softmax(z))
    if out is not None:
        out[...] = r
        return out
    return r


def softmax_cross_entropy(logits, target, sample_weight=None):
    z = np.asarray(logits, np.float64)
    n, c = z.shape
    target = np.asarray(target)
    if target.ndim == 1:
        t = np.zeros((n, c))
        t[np.arange(n), target] = 1.0
    else:
        t = np.asarray(target, np.float64)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    ls = log_softmax(z)
    ce = -(np.where(t != 0, t * ls, 0.0)).sum(axis=1)
    tsum = t.sum(axis=1, keepdims=True)
    loss = float((w * ce).sum() / w.sum())
    grad = (w / w.sum())[:, None] * (tsum * _exp(ls) - t)
    return loss, grad


def _wide(x):
    """float64, or np.longdouble for long double input: tests pass long double
    to get a reference whose exp/log come from libm's long double functions,
    which do not depend on NumPy's SIMD dispatch (float64 np.exp and np.log
    take other code paths, a few ulp apart, on AVX-512 and AVX2 hosts)."""
    return np.longdouble if np.asarray(x).dtype == np.longdouble else np.float64


def _pair(x, target):
    x = np.asarray(x, _wide(x))
    t = np.asarray(target, x.dtype).reshape(x.shape)
    return x, t


def sigmoid_binary_cross_entropy(logits, target):
    z, t = _pair(logits, target)
    loss = _logaddexp(0.0, z) - z * t
    return float(loss.mean()), (_sigmoid(z) - t) / z.size


def binary_cross_entropy(prob, target, eps=None):
    p, t = _pair(prob, target)
    if eps is None:
        eps = np.finfo(np.asarray(prob).dtype).eps
    p = np.clip(p, eps, 1 - eps)
    loss = -(t * _log(p) + (1 - t) * _log(1 - p))
    return float(loss.mean()), ((1 - t) / (1 - p) - t / p) / p.size


def mse(pred, target):
    x, t = _pair(pred, target)
    return float(((x - t) ** 2).mean()), 2 * (x - t) / x.size


def mae(pred, target):
    x, t = _pair(pred, target)
    return float(np.abs(x - t).mean()), np.sign(x - t) / x.size


def poisson(log_pred, target):
    x, t = _pair(log_pred, target)
    return float((_exp(x) - t * x).mean()), (_exp(x) - t) / x.size

# ---------------------------------------------------------------- bias_grad, linear_backward,
# dropout, batch norm, layer norm (float64; the backward passes are written in
# the staged chain-rule form, independently of the closed forms the kernels use)

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def philox4x32_10(ctr, key):
    """Philox4x32-10 (Salmon et al., SC'11) of the rows of ctr (n, 4) uint32 under
    key (2,) uint32, vectorised with uint64 products: (n, 4) uint32."""
    c = [np.asarray(ctr, np.uint64)[:, i].copy() for i in range(4)]
    k0, k1 = int(key[0]), int(key[1])
    lo32 = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(_PHILOX_M[0]) * c[0]
        p1 = np.uint64(_PHILOX_M[1]) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0), p1 & lo32,
             (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1), p0 & lo32]
        k0 = (k0 + _PHILOX_W[0]) & 0xFFFFFFFF
        k1 = (k1 + _PHILOX_W[1]) & 0xFFFFFFFF
    return np.stack(c, axis=1).astype(np.uint32)


def dropout_keep_mask(size, p, seed, dtype):
    """Boolean keep mask of the flat C-order elements 0..size-1 (see ops.dropout)."""
    per_block = 4 if np.dtype(dtype) == np.float32 else 2
    nblocks = (size + per_block - 1) // per_block
    j = np.arange(nblocks, dtype=np.uint64)
    ctr = np.zeros((nblocks, 4), np.uint64)
    ctr[:, 0] = j & np.uint64(0xFFFFFFFF)
    ctr[:, 1] = j >> np.uint64(32)
    words = philox4x32_10(ctr, (seed & 0xFFFFFFFF, seed >> 32)).astype(np.uint64)
    keep = 1.0 - p
    if per_block == 4:
        u = (words >> np.uint64(8)).reshape(-1)[:size]
        return u.astype(np.float64) / 2.0 ** 24 < keep
    a = words[:, 0::2] >> np.uint64(5)
    b = words[:, 1::2] >> np.uint64(6)
    u = ((a << np.uint64(26)) | b).reshape(-1)[:size]
    # u < 2^53 is exact in float64, and so is the division by 2^53.
    return u.astype(np.float64) / 2.0 ** 53 < keep


def bias_grad(g, out=None):
    return np.asarray(g, np.float64).sum(axis=0)


def linear_backward(x, w, grad_y, *, need_grad_x=True, grad_x_out=None, grad_w_out=None,
                    grad_b_out=None):
    x, w, gy = (np.asarray(a, np.float64) for a in (x, w, grad_y))
    return (gy @ w.T if need_grad_x else None), x.T @ gy, gy.sum(axis=0)


def dropout(x, p, *, seed, out=None):
    x = np.asarray(x)
    if p == 0:
        return x.astype(np.float64)
    keep = dropout_keep_mask(x.size, p, seed, x.dtype).reshape(x.shape)
    return x.astype(np.float64) * keep / (1.0 - p)


def dropout_backward(grad, p, *, seed, out=None):
    return dropout(grad, p, seed=seed)


def batch_norm_forward(x, gamma, beta, running_mean, running_var, *, training=True,
                       momentum=0.1, eps=1e-5, out=None):
    """Returns (y, cache); updates running_mean / running_var in place in training."""
    x = np.asarray(x, np.float64)
    n, c = x.shape
    gamma = np.ones(c) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros(c) if beta is None else np.asarray(beta, np.float64)
    if training:
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1)
    else:
        mean = np.asarray(running_mean, np.float64).copy()
        var = np.asarray(running_var, np.float64).copy()
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return y, dict(x=x, mean=mean, var=var, gamma=gamma, eps=eps, training=training)


def batch_norm_backward(grad_y, cache, *, grad_x_out=None):
    """Staged chain rule (Ioffe & Szegedy 2015, section 3)."""
    dy = np.asarray(grad_y, np.float64)
    x, mean, var, gamma, eps = (cache[k] for k in ("x", "mean", "var", "gamma", "eps"))
    n = x.shape[0]
    xhat = (x - mean) / np.sqrt(var + eps)
    grad_gamma = (dy * xhat).sum(axis=0)
    grad_beta = dy.sum(axis=0)
    dxhat = dy * gamma
    if not cache["training"]:
        return dxhat / np.sqrt(var + eps), grad_gamma, grad_beta
    dvar = (dxhat * (x - mean)).sum(axis=0) * -0.5 * (var + eps) ** -1.5
    dmean = -(dxhat / np.sqrt(var + eps)).sum(axis=0) + dvar * (-2.0 * (x - mean)).mean(axis=0)
    grad_x = dxhat / np.sqrt(var + eps) + dvar * 2.0 * (x - mean) / n + dmean / n
    return grad_x, grad_gamma, grad_beta


def layer_norm_forward(x, gamma, beta, *, eps=1e-5, out=None):
    x = np.asarray(x, np.float64)
    c = x.shape[1]
    gamma = np.ones(c) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros(c) if beta is None else np.asarray(beta, np.float64)
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return y, dict(x=x, mean=mean, var=var, gamma=gamma, eps=eps)


def layer_norm_backward(grad_y, cache, *, grad_x_out=None):
    """Staged chain rule, per row (the batch-norm stages over axis 1)."""
    dy = np.asarray(grad_y, np.float64)
    x, mean, var, gamma, eps = (cache[k] for k in ("x", "mean", "var", "gamma", "eps"))
    c = x.shape[1]
    xhat = (x - mean) / np.sqrt(var + eps)
    grad_gamma = (dy * xhat).sum(axis=0)
    grad_beta = dy.sum(axis=0)
    dxhat = dy * gamma
    dvar = (dxhat * (x - mean)).sum(axis=1, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmean = (-(dxhat / np.sqrt(var + eps)).sum(axis=1, keepdims=True)
             + dvar * (-2.0 * (x - mean)).mean(axis=1, keepdims=True))
    grad_x = dxhat / np.sqrt(var + eps) + dvar * 2.0 * (x - mean) / c + dmean / c
    return grad_x, grad_gamma, grad_beta
