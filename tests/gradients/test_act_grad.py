"""Central finite differences (float64, h = 1e-6) against every backward of
the activation and loss kernels: activation_backward for each activation and
the gradient each fused loss returns.

The central difference has error ~ h^2 |f'''| / 6 + eps |f| / h ~ 1e-10 for
these smooth functions; points are kept away from the kinks of relu,
leaky_relu, sign and mae, and from the clipping bounds of
binary_cross_entropy, where the derivative does not exist.
"""
import numpy as np
import pytest

from fastmlp import ops

H = 1e-6
NAMES = ["identity", "relu", "leaky_relu", "sigmoid", "logistic", "tanh", "sign"]
KINKED = {"relu", "leaky_relu", "sign"}


def away_from_zero(rng, shape, scale=2.0, gap=1e-3):
    """Normal values with |x| >= gap (a step of H never crosses 0)."""
    x = rng.standard_normal(shape) * scale
    return np.where(np.abs(x) < gap, np.copysign(gap, x) + np.sign(x) * 0.1, x)


@pytest.mark.parametrize("name", NAMES)
def test_activation_backward_vs_finite_differences(rng, name):
    z = rng.standard_normal((17, 9)) * 3
    if name in KINKED:
        z = away_from_zero(rng, (17, 9), 3)
    z[0, :3] = [12.0, -12.0, 0.3]  # tails of sigmoid and tanh
    g = rng.standard_normal(z.shape)
    got = ops.activation_backward(name, z, g, alpha=0.07)
    # element-wise function: perturbing every element at once is exact
    fd = (ops.activation(name, z + H, alpha=0.07) - ops.activation(name, z - H, alpha=0.07)) / (2 * H)
    np.testing.assert_allclose(got, g * fd, rtol=1e-7, atol=1e-9)


def numeric_grad(loss_of, x):
    """d loss / d x by central differences, one element at a time."""
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + H
        up = loss_of(x)
        flat[i] = keep - H
        down = loss_of(x)
        flat[i] = keep
        gflat[i] = (up - down) / (2 * H)
    return grad


def check_loss_grad(func, x, *args, **kwargs):
    loss, grad = func(x, *args, **kwargs)
    fd = numeric_grad(lambda v: func(v, *args, **kwargs)[0], x.copy())
    scale = np.abs(fd).max()
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7 * scale)
    assert func(x, *args, **kwargs)[0] == loss  # deterministic


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_softmax_cross_entropy_labels(rng, weighted):
    z = rng.standard_normal((6, 5)) * 2
    y = rng.integers(0, 5, 6)
    z[0, y[0]] = 25.0  # a confidently right sample (the log1p branch)
    w = rng.uniform(0.2, 3, 6) if weighted else None
    check_loss_grad(ops.softmax_cross_entropy, z, y, w)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_softmax_cross_entropy_probabilities(rng, weighted):
    z = rng.standard_normal((5, 4)) * 2
    t = rng.dirichlet(np.ones(4), 5)
    t[0] *= 1.7  # rows need not sum to 1: grad = T softmax - t
    w = rng.uniform(0.2, 3, 5) if weighted else None
    check_loss_grad(ops.softmax_cross_entropy, z, t, w)


def test_sigmoid_binary_cross_entropy(rng):
    z = rng.standard_normal((7, 3)) * 3
    t = rng.uniform(0, 1, (7, 3))
    check_loss_grad(ops.sigmoid_binary_cross_entropy, z, t)


@pytest.mark.parametrize("eps", [None, 1e-3])
def test_binary_cross_entropy(rng, eps):
    p = rng.uniform(0.05, 0.95, (6, 4))
    t = rng.uniform(0, 1, (6, 4))
    check_loss_grad(ops.binary_cross_entropy, p, t, eps=eps)


def test_mse(rng):
    check_loss_grad(ops.mse, rng.standard_normal((5, 4)), rng.standard_normal((5, 4)))


def test_mae(rng):
    t = rng.standard_normal((5, 4))
    x = t + away_from_zero(rng, (5, 4))
    check_loss_grad(ops.mae, x, t)


def test_poisson(rng):
    raw = rng.standard_normal(30)
    y = rng.poisson(1.5, 30).astype(float)
    check_loss_grad(ops.poisson, raw, y)


def test_column_vector_shapes(rng):
    z = rng.standard_normal((8, 1))
    check_loss_grad(ops.sigmoid_binary_cross_entropy, z, (rng.uniform(size=8) < 0.5) * 1.0)
