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
    FT tmp[SM_NVMAX * VL] __attribute__((aligned(32)));
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

    /* The block's store, as the blocked driver's: alpha * acc, then
     * + beta * C on the first block (C unread when beta == 0) or + the
     * running total on later ones (the driver's beta = 1), and on the last
     * block + bias and the activation. */
    const VT valpha = V_SET1(args->alpha), vbeta = V_SET1(args->beta);
    const VT vslope = V_SET1(args->slope);
    const int read_c = !first || args->beta != 0;
    const int act = last ? args->act : FM_ACT_NONE;
    for (int i = 0; i < MG; i++) {
        FT *ci = c + i * rsc;
        /* A strided C row goes through tmp. */
        FT *dst = csc == 1 ? ci : tmp;
        if (csc != 1 && read_c)
            for (int j = 0; j < ncols; j++) tmp[j] = ci[j * csc];
        for (int v = 0; v < NV; v++) {
            const int mv = MASKED && v == NV - 1;
            VT x = V_MUL(valpha, V_LOAD(sums[i] + v * VL));
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
}

/* MG rows, all n columns: full chunks of NVF vectors, then one chunk of
 * ceil(rest / VL) vectors with the last one masked. */
#define SM_TAIL(MG, NVF, NVX)                                                                      \
    case NVX:                                                                               \
        if (NVF >= NVX)                                                                     \
            SM(chunk)(MG, NVX, 1, 0, nlast, p0, p1, first, last, a, rsa, csa, b + j, rsb,   \
                      c + j * csc, rsc, csc, bias ? bias + j : NULL, args);                 \
        break;

/* MG rows, all n columns, K block by K block (the block of B, kc rows, stays
 * in L2 while the column chunks pass over it): full chunks of NVF vectors,
 * then one chunk of ceil(rest / VL) vectors with the last one masked. */
#define SM_DEFINE_ROWS(MG, NVF, PF)                                                         \
    static void SM(rows##MG)(int64_t n, int64_t k, int64_t kc, const FT *a, int64_t rsa,    \
                             int64_t csa, const FT *b, int64_t rsb, FT *c, int64_t rsc,     \
                             int64_t csc, const ARGS *args) {                               \
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
