"""fastmlp: fast CPU multilayer perceptrons.

Hot kernels (BLIS-style GEMM with fused epilogues, and the neural kernels) are
C and Cython with OpenMP, float32 and float64; see ``fastmlp.show_config()``.
"""
from fastmlp._version import __version__
from fastmlp._threads import get_num_threads, set_num_threads, threads
from fastmlp import ops
from fastmlp.ops import matmul
from fastmlp._config import get_config, show_config
from fastmlp._io import load, save
from fastmlp.perceptron import Perceptron
from fastmlp import nn

__all__ = [
    "Perceptron",
    "__version__",
    "get_config",
    "get_num_threads",
    "load",
    "matmul",
    "nn",
    "ops",
    "save",
    "set_num_threads",
    "show_config",
    "threads",
]
