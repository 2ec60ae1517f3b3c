"""Loss objects for `fastmlp.nn`: ``loss(pred, y) -> (value, grad_wrt_pred)``.

Each wraps one fused kernel of `fastmlp.ops` and keeps its normalisation:

    =========================  ==========================================  ==================
    SoftmaxCrossEntropy()      ops.softmax_cross_entropy (mean over rows)  score: accuracy
    BinaryCrossEntropy()       ops.sigmoid_binary_cross_entropy on LOGITS  score: accuracy
                               (mean over all elements)
    MSELoss()                  ops.mse (mean over all elements)            score: R^2
    MAELoss()                  ops.mae (mean over all elements)            score: R^2
    =========================  ==========================================  ==================

``score(pred, y)`` is what `fastmlp.nn.fit` reports as ``val_score``;
``predict(pred)`` turns raw model outputs into labels / values.
"""
import numpy as np

from fastmlp import ops

__all__ = ["Loss", "SoftmaxCrossEntropy", "BinaryCrossEntropy", "MSELoss", "MAELoss",
           "get_loss", "r2_score"]


def r2_score(pred, y):
    """Coefficient of determination, averaged uniformly over outputs (scikit-learn's
    default); 1.0 for a constant target predicted exactly, else 0.0 for it."""
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    if pred.ndim == 1:
        pred, y = pred[:, None], y[:, None]
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                      np.where(ss_res == 0, 1.0, 0.0))
    return float(r2.mean())


class Loss:
    """Base class: ``__call__(pred, y) -> (value, grad)``."""

    classification = False
    _func = None

    def __call__(self, pred, y):
        return type(self)._func(pred, y)

    def loss(self, pred, y):
        return self(pred, y)

    def predict(self, pred):
        return np.asarray(pred)

    def score(self, pred, y):
        return r2_score(pred, y)

    def __repr__(self):
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on logits (n, k); y: integer labels (n,) or
    one-hot / probability rows (n, k). grad = (softmax(z) - onehot(y)) / n."""

    classification = True
    _func = staticmethod(ops.softmax_cross_entropy)

    def predict(self, pred):
        return np.argmax(pred, axis=1)

    def score(self, pred, y):
        y = np.asarray(y)
        if y.ndim == 2:
            y = np.argmax(y, axis=1)
        return float(np.mean(self.predict(pred) == y))


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy on LOGITS (n,) or (n, k) (multi-label);
    grad = (sigmoid(z) - y) / n_elements."""

    classification = True
    _func = staticmethod(ops.sigmoid_binary_cross_entropy)

    def predict(self, pred):
        return (np.asarray(pred) > 0).astype(np.int64)

    def score(self, pred, y):
        p = self.predict(pred)
        y = np.asarray(y).reshape(p.shape)
        return float(np.mean(p == (y > 0.5)))


class MSELoss(Loss):
    """mean((pred - y)^2) over all elements; grad = 2 (pred - y) / n_elements."""

    _func = staticmethod(ops.mse)


class MAELoss(Loss):
    """mean(|pred - y|) over all elements; grad = sign(pred - y) / n_elements."""

    _func = staticmethod(ops.mae)


_NAMES = {"softmax_cross_entropy": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy,
          "binary_cross_entropy": BinaryCrossEntropy, "bce": BinaryCrossEntropy,
          "mse": MSELoss, "squared_error": MSELoss, "mae": MAELoss, "absolute_error": MAELoss}


def get_loss(loss):
    """A Loss instance from an instance, a Loss class or a name."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss in _NAMES:
        return _NAMES[loss]()
    if callable(loss):
        return loss
    raise ValueError(f"unknown loss {loss!r}; expected a Loss or one of {', '.join(_NAMES)}")
