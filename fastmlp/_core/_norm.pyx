# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Thin Cython drivers over the normalisation, bias-gradient and dropout
kernels (src_c/nn/norm.h).

Design: arguments were validated in fastmlp.ops; here only shapes are
asserted. Matrices arrive with unit column stride (ops copies otherwise) and
any row stride. The GIL is released and OpenMP threads (prange, static
schedule, an explicit n_threads) run the C kernels on FIXED blocks:

* column reductions: tiles of FM_NORM_BLOCK_ROWS rows x a chunk of columns
  (whole rows when there are enough row blocks for the threads, which keeps
  the reads streaming), each writing its own slice of a float64 scratch
  table (one row per row block); then fm_norm_block_reduce adds the table's
  rows with a fixed pairwise tree (parallel over column chunks). The column
  chunking never changes a result (columns are independent); the row blocks
  and the tree are fixed by the shape alone, so results are bitwise
  identical for any thread count;
* element-wise passes: blocks of rows (or elements), any split is exact.

Problems below PAR_MIN elements run on one thread.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint32_t, uint64_t
from cython cimport floating

import numpy as np

from fastmlp._core.fastmlp_c cimport FM_ARCH_AUTO, FM_OK
from fastmlp._core.norm_c cimport *

BLOCK_ROWS = FM_NORM_BLOCK_ROWS
LANES = FM_NORM_LANES
ARCH_AUTO = FM_ARCH_AUTO

cdef int64_t PAR_MIN = 1 << 15    # elements; smaller problems run on one thread
cdef int64_t CHUNK_COLS = 512     # column chunk of the block-table reduction
cdef int64_t REDUCE_PAR_MIN = 1 << 20  # table entries; smaller tables are reduced serially
cdef int64_t LN_ROWS = 8          # rows per task of the layer-norm forward
cdef int64_t DROPOUT_CHUNK = 1 << 14  # elements per dropout task (multiple of 4)


def _set_parallel_thresholds(par_min=None, reduce_par_min=None):
    """Test hook: set the work thresholds below which a kernel, or a block-table
    reduction, runs on one thread (so tests can take the parallel paths on
    small arrays). Returns the previous (par_min, reduce_par_min)."""
    global PAR_MIN, REDUCE_PAR_MIN
    old = (PAR_MIN, REDUCE_PAR_MIN)
    if par_min is not None:
        PAR_MIN = par_min
    if reduce_par_min is not None:
        REDUCE_PAR_MIN = reduce_par_min
    return old


cdef int _arch(int arch) except -2:
    cdef int a = fm_norm_arch(arch)
    if a < 0:
        raise ValueError(f"kernel architecture {arch} is not usable on this machine")
    return a


cdef inline int _nt(int n_threads, int64_t work, int64_t tasks) noexcept nogil:
    if n_threads < 1 or work < PAR_MIN or tasks < 2:
        return 1
    return <int>min(<int64_t>n_threads, tasks)


