"""fastmlp.save / load of nn models: identical predictions, running stats,
dropout counters, single layers, corrupt files rejected."""
import numpy as np
import pytest

import fastmlp
from fastmlp import nn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roundtrip_identical_predictions(dtype, tmp_path, rng):
    m = nn.Sequential(nn.Linear(5, 8, dtype=dtype, random_state=0), nn.BatchNorm1d(8, dtype=dtype),
                      nn.LeakyReLU(0.2, dtype=dtype), nn.Dropout(0.3, dtype=dtype, random_state=1),
                      nn.Linear(8, 6, init="sklearn", dtype=dtype, random_state=2),
                      nn.LayerNorm(6, dtype=dtype), nn.Tanh(dtype=dtype),
                      nn.Linear(6, 3, dtype=dtype, random_state=3), nn.Softmax(dtype=dtype))
    X = rng.standard_normal((10, 5))
    for _ in range(3):
        m.forward(X)                       # updates running stats and dropout counter
    path = tmp_path / "model.npz"
    fastmlp.save(m, path)
    m2 = fastmlp.load(path)
    assert isinstance(m2, nn.Sequential) and m2.dtype == dtype
    np.testing.assert_array_equal(m2.predict(X), m.predict(X))
    np.testing.assert_array_equal(m2.layers[1].running_var, m.layers[1].running_var)
    assert m2.layers[3].counter == 3
    np.testing.assert_array_equal(m2.forward(X), m.forward(X))      # same next dropout mask
    assert [type(a) for a in m2.layers] == [type(a) for a in m.layers]


def test_single_layer_roundtrip(tmp_path):
    lin = nn.Linear(3, 2, random_state=0)
    fastmlp.save(lin, tmp_path / "lin.npz")
    lin2 = fastmlp.load(tmp_path / "lin.npz")
    assert isinstance(lin2, nn.Linear)
    np.testing.assert_array_equal(lin2.W, lin.W)


def test_corrupt_file_rejected(tmp_path):
    m = nn.Sequential(nn.Linear(4, 3, random_state=0))
    path = tmp_path / "m.npz"
    fastmlp.save(m, path)
    data = bytearray(path.read_bytes())
    i = data.index(b"\x93NUMPY", data.index(b"parameters.npy"))
    data[i + 140] ^= 0xFF                   # flip a byte of the parameter data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt|checksum|CRC"):
        fastmlp.load(path)
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError):
        fastmlp.load(path)


def test_inconsistent_parameters_rejected(tmp_path):
    from fastmlp.nn.layers import Sequential
    m = nn.Sequential(nn.Linear(4, 3, random_state=0))
    params, arrays = m._get_state()
    arrays["parameters"] = arrays["parameters"][:-1]
    with pytest.raises(ValueError, match="parameters"):
        Sequential._from_state(params, arrays)
    params["layers"][0]["type"] = "Conv2d"
    with pytest.raises(ValueError, match="unknown layer"):
        Sequential._from_state(params, m._get_state()[1])
