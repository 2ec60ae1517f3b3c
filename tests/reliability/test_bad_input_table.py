"""Bad input at every public entry point: one table, every case run in a
subprocess so that a crash (segfault, abort) or a hang is caught and names
its case.

Each case is a snippet of Python run in a worker process (namespace: SETUP
below). It either must raise -- the exception class and a regex the message
must match, so the message names the problem -- or must succeed ("OK"), in
which case the snippet itself asserts the result against NumPy (and, for
read-only / non-contiguous inputs, that they were not written to).

Policy for NaN/inf, case by case as users of each layer expect:

* ops (fastmlp.ops, fastmlp.matmul): NaN and inf PROPAGATE, as in NumPy
  (``np.nan @ x`` is NaN): the snippets check that they do, where NumPy puts
  them.
* fastmlp.nn forward / predict: propagate, as PyTorch's modules do.
* fastmlp.nn.fit: NaN/inf in X or in float targets is a ValueError, and so is
  a training loss that becomes NaN/inf (divergence) -- never a model that
  silently trains to NaN.
* estimators (MLPClassifier, MLPRegressor, Perceptron): ValueError on NaN/inf
  in fit and predict, as scikit-learn; sgd/adam raise ValueError when the
  weights become non-finite (scikit-learn's check), and no estimator returns
  NaN predictions.
* Empty inputs: ops follow NumPy (a (0, k) @ (k, n) product is an empty
  (0, n) array; reductions over rows of nothing give zeros) except where the
  result is undefined (the mean loss of an empty batch, batch-norm statistics):
  ValueError. Estimators raise ValueError like scikit-learn.
* One class: MLPClassifier keeps scikit-learn's behaviour (it fits and always
  predicts that class); Perceptron, a binary classifier, raises ValueError.
* CLI: argparse conventions, SystemExit(2) with a usage message on stderr.

The workers run the table in a few processes (each executing many cases and
reporting one JSON line per case); if a worker dies or hangs, the first case
it did not report is the culprit, and a new worker continues after it.
"""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest

OK = "OK"

SETUP = r'''
import contextlib, io, os, sys, warnings
import numpy as np
import fastmlp
from fastmlp import ops, nn
from fastmlp.__main__ import main as cli
from fastmlp import MLPClassifier, MLPRegressor, Perceptron
warnings.simplefilter("ignore")
F32, F64 = np.float32, np.float64
rng = np.random.default_rng(0)
A = rng.standard_normal((5, 4)); B = rng.standard_normal((4, 3)); SQ = rng.standard_normal((4, 4))
Z = rng.standard_normal((6, 5)); P = np.zeros(7); G = rng.standard_normal(7)
ANAN = A.copy(); ANAN[1, 2] = np.nan
AINF = A.copy(); AINF[2, 0] = np.inf
STR = np.full((5, 4), "a"); OBJ = A.astype(object); CPLX = A.astype(complex); BOOL = A > 0
Xc = rng.random((40, 3)); yc = (Xc[:, 0] > 0.5).astype(int); yr = Xc.sum(1)
XNAN = Xc.copy(); XNAN[3, 1] = np.nan
XINF = Xc.copy(); XINF[0, 0] = -np.inf
TMP = os.getcwd()
HUGE = 10 ** 12


def clf(**kw):
    return MLPClassifier(**{"hidden_layer_sizes": (5,), "max_iter": 5, "random_state": 0, **kw})


def reg(**kw):
    return MLPRegressor(**{"hidden_layer_sizes": (5,), "max_iter": 5, "random_state": 0, **kw})


CLF, REG = clf().fit(Xc, yc), reg().fit(Xc, yr)
PERC = Perceptron(random_state=0).fit(Xc, yc)


def seq(dtype=F32):
    return nn.Sequential(nn.Linear(3, 4, random_state=0, dtype=dtype), nn.ReLU(dtype=dtype),
                         nn.Dropout(0.2, random_state=1, dtype=dtype),
                         nn.Linear(4, 2, random_state=2, dtype=dtype))


SEQ = seq()


def nnfit(model=None, X=Xc, y=yc, **kw):
    kw = {"loss": "cross_entropy", "epochs": 2, "verbose": 0, "random_state": 0, **kw}
    return nn.fit(seq() if model is None else model, X, y, **kw)


def ro(a):
    """A read-only, non-contiguous view holding a copy of a (rows reversed, every 2nd element)."""
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    v = big[tuple(slice(None, None, -2 if i == 0 else 2) for i in range(a.ndim))]
    v[...] = a
    v.flags.writeable = False
    assert not v.flags.c_contiguous or a.size <= 1
    return v


def untouched(f, *arrays):
    """f(), checking that it did not write to any of `arrays` (bitwise)."""
    before = [np.array(a, copy=True) for a in arrays]
    res = f()
    for a, b in zip(arrays, before):
        assert np.array(a).tobytes() == b.tobytes(), "an input was written to"
    return res


def close(got, want, rtol=1e-12):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)   # NaN where NumPy has NaN


def softmax_ref(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_cli(*argv):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cli(list(argv))
    except SystemExit as exc:
        raise SystemExit(f"exit {exc.code}: {err.getvalue()}") from None


def no_nan_fit(make, X, y):
    """Either scikit-learn's ValueError on non-finite weights, or finite everything."""
    try:
        m = make().fit(X, y)
    except ValueError as exc:
        assert "non-finite" in str(exc), exc
        return
    assert all(np.isfinite(c).all() for c in m.coefs_)
    out = m.predict_proba(X) if hasattr(m, "predict_proba") else m.predict(X)
    assert np.isfinite(out).all()
'''