cdef inline int64_t _cdiv(int64_t a, int64_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline int64_t _tile_cols(int64_t c, int64_t nb, int n_threads) noexcept nogil:
    """Column chunk of a reduction tile: whole rows if there are >= 4 row blocks
    per thread, else chunks (>= 128 columns, multiple of 16) for ~4 tiles per thread."""
    cdef int64_t want = 4 * <int64_t>max(n_threads, 1), k
    if nb >= want or c <= 128:
        return max(c, 1)
    k = min(_cdiv(want, nb), _cdiv(c, 128))
    return _cdiv(_cdiv(c, k), 16) * 16


cdef inline bint _unit_cols(Py_ssize_t stride1, Py_ssize_t extent, Py_ssize_t isz):
    return extent <= 1 or stride1 == isz


cdef void _reduce_table(double[:, ::1] p, int nt) noexcept nogil:
    """p[0, :] = pairwise sum of the rows of p (fixed tree), parallel over column
    chunks when the table is large (a small one is not worth a parallel region)."""
    cdef int64_t nb = p.shape[0], c = p.shape[1], ncc = _cdiv(c, CHUNK_COLS), t, c0
    if nb <= 1 or c == 0:
        return
    if ncc == 1 or nb * c < REDUCE_PAR_MIN:
        nt = 1
    for t in prange(ncc, schedule='static', num_threads=nt):
        c0 = t * CHUNK_COLS
        fm_norm_block_reduce(nb, min(CHUNK_COLS, c - c0), &p[0, 0] + c0, c)


cdef double[:, ::1] _colsum(const floating[:, :] x, const double *pm, int n_threads, int arch):
    """Block table of column sums of x (pm NULL) or of (x - pm)^2 (pm: c values)."""
    cdef int64_t n = x.shape[0], c = x.shape[1]
    cdef int64_t nb = _cdiv(n, FM_NORM_BLOCK_ROWS), tc = _tile_cols(c, nb, n_threads)
    cdef int64_t ncc = _cdiv(c, tc)
    cdef double[:, ::1] p = np.empty((nb, c), np.float64)
    if n == 0 or c == 0:
        return p
    assert _unit_cols(x.strides[1], c, sizeof(floating))
    cdef int64_t ld = x.strides[0] // <int64_t>sizeof(floating)
    cdef const floating *px = &x[0, 0]
    cdef double *pp = &p[0, 0]
    cdef int64_t t, r0, c0, rows, cols
    cdef int nt = _nt(n_threads, n * c, nb * ncc)
    with nogil:
        for t in prange(nb * ncc, schedule='static', num_threads=nt):
            r0 = (t // ncc) * FM_NORM_BLOCK_ROWS
            c0 = (t % ncc) * tc
            rows = min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0)
            cols = min(tc, c - c0)
            if floating is float:
                if pm == NULL:
                    fm_norm_colsum_s(arch, rows, cols, px + r0 * ld + c0, ld, pp + (t // ncc) * c + c0)
                else:
                    fm_norm_colsumsq_s(arch, rows, cols, px + r0 * ld + c0, ld, pm + c0,
                                       pp + (t // ncc) * c + c0)
            else:
                if pm == NULL:
                    fm_norm_colsum_d(arch, rows, cols, px + r0 * ld + c0, ld, pp + (t // ncc) * c + c0)
                else:
                    fm_norm_colsumsq_d(arch, rows, cols, px + r0 * ld + c0, ld, pm + c0,
                                       pp + (t // ncc) * c + c0)
        _reduce_table(p, nt)
    return p


def bias_grad(const floating[:, :] g, floating[:] out, int n_threads=1, int arch=FM_ARCH_AUTO):
    """out[c] = sum over rows of g[:, c] (float64 blocked pairwise sums, rounded once)."""
    arch = _arch(arch)
    cdef int64_t n = g.shape[0], c = g.shape[1], j
    assert out.shape[0] == c
    if c == 0:
        return
    if n == 0:
        out[:] = 0
        return
    cdef double[:, ::1] p = _colsum(g, NULL, n_threads, arch)
    for j in range(c):
        out[j] = <floating>p[0, j]


def column_sums(const floating[:, :] x, double[::1] out, const double[::1] mean=None,
                int n_threads=1, int arch=FM_ARCH_AUTO):
    """out[c] = sum_r x[r, c], or sum_r (x[r, c] - mean[c])^2 when mean is given (float64)."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1], j
    assert out.shape[0] == c
    if c == 0:
        return
    if n == 0:
        out[:] = 0
        return
    cdef const double *pm = NULL
    if mean is not None:
        assert mean.shape[0] == c
        pm = &mean[0]
    cdef double[:, ::1] p = _colsum(x, pm, n_threads, arch)
    for j in range(c):
        out[j] = p[0, j]


def column_stats(const floating[:, :] x, double[::1] mean, double[::1] m2, int n_threads=1,
                 int arch=FM_ARCH_AUTO):
    """Per column: mean and m2 = sum of squared deviations from it (float64).

    One pass over x: each fixed block of rows gets its own mean and m2 (two
    passes over the block while it is in cache), and the blocks are merged by
    a fixed pairwise tree with Chan et al.'s formula."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1], j
    assert mean.shape[0] == c and m2.shape[0] == c and n > 0
    if c == 0:
        return
    assert _unit_cols(x.strides[1], c, sizeof(floating))
    cdef int64_t nb = _cdiv(n, FM_NORM_BLOCK_ROWS), tc = _tile_cols(c, nb, n_threads)
    cdef int64_t ncc = _cdiv(c, tc)
    cdef double[:, ::1] pm = np.empty((nb, c), np.float64)
    cdef double[:, ::1] pq = np.empty((nb, c), np.float64)
    cdef int64_t ld = x.strides[0] // <int64_t>sizeof(floating)
    cdef const floating *px = &x[0, 0]
    cdef double *qm = &pm[0, 0]
    cdef double *qq = &pq[0, 0]
    cdef int64_t t, r0, c0, rows, cols, off
    cdef int nt = _nt(n_threads, n * c, nb * ncc)
    cdef int ntr = nt if _cdiv(c, CHUNK_COLS) > 1 and nb * c >= REDUCE_PAR_MIN else 1
    with nogil:
        for t in prange(nb * ncc, schedule='static', num_threads=nt):
            r0 = (t // ncc) * FM_NORM_BLOCK_ROWS
            c0 = (t % ncc) * tc
            rows = min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0)
            cols = min(tc, c - c0)
            off = (t // ncc) * c + c0
            if floating is float:
                fm_norm_colstats_s(arch, rows, cols, px + r0 * ld + c0, ld, qm + off, qq + off)
            else:
                fm_norm_colstats_d(arch, rows, cols, px + r0 * ld + c0, ld, qm + off, qq + off)
        if nb > 1:
            for t in prange(_cdiv(c, CHUNK_COLS), schedule='static', num_threads=ntr):
                c0 = t * CHUNK_COLS
                fm_norm_stats_reduce(nb, n, FM_NORM_BLOCK_ROWS, min(CHUNK_COLS, c - c0), qm + c0,
                                     qq + c0, c)
    for j in range(c):
        mean[j] = pm[0, j]
        m2[j] = pq[0, j]


def affine(const floating[:, :] x, const double[::1] shift, const double[::1] scale,
           const double[::1] offset, floating[:, :] y, int n_threads=1, int arch=FM_ARCH_AUTO):
    """y = (x - shift) * scale + offset per column, in float64 (y may be x)."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1]
    assert y.shape[0] == n and y.shape[1] == c
    assert shift.shape[0] == c and scale.shape[0] == c and offset.shape[0] == c
    if n == 0 or c == 0:
        return
    assert _unit_cols(x.strides[1], c, sizeof(floating))
    assert _unit_cols(y.strides[1], c, sizeof(floating))
    cdef int64_t ldx = x.strides[0] // <int64_t>sizeof(floating)
    cdef int64_t ldy = y.strides[0] // <int64_t>sizeof(floating)
    cdef const floating *px = &x[0, 0]
    cdef floating *py = &y[0, 0]
    cdef int64_t nb = _cdiv(n, FM_NORM_BLOCK_ROWS), t, r0
    cdef int nt = _nt(n_threads, n * c, nb)
    with nogil:
        for t in prange(nb, schedule='static', num_threads=nt):
            r0 = t * FM_NORM_BLOCK_ROWS
            if floating is float:
                fm_norm_affine_s(arch, min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0), c, px + r0 * ldx,
                                 ldx, &shift[0], &scale[0], &offset[0], py + r0 * ldy, ldy)
            else:
                fm_norm_affine_d(arch, min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0), c, px + r0 * ldx,
                                 ldx, &shift[0], &scale[0], &offset[0], py + r0 * ldy, ldy)


def batch_norm_backward_sums(const floating[:, :] dy, const floating[:, :] x,
                             const double[::1] mean, double[::1] sum_dy, double[::1] sum_dyxc,
                             int n_threads=1, int arch=FM_ARCH_AUTO):
    """sum_dy[c] = sum_r dy[r, c]; sum_dyxc[c] = sum_r dy[r, c] * (x[r, c] - mean[c])."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1], j
    assert dy.shape[0] == n and dy.shape[1] == c and mean.shape[0] == c
    assert sum_dy.shape[0] == c and sum_dyxc.shape[0] == c
    if c == 0:
        return
    if n == 0:
        sum_dy[:] = 0
        sum_dyxc[:] = 0
        return
    assert _unit_cols(x.strides[1], c, sizeof(floating))
    assert _unit_cols(dy.strides[1], c, sizeof(floating))
    cdef int64_t nb = _cdiv(n, FM_NORM_BLOCK_ROWS), tc = _tile_cols(c, nb, n_threads)
    cdef int64_t ncc = _cdiv(c, tc)
    cdef double[:, ::1] p1 = np.empty((nb, c), np.float64)
    cdef double[:, ::1] p2 = np.empty((nb, c), np.float64)
    cdef int64_t ldx = x.strides[0] // <int64_t>sizeof(floating)
    cdef int64_t ldd = dy.strides[0] // <int64_t>sizeof(floating)
    cdef const floating *px = &x[0, 0]
    cdef const floating *pd = &dy[0, 0]
    cdef double *q1 = &p1[0, 0]
    cdef double *q2 = &p2[0, 0]
    cdef int64_t t, r0, c0, rows, cols, off
    cdef int nt = _nt(n_threads, n * c, nb * ncc)
    with nogil:
        for t in prange(nb * ncc, schedule='static', num_threads=nt):
            r0 = (t // ncc) * FM_NORM_BLOCK_ROWS
            c0 = (t % ncc) * tc
            rows = min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0)
            cols = min(tc, c - c0)
            off = (t // ncc) * c + c0
            if floating is float:
                fm_norm_bn_bwd_sums_s(arch, rows, cols, pd + r0 * ldd + c0, ldd, px + r0 * ldx + c0,
                                      ldx, &mean[0] + c0, q1 + off, q2 + off)
            else:
                fm_norm_bn_bwd_sums_d(arch, rows, cols, pd + r0 * ldd + c0, ldd, px + r0 * ldx + c0,
                                      ldx, &mean[0] + c0, q1 + off, q2 + off)
        _reduce_table(p1, nt)
        _reduce_table(p2, nt)
    for j in range(c):
        sum_dy[j] = p1[0, j]
        sum_dyxc[j] = p2[0, j]


def batch_norm_backward_dx(const floating[:, :] dy, const floating[:, :] x,
                           const double[::1] mean, const double[::1] a, const double[::1] b,
                           const double[::1] k, floating[:, :] dx, int n_threads=1,
                           int arch=FM_ARCH_AUTO):
    """dx = a * dy - b * (x - mean) - k per column, in float64."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1]
    assert dy.shape[0] == n and dy.shape[1] == c and dx.shape[0] == n and dx.shape[1] == c
    assert mean.shape[0] == c and a.shape[0] == c and b.shape[0] == c and k.shape[0] == c
    if n == 0 or c == 0:
        return
    cdef Py_ssize_t isz = sizeof(floating)
    assert _unit_cols(x.strides[1], c, isz) and _unit_cols(dy.strides[1], c, isz)
    assert _unit_cols(dx.strides[1], c, isz)
    cdef int64_t ldx = x.strides[0] // isz, ldd = dy.strides[0] // isz, ldo = dx.strides[0] // isz
    cdef const floating *px = &x[0, 0]
    cdef const floating *pd = &dy[0, 0]
    cdef floating *po = &dx[0, 0]
    cdef int64_t nb = _cdiv(n, FM_NORM_BLOCK_ROWS), t, r0
    cdef int nt = _nt(n_threads, n * c, nb)
    with nogil:
        for t in prange(nb, schedule='static', num_threads=nt):
            r0 = t * FM_NORM_BLOCK_ROWS
            if floating is float:
                fm_norm_bn_bwd_dx_s(arch, min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0), c, pd + r0 * ldd,
                                    ldd, px + r0 * ldx, ldx, &mean[0], &a[0], &b[0], &k[0],
                                    po + r0 * ldo, ldo)
            else:
                fm_norm_bn_bwd_dx_d(arch, min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0), c, pd + r0 * ldd,
                                    ldd, px + r0 * ldx, ldx, &mean[0], &a[0], &b[0], &k[0],
                                    po + r0 * ldo, ldo)


def layer_norm_forward(const floating[:, :] x, const double[::1] gamma, const double[::1] beta,
                       double eps, floating[:, :] y, double[::1] mean, double[::1] rstd,
                       int n_threads=1, int arch=FM_ARCH_AUTO):
    """Per row: mean, rstd = 1/sqrt(biased var + eps), y = (x - mean) * rstd * gamma + beta."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1]
    assert y.shape[0] == n and y.shape[1] == c and mean.shape[0] == n and rstd.shape[0] == n
    assert gamma.shape[0] == c and beta.shape[0] == c and c > 0
    if n == 0:
        return
    cdef Py_ssize_t isz = sizeof(floating)
    assert _unit_cols(x.strides[1], c, isz) and _unit_cols(y.strides[1], c, isz)
    cdef int64_t ldx = x.strides[0] // isz, ldy = y.strides[0] // isz
    cdef const floating *px = &x[0, 0]
    cdef floating *py = &y[0, 0]
    cdef int64_t nb = _cdiv(n, LN_ROWS), t, r0
    cdef int nt = _nt(n_threads, n * c, nb)
    with nogil:
        for t in prange(nb, schedule='static', num_threads=nt):
            r0 = t * LN_ROWS
            if floating is float:
                fm_norm_ln_fwd_s(arch, min(LN_ROWS, n - r0), c, px + r0 * ldx, ldx, &gamma[0],
                                 &beta[0], eps, py + r0 * ldy, ldy, &mean[r0], &rstd[r0])
            else:
                fm_norm_ln_fwd_d(arch, min(LN_ROWS, n - r0), c, px + r0 * ldx, ldx, &gamma[0],
                                 &beta[0], eps, py + r0 * ldy, ldy, &mean[r0], &rstd[r0])


def layer_norm_backward(const floating[:, :] dy, const floating[:, :] x, const double[::1] mean,
                        const double[::1] rstd, const double[::1] gamma, floating[:, :] dx,
                        double[::1] dgamma, double[::1] dbeta, int n_threads=1,
                        int arch=FM_ARCH_AUTO):
    """dx (closed form per row) and dgamma = sum_r dy * xhat, dbeta = sum_r dy (float64)."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], c = x.shape[1], j
    assert dy.shape[0] == n and dy.shape[1] == c and dx.shape[0] == n and dx.shape[1] == c
    assert mean.shape[0] == n and rstd.shape[0] == n and gamma.shape[0] == c
    assert dgamma.shape[0] == c and dbeta.shape[0] == c and c > 0
    if n == 0:
        dgamma[:] = 0
        dbeta[:] = 0
        return
    cdef Py_ssize_t isz = sizeof(floating)
    assert _unit_cols(x.strides[1], c, isz) and _unit_cols(dy.strides[1], c, isz)
    assert _unit_cols(dx.strides[1], c, isz)
    cdef int64_t ldx = x.strides[0] // isz, ldd = dy.strides[0] // isz, ldo = dx.strides[0] // isz
    cdef int64_t nb = _cdiv(n, FM_NORM_BLOCK_ROWS), t, r0, rows
    cdef double[:, ::1] p1 = np.empty((nb, c), np.float64)
    cdef double[:, ::1] p2 = np.empty((nb, c), np.float64)
    cdef const floating *px = &x[0, 0]
    cdef const floating *pd = &dy[0, 0]
    cdef floating *po = &dx[0, 0]
    cdef double *q1 = &p1[0, 0]
    cdef double *q2 = &p2[0, 0]
    cdef int nt = _nt(n_threads, n * c, nb)
    with nogil:
        for t in prange(nb, schedule='static', num_threads=nt):
            r0 = t * FM_NORM_BLOCK_ROWS
            rows = min(<int64_t>FM_NORM_BLOCK_ROWS, n - r0)
            if floating is float:
                fm_norm_ln_bwd_s(arch, rows, c, pd + r0 * ldd, ldd, px + r0 * ldx, ldx, &mean[r0],
                                 &rstd[r0], &gamma[0], po + r0 * ldo, ldo, q1 + t * c, q2 + t * c)
            else:
                fm_norm_ln_bwd_d(arch, rows, c, pd + r0 * ldd, ldd, px + r0 * ldx, ldx, &mean[r0],
                                 &rstd[r0], &gamma[0], po + r0 * ldo, ldo, q1 + t * c, q2 + t * c)
        _reduce_table(p1, _nt(n_threads, nb * c, 2))
        _reduce_table(p2, _nt(n_threads, nb * c, 2))
    for j in range(c):
        dgamma[j] = p1[0, j]
        dbeta[j] = p2[0, j]


def dropout(const floating[::1] x, floating[::1] y, double keep, uint64_t seed,
            int64_t start=0, int n_threads=1, int arch=FM_ARCH_AUTO):
    """y = x * mask / keep (flat C-order elements start, start+1, ...; y may be x)."""
    arch = _arch(arch)
    cdef int64_t n = x.shape[0], t, i0
    assert y.shape[0] == n and 0.0 < keep <= 1.0 and start >= 0
    if n == 0:
        return
    cdef const floating *px = &x[0]
    cdef floating *py = &y[0]
    cdef int64_t nb = _cdiv(n, DROPOUT_CHUNK)
    cdef int nt = _nt(n_threads, n, nb)
    with nogil:
        for t in prange(nb, schedule='static', num_threads=nt):
            i0 = t * DROPOUT_CHUNK
            if floating is float:
                fm_dropout_s(arch, start + i0, min(DROPOUT_CHUNK, n - i0), px + i0, py + i0, seed, keep)
            else:
                fm_dropout_d(arch, start + i0, min(DROPOUT_CHUNK, n - i0), px + i0, py + i0, seed, keep)


def philox4x32_10(const uint32_t[:, ::1] ctr, const uint32_t[::1] key, int arch=FM_ARCH_AUTO):
    """Philox4x32-10 of each row of ctr (n x 4 uint32) under key (2 uint32): n x 4 uint32.
    Test hook for the known-answer vectors of both implementations."""
    assert ctr.shape[1] == 4 and key.shape[0] == 2
    out = np.zeros((ctr.shape[0], 4), np.uint32)
    cdef uint32_t[:, ::1] o = out
    if ctr.shape[0] == 0:
        return out
    if fm_philox4x32_10_many(arch, ctr.shape[0], &ctr[0, 0], &key[0], &o[0, 0]) != FM_OK:
        raise ValueError(f"kernel architecture {arch} is not usable on this machine")
    return out
