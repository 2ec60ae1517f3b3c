"""Rosenblatt's perceptron learning algorithm (PLA), scikit-learn style.

Design: the binary labels are mapped to y in {-1, +1} (``classes_[0]`` -> -1,
``classes_[1]`` -> +1) and the weights start at zero. Each epoch visits the
samples in order (or in a fresh random order when ``shuffle``) and, for every
sample that the current weights misclassify, updates::

    w += eta0 * y_i * x_i,     b += eta0 * y_i   (b only if fit_intercept)

A sample counts as misclassified when ``sgn(w.x_i + b) != y_i`` with
``sgn(s) = +1 if s > 0 else -1`` as in the lecture notes, and a score of
exactly 0 is *always* treated as a mistake (``y_i * (w.x_i + b) <= 0``):
otherwise the all-zero starting weights would "classify" every sample and the
algorithm would never move. Training stops after the first epoch without a
mistake (converged: the data are linearly separable and all are classified
correctly) or after ``max_iter`` epochs; on data that are not linearly
separable (XOR) the PLA never converges and stops at ``max_iter`` with a
ConvergenceWarning.

Speed: rather than one Python step per sample, the scores of the next block
of up to 64 samples are computed with one GEMM call (fastmlp.matmul) using the
current weights; the first mistake in the block is applied and scoring
resumes right after it. This is exactly the sequential algorithm (a sample is
always scored with the weights as they are when it is visited), with one call
per 64 correctly classified samples plus one per mistake.
"""
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from fastmlp import _io, ops

__all__ = ["Perceptron"]

_BLOCK = 64


def _check_X(X, func, n_features=None):
    """X as a finite 2-D float64 array (ints and bools are converted)."""
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{func}: sparse matrices are not supported; pass a dense array "
                        f"(X.toarray())")
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}: X cannot be converted to an array ({exc})") from None
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{func}: X has non-numeric entries ({exc})") from None
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{func}: X must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
        raise ValueError(f"{func}: X must be a 2-D array (n_samples, n_features), "
                         f"got {X.ndim}-D of shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{func}: X has 0 samples (shape {X.shape})")
    if X.shape[1] == 0:
        raise ValueError(f"{func}: X has 0 features (shape {X.shape})")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{func}: X contains NaN or infinity")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{func}: X has {X.shape[1]} features, but the Perceptron was "
                         f"fitted with {n_features} features")
    return X


def _check_int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Perceptron: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"Perceptron: {name} must be >= {low}, got {value}")
    return int(value)


