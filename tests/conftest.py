"""Shared pytest fixtures (fixtures only: no helpers, no sys.path changes)."""
import zlib

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def restore_threads():
    """Put fastmlp's thread settings back as they were after every test.

    Tests change the process-wide request (set_num_threads) and OpenMP's
    nthreads ICV of the main thread; neither may leak into the next test.
    """
    from fastmlp import _threads
    from fastmlp._core import _runtime

    saved_requested = _threads._requested
    saved_omp = _runtime.omp_max_threads()
    yield
    _threads._restore(saved_requested, saved_omp)


@pytest.fixture
def rng(request):
    """A NumPy Generator seeded from the test's id, so failures reproduce."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
