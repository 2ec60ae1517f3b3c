"""Central finite differences in float64 for the backward passes of
linear_backward, dropout_backward, batch_norm_backward and layer_norm_backward.

Each check builds the scalar L = sum(f(inputs) * R) for a random R, so that the
analytic gradients are the backward pass applied to grad_y = R, and compares
every entry with (L(v + h) - L(v - h)) / (2h). With h = 1e-5 the truncation
error is O(h^2) ~ 1e-10 relative and the rounding error O(eps / h) ~ 1e-11, so a
tolerance of 1e-6 (relative to the gradient's scale) catches any wrong term.
"""
import numpy as np
import pytest

from fastmlp import ops

H = 1e-5


def numeric_grad(loss, v):
    """d loss / d v by central differences, v modified in place and restored."""
    g = np.zeros_like(v)
    it = np.nditer(v, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = v[i]
        v[i] = old + H
        up = loss()
        v[i] = old - H
        down = loss()
        v[i] = old
        g[i] = (up - down) / (2 * H)
    return g


def assert_grad(analytic, numeric, what):
    scale = max(1.0, float(np.abs(numeric).max()))
    err = float(np.abs(analytic - numeric).max())
    assert err <= 1e-6 * scale, f"{what}: max error {err:.3g} (scale {scale:.3g})"


@pytest.fixture
def data(rng):
    return lambda *shape: rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 4, 3), (7, 2, 6)],
                         ids=lambda s: "x".join(map(str, s)))
def test_linear_backward_fd(data, shape):
    n, n_in, n_out = shape
    x, w, b, r = data(n, n_in), data(n_in, n_out), data(n_out), data(n, n_out)

    def loss():
        return float((ops.linear(x, w, b) * r).sum())

    gx, gw, gb = ops.linear_backward(x, w, r)
    assert_grad(gx, numeric_grad(loss, x), "grad_x")
    assert_grad(gw, numeric_grad(loss, w), "grad_w")
    assert_grad(gb, numeric_grad(loss, b), "grad_b")


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_backward_fd(data, p):
    x, r = data(6, 7), data(6, 7)

    def loss():
        return float((ops.dropout(x, p, seed=1234) * r).sum())

    gx = ops.dropout_backward(r, p, seed=1234)
    num = numeric_grad(loss, x)
    assert_grad(gx, num, "grad_x")
    assert np.count_nonzero(num) not in (0, num.size)  # the mask really drops some


@pytest.mark.parametrize("shape", [(2, 1), (5, 3), (9, 4)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_backward_fd(data, shape, training):
    n, c = shape
    x, gamma, beta, r = data(n, c) * 2 + 1, data(c), data(c), data(n, c)
    rm, rv = data(c), np.abs(data(c)) + 0.5

    def loss():
        y, _ = ops.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                                      eps=1e-3)
        return float((y * r).sum())

    _, cache = ops.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training=training,
                                      eps=1e-3)
    gx, gg, gb = ops.batch_norm_backward(r, cache)
    assert_grad(gx, numeric_grad(loss, x), "grad_x")
    assert_grad(gg, numeric_grad(loss, gamma), "grad_gamma")
    assert_grad(gb, numeric_grad(loss, beta), "grad_beta")


@pytest.mark.parametrize("shape", [(1, 2), (4, 5), (3, 11)], ids=lambda s: "x".join(map(str, s)))
def test_layer_norm_backward_fd(data, shape):
    n, c = shape
    x, gamma, beta, r = data(n, c) * 2 - 1, data(c), data(c), data(n, c)

    def loss():
        y, _ = ops.layer_norm_forward(x, gamma, beta, eps=1e-3)
        return float((y * r).sum())

    _, cache = ops.layer_norm_forward(x, gamma, beta, eps=1e-3)
    gx, gg, gb = ops.layer_norm_backward(r, cache)
    assert_grad(gx, numeric_grad(loss, x), "grad_x")
    assert_grad(gg, numeric_grad(loss, gamma), "grad_gamma")
    assert_grad(gb, numeric_grad(loss, beta), "grad_beta")
