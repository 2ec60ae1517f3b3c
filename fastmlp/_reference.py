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
