"""Interruption: an exception or a KeyboardInterrupt in the middle of fit
leaves the estimator refittable (fitting it again gives exactly what a fresh
estimator gives), and Ctrl-C stops a long fit promptly -- the compiled
kernels run one batch at a time and return to Python between batches.

scikit-learn's MLP training loop catches KeyboardInterrupt, warns "Training
interrupted by user." and returns the partly trained estimator; fastmlp's
estimators keep that behaviour. fastmlp.nn.fit lets KeyboardInterrupt
propagate (closing its progress bar), like a PyTorch training loop.

The interruptions are delivered as signals whose Python handlers run in the
main thread between bytecodes -- wherever the training loop happens to be --
so the tests depend only on public behaviour, not on which kernels fit calls.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import nn

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="POSIX signals")


class Boom(Exception):
    pass


def _raise_boom(signum, frame):
    raise Boom("interrupted by a test signal")


def _raise_kbi(signum, frame):
    raise KeyboardInterrupt


def _interrupt_after(seconds, handler):
    """Arm SIGALRM to run `handler` in the main thread after `seconds`."""
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return old


def _disarm(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def one_thread():
    # The interruption semantics do not depend on the thread count; one thread
    # keeps these many small-batch fits fast on a loaded machine.
    with fastmlp.threads(1):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((512, 32)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + 0.3 * X[:, 2] ** 2 > 0).astype(int)
    return X, y


# A fit that would run for minutes: every epoch is a full pass (tol=0 never
# stops early), so the signal always lands inside training.
LONG = dict(hidden_layer_sizes=(256, 64), max_iter=100000, tol=0.0, n_iter_no_change=100000,
            batch_size=32, random_state=3)
SHORT = dict(max_iter=8)


def _same(a, b):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert x.tobytes() == y.tobytes()
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == b.n_iter_ and a.t_ == b.t_


@pytest.mark.parametrize("solver,delay", [("adam", 0.15), ("sgd", 0.4)])
def test_exception_mid_fit_leaves_estimator_refittable(data, solver, delay):
    X, y = data
    est = fastmlp.MLPClassifier(solver=solver, **LONG)
    old = _interrupt_after(delay, _raise_boom)
    try:
        with pytest.raises(Boom):
            est.fit(X, y)
    finally:
        _disarm(old)
    est.set_params(**SHORT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        fresh = fastmlp.MLPClassifier(solver=solver, **dict(LONG, **SHORT)).fit(X, y)
    _same(est, fresh)
    assert est.score(X, y) > 0.7


@pytest.mark.parametrize("cls", ["MLPClassifier", "MLPRegressor"])
def test_keyboard_interrupt_mid_fit_warns_and_leaves_estimator_refittable(data, cls):
    X, y = data
    target = y if cls == "MLPClassifier" else X[:, 0] - X[:, 1]
    est = getattr(fastmlp, cls)(**LONG)
    old = _interrupt_after(0.3, _raise_kbi)
    try:
        with pytest.warns(UserWarning, match="Training interrupted by user"):
            est.fit(X, target)          # scikit-learn's behaviour: warn and return
    finally:
        _disarm(old)
    assert est.n_iter_ < LONG["max_iter"]       # it stopped early (the full fit takes hours)
    assert all(np.isfinite(c).all() for c in est.coefs_)
    assert np.isfinite(est.predict(X)).all()  # the partly trained estimator is usable
    est.set_params(**SHORT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, target)
        fresh = getattr(fastmlp, cls)(**dict(LONG, **SHORT)).fit(X, target)
    _same(est, fresh)


def _seq():
    return nn.Sequential(nn.Linear(32, 128, random_state=0), nn.ReLU(),
                         nn.Dropout(0.1, random_state=1), nn.Linear(128, 2, random_state=2))


def test_nn_fit_exception_from_callback_and_kbi_propagate(data):
    X, y = data
    calls = []

    def stop_at_second_epoch(epoch, logs):
        calls.append(epoch)
        if epoch == 1:
            raise Boom("from a callback")

    model = _seq()
    with pytest.raises(Boom, match="from a callback"):
        nn.fit(model, X, y, loss="cross_entropy", epochs=10, callbacks=[stop_at_second_epoch],
               random_state=0, verbose=0)
    assert calls == [0, 1]
    # the model is usable and training it again works (continues from its weights)
    hist = nn.fit(model, X, y, loss="cross_entropy", epochs=2, random_state=0, verbose=0)
    assert np.isfinite(hist["loss"]).all()
    assert np.mean(np.argmax(model.predict(X), axis=1) == y) > 0.7

    model = _seq()
    old = _interrupt_after(0.2, _raise_kbi)
    try:
        with pytest.raises(KeyboardInterrupt):
            nn.fit(model, X, y, loss="cross_entropy", epochs=100000, batch_size=16,
                   random_state=0, verbose=0)
    finally:
        _disarm(old)
    assert np.isfinite(model.flat_parameters).all()
    assert model.predict(X).shape == (512, 2)


# ---------------------------------------------------------------- Ctrl-C on a big model

SIGINT_SCRIPT = textwrap.dedent("""
    import sys, time, warnings
    import numpy as np
    import fastmlp
    import fastmlp.sklearn          # (imported before the signal can come)
    from fastmlp import nn
    which = sys.argv[1]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8192, 784)).astype(np.float32)
    y = rng.integers(0, 10, 8192)
    print("fitting", flush=True)
    t0 = time.perf_counter()
    if which == "estimator":
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            clf = fastmlp.MLPClassifier(hidden_layer_sizes=(1024, 1024), max_iter=100000,
                                        tol=0.0, n_iter_no_change=100000, batch_size=256,
                                        random_state=0).fit(X, y)
        print("returned", clf.n_iter_, [str(m.message) for m in w], flush=True)
    else:
        model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                              nn.Linear(1024, 10))
        try:
            nn.fit(model, X, y, loss="cross_entropy", epochs=100000, batch_size=256, verbose=0)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", flush=True)
            raise
""")


@pytest.mark.parametrize("which", ["estimator", "nn"])
def test_sigint_stops_a_big_fit_promptly(tmp_path, which):
    script = tmp_path / "big_fit.py"
    script.write_text(SIGINT_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.Popen([sys.executable, str(script), which], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "fitting"
        time.sleep(2.0)                      # well inside the training loop
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        # A fit that is not stopped runs for hours; a generous bound (not a
        # speed check): the process must be done well within it.
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the fit did not stop within 60 s of SIGINT")
    if which == "estimator":
        assert proc.returncode == 0, err[-3000:]
        assert out.startswith("returned") and "Training interrupted by user." in out, out
    else:
        assert proc.returncode != 0 and "KeyboardInterrupt" in out, (out, err[-3000:])
        assert "KeyboardInterrupt" in err and "Segmentation" not in err
