"""fastmlp: fast CPU multilayer perceptrons.

Hot kernels (BLIS-style GEMM with fused epilogues, and the neural kernels) are
C and Cython with OpenMP, float32 and float64; see ``fastmlp.show_config()``.
"""
from fastmlp._version import __version__
from fastmlp._core import _gemm as _gemm_core

# FASTMLP_KERNEL=avx512|avx2|ref forces one kernel family; one this build or
# this CPU cannot run is an error here, never a silent fallback or a fault.
if _gemm_core.arch_env_error() is not None:
    raise RuntimeError(_gemm_core.arch_env_error())
from fastmlp._threads import get_num_threads, set_num_threads, threads
from fastmlp import ops
from fastmlp.ops import matmul
from fastmlp._config import get_config, show_config
from fastmlp._io import load, save
from fastmlp import nn

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "Perceptron",
    "__version__",
    "get_config",
    "get_num_threads",
    "load",
    "matmul",
    "nn",
    "ops",
    "patch_sklearn",
    "save",
    "set_num_threads",
    "show_config",
    "sklearn_is_patched",
    "threads",
    "unpatch_sklearn",
]

# Estimators built on scikit-learn's base classes are imported on first use
# (``fastmlp.Perceptron``, ``from fastmlp import Perceptron``), so that
# ``import fastmlp`` does not pay for importing scikit-learn.
_LAZY = {"Perceptron": "fastmlp.perceptron",
         "MLPClassifier": "fastmlp.sklearn", "MLPRegressor": "fastmlp.sklearn",
         "patch_sklearn": "fastmlp.sklearn", "unpatch_sklearn": "fastmlp.sklearn",
         "sklearn_is_patched": "fastmlp.sklearn"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
