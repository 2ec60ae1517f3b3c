"""fastmlp.nn.fit: history, validation, early stopping, callbacks, schedules,
reproducibility, errors."""
import numpy as np
import pytest

from fastmlp import nn


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    return X, y


def _model(seed=0):
    return nn.Sequential(nn.Linear(4, 16, random_state=seed), nn.ReLU(),
                         nn.Linear(16, 2, random_state=seed + 1))


def test_history_and_learning():
    X, y = _data()
    h = nn.fit(_model(), X, y, loss="cross_entropy", optimizer="adam", learning_rate=0.01,
               epochs=15, validation_fraction=0.2, random_state=0, verbose=0)
    assert len(h["loss"]) == len(h["val_loss"]) == len(h["val_score"]) == 15
    assert h["loss"][-1] < h["loss"][0]
    assert h["val_score"][-1] > 0.8


def test_reproducible_with_dropout():
    X, y = _data()

    def run():
        m = nn.Sequential(nn.Linear(4, 16, random_state=0), nn.ReLU(),
                          nn.Dropout(0.2, random_state=1), nn.Linear(16, 2, random_state=2))
        nn.fit(m, X, y, loss="cross_entropy", epochs=3, random_state=5, verbose=0)
        return m.flat_parameters.copy()
    np.testing.assert_array_equal(run(), run())


def test_early_stopping_restores_best():
    X, y = _data()
    Xv, yv = _data(50, seed=1)
    snapshots = []
    m = _model()

    def cb(epoch, logs):
        snapshots.append((logs["val_loss"], m.flat_parameters.copy()))
    h = nn.fit(m, X, y, loss="cross_entropy", optimizer="sgd", learning_rate=0.5,
               epochs=200, validation_data=(Xv, yv), early_stopping=True, patience=3,
               callbacks=[cb], random_state=0, verbose=0)
    assert len(h["loss"]) < 200
    best = int(np.argmin([s[0] for s in snapshots]))
    assert h["best_epoch"] == best
    np.testing.assert_array_equal(m.flat_parameters, snapshots[best][1])


def test_callback_stops_and_schedule_drives_lr():
    X, y = _data()
    h = nn.fit(_model(), X, y, loss="cross_entropy", epochs=10, verbose=0,
               lr_schedule=nn.StepLR(0.1, step_size=1, gamma=0.5),
               callbacks=[lambda e, logs: e == 3])
    assert len(h["loss"]) == 4
    np.testing.assert_allclose(h["lr"], [0.1, 0.05, 0.025, 0.0125])


def test_regression_r2_and_noise():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    m = nn.Sequential(nn.Linear(3, 1, dtype=np.float64, random_state=0))
    h = nn.fit(m, X, y[:, None], loss=nn.MSELoss(), optimizer="sgd", learning_rate=0.05,
               epochs=30, validation_fraction=0.2, noise_std=0.01, random_state=0, verbose=0)
    assert h["val_score"][-1] > 0.99


def test_verbose_progress_bar(capsys):
    X, y = _data(64)
    nn.fit(_model(), X, y, loss="cross_entropy", epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert "loss=" in err


def test_errors():
    X, y = _data(20)
    with pytest.raises(ValueError, match="epochs"):
        nn.fit(_model(), X, y, loss="cross_entropy", epochs=0, verbose=0)
    with pytest.raises(ValueError, match="samples"):
        nn.fit(_model(), X, y[:5], loss="cross_entropy", verbose=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        nn.fit(_model(), X, y, loss="cross_entropy", optimizer="lbfgs", verbose=0)
    with pytest.raises(ValueError, match="not both"):
        nn.fit(_model(), X, y, loss="cross_entropy", validation_data=(X, y),
               validation_fraction=0.2, verbose=0)
