/* Small-m GEMM kernel template (AVX2 + FMA), included by gemm_smallm_avx2.c
 * once per dtype with
 *   FT, VT (vector type), VL (lanes), SM(n) name mangler, ARGS (fm_?ukr_args)
 *   V_ZERO V_SET1 V_BCAST V_LOAD V_MLOAD V_STORE V_MSTORE V_FMA V_MUL V_ADD
 *   V_MASK(r) (mask of the first r lanes), V_ACT (vector activation,
 *   epilogue_avx2.h), SCALAR_ACT_AFTER (1: sigmoid/tanh per element after the
 *   store, as the float64 micro-kernel does), ACT_SCALAR (epilogue.h).
 *
 * C (m x n) = act(alpha * A @ B + beta * C + bias) for a B with unit column
 * stride, without packing. See gemm_smallm_avx2.c for the design.
 */

#define SM_MGMAX 4   /* rows per group */
#define SM_NVMAX 8   /* vectors per column chunk */
#define SM_ROWW (4096 / (int)sizeof(FT))  /* columns per panel of the 1-row kernel (4 KB) */

/* A K block's store for one row of C, `ncols` <= SM_ROWW columns from the
 * block's sums, as the blocked driver's micro-kernel store: alpha * sum, then
 * + beta * C on the first block (C unread when beta == 0) or + the running
 * total on later ones (the driver's beta = 1), and on the last block + bias
 * and the activation. C holds the running total between blocks. */
static void SM(store)(const FT *sums, int ncols, int first, int last, FT *ci, int64_t csc,
                      const FT *bias, const ARGS *args) {
    FT tmp[SM_ROWW] __attribute__((aligned(32)));
    const VT valpha = V_SET1(args->alpha), vbeta = V_SET1(args->beta);
    const VT vslope = V_SET1(args->slope);
    const int read_c = !first || args->beta != 0;
    const int act = last ? args->act : FM_ACT_NONE;
    const int nv = (ncols + VL - 1) / VL;
    const MT mask = V_MASK(ncols - (nv - 1) * VL);
    /* A strided C row goes through tmp. */
    FT *dst = csc == 1 ? ci : tmp;
    if (csc != 1 && read_c)
        for (int j = 0; j < ncols; j++) tmp[j] = ci[j * csc];
    for (int v = 0; v < nv; v++) {
        const int mv = v == nv - 1;  /* the last vector is masked (maybe to all lanes) */
        VT x = V_MUL(valpha, V_LOAD(sums + v * VL));
        if (read_c) {
            const VT cv = mv ? V_MLOAD(dst + v * VL, mask) : V_LOAD(dst + v * VL);
            x = first ? V_FMA(vbeta, cv, x) : V_ADD(x, cv);
        }
        if (last && bias)
            x = V_ADD(x, mv ? V_MLOAD(bias + v * VL, mask) : V_LOAD(bias + v * VL));
        x = V_ACT(x, act, vslope);
        if (mv) V_MSTORE(dst + v * VL, mask, x);
        else V_STORE(dst + v * VL, x);
    }
    if (SCALAR_ACT_AFTER && (act == FM_ACT_SIGMOID || act == FM_ACT_TANH))
        for (int j = 0; j < ncols; j++) dst[j] = ACT_SCALAR(dst[j], act, args->slope);
    if (csc != 1)
        for (int j = 0; j < ncols; j++) ci[j * csc] = tmp[j];
}

/* One row of A (m = 1) whose n columns are whole rows of a contiguous B
 * (rsb == n, n <= SM_ROWW): nothing in B is used twice, and B is one
 * contiguous stream. Its rows are read in order, four at a time, into
 * accumulators that stay in L1:  acc[j] = fma(a[p+3], B[p+3, j], ... fma(a[p],
 * B[p, j], acc[j]))  -- still one FMA per k step per element, in k order.
 * The hardware prefetchers follow the stream; column chunks of a few vectors
 * per row, read with the row stride, are slower here (float64 784x256:
 * 26 against 37 us; float32: 12.7 against 15 us). But when a thread's column
 * range is only part of each row, streaming makes the prefetchers fetch the
 * other threads' parts too, and the chunked kernel (rows1c) is faster. */
