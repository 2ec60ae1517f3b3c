# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin Cython driver over the fused optimizer kernels (src_c/nn/optim.c).

Design: flat C-contiguous buffers in, raw pointers out to C, GIL released.
Arguments were validated in fastmlp.ops; here only lengths are asserted.
Work is split into FIXED chunks of CHUNK elements (prange, static schedule),
and only above PAR_MIN elements: the update is element-wise, so the split
never changes a result. The clipping norm is deterministic: one float64
partial sum per chunk (in parallel), then the partials added in chunk order.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, isinf, sqrt
from libc.stdint cimport int64_t

from fastmlp._core.fastmlp_c cimport FM_ARCH_AUTO, FM_OK
from fastmlp._core.optim_c cimport *

#: Method name -> kernel code.
METHODS = {fm_optim_name(i).decode(): i for i in range(FM_OPTIM_COUNT)}
#: Method name -> number of state buffers.
N_STATE = {name: fm_optim_nstate(code) for name, code in METHODS.items()}
CHUNK = FM_OPTIM_CHUNK
PAR_MIN = FM_OPTIM_PAR_MIN
#: PyTorch's clip_grad_norm_ guard: scale = clip / (norm + CLIP_EPS).
CLIP_EPS = 1e-6


cdef int _arch(int arch) except -2:
    cdef int a = fm_optim_resolve_arch(arch)
    if a < 0:
        raise ValueError(f"optimizer: kernel architecture {arch} is not usable on this machine")
    return a


cdef inline int _nthreads(Py_ssize_t n, Py_ssize_t nchunks, int n_threads) noexcept nogil:
    if n < FM_OPTIM_PAR_MIN or n_threads <= 1:
        return 1
    return <int>min(<Py_ssize_t>n_threads, nchunks)


cdef inline double _chunk_sumsq(const floating *x, Py_ssize_t n, Py_ssize_t c,
                                int arch) noexcept nogil:
    cdef Py_ssize_t start = c * FM_OPTIM_CHUNK
    cdef Py_ssize_t m = min(<Py_ssize_t>FM_OPTIM_CHUNK, n - start)
    if floating is float:
        return fm_optim_sumsq_f32(arch, x + start, m)
    else:
        return fm_optim_sumsq_f64(arch, x + start, m)


cdef double _norm(const floating *x, Py_ssize_t n, int arch, int n_threads) except? -1.0:
    """Global L2 norm of x[0..n), bitwise independent of n_threads."""
    if n == 0:
        return 0.0
    cdef Py_ssize_t nchunks = (n + FM_OPTIM_CHUNK - 1) // FM_OPTIM_CHUNK, c
    cdef double[::1] part = np.empty(nchunks, dtype=np.float64)
    cdef double total = 0.0, mx, inv
    cdef int nt = _nthreads(n, nchunks, n_threads)
    with nogil:
        if nt > 1:
            for c in prange(nchunks, schedule='static', num_threads=nt):
                part[c] = _chunk_sumsq(x, n, c, arch)
        else:
            for c in range(nchunks):
                part[c] = _chunk_sumsq(x, n, c, arch)
        for c in range(nchunks):  # chunk order: the same for any thread count
            total = total + part[c]
    if floating is double:
        if isinf(total):
            # The float64 sum of squares overflowed (|x| ~ 1e154 or more):
            # recompute it scaled by 1/max|x|, in the same fixed order.
            mx = fm_optim_maxabs_f64(x, n)
            if not isfinite(mx):
                return mx
            inv = 1.0 / mx
            total = 0.0
            for c in range(nchunks):
                total = total + fm_optim_sumsq_scaled_f64(
                    x + c * FM_OPTIM_CHUNK,
                    min(<Py_ssize_t>FM_OPTIM_CHUNK, n - c * FM_OPTIM_CHUNK), inv)
            return mx * sqrt(total)
    return sqrt(total)


def grad_norm(const floating[::1] x, int n_threads=1, int arch=FM_ARCH_AUTO):
    """Global L2 norm of a flat buffer (float64 accumulation, deterministic)."""
    arch = _arch(arch)
    if x.shape[0] == 0:
        return 0.0
    return _norm(&x[0], x.shape[0], arch, n_threads)


def clip_scale(double norm, double clip_norm):
    """The factor clipping multiplies the gradient by: clip / (norm + 1e-6)
    when that is < 1, else 1; 1 for a non-finite norm (nothing is scaled)."""
    if isfinite(norm) and norm + CLIP_EPS > clip_norm:
        return clip_norm / (norm + CLIP_EPS)
    return 1.0


def step(int method, floating[::1] p, const floating[::1] g, floating[::1] s0=None,
         floating[::1] s1=None, floating[::1] s2=None, *, double lr, double momentum=0.0,
         double rho=0.0, double beta1=0.0, double beta2=0.0, double eps=0.0,
         double weight_decay=0.0, double l1=0.0, double clip_norm=0.0, int64_t step=1,
         int n_threads=1, int arch=FM_ARCH_AUTO):
    """One fused optimizer step on flat buffers, in place (p and s0..s2).

    clip_norm > 0 clips the gradient's global L2 norm; the pre-clip norm is
    then returned, else None.
    """
    cdef Py_ssize_t n = p.shape[0]
    cdef int nstate = fm_optim_nstate(method)
    assert nstate >= 0 and g.shape[0] == n
    assert nstate < 1 or (s0 is not None and s0.shape[0] == n)
    assert nstate < 2 or (s1 is not None and s1.shape[0] == n)
    assert nstate < 3 or (s2 is not None and s2.shape[0] == n)
    arch = _arch(arch)
    norm = None
    cdef double scale = 1.0, nrm
    if clip_norm > 0:
        nrm = _norm(&g[0], n, arch, n_threads) if n > 0 else 0.0
        scale = clip_scale(nrm, clip_norm)
        norm = nrm
    if n == 0:
        return norm
    cdef fm_optim_plan plan
    if fm_optim_plan_init(&plan, method, arch, lr, momentum, rho, beta1, beta2, eps,
                          weight_decay, l1, scale, step) != FM_OK:
        raise ValueError(f"optimizer: invalid method code {method} or step {step}")
    cdef const fm_optim_plan *pl = &plan
    cdef floating *pp = &p[0]
    cdef const floating *pg = &g[0]
    cdef floating *ps0 = &s0[0] if nstate >= 1 else NULL
    cdef floating *ps1 = &s1[0] if nstate >= 2 else NULL
    cdef floating *ps2 = &s2[0] if nstate >= 3 else NULL
    cdef Py_ssize_t nchunks = (n + FM_OPTIM_CHUNK - 1) // FM_OPTIM_CHUNK, c
    cdef int nt = _nthreads(n, nchunks, n_threads)
    with nogil:
        if nt > 1:
            for c in prange(nchunks, schedule='static', num_threads=nt):
                if floating is float:
                    fm_optim_step_f32(pl, pp, pg, ps0, ps1, ps2, c * FM_OPTIM_CHUNK,
                                      min(<Py_ssize_t>FM_OPTIM_CHUNK, n - c * FM_OPTIM_CHUNK))
                else:
                    fm_optim_step_f64(pl, pp, pg, ps0, ps1, ps2, c * FM_OPTIM_CHUNK,
                                      min(<Py_ssize_t>FM_OPTIM_CHUNK, n - c * FM_OPTIM_CHUNK))
        else:
            if floating is float:
                fm_optim_step_f32(pl, pp, pg, ps0, ps1, ps2, 0, n)
            else:
                fm_optim_step_f64(pl, pp, pg, ps0, ps1, ps2, 0, n)
    return norm
