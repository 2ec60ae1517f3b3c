"""Central finite differences (float64) for every nn layer, loss and for
whole models, through fastmlp.nn.check_gradients and directly."""
import numpy as np
import pytest

from fastmlp import nn

F64 = np.float64


def _data(rng, n=7, d=5, k=3):
    X = rng.standard_normal((n, d))
    y = rng.integers(0, k, n)
    return X, y


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(5, 3, dtype=F64, random_state=0),
    lambda: nn.Linear(5, 3, bias=False, init="glorot", dtype=F64, random_state=1),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0), nn.ReLU(dtype=F64),
                          nn.Linear(4, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0),
                          nn.LeakyReLU(0.1, dtype=F64), nn.Linear(4, 3, dtype=F64,
                                                                  random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0), nn.Sigmoid(dtype=F64),
                          nn.Linear(4, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0), nn.Tanh(dtype=F64),
                          nn.Linear(4, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0), nn.Tanh(dtype=F64),
                          nn.Linear(4, 3, dtype=F64, random_state=1), fuse=False),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0),
                          nn.BatchNorm1d(4, dtype=F64), nn.ReLU(dtype=F64),
                          nn.Linear(4, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 4, dtype=F64, random_state=0),
                          nn.LayerNorm(4, dtype=F64), nn.Tanh(dtype=F64),
                          nn.Linear(4, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 6, dtype=F64, random_state=0), nn.Sigmoid(dtype=F64),
                          nn.Dropout(0.3, dtype=F64, random_state=3),
                          nn.Linear(6, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Tanh(dtype=F64), nn.Identity(dtype=F64),
                          nn.Linear(5, 3, dtype=F64, random_state=1)),
    lambda: nn.Sequential(nn.Linear(5, 3, dtype=F64, random_state=1), nn.Softmax(dtype=F64)),
], ids=["linear", "linear-nobias", "relu", "leaky", "sigmoid", "tanh-fused", "tanh-unfused",
        "batchnorm", "layernorm", "dropout", "act-first", "softmax"])
def test_model_gradients_cross_entropy(make, rng):
    X, y = _data(rng)
    model = make()
    loss = nn.MSELoss() if isinstance(model, nn.Sequential) and \
        isinstance(model.layers[-1], nn.Softmax) else nn.SoftmaxCrossEntropy()
    yy = np.eye(3)[y] if isinstance(loss, nn.MSELoss) else y
    err = nn.check_gradients(model, loss, X, yy)
    assert err < 1e-5, err


@pytest.mark.parametrize("loss,target", [
    (nn.MSELoss(), "real"), (nn.MAELoss(), "real"), (nn.BinaryCrossEntropy(), "binary"),
    (nn.SoftmaxCrossEntropy(), "labels"), (nn.SoftmaxCrossEntropy(), "onehot")])
def test_losses_finite_differences(loss, target, rng):
    pred = rng.standard_normal((6, 3))
    if target == "real":
        y = rng.standard_normal((6, 3))
    elif target == "binary":
        y = rng.integers(0, 2, (6, 3)).astype(float)
    elif target == "labels":
        y = rng.integers(0, 3, 6)
    else:
        y = np.eye(3)[rng.integers(0, 3, 6)]
    _, g = loss(pred, y)
    num = np.empty_like(pred)
    eps = 1e-6
    for i in np.ndindex(pred.shape):
        p = pred.copy()
        p[i] += eps
        fp = loss(p, y)[0]
        p[i] -= 2 * eps
        fm = loss(p, y)[0]
        num[i] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)


def test_check_gradients_detects_a_wrong_backward(rng):
    X, y = _data(rng)
    model = nn.Sequential(nn.Linear(5, 3, dtype=F64, random_state=0))
    lin = model.layers[0]
    orig = lin.backward

    def wrong(g, need_input_grad=True):
        gx = orig(g, need_input_grad)
        lin.dW *= 1.01
        return gx
    lin.backward = wrong
    assert nn.check_gradients(model, nn.SoftmaxCrossEntropy(), X, y) > 1e-3


def test_check_gradients_float32_model_runs_in_float64(rng):
    X, y = _data(rng)
    model = nn.Sequential(nn.Linear(5, 4, random_state=0), nn.Tanh(), nn.Linear(4, 3,
                                                                                 random_state=1))
    before = model.flat_parameters.copy()
    assert nn.check_gradients(model, "cross_entropy", X, y) < 1e-5
    np.testing.assert_array_equal(model.flat_parameters, before)
