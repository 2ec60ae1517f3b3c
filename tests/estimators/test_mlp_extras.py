"""fastmlp's extras over scikit-learn's MLPs: extra solvers, l1, dropout,
batch_norm, class_weight, n_threads.

The extra solvers and the l1 penalty are checked against an independent
float64 NumPy training loop (textbook update formulas, scikit-learn's
initialisation, shuffling and batching), weight for weight.
"""
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle as sk_shuffle
from sklearn.utils.class_weight import compute_sample_weight

import fastmlp
from fastmlp.sklearn import MLPClassifier, MLPRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)


def _fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


def _reference(X, y, hidden, solver, lr, epochs, batch, seed, alpha=0.0, l1=0.0, rho=0.9,
               beta1=0.9, beta2=0.999, eps=1e-8):
    """relu MLP with one hidden layer, softmax output, log-loss; plain NumPy."""
    rs = np.random.RandomState(seed)
    classes = np.unique(y)
    Y = (y[:, None] == classes[None, :]).astype(float)
    units = [X.shape[1], hidden, len(classes)]
    W, b = [], []
    for i in range(2):
        bound = np.sqrt(6.0 / (units[i] + units[i + 1]))
        W.append(rs.uniform(-bound, bound, (units[i], units[i + 1])))
        b.append(rs.uniform(-bound, bound, units[i + 1]))
    params = W + b
    s1 = [np.zeros_like(p) for p in params]
    s2 = [np.zeros_like(p) for p in params]
    idx = np.arange(X.shape[0])
    t = 0
    for _ in range(epochs):
        idx = sk_shuffle(idx, random_state=rs)
        for s in range(0, len(idx), batch):
            rows = idx[s:s + batch]
            m = len(rows)
            x = X[rows]
            h = np.maximum(x @ W[0] + b[0], 0)
            z = h @ W[1] + b[1]
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            d2 = (p - Y[rows]) / m
            d1 = (d2 @ W[1].T) * (h > 0)
            grads = [x.T @ d1, h.T @ d2, d1.sum(0), d2.sum(0)]
            for i in range(2):
                grads[i] = grads[i] + alpha / m * W[i] + l1 / m * np.sign(W[i])
            t += 1
            for p_, g, a, v in zip(params, grads, s1, s2):
                if solver == "adagrad":
                    a += g * g
                    p_ -= lr * g / (np.sqrt(a) + eps)
                elif solver == "rmsprop":
                    a *= rho
                    a += (1 - rho) * g * g
                    p_ -= lr * g / (np.sqrt(a) + eps)
                elif solver == "adadelta":
                    a *= rho
                    a += (1 - rho) * g * g
                    dx = np.sqrt(v + eps) / np.sqrt(a + eps) * g
                    v *= rho
                    v += (1 - rho) * dx * dx
                    p_ -= lr * dx
                elif solver == "adamax":
                    a *= beta1
                    a += (1 - beta1) * g
                    np.maximum(beta2 * v, np.abs(g), out=v)
                    p_ -= lr / (1 - beta1 ** t) * a / (v + eps)
                elif solver == "adam":
                    a *= beta1
                    a += (1 - beta1) * g
                    v *= beta2
                    v += (1 - beta2) * g * g
                    p_ -= lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * a / (np.sqrt(v) + eps)
    return W, b


@pytest.mark.parametrize("solver,lr", [("adagrad", 0.05), ("rmsprop", 0.002),
                                       ("adadelta", 1.0), ("adamax", 0.004), ("adam", 0.002)])
def test_extra_solvers_match_numpy_reference(digits, solver, lr):
    Xtr, _, ytr, _ = digits
    X, y = Xtr[:300], ytr[:300]
    kw = dict(alpha=1e-3, l1=1e-3, rho=0.8) if solver != "adam" else dict(alpha=1e-3, l1=1e-3)
    est = _fit(MLPClassifier(hidden_layer_sizes=(12,), solver=solver, learning_rate_init=lr,
                             batch_size=64, max_iter=3, random_state=3, tol=0, **kw), X, y)
    W, b = _reference(X, y, 12, solver, lr, 3, 64, 3, alpha=1e-3, l1=1e-3,
                      rho=kw.get("rho", 0.9))
    for got, want in zip(est.coefs_ + est.intercepts_, W + b):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3


@pytest.mark.parametrize("solver", ["adagrad", "adadelta", "rmsprop", "adamax"])
def test_extra_solvers_learn_digits(digits, solver):
    Xtr, Xte, ytr, yte = digits
    lr = {"adagrad": 0.05, "adadelta": 1.0, "rmsprop": 0.001, "adamax": 0.002}[solver]
    est = _fit(MLPClassifier(hidden_layer_sizes=(64,), solver=solver, learning_rate_init=lr,
                             max_iter=60, random_state=0), Xtr, ytr)
    assert est.score(Xte, yte) > 0.93
    # partial_fit is available for every stochastic solver
    est.partial_fit(Xtr, ytr)
    assert est.n_iter_ == 1


