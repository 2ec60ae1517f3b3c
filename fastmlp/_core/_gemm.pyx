# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin Cython driver over the C GEMM engine (src_c/gemm).

Design: fused ``floating`` memoryviews in, raw pointers and element strides
out to C, GIL released for the whole call. Arguments were validated in
fastmlp.ops (dtypes, shapes, alignment, aliasing); here only shapes are
asserted. Transposes are expressed by the caller as transposed views: the C
engine reads any row/column strides in place.
"""
from libc.stdint cimport int64_t
from cython cimport floating

from fastmlp._core.fastmlp_c cimport *

ACTIVATIONS = {None: FM_ACT_NONE, "identity": FM_ACT_NONE, "relu": FM_ACT_RELU,
               "leaky_relu": FM_ACT_LEAKY_RELU, "sigmoid": FM_ACT_SIGMOID,
               "logistic": FM_ACT_SIGMOID, "tanh": FM_ACT_TANH}
ARCH_AUTO = FM_ARCH_AUTO
ARCH_REF = FM_ARCH_REF
ARCH_AVX2 = FM_ARCH_AVX2


cdef inline int64_t _stride(Py_ssize_t stride_bytes, Py_ssize_t extent, Py_ssize_t itemsize) noexcept nogil:
    # A dimension of extent 1 is never stepped over; calling its stride 1 lets
    # the engine take its unit-stride fast paths.
    if extent == 1:
        return 1
    return stride_bytes // itemsize


cdef _check(int status):
    if status == FM_OK:
        return
    if status == FM_ERR_SIZE:
        raise ValueError("gemm: matrix sizes overflow 64-bit byte counts")
    if status == FM_ERR_NOMEM:
        raise MemoryError("gemm: could not allocate the packing workspace")
    raise ValueError("gemm: invalid argument (activation or kernel architecture)")


def gemm(const floating[:, :] a, const floating[:, :] b, floating[:, :] c,
         double alpha=1.0, double beta=0.0, const floating[:] bias=None,
         int act=FM_ACT_NONE, double slope=0.01, int n_threads=1, int arch=FM_ARCH_AUTO):
    """c = act(alpha * a @ b + beta * c + bias) in place. a: (m, k), b: (k, n), c: (m, n)."""
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1], k = a.shape[1]
    assert a.shape[0] == m and b.shape[0] == k and b.shape[1] == n
    assert bias is None or bias.shape[0] == n
    if m == 0 or n == 0:
        return
    cdef Py_ssize_t isz = sizeof(floating)
    cdef const floating *pa = NULL
    cdef const floating *pb = NULL
    cdef const floating *pbias = NULL
    cdef int64_t rsa = 1, csa = 1, rsb = 1, csb = 1
    if k > 0:
        pa = &a[0, 0]
        pb = &b[0, 0]
        rsa = _stride(a.strides[0], m, isz)
        csa = _stride(a.strides[1], k, isz)
        rsb = _stride(b.strides[0], k, isz)
        csb = _stride(b.strides[1], n, isz)
    if bias is not None:
        pbias = &bias[0]
    cdef floating *pc = &c[0, 0]
    cdef int64_t rsc = _stride(c.strides[0], m, isz), csc = _stride(c.strides[1], n, isz)
    cdef int status
    with nogil:
        if floating is float:
            status = fm_sgemm(arch, m, n, k, <float>alpha, pa, rsa, csa, pb, rsb, csb,
                              <float>beta, pc, rsc, csc, pbias, act, <float>slope, n_threads)
        else:
            status = fm_dgemm(arch, m, n, k, alpha, pa, rsa, csa, pb, rsb, csb,
                              beta, pc, rsc, csc, pbias, act, slope, n_threads)
    _check(status)


def ukr_call(int arch, const floating[::1] a_panel, const floating[::1] b_panel,
             floating[:, ::1] c, double alpha=1.0, double beta=0.0,
             const floating[::1] bias=None, int act=FM_ACT_NONE, double slope=0.01):
    """Run one micro-kernel of `arch` on packed panels (tests only).

    a_panel holds k columns of MR values, b_panel k rows of NR values, c is an
    MR x NR tile. Compares an architecture's kernel with the reference one.
    """
    cdef fm_gemm_info info
    _check(fm_gemm_info_get(floating is double, arch, &info))
    cdef Py_ssize_t k = a_panel.shape[0] // info.mr
    assert a_panel.shape[0] == k * info.mr and b_panel.shape[0] == k * info.nr
    assert c.shape[0] == info.mr and c.shape[1] == info.nr
    assert bias is None or bias.shape[0] == info.nr
    cdef const floating *pbias = NULL
    if bias is not None:
        pbias = &bias[0]
    cdef const floating *pa = &a_panel[0] if k > 0 else NULL
    cdef const floating *pb = &b_panel[0] if k > 0 else NULL
    cdef int status
    if floating is float:
        status = fm_sgemm_ukr_call(arch, k, pa, pb, &c[0, 0], c.strides[0] // sizeof(float),
                                   <float>alpha, <float>beta, pbias, act, <float>slope)
    else:
        status = fm_dgemm_ukr_call(arch, k, pa, pb, &c[0, 0], c.strides[0] // sizeof(double),
                                   alpha, beta, pbias, act, slope)
    _check(status)


def gemm_info(bint double_precision, int arch=FM_ARCH_AUTO):
    """The micro-kernel and blocking used for a dtype: dict(name, arch, mr, nr, mc, kc, nc,
    smallm); smallm is the largest m that skips packing (B with unit column stride)."""
    cdef fm_gemm_info info
    _check(fm_gemm_info_get(double_precision, arch, &info))
    return dict(name=info.name.decode(), arch=fm_arch_name(info.arch).decode(), mr=info.mr,
                nr=info.nr, mc=info.mc, kc=info.kc, nc=info.nc, smallm=info.smallm)


def arch_names():
    """Names of all kernel architectures, by code."""
    return {i: fm_arch_name(i).decode() for i in range(FM_ARCH_COUNT)}


def arch_usable(int arch):
    return bool(fm_arch_usable(arch))


def arch_compiled(int arch):
    return bool(fm_arch_compiled(arch))


def best_arch():
    return fm_arch_best()
