"""fastmlp.MLPClassifier / MLPRegressor against scikit-learn's own estimators.

Quality bar (issue 6): on digits and diabetes the test scores are >= scikit-
learn's with identical parameters. Because the estimators run scikit-learn's
optimisation code on fastmlp's forward/backward kernels, the fitted weights
agree with scikit-learn's up to rounding, which the first tests check
directly (a much sharper test than the score comparison).
"""
import logging
import pickle
import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk_nn
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastmlp
from fastmlp.sklearn import MLPClassifier, MLPRegressor

SK_CLF = sk_nn._multilayer_perceptron.MLPClassifier
SK_REG = sk_nn._multilayer_perceptron.MLPRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def _fit_both(cls_fm, cls_sk, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = cls_fm(**kw).fit(X, y)
        b = cls_sk(**kw).fit(X, y)
    return a, b


# ---------------------------------------------------------------- exact agreement

@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_classifier_matches_sklearn_weights(digits, solver, activation):
    Xtr, Xte, ytr, yte = digits
    kw = dict(hidden_layer_sizes=(20, 15), activation=activation, solver=solver,
              max_iter=5, random_state=0, alpha=1e-3)
    a, b = _fit_both(MLPClassifier, SK_CLF, Xtr[:400], ytr[:400], **kw)
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.loss_, b.loss_, rtol=1e-8)
    np.testing.assert_allclose(a.predict_proba(Xte), b.predict_proba(Xte), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_matches_sklearn_weights(diabetes, loss):
    Xtr, Xte, ytr, yte = diabetes
    y = np.abs(ytr) / 100 if loss == "poisson" else ytr
    a, b = _fit_both(MLPRegressor, SK_REG, Xtr, y, hidden_layer_sizes=(16,), max_iter=20,
                     random_state=0, loss=loss, learning_rate_init=1e-3)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-8)


def test_sample_weight_multilabel_and_multioutput_match_sklearn(digits):
    Xtr, Xte, ytr, yte = digits
    rng = np.random.default_rng(0)
    sw = rng.uniform(0.1, 2.0, 300)
    Y = np.stack([ytr[:300] % 2, ytr[:300] > 4], axis=1).astype(int)   # multilabel
    a, b = _fit_both(MLPClassifier, SK_CLF, Xtr[:300], Y, hidden_layer_sizes=(12,),
                     max_iter=5, random_state=1)
    np.testing.assert_allclose(a.predict_proba(Xte), b.predict_proba(Xte), rtol=1e-6, atol=1e-9)
    a = MLPClassifier(hidden_layer_sizes=(12,), max_iter=5, random_state=1)
    b = SK_CLF(hidden_layer_sizes=(12,), max_iter=5, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(Xtr[:300], ytr[:300], sample_weight=sw)
        b.fit(Xtr[:300], ytr[:300], sample_weight=sw)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-6, atol=1e-9)
    Yr = np.stack([Xtr[:300, 10], Xtr[:300, 20] * 2], axis=1)             # multi-output
    a, b = _fit_both(MLPRegressor, SK_REG, Xtr[:300], Yr, hidden_layer_sizes=(8,),
                     max_iter=10, random_state=0, solver="lbfgs")
    np.testing.assert_allclose(a.predict(Xte), b.predict(Xte), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kw", [
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.3, power_t=0.3),
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.5, n_iter_no_change=2,
         tol=0.05, max_iter=25),
    dict(solver="sgd", nesterovs_momentum=False, momentum=0.5, shuffle=False),
    dict(solver="sgd", momentum=0.0, batch_size=37),
    dict(solver="adam", early_stopping=True, n_iter_no_change=3, validation_fraction=0.2,
         max_iter=40),
    dict(solver="sgd", early_stopping=True, shuffle=False, max_iter=15, n_iter_no_change=2),
    dict(solver="adam", tol=0.05, n_iter_no_change=2, max_iter=50),
])
def test_stochastic_loop_matches_sklearn(digits, kw):
    """fastmlp's own epoch loop against scikit-learn's, weight for weight and
    attribute for attribute (schedules, stopping rules, early stopping)."""
    Xtr, Xte, ytr, yte = digits
    kw = dict(dict(hidden_layer_sizes=(16,), max_iter=8, random_state=0, alpha=1e-3), **kw)
    a, b = _fit_both(MLPClassifier, SK_CLF, Xtr[:500], ytr[:500], **kw)
    assert a.n_iter_ == b.n_iter_ and a.t_ == b.t_
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-7)
    if kw.get("early_stopping"):
        np.testing.assert_array_equal(a.validation_scores_, b.validation_scores_)
        assert a.best_validation_score_ == b.best_validation_score_
    else:
        np.testing.assert_allclose(a.best_loss_, b.best_loss_, rtol=1e-7)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, rtol=1e-6, atol=1e-8)