# (id, snippet, expectation) -- expectation: OK, or (exception class name, message regex).
# A 4th element marks a known failure caused by fastmlp/sklearn.py (xfail, strict).
_DT = r"dtype .*float32 or float64"
TABLE = [
    # ------------------------------------------------------------------ ops: matmul / gemm / linear
    ("matmul-nan-propagates", "c = fastmlp.matmul(ANAN, B); close(c, ANAN @ B)", OK),
    ("matmul-inf-propagates", "c = fastmlp.matmul(AINF, B); close(c, AINF @ B)", OK),
    ("matmul-1d", "fastmlp.matmul(A[0], B)", ("ValueError", r"a must be 2-D, got 1-D")),
    ("matmul-3d", "fastmlp.matmul(A, B[None])", ("ValueError", r"b must be 2-D, got 3-D")),
    ("matmul-shape", "fastmlp.matmul(A, A)", ("ValueError", r"not aligned: 4 .* != 5")),
    ("matmul-empty-rows", "c = fastmlp.matmul(A[:0], B); assert c.shape == (0, 3)", OK),
    ("matmul-empty-k", "c = fastmlp.matmul(A[:, :0], B[:0]); close(c, np.zeros((5, 3)))", OK),
    ("matmul-one-row", "close(fastmlp.matmul(A[:1], B), A[:1] @ B)", OK),
    ("matmul-str", "fastmlp.matmul(STR, B)", ("TypeError", "dtype <U1.*float32 or float64")),
    ("matmul-object", "fastmlp.matmul(OBJ, B)", ("TypeError", "dtype object.*float32 or float64")),
    ("matmul-complex", "fastmlp.matmul(CPLX, B)", ("TypeError", "dtype complex128")),
    ("matmul-bool", "fastmlp.matmul(BOOL, B)", ("TypeError", "dtype bool")),
    ("matmul-ragged-list", "fastmlp.matmul([[1.0, 2.0], [3.0]], B)",
     ("TypeError", "cannot be converted|dtype object")),
    ("matmul-readonly-strided", "a, b = ro(A), ro(B); close(untouched(lambda: fastmlp.matmul(a, b), a, b), A @ B)", OK),
    ("matmul-out-aliases-a", "a = A.copy(); r = fastmlp.matmul(a, SQ, out=a); assert r is a; close(a, A @ SQ)", OK),
    ("matmul-out-overlaps-b", "s = SQ.copy(); fastmlp.matmul(A[:4], s, out=s); close(s, A[:4] @ SQ)", OK),
    ("matmul-out-readonly", "o = np.zeros((5, 3)); o.flags.writeable = False; fastmlp.matmul(A, B, out=o)",
     ("ValueError", "out is read-only")),
    ("matmul-out-shape", "fastmlp.matmul(A, B, out=np.zeros((3, 5)))", ("ValueError", r"out has shape \(3, 5\), expected \(5, 3\)")),
    ("matmul-out-dtype", "fastmlp.matmul(A, B, out=np.zeros((5, 3), F32))", ("ValueError", "out has dtype float32, expected float64")),
    ("matmul-absurd-output", "h = np.broadcast_to(F32(1), (2**21, 2**21)); fastmlp.matmul(h, h)",
     ("MemoryError", "allocate")),
    ("matmul-absurd-overflow", "h = np.broadcast_to(F32(1), (8, 2**57)); fastmlp.matmul(h, h.T)",
     ("ValueError", "overflow")),
    ("gemm-alpha-str", "ops.gemm(A, B, alpha='2')", ("TypeError", "alpha must be a real number")),
    ("gemm-c-aliases-a", "c = SQ.copy(); ops.gemm(c, SQ, c, beta=1.0); close(c, SQ @ SQ + SQ)", OK),
    ("gemm-trans-shape", "ops.gemm(A, B, trans_a=True)", ("ValueError", r"op\(a\).*not aligned|not aligned")),
    ("linear-unknown-activation", "ops.linear(A, B, activation='gelu')", ("ValueError", "unknown activation 'gelu'")),
    ("linear-bias-shape", "ops.linear(A, B, np.zeros(4))", ("ValueError", r"b has shape \(4,\), expected \(3,\)")),
    ("linear-nan-bias", "b = np.array([np.nan, 0, 0]); close(ops.linear(A, B, b), A @ B + b)", OK),
    ("linear-readonly-strided", "x, w, b = ro(A), ro(B), ro(np.arange(3.0)); close(untouched(lambda: ops.linear(x, w, b, 'relu'), x, w, b), np.maximum(A @ B + np.arange(3.0), 0))", OK),
    ("linear-complex-bias", "ops.linear(A, B, np.zeros(3, complex))", ("TypeError", "dtype complex128")),
    # ------------------------------------------------------------------ ops: activations, softmax, losses
    ("activation-unknown", "ops.activation('gelu', Z)", ("ValueError", "unknown activation 'gelu'")),
    ("activation-nan", "z = Z.copy(); z[0, 0] = np.nan; r = ops.activation('relu', z); assert np.isnan(r[0, 0]) and np.isfinite(r[1:]).all()", OK),
    ("activation-empty", "assert ops.activation('tanh', np.zeros((0, 3))).shape == (0, 3)", OK),
    ("activation-str", "ops.activation('relu', STR)", ("TypeError", _DT)),
    ("activation-object", "ops.activation('relu', OBJ)", ("TypeError", "dtype object")),
    ("activation-bool", "ops.activation('relu', BOOL)", ("TypeError", "dtype bool")),
    ("activation-readonly-strided", "z = ro(Z); close(untouched(lambda: ops.activation('tanh', z), z), np.tanh(Z))", OK),
    ("activation-out-overlap", "z = Z.ravel().copy(); ops.activation('relu', z[:-1], out=z[1:]); close(z[1:], np.maximum(Z.ravel()[:-1], 0))", OK),
    ("activation-absurd", "ops.activation('relu', np.broadcast_to(1.0, (2**22, 2**22)))", ("MemoryError", "allocate")),
    ("activation-backward-shape", "ops.activation_backward('relu', Z, Z[:2])", ("ValueError", "z has shape .* but grad has shape")),
    ("softmax-1d", "ops.softmax(Z[0])", ("ValueError", "z must be 2-D, got 1-D")),
    ("softmax-nan-row", "z = Z.copy(); z[1, 2] = np.nan; r = ops.softmax(z); assert np.isnan(r[1]).all(); close(r[[0, 2]], softmax_ref(Z[[0, 2]]))", OK),
    ("softmax-empty", "assert ops.softmax(np.zeros((0, 4))).shape == (0, 4)", OK),
    ("softmax-out-is-input", "z = Z.copy(); ops.log_softmax(z, out=z); close(np.exp(z), softmax_ref(Z))", OK),
    ("softmax-readonly-strided", "z = ro(Z); close(untouched(lambda: ops.softmax(z), z), softmax_ref(Z))", OK),
    ("xent-labels-range", "ops.softmax_cross_entropy(Z, np.full(6, 5))", ("ValueError", r"labels must be in \[0, 5\)")),
    ("xent-float-labels", "ops.softmax_cross_entropy(Z, np.zeros(6))", ("TypeError", "integer dtype")),
    ("xent-empty", "ops.softmax_cross_entropy(Z[:0], np.zeros(0, int))", ("ValueError", "empty batch")),
    ("xent-nan-propagates", "z = Z.copy(); z[0, 0] = np.nan; l, g = ops.softmax_cross_entropy(z, np.zeros(6, int)); assert np.isnan(l) and np.isnan(g[0]).all() and np.isfinite(g[1:]).all()", OK),
    ("xent-weight-negative", "ops.softmax_cross_entropy(Z, np.zeros(6, int), -np.ones(6))", ("ValueError", "sample_weight must be non-negative")),
    ("xent-weight-nan", "ops.softmax_cross_entropy(Z, np.zeros(6, int), np.full(6, np.nan))", ("ValueError", "sample_weight must be finite")),
    ("xent-target-3d", "ops.softmax_cross_entropy(Z, np.zeros((6, 5, 1)))", ("ValueError", "target must be 1-D labels or 2-D")),
    ("mse-shape", "ops.mse(Z, Z[:, :2])", ("ValueError", "pred has shape .* but target has shape")),
    ("mse-empty", "ops.mse(np.zeros(0), np.zeros(0))", ("ValueError", "empty batch")),
    ("mse-3d", "ops.mse(Z[None], Z[None])", ("ValueError", "must be 1-D or 2-D")),
    ("mse-target-str", "ops.mse(Z, np.full(Z.shape, 'a'))", ("TypeError", "target has dtype <U1; expected real numbers")),
    ("mse-target-complex", "ops.mse(Z, Z.astype(complex))", ("TypeError", "target has dtype complex128")),
    ("mse-nan-propagates", "z = Z.copy(); z[0, 0] = np.inf; l, g = ops.mse(z, Z); assert np.isinf(l)", OK),
    ("bce-eps", "ops.binary_cross_entropy(np.full(3, .5), np.ones(3), eps=0.7)", ("ValueError", r"eps must be in \(0, 0.5\)")),
    ("poisson-readonly", "x, t = ro(Z), ro(np.abs(Z)); l, g = untouched(lambda: ops.poisson(x, t), x, t); close(l, np.mean(np.exp(Z) - np.abs(Z) * Z))", OK),
    # ------------------------------------------------------------------ ops: backward, dropout, norms
    ("bias-grad-1d", "ops.bias_grad(Z[0])", ("ValueError", "g must be 2-D")),
    ("bias-grad-empty", "close(ops.bias_grad(np.zeros((0, 3))), np.zeros(3))", OK),
    ("linear-backward-shape", "ops.linear_backward(A, B, np.zeros((5, 4)))", ("ValueError", r"grad_y has shape \(5, 4\), expected \(5, 3\)")),
    ("linear-backward-out-aliases", "w = B.copy(); g = np.ones((5, 3)); ops.linear_backward(A, w, g, grad_w_out=w); close(w, A.T @ g)", OK),
    ("dropout-p1", "ops.dropout(Z, 1.0, seed=0)", ("ValueError", r"p must be in \[0, 1\)")),
    ("dropout-p-neg", "ops.dropout(Z, -0.1, seed=0)", ("ValueError", r"p must be in \[0, 1\)")),
    ("dropout-p-nan", "ops.dropout(Z, float('nan'), seed=0)", ("ValueError", r"p must be in \[0, 1\)")),
    ("dropout-seed-neg", "ops.dropout(Z, 0.5, seed=-1)", ("ValueError", r"seed must be in \[0, 2\*\*64\)")),
    ("dropout-seed-float", "ops.dropout(Z, 0.5, seed=1.5)", ("TypeError", "seed must be an int")),
    ("dropout-str", "ops.dropout(STR, 0.5, seed=1)", ("TypeError", _DT)),
    ("dropout-readonly-strided", "z = ro(Z); r = untouched(lambda: ops.dropout(z, 0.5, seed=3), z); close(r, ops.dropout(Z, 0.5, seed=3))", OK),
    ("dropout-backward-dtype", "ops.dropout_backward(CPLX, 0.5, seed=1)", ("TypeError", "dtype complex128")),
    ("dropout-backward-matches-forward", "g = ro(Z); close(untouched(lambda: ops.dropout_backward(g, 0.25, seed=9), g), ops.dropout(Z, 0.25, seed=9))", OK),
    ("dropout-in-place", "z = Z.copy(); ops.dropout(z, 0.5, seed=3, out=z); close(z, ops.dropout(Z, 0.5, seed=3))", OK),
    ("dropout-absurd", "ops.dropout(np.broadcast_to(1.0, (2**22, 2**22)), 0.5, seed=0)", ("MemoryError", "allocate")),
    ("batchnorm-one-sample", "ops.batch_norm_forward(Z[:1], None, None, None, None)", ("ValueError", "more than 1 sample")),
    ("batchnorm-empty", "ops.batch_norm_forward(Z[:0], None, None, None, None)", ("ValueError", "empty batch")),
    ("batchnorm-eps0", "ops.batch_norm_forward(Z, None, None, None, None, eps=0.0)", ("ValueError", "eps must be a positive finite number")),
    ("batchnorm-momentum", "ops.batch_norm_forward(Z, None, None, None, None, momentum=1.5)", ("ValueError", r"momentum must be in \[0, 1\]")),
    ("batchnorm-running-readonly", "rm = np.zeros(5); rm.flags.writeable = False; ops.batch_norm_forward(Z, None, None, rm, np.ones(5))", ("ValueError", "running_mean is read-only")),
    ("batchnorm-eval-no-stats", "ops.batch_norm_forward(Z, None, None, None, None, training=False)", ("ValueError", "training=False needs running_mean")),
    ("batchnorm-gamma-shape", "ops.batch_norm_forward(Z, np.ones(4), None, None, None)", ("ValueError", r"gamma has shape \(4,\), expected \(5,\)")),
    ("batchnorm-backward-cache", "ops.batch_norm_backward(Z, None)", ("TypeError", "cache must be the BatchNormCache")),
    ("batchnorm-readonly-strided", "z = ro(Z); y, _ = untouched(lambda: ops.batch_norm_forward(z, None, None, None, None), z); close(y, (Z - Z.mean(0)) / np.sqrt(Z.var(0) + 1e-5), 1e-10)", OK),
    ("layernorm-no-features", "ops.layer_norm_forward(Z[:, :0], None, None)", ("ValueError", "0 features")),
    ("layernorm-backward-shape", "_, c = ops.layer_norm_forward(Z, None, None); ops.layer_norm_backward(Z[:2], c)", ("ValueError", "grad_y has shape")),
    # ------------------------------------------------------------------ ops: optimizers
    ("optim-unknown", "ops.optimizer_step('adamm', P.copy(), G)", ("ValueError", "unknown optimizer 'adamm'")),
    ("optim-lr-negative", "ops.optimizer_step('sgd', P.copy(), G, lr=-0.1)", ("ValueError", r"lr must be a finite number in \(0, inf\)")),
    ("optim-lr-nan", "ops.optimizer_step('sgd', P.copy(), G, lr=float('nan'))", ("ValueError", "lr must be a finite number")),
    ("optim-momentum-one", "ops.optimizer_step('momentum', P.copy(), G, (np.zeros(7),), momentum=1.0)", ("ValueError", r"momentum must be a finite number in \[0, 1\)")),
    ("optim-state-count", "ops.optimizer_step('adam', P.copy(), G, (np.zeros(7),), step=1)", ("ValueError", r"takes 2 state buffer")),
    ("optim-state-aliases-params", "p = P.copy(); ops.optimizer_step('momentum', p, G, (p,))", ("ValueError", "overlaps")),
    ("optim-params-readonly", "p = P.copy(); p.flags.writeable = False; ops.optimizer_step('sgd', p, G)", ("ValueError", "params is read-only")),
    ("optim-params-strided", "ops.optimizer_step('sgd', np.zeros(14)[::2], G)", ("ValueError", "C-contiguous")),
    ("optim-params-int", "ops.optimizer_step('sgd', np.zeros(7, int), G)", ("TypeError", "params has dtype int64")),
    ("optim-grads-length", "ops.optimizer_step('sgd', P.copy(), G[:3])", ("ValueError", "grads has length 3, expected 7")),
    ("optim-grads-dtype", "ops.optimizer_step('sgd', P.copy(), G.astype(F32))", ("ValueError", "grads has dtype float32, expected float64")),
    ("optim-adam-no-step", "ops.optimizer_step('adam', P.copy(), G, ops.optimizer_state('adam', P))", ("ValueError", "needs step=t")),
    ("optim-step-zero", "ops.optimizer_step('adam', P.copy(), G, ops.optimizer_state('adam', P), step=0)", ("ValueError", "step must be >= 1")),
    ("optim-grads-readonly-strided", "p = P.copy(); g = ro(G); untouched(lambda: ops.optimizer_step('sgd', p, g, lr=0.5), g); close(p, -0.5 * G)", OK),
    ("optim-nan-grad-propagates", "p = P.copy(); g = G.copy(); g[2] = np.nan; ops.optimizer_step('sgd', p, g); assert np.isnan(p[2]) and np.isfinite(np.delete(p, 2)).all()", OK),
    ("grad-norm-str", "ops.grad_norm(STR[0])", ("TypeError", _DT)),
    # ------------------------------------------------------------------ fastmlp.nn: layers and models
    ("nn-linear-zero", "nn.Linear(0, 5)", ("ValueError", "n_in must be >= 1, got 0")),
    ("nn-linear-negative", "nn.Linear(3, -2)", ("ValueError", "n_out must be >= 1, got -2")),
    ("nn-linear-float", "nn.Linear(2.5, 5)", ("TypeError", "n_in must be an int")),
    ("nn-linear-huge", "nn.Linear(3, HUGE)", ("MemoryError", r"Linear\(3, 1000000000000\): cannot allocate .*use fewer units")),
    ("nn-linear-init", "nn.Linear(3, 4, init='xavier')", ("ValueError", "unknown init 'xavier'")),
    ("nn-linear-dtype", "nn.Linear(3, 4, dtype=np.int32)", ("TypeError", "dtype must be float32 or float64")),
    ("nn-dropout-p1", "nn.Dropout(1.0)", ("ValueError", "p=1.0 is out of range")),
    ("nn-batchnorm-zero", "nn.BatchNorm1d(0)", ("ValueError", "n must be >= 1")),
    ("nn-leakyrelu-nan", "nn.LeakyReLU(float('nan'))", ("ValueError", "alpha=nan is out of range")),
    ("nn-sequential-empty", "nn.Sequential()", ("ValueError", "at least one layer")),
    ("nn-sequential-not-layer", "nn.Sequential(nn.ReLU(), 'relu')", ("TypeError", "expected Layer instances, got str")),
    ("nn-sequential-dtypes", "nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, dtype=F64))", ("ValueError", "same dtype")),
    ("nn-forward-features", "SEQ.predict(Xc[:, :2])", ("ValueError", r"not aligned: 2 \(dim 1 of x\) != 3")),
    ("nn-forward-1d", "SEQ.predict(Xc[0])", ("ValueError", "X must be 2-D")),
    ("nn-forward-3d", "SEQ.predict(Xc[None])", ("ValueError", "X must be 2-D")),
    ("nn-forward-str", "SEQ.predict(np.full((2, 3), 'a'))", ("TypeError", "dtype <U1; fastmlp.nn models take real numbers")),
    ("nn-forward-complex", "SEQ.predict(Xc.astype(complex))", ("TypeError", "dtype complex128; fastmlp.nn models take real numbers")),
    ("nn-forward-object-str", "SEQ.predict(np.array([[1.0, 'x', 2.0]], dtype=object))", ("TypeError", "non-numeric entries")),
    ("nn-forward-object-numbers", "close(SEQ.predict(Xc.astype(object)), SEQ.predict(Xc))", OK),
    ("nn-forward-int", "close(SEQ.predict(np.ones((2, 3), int)), SEQ.predict(np.ones((2, 3))))", OK),
    ("nn-forward-empty", "assert SEQ.predict(Xc[:0]).shape == (0, 2)", OK),
    ("nn-forward-nan-propagates", "r = SEQ.predict(XNAN); assert np.isnan(r[3]).all() and np.isfinite(np.delete(r, 3, 0)).all()", OK),
    ("nn-forward-readonly-strided", "x = ro(Xc.astype(F32)); close(untouched(lambda: SEQ.predict(x), x), SEQ.predict(Xc))", OK),
    ("nn-backward-before-forward", "nn.Linear(3, 2).backward(np.ones((2, 2)))", ("RuntimeError", "backward called before forward")),
    ("nn-fit-nan-X", "nnfit(X=XNAN)", ("ValueError", "X contains NaN or infinity")),
    ("nn-fit-inf-X", "nnfit(X=XINF)", ("ValueError", "X contains NaN or infinity")),
    ("nn-fit-nan-y", "nnfit(model=nn.Sequential(nn.Linear(3, 1)), y=np.where(yr > 1, np.nan, yr), loss='mse')", ("ValueError", "y contains NaN or infinity")),
    ("nn-fit-nan-validation", "nnfit(validation_data=(XNAN, yc))", ("ValueError", "validation X contains NaN")),
    ("nn-fit-diverges", "m = nn.Sequential(nn.Linear(3, 1, random_state=0)); nnfit(m, X=Xc * 1e3, y=yr * 1e3, loss='mse', learning_rate=10.0, epochs=20)", ("ValueError", "training loss is (inf|nan) .*diverged.*lower the learning rate")),
    ("nn-fit-diverges-keeps-finite-params", "m = nn.Sequential(nn.Linear(3, 1, random_state=0))\ntry:\n    nnfit(m, X=Xc * 1e3, y=yr * 1e3, loss='mse', learning_rate=10.0, epochs=20)\nexcept ValueError:\n    pass\nassert np.isfinite(m.flat_parameters).all()", OK),
    ("nn-fit-str-X", "nnfit(X=np.full((40, 3), 'a'))", ("TypeError", "dtype <U1")),
    ("nn-fit-complex-X", "nnfit(X=Xc.astype(complex))", ("TypeError", "dtype complex128")),
    ("nn-fit-str-y", "nnfit(y=np.where(yc, 'a', 'b'))", ("TypeError", "y has dtype <U1; expected real numbers")),
    ("nn-fit-1d-X", "nnfit(X=Xc[:, 0])", ("ValueError", "X must be 2-D")),
    ("nn-fit-length", "nnfit(y=yc[:-1])", ("ValueError", "X has 40 samples but y has 39")),
    ("nn-fit-empty", "nnfit(X=Xc[:0], y=yc[:0])", ("ValueError", "no samples")),
    ("nn-fit-one-sample", "h = nnfit(X=Xc[:1], y=yc[:1]); assert np.isfinite(h['loss']).all()", OK),
    ("nn-fit-labels-range", "nnfit(y=yc + 5)", ("ValueError", r"labels must be in \[0, 2\)")),
    ("nn-fit-features", "nnfit(X=Xc[:, :2])", ("ValueError", "not aligned")),
    ("nn-fit-batch-zero", "nnfit(batch_size=0)", ("ValueError", "batch_size must be a positive int, got 0")),
    ("nn-fit-epochs-zero", "nnfit(epochs=0)", ("ValueError", "epochs must be a positive int")),
    ("nn-fit-lr-negative", "nnfit(learning_rate=-0.1)", ("ValueError", "lr must be a finite number in")),
    ("nn-fit-optimizer", "nnfit(optimizer='adamm')", ("ValueError", "unknown optimizer 'adamm'")),
    ("nn-fit-loss", "nnfit(loss='hinge')", ("ValueError", "unknown loss 'hinge'")),
    ("nn-fit-validation-fraction", "nnfit(validation_fraction=1.5)", ("ValueError", r"validation_fraction must be in \(0, 1\)")),
    ("nn-fit-readonly-strided", "x, y = ro(Xc), ro(yc); untouched(lambda: nnfit(X=x, y=y), x, y)", OK),
    # ------------------------------------------------------------------ estimators (scikit-learn API)
    ("clf-nan-X", "clf().fit(XNAN, yc)", ("ValueError", "Input X contains NaN")),
    ("clf-inf-X", "clf().fit(XINF, yc)", ("ValueError", "Input X contains infinity")),
    ("reg-nan-y", "reg().fit(Xc, np.where(yr > 1, np.nan, yr))", ("ValueError", "Input y contains NaN")),
    ("clf-1d-X", "clf().fit(Xc[:, 0], yc)", ("ValueError", "Expected 2D array, got 1D array.*Reshape")),
    ("reg-3d-X", "reg().fit(Xc[:, :, None], yr)", ("ValueError", "Found array with dim 3")),
    ("clf-length", "clf().fit(Xc, yc[:-1])", ("ValueError", r"inconsistent numbers of samples: \[40, 39\]")),
    ("clf-empty", "clf().fit(Xc[:0], yc[:0])", ("ValueError", r"0 sample\(s\)")),
    ("reg-no-features", "reg().fit(Xc[:, :0], yr)", ("ValueError", r"0 feature\(s\)")),
    ("clf-one-sample", "m = clf().fit(Xc[:1], yc[:1]); assert (m.predict(Xc) == yc[0]).all()", OK),
    ("reg-one-sample", "m = reg().fit(Xc[:1], yr[:1]); assert np.isfinite(m.predict(Xc)).all()", OK),
    ("clf-one-class", "m = clf().fit(Xc, np.full(40, 7)); assert (m.predict(Xc) == 7).all()", OK),
    ("clf-str-X", "clf().fit(np.full((40, 3), 'a'), yc)", ("ValueError", "could not convert string to float")),
    ("clf-object-X", "close(clf().fit(Xc.astype(object), yc).predict_proba(Xc), CLF.predict_proba(Xc))", OK),
    ("reg-complex-X", "reg().fit(Xc.astype(complex), yr)", ("ValueError", "Complex data not supported")),
    ("clf-bool-X", "close(clf().fit(Xc > .5, yc).predict_proba(Xc), clf().fit((Xc > .5).astype(float), yc).predict_proba(Xc))", OK),
    ("clf-continuous-y", "clf().fit(Xc, yr)", ("ValueError", "Unknown label type")),
    ("clf-readonly-strided", "x, y = ro(Xc), ro(yc); m = untouched(lambda: clf().fit(x, y), x, y); close(untouched(lambda: m.predict_proba(x), x), clf().fit(Xc, yc).predict_proba(Xc), 1e-10)", OK),
    ("reg-readonly-strided", "x, y = ro(Xc), ro(yr); m = untouched(lambda: reg().fit(x, y), x, y); close(untouched(lambda: m.predict(x), x), reg().fit(Xc, yr).predict(Xc), 1e-10)", OK),
    ("clf-predict-unfitted", "clf().predict(Xc)", ("NotFittedError", "not fitted yet.*Call 'fit'")),
    ("reg-predict-unfitted", "reg().predict(Xc)", ("NotFittedError", "not fitted yet")),
    ("clf-proba-unfitted", "clf().predict_proba(Xc)", ("NotFittedError", "not fitted yet")),
    ("clf-predict-features", "CLF.predict(Xc[:, :2])", ("ValueError", "X has 2 features, but MLPClassifier is expecting 3")),
    ("clf-predict-nan", "CLF.predict(XNAN)", ("ValueError", "Input X contains NaN")),
    ("reg-predict-inf", "REG.predict(XINF)", ("ValueError", "Input X contains infinity")),
    ("clf-predict-empty", "CLF.predict(Xc[:0])", ("ValueError", r"0 sample\(s\)")),
    ("clf-predict-1d", "CLF.predict(Xc[0])", ("ValueError", "Expected 2D array")),
    ("reg-predict-complex", "REG.predict(Xc.astype(complex))", ("ValueError", "Complex data not supported")),
    ("clf-predict-str", "CLF.predict(np.full((2, 3), 'a'))", ("ValueError", "strings")),
    ("clf-hidden-huge", "clf(hidden_layer_sizes=(HUGE,)).fit(Xc, yc)", ("MemoryError", "allocate")),
    ("reg-hidden-huge-2", "reg(hidden_layer_sizes=(10**6, 10**6)).fit(Xc, yr)", ("MemoryError", "allocate")),
    ("clf-hidden-zero", "clf(hidden_layer_sizes=(0,)).fit(Xc, yc)", ("ValueError", "hidden_layer_sizes must be > 0")),
    ("reg-hidden-negative", "reg(hidden_layer_sizes=(5, -1)).fit(Xc, yr)", ("ValueError", "hidden_layer_sizes must be > 0")),
    ("clf-hidden-float", "clf(hidden_layer_sizes=(2.5,)).fit(Xc, yc)", ("ValueError", "hidden_layer_sizes")),
    ("clf-hidden-str", "clf(hidden_layer_sizes='abc').fit(Xc, yc)", ("ValueError", "hidden_layer_sizes")),
    ("clf-activation", "clf(activation='gelu').fit(Xc, yc)", ("ValueError", "'activation' parameter .* Got 'gelu'")),
    ("reg-solver", "reg(solver='rmsprop2').fit(Xc, yr)", ("ValueError", "'solver' parameter")),
    ("clf-lr-negative", "clf(learning_rate_init=-0.1).fit(Xc, yc)", ("ValueError", "'learning_rate_init' parameter .* range")),
    ("clf-lr-zero", "clf(learning_rate_init=0.0).fit(Xc, yc)", ("ValueError", "'learning_rate_init' parameter")),
    ("reg-lr-nan", "reg(learning_rate_init=float('nan')).fit(Xc, yr)", ("ValueError", "'learning_rate_init' parameter")),
    ("clf-batch-zero", "clf(batch_size=0).fit(Xc, yc)", ("ValueError", "'batch_size' parameter")),
    ("reg-batch-negative", "reg(batch_size=-5).fit(Xc, yr)", ("ValueError", "'batch_size' parameter")),
    ("clf-alpha-negative", "clf(alpha=-1.0).fit(Xc, yc)", ("ValueError", "'alpha' parameter")),
    ("clf-max-iter-zero", "clf(max_iter=0).fit(Xc, yc)", ("ValueError", "'max_iter' parameter")),
    ("clf-momentum", "clf(solver='sgd', momentum=1.5).fit(Xc, yc)", ("ValueError", "'momentum' parameter")),
    ("clf-validation-fraction", "clf(early_stopping=True, validation_fraction=1.0).fit(Xc, yc)", ("ValueError", "'validation_fraction' parameter")),
    ("clf-beta", "clf(beta_1=1.0).fit(Xc, yc)", ("ValueError", "'beta_1' parameter")),
    ("clf-diverges-no-nan", "no_nan_fit(lambda: clf(solver='adam', learning_rate_init=1e6, max_iter=20), Xc * 1e150, yc)", OK),
    ("clf-diverges-no-nan-sgd", "no_nan_fit(lambda: clf(solver='sgd', learning_rate_init=1e6, max_iter=20), Xc * 1e150, yc)", OK),
    ("reg-diverges-no-nan", "no_nan_fit(lambda: reg(solver='sgd', learning_rate_init=1e3, max_iter=50), Xc * 1e3, yr * 1e3)", OK),
    ("reg-diverges-no-nan-adam", "no_nan_fit(lambda: reg(solver='adam', learning_rate_init=1e6, max_iter=20), Xc * 1e150, yr * 1e150)", OK),
    ("reg-huge-X", "no_nan_fit(reg, Xc * 1e300, yr)", OK),
    ("perceptron-nan", "Perceptron().fit(XNAN, yc)", ("ValueError", "X contains NaN or infinity")),
    ("perceptron-one-class", "Perceptron().fit(Xc, np.zeros(40))", ("ValueError", "single class.*needs samples of 2 classes")),
    ("perceptron-one-sample", "Perceptron().fit(Xc[:1], yc[:1])", ("ValueError", "single class")),
    ("perceptron-three-classes", "Perceptron().fit(Xc, np.arange(40) % 3)", ("ValueError", "binary classifier but y has 3 classes")),
    ("perceptron-complex", "Perceptron().fit(Xc.astype(complex), yc)", ("TypeError", "X must hold real numbers, got dtype complex128")),
    ("perceptron-str", "Perceptron().fit(np.full((40, 3), 'a'), yc)", ("TypeError", "real numbers")),
    ("perceptron-max-iter", "Perceptron(max_iter=0).fit(Xc, yc)", ("ValueError", "max_iter must be >= 1")),
    ("perceptron-eta0", "Perceptron(eta0=-1.0).fit(Xc, yc)", ("ValueError", "eta0 must be finite and > 0")),
    ("perceptron-shuffle", "Perceptron(shuffle='yes').fit(Xc, yc)", ("TypeError", "shuffle must be a bool")),
    ("perceptron-unfitted", "Perceptron().predict(Xc)", ("NotFittedError", "not fitted yet")),
    ("perceptron-predict-nan", "PERC.predict(XNAN)", ("ValueError", "X contains NaN or infinity")),
    ("perceptron-predict-features", "PERC.predict(Xc[:, :2])", ("ValueError", "X has 2 features, but the Perceptron was fitted with 3")),
    ("perceptron-readonly-strided", "x, y = ro(Xc), ro(yc); m = untouched(lambda: Perceptron(random_state=0).fit(x, y), x, y); close(m.coef_, PERC.coef_)", OK),
    ("perceptron-absurd", "Perceptron().fit(np.broadcast_to(1.0, (10**6, 10**7)), np.arange(10**6) % 2)", ("MemoryError", "allocate")),
    # ------------------------------------------------------------------ CLI
    ("cli-no-command", "run_cli()", ("SystemExit", "exit 2: .*required: command")),
    ("cli-unknown-command", "run_cli('train')", ("SystemExit", "exit 2: .*invalid choice: 'train'")),
    ("cli-epochs-zero", "run_cli('demo', '--epochs', '0')", ("SystemExit", "exit 2: .*--epochs must be >= 1")),
    ("cli-epochs-str", "run_cli('demo', '--epochs', 'ten')", ("SystemExit", "exit 2: .*invalid int value: 'ten'")),
    ("cli-seed-negative", "run_cli('demo', '--epochs', '1', '--seed', '-1')", ("SystemExit", r"exit 2: .*--seed must be in \[0, 2\*\*32 - 1\]")),
    ("cli-extra-argument", "run_cli('info', 'extra')", ("SystemExit", "exit 2: .*unrecognized arguments: extra")),
    # ------------------------------------------------------------------ save / load
    ("load-missing", "fastmlp.load(os.path.join(TMP, 'missing.npz'))", ("FileNotFoundError", "missing.npz")),
    ("load-directory", "fastmlp.load(TMP)", ("OSError", "")),
    ("load-empty-file", "p = os.path.join(TMP, 'empty.npz'); open(p, 'wb').close(); fastmlp.load(p)", ("ValueError", r"empty\.npz.*no zip signature")),
    ("load-text-file", "p = os.path.join(TMP, 't.npz'); open(p, 'w').write('hello'); fastmlp.load(p)", ("ValueError", "no zip signature")),
    ("load-plain-npz", "p = os.path.join(TMP, 'plain.npz'); np.savez(p, a=A); fastmlp.load(p)", ("ValueError", "no __meta__ array: not a fastmlp file")),
    ("load-pickle", "import pickle; p = os.path.join(TMP, 'pk.npz'); open(p, 'wb').write(pickle.dumps(A)); fastmlp.load(p)", ("ValueError", "no zip signature")),
    ("load-path-none", "fastmlp.load(None)", ("TypeError", "NoneType")),
    ("save-unregistered", "fastmlp.save(object(), os.path.join(TMP, 'o.npz'))", ("TypeError", "cannot save a builtins.object")),
    ("save-unfitted-estimator", "fastmlp.save(clf(), os.path.join(TMP, 'u.npz'))", ("NotFittedError", "not fitted yet")),
    ("save-missing-directory", "fastmlp.save(PERC, os.path.join(TMP, 'no', 'dir', 'p.npz'))", ("FileNotFoundError", "")),
]