def test_l1_shrinks_weights_and_enters_the_loss(digits):
    Xtr, _, ytr, _ = digits
    a = _fit(MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=50,
                           random_state=0), Xtr, ytr)
    b = _fit(MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=50,
                           random_state=0, l1=0.5), Xtr, ytr)
    assert sum(np.abs(c).sum() for c in b.coefs_) < 0.7 * sum(np.abs(c).sum() for c in a.coefs_)
    # the reported loss includes the penalty: recompute it from the fitted weights
    p = np.clip(b.predict_proba(Xtr), 1e-300, 1)
    data = -np.mean(np.log(p[np.arange(len(ytr)), np.searchsorted(b.classes_, ytr)]))
    pen = 0.5 * 1e-4 * sum((c ** 2).sum() for c in b.coefs_) / len(ytr) \
        + 0.5 * sum(np.abs(c).sum() for c in b.coefs_) / len(ytr)
    np.testing.assert_allclose(b.loss_, data + pen, rtol=1e-6)


def test_class_weight_equals_sample_weight(digits):
    Xtr, Xte, ytr, _ = digits
    cw = {c: 1.0 + (c % 3) for c in range(10)}
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    a = _fit(MLPClassifier(class_weight=cw, **kw), Xtr, ytr)
    sw = np.array([cw[c] for c in ytr])
    b = _fit(MLPClassifier(**kw), Xtr, ytr, sample_weight=sw)
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)
    c = _fit(MLPClassifier(class_weight="balanced", **kw), Xtr[:500], ytr[:500])
    d = _fit(MLPClassifier(**kw), Xtr[:500], ytr[:500],
             sample_weight=compute_sample_weight("balanced", ytr[:500]))
    np.testing.assert_array_equal(c.predict_proba(Xte), d.predict_proba(Xte))
    assert not np.array_equal(a.coefs_[0], _fit(MLPClassifier(**kw), Xtr, ytr).coefs_[0])
    with pytest.raises(ValueError, match="balanced.*partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(Xtr, ytr, classes=np.arange(10))


def test_dropout_and_batch_norm_train_and_are_deterministic(digits, tmp_path):
    Xtr, Xte, ytr, yte = digits
    kw = dict(hidden_layer_sizes=(64, 32), max_iter=40, random_state=0, batch_size=100)
    plain = _fit(MLPClassifier(**kw), Xtr, ytr)
    for extra in (dict(dropout=0.2), dict(batch_norm=True), dict(dropout=0.1, batch_norm=True)):
        est = _fit(MLPClassifier(**kw, **extra), Xtr, ytr)
        assert est.score(Xte, yte) > 0.93, extra
        assert not np.array_equal(est.coefs_[0], plain.coefs_[0])
        again = _fit(MLPClassifier(**kw, n_threads=1, **extra), Xtr, ytr)
        np.testing.assert_array_equal(again.predict_proba(Xte), est.predict_proba(Xte))
        # prediction is deterministic (no dropout at predict time)
        np.testing.assert_array_equal(est.predict_proba(Xte), est.predict_proba(Xte))
        fastmlp.save(est, tmp_path / "m.npz")
        back = fastmlp.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(back.predict_proba(Xte), est.predict_proba(Xte))


def test_batch_norm_predict_uses_running_statistics(digits):
    Xtr, Xte, ytr, _ = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(16,), activation="tanh", batch_norm=True,
                             max_iter=5, random_state=0), Xtr, ytr)
    eng = est._fm_engine
    z = Xte @ est.coefs_[0] + est.intercepts_[0]
    h = np.tanh((z - eng.bn_running_mean[0]) / np.sqrt(eng.bn_running_var[0] + 1e-5)
                * eng.bn_gamma[0] + eng.bn_beta[0])
    o = h @ est.coefs_[1] + est.intercepts_[1]
    p = np.exp(o - o.max(1, keepdims=True))
    np.testing.assert_allclose(est.predict_proba(Xte), p / p.sum(1, keepdims=True),
                               rtol=1e-10, atol=1e-14)
    # the running mean follows the data (not left at its initial 0)
    assert np.abs(eng.bn_running_mean[0]).max() > 0.1


def test_n_threads_bitwise_and_restores_global(digits):
    Xtr, Xte, ytr, _ = digits
    before = fastmlp.get_num_threads()
    kw = dict(hidden_layer_sizes=(128,), max_iter=3, random_state=0, batch_size=256)
    a = _fit(MLPClassifier(n_threads=1, **kw), Xtr, ytr)
    b = _fit(MLPClassifier(n_threads=2, **kw), Xtr, ytr)
    for ca, cb in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(ca, cb)
    assert fastmlp.get_num_threads() == before


def test_regressor_extras(digits):
    Xtr, Xte, ytr, yte = digits
    est = _fit(MLPRegressor(hidden_layer_sizes=(32,), solver="rmsprop", learning_rate_init=0.003,
                            batch_norm=True, dropout=0.1, max_iter=80, random_state=0),
               Xtr, ytr.astype(float))
    assert est.score(Xte, yte.astype(float)) > 0.6