@_io.register("Perceptron")
class Perceptron(ClassifierMixin, BaseEstimator):
    """Binary linear classifier trained with the perceptron learning algorithm.

    Parameters
    ----------
    max_iter : int, default=1000
        Maximum number of epochs (passes over the training data).
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch.
    random_state : int or None, default=None
        Seed of the shuffling (``np.random.default_rng(random_state)``, drawn
        anew by every `fit`): an int makes `fit` deterministic.
    eta0 : float, default=1.0
        Learning rate: the size of every update (> 0). With zero starting
        weights it only scales w and b, so the predictions do not depend on it.
    fit_intercept : bool, default=True
        Learn the bias b; if False, b stays 0 (the boundary passes through 0).

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features)
    intercept_ : ndarray of shape (1,)
    classes_ : ndarray of shape (2,)
        The two labels, sorted; ``classes_[1]`` is the positive class (score > 0).
    n_iter_ : int
        Epochs run, the final error-free one included when converged.
    converged_ : bool
        True when the last epoch made no mistake.
    n_features_in_ : int

    Notes
    -----
    A score ``w.x + b`` of exactly 0 is a mistake in training and predicts
    ``classes_[0]`` (``sgn(0) = -1``). If ``max_iter`` epochs pass without
    an error-free one, a ``sklearn.exceptions.ConvergenceWarning`` is issued.
    Save and load with ``fastmlp.save`` / ``fastmlp.load``.
    """

    def __init__(self, max_iter=1000, shuffle=True, random_state=None, eta0=1.0,
                 fit_intercept=True):
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.eta0 = eta0
        self.fit_intercept = fit_intercept

    def _check_params(self):
        _check_int(self.max_iter, "max_iter", 1)
        for name in ("shuffle", "fit_intercept"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"Perceptron: {name} must be a bool, got {getattr(self, name)!r}")
        if self.random_state is not None:
            _check_int(self.random_state, "random_state", 0)
        eta0 = self.eta0
        if isinstance(eta0, (bool, np.bool_)) or not isinstance(eta0, numbers.Real):
            raise TypeError(f"Perceptron: eta0 must be a real number, got {eta0!r}")
        if not (np.isfinite(eta0) and eta0 > 0):
            raise ValueError(f"Perceptron: eta0 must be finite and > 0, got {eta0!r}")

    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and binary labels y (n_samples,); returns self."""
        self._check_params()
        X = _check_X(X, "Perceptron.fit")
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"Perceptron.fit: y must be 1-D (n_samples,), got shape {y.shape}"
                             + (" (use y.ravel())" if y.ndim == 2 and y.shape[1] == 1 else ""))
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Perceptron.fit: X has {X.shape[0]} samples but y has "
                             f"{y.shape[0]}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("Perceptron.fit: y contains NaN or infinity")
        try:
            classes = np.unique(y)
        except TypeError as exc:
            raise TypeError(f"Perceptron.fit: the labels in y cannot be sorted ({exc})") from None
        if classes.size < 2:
            raise ValueError(f"Perceptron.fit: y has a single class {classes.tolist()}; "
                             f"a classifier needs samples of 2 classes")
        if classes.size > 2:
            shown = classes[:10].tolist()
            more = ", ..." if classes.size > 10 else ""
            raise ValueError(f"Perceptron.fit: Perceptron is a binary classifier but y has "
                             f"{classes.size} classes: {str(shown)[:-1]}{more}]")
        ysgn = np.where(y == classes[1], 1.0, -1.0)
        rng = np.random.default_rng(self.random_state)
        w, b, n_iter, converged = _pla(X, ysgn, float(self.eta0), bool(self.fit_intercept),
                                       int(self.max_iter), bool(self.shuffle), rng)
        self.coef_ = w.reshape(1, -1)
        self.intercept_ = np.array([b])
        self.classes_ = classes
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.n_features_in_ = X.shape[1]
        if not converged:
            warnings.warn(f"Perceptron: no error-free epoch within max_iter={self.max_iter} "
                          f"epochs; the data may not be linearly separable",
                          ConvergenceWarning, stacklevel=2)
        return self

    def decision_function(self, X):
        """Scores ``X @ coef_.T + intercept_``, shape (n_samples,); > 0 means classes_[1]."""
        check_is_fitted(self)
        X = _check_X(X, "Perceptron.decision_function", self.n_features_in_)
        return ops.linear(X, self.coef_.T, self.intercept_)[:, 0]

    def predict(self, X):
        """Predicted labels: classes_[1] where the score is > 0, else classes_[0]."""
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(np.intp)]

    # score(X, y) -> mean accuracy: inherited from ClassifierMixin.

    # ---- fastmlp.save / fastmlp.load -------------------------------------
    def _get_state(self):
        self._check_params()
        hyper = {"max_iter": int(self.max_iter), "shuffle": bool(self.shuffle),
                 "random_state": None if self.random_state is None else int(self.random_state),
                 "eta0": float(self.eta0), "fit_intercept": bool(self.fit_intercept)}
        params = {"hyperparameters": hyper, "fitted": None}
        arrays = {}
        if hasattr(self, "coef_"):
            classes = self.classes_
            if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
                classes = classes.astype(str)
            params["fitted"] = {"n_iter_": int(self.n_iter_),
                                "converged_": bool(self.converged_),
                                "n_features_in_": int(self.n_features_in_)}
            arrays = {"coef_": self.coef_, "intercept_": self.intercept_, "classes_": classes}
        return params, arrays

    @classmethod
    def _from_state(cls, params, arrays):
        hyper = params["hyperparameters"]
        if not isinstance(hyper, dict):
            raise TypeError("hyperparameters is not a dict")
        unknown = set(hyper) - set(cls._get_param_names())
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}")
        obj = cls(**hyper)
        obj._check_params()
        fitted = params["fitted"]
        if fitted is None:
            if arrays:
                raise ValueError(f"unfitted Perceptron with arrays {sorted(arrays)}")
            return obj
        coef, intercept, classes = arrays["coef_"], arrays["intercept_"], arrays["classes_"]
        n_features = _check_int(fitted["n_features_in_"], "n_features_in_", 1)
        if coef.dtype != np.float64 or coef.shape != (1, n_features):
            raise ValueError(f"coef_ has shape {coef.shape} and dtype {coef.dtype}, expected "
                             f"(1, {n_features}) float64")
        if intercept.dtype != np.float64 or intercept.shape != (1,):
            raise ValueError(f"intercept_ has shape {intercept.shape}, expected (1,) float64")
        if classes.shape != (2,):
            raise ValueError(f"classes_ has shape {classes.shape}, expected (2,)")
        obj.coef_ = np.array(coef)
        obj.intercept_ = np.array(intercept)
        obj.classes_ = np.array(classes)
        obj.n_iter_ = _check_int(fitted["n_iter_"], "n_iter_", 1)
        converged = fitted["converged_"]
        if not isinstance(converged, bool):
            raise TypeError("converged_ is not a bool")
        obj.converged_ = converged
        obj.n_features_in_ = n_features
        return obj


def _pla(X, ysgn, eta0, fit_intercept, max_iter, shuffle, rng):
    """The perceptron learning algorithm; returns (w, b, epochs run, converged)."""
    n, d = X.shape
    w = np.zeros((d, 1))
    b = 0.0
    for epoch in range(1, max_iter + 1):
        if shuffle:
            order = rng.permutation(n)
            Xe, ye = X[order], ysgn[order]
        else:
            Xe, ye = X, ysgn
        mistakes = 0
        i = 0
        while i < n:
            j = min(i + _BLOCK, n)
            margin = ye[i:j] * (ops.matmul(Xe[i:j], w)[:, 0] + b)
            # not (margin > 0): a score of 0 is a mistake, and so is NaN
            # (weights overflowed on huge inputs), so training cannot stop on it.
            bad = np.flatnonzero(~(margin > 0))
            if bad.size == 0:
                i = j
                continue
            k = i + int(bad[0])
            w[:, 0] += (eta0 * ye[k]) * Xe[k]
            if fit_intercept:
                b += eta0 * ye[k]
            mistakes += 1
            i = k + 1
        if mistakes == 0:
            return w[:, 0], b, epoch, True
    return w[:, 0], b, max_iter, False
