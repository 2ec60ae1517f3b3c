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