def test_regressor_early_stopping_sample_weight_and_warm_start_match_sklearn(diabetes):
    Xtr, Xte, ytr, yte = diabetes
    sw = np.random.default_rng(1).uniform(0.2, 3, len(ytr))
    kw = dict(hidden_layer_sizes=(16,), max_iter=30, random_state=0, early_stopping=True,
              learning_rate_init=0.01, n_iter_no_change=4)
    a, b = MLPRegressor(**kw), SK_REG(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(Xtr, ytr, sample_weight=sw)
        b.fit(Xtr, ytr, sample_weight=sw)
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-7)
        np.testing.assert_allclose(a.predict(Xte), b.predict(Xte), rtol=1e-6, atol=1e-6)
        a.set_params(warm_start=True, max_iter=5)
        b.set_params(warm_start=True, max_iter=5)
        a.fit(Xtr, ytr)
        b.fit(Xtr, ytr)
        np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, rtol=1e-7)
        a, b = MLPRegressor(**dict(kw, early_stopping=False)), SK_REG(**dict(kw, early_stopping=False))
        for _ in range(3):
            a.partial_fit(Xtr, ytr, sample_weight=sw)
            b.partial_fit(Xtr, ytr, sample_weight=sw)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(a.predict(Xte), b.predict(Xte), rtol=1e-6, atol=1e-6)


def test_float32_end_to_end(digits):
    Xtr, Xte, ytr, yte = digits
    X32 = Xtr.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0).fit(X32, ytr)
    assert all(c.dtype == np.float32 for c in m.coefs_ + m.intercepts_)
    assert m.predict_proba(Xte.astype(np.float32)).dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SK_CLF(hidden_layer_sizes=(32,), max_iter=20, random_state=0).fit(X32, ytr)
    np.testing.assert_allclose(m.predict_proba(Xte.astype(np.float32)),
                               ref.predict_proba(Xte.astype(np.float32)), atol=2e-3)
    assert m.score(Xte.astype(np.float32), yte) > 0.85


def test_early_stopping_and_partial_fit(digits):
    Xtr, Xte, ytr, yte = digits
    m = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, max_iter=200,
                      random_state=0).fit(Xtr, ytr)
    assert m.best_validation_score_ == max(m.validation_scores_)
    assert m.n_iter_ < 200
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        m.partial_fit(Xtr, ytr)
    m = MLPClassifier(hidden_layer_sizes=(32,), random_state=0)
    for _ in range(3):
        m.partial_fit(Xtr, ytr, classes=np.arange(10))
    assert len(m.loss_curve_) == 3 and m.t_ == 3 * len(Xtr)   # n_iter_ is per call, as sklearn
    with pytest.raises(AttributeError):
        MLPClassifier(solver="lbfgs").partial_fit


def test_leaky_relu_and_bad_params(digits):
    Xtr, Xte, ytr, yte = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MLPClassifier(activation="leaky_relu", max_iter=30, random_state=0).fit(Xtr, ytr)
    assert m.score(Xte, yte) > 0.9
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="gelu").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="solver"):
        MLPClassifier(solver="newton").fit(Xtr, ytr)


