"""Thread control for fastmlp's OpenMP kernels.

Design: the number of threads is passed explicitly to every kernel call (as
scikit-learn does) and read here at call time:

* by default it is OpenMP's ``omp_get_max_threads()``, which honours
  ``OMP_NUM_THREADS`` and is what ``threadpoolctl.threadpool_limits(n,
  user_api="openmp")`` changes, so both limit fastmlp;
* ``set_num_threads(n)`` / ``threads(n)`` set it (and OpenMP's default for
  the calling thread). The most recent setting wins: a threadpoolctl limit
  entered after it caps it, an explicit ``threads(n)`` inside a threadpoolctl
  block overrides the limit until the block ends.

Results never depend on the thread count (kernels split work on fixed block
boundaries and never split a reduction by thread), so this is a speed knob only.
"""
import contextlib
import operator
import os
import threading

from fastmlp._core import _runtime

_lock = threading.Lock()
_MAX_THREADS = 1 << 12
_requested = None  # process-wide setting of set_num_threads, None = OpenMP default


def _check_n(n):
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}") from None
    if n == -1:
        return _runtime.omp_num_procs()
    if n < 1 or n > _MAX_THREADS:
        raise ValueError(f"number of threads must be in [1, {_MAX_THREADS}] "
                         f"(or -1 for all cores), got {n}")
    return n


# Fork safety. GNU libgomp's thread pool does not survive fork(): a child
# process that enters a parallel region after its parent ran one hangs. So
# once fastmlp may have started an OpenMP team (a thread count > 1 was handed
# to a kernel), a forked child runs every kernel on one thread. Children of
# spawn/forkserver start methods (and loky, joblib's default) are fresh
# processes and keep their threads.
_omp_team_started = False
_in_forked_child = False


def _after_fork_in_child():
    global _in_forked_child
    if _omp_team_started:
        _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads():
    """Threads fastmlp's kernels use now (>= 1)."""
    global _omp_team_started
    if _in_forked_child:
        return 1
    # min(requested, max(1, OpenMP's)), without builtins: called per kernel call
    n = _runtime.omp_max_threads()
    req = _requested
    if req is not None and req < n:
        n = req
    if n > 1:
        _omp_team_started = True
    elif n < 1:
        n = 1
    return n


def set_num_threads(n):
    """Use `n` threads in fastmlp's kernels from now on (-1: all cores).

    Also sets OpenMP's default for the calling thread, so that a later
    threadpoolctl limit, and its restoration, apply on top of it.
    """
    global _requested
    n = _check_n(n)
    with _lock:
        _requested = n
        _runtime.omp_set_num_threads(n)


def _restore(requested, omp):
    global _requested
    with _lock:
        _requested = requested
        _runtime.omp_set_num_threads(omp)


@contextlib.contextmanager
def threads(n):
    """Context manager: run the block with `n` threads, then restore the setting."""
    n = _check_n(n)
    prev_req, prev_omp = _requested, _runtime.omp_max_threads()
    set_num_threads(n)
    try:
        yield n
    finally:
        _restore(prev_req, prev_omp)
