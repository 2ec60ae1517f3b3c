"""Training and inference benchmarks: fastmlp's MLPClassifier against the
NumPy reference trainer (``numpy_reference.NumpyMLP``: the same training as
scikit-learn's MLPClassifier, written as idiomatic NumPy), side by side.

* ``TrainEpoch.time_epoch`` (impl = fastmlp | numpy, threads): one training
  epoch on 12000 x 784 float32 Gaussian blobs (10 classes, seed 0) of
  ``MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd",
  learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=False,
  batch_size=128, alpha=0, random_state=0, max_iter=1)`` -- fresh estimator
  and ``fit`` (fastmlp) or ``NumpyMLP(...).fit_epoch`` (numpy), init included.
  ``TrainEpochRatio.track_ratio_vs_numpy``: NumPy's best time over fastmlp's
  (best of 5 each, interleaved; > 1: fastmlp faster); it also checks that
  both trained the same model (their epoch losses agree).
* ``FitDigits.time_fit`` (impl = fastmlp | numpy | sklearn, threads): a whole
  fit on scikit-learn's digits (1797 x 64, /16, float32):
  ``hidden_layer_sizes=(100,)``, Adam (lr 1e-3, batch "auto" = 200),
  alpha 1e-4, 30 epochs (``n_iter_no_change=30``: never stops early, so all
  three run the same 30 epochs). sklearn = scikit-learn's own MLPClassifier.
* ``Predict.time_predict`` (impl = fastmlp | numpy, rows = 1 | 128, threads):
  ``predict`` latency of a fitted 784-256-128-10 model (one epoch on 1024
  blobs; both implementations reach the same weights).

Threads: ``ThreadsMixin`` (fastmlp.set_num_threads and threadpoolctl's BLAS
limit) in setup, restored in teardown. Data is built in setup (cached per
process). scikit-learn's ConvergenceWarning (max_iter reached) is silenced.

    asv run --python=same --quick --bench bench_train
    asv run --python=same --bench TrainEpoch
"""
import functools
import warnings

import numpy as np

from .common import IMPLS, THREADS, TRACK_REPEATS, ThreadsMixin, wall_time
from .numpy_reference import NumpyMLP

EPOCH_SAMPLES = 12000
N_FEATURES = 784
N_CLASSES = 10

#: The issue's workload (scikit-learn parameters, shared by both implementations).
EPOCH_PARAMS = dict(hidden_layer_sizes=(256, 128), solver="sgd", learning_rate_init=0.05,
                    momentum=0.9, nesterovs_momentum=False, batch_size=128, alpha=0.0,
                    shuffle=True, random_state=0)
DIGITS_PARAMS = dict(hidden_layer_sizes=(100,), solver="adam", learning_rate_init=1e-3,
                     batch_size="auto", alpha=1e-4, shuffle=True, random_state=0)
DIGITS_EPOCHS = 30
ESTIMATOR_EXTRA = dict(early_stopping=False)


