# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Whole-network passes of a dense MLP in one call: the forward pass
(prediction) and a training step (`Trainer`: a softmax classifier's whole
step in one call, or any other output's step in two around the caller's loss).

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
from cython.parallel cimport prange

from fastmlp._core.fastmlp_c cimport FM_OK, FM_ERR_NOMEM, FM_ARCH_AUTO
from fastmlp._core.mlp_c cimport *
from fastmlp._core._ndarray cimport estride as _estride, operand
from fastmlp._core.optim_c cimport fm_optim_plan, fm_optim_plan_init, fm_optim_nstate

cnp.import_array()

MAX_LAYERS = FM_MLP_MAX_LAYERS


cdef inline cnp.ndarray _arr(object x, int ndim, int typenum, str what):
    return operand(x, "forward", what, ndim, typenum, False, "x")


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


# all_finite: rows per parallel block, elements below which one thread checks,
# and the row length a long vector is viewed with.
cdef int64_t _FINITE_ROWS = 64
cdef int64_t _FINITE_PAR_MIN = 1 << 20
cdef int64_t _FINITE_BLOCK = 4096


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


def all_finite(x, int n_threads=1):
    """True when x is an aligned, native-byte-order 1-D or 2-D float32/float64
    ndarray (any strides) whose elements are all finite; False otherwise
    (input validation of the fast paths: False sends the caller to full
    validation). Large arrays are checked by n_threads threads (blocks of
    rows; the answer does not depend on the split)."""
    if not cnp.PyArray_Check(x):
        return False
    cdef cnp.ndarray X = <cnp.ndarray>x
    cdef int typenum = cnp.PyArray_TYPE(X)
    cdef int nd = cnp.PyArray_NDIM(X)
    if (nd != 1 and nd != 2) or (typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE) \
            or not cnp.PyArray_ISALIGNED(X) or not cnp.PyArray_ISNOTSWAPPED(X):
        return False
    cdef const char *p = <const char *>cnp.PyArray_DATA(X)
    cdef int64_t m, n, rs, cs
    if nd == 2:
        m, n = cnp.PyArray_DIM(X, 0), cnp.PyArray_DIM(X, 1)
        rs, cs = cnp.PyArray_STRIDE(X, 0), cnp.PyArray_STRIDE(X, 1)
    else:
        m, n = 1, cnp.PyArray_DIM(X, 0)
        rs, cs = 0, cnp.PyArray_STRIDE(X, 0)
        if n > _FINITE_BLOCK and cs == cnp.PyArray_ITEMSIZE(X):
            # a long vector: as rows of _FINITE_BLOCK elements, plus the tail
            m, n, rs = n // _FINITE_BLOCK, _FINITE_BLOCK, _FINITE_BLOCK * cs
            if not all_finite(X[m * _FINITE_BLOCK:], n_threads):
                return False
    cdef int64_t nb = (m + _FINITE_ROWS - 1) // _FINITE_ROWS, b, r0, cnt
    cdef int nt = n_threads if n_threads > 1 and m * n >= _FINITE_PAR_MIN and nb > 1 else 1
    cdef int bad = 0
    with nogil:
        if nt > 1:
            for b in prange(nb, schedule="static", num_threads=nt):
                r0 = b * _FINITE_ROWS
                cnt = min(<int64_t>_FINITE_ROWS, m - r0)
                if typenum == cnp.NPY_FLOAT:
                    if not _finite_s(p + r0 * rs, cnt, n, rs, cs):
                        bad += 1
                else:
                    if not _finite_d(p + r0 * rs, cnt, n, rs, cs):
                        bad += 1
        elif typenum == cnp.NPY_FLOAT:
            bad = not _finite_s(p, m, n, rs, cs)
        else:
            bad = not _finite_d(p, m, n, rs, cs)
    return bad == 0



cdef cnp.ndarray _carr(object x, int ndim, int typenum, str what):
    """x as a C-contiguous, aligned, writeable ndarray of the given dims/dtype."""
    cdef cnp.ndarray a = operand(x, "Trainer", what, ndim, typenum, True, "params")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"Trainer: {what} must be C-contiguous and writeable")
    return a


