# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin Cython drivers over the activation, softmax and loss kernels (src_c/nn/act.h).

Design: arguments were validated in fastmlp.ops; here only shapes are
asserted. Work is cut into FIXED pieces -- CHUNK elements for element-wise
kernels, a number of rows that depends only on the row length for row
kernels -- that OpenMP threads take statically (prange over the pieces).
Reductions store one float64 partial sum per piece and add them here in
piece order, so every result is bitwise identical for any thread count.
Small problems (below PARALLEL_MIN elements) run on the calling thread.
"""
import numpy as np

from cython.parallel cimport prange
from libc.stdint cimport int64_t
from cython cimport floating

from fastmlp._core.fastmlp_c cimport FM_OK, FM_ARCH_AUTO, FM_ARCH_REF, FM_ARCH_AVX2
from fastmlp._core.act_c cimport *

ACTIVATIONS = {"identity": FM_ELT_IDENTITY, "relu": FM_ELT_RELU,
               "leaky_relu": FM_ELT_LEAKY_RELU, "sigmoid": FM_ELT_SIGMOID,
               "logistic": FM_ELT_SIGMOID, "tanh": FM_ELT_TANH, "sign": FM_ELT_SIGN}
LOSSES = {"mse": FM_ELOSS_MSE, "mae": FM_ELOSS_MAE, "poisson": FM_ELOSS_POISSON,
          "sigmoid_bce": FM_ELOSS_SIGMOID_BCE, "bce": FM_ELOSS_BCE}
ARCH_AUTO = FM_ARCH_AUTO
ARCH_REF = FM_ARCH_REF
ARCH_AVX2 = FM_ARCH_AVX2

cdef enum:
    # Elements per piece of element-wise work (a multiple of every vector width).
    _CHUNK = 32768
    # Fewer elements than this run on one thread (an OpenMP fork costs a few us).
    _PARALLEL_MIN = 2 * _CHUNK
    # Outputs at least this large are written with non-temporal stores (they
    # do not fit the caches anyway; skipping the read-for-ownership saves a
    # third of the memory traffic of a memory-bound pass).
    _STREAM_MIN_BYTES = 16 << 20

CHUNK = _CHUNK
PARALLEL_MIN = _PARALLEL_MIN
STREAM_MIN_BYTES = _STREAM_MIN_BYTES


cdef inline Py_ssize_t _nchunks(Py_ssize_t n) noexcept nogil:
    return (n + _CHUNK - 1) // _CHUNK


cdef inline Py_ssize_t _block_rows(Py_ssize_t cols) noexcept nogil:
    """Rows per piece of row work (act.h: the rule src_c/nn/mlp.c uses too)."""
    return fm_row_piece_rows(cols)


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t pieces, int n_threads) noexcept nogil:
    if work < _PARALLEL_MIN or pieces < 2 or n_threads < 2:
        return 1
    return n_threads if n_threads < pieces else <int>pieces


def arch_usable(int arch):
    """True if the kernels of `arch` run here (calls naming an unusable arch use FM_ARCH_REF)."""
    return fm_arch_resolve_act(arch) == arch


# ------------------------------------------------------------ activations

cdef inline void _fwd_piece(int arch, int act, double alpha, const floating *z,
                            floating *out, Py_ssize_t n, Py_ssize_t c, int stream) noexcept nogil:
    cdef Py_ssize_t start = c * _CHUNK
    cdef Py_ssize_t cnt = n - start if n - start < _CHUNK else _CHUNK
    if floating is float:
        fm_act_forward_s(arch, act, <float>alpha, z + start, out + start, cnt, stream)
    else:
        fm_act_forward_d(arch, act, alpha, z + start, out + start, cnt, stream)


cdef inline void _bwd_piece(int arch, int act, double alpha, const floating *z,
                            const floating *g, floating *out, Py_ssize_t n, Py_ssize_t c,
                            int stream) noexcept nogil:
    cdef Py_ssize_t start = c * _CHUNK
    cdef Py_ssize_t cnt = n - start if n - start < _CHUNK else _CHUNK
    if floating is float:
        fm_act_backward_s(arch, act, <float>alpha, z + start, g + start, out + start, cnt,
                          stream)
    else:
        fm_act_backward_d(arch, act, alpha, z + start, g + start, out + start, cnt, stream)


def forward(int act, const floating[::1] z, floating[::1] out, double alpha=0.01,
            int n_threads=1, int arch=FM_ARCH_AUTO):
    """out = f(z) element-wise on flat contiguous arrays; out may be z itself."""
    cdef Py_ssize_t n = z.shape[0], c
    assert out.shape[0] == n
    if act < 0 or act >= FM_ELT_COUNT:
        raise ValueError(f"unknown activation code {act}")
    if n == 0:
        return
    cdef const floating *pz = &z[0]
    cdef floating *po = &out[0]
    cdef int stream = (n * <Py_ssize_t>sizeof(floating) >= _STREAM_MIN_BYTES
                       and <const void *>po != <const void *>pz)
    cdef Py_ssize_t pieces = _nchunks(n)
    cdef int nt = _threads_for(n, pieces, n_threads)
    with nogil:
        if nt > 1:
            for c in prange(pieces, schedule="static", num_threads=nt):
                _fwd_piece(arch, act, alpha, pz, po, n, c, stream)
        else:
            for c in range(pieces):
                _fwd_piece(arch, act, alpha, pz, po, n, c, stream)


def backward(int act, const floating[::1] z, const floating[::1] grad, floating[::1] out,
             double alpha=0.01, int n_threads=1, int arch=FM_ARCH_AUTO):
    """out = grad * f'(z) element-wise; out may be z or grad itself."""
    cdef Py_ssize_t n = z.shape[0], c
    assert grad.shape[0] == n and out.shape[0] == n
    if act < 0 or act >= FM_ELT_COUNT:
        raise ValueError(f"unknown activation code {act}")
    if n == 0:
        return
    cdef const floating *pz = &z[0]
    cdef const floating *pg = &grad[0]
    cdef floating *po = &out[0]
    cdef int stream = (n * <Py_ssize_t>sizeof(floating) >= _STREAM_MIN_BYTES
                       and <const void *>po != <const void *>pz
                       and <const void *>po != <const void *>pg)
    cdef Py_ssize_t pieces = _nchunks(n)
    cdef int nt = _threads_for(n, pieces, n_threads)
    with nogil:
        if nt > 1:
            for c in prange(pieces, schedule="static", num_threads=nt):
                _bwd_piece(arch, act, alpha, pz, pg, po, n, c, stream)
        else:
            for c in range(pieces):
                _bwd_piece(arch, act, alpha, pz, pg, po, n, c, stream)


