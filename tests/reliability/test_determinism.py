"""Determinism: the same random_state gives bitwise-identical weights and
predictions whatever the number of threads (1, 2 and 3), dropout included --
for a fastmlp.nn model trained with fastmlp.nn.fit and for the scikit-learn
estimators.

The sizes are chosen so that the multi-threaded runs really split the work:
the GEMMs have well over 2**19 multiply-adds per thread, the flat parameter
buffer is longer than the optimizer's parallel threshold (65536), and the
dropout and element-wise kernels see batches of 128 x 512.
"""
import functools
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import nn

THREADS = (1, 2, 3)


@functools.lru_cache(maxsize=None)
def _data():
    rng = np.random.default_rng(12345)
    X = rng.standard_normal((448, 64))
    w = rng.standard_normal((64, 10))
    y = np.argmax(X @ w + 0.5 * rng.standard_normal((448, 10)), axis=1)
    return X, y


@pytest.fixture(scope="module")
def data():
    return _data()


@functools.lru_cache(maxsize=None)
def _nn_run(dtype, n_threads, dropout_seed=1):
    X, y = _data()
    with fastmlp.threads(n_threads):
        assert fastmlp.get_num_threads() == n_threads
        model = nn.Sequential(
            nn.Linear(64, 512, random_state=0, dtype=dtype), nn.ReLU(dtype=dtype),
            nn.Dropout(0.3, random_state=dropout_seed, dtype=dtype),
            nn.Linear(512, 128, random_state=2, dtype=dtype), nn.Tanh(dtype=dtype),
            nn.BatchNorm1d(128, dtype=dtype),
            nn.Dropout(0.2, random_state=dropout_seed + 10, dtype=dtype),
            nn.Linear(128, 10, random_state=4, dtype=dtype))
        hist = nn.fit(model, X, y, loss="cross_entropy", optimizer="adam", learning_rate=1e-3,
                      epochs=2, batch_size=128, validation_fraction=0.15, random_state=7,
                      verbose=0)
        pred = model.predict(X)
    return model, pred, hist


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nn_fit_with_dropout_is_bitwise_identical_for_any_thread_count(data, dtype):
    X, y = data
    runs = {nt: _nn_run(dtype, nt) for nt in THREADS}
    ref_model, ref_pred, ref_hist = runs[1]
    assert ref_model.n_parameters > 4 * 16384          # the optimizer step runs in parallel
    assert ref_model[2].counter == 2 * 3              # dropout was active in every batch
    # it learned something (the runs compared are real training runs)
    assert ref_hist["loss"][-1] < ref_hist["loss"][0]
    assert np.mean(np.argmax(ref_pred, axis=1) == y) > 0.3
    for nt in THREADS[1:]:
        model, pred, hist = runs[nt]
        assert model.flat_parameters.tobytes() == ref_model.flat_parameters.tobytes(), nt
        bn, ref_bn = model[5], ref_model[5]
        assert bn.running_mean.tobytes() == ref_bn.running_mean.tobytes()
        assert bn.running_var.tobytes() == ref_bn.running_var.tobytes()
        assert pred.tobytes() == ref_pred.tobytes(), nt
        assert hist == ref_hist, nt


def test_nn_dropout_seed_matters():
    # Dropout really takes part: another dropout random_state gives other
    # weights, and a fresh run with it (on another thread count) the same again.
    a = _nn_run(np.float32, 2, dropout_seed=1)[0]
    b = _nn_run(np.float32, 2, dropout_seed=99)[0]
    c = _nn_run(np.float32, 1, dropout_seed=99)[0]
    assert a.flat_parameters.tobytes() != b.flat_parameters.tobytes()
    assert b.flat_parameters.tobytes() == c.flat_parameters.tobytes()


F32, F64 = np.float32, np.float64
ESTIMATOR_CASES = [
    ("MLPClassifier", F32, dict(solver="adam")),
    ("MLPClassifier", F64, dict(solver="adam")),
    ("MLPClassifier", F32, dict(solver="sgd", learning_rate_init=0.05, momentum=0.9,
                                nesterovs_momentum=True, early_stopping=True,
                                validation_fraction=0.2)),
    ("MLPClassifier", F64, dict(solver="lbfgs", max_iter=5)),
    ("MLPRegressor", F32, dict(solver="adam", alpha=1e-3)),
    ("MLPRegressor", F64, dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.01)),
    ("MLPClassifier", F32, dict(solver="adam", dropout=0.2)),
]


def _fit_estimator(name, kw, X, y, n_threads, dtype):
    cls = getattr(fastmlp, name)
    params = dict(hidden_layer_sizes=(384, 128), random_state=0, max_iter=2, batch_size=128)
    params.update(kw)
    if "dropout" in kw and "dropout" not in cls().get_params():
        pytest.skip(f"{name} has no dropout parameter (yet)")
    if name == "MLPRegressor":
        y = X[:, :3].sum(axis=1) + np.sin(X[:, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fastmlp.threads(n_threads):
            est = cls(**params).fit(X.astype(dtype), y)
            out = (est.predict_proba(X.astype(dtype)) if name == "MLPClassifier"
                   else est.predict(X.astype(dtype)))
    return est, out


@pytest.mark.parametrize("name,dtype,kw", ESTIMATOR_CASES,
                         ids=[f"{n}-{d.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                              for n, d, kw in ESTIMATOR_CASES])
def test_estimators_are_bitwise_identical_for_any_thread_count(data, name, kw, dtype):
    X, y = data
    ref, ref_out = _fit_estimator(name, kw, X, y, 1, dtype)
    # (scikit-learn's lbfgs always trains in float64)
    assert ref.coefs_[0].dtype == (dtype if kw["solver"] != "lbfgs" else F64)
    assert np.isfinite(ref_out).all()
    if name == "MLPClassifier":
        np.testing.assert_allclose(ref_out.sum(axis=1), 1.0, rtol=1e-5)
        assert ref.score(X.astype(dtype), y) > 0.3
    for nt in THREADS[1:]:
        est, out = _fit_estimator(name, kw, X, y, nt, dtype)
        assert est.n_iter_ == ref.n_iter_
        for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            assert a.tobytes() == b.tobytes(), f"{nt} threads: weights differ"
        assert out.tobytes() == ref_out.tobytes(), f"{nt} threads: predictions differ"
        assert getattr(est, "loss_curve_", None) == getattr(ref, "loss_curve_", None)
