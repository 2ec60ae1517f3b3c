"""fastmlp.Perceptron: the perceptron learning algorithm against a plain
per-sample reference, logic truth tables, separable / non-separable data,
scikit-learn's Perceptron, and bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import Perceptron as SkPerceptron

import fastmlp
from fastmlp import Perceptron

X2 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
TRUTH = {
    "AND": (X2, np.array([0, 0, 0, 1])),
    "OR": (X2, np.array([0, 1, 1, 1])),
    "NOT": (np.array([[0.0], [1.0]]), np.array([1, 0])),
    "NAND": (X2, np.array([1, 1, 1, 0])),
}


def reference_pla(X, y, eta0=1.0, fit_intercept=True, max_iter=1000, shuffle=False, seed=None):
    """The textbook algorithm, one sample at a time (float64)."""
    classes = np.unique(y)
    ys = np.where(y == classes[1], 1.0, -1.0)
    rng = np.random.default_rng(seed)
    w, b = np.zeros(X.shape[1]), 0.0
    for epoch in range(1, max_iter + 1):
        order = rng.permutation(len(X)) if shuffle else np.arange(len(X))
        mistakes = 0
        for i in order:
            if ys[i] * (X[i] @ w + b) <= 0:        # sgn(0) counts as a mistake
                w = w + eta0 * ys[i] * X[i]
                if fit_intercept:
                    b = b + eta0 * ys[i]
                mistakes += 1
        if mistakes == 0:
            return w, b, epoch, True
    return w, b, max_iter, False


def separable(rng, n, d, margin=0.1, scale=1.0):
    """n >= 2 points in d dims with labels of both classes from a random
    hyperplane, none within `margin` of it."""
    while True:
        X, y = _separable(rng, n, d, margin, scale)
        if 0 < y.sum() < n:
            return X, y


def _separable(rng, n, d, margin, scale):
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    b = 0.3 * rng.standard_normal()
    X = rng.uniform(-scale, scale, size=(4 * n, d))
    s = X @ w + b
    keep = np.abs(s) >= margin * scale
    X, s = X[keep][:n], s[keep][:n]
    assert len(X) == n
    return X, (s > 0).astype(int)


@pytest.mark.parametrize("name", sorted(TRUTH))
@pytest.mark.parametrize("shuffle,seed", [(False, None), (True, 0), (True, 1), (True, 12345)])
def test_logic_truth_tables_are_learned(name, shuffle, seed):
    X, y = TRUTH[name]
    p = Perceptron(shuffle=shuffle, random_state=seed, max_iter=100).fit(X, y)
    np.testing.assert_array_equal(p.predict(X), y)
    assert p.score(X, y) == 1.0
    assert p.converged_ and 1 <= p.n_iter_ < 100
    w, b, n_iter, conv = reference_pla(X, y, max_iter=100, shuffle=shuffle, seed=seed)
    np.testing.assert_array_equal(p.coef_, w[None, :])
    np.testing.assert_array_equal(p.intercept_, [b])
    assert (p.n_iter_, p.converged_) == (n_iter, conv)


def test_and_or_weights_by_hand():
    # OR worked by hand (no shuffle, w = 0, b = 0, eta0 = 1; a score <= 0 with
    # y = +1, or >= 0 with y = -1, is a mistake):
    # epoch 1: (0,0) score 0, y=-1 -> b=-1; (0,1) -1, y=+1 -> w=(0,1), b=0;
    #          (1,0) 0 -> w=(1,1), b=1; (1,1) 3 ok.
    # epoch 2: (0,0) 1 -> b=0; (0,1) 1, (1,0) 1, (1,1) 2 ok.
    # epoch 3: (0,0) 0 -> b=-1; (0,1) 0 -> w=(1,2), b=0; (1,0) 1, (1,1) 3 ok.
    # epoch 4: (0,0) 0 -> b=-1; (0,1) 1 ok; (1,0) 0 -> w=(2,2), b=0; (1,1) ok.
    # epoch 5: (0,0) 0 -> b=-1; the rest ok.   epoch 6: no mistake -> converged.
    p = Perceptron(shuffle=False).fit(*TRUTH["OR"])
    np.testing.assert_array_equal(p.coef_, [[2.0, 2.0]])
    np.testing.assert_array_equal(p.intercept_, [-1.0])
    assert p.n_iter_ == 6 and p.converged_


def test_xor_stops_at_max_iter():
    X = X2
    y = np.array([0, 1, 1, 0])
    for max_iter, shuffle in [(1, False), (7, False), (50, True), (1000, False)]:
        with pytest.warns(ConvergenceWarning, match="max_iter=%d" % max_iter):
            p = Perceptron(max_iter=max_iter, shuffle=shuffle, random_state=0).fit(X, y)
        assert p.n_iter_ == max_iter
        assert not p.converged_
        assert p.score(X, y) < 1.0


def test_non_separable_noisy_data_stops(rng):
    X, y = separable(rng, 500, 4)
    y[:25] = 1 - y[:25]                         # label noise: not separable any more
    with pytest.warns(ConvergenceWarning):
        p = Perceptron(max_iter=20, random_state=0).fit(X, y)
    assert p.n_iter_ == 20 and not p.converged_
    assert 0.6 < p.score(X, y) < 1.0


@pytest.mark.parametrize("n,d", [(2, 1), (7, 13), (97, 3), (300, 5), (1000, 20)])
def test_separable_data_converges(rng, n, d):
    X, y = separable(rng, n, d, margin=0.05)
    p = Perceptron(max_iter=1000, random_state=0).fit(X, y)
    assert p.converged_ and p.n_iter_ < 1000
    assert p.score(X, y) == 1.0
    np.testing.assert_array_equal(p.predict(X), y)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_matches_per_sample_reference(rng, shuffle, fit_intercept):
    # Integer-valued data keep every score exact, so the blocked GEMM version
    # must take exactly the reference's steps (same weights, same epochs).
    n, d = 333, 6                               # > several blocks of 64
    X = rng.integers(-5, 6, size=(8 * n, d)).astype(float)
    w_true = np.array([3.0, -2.0, 1.0, 0.0, 2.0, -1.0])
    s = X @ w_true + (0.5 if fit_intercept else 0.0)
    X, s = X[np.abs(s) >= 4][:n], s[np.abs(s) >= 4][:n]     # a margin: converges fast
    y = np.where(s > 0, 7, -2)
    p = Perceptron(max_iter=200, shuffle=shuffle, random_state=3,
                   fit_intercept=fit_intercept).fit(X, y)
    w, b, n_iter, conv = reference_pla(X, y, max_iter=200, shuffle=shuffle, seed=3,
                                       fit_intercept=fit_intercept)
    np.testing.assert_array_equal(p.coef_[0], w)
    assert p.intercept_[0] == b
    assert (p.n_iter_, p.converged_) == (n_iter, conv)
    assert conv and p.score(X, y) == 1.0
    if not fit_intercept:
        assert p.intercept_[0] == 0.0


def test_matches_reference_on_float_data(rng):
    X, y = separable(rng, 200, 8, margin=0.02)
    p = Perceptron(max_iter=500, shuffle=False).fit(X, y)
    w, b, n_iter, conv = reference_pla(X, y, max_iter=500)
    np.testing.assert_allclose(p.coef_[0], w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.intercept_[0], b, rtol=1e-10, atol=1e-12)
    assert p.n_iter_ == n_iter and conv


def test_against_scikit_learn(rng):
    X, y = separable(rng, 400, 10, margin=0.05)
    max_iter = 200
    sk = SkPerceptron(penalty=None, eta0=1.0, shuffle=False, tol=None, max_iter=max_iter).fit(X, y)
    p = Perceptron(eta0=1.0, shuffle=False, max_iter=max_iter).fit(X, y)
    assert sk.score(X, y) == 1.0
    assert p.score(X, y) == 1.0 and p.converged_
    np.testing.assert_array_equal(p.classes_, sk.classes_)
    assert p.coef_.shape == sk.coef_.shape and p.intercept_.shape == sk.intercept_.shape
    np.testing.assert_array_equal(p.predict(X), sk.predict(X))


def test_decision_function_and_predict(rng):
    X, y = separable(rng, 120, 7)
    labels = np.array(["cat", "dog"])
    p = Perceptron(random_state=0).fit(X, labels[y])
    np.testing.assert_array_equal(p.classes_, ["cat", "dog"])
    Xt = rng.standard_normal((31, 7))
    scores = p.decision_function(Xt)
    assert scores.shape == (31,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, Xt @ p.coef_[0] + p.intercept_[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(p.predict(Xt), np.where(scores > 0, "dog", "cat"))
    # Fortran-ordered, strided, float32 and int inputs give the same answers
    np.testing.assert_allclose(p.decision_function(np.asfortranarray(Xt)), scores, rtol=1e-12)
    big = np.zeros((31, 14))
    big[:, ::2] = Xt
    np.testing.assert_allclose(p.decision_function(big[:, ::2]), scores, rtol=1e-12)
    np.testing.assert_allclose(p.decision_function(Xt.astype(np.float32)),
                               Xt.astype(np.float32).astype(float) @ p.coef_[0] + p.intercept_[0],
                               rtol=1e-12, atol=1e-12)


def test_zero_score_predicts_first_class():
    p = Perceptron(shuffle=False).fit(*TRUTH["AND"])
    w, b = p.coef_[0], p.intercept_[0]
    x0 = np.array([[-b / w[0], 0.0]])              # exactly on the boundary
    assert p.decision_function(x0)[0] == 0.0
    assert p.predict(x0)[0] == 0


def test_label_types_and_inputs():
    X, y = TRUTH["AND"]
    for labels in ([-1, 1], [3, 7], [False, True], ["no", "yes"], [0.5, 2.5]):
        yy = np.array(labels)[y]
        p = Perceptron(shuffle=False).fit(X.tolist(), yy.tolist())
        np.testing.assert_array_equal(p.classes_, sorted(labels))
        np.testing.assert_array_equal(p.predict(X), yy)
    p = Perceptron(shuffle=False).fit(X.astype(np.int64), y)
    assert p.n_features_in_ == 2 and p.coef_.shape == (1, 2) and p.intercept_.shape == (1,)
    assert p.coef_.dtype == np.float64
    p32 = Perceptron(shuffle=False).fit(X.astype(np.float32), y)
    np.testing.assert_array_equal(p32.coef_, p.coef_)


def test_eta0_scales_the_weights(rng):
    X, y = separable(rng, 150, 4)
    a = Perceptron(eta0=1.0, random_state=5).fit(X, y)
    b = Perceptron(eta0=0.25, random_state=5).fit(X, y)   # a power of 2: exact scaling
    np.testing.assert_array_equal(b.coef_, 0.25 * a.coef_)
    np.testing.assert_array_equal(b.intercept_, 0.25 * a.intercept_)
    assert a.n_iter_ == b.n_iter_


def test_deterministic_given_random_state(rng):
    X, y = separable(rng, 300, 6, margin=0.02)
    fits = [Perceptron(random_state=42).fit(X, y) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert fits[0].n_iter_ == fits[1].n_iter_
    # refitting the same estimator starts over from the seed
    est = Perceptron(random_state=42)
    est.fit(X, y)
    first = est.coef_.copy()
    est.fit(X, y)
    np.testing.assert_array_equal(est.coef_, first)
    # thread count does not matter
    with fastmlp.threads(1):
        one = Perceptron(random_state=42).fit(X, y).coef_
    with fastmlp.threads(2):
        two = Perceptron(random_state=42).fit(X, y).coef_
    np.testing.assert_array_equal(one, two)
    # a different order of visits gives different weights (same seed 42 would not)
    other = Perceptron(random_state=7).fit(X, y)
    assert not np.array_equal(other.coef_, first)


def test_input_not_modified(rng):
    X, y = separable(rng, 50, 3)
    X0, y0 = X.copy(), y.copy()
    p = Perceptron(random_state=0).fit(X, y)
    p.predict(X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_sklearn_estimator_api():
    p = Perceptron(max_iter=30, eta0=0.5, random_state=1)
    assert p.get_params() == {"max_iter": 30, "shuffle": True, "random_state": 1,
                              "eta0": 0.5, "fit_intercept": True}
    c = clone(p)
    assert c.get_params() == p.get_params() and c is not p
    assert p.fit(*TRUTH["OR"]) is p
    p.set_params(max_iter=2)
    assert p.max_iter == 2
    assert "Perceptron(" in repr(p)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 150), d=st.integers(1, 6),
       shuffle=st.booleans())
def test_property_separable_always_fits(seed, n, d, shuffle):
    rng = np.random.default_rng(seed)
    X, y = separable(rng, n, d, margin=0.1)
    p = Perceptron(max_iter=2000, shuffle=shuffle, random_state=seed % 1000).fit(X, y)
    assert p.converged_ and p.score(X, y) == 1.0


# ---- bad input ------------------------------------------------------------

def test_not_fitted():
    p = Perceptron()
    for method in (p.predict, p.decision_function):
        with pytest.raises(NotFittedError):
            method(X2)
    with pytest.raises(NotFittedError):
        p.score(X2, [0, 0, 0, 1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X(bad):
    X = X2.copy()
    X[2, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        Perceptron().fit(X, [0, 0, 0, 1])
    p = Perceptron(shuffle=False).fit(X2, [0, 0, 0, 1])
    with pytest.raises(ValueError, match="NaN or infinity"):
        p.predict(X)


def test_bad_shapes():
    y = [0, 0, 0, 1]
    with pytest.raises(ValueError, match=r"2-D.*reshape\(-1, 1\)"):
        Perceptron().fit(np.arange(4.0), y)
    with pytest.raises(ValueError, match="2-D"):
        Perceptron().fit(np.zeros((4, 2, 1)), y)
    with pytest.raises(ValueError, match="0 samples"):
        Perceptron().fit(np.zeros((0, 2)), [])
    with pytest.raises(ValueError, match="0 features"):
        Perceptron().fit(np.zeros((4, 0)), y)
    with pytest.raises(ValueError, match="X has 4 samples but y has 3"):
        Perceptron().fit(X2, [0, 1, 1])
    with pytest.raises(ValueError, match=r"y must be 1-D.*ravel"):
        Perceptron().fit(X2, np.array(y)[:, None])
    p = Perceptron(shuffle=False).fit(X2, y)
    with pytest.raises(ValueError, match="X has 3 features, but the Perceptron was fitted with 2"):
        p.predict(np.zeros((2, 3)))


def test_bad_dtypes():
    with pytest.raises(TypeError, match="real numbers"):
        Perceptron().fit(X2 + 1j, [0, 0, 0, 1])
    with pytest.raises(TypeError, match="non-numeric|real numbers"):
        Perceptron().fit([["a", "b"], ["c", "d"]], [0, 1])
    with pytest.raises(TypeError, match="non-numeric"):
        Perceptron().fit(np.array([[1, "x"], [2, 3]], dtype=object), [0, 1])
    with pytest.raises(ValueError, match="NaN"):        # None -> NaN
        Perceptron().fit(np.array([[1, None], [2, 3]], dtype=object), [0, 1])


def test_sparse_rejected():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        Perceptron().fit(sp.csr_matrix(X2), [0, 0, 0, 1])


def test_class_count():
    with pytest.raises(ValueError, match=r"binary classifier but y has 3 classes: \[0, 1, 2\]"):
        Perceptron().fit(X2, [0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"single class \[1\]"):
        Perceptron().fit(X2, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="y contains NaN"):
        Perceptron().fit(X2, [0.0, 1.0, np.nan, 1.0])


@pytest.mark.parametrize("params,exc,match", [
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
    ({"max_iter": 2.5}, TypeError, "max_iter must be an int"),
    ({"max_iter": True}, TypeError, "max_iter must be an int"),
    ({"eta0": 0.0}, ValueError, "eta0 must be finite and > 0"),
    ({"eta0": -1}, ValueError, "eta0 must be finite and > 0"),
    ({"eta0": np.nan}, ValueError, "eta0 must be finite and > 0"),
    ({"eta0": "1"}, TypeError, "eta0 must be a real number"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be a bool"),
    ({"fit_intercept": 1}, TypeError, "fit_intercept must be a bool"),
    ({"random_state": -1}, ValueError, "random_state must be >= 0"),
    ({"random_state": "seed"}, TypeError, "random_state must be an int"),
])
def test_bad_params(params, exc, match):
    with pytest.raises(exc, match=match):
        Perceptron(**params).fit(X2, [0, 0, 0, 1])


def test_no_warning_when_converged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Perceptron(shuffle=False).fit(*TRUTH["AND"])
