"""Thread safety: concurrent predictions from several Python threads on ONE
fitted model equal the serial ones (bitwise), and models fitted concurrently
in threads equal the same models fitted one after the other -- for
fastmlp.MLPClassifier and for a fastmlp.nn Sequential model.

fastmlp's kernels release the GIL, so these threads really run the C code at
the same time (each calling thread has its own GEMM packing workspace,
src_c/gemm/workspace.c). A Sequential model's TRAINING forward/backward
reuses per-layer buffers and is not meant to be shared between threads;
``predict`` (``forward(X, training=False)``) allocates its results and must be.
"""
import concurrent.futures
import threading
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import nn

N_THREADS = 4
ROUNDS = 6


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    X = rng.standard_normal((600, 40)).astype(np.float32)
    y = (X[:, :5].sum(axis=1) > 0).astype(int) + 2 * (X[:, 5] > 0.5)
    return X, y


def _chunks(X):
    # different shapes per thread (shape-keyed caches must not be shared by mistake)
    return [X[: 150 + 37 * i] for i in range(N_THREADS)]


def _hammer(predict, inputs):
    """Each of N_THREADS threads calls predict on its own input ROUNDS times,
    all starting together; returns the outputs per thread."""
    barrier = threading.Barrier(N_THREADS)

    def work(x):
        barrier.wait()
        return [predict(x) for _ in range(ROUNDS)]

    with concurrent.futures.ThreadPoolExecutor(N_THREADS) as pool:
        return list(pool.map(work, inputs))


def _check_same(serial, concurrent_outputs):
    for i, (ref, outs) in enumerate(zip(serial, concurrent_outputs)):
        for out in outs:
            assert out.shape == ref.shape
            assert out.tobytes() == ref.tobytes(), f"thread {i}: differs from the serial result"


@pytest.mark.parametrize("n_kernel_threads", [1, 2])
def test_concurrent_predict_mlpclassifier(data, n_kernel_threads):
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = fastmlp.MLPClassifier(hidden_layer_sizes=(256, 64), max_iter=5,
                                    random_state=0).fit(X, y)
    inputs = _chunks(X)
    with fastmlp.threads(n_kernel_threads):
        serial = [clf.predict_proba(x) for x in inputs]
        got = _hammer(clf.predict_proba, inputs)
    # the serial results are right (independent NumPy forward pass)
    h = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0)
    h = np.maximum(h @ clf.coefs_[1] + clf.intercepts_[1], 0)
    z = h @ clf.coefs_[2] + clf.intercepts_[2]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(serial[-1], p[: len(serial[-1])], rtol=1e-4, atol=1e-6)
    _check_same(serial, got)


def _model(seed, dtype=np.float32):
    return nn.Sequential(nn.Linear(40, 256, random_state=seed, dtype=dtype), nn.ReLU(dtype=dtype),
                         nn.Dropout(0.2, random_state=seed + 1, dtype=dtype),
                         nn.Linear(256, 64, random_state=seed + 2, dtype=dtype),
                         nn.Tanh(dtype=dtype), nn.BatchNorm1d(64, dtype=dtype),
                         nn.Linear(64, 4, random_state=seed + 3, dtype=dtype))


def test_concurrent_predict_sequential(data):
    X, y = data
    # train a little so that the batch-norm running statistics are not trivial
    trained = _model(0)
    nn.fit(trained, X, y, loss="cross_entropy", epochs=2, batch_size=64, random_state=0,
           verbose=0)
    model = nn.Sequential(trained, nn.Softmax())     # (a new model over the same layers)
    inputs = _chunks(X)
    serial = [model.predict(x) for x in inputs]
    got = _hammer(model.predict, inputs)
    # independent NumPy forward pass (eval mode: dropout off, running statistics)
    L1, L2, bn, L3 = model[0], model[3], model[5], model[6]
    h = np.tanh(np.maximum(X @ L1.W + L1.b, 0) @ L2.W + L2.b)
    h = (h - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.gamma + bn.beta
    z = h @ L3.W + L3.b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(serial[-1], p[: len(serial[-1])], rtol=1e-4, atol=1e-6)
    _check_same(serial, got)


def _fit_clf(X, y, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastmlp.MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=4, batch_size=64,
                                     random_state=seed).fit(X, y)


def _in_threads(*calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.filterwarnings("ignore")
def test_two_mlpclassifiers_fitted_concurrently(data):
    X, y = data
    Xb, yb = X[::-1][:500] * 0.5, y[::-1][:500]
    serial = [_fit_clf(X, y, 0), _fit_clf(Xb, yb, 1)]
    concurrent_ = _in_threads(lambda: _fit_clf(X, y, 0), lambda: _fit_clf(Xb, yb, 1))
    for ref, est in zip(serial, concurrent_):
        assert est.n_iter_ == ref.n_iter_ and est.loss_curve_ == ref.loss_curve_
        for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            assert a.tobytes() == b.tobytes()
        assert est.predict_proba(X).tobytes() == ref.predict_proba(X).tobytes()
    assert serial[0].score(X, y) > 0.5


def _fit_seq(X, y, seed):
    model = _model(seed)
    hist = nn.fit(model, X, y, loss="cross_entropy", optimizer="adam", learning_rate=3e-3,
                  epochs=3, batch_size=64, random_state=seed, verbose=0)
    return model, hist


def test_two_sequential_models_fitted_concurrently(data):
    X, y = data
    Xb, yb = X[::-1][:500] * 0.5, y[::-1][:500]
    serial = [_fit_seq(X, y, 0), _fit_seq(Xb, yb, 10)]
    concurrent_ = _in_threads(lambda: _fit_seq(X, y, 0), lambda: _fit_seq(Xb, yb, 10))
    for (ref, ref_hist), (model, hist) in zip(serial, concurrent_):
        assert model.flat_parameters.tobytes() == ref.flat_parameters.tobytes()
        assert hist == ref_hist
        assert model.predict(X).tobytes() == ref.predict(X).tobytes()
    assert serial[0][1]["loss"][-1] < serial[0][1]["loss"][0]
