"""fastmlp.nn losses: values and gradients against NumPy formulas, scores."""
import numpy as np
import pytest

from fastmlp import nn


def test_softmax_cross_entropy(rng):
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    v, g = nn.SoftmaxCrossEntropy()(z, y)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert v == pytest.approx(-np.log(p[np.arange(6), y]).mean(), rel=1e-12)
    np.testing.assert_allclose(g, (p - np.eye(4)[y]) / 6, rtol=1e-10, atol=1e-15)


def test_binary_cross_entropy_on_logits(rng):
    z = rng.standard_normal((8, 2))
    y = rng.integers(0, 2, (8, 2))
    v, g = nn.BinaryCrossEntropy()(z, y)
    s = 1 / (1 + np.exp(-z))
    assert v == pytest.approx(-(y * np.log(s) + (1 - y) * np.log(1 - s)).mean(), rel=1e-10)
    np.testing.assert_allclose(g, (s - y) / 16, rtol=1e-10)


def test_mse_mae(rng):
    p = rng.standard_normal((5, 2))
    t = rng.standard_normal((5, 2))
    v, g = nn.MSELoss()(p, t)
    assert v == pytest.approx(((p - t) ** 2).mean(), rel=1e-12)
    np.testing.assert_allclose(g, 2 * (p - t) / 10, rtol=1e-12)
    v, g = nn.MAELoss()(p, t)
    assert v == pytest.approx(np.abs(p - t).mean(), rel=1e-12)
    np.testing.assert_allclose(g, np.sign(p - t) / 10, rtol=1e-12)


def test_scores():
    z = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    assert nn.SoftmaxCrossEntropy().score(z, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert nn.BinaryCrossEntropy().score(np.array([1.0, -1.0, 2.0]),
                                         np.array([1, 0, 0])) == pytest.approx(2 / 3)
    from sklearn.metrics import r2_score
    rng = np.random.default_rng(0)
    y, p = rng.standard_normal((20, 2)), rng.standard_normal((20, 2))
    assert nn.MSELoss().score(p, y) == pytest.approx(r2_score(y, p), rel=1e-12)


def test_get_loss_names():
    from fastmlp.nn.losses import get_loss
    assert isinstance(get_loss("mse"), nn.MSELoss)
    assert isinstance(get_loss(nn.MAELoss), nn.MAELoss)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")


def test_bad_labels():
    with pytest.raises(ValueError, match="class labels"):
        nn.SoftmaxCrossEntropy()(np.zeros((2, 3)), np.array([0, 3]))
