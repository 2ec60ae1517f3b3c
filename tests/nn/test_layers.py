"""fastmlp.nn layers and Sequential: values against NumPy references, flat
buffers, fusion, dropout seeding, buffers, errors."""
import numpy as np
import pytest

from fastmlp import nn


def _mlp(dtype=np.float64, fuse=True):
    return nn.Sequential(nn.Linear(4, 6, dtype=dtype, random_state=0), nn.ReLU(dtype=dtype),
                         nn.Linear(6, 5, dtype=dtype, random_state=1), nn.Tanh(dtype=dtype),
                         nn.Linear(5, 3, dtype=dtype, random_state=2), fuse=fuse)


def test_linear_forward_backward_reference(rng):
    lin = nn.Linear(5, 3, dtype=np.float64, random_state=0)
    X = rng.standard_normal((7, 5))
    y = lin.forward(X)
    np.testing.assert_allclose(y, X @ lin.W + lin.b, rtol=1e-12)
    g = rng.standard_normal((7, 3))
    gx = lin.backward(g)
    np.testing.assert_allclose(gx, g @ lin.W.T, rtol=1e-12)
    np.testing.assert_allclose(lin.dW, X.T @ g, rtol=1e-12)
    np.testing.assert_allclose(lin.db, g.sum(0), rtol=1e-12)
    assert lin.gradients()[0] is lin.dW


@pytest.mark.parametrize("init", ["he", "glorot", "lecun", "sklearn", "sklearn_logistic"])
def test_linear_init(init):
    lin = nn.Linear(300, 200, init=init, random_state=0, dtype=np.float64)
    W = lin.W
    if init == "he":
        assert abs(W.std() - np.sqrt(2 / 300)) < 0.01 * np.sqrt(2 / 300) * 3
    elif init == "lecun":
        assert abs(W.std() - np.sqrt(1 / 300)) < 0.03 * np.sqrt(1 / 300)
    else:
        f = 2.0 if init == "sklearn_logistic" else 6.0
        bound = np.sqrt(f / 500)
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    if init.startswith("sklearn"):
        rs = np.random.RandomState(0)
        bound = np.sqrt((2.0 if init == "sklearn_logistic" else 6.0) / 500)
        np.testing.assert_array_equal(W, rs.uniform(-bound, bound, (300, 200)))
        np.testing.assert_array_equal(lin.b, rs.uniform(-bound, bound, 200))
    else:
        assert not lin.b.any()
    assert lin.W.dtype == np.float64
    np.testing.assert_array_equal(nn.Linear(300, 200, init=init, random_state=0).W,
                                  W.astype(np.float32))


@pytest.mark.parametrize("activation,init", [("relu", "sklearn"),
                                               ("logistic", "sklearn_logistic")])
def test_sklearn_init_matches_mlpclassifier(activation, init):
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(activation=activation)
    clf._random_state = np.random.RandomState(0)
    coef, intercept = clf._init_coef(4, 7, np.float64)
    lin = nn.Linear(4, 7, init=init, random_state=np.random.RandomState(0), dtype=np.float64)
    np.testing.assert_array_equal(lin.W, coef)
    np.testing.assert_array_equal(lin.b, intercept)


@pytest.mark.parametrize("cls,ref", [
    (nn.ReLU, lambda z: np.maximum(z, 0)), (nn.Sigmoid, lambda z: 1 / (1 + np.exp(-z))),
    (nn.Tanh, np.tanh), (nn.Identity, lambda z: z),
    (lambda dtype: nn.LeakyReLU(0.2, dtype=dtype), lambda z: np.where(z < 0, 0.2 * z, z))])
def test_activation_layers(cls, ref, rng):
    layer = cls(dtype=np.float64)
    z = rng.standard_normal((6, 4))
    np.testing.assert_allclose(layer.forward(z), ref(z), rtol=1e-12)
    assert layer.parameters() == [] and layer.gradients() == []


def test_softmax_layer(rng):
    z = rng.standard_normal((5, 4))
    y = nn.Softmax(dtype=np.float64).forward(z)
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(1, keepdims=True), rtol=1e-12)


def test_flat_buffers_are_shared_views():
    m = _mlp()
    ps, gs = m.parameters(), m.gradients()
    assert len(ps) == 6 and len(gs) == 6
    assert sum(p.size for p in ps) == m.flat_parameters.size == m.n_parameters
    for p, g in zip(ps, gs):
        assert p.base is m.flat_parameters and g.base is m.flat_gradients
        assert p.shape == g.shape
    m.flat_parameters[...] = 0.5
    assert (m.layers[0].W == 0.5).all() and (m.layers[-1].b == 0.5).all()