# ------------------------------------------------------------ softmax

cdef inline void _softmax_piece(int arch, const floating *z, floating *out, Py_ssize_t rows,
                                Py_ssize_t cols, Py_ssize_t rb, Py_ssize_t b,
                                int log) noexcept nogil:
    cdef Py_ssize_t r0 = b * rb
    cdef Py_ssize_t cnt = rows - r0 if rows - r0 < rb else rb
    if floating is float:
        fm_softmax_rows_s(arch, z + r0 * cols, out + r0 * cols, cnt, cols, cols, log)
    else:
        fm_softmax_rows_d(arch, z + r0 * cols, out + r0 * cols, cnt, cols, cols, log)


def softmax(const floating[:, ::1] z, floating[:, ::1] out, bint log=False, int n_threads=1,
            int arch=FM_ARCH_AUTO):
    """Row-wise softmax (or log_softmax) of C-contiguous rows; out may be z itself."""
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1], b
    assert out.shape[0] == rows and out.shape[1] == cols
    if rows == 0 or cols == 0:
        return
    cdef Py_ssize_t rb = _block_rows(cols)
    cdef Py_ssize_t pieces = (rows + rb - 1) // rb
    cdef int nt = _threads_for(rows * cols, pieces, n_threads)
    cdef const floating *pz = &z[0, 0]
    cdef floating *po = &out[0, 0]
    cdef int lg = log
    with nogil:
        if nt > 1:
            for b in prange(pieces, schedule="static", num_threads=nt):
                _softmax_piece(arch, pz, po, rows, cols, rb, b, lg)
        else:
            for b in range(pieces):
                _softmax_piece(arch, pz, po, rows, cols, rb, b, lg)


# ------------------------------------------------------------ softmax cross-entropy

