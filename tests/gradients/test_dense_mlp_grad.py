"""fastmlp.nn.mlp.DenseMLP: backward against central finite differences (float64).

The loss is L = sum(R * out) for a fixed random R, so d L / d out = R is what
the caller writes into delta_buffer. Dropout masks are a fixed function of the
seed, so the training forward is a deterministic function of the parameters
and finite differences apply to it as well.
"""
import numpy as np
import pytest

from fastmlp.nn.mlp import DenseMLP


def _loss(eng, X, R, seed):
    bn = [(m.copy(), v.copy()) for m, v in zip(eng.bn_running_mean, eng.bn_running_var)]
    out = eng.forward_train(X, seed)
    val = float(np.sum(R * out))
    for (m, v), dm, dv in zip(bn, eng.bn_running_mean, eng.bn_running_var):
        dm[...] = m         # running statistics must not drift between evaluations
        dv[...] = v
    return val


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("dropout,batch_norm", [(0.0, False), (0.3, False), (0.0, True),
                                                (0.25, True)])
def test_backward_matches_finite_differences(activation, dropout, batch_norm, rng):
    units = [5, 7, 6, 3]
    eng = DenseMLP(units, activation, np.float64, dropout=dropout, batch_norm=batch_norm)
    eng.params[...] = rng.uniform(-0.8, 0.8, eng.params.shape)
    n = 9
    X = rng.standard_normal((n, units[0]))
    R = rng.standard_normal((n, units[-1]))
    seed = 1234
    _loss(eng, X, R, seed)
    eng.delta_buffer(n)[...] = R
    eng.backward()
    analytic = eng.grads.copy()
    numeric = np.empty_like(analytic)
    h = 1e-6
    for j in range(eng.params.shape[0]):
        old = eng.params[j]
        eng.params[j] = old + h
        fp = _loss(eng, X, R, seed)
        eng.params[j] = old - h
        fm = _loss(eng, X, R, seed)
        eng.params[j] = old
        numeric[j] = (fp - fm) / (2 * h)
    if activation in ("relu", "leaky_relu"):
        # a kink crossed by +-h gives a meaningless difference: compare elsewhere
        ok = np.abs(numeric - analytic) <= 1e-5 * (1 + np.abs(numeric))
        assert ok.mean() > 0.97, np.flatnonzero(~ok)
    else:
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)
    # something was actually differentiated
    assert np.abs(analytic).max() > 1e-3


def test_dropout_mask_and_scaling(rng):
    """Dropout zeroes about p of the hidden units and scales the rest by 1/(1-p)."""
    eng = DenseMLP([20, 400, 2], "identity", np.float64, dropout=0.25)
    eng.params[...] = rng.uniform(-1, 1, eng.params.shape)
    X = rng.standard_normal((50, 20))
    eng.forward_train(X, seed=7)
    h = X @ eng.coefs[0] + eng.intercepts[0]
    d = eng._bufs["d"][0][:50]
    kept = d != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(d[kept], h[kept] / 0.75, rtol=1e-12)
    out = eng.forward_train(X, seed=7)
    np.testing.assert_allclose(out, d @ eng.coefs[1] + eng.intercepts[1], rtol=1e-12)
    # another seed, another mask; the same seed, the same mask
    d7 = d.copy()
    eng.forward_train(X, seed=8)
    assert not np.array_equal(eng._bufs["d"][0][:50] != 0, kept)
    eng.forward_train(X, seed=7)
    np.testing.assert_array_equal(eng._bufs["d"][0][:50], d7)


def test_predict_raw_eval_mode_matches_numpy(rng):
    eng = DenseMLP([6, 8, 4], "tanh", np.float64, dropout=0.5, batch_norm=True)
    eng.params[...] = rng.uniform(-1, 1, eng.params.shape)
    eng.bn_running_mean[0][...] = rng.standard_normal(8)
    eng.bn_running_var[0][...] = rng.uniform(0.5, 2, 8)
    X = rng.standard_normal((10, 6))
    z = X @ eng.coefs[0] + eng.intercepts[0]
    zn = (z - eng.bn_running_mean[0]) / np.sqrt(eng.bn_running_var[0] + 1e-5)
    h = np.tanh(zn * eng.bn_gamma[0] + eng.bn_beta[0])
    o = h @ eng.coefs[1] + eng.intercepts[1]
    e = np.exp(o - o.max(1, keepdims=True))
    np.testing.assert_allclose(eng.predict_raw(X, "softmax"), e / e.sum(1, keepdims=True),
                               rtol=1e-12)
