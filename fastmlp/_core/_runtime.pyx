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
