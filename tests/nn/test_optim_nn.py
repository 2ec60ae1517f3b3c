"""fastmlp.nn.optim: exact update rules, fused flat-buffer detection, the
per-array fallback, and every optimizer minimising a convex quadratic."""
import numpy as np
import pytest

from fastmlp import nn
from fastmlp.nn import optim


def _model():
    return nn.Sequential(nn.Linear(3, 4, dtype=np.float64, random_state=0), nn.ReLU(dtype=np.float64),
                         nn.Linear(4, 2, dtype=np.float64, random_state=1))


def test_flat_detection():
    m = _model()
    assert optim.SGD(m.parameters(), 0.1).fused
    assert optim.SGD(m.flat_parameters, 0.1).fused
    assert not optim.SGD(m.parameters()[:2], 0.1).fused          # does not cover the buffer
    assert not optim.SGD([np.zeros(3), np.zeros(2)], 0.1).fused


def test_sgd_exact_and_list_grads(rng):
    m = _model()
    p0 = m.flat_parameters.copy()
    g = rng.standard_normal(p0.size)
    opt = optim.SGD(m.parameters(), lr=0.1)
    m.flat_gradients[...] = g
    opt.step(m.gradients())
    np.testing.assert_allclose(m.flat_parameters, p0 - 0.1 * g, rtol=1e-15)
    opt.step(m.flat_gradients)
    np.testing.assert_allclose(m.flat_parameters, p0 - 0.2 * g, rtol=1e-14)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_nesterov_exact(nesterov, rng):
    p = rng.standard_normal(10)
    ref, v = p.copy(), np.zeros(10)
    opt = optim.SGD(p, lr=0.05, momentum=0.9, nesterov=nesterov)
    for _ in range(4):
        g = rng.standard_normal(10)
        opt.step(g)
        v = 0.9 * v - 0.05 * g
        ref = ref + (0.9 * v - 0.05 * g if nesterov else v)
        np.testing.assert_allclose(p, ref, rtol=1e-13, atol=1e-15)


def test_adam_exact(rng):
    p = rng.standard_normal(10)
    ref, m, v = p.copy(), np.zeros(10), np.zeros(10)
    opt = optim.Adam(p, lr=0.01)
    for t in range(1, 6):
        g = rng.standard_normal(10)
        opt.step(g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref = ref - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-15)
    assert opt.t == 5


def test_fallback_per_array_equals_fused(rng):
    m1, m2 = _model(), _model()
    o1 = optim.Adam(m1.parameters(), lr=0.01)
    o2 = optim.Adam([p.copy() for p in m2.parameters()], lr=0.01)
    assert o1.fused and not o2.fused
    for _ in range(3):
        g = rng.standard_normal(m1.flat_parameters.size)
        m1.flat_gradients[...] = g
        o1.step(m1.gradients())
        m2.flat_gradients[...] = g
        o2.step(m2.gradients())
    np.testing.assert_allclose(np.concatenate([p.ravel() for p in o2.params]),
                               m1.flat_parameters, rtol=1e-14)


def test_lr_settable(rng):
    p = np.ones(3)
    opt = optim.SGD(p, lr=1.0)
    opt.lr = 0.5
    opt.step(np.ones(3))
    np.testing.assert_array_equal(p, 0.5)


@pytest.mark.parametrize("make,steps", [
    (lambda p: optim.SGD(p, 0.1), 300), (lambda p: optim.SGD(p, 0.05, momentum=0.9), 300),
    (lambda p: optim.SGD(p, 0.05, momentum=0.9, nesterov=True), 300),
    (lambda p: optim.Adagrad(p, 0.5), 500), (lambda p: optim.Adadelta(p, 1.0), 3000),
    (lambda p: optim.RMSprop(p, 0.01), 1500), (lambda p: optim.Adam(p, 0.05), 1000),
    (lambda p: optim.AMSGrad(p, 0.05), 1000), (lambda p: optim.AdamW(p, 0.05, weight_decay=0.0), 1000),
    (lambda p: optim.AdaMax(p, 0.05), 1000)],
    ids=["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "amsgrad",
         "adamw", "adamax"])
def test_minimises_convex_quadratic(make, steps):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    H = A @ A.T / 6 + np.eye(6)           # SPD Hessian
    x_star = rng.standard_normal(6)
    p = np.zeros(6)
    opt = make(p)
    f0 = 0.5 * (p - x_star) @ H @ (p - x_star)
    for _ in range(steps):
        opt.step(H @ (p - x_star))
    f = 0.5 * (p - x_star) @ H @ (p - x_star)
    assert f < 1e-3 * f0, (f, f0)


def test_errors():
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(np.zeros(2), 0.1, nesterov=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.get_optimizer("lbfgs", [np.zeros(2)])
    opt = optim.SGD([np.zeros(2), np.zeros(3)], 0.1)
    with pytest.raises(ValueError, match="gradients"):
        opt.step([np.zeros(2)])
