"""The NumPy reference trainer (the baseline of every benchmark ratio) is
exactly scikit-learn's MLPClassifier training: same init, batches, updates.

benchmarks/ is not installed, so benchmarks/numpy_reference.py is imported by
file path; it re-exports fastmlp/_numpy_mlp.py of the checkout, which
``python -m fastmlp bench`` imports from the installed package -- both are
tested.
"""
import importlib.util
import pathlib
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network._multilayer_perceptron import MLPClassifier as SkMLP

_BENCH_REF = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "numpy_reference.py"


def _benchmarks_module():
    spec = importlib.util.spec_from_file_location("numpy_reference_under_test", _BENCH_REF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(params=["benchmarks", "installed"], scope="module")
def NumpyMLP(request):
    if request.param == "benchmarks":
        return _benchmarks_module().NumpyMLP
    from fastmlp._numpy_mlp import NumpyMLP
    return NumpyMLP


def _problem(dtype=np.float64, n=230, d=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array([3, 5, 8, 11])          # not 0..k-1: the class mapping is exercised
    y = labels[rng.integers(0, 4, n)]
    X = rng.standard_normal((n, d)) + 0.5 * (y[:, None] % 3)
    return X.astype(dtype), y


def _sklearn(X, y, epochs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SkMLP(max_iter=epochs, n_iter_no_change=epochs, **kw).fit(X, y)


def _rel_err(ref, sk):
    return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
               for a, b in zip(ref.coefs_ + ref.intercepts_, sk.coefs_ + sk.intercepts_))


CASES = {
    "sgd-momentum": dict(solver="sgd", learning_rate_init=0.05, momentum=0.9,
                         nesterovs_momentum=False, alpha=0.0, batch_size=32),
    "sgd-nesterov-l2": dict(solver="sgd", learning_rate_init=0.05, momentum=0.8,
                            nesterovs_momentum=True, alpha=1e-2, batch_size=50),
    "sgd-invscaling-noshuffle": dict(solver="sgd", learning_rate="invscaling",
                                     learning_rate_init=0.2, power_t=0.3, momentum=0.5,
                                     alpha=1e-3, batch_size=64, shuffle=False),
    "adam-auto-batch": dict(solver="adam", learning_rate_init=0.01, alpha=1e-4,
                            batch_size="auto"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_epochs_match_scikit_learn_float64(NumpyMLP, case):
    X, y = _problem()
    kw = dict(hidden_layer_sizes=(16, 8), random_state=0, **CASES[case])
    sk = _sklearn(X, y, 2, **kw)
    ref = NumpyMLP(**kw)
    ref.fit_epoch(X, y)
    ref.fit_epoch(X, y)
    assert all(c.dtype == np.float64 for c in ref.coefs_ + ref.intercepts_)
    assert _rel_err(ref, sk) < 1e-6
    assert ref.loss_ == pytest.approx(sk.loss_, rel=1e-6)
    assert (ref.n_iter_, ref.t_) == (sk.n_iter_, sk.t_) == (2, 2 * X.shape[0])
    np.testing.assert_array_equal(ref.classes_, sk.classes_)
    np.testing.assert_array_equal(ref.predict(X), sk.predict(X))
    np.testing.assert_allclose(ref.predict_proba(X), sk.predict_proba(X), rtol=1e-6, atol=1e-9)
    # the weights did move: the comparison is not of two initialisations
    init = NumpyMLP(**{**kw, "learning_rate_init": 1e-12}).fit(X, y)
    assert _rel_err(init, sk) > 1e-2


def test_init_is_scikit_learns_draw(NumpyMLP):
    """Glorot-uniform, coef then intercept per layer, from RandomState(seed)."""
    X, y = _problem()
    ref = NumpyMLP(hidden_layer_sizes=(7,), solver="sgd", learning_rate_init=0.0,
                   momentum=0.0, random_state=5).fit(X, y)      # lr 0: weights stay as drawn
    rs = np.random.RandomState(5)
    for (fi, fo), w, b in zip([(12, 7), (7, 4)], ref.coefs_, ref.intercepts_):
        bound = np.sqrt(6.0 / (fi + fo))
        np.testing.assert_array_equal(w, rs.uniform(-bound, bound, (fi, fo)))
        np.testing.assert_array_equal(b, rs.uniform(-bound, bound, fo))


def test_float32_matches_scikit_learn_and_fit_equals_epochs(NumpyMLP):
    X, y = _problem(np.float32, n=300)
    kw = dict(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.05, momentum=0.9,
              nesterovs_momentum=False, alpha=0.0, batch_size=40, random_state=1)
    sk = _sklearn(X, y, 2, **kw)
    ref = NumpyMLP(**kw).fit(X, y, epochs=2)
    assert all(c.dtype == np.float32 for c in ref.coefs_ + ref.intercepts_)
    assert _rel_err(ref, sk) < 1e-4
    again = NumpyMLP(**kw)
    again.fit_epoch(X, y)
    again.fit_epoch(X, y)
    for a, b in zip(ref.coefs_ + ref.intercepts_, again.coefs_ + again.intercepts_):
        np.testing.assert_array_equal(a, b)      # fit(epochs=2) == two fit_epoch calls
    # fit() starts afresh (re-seeded), like scikit-learn's fit
    ref.fit(X, y, epochs=2)
    np.testing.assert_array_equal(ref.coefs_[0], again.coefs_[0])


def test_errors(NumpyMLP):
    X, y = _problem()
    with pytest.raises(ValueError, match="at least 3 classes"):
        NumpyMLP().fit(X, y % 2)
    with pytest.raises(ValueError, match="solver must be 'sgd' or 'adam'"):
        NumpyMLP(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="learning_rate must be"):
        NumpyMLP(learning_rate="adaptive").fit(X, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        NumpyMLP().predict(X)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        NumpyMLP().fit(X, y, epochs=0)
    ref = NumpyMLP(hidden_layer_sizes=(4,)).fit(X, y)
    with pytest.raises(ValueError, match="labels not seen"):
        ref.fit_epoch(X, y + 1)
    with pytest.raises(ValueError, match="12 columns"):
        ref.predict(X[:, :5])