@functools.lru_cache(maxsize=2)
def blobs(n_samples, dtype="float32"):
    """Gaussian blobs (as ``python -m fastmlp bench``): n x 784, 10 balanced classes."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.arange(n_samples) % N_CLASSES)
    centers = rng.standard_normal((N_CLASSES, N_FEATURES), dtype=np.float32) * np.float32(0.1)
    X = rng.standard_normal((n_samples, N_FEATURES), dtype=np.float32)
    X += centers[y]
    X = X.astype(dtype, copy=False)
    X.flags.writeable = False
    return X, y


@functools.lru_cache(maxsize=1)
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X.flags.writeable = False
    return X, y


def _quiet(func, *args, **kwargs):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return func(*args, **kwargs)


def fit_fastmlp(X, y, params, epochs):
    import fastmlp

    est = fastmlp.MLPClassifier(**params, **ESTIMATOR_EXTRA, max_iter=epochs,
                                n_iter_no_change=epochs)
    return _quiet(est.fit, X, y)


def fit_sklearn(X, y, params, epochs):
    from sklearn.neural_network._multilayer_perceptron import MLPClassifier

    est = MLPClassifier(**params, **ESTIMATOR_EXTRA, max_iter=epochs, n_iter_no_change=epochs)
    return _quiet(est.fit, X, y)


def fit_numpy(X, y, params, epochs):
    return NumpyMLP(**params).fit(X, y, epochs=epochs)


_FIT = {"fastmlp": fit_fastmlp, "numpy": fit_numpy, "sklearn": fit_sklearn}


class TrainEpoch(ThreadsMixin):
    """One training epoch, fastmlp and NumPy side by side: impl x threads."""

    params = [IMPLS, THREADS]
    param_names = ["impl", "threads"]
    number = 1
    repeat = (2, 6, 20.0)
    warmup_time = 0
    timeout = 600

    def setup(self, impl, threads):
        self.X, self.y = blobs(EPOCH_SAMPLES)
        self.fit = _FIT[impl]
        self._limit_threads(threads, blas=True)

    def teardown(self, impl, threads):
        self._restore_threads()

    def time_epoch(self, impl, threads):
        self.fit(self.X, self.y, EPOCH_PARAMS, 1)


class TrainEpochRatio(ThreadsMixin):
    """fastmlp epoch speed / NumPy reference epoch speed, per thread count."""

    params = [THREADS]
    param_names = ["threads"]
    timeout = 600

    def setup(self, threads):
        self.X, self.y = blobs(EPOCH_SAMPLES)
        self._limit_threads(threads, blas=True)

    def teardown(self, threads):
        self._restore_threads()

    def track_ratio_vs_numpy(self, threads):
        res = {}

        def run(impl):
            res[impl] = _FIT[impl](self.X, self.y, EPOCH_PARAMS, 1)

        t = {"fastmlp": float("inf"), "numpy": float("inf")}
        for _ in range(TRACK_REPEATS):     # interleaved: drifts hit both alike
            for impl in t:
                t[impl] = min(t[impl], wall_time(lambda: run(impl)))
        lf, ln = float(res["fastmlp"].loss_), float(res["numpy"].loss_)
        if not abs(lf - ln) <= 1e-3 * abs(ln):
            raise AssertionError(f"fastmlp and the NumPy reference trained different models: "
                                 f"epoch loss {lf} vs {ln}")
        return t["numpy"] / t["fastmlp"]

    track_ratio_vs_numpy.unit = "x"


class FitDigits(ThreadsMixin):
    """A whole fit (30 Adam epochs) on digits: fastmlp, NumPy reference, scikit-learn."""

    params = [IMPLS + ("sklearn",), THREADS]
    param_names = ["impl", "threads"]
    number = 1
    repeat = (2, 6, 20.0)
    warmup_time = 0
    timeout = 600

    def setup(self, impl, threads):
        self.X, self.y = digits()
        self.fit = _FIT[impl]
        self._limit_threads(threads, blas=True)

    def teardown(self, impl, threads):
        self._restore_threads()

    def time_fit(self, impl, threads):
        self.fit(self.X, self.y, DIGITS_PARAMS, DIGITS_EPOCHS)

    def track_train_accuracy(self, impl, threads):
        """Sanity: training accuracy after the fit (all three should be ~1)."""
        return float(self.fit(self.X, self.y, DIGITS_PARAMS, DIGITS_EPOCHS).score(self.X, self.y))

    track_train_accuracy.unit = "accuracy"


@functools.lru_cache(maxsize=2)
def fitted_model(impl):
    X, y = blobs(1024)
    return _FIT[impl](X, y, EPOCH_PARAMS, 1)


class Predict(ThreadsMixin):
    """predict() latency of a fitted 784-256-128-10 model: impl x rows x threads."""

    params = [IMPLS, [1, 128], THREADS]
    param_names = ["impl", "rows", "threads"]

    def setup(self, impl, rows, threads):
        self.model = fitted_model(impl)
        X, _ = blobs(EPOCH_SAMPLES)
        self.Xb = np.ascontiguousarray(X[:rows])
        self._limit_threads(threads, blas=True)

    def teardown(self, impl, rows, threads):
        self._restore_threads()

    def time_predict(self, impl, rows, threads):
        self.model.predict(self.Xb)
