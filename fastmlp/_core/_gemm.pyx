# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin Cython driver over the C GEMM engine (src_c/gemm).

Design: ndarrays in, raw pointers and element strides out to C, GIL released
for the whole call. Arguments were validated in fastmlp.ops (dtypes, shapes,
alignment, aliasing); `gemm` re-checks what memory safety needs (ndarray,
2-D, one native float dtype, element-aligned strides, writeable C, shapes)
through the NumPy C API: for the one-row products of prediction, fused-type
dispatch and memoryview acquisition cost more than the product itself.
Transposes are expressed by the caller as transposed views: the C engine
reads any row/column strides in place.
"""
from libc.stdint cimport int64_t
from cython cimport floating
cimport numpy as cnp
import numpy as np

from fastmlp._core.fastmlp_c cimport *
from fastmlp._core._ndarray cimport estride as _estride, operand

cnp.import_array()

ACTIVATIONS = {None: FM_ACT_NONE, "identity": FM_ACT_NONE, "relu": FM_ACT_RELU,
               "leaky_relu": FM_ACT_LEAKY_RELU, "sigmoid": FM_ACT_SIGMOID,
               "logistic": FM_ACT_SIGMOID, "tanh": FM_ACT_TANH}
ARCH_AUTO = FM_ARCH_AUTO
ARCH_REF = FM_ARCH_REF
ARCH_AVX2 = FM_ARCH_AVX2
ARCH_AVX512 = FM_ARCH_AVX512


cdef _check(int status):
    if status == FM_OK:
        return
    if status == FM_ERR_SIZE:
        raise ValueError("gemm: matrix sizes overflow 64-bit byte counts")
    if status == FM_ERR_NOMEM:
        raise MemoryError("gemm: could not allocate the packing workspace")
    raise ValueError("gemm: invalid argument (activation or kernel architecture)")


def gemm(a, b, c, double alpha=1.0, double beta=0.0, bias=None, int act=FM_ACT_NONE,
         double slope=0.01, int n_threads=1, int arch=FM_ARCH_AUTO):
    """c = act(alpha * a @ b + beta * c + bias) in place. a: (m, k), b: (k, n),
    c: (m, n) writeable, bias: (n,) contiguous or None; ndarrays of one dtype,
    float32 or float64."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"gemm: a must be a numpy.ndarray, got {type(a).__name__}")
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise ValueError(f"gemm: a has dtype {a.dtype}; expected float32 or float64")
    cdef cnp.ndarray A = operand(a, "gemm", "a", 2, typenum, False, "a")
    cdef cnp.ndarray B = operand(b, "gemm", "b", 2, typenum, False, "a")
    cdef cnp.ndarray C = operand(c, "gemm", "c", 2, typenum, True, "a")
    cdef cnp.ndarray Z = None
    cdef Py_ssize_t m = cnp.PyArray_DIM(C, 0), n = cnp.PyArray_DIM(C, 1)
    cdef Py_ssize_t k = cnp.PyArray_DIM(A, 1)
    if cnp.PyArray_DIM(A, 0) != m or cnp.PyArray_DIM(B, 0) != k or cnp.PyArray_DIM(B, 1) != n:
        raise ValueError(f"gemm: shapes a {a.shape}, b {b.shape}, c {c.shape} do not match")
    if bias is not None:
        Z = operand(bias, "gemm", "bias", 1, typenum, False, "a")
        if cnp.PyArray_DIM(Z, 0) != n or (n > 1 and cnp.PyArray_STRIDE(Z, 0) != cnp.PyArray_ITEMSIZE(Z)):
            raise ValueError(f"gemm: bias must be contiguous of shape ({n},), got {bias.shape}")
    if m == 0 or n == 0:
        return
    cdef const void *pa = NULL
    cdef const void *pb = NULL
    cdef const void *pbias = NULL
    cdef int64_t rsa = 1, csa = 1, rsb = 1, csb = 1
    if k > 0:
        pa = cnp.PyArray_DATA(A)
        pb = cnp.PyArray_DATA(B)
        rsa = _estride(A, 0)
        csa = _estride(A, 1)
        rsb = _estride(B, 0)
        csb = _estride(B, 1)
    if Z is not None:
        pbias = cnp.PyArray_DATA(Z)
    cdef void *pc = cnp.PyArray_DATA(C)
    cdef int64_t rsc = _estride(C, 0), csc = _estride(C, 1)
    cdef int status
    if typenum == cnp.NPY_FLOAT:
        with nogil:
            status = fm_sgemm(arch, m, n, k, <float>alpha, <const float *>pa, rsa, csa,
                              <const float *>pb, rsb, csb, <float>beta, <float *>pc, rsc, csc,
                              <const float *>pbias, act, <float>slope, n_threads)
    else:
        with nogil:
            status = fm_dgemm(arch, m, n, k, alpha, <const double *>pa, rsa, csa,
                              <const double *>pb, rsb, csb, beta, <double *>pc, rsc, csc,
                              <const double *>pbias, act, slope, n_threads)
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


