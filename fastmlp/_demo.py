"""``python -m fastmlp demo``: softmax regression on scikit-learn's digits.

Forward pass and weight gradients run on fastmlp's GEMM engine
(``ops.linear`` and ``ops.gemm`` with ``trans_a``); mini-batch SGD with
momentum. Later versions train the full MLP here.
"""
import time

import numpy as np

from fastmlp import ops
from fastmlp._config import get_config


def _softmax_rows(z):
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def train_softmax_regression(X, y, n_classes, *, epochs=60, batch_size=64, lr=0.5,
                             momentum=0.9, seed=0, dtype=np.float32):
    """Mini-batch SGD on the mean cross-entropy; returns (W, b)."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype)
    n, d = X.shape
    W = np.zeros((d, n_classes), dtype)
    b = np.zeros(n_classes, dtype)
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    gW = np.empty_like(W)
    onehot = np.eye(n_classes, dtype=dtype)[y]
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb = X[idx]
            p = _softmax_rows(ops.linear(xb, W, b))
            g = (p - onehot[idx]) / len(idx)           # d(mean CE)/d(logits)
            ops.gemm(xb, g, gW, trans_a=True)           # X^T g without a transposed copy
            vW *= momentum
            vW -= lr * gW
            vb *= momentum
            vb -= lr * g.sum(axis=0)
            W += vW
            b += vb
    return W, b


def run_demo(epochs=60, seed=0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    cfg = get_config()
    print(f"fastmlp demo: softmax regression on digits ({Xtr.shape[0]} train / {Xte.shape[0]} test, "
          f"{X.shape[1]} features), kernel {cfg['gemm_float32']['name']}, "
          f"{cfg['num_threads']} thread(s)")
    t0 = time.perf_counter()
    W, b = train_softmax_regression(Xtr, ytr, 10, epochs=epochs, seed=seed)
    dt = time.perf_counter() - t0
    acc = float(np.mean(np.argmax(ops.linear(Xte, W, b), axis=1) == yte))
    print(f"trained {epochs} epochs in {dt:.2f} s; test accuracy {acc:.4f}")
    return acc
