# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Whole-network forward pass of a dense MLP in one call (prediction).

Design: prediction of a few rows is dominated by per-call overhead, not by
arithmetic, so this driver hands the whole network to src_c/nn/mlp.c, which
runs every layer -- GEMM with the bias and hidden activation fused into its
store -- and the output softmax in one OpenMP parallel region, with the GIL
released once. Arrays are read through the NumPy C API (no memoryview
acquisition per array, which costs more than a one-row layer). The caller
(fastmlp.sklearn) has validated the network once; what memory safety needs
(ndarrays, dims, dtype, shapes chaining, element strides) is re-checked here
at a few nanoseconds per array. Results are bitwise those of the same GEMM
calls made one by one, so thread-count independence carries over.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free

from fastmlp._core.fastmlp_c cimport FM_OK, FM_ERR_NOMEM, FM_ARCH_AUTO
from fastmlp._core.mlp_c cimport *

cnp.import_array()

MAX_LAYERS = FM_MLP_MAX_LAYERS


cdef inline int64_t _estride(cnp.ndarray x, int dim) noexcept:
    # An extent-1 dimension is never stepped over: call its stride 1 so the
    # engine takes its unit-stride paths.
    if cnp.PyArray_DIM(x, dim) == 1:
        return 1
    return cnp.PyArray_STRIDE(x, dim) // cnp.PyArray_ITEMSIZE(x)