def test_sparse_input_matches_dense(digits):
    import scipy.sparse as sp
    Xtr, Xte, ytr, yte = digits
    a = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    b = clone(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(Xtr, ytr)
        b.fit(sp.csr_matrix(Xtr), ytr)
    np.testing.assert_allclose(a.predict_proba(Xte), b.predict_proba(sp.csr_matrix(Xte)),
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- quality bar

# scikit-learn's mean test accuracies with identical parameters over
# random_state 0..4, as measured in issue 6 (rounded to 3 decimals). The
# scikit-learn fits are not repeated here to keep this file within the CI
# budget: test_classifier_matches_sklearn_weights checks that fastmlp's
# weights equal scikit-learn's up to rounding for every solver, and
# test_digits_seed0_same_as_sklearn re-runs scikit-learn for seed 0.
# scikit-learn's mean test accuracy over the 5 seeds (measured with 1.7-1.8 on
# AVX2 and AVX-512 hosts: 0.97822 / 0.94133 / 0.97022). The slack below is 5e-3,
# about 11 of the 2250 predictions: the figures move with scikit-learn's and
# SciPy's releases (lbfgs: SciPy 1.15 rewrote L-BFGS-B), while a real loss of
# accuracy is larger.
_SK_DIGITS = {"adam": 0.978, "sgd": 0.941, "lbfgs": 0.970}


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_digits_accuracy_at_least_sklearn(digits, solver):
    Xtr, Xte, ytr, yte = digits
    acc = []
    for seed in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = MLPClassifier(hidden_layer_sizes=(100,), max_iter=300, solver=solver,
                              random_state=seed).fit(Xtr, ytr)
        acc.append(m.score(Xte, yte))
    assert np.mean(acc) >= _SK_DIGITS[solver] - 5e-3, acc


def test_digits_seed0_same_as_sklearn(digits):
    Xtr, Xte, ytr, yte = digits
    a, b = _fit_both(MLPClassifier, SK_CLF, Xtr, ytr, hidden_layer_sizes=(100,), max_iter=300,
                     solver="adam", random_state=0)
    assert a.score(Xte, yte) >= b.score(Xte, yte)
    assert a.n_iter_ == b.n_iter_


def test_diabetes_r2_at_least_sklearn(diabetes):
    Xtr, Xte, ytr, yte = diabetes
    a, b = _fit_both(MLPRegressor, SK_REG, Xtr, ytr, hidden_layer_sizes=(64,), max_iter=2000,
                     random_state=0)
    assert a.score(Xte, yte) >= b.score(Xte, yte) - 1e-9
    assert a.score(Xte, yte) > 0.25


# ---------------------------------------------------------------- scikit-learn API

@parametrize_with_checks([MLPClassifier(max_iter=50), MLPRegressor(max_iter=50)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_patch_sklearn(caplog):
    assert not fastmlp.sklearn_is_patched()
    with caplog.at_level(logging.INFO, logger="fastmlp"):
        fastmlp.patch_sklearn()
    try:
        assert fastmlp.sklearn_is_patched()
        from sklearn.neural_network import MLPClassifier as C, MLPRegressor as R
        assert C is MLPClassifier and R is MLPRegressor
        assert "fastmlp" in caplog.text
    finally:
        fastmlp.unpatch_sklearn()
    assert not fastmlp.sklearn_is_patched()
    from sklearn.neural_network import MLPClassifier as C
    assert C is SK_CLF


def test_patch_sklearn_falls_back_on_unsupported_sklearn(caplog, monkeypatch):
    import fastmlp.sklearn as fs
    monkeypatch.setattr(fs, "_SK_API_OK", False)
    with caplog.at_level(logging.INFO, logger="fastmlp"):
        fastmlp.patch_sklearn()
    try:
        assert not fastmlp.sklearn_is_patched()
        from sklearn.neural_network import MLPClassifier as C
        assert C is SK_CLF
        assert "keeping scikit-learn's own" in caplog.text
    finally:
        fastmlp.unpatch_sklearn()
    assert fs._sklearn_api_ok()      # the installed scikit-learn is supported


def test_pipeline_clone_cv_gridsearch(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=30,
                                                         random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert pipe.fit(Xtr, ytr).score(Xte, yte) > 0.8
        c = clone(pipe)
        assert c.get_params()["mlpclassifier__hidden_layer_sizes"] == (16,)
        scores = cross_val_score(c, Xtr, ytr, cv=3)
        assert scores.min() > 0.75
        grid = {"hidden_layer_sizes": [(8,), (16,)]}
        est = MLPClassifier(max_iter=20, random_state=0, learning_rate_init=0.01)
        gs = GridSearchCV(est, grid, cv=2, n_jobs=2).fit(Xtr, ytr)      # worker processes
        gs1 = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(Xtr, ytr)
    assert gs.best_score_ > 0.75
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"],
                               gs1.cv_results_["mean_test_score"])
    assert isinstance(gs.best_estimator_, MLPClassifier)


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_save_load_and_pickle(tmp_path, digits, cls):
    Xtr, Xte, ytr, yte = digits
    y = ytr if cls is MLPClassifier else Xtr[:, 20]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = cls(hidden_layer_sizes=(12, 7), max_iter=5, random_state=0,
                early_stopping=True).fit(Xtr, y)
    path = tmp_path / "m.npz"
    fastmlp.save(m, path)
    m2 = fastmlp.load(path)
    assert type(m2) is cls
    assert m2.get_params() == m.get_params()
    np.testing.assert_array_equal(m2.predict(Xte), m.predict(Xte))
    for k in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "loss_curve_",
              "validation_scores_", "best_validation_score_", "n_features_in_"):
        assert getattr(m2, k) == getattr(m, k), k
    if cls is MLPClassifier:
        np.testing.assert_array_equal(m2.classes_, m.classes_)
        np.testing.assert_array_equal(m2.predict_proba(Xte), m.predict_proba(Xte))
    m3 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m3.predict(Xte), m.predict(Xte))
    with pytest.raises(Exception):
        fastmlp.save(cls(), tmp_path / "unfitted.npz")