cdef bint _vector(object x, int64_t m, int typenum):
    """x is a contiguous, aligned, native 1-D array of m values of `typenum`."""
    if not cnp.PyArray_Check(x):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return (cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_TYPE(a) == typenum
            and cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_DIM(a, 0) == m
            and (m <= 1 or cnp.PyArray_STRIDE(a, 0) == cnp.PyArray_ITEMSIZE(a)))


cdef class Trainer:
    """A mini-batch training step of a dense MLP on the compiled core
    (src_c/nn/mlp.c fm_?_mlp_train_step): gather, forward, loss gradient,
    backward, penalty sums and the optimizer update, each call one OpenMP
    parallel region. Built once per fit over the network's flat parameter,
    gradient and optimizer-state buffers and its per-batch work arrays (kept
    alive here). Per batch, either `step` (softmax output + cross-entropy on
    `labels`: the whole step in one call), or `forward`, then the caller's
    loss writing the output gradient into deltas[-1], then `update`. Shapes
    are checked here once; row indices and labels by the C step (out of
    range: ValueError, nothing updated)."""
    cdef object _keep
    cdef int typenum
    cdef int64_t *units
    cdef void **ptrs
    cdef fm_s_mlp_train ts
    cdef fm_d_mlp_train td
    cdef const char *x
    cdef int64_t n_rows, rsx, csx
    cdef const int64_t *labels
    cdef int nstate
    cdef int method

    def __cinit__(self, X, labels, list coefs, list intercepts, list coef_grads,
                  list intercept_grads, list outputs, list deltas, xb, params, grads,
                  Py_ssize_t n_coef, list states, int method, int act, double slope):
        self.units = NULL
        self.ptrs = NULL
        if not cnp.PyArray_Check(params):
            raise TypeError("Trainer: params must be a numpy.ndarray")
        cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>params)
        if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
            raise ValueError("Trainer: params must be float32 or float64")
        self.typenum = typenum
        cdef Py_ssize_t L = len(coefs), i
        if (L < 1 or L > FM_MLP_MAX_LAYERS or len(intercepts) != L or len(coef_grads) != L
                or len(intercept_grads) != L or len(outputs) != L or len(deltas) != L):
            raise ValueError("Trainer: every per-layer list needs one array per layer")
        self.method = method
        self.nstate = fm_optim_nstate(method)
        if self.nstate < 0 or len(states) != self.nstate:
            raise ValueError(f"Trainer: optimizer {method} needs {self.nstate} state "
                             f"buffers, got {len(states)}")
        cdef cnp.ndarray P = _carr(params, 1, typenum, "params")
        cdef cnp.ndarray G = _carr(grads, 1, typenum, "grads")
        cdef int64_t n_params = cnp.PyArray_DIM(P, 0)
        if cnp.PyArray_DIM(G, 0) != n_params or not 0 <= n_coef <= n_params:
            raise ValueError("Trainer: params, grads and n_coef do not match")
        cdef cnp.ndarray XB = _carr(xb, 2, typenum, "xb")
        cdef int64_t cap = cnp.PyArray_DIM(XB, 0)
        self.units = <int64_t *>malloc((L + 1) * sizeof(int64_t))
        self.ptrs = <void **>malloc(6 * L * sizeof(void *))
        if self.units == NULL or self.ptrs == NULL:
            raise MemoryError("Trainer: out of memory")
        self.units[0] = cnp.PyArray_DIM(XB, 1)
        cdef cnp.ndarray a
        keep = [P, G, XB]
        for i in range(L):
            a = _carr(coefs[i], 2, typenum, f"coefs[{i}]")
            if cnp.PyArray_DIM(a, 0) != self.units[i]:
                raise ValueError(f"Trainer: coefs[{i}] has {cnp.PyArray_DIM(a, 0)} rows, "
                                 f"expected {self.units[i]}")
            self.units[i + 1] = cnp.PyArray_DIM(a, 1)
            self.ptrs[i] = cnp.PyArray_DATA(a)
            keep.append(a)
            for j, (arr, name, shape) in enumerate((
                    (intercepts[i], "intercepts", (self.units[i + 1],)),
                    (coef_grads[i], "coef_grads", (self.units[i], self.units[i + 1])),
                    (intercept_grads[i], "intercept_grads", (self.units[i + 1],)),
                    (outputs[i], "outputs", (cap, self.units[i + 1])),
                    (deltas[i], "deltas", (cap, self.units[i + 1])))):
                a = _carr(arr, len(shape), typenum, f"{name}[{i}]")
                if arr.shape != shape:
                    raise ValueError(f"Trainer: {name}[{i}] has shape {arr.shape}, "
                                     f"expected {shape}")
                self.ptrs[(j + 1) * L + i] = cnp.PyArray_DATA(a)
                keep.append(a)
        cdef void *st[3]
        st[0] = st[1] = st[2] = NULL
        for i in range(self.nstate):
            a = _carr(states[i], 1, typenum, f"states[{i}]")
            if cnp.PyArray_DIM(a, 0) != n_params:
                raise ValueError("Trainer: optimizer states must be as long as params")
            st[i] = cnp.PyArray_DATA(a)
            keep.append(a)
        cdef cnp.ndarray Xa = operand(X, "Trainer", "X", 2, typenum, False, "params")
        if cnp.PyArray_DIM(Xa, 1) != self.units[0]:
            raise ValueError(f"Trainer: X has {cnp.PyArray_DIM(Xa, 1)} columns, "
                             f"expected {self.units[0]}")
        self.labels = NULL
        if labels is not None:
            if not _vector(labels, cnp.PyArray_DIM(Xa, 0), cnp.NPY_INT64):
                raise ValueError("Trainer: labels must be contiguous int64, one per row of X")
            keep.append(labels)
            self.labels = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>labels)
        keep.append(Xa)
        self._keep = keep
        self.x = <const char *>cnp.PyArray_DATA(Xa)
        self.n_rows = cnp.PyArray_DIM(Xa, 0)
        self.rsx = _estride(Xa, 0)
        self.csx = _estride(Xa, 1)
        if typenum == cnp.NPY_FLOAT:
            self.ts.n_layers = <int>L
            self.ts.units = self.units
            self.ts.w = <float *const *>self.ptrs
            self.ts.b = <float *const *>(self.ptrs + L)
            self.ts.dw = <float *const *>(self.ptrs + 2 * L)
            self.ts.db = <float *const *>(self.ptrs + 3 * L)
            self.ts.h = <float *const *>(self.ptrs + 4 * L)
            self.ts.g = <float *const *>(self.ptrs + 5 * L)
            self.ts.xb = <float *>cnp.PyArray_DATA(XB)
            self.ts.rows_cap = cap
            self.ts.act = act
            self.ts.slope = <float>slope
            self.ts.params = <float *>cnp.PyArray_DATA(P)
            self.ts.grads = <float *>cnp.PyArray_DATA(G)
            self.ts.s0 = <float *>st[0]
            self.ts.s1 = <float *>st[1]
            self.ts.s2 = <float *>st[2]
            self.ts.n_coef = n_coef
            self.ts.n_params = n_params
        else:
            self.td.n_layers = <int>L
            self.td.units = self.units
            self.td.w = <double *const *>self.ptrs
            self.td.b = <double *const *>(self.ptrs + L)
            self.td.dw = <double *const *>(self.ptrs + 2 * L)
            self.td.db = <double *const *>(self.ptrs + 3 * L)
            self.td.h = <double *const *>(self.ptrs + 4 * L)
            self.td.g = <double *const *>(self.ptrs + 5 * L)
            self.td.xb = <double *>cnp.PyArray_DATA(XB)
            self.td.rows_cap = cap
            self.td.act = act
            self.td.slope = slope
            self.td.params = <double *>cnp.PyArray_DATA(P)
            self.td.grads = <double *>cnp.PyArray_DATA(G)
            self.td.s0 = <double *>st[0]
            self.td.s1 = <double *>st[1]
            self.td.s2 = <double *>st[2]
            self.td.n_coef = n_coef
            self.td.n_params = n_params

    def __dealloc__(self):
        free(self.units)
        free(self.ptrs)

    def step(self, rows, int64_t row0, int64_t m, weights, double wsum, double lr,
             double momentum=0.0, double rho=0.0, double beta1=0.0, double beta2=0.0,
             double eps=0.0, double weight_decay=0.0, double l1=0.0, int64_t t=1,
             bint want_sq=False, bint want_abs=False, int n_threads=1):
        """The whole step of a softmax classifier on the batch X[rows] (an int64
        array of m row indices) or, rows None, X[row0:row0 + m] read in place.
        weights: the batch's m sample weights (float64) or None; wsum their
        sum. The optimizer's hyper-parameters as fastmlp._core._optim.step;
        weight_decay and l1 apply to the weights only. Returns (mean
        cross-entropy, ||W||_2 or 0, sum |W| or 0), the norms over the weights
        the batch was computed with."""
        if self.labels == NULL:
            raise ValueError("Trainer: step needs the labels (built without)")
        return self._run(FM_MLP_STAGE_ALL, rows, row0, m, weights, wsum, lr, momentum, rho,
                         beta1, beta2, eps, weight_decay, l1, t, want_sq, want_abs, n_threads)

    def forward(self, rows, int64_t row0, int64_t m, int n_threads=1):
        """Gather the batch (as `step`) and run the forward pass: the output
        pre-activation is then in outputs[-1][:m]."""
        self._run(FM_MLP_STAGE_FORWARD, rows, row0, m, None, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                  0.0, 0.0, 0.0, 1, False, False, n_threads)

    def update(self, rows, int64_t row0, int64_t m, double lr, double momentum=0.0,
               double rho=0.0, double beta1=0.0, double beta2=0.0, double eps=0.0,
               double weight_decay=0.0, double l1=0.0, int64_t t=1, bint want_sq=False,
               bint want_abs=False, int n_threads=1):
        """After `forward` on the same batch and the caller's output gradient
        written into deltas[-1][:m]: backward pass and optimizer update (as
        `step`). Returns (||W||_2 or 0, sum |W| or 0)."""
        out = self._run(FM_MLP_STAGE_UPDATE, rows, row0, m, None, 1.0, lr, momentum, rho,
                        beta1, beta2, eps, weight_decay, l1, t, want_sq, want_abs, n_threads)
        return out[1], out[2]

    def steps(self, order, int64_t start, int64_t stop, int64_t batch, weights, wsums,
              double lr, double momentum=0.0, double rho=0.0, double beta1=0.0,
              double beta2=0.0, double eps=0.0, eps_scale=None, double alpha=0.0,
              double l1=0.0, int64_t t0=0, bint want_sq=False, bint want_abs=False,
              int n_threads=1):
        """Whole steps of a softmax classifier, one per batch of `batch`
        positions in [start, stop) (the last batch may be shorter), all in ONE
        OpenMP parallel region. order: int64 row indices of X (batch b trains
        on X[order[lo:hi]]) or None (X[lo:hi] read in place). weights: None or
        float64 sample weights aligned with the positions (order's or X's
        rows), wsums then the float64 sum of each batch's weights (else the
        batch sizes). eps_scale: None or one float64 factor of eps per step.
        alpha and l1 are scikit-learn's per-sample penalties: step s decays
        the weights by alpha / wsum_s and applies L1 l1 / wsum_s. Step s uses
        optimizer step count t0 + s + 1. Each step is bitwise the
        `step` call with the same arguments. Returns an (n_steps, 3) float64
        array of step's results (mean cross-entropy, ||W||_2 or 0, sum |W| or
        0). A bad row index or label raises ValueError; the steps before it
        were applied."""
        if self.labels == NULL:
            raise ValueError("Trainer: steps needs the labels (built without)")
        if batch < 1 or start < 0 or stop <= start:
            raise ValueError("Trainer: steps needs batch >= 1 and 0 <= start < stop")
        cdef int64_t n_steps = (stop - start + batch - 1) // batch, span, s, lo
        span = stop if order is None else len(order)
        if order is None and stop > self.n_rows:
            raise ValueError(f"Trainer: stop {stop} is past X's {self.n_rows} rows")
        if order is not None and (not _vector(order, span, cnp.NPY_INT64) or stop > span):
            raise ValueError("Trainer: order must be contiguous int64 indices, at least stop long")
        if weights is not None and (not _vector(weights, len(weights), cnp.NPY_DOUBLE)
                                    or len(weights) < stop):
            raise ValueError("Trainer: weights must be contiguous float64, at least stop long")
        if (weights is None) != (wsums is None) or (
                wsums is not None and not _vector(wsums, n_steps, cnp.NPY_DOUBLE)):
            raise ValueError(f"Trainer: weights need wsums, {n_steps} contiguous float64 sums")
        if eps_scale is not None and not _vector(eps_scale, n_steps, cnp.NPY_DOUBLE):
            raise ValueError(f"Trainer: eps_scale must be {n_steps} contiguous float64 values")
        cdef const int64_t *po = NULL if order is None else \
            <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>order)
        cdef const double *pw = NULL if weights is None else \
            <const double *>cnp.PyArray_DATA(<cnp.ndarray>weights)
        cdef const double *ps = NULL if wsums is None else \
            <const double *>cnp.PyArray_DATA(<cnp.ndarray>wsums)
        cdef const double *pe = NULL if eps_scale is None else \
            <const double *>cnp.PyArray_DATA(<cnp.ndarray>eps_scale)
        out = np.zeros((n_steps, 3), np.float64)
        cdef double *pout = <double *>cnp.PyArray_DATA(<cnp.ndarray>out)
        cdef fm_optim_plan *plans = <fm_optim_plan *>malloc(2 * n_steps * sizeof(fm_optim_plan))
        cdef fm_s_mlp_batch *bs = NULL
        cdef fm_d_mlp_batch *bd = NULL
        if self.typenum == cnp.NPY_FLOAT:
            bs = <fm_s_mlp_batch *>malloc(n_steps * sizeof(fm_s_mlp_batch))
        else:
            bd = <fm_d_mlp_batch *>malloc(n_steps * sizeof(fm_d_mlp_batch))
        if plans == NULL or (bs == NULL and bd == NULL):
            free(plans); free(bs); free(bd)
            raise MemoryError("Trainer: out of memory")
        cdef int64_t done = 0, m
        cdef int status = FM_OK
        cdef double e, ws
        try:
            for s in range(n_steps):
                lo = start + s * batch
                m = stop - lo if stop - lo < batch else batch
                e = eps if pe == NULL else eps * pe[s]
                ws = <double>m if ps == NULL else ps[s]
                if (fm_optim_plan_init(&plans[s], self.method, FM_ARCH_AUTO, lr, momentum, rho,
                                       beta1, beta2, e, alpha / ws, l1 / ws, 1.0, t0 + s + 1)
                        != FM_OK or
                        fm_optim_plan_init(&plans[n_steps + s], self.method, FM_ARCH_AUTO, lr,
                                           momentum, rho, beta1, beta2, e, 0.0, 0.0, 1.0,
                                           t0 + s + 1) != FM_OK):
                    raise ValueError(f"Trainer: invalid optimizer {self.method} or step")
                if bs != NULL:
                    bs[s].x = <const float *>self.x
                    bs[s].n_rows = self.n_rows
                    bs[s].rsx = self.rsx
                    bs[s].csx = self.csx
                    bs[s].rows = NULL if po == NULL else po + lo
                    bs[s].row0 = lo
                    bs[s].m = m
                    bs[s].labels = self.labels
                    bs[s].w = NULL if pw == NULL else pw + lo
                    bs[s].wsum = ws
                else:
                    bd[s].x = <const double *>self.x
                    bd[s].n_rows = self.n_rows
                    bd[s].rsx = self.rsx
                    bd[s].csx = self.csx
                    bd[s].rows = NULL if po == NULL else po + lo
                    bd[s].row0 = lo
                    bd[s].m = m
                    bd[s].labels = self.labels
                    bd[s].w = NULL if pw == NULL else pw + lo
                    bd[s].wsum = ws
            with nogil:
                if bs != NULL:
                    status = fm_s_mlp_train_steps(FM_ARCH_AUTO, &self.ts, bs, plans,
                                                  plans + n_steps, want_sq, want_abs,
                                                  FM_MLP_STAGE_ALL, n_steps, n_threads, pout,
                                                  &done)
                else:
                    status = fm_d_mlp_train_steps(FM_ARCH_AUTO, &self.td, bd, plans,
                                                  plans + n_steps, want_sq, want_abs,
                                                  FM_MLP_STAGE_ALL, n_steps, n_threads, pout,
                                                  &done)
        finally:
            free(plans)
            free(bs)
            free(bd)
        if status == FM_ERR_NOMEM:
            raise MemoryError("Trainer: could not allocate the steps' workspace")
        if status != FM_OK:
            raise ValueError(f"Trainer: step {done} of {n_steps}: a row index or label is out "
                             "of range, a batch is larger than the work buffers, or a wsum "
                             "<= 0 (the steps before it were applied)")
        return out

    cdef tuple _run(self, int stages, rows, int64_t row0, int64_t m, weights, double wsum,
                    double lr, double momentum, double rho, double beta1, double beta2,
                    double eps, double weight_decay, double l1, int64_t t, bint want_sq,
                    bint want_abs, int n_threads):
        cdef const int64_t *prows = NULL
        cdef const double *pw = NULL
        if rows is not None:
            if not _vector(rows, m, cnp.NPY_INT64):
                raise ValueError(f"Trainer: rows must be {m} contiguous int64 indices")
            prows = <const int64_t *>cnp.PyArray_DATA(<cnp.ndarray>rows)
        if weights is not None:
            if not _vector(weights, m, cnp.NPY_DOUBLE):
                raise ValueError(f"Trainer: weights must be {m} contiguous float64 values")
            pw = <const double *>cnp.PyArray_DATA(<cnp.ndarray>weights)
        cdef fm_optim_plan pl_w, pl_b
        cdef const fm_optim_plan *ppw = NULL
        cdef const fm_optim_plan *ppb = NULL
        if stages & FM_MLP_STAGE_UPDATE:
            if (fm_optim_plan_init(&pl_w, self.method, FM_ARCH_AUTO, lr, momentum, rho, beta1,
                                   beta2, eps, weight_decay, l1, 1.0, t) != FM_OK or
                    fm_optim_plan_init(&pl_b, self.method, FM_ARCH_AUTO, lr, momentum, rho,
                                       beta1, beta2, eps, 0.0, 0.0, 1.0, t) != FM_OK):
                raise ValueError(f"Trainer: invalid optimizer {self.method} or step {t}")
            ppw, ppb = &pl_w, &pl_b
        cdef double out[3]
        cdef int status
        cdef fm_s_mlp_batch bs
        cdef fm_d_mlp_batch bd
        if self.typenum == cnp.NPY_FLOAT:
            bs.x = <const float *>self.x
            bs.n_rows = self.n_rows
            bs.rsx = self.rsx
            bs.csx = self.csx
            bs.rows = prows
            bs.row0 = row0
            bs.m = m
            bs.labels = self.labels
            bs.w = pw
            bs.wsum = wsum
            with nogil:
                status = fm_s_mlp_train_step(FM_ARCH_AUTO, &self.ts, &bs, ppw, ppb, want_sq,
                                             want_abs, stages, n_threads, out)
        else:
            bd.x = <const double *>self.x
            bd.n_rows = self.n_rows
            bd.rsx = self.rsx
            bd.csx = self.csx
            bd.rows = prows
            bd.row0 = row0
            bd.m = m
            bd.labels = self.labels
            bd.w = pw
            bd.wsum = wsum
            with nogil:
                status = fm_d_mlp_train_step(FM_ARCH_AUTO, &self.td, &bd, ppw, ppb, want_sq,
                                             want_abs, stages, n_threads, out)
        if status == FM_ERR_NOMEM:
            raise MemoryError("Trainer: could not allocate the step's workspace")
        if status != FM_OK:
            raise ValueError("Trainer: a row index or label is out of range, the batch "
                             "is larger than the work buffers, or wsum <= 0")
        return out[0], out[1], out[2]
