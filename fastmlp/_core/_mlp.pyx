# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Whole-network forward pass of a dense MLP in one call (prediction).

Design: prediction of a few rows is dominated by per-call overhead, not by
arithmetic, so this driver takes the lists of weight and bias arrays and runs
every layer -- GEMM with the bias and hidden activation fused into its store,
then the output softmax -- with one Python entry and the GIL released around
each product. The caller (fastmlp.sklearn / fastmlp.nn.mlp) has validated the
shapes and dtypes once; only shapes are asserted here. Results are those of
the same GEMM calls made one by one (bitwise), so thread-count independence
carries over.
"""
import numpy as np

from libc.stdint cimport int64_t
from cython cimport floating

from fastmlp._core.fastmlp_c cimport FM_OK, FM_ARCH_AUTO, fm_sgemm, fm_dgemm
from fastmlp._core.act_c cimport fm_softmax_rows_s, fm_softmax_rows_d

#: Output rows x columns above which the softmax is left to the parallel
#: driver in fastmlp._core._act (the caller does that); below, it runs here.
SOFTMAX_INLINE_MAX = 1 << 14


cdef inline int64_t _stride(Py_ssize_t stride_bytes, Py_ssize_t extent, Py_ssize_t itemsize) noexcept nogil:
    if extent == 1:
        return 1
    return stride_bytes // itemsize


cdef object _layer(const floating[:, :] a, const floating[:, :] w, const floating[:] b,
                   floating[:, ::1] h, int act, double slope, int n_threads):
    cdef Py_ssize_t m = h.shape[0], n = h.shape[1], k = a.shape[1]
    assert a.shape[0] == m and w.shape[0] == k and w.shape[1] == n and b.shape[0] == n
    if m == 0 or n == 0:
        return
    cdef Py_ssize_t isz = sizeof(floating)
    cdef const floating *pa = NULL
    cdef const floating *pw = NULL
    cdef int64_t rsa = 1, csa = 1, rsw = 1, csw = 1
    if k > 0:
        pa = &a[0, 0]
        pw = &w[0, 0]
        rsa = _stride(a.strides[0], m, isz)
        csa = _stride(a.strides[1], k, isz)
        rsw = _stride(w.strides[0], k, isz)
        csw = _stride(w.strides[1], n, isz)
    cdef const floating *pb = &b[0]
    cdef int64_t sb = b.strides[0] // isz
    assert sb == 1
    cdef floating *ph = &h[0, 0]
    cdef int status
    with nogil:
        if floating is float:
            status = fm_sgemm(FM_ARCH_AUTO, m, n, k, 1.0, pa, rsa, csa, pw, rsw, csw, 0.0,
                              ph, n, 1, pb, act, <float>slope, n_threads)
        else:
            status = fm_dgemm(FM_ARCH_AUTO, m, n, k, 1.0, pa, rsa, csa, pw, rsw, csw, 0.0,
                              ph, n, 1, pb, act, slope, n_threads)
    if status != FM_OK:
        raise MemoryError("forward: the GEMM could not allocate its workspace")


def forward(x, list coefs, list intercepts, int act, double slope, bint softmax,
            int n_threads):
    """Output (rows, n_out) of act(...act(x @ W0 + b0)...) @ W_last + b_last,
    softmax applied when `softmax` and rows * n_out <= SOFTMAX_INLINE_MAX (the
    return value's second item says whether it was). x, W, b: one float dtype;
    b contiguous."""
    cdef Py_ssize_t i, L = len(coefs), rows = x.shape[0]
    dt = x.dtype
    a = x
    for i in range(L):
        w = coefs[i]
        h = np.empty((rows, w.shape[1]), dt)
        if dt == np.float32:
            _layer[float](a, w, intercepts[i], h, act if i < L - 1 else 0, slope, n_threads)
        else:
            _layer[double](a, w, intercepts[i], h, act if i < L - 1 else 0, slope, n_threads)
        a = h
    if not softmax or rows * a.shape[1] > SOFTMAX_INLINE_MAX or rows == 0:
        return a, False
    cdef float[:, ::1] hs
    cdef double[:, ::1] hd
    if dt == np.float32:
        hs = a
        fm_softmax_rows_s(FM_ARCH_AUTO, &hs[0, 0], &hs[0, 0], hs.shape[0], hs.shape[1],
                          hs.shape[1], 0)
    else:
        hd = a
        fm_softmax_rows_d(FM_ARCH_AUTO, &hd[0, 0], &hd[0, 0], hd.shape[0], hd.shape[1],
                          hd.shape[1], 0)
    return a, True