def gen_call(int arch, const floating[:, :] a, const floating[::1] b_panels,
             floating[:, ::1] c, double alpha=1.0, double beta=0.0,
             const floating[::1] bias=None, int act=FM_ACT_NONE, double slope=0.01):
    """Run the general micro-kernel of `arch` (tests only): C (mi x np*NR) from
    A (mi x k, read through its own strides: a packed panel, a row-major
    slice, ...) and np packed B panels (np*k*NR values, panel after panel).
    Raises ValueError if `arch` has no general kernel for the dtype."""
    cdef fm_gemm_info info
    _check(fm_gemm_info_get(floating is double, arch, &info))
    cdef int mi = <int>a.shape[0]
    cdef Py_ssize_t k = a.shape[1]
    cdef int np_ = <int>(c.shape[1] // info.nr)
    assert 1 <= mi <= info.mr and c.shape[0] == mi and c.shape[1] == np_ * info.nr
    assert b_panels.shape[0] == np_ * k * info.nr
    assert bias is None or bias.shape[0] == c.shape[1]
    cdef int64_t ars = a.strides[0] // <Py_ssize_t>sizeof(floating)
    cdef int64_t acs = a.strides[1] // <Py_ssize_t>sizeof(floating)
    cdef const floating *pbias = NULL
    if bias is not None:
        pbias = &bias[0]
    cdef const floating *pa = &a[0, 0] if k > 0 else NULL
    cdef const floating *pb = &b_panels[0] if k > 0 else NULL
    cdef int status
    if floating is float:
        status = fm_sgemm_gen_call(arch, mi, np_, k, pa, ars, acs, pb, &c[0, 0],
                                   c.strides[0] // sizeof(float), <float>alpha, <float>beta,
                                   pbias, act, <float>slope)
    else:
        status = fm_dgemm_gen_call(arch, mi, np_, k, pa, ars, acs, pb, &c[0, 0],
                                   c.strides[0] // sizeof(double), alpha, beta, pbias, act,
                                   slope)
    _check(status)


def gemm_info(bint double_precision, int arch=FM_ARCH_AUTO):
    """The micro-kernel and blocking used for a dtype: dict(name, arch, mr, nr, mc, kc, nc,
    smallm, hot_a_bytes); smallm is the largest m that skips packing (B with unit column
    stride); hot_a_bytes the largest A block (one thread's rows, rounded up to mr, x K
    block, in bytes) for which B panels are packed just before use (0: never)."""
    cdef fm_gemm_info info
    _check(fm_gemm_info_get(double_precision, arch, &info))
    return dict(name=info.name.decode(), arch=fm_arch_name(info.arch).decode(), mr=info.mr,
                nr=info.nr, mc=info.mc, kc=info.kc, nc=info.nc, smallm=info.smallm,
                hot_a_bytes=info.hot_a_bytes)


cdef bint _byte_extent(cnp.ndarray x, Py_ssize_t *lo, Py_ssize_t *hi):
    """[lo, hi): the bytes x spans (strides of any sign); False if it has no elements."""
    cdef Py_ssize_t l = <Py_ssize_t>cnp.PyArray_DATA(x), h = l, n, s
    cdef int d
    for d in range(cnp.PyArray_NDIM(x)):
        n = cnp.PyArray_DIM(x, d)
        if n == 0:
            return False
        s = cnp.PyArray_STRIDE(x, d) * (n - 1)
        if s < 0:
            l += s
        else:
            h += s
    lo[0] = l
    hi[0] = h + cnp.PyArray_ITEMSIZE(x)
    return True


def needs_temp(out, inputs):
    """True when the kernels cannot write the ndarray `out` in place: it is not
    aligned, a stride is not a whole number of elements, or the bytes it spans
    overlap those an input spans (the bounds test of numpy.may_share_memory,
    in one call: for small products NumPy's per-input calls cost more than the
    kernel). `inputs`: a tuple of arrays or None (skipped)."""
    cdef cnp.ndarray o = <cnp.ndarray?>out
    cdef int d
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(o), olo, ohi, lo, hi
    if not cnp.PyArray_ISALIGNED(o):
        return True
    for d in range(cnp.PyArray_NDIM(o)):
        if cnp.PyArray_STRIDE(o, d) % isz:
            return True
    if not _byte_extent(o, &olo, &ohi):
        return False
    for x in inputs:
        if x is None:
            continue
        if not cnp.PyArray_Check(x):
            if np.may_share_memory(out, x):
                return True
        elif _byte_extent(<cnp.ndarray>x, &lo, &hi) and lo < ohi and olo < hi:
            return True
    return False


def arch_names():
    """Names of all kernel architectures, by code."""
    return {i: fm_arch_name(i).decode() for i in range(FM_ARCH_COUNT)}


def arch_usable(int arch):
    return bool(fm_arch_usable(arch))


def arch_compiled(int arch):
    return bool(fm_arch_compiled(arch))


def best_arch():
    return fm_arch_best()


def arch_env_error():
    """Why FASTMLP_KERNEL could not be honoured, or None."""
    cdef const char *e = fm_arch_env_error()
    return None if e == NULL else e.decode()


def cpu_has_avx512():
    return bool(fm_cpu_has_avx512())