static void SM(rows1s)(int64_t n, int64_t k, int64_t kc, const FT *a, int64_t rsa, int64_t csa,
                      const FT *b, int64_t rsb, FT *c, int64_t rsc, int64_t csc,
                      const ARGS *args) {
    FT acc[SM_ROWW] __attribute__((aligned(32)));
    (void)rsa;
    (void)rsc;
    for (int64_t j0 = 0; j0 < n; j0 += SM_ROWW) {
        const int nw = n - j0 < SM_ROWW ? (int)(n - j0) : SM_ROWW;
        const int nfull = nw / VL, rest = nw - nfull * VL;
        const MT mask = V_MASK(rest ? rest : VL);
        const FT *bj = b + j0;
        for (int64_t p0 = 0; p0 < k; p0 += kc) {
            const int64_t p1 = k - p0 < kc ? k : p0 + kc;
            for (int j = 0; j < nw; j += VL) V_STORE(acc + j, V_ZERO());
            int64_t p = p0;
            for (; p + 4 <= p1; p += 4) {
                const VT a0 = V_BCAST(a + p * csa), a1 = V_BCAST(a + (p + 1) * csa);
                const VT a2 = V_BCAST(a + (p + 2) * csa), a3 = V_BCAST(a + (p + 3) * csa);
                const FT *b0 = bj + p * rsb, *b1 = b0 + rsb, *b2 = b1 + rsb, *b3 = b2 + rsb;
                for (int v = 0; v < nfull; v++) {
                    VT x = V_LOAD(acc + v * VL);
                    x = V_FMA(a0, V_LOAD(b0 + v * VL), x);
                    x = V_FMA(a1, V_LOAD(b1 + v * VL), x);
                    x = V_FMA(a2, V_LOAD(b2 + v * VL), x);
                    x = V_FMA(a3, V_LOAD(b3 + v * VL), x);
                    V_STORE(acc + v * VL, x);
                }
                if (rest) {
                    const int o = nfull * VL;
                    VT x = V_LOAD(acc + o);
                    x = V_FMA(a0, V_MLOAD(b0 + o, mask), x);
                    x = V_FMA(a1, V_MLOAD(b1 + o, mask), x);
                    x = V_FMA(a2, V_MLOAD(b2 + o, mask), x);
                    x = V_FMA(a3, V_MLOAD(b3 + o, mask), x);
                    V_STORE(acc + o, x);
                }
            }
            for (; p < p1; p++) {
                const VT a0 = V_BCAST(a + p * csa);
                const FT *b0 = bj + p * rsb;
                for (int v = 0; v < nfull; v++)
                    V_STORE(acc + v * VL, V_FMA(a0, V_LOAD(b0 + v * VL), V_LOAD(acc + v * VL)));
                if (rest) {
                    const int o = nfull * VL;
                    V_STORE(acc + o, V_FMA(a0, V_MLOAD(b0 + o, mask), V_LOAD(acc + o)));
                }
            }
            SM(store)(acc, nw, p0 == 0, p1 == k, c + j0 * csc, csc,
                      args->bias ? args->bias + j0 : NULL, args);
        }
    }
}

/* One row group (MG rows) x one column chunk (NV vectors, the last one
 * covering `nlast` valid columns when MASKED) x one K block [p0, p1). C holds
 * the caller's values before the first block and the running total after
 * each block, exactly as in the blocked driver. */
