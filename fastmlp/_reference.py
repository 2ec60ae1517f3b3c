"""Pure-NumPy reference of every compiled kernel, signature for signature.

Design: tests compare fastmlp.ops against these in float64. They are written
for clarity, not speed, and share no code with the compiled path.
"""
import numpy as np


def _act(z, activation, alpha=0.01):
    if activation in (None, "identity"):
        return z
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "leaky_relu":
        return np.where(z < 0, alpha * z, z)
    if activation in ("sigmoid", "logistic"):
        # Stable in both tails: exp of a non-positive number only.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    if activation == "tanh":
        return np.tanh(z)
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


# ---------------------------------------------------------------- activations, softmax, losses
# float64 throughout; formulas chosen independently of the compiled ones
# where possible (logaddexp, cosh, s(z) s(-z)).

def _sigmoid(z):
    e = np.exp(-np.abs(z))
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
        r = np.tanh(z)
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
            d = (1.0 / np.cosh(z)) ** 2
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
    r = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    if out is not None:
        out[...] = r
        return out
    return r


def softmax(z, out=None):
    r = np.exp(log_softmax(z))
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
    grad = (w / w.sum())[:, None] * (tsum * np.exp(ls) - t)
    return loss, grad


def _pair(x, target):
    x = np.asarray(x, np.float64)
    t = np.asarray(target, np.float64).reshape(x.shape)
    return x, t


def sigmoid_binary_cross_entropy(logits, target):
    z, t = _pair(logits, target)
    loss = np.logaddexp(0.0, z) - z * t
    return float(loss.mean()), (_sigmoid(z) - t) / z.size


def binary_cross_entropy(prob, target, eps=None):
    p, t = _pair(prob, target)
    if eps is None:
        eps = np.finfo(np.asarray(prob).dtype).eps
    p = np.clip(p, eps, 1 - eps)
    loss = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    return float(loss.mean()), ((1 - t) / (1 - p) - t / p) / p.size


def mse(pred, target):
    x, t = _pair(pred, target)
    return float(((x - t) ** 2).mean()), 2 * (x - t) / x.size


def mae(pred, target):
    x, t = _pair(pred, target)
    return float(np.abs(x - t).mean()), np.sign(x - t) / x.size


def poisson(log_pred, target):
    x, t = _pair(log_pred, target)
    return float((np.exp(x) - t * x).mean()), (np.exp(x) - t) / x.size