CASES = {c[0]: c for c in TABLE}
assert len(CASES) == len(TABLE), "duplicate case ids"

WORKER = r'''
import io, json, os, sys, contextlib, traceback
cases = json.load(open(sys.argv[1]))
# Results go to a private copy of stdout; anything the cases print goes nowhere.
out = os.fdopen(os.dup(1), "w", buffering=1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
ns = {"__name__": "bad_input_table"}
exec(compile(SETUP, "<setup>", "exec"), ns)
out.write(json.dumps({"ready": True}) + "\n")
for cid, code in cases:
    local = dict(ns)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            exec(compile(code, "<case " + cid + ">", "exec"), local)
        res = {"id": cid, "outcome": "ok"}
    except BaseException as exc:
        res = {"id": cid, "outcome": "raised", "type": type(exc).__name__,
               "mro": [c.__name__ for c in type(exc).__mro__], "msg": str(exc),
               "trace": traceback.format_exc()[-3000:]}
    out.write(json.dumps(res) + "\n")
'''

CASE_TIMEOUT = 60     # seconds without a result line: the case hangs
SETUP_TIMEOUT = 300   # seconds for a worker to import and run SETUP
N_WORKERS = 2


def _run_chunk(cases, workdir, tag, case_timeout=CASE_TIMEOUT, setup=SETUP):
    """Run `cases` [(id, code)] in worker processes; a new worker continues
    after a case that crashed or hung. Returns {id: result}."""
    results = {}
    remaining = list(cases)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
    attempt = 0
    while remaining:
        attempt += 1
        spec = os.path.join(workdir, f"cases-{tag}-{attempt}.json")
        with open(spec, "w") as f:
            json.dump(remaining, f)
        err_path = os.path.join(workdir, f"stderr-{tag}-{attempt}.txt")
        with open(err_path, "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", f"SETUP = {setup!r}\n" + WORKER, spec],
                stdout=subprocess.PIPE, stderr=err, cwd=workdir, env=env, text=True)
        lines = queue.Queue()

        def reader(stream=proc.stdout, q=lines):
            for line in stream:
                q.put(line)
            q.put(None)

        threading.Thread(target=reader, daemon=True).start()
        done, hung, ready = 0, False, False
        while done < len(remaining):
            try:
                line = lines.get(timeout=case_timeout if ready else SETUP_TIMEOUT)
            except queue.Empty:
                hung = True
                proc.kill()
                break
            if line is None:
                break
            res = json.loads(line)
            if not ready:
                assert res == {"ready": True}
                ready = True
                continue
            assert res["id"] == remaining[done][0]
            results[res["id"]] = res
            done += 1
        proc.wait()
        if done == len(remaining):
            break
        if not ready:
            with open(err_path) as f:
                raise RuntimeError(f"a bad-input worker failed in SETUP:\n{f.read()[-5000:]}")
        with open(err_path) as f:
            text = f.read()
            tail = text if len(text) < 4000 else text[:2000] + "\n...\n" + text[-2000:]
        culprit = remaining[done][0]
        results[culprit] = {"id": culprit, "outcome": "hung" if hung else "crashed",
                            "rc": proc.returncode, "stderr": tail}
        remaining = remaining[done + 1:]
    return results


