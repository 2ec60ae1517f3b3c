# cython: language_level=3
"""OpenMP runtime, CPU features and build facts.

Design: fastmlp passes an explicit n_threads down to every kernel (as
scikit-learn does) instead of relying on the OpenMP default. This module
reads the OpenMP ICVs so that OMP_NUM_THREADS and threadpoolctl's
``threadpool_limits(user_api="openmp")``, which set them, limit fastmlp too.
"""
from fastmlp._core.fastmlp_c cimport *

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fm_omp_max_threads(void) { return omp_get_max_threads(); }
    static void fm_omp_set_threads(int n) { omp_set_num_threads(n); }
    static int fm_omp_num_procs(void) { return omp_get_num_procs(); }
    #else
    static int fm_omp_max_threads(void) { return 1; }
    static void fm_omp_set_threads(int n) { (void)n; }
    static int fm_omp_num_procs(void) { return 1; }
    #endif
    """
    int fm_omp_max_threads() nogil
    void fm_omp_set_threads(int n) nogil
    int fm_omp_num_procs() nogil


def omp_max_threads():
    """omp_get_max_threads() of the calling thread (1 without OpenMP)."""
    return fm_omp_max_threads()


def omp_set_num_threads(int n):
    fm_omp_set_threads(n)


def omp_num_procs():
    return fm_omp_num_procs()


def openmp_version():
    """The _OPENMP date the C kernels were built with, 0 if built without OpenMP."""
    return fm_openmp_version()


def compiler():
    return fm_compiler().decode()


def cpu_features():
    return {"avx2": bool(fm_cpu_has_avx2()), "fma": bool(fm_cpu_has_fma()),
            "avx512": bool(fm_cpu_has_avx512()),
            "avx512_full_width": bool(fm_cpu_has_avx512() and fm_cpu_avx512_full_width())}


_ARCHS = {"ref": FM_ARCH_REF, "avx2": FM_ARCH_AVX2, "avx512": FM_ARCH_AVX512}


def fma_peak(arch, bint double, int n_threads, long iters):
    """One measurement of the FMA peak in GFLOP/s: `n_threads` threads each run
    `iters` steps of the `arch` probe ("ref", "avx2" or "avx512") in float32 or
    float64 (`double`). Raises ValueError for an unknown arch, one this CPU or
    build cannot run, or n_threads/iters < 1. The GIL is released."""
    if arch not in _ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(_ARCHS)}")
    cdef int a = _ARCHS[arch]
    if not fm_arch_usable(a):
        raise ValueError(f"arch {arch!r} is not usable on this CPU or build")
    if n_threads < 1 or iters < 1:
        raise ValueError(f"n_threads and iters must be >= 1, got {n_threads} and {iters}")
    cdef double g
    with nogil:
        g = fm_peak_gflops(a, double, n_threads, iters)
    if g <= 0:
        raise RuntimeError("FMA probe timer gave no elapsed time; use more iters")
    return g


def fma_lanes(arch, bint double):
    """Lanes per probe vector of `arch` (16/8 for avx512, 8/4 for avx2, 4 for ref)."""
    if arch not in _ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(_ARCHS)}")
    return fm_peak_lanes(_ARCHS[arch], double)