cdef inline double _xent_piece(int arch, const floating *z, const int64_t *y,
                               const floating *t, const double *w, double inv_wsum,
                               floating *g, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t rb,
                               Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t r0 = b * rb
    cdef Py_ssize_t cnt = rows - r0 if rows - r0 < rb else rb
    cdef const double *wp = w + r0 if w != NULL else NULL
    if y != NULL:
        if floating is float:
            return fm_xent_labels_s(arch, z + r0 * cols, y + r0, wp, inv_wsum, g + r0 * cols,
                                    cnt, cols)
        else:
            return fm_xent_labels_d(arch, z + r0 * cols, y + r0, wp, inv_wsum, g + r0 * cols,
                                    cnt, cols)
    if floating is float:
        return fm_xent_probs_s(arch, z + r0 * cols, t + r0 * cols, wp, inv_wsum,
                               g + r0 * cols, cnt, cols)
    else:
        return fm_xent_probs_d(arch, z + r0 * cols, t + r0 * cols, wp, inv_wsum,
                               g + r0 * cols, cnt, cols)


def softmax_xent(const floating[:, ::1] z, const int64_t[::1] labels,
                 const floating[:, ::1] target, const double[::1] weights, double wsum,
                 floating[:, ::1] grad, int n_threads=1, int arch=FM_ARCH_AUTO):
    """Fused softmax cross-entropy: fills grad, returns sum_i w_i CE_i / wsum.

    Exactly one of labels (int64, in [0, cols), not checked) and target
    (rows x cols) is given; weights may be None (all 1), wsum is their sum.
    """
    cdef Py_ssize_t rows = z.shape[0], cols = z.shape[1], b
    assert grad.shape[0] == rows and grad.shape[1] == cols
    assert (labels is None) != (target is None)
    assert labels is None or labels.shape[0] == rows
    assert target is None or (target.shape[0] == rows and target.shape[1] == cols)
    assert weights is None or weights.shape[0] == rows
    assert rows > 0 and cols > 0 and wsum > 0
    cdef Py_ssize_t rb = _block_rows(cols)
    cdef Py_ssize_t pieces = (rows + rb - 1) // rb
    cdef int nt = _threads_for(rows * cols, pieces, n_threads)
    cdef double[::1] partial = np.empty(pieces, dtype=np.float64)
    cdef const floating *pz = &z[0, 0]
    cdef floating *pg = &grad[0, 0]
    cdef const int64_t *py = &labels[0] if labels is not None else NULL
    cdef const floating *pt = &target[0, 0] if target is not None else NULL
    cdef const double *pw = &weights[0] if weights is not None else NULL
    cdef double inv = 1.0 / wsum, total = 0.0
    with nogil:
        if nt > 1:
            for b in prange(pieces, schedule="static", num_threads=nt):
                partial[b] = _xent_piece(arch, pz, py, pt, pw, inv, pg, rows, cols, rb, b)
        else:
            for b in range(pieces):
                partial[b] = _xent_piece(arch, pz, py, pt, pw, inv, pg, rows, cols, rb, b)
        for b in range(pieces):
            total += partial[b]
    return total / wsum


# ------------------------------------------------------------ element-wise losses

cdef inline double _eloss_piece(int arch, int kind, const floating *x, const floating *t,
                                floating *g, Py_ssize_t n, Py_ssize_t c, double scale,
                                double eps) noexcept nogil:
    cdef Py_ssize_t start = c * _CHUNK
    cdef Py_ssize_t cnt = n - start if n - start < _CHUNK else _CHUNK
    if floating is float:
        return fm_eloss_s(arch, kind, x + start, t + start, g + start, cnt, scale, eps)
    else:
        return fm_eloss_d(arch, kind, x + start, t + start, g + start, cnt, scale, eps)


def eloss(int kind, const floating[::1] x, const floating[::1] target, floating[::1] grad,
          double eps=0.0, int n_threads=1, int arch=FM_ARCH_AUTO):
    """Mean element-wise loss; grad = d(mean)/dx. Flat contiguous arrays, n > 0."""
    cdef Py_ssize_t n = x.shape[0], c
    assert target.shape[0] == n and grad.shape[0] == n and n > 0
    if kind < 0 or kind >= FM_ELOSS_COUNT:
        raise ValueError(f"unknown loss code {kind}")
    cdef Py_ssize_t pieces = _nchunks(n)
    cdef int nt = _threads_for(n, pieces, n_threads)
    cdef double[::1] partial = np.empty(pieces, dtype=np.float64)
    cdef const floating *px = &x[0]
    cdef const floating *pt = &target[0]
    cdef floating *pg = &grad[0]
    cdef double scale = 1.0 / <double>n, total = 0.0
    with nogil:
        if nt > 1:
            for c in prange(pieces, schedule="static", num_threads=nt):
                partial[c] = _eloss_piece(arch, kind, px, pt, pg, n, c, scale, eps)
        else:
            for c in range(pieces):
                partial[c] = _eloss_piece(arch, kind, px, pt, pg, n, c, scale, eps)
        for c in range(pieces):
            total += partial[c]
    return total / <double>n