@pytest.fixture(scope="module")
def table_results(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("bad_input"))
    items = [(c[0], c[1]) for c in TABLE]
    chunks = [items[i::N_WORKERS] for i in range(N_WORKERS)]
    out = [None] * N_WORKERS

    def work(i):
        out[i] = _run_chunk(chunks[i], workdir, str(i))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = {}
    for r in out:
        merged.update(r)
    return merged


def _params():
    for c in TABLE:
        marks = ()
        if len(c) > 3:
            marks = pytest.mark.xfail(strict=True, reason=c[3])
        yield pytest.param(c[0], id=c[0], marks=marks)


@pytest.mark.parametrize("case_id", list(_params()))
def test_bad_input(case_id, table_results):
    _, code, expect = CASES[case_id][:3]
    res = table_results[case_id]
    assert res["outcome"] not in ("crashed", "hung"), (
        f"{case_id} {res['outcome']} the worker (exit status {res.get('rc')}):\n{code}\n"
        f"{res.get('stderr', '')}")
    if expect == OK:
        assert res["outcome"] == "ok", (
            f"{case_id}: expected success, got {res.get('type')}: {res.get('msg')}\n"
            f"{res.get('trace', '')}")
        return
    exc, pattern = expect
    assert res["outcome"] == "raised", f"{case_id}: no exception; expected {exc} /{pattern}/"
    assert exc in res["mro"], (f"{case_id}: expected {exc}, got {res['type']}: {res['msg']}\n"
                               f"{res['trace']}")
    assert re.search(pattern, res["msg"], re.S), (
        f"{case_id}: message does not match /{pattern}/: {res['msg']}")