cdef cnp.ndarray _arr(object x, int ndim, int typenum, str what):
    if not cnp.PyArray_Check(x):
        raise TypeError(f"forward: {what} must be a numpy.ndarray, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int d
    if (cnp.PyArray_NDIM(a) != ndim or cnp.PyArray_TYPE(a) != typenum
            or not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_ISALIGNED(a)):
        raise ValueError(f"forward: {what} must be an aligned {ndim}-D array of the input's "
                         f"dtype, got {x.dtype} with shape {x.shape}")
    for d in range(ndim):
        if cnp.PyArray_STRIDE(a, d) % cnp.PyArray_ITEMSIZE(a):
            raise ValueError(f"forward: {what} has strides that are not whole elements")
    return a


def forward(x, list coefs, list intercepts, int act, double slope, bint softmax,
            int n_threads, bint argmax=False):
    """Output (rows, n_out), a new C-ordered array, of
    act(...act(x @ W0 + b0)...) @ W_last + b_last, with the row-wise softmax
    applied when `softmax`. x, W: 2-D ndarrays of one float dtype (any
    strides), b: contiguous 1-D. Returns (output, softmax); with `argmax`,
    (index of each row's largest output as int64, softmax) instead, the
    index numpy.argmax(output, axis=1) gives."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"forward: x must be a numpy.ndarray, got {type(x).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise ValueError(f"forward: x has dtype {x.dtype}; expected float32 or float64")
    cdef cnp.ndarray X = _arr(x, 2, typenum, "x")
    cdef Py_ssize_t L = len(coefs), i, hidden = 0
    if L < 1 or L > FM_MLP_MAX_LAYERS or len(intercepts) != L:
        raise ValueError(f"forward: need 1..{FM_MLP_MAX_LAYERS} layers and as many "
                         f"intercepts, got {L} and {len(intercepts)}")
    cdef int64_t m = cnp.PyArray_DIM(X, 0)
    cdef int64_t *units = <int64_t *>malloc((4 * L + 1) * sizeof(int64_t))
    cdef void **ptrs = <void **>malloc(3 * L * sizeof(void *))
    if units == NULL or ptrs == NULL:
        free(units)
        free(ptrs)
        raise MemoryError("forward: out of memory")
    cdef int64_t *rsw = units + L + 1
    cdef int64_t *csw = rsw + L
    cdef int64_t *offs = csw + L
    cdef cnp.ndarray W, B, out, buf
    cdef char *base
    cdef fm_s_mlp_net snet
    cdef fm_d_mlp_net dnet
    cdef int status
    cdef int64_t rsx, csx
    try:
        units[0] = cnp.PyArray_DIM(X, 1)
        for i in range(L):
            W = _arr(coefs[i], 2, typenum, f"coefs[{i}]")
            B = _arr(intercepts[i], 1, typenum, f"intercepts[{i}]")
            if cnp.PyArray_DIM(W, 0) != units[i] or cnp.PyArray_DIM(B, 0) != cnp.PyArray_DIM(W, 1):
                raise ValueError(f"forward: layer {i} has weights {coefs[i].shape} and bias "
                                 f"{intercepts[i].shape} after {units[i]} units")
            if cnp.PyArray_DIM(B, 0) > 1 and cnp.PyArray_STRIDE(B, 0) != cnp.PyArray_ITEMSIZE(B):
                raise ValueError(f"forward: intercepts[{i}] must be contiguous")
            units[i + 1] = cnp.PyArray_DIM(W, 1)
            rsw[i] = _estride(W, 0)
            csw[i] = _estride(W, 1)
            ptrs[i] = cnp.PyArray_DATA(W)
            ptrs[L + i] = cnp.PyArray_DATA(B)
            if i < L - 1:
                offs[i] = hidden
                hidden += m * units[i + 1]
        out = cnp.PyArray_EMPTY(2, [m, units[L]], typenum, 0)
        ptrs[2 * L + L - 1] = cnp.PyArray_DATA(out)
        buf = cnp.PyArray_EMPTY(1, [hidden], typenum, 0)
        base = <char *>cnp.PyArray_DATA(buf)
        for i in range(L - 1):
            ptrs[2 * L + i] = base + offs[i] * cnp.PyArray_ITEMSIZE(X)
        rsx = _estride(X, 0)
        csx = _estride(X, 1)
        if typenum == cnp.NPY_FLOAT:
            snet.n_layers = <int>L
            snet.units = units
            snet.w = <const float *const *>ptrs
            snet.rsw = rsw
            snet.csw = csw
            snet.b = <const float *const *>(ptrs + L)
            snet.act = act
            snet.slope = <float>slope
            with nogil:
                status = fm_s_mlp_forward(FM_ARCH_AUTO, &snet, m,
                                          <const float *>cnp.PyArray_DATA(X), rsx, csx,
                                          <float *const *>(ptrs + 2 * L), softmax, n_threads)
        else:
            dnet.n_layers = <int>L
            dnet.units = units
            dnet.w = <const double *const *>ptrs
            dnet.rsw = rsw
            dnet.csw = csw
            dnet.b = <const double *const *>(ptrs + L)
            dnet.act = act
            dnet.slope = slope
            with nogil:
                status = fm_d_mlp_forward(FM_ARCH_AUTO, &dnet, m,
                                          <const double *>cnp.PyArray_DATA(X), rsx, csx,
                                          <double *const *>(ptrs + 2 * L), softmax, n_threads)
    finally:
        free(units)
        free(ptrs)
    if status == FM_ERR_NOMEM:
        raise MemoryError("forward: could not allocate the GEMM workspace")
    if status != FM_OK:
        raise ValueError(f"forward: the network's sizes are invalid (status {status})")
    if argmax:
        return _argmax_rows(out), bool(softmax)
    return out, bool(softmax)


cdef cnp.ndarray _argmax_rows(cnp.ndarray out):
    """numpy.argmax(out, axis=1) for a C-ordered float32/float64 out: the first
    largest value of each row, or the first NaN when the row has one."""
    cdef int64_t m = cnp.PyArray_DIM(out, 0), n = cnp.PyArray_DIM(out, 1), i, j, best
    cdef cnp.ndarray idx = cnp.PyArray_EMPTY(1, [m], cnp.NPY_INT64, 0)
    cdef int64_t *pi = <int64_t *>cnp.PyArray_DATA(idx)
    cdef const float *fs
    cdef const double *fd
    cdef double v, top
    if n == 0:
        raise ValueError("forward: argmax of an empty output row")
    for i in range(m):
        if cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT:
            fs = <const float *>cnp.PyArray_DATA(out) + i * n
            top, best = fs[0], 0
            for j in range(n):
                v = fs[j]
                if v != v:
                    best = j
                    break
                if v > top:
                    top, best = v, j
        else:
            fd = <const double *>cnp.PyArray_DATA(out) + i * n
            top, best = fd[0], 0
            for j in range(n):
                v = fd[j]
                if v != v:
                    best = j
                    break
                if v > top:
                    top, best = v, j
        pi[i] = best
    return idx


cdef bint _finite_s(const char *p, int64_t m, int64_t n, int64_t rs, int64_t cs) noexcept nogil:
    # A float is inf or NaN exactly when its exponent bits are all ones: an
    # integer test the compiler vectorizes (no branch per element).
    cdef int64_t i, j
    cdef const uint32_t *r
    cdef uint32_t bad = 0
    for i in range(m):
        if cs == 4:
            r = <const uint32_t *>(p + i * rs)
            for j in range(n):
                bad |= (r[j] & 0x7f800000u) == 0x7f800000u
        else:
            for j in range(n):
                bad |= ((<const uint32_t *>(p + i * rs + j * cs))[0] & 0x7f800000u) == 0x7f800000u
        if bad:
            return False
    return True


cdef bint _finite_d(const char *p, int64_t m, int64_t n, int64_t rs, int64_t cs) noexcept nogil:
    cdef int64_t i, j
    cdef const uint64_t *r
    cdef uint64_t bad = 0
    cdef uint64_t E = 0x7ff0000000000000u
    for i in range(m):
        if cs == 8:
            r = <const uint64_t *>(p + i * rs)
            for j in range(n):
                bad |= (r[j] & E) == E
        else:
            for j in range(n):
                bad |= ((<const uint64_t *>(p + i * rs + j * cs))[0] & E) == E
        if bad:
            return False
    return True


def all_finite(x):
    """True when x is an aligned, native-byte-order 2-D float32/float64 ndarray
    (any strides) whose elements are all finite; False otherwise (input
    validation of the prediction fast path: False sends the caller to full
    validation)."""
    if not cnp.PyArray_Check(x):
        return False
    cdef cnp.ndarray X = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(X)
    if cnp.PyArray_NDIM(X) != 2 or (typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE) \
            or not cnp.PyArray_ISALIGNED(X) or not cnp.PyArray_ISNOTSWAPPED(X):
        return False
    cdef const char *p = <const char *>cnp.PyArray_DATA(X)
    cdef int64_t m = cnp.PyArray_DIM(X, 0), n = cnp.PyArray_DIM(X, 1)
    cdef int64_t rs = cnp.PyArray_STRIDE(X, 0), cs = cnp.PyArray_STRIDE(X, 1)
    cdef bint ok
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            ok = _finite_s(p, m, n, rs, cs)
        else:
            ok = _finite_d(p, m, n, rs, cs)
    return ok
