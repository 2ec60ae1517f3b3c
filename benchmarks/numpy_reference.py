"""The NumPy reference trainer the training benchmarks are measured against:
scikit-learn's MLPClassifier training (relu, softmax, log-loss, L2, SGD with
momentum/Nesterov, Adam; scikit-learn's init, shuffling and batches) as
idiomatic NumPy. See fastmlp/_numpy_mlp.py for the semantics and how it is
written; tests/test_numpy_reference.py checks it against scikit-learn.

One implementation only: this module loads ``fastmlp/_numpy_mlp.py`` of this
checkout by file path (it imports NumPy and scikit-learn, never fastmlp) and
re-exports it. Loading it from the checkout rather than from the installed
fastmlp keeps the baseline identical when asv benchmarks other commits of
fastmlp (``asv continuous``), including commits older than the file. Where the
file is absent (benchmarks copied elsewhere) the installed module is used.

    from benchmarks.numpy_reference import NumpyMLP
    ref = NumpyMLP(hidden_layer_sizes=(256, 128), solver="sgd", learning_rate_init=0.05,
                   momentum=0.9, nesterovs_momentum=False, alpha=0.0, batch_size=128,
                   random_state=0)
    ref.fit_epoch(X, y); ref.predict(X)
"""
import importlib.util
import os
import sys

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fastmlp",
                       "_numpy_mlp.py")
_NAME = "_fastmlp_numpy_mlp_checkout"


def _load():
    if not os.path.exists(_SOURCE):
        from fastmlp import _numpy_mlp
        return _numpy_mlp
    mod = sys.modules.get(_NAME)
    if mod is None:
        spec = importlib.util.spec_from_file_location(_NAME, _SOURCE)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[_NAME] = mod
    return mod


_impl = _load()
NumpyMLP = _impl.NumpyMLP
SOURCE = _impl.__file__

__all__ = ["NumpyMLP", "SOURCE"]