def test_table_covers_every_public_entry():
    """Every public function of fastmlp.ops, every layer, fit, the estimators,
    the CLI and save/load appear in at least one case."""
    import fastmlp
    from fastmlp import nn, ops
    text = "\n".join(c[1] for c in TABLE)
    wrappers = {n for n in ops.__all__ if n.endswith("_step") and n != "optimizer_step"}
    skip = {"GEMM_ACTIVATIONS", "ACTIVATIONS", "OPTIMIZERS", "OPTIMIZER_STATE",
            "OPTIMIZER_DEFAULTS", "BatchNormCache", "LayerNormCache", "sigmoid_binary_cross_entropy",
            "mae"} | wrappers     # constants; thin wrappers over the same validation
    missing = [n for n in ops.__all__ if n not in skip and n not in text]
    missing += [n for n in ("Linear", "Dropout", "BatchNorm1d", "LeakyReLU", "Sequential",
                            "nnfit", "clf(", "reg(", "Perceptron", "run_cli",
                            "fastmlp.load", "fastmlp.save", "fastmlp.matmul") if n not in text]
    assert not missing, f"no bad-input case for {missing}"
    assert hasattr(fastmlp, "load") and hasattr(nn, "fit")


def test_harness_identifies_crashing_and_hanging_cases(tmp_path):
    """The runner itself: a segfault and a hang are each pinned on their case,
    and the cases after them still run."""
    cases = [("first", "assert (np.ones(3) == 1).all()"),
             ("segfault", "import ctypes; ctypes.string_at(0)"),
             ("after-crash", "raise ValueError('still running')"),
             ("hang", "import time; time.sleep(600)"),
             ("after-hang", "assert np.zeros(2).shape == (2,)")]
    res = _run_chunk(cases, str(tmp_path), "self", case_timeout=3, setup="import numpy as np")
    assert [res[c[0]]["outcome"] for c in cases] == ["ok", "crashed", "raised", "hung", "ok"]
    # killed by SIGSEGV (or, in an AddressSanitizer build, ASan's exit status 1)
    assert res["segfault"]["rc"] in (-signal.SIGSEGV, 1)
    assert re.search("Segmentation fault|SEGV", res["segfault"]["stderr"])
    assert res["after-crash"]["msg"] == "still running"