static inline __attribute__((always_inline)) void SM(chunk)(
    const int MG, const int NV, const int MASKED, const int PF, int nlast, int64_t p0,
    int64_t p1, int first, int last, const FT *a, int64_t rsa, int64_t csa, const FT *b,
    int64_t rsb, FT *c, int64_t rsc, int64_t csc, const FT *bias, const ARGS *args) {
    /* acc is only ever indexed by constants (fully unrolled loops), so it
     * lives in registers; the epilogue works on `sums`, stored once. */
    VT acc[SM_MGMAX][SM_NVMAX];
    FT sums[SM_MGMAX][SM_NVMAX * VL] __attribute__((aligned(32)));
    const MT mask = V_MASK(MASKED ? nlast : VL);
    const int ncols = (NV - 1) * VL + (MASKED ? nlast : VL);

    for (int i = 0; i < MG; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = V_ZERO();
    /* The K loop: each step loads NV vectors of one B row and adds
     * a[i, p] * row to the MG x NV accumulators, one FMA per element in k
     * order (as the micro-kernels do). */
    const FT *ap = a + p0 * csa, *bp = b + p0 * rsb;
    for (int64_t p = p0; p < p1; p++, ap += csa, bp += rsb) {
        VT bv[SM_NVMAX];
        if (PF) {
            /* B rows are read with a large stride: fetch the row PF steps
             * ahead, one prefetch per 64-byte line. */
            for (int v = 0; v < NV; v += 64 / (int)(sizeof(FT) * VL))
                _mm_prefetch((const char *)(bp + PF * rsb + v * VL), _MM_HINT_T0);
        }
        for (int v = 0; v < NV; v++)
            bv[v] = (MASKED && v == NV - 1) ? V_MLOAD(bp + v * VL, mask) : V_LOAD(bp + v * VL);
        for (int i = 0; i < MG; i++) {
            const VT av = V_BCAST(ap + i * rsa);
            for (int v = 0; v < NV; v++) acc[i][v] = V_FMA(av, bv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < MG; i++)
        for (int v = 0; v < NV; v++) V_STORE(sums[i] + v * VL, acc[i][v]);

    for (int i = 0; i < MG; i++)
        SM(store)(sums[i], ncols, first, last, c + i * rsc, csc, bias, args);
}

/* The tail chunk in SM_DEFINE_ROWS: NVX (<= NVF) vectors, the last masked. */
#define SM_TAIL(MG, NVF, NVX)                                                               \
    case NVX:                                                                               \
        if (NVF >= NVX)                                                                     \
            SM(chunk)(MG, NVX, 1, 0, nlast, p0, p1, first, last, a, rsa, csa, b + j, rsb,   \
                      c + j * csc, rsc, csc, bias ? bias + j : NULL, args);                 \
        break;

/* MG rows, all n columns, K block by K block (the block of B, kc rows, stays
 * in L2 while the column chunks pass over it): full chunks of NVF vectors,
 * then one chunk of ceil(rest / VL) vectors with the last one masked. */
#define SM_DEFINE_ROWS(NAME, MG, NVF, PF)                                                   \
    static void SM(NAME)(int64_t n, int64_t k, int64_t kc, const FT *a, int64_t rsa,        \
                         int64_t csa, const FT *b, int64_t rsb, FT *c, int64_t rsc,         \
                         int64_t csc, const ARGS *args) {                                   \
        const FT *bias = args->bias;                                                        \
        const int64_t nfull = n / (NVF * VL) * (NVF * VL);                                  \
        const int64_t rest = n - nfull;                                                     \
        const int nv = (int)((rest + VL - 1) / VL);                                         \
        const int nlast = (int)(rest - (int64_t)(nv - 1) * VL);                             \
        for (int64_t p0 = 0; p0 < k; p0 += kc) {                                            \
            const int64_t p1 = k - p0 < kc ? k : p0 + kc;                                   \
            const int first = p0 == 0, last = p1 == k;                                      \
            int64_t j = 0;                                                                  \
            for (; j < nfull; j += NVF * VL)                                                \
                SM(chunk)(MG, NVF, 0, PF, VL, p0, p1, first, last, a, rsa, csa, b + j, rsb, \
                          c + j * csc, rsc, csc, bias ? bias + j : NULL, args);             \
            switch (rest ? nv : 0) {                                                        \
            SM_TAIL(MG, NVF, 1) SM_TAIL(MG, NVF, 2) SM_TAIL(MG, NVF, 3)                     \
            SM_TAIL(MG, NVF, 4) SM_TAIL(MG, NVF, 5) SM_TAIL(MG, NVF, 6)                     \
            SM_TAIL(MG, NVF, 7) SM_TAIL(MG, NVF, 8)                                         \
            default: break;                                                                 \
            }                                                                               \
        }                                                                                   \
    }