@pytest.mark.parametrize("bad,match", [
    (dict(solver="lbfgs", dropout=0.2), "stochastic solver"),
    (dict(solver="lbfgs", batch_norm=True), "stochastic solver"),
    (dict(dropout=1.0), "dropout"),
    (dict(l1=-1.0), "l1"),
    (dict(n_threads=0), "n_threads"),
    (dict(solver="nadam"), "solver"),
    (dict(class_weight="bogus"), "class_weight"),
    (dict(rho=1.5), "rho"),
])
def test_bad_extra_parameters(digits, bad, match):
    Xtr, _, ytr, _ = digits
    with pytest.raises(ValueError, match=match):
        MLPClassifier(max_iter=2, **bad).fit(Xtr[:50], ytr[:50])


def test_pickle_keeps_engine_views_and_training_continues(digits):
    import pickle
    Xtr, Xte, ytr, _ = digits
    est = _fit(MLPClassifier(hidden_layer_sizes=(16,), batch_norm=True, max_iter=3,
                             random_state=0), Xtr, ytr)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(Xte), est.predict_proba(Xte))
    eng = back._fm_engine
    assert np.shares_memory(eng.coefs[0], eng.params)
    assert est._fm_engine._rows > 0                        # the fitted engine has work buffers
    assert pickle.loads(pickle.dumps(est._fm_engine))._bufs == {}   # which are not pickled
    # both continue identically
    est.partial_fit(Xtr, ytr)
    back.partial_fit(Xtr, ytr)
    np.testing.assert_array_equal(back.predict_proba(Xte), est.predict_proba(Xte))


def test_validation_keeps_scikit_learn_finiteness_errors():
    # fastmlp checks finiteness itself (multi-threaded) and lets scikit-learn
    # skip its own pass only when everything is finite: the errors and their
    # messages stay scikit-learn's
    from sklearn.neural_network import MLPClassifier as SkC, MLPRegressor as SkR
    import fastmlp.sklearn as fs
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = rng.standard_normal(40)
    labels = (y > 0).astype(int)
    cases = []
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[7, 1] = bad
        yb = y.copy()
        yb[5] = bad
        cases += [(fs.MLPRegressor, SkR, Xb, y), (fs.MLPRegressor, SkR, X, yb),
                  (fs.MLPClassifier, SkC, Xb, labels), (fs.MLPRegressor, SkR, Xb.astype(np.float32), y)]
    for ours, theirs, Xc, yc in cases:
        with pytest.raises(ValueError) as want:
            theirs(max_iter=2).fit(Xc, yc)
        with pytest.raises(ValueError, match=re.escape(str(want.value))):
            ours(max_iter=2).fit(Xc, yc)
    # object labels and integer X still go through scikit-learn's checks (and
    # five epochs end with scikit-learn's ConvergenceWarning)
    from sklearn.exceptions import ConvergenceWarning
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf = fs.MLPClassifier(max_iter=5, random_state=0).fit(
            X.astype(int), np.where(labels, "a", "b").astype(object))
    assert set(clf.predict(X)) <= {"a", "b"}


@pytest.mark.parametrize("kw", [
    dict(solver="sgd", momentum=0.9, alpha=1e-3, shuffle=True),
    dict(solver="adam", alpha=0.0, l1=1e-4, shuffle=False),
    dict(solver="adam", early_stopping=True, shuffle=True, n_iter_no_change=50),
    dict(solver="rmsprop", early_stopping=True, shuffle=False, n_iter_no_change=50),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_epoch_runs_are_bitwise_the_per_batch_loop(digits, monkeypatch, kw, weighted):
    """A softmax classifier's epoch runs as compiled runs of steps (several
    batches per call, the next batch's rows prefetched): weights, loss curve
    and validation scores are bitwise those of the per-batch kernel-by-kernel
    loop (the trainer turned off) and of any number of steps per call."""
    from fastmlp.nn.mlp import DenseMLP
    from fastmlp.sklearn import _FastMLPMixin
    Xtr, _, ytr, _ = digits
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(ytr)) if weighted else None
    args = dict(hidden_layer_sizes=(40, 20), batch_size=50, max_iter=3, random_state=0,
                learning_rate_init=0.01, **kw)

    def fit():
        return _fit(MLPClassifier(**args), Xtr, ytr, sample_weight=sw)

    runs = [fit()]
    for per_call in (1, 7):
        monkeypatch.setattr(_FastMLPMixin, "_FM_STEPS_PER_CALL", per_call)
        runs.append(fit())

    def no_trainer(*a, **k):
        raise ValueError("off")
    monkeypatch.setattr(DenseMLP, "trainer", no_trainer)
    runs.append(fit())
    ref = runs[-1]
    for est in runs[:-1]:
        for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_array_equal(a, b)
        assert est.loss_curve_ == ref.loss_curve_
        if kw.get("early_stopping"):
            assert est.validation_scores_ == ref.validation_scores_