def test_sequential_keeps_layer_values():
    lin = nn.Linear(3, 2, random_state=0)
    W = lin.W.copy()
    m = nn.Sequential(lin, nn.ReLU())
    np.testing.assert_array_equal(m.layers[0].W, W)
    assert lin.W.base is m.flat_parameters


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_unfused(dtype, rng):
    a, b = _mlp(dtype, True), _mlp(dtype, False)
    X = rng.standard_normal((9, 4))
    ya, yb = a.forward(X), b.forward(X)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ya, yb, rtol=tol, atol=tol)
    g = rng.standard_normal(ya.shape)
    np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(a.flat_gradients, b.flat_gradients, rtol=tol * 10, atol=tol)
    assert ya.dtype == dtype
    assert len(a._plan) == 3 and len(b._plan) == 5


def test_training_buffers_reused_eval_fresh(rng):
    m = _mlp()
    X = rng.standard_normal((8, 4))
    y1 = m.forward(X)
    y2 = m.forward(X)
    assert y1 is y2                      # cached buffer in training
    p1, p2 = m.predict(X), m.predict(X)
    assert p1 is not p2
    np.testing.assert_array_equal(p1, y1)
    g = np.ones_like(y1)
    assert m.backward(g) is m.backward(g)


def test_dropout_masks_differ_and_reproduce(rng):
    X = np.ones((50, 40))
    d = nn.Dropout(0.5, dtype=np.float64, random_state=7)
    a = d.forward(X).copy()
    b = d.forward(X).copy()
    assert not np.array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 2.0}
    assert 0.4 < (a == 0).mean() < 0.6
    d2 = nn.Dropout(0.5, dtype=np.float64, random_state=7)
    np.testing.assert_array_equal(d2.forward(X), a)
    np.testing.assert_array_equal(d2.forward(X), b)
    np.testing.assert_array_equal(d2.backward(np.ones_like(X)), b)
    np.testing.assert_array_equal(d.forward(X, training=False), X)
    assert d.counter == 2


def test_batchnorm_running_stats_and_eval(rng):
    bn = nn.BatchNorm1d(3, momentum=0.5, dtype=np.float64)
    X = rng.standard_normal((10, 3)) * 3 + 1
    y = bn.forward(X)
    np.testing.assert_allclose(y, (X - X.mean(0)) / np.sqrt(X.var(0) + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean, 0.5 * X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * X.var(0, ddof=1), rtol=1e-12)
    ye = bn.forward(X, training=False)
    np.testing.assert_allclose(ye, (X - bn.running_mean) / np.sqrt(bn.running_var + 1e-5),
                               rtol=1e-10)


def test_layernorm_values(rng):
    ln = nn.LayerNorm(5, dtype=np.float64)
    X = rng.standard_normal((4, 5))
    ref = (X - X.mean(1, keepdims=True)) / np.sqrt(X.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln.forward(X), ref, rtol=1e-10)


def test_nested_sequential_flattened():
    inner = nn.Sequential(nn.Linear(3, 4, random_state=0), nn.ReLU())
    m = nn.Sequential(inner, nn.Linear(4, 2, random_state=1))
    assert len(m) == 3 and m.n_parameters == 3 * 4 + 4 + 4 * 2 + 2


def test_astype_copies(rng):
    m = _mlp(np.float32)
    m64 = m.astype(np.float64)
    assert m64.dtype == np.float64
    np.testing.assert_array_equal(m64.flat_parameters, m.flat_parameters.astype(np.float64))
    X = rng.standard_normal((5, 4))
    np.testing.assert_allclose(m64.predict(X), m.predict(X), rtol=1e-4, atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="same dtype"):
        nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype=np.float64))
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(2, 2, init="xavier")
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)
    with pytest.raises(ValueError, match=">= 1"):
        nn.Linear(0, 2)
    with pytest.raises(ValueError, match="out of range"):
        nn.Dropout(1.0)
    with pytest.raises(TypeError, match="Layer"):
        nn.Sequential(np.eye(2))
    with pytest.raises(ValueError, match="not aligned"):
        nn.Linear(3, 2).forward(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Linear(3, 2).backward(np.ones((2, 2)))
