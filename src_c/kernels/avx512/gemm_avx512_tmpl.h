/* AVX-512 GEMM micro-kernel template, included by sgemm_12x32.c and
 * dgemm_12x16.c with
 *   FT, VT (vector type), VL (lanes; NR = 2 VL), GN(n) name mangler,
 *   ARGS (fm_?ukr_args), KPACKED / KROWA / GEN_ENTRY (exported names),
 *   EPI (per-vector epilogue: beta, bias, vector activation),
 *   SCALAR_ACT_AFTER (1: sigmoid and tanh per element with libm after the
 *   store, as every float64 kernel does), ACT_SCALAR (epilogue.h),
 *   V_ZERO V_SET1 V_BCAST V_LOAD V_LOADA V_STORE V_STOREA V_FMA V_MUL.
 *
 * Design: a 12 x 2-vector register block (sgemm 12x32, dgemm 12x16): 24 zmm
 * accumulators, and per k step 2 B loads and 12 broadcasts for 24 FMAs, so
 * the two FMA pipes of an Intel core (and the double-pumped 256-bit pipes of
 * AMD Zen 4) are fed with 14 loads per 12 cycles, under the two load ports'
 * limit; 27 of the 32 zmm registers are live. This is BLIS's skx block
 * (sgemm 32x12 / dgemm 16x12 on column-major C) transposed for row-major C.
 *
 * Every element gets the arithmetic of every other fastmlp kernel: one
 * accumulator, zero, then one FMA per k step in k order, then
 *     v = alpha * acc;  v = fma(beta, c, v) if beta != 0;  v += bias;  act(v)
 * with the same vector exp polynomial as the AVX2 kernels (vmath_avx512.h).
 * So an AVX-512 result is bitwise the AVX2 and the reference result.
 *
 * One always-inline body, tile(MI, NP): MI <= 12 rows, NP = 1 or 2 B panels,
 * A[i, p] at a[i * ars + p * acs]. Its instances are the packed kernel
 * (ars = 1, acs = 12), the in-place kernel for a row-major A (acs = 1), and
 * the M-edge tiles of the general kernel (MI * 2 NP <= 24 accumulators). */

#define GEN_NR (2 * VL)
#define GEN_MR 12

static inline __attribute__((always_inline)) void GN(tile)(
    const int MI, const int NP, int64_t k, const FT *restrict a, int64_t ars, int64_t acs,
    const FT *restrict b, FT *restrict c, int64_t rsc, const ARGS *args) {
    VT acc[GEN_MR][4];
    const int64_t ps = GEN_NR * k;  /* B panel stride */
#pragma GCC unroll 12
    for (int i = 0; i < MI; i++)
#pragma GCC unroll 4
        for (int v = 0; v < 2 * NP; v++) acc[i][v] = V_ZERO();
#pragma GCC unroll 12
    for (int i = 0; i < MI; i++) {
        _mm_prefetch((const char *)(c + i * rsc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * rsc + GEN_NR * NP - 1), _MM_HINT_T0);
    }
#pragma GCC unroll 2
    for (int64_t p = 0; p < k; p++) {
        VT bv[4];
#pragma GCC unroll 2
        for (int q = 0; q < NP; q++) {
            bv[2 * q] = V_LOAD(b + q * ps + p * GEN_NR);
            bv[2 * q + 1] = V_LOAD(b + q * ps + p * GEN_NR + VL);
        }
#pragma GCC unroll 12
        for (int i = 0; i < MI; i++) {
            const VT av = V_BCAST(a + i * ars + p * acs);
#pragma GCC unroll 4
            for (int v = 0; v < 2 * NP; v++) acc[i][v] = V_FMA(av, bv[v], acc[i][v]);
        }
    }
    if (args->act == FM_ACT_NONE && !args->bias) {
        /* Plain GEMM: the general epilogue's operations minus its tests
         * (alpha == 1 skips an exact multiplication), on the registers. */
        if (args->alpha != 1) {
            const VT va = V_SET1(args->alpha);
#pragma GCC unroll 12
            for (int i = 0; i < MI; i++)
#pragma GCC unroll 4
                for (int v = 0; v < 2 * NP; v++) acc[i][v] = V_MUL(va, acc[i][v]);
        }
        if (args->beta != 0) {
            const VT vb = V_SET1(args->beta);
#pragma GCC unroll 12
            for (int i = 0; i < MI; i++)
#pragma GCC unroll 4
                for (int v = 0; v < 2 * NP; v++)
                    acc[i][v] = V_FMA(vb, V_LOAD(c + i * rsc + VL * v), acc[i][v]);
        }
#pragma GCC unroll 12
        for (int i = 0; i < MI; i++)
#pragma GCC unroll 4
            for (int v = 0; v < 2 * NP; v++) V_STORE(c + i * rsc + VL * v, acc[i][v]);
        return;
    }
    /* The general epilogue works on a copy stored once: a loop the compiler
     * need not unroll (the vector exp is long), and indexing acc there would
     * keep it in memory through the k loop. */
    FT sums[GEN_MR][4 * VL] __attribute__((aligned(64)));
#pragma GCC unroll 12
    for (int i = 0; i < MI; i++)
#pragma GCC unroll 4
        for (int v = 0; v < 2 * NP; v++) V_STOREA(sums[i] + VL * v, acc[i][v]);
    const VT valpha = V_SET1(args->alpha);
    const VT vbeta = V_SET1(args->beta);
    const VT vslope = V_SET1(args->slope);
    const int has_beta = args->beta != 0;
    for (int i = 0; i < MI; i++)
        for (int v = 0; v < 2 * NP; v++) {
            FT *cij = c + i * rsc + VL * v;
            const FT *bias = args->bias ? args->bias + VL * v : NULL;
            const VT x = V_MUL(valpha, V_LOADA(sums[i] + VL * v));
            V_STORE(cij, EPI(x, cij, has_beta, vbeta, bias, args->act, vslope));
        }
    if (SCALAR_ACT_AFTER && (args->act == FM_ACT_SIGMOID || args->act == FM_ACT_TANH)) {
        for (int i = 0; i < MI; i++)
            for (int j = 0; j < GEN_NR * NP; j++)
                c[i * rsc + j] = ACT_SCALAR(c[i * rsc + j], args->act, args->slope);
    }
}

/* The packed kernel (ukernel.h): A micro-panel of 12 values per k step. */
void KPACKED(int64_t k, const FT *restrict a, const FT *restrict b, FT *restrict c, int64_t rsc,
             const ARGS *args) {
    GN(tile)(GEN_MR, 1, k, a, 1, GEN_MR, b, c, rsc, args);
}

/* A row-major A read in place: A[i, p] = a[i * rsa + p]. */
void KROWA(int64_t k, const FT *restrict a, int64_t rsa, const FT *restrict b, FT *restrict c,
           int64_t rsc, const ARGS *args) {
    GN(tile)(GEN_MR, 1, k, a, rsa, 1, b, c, rsc, args);
}

/* A full tile whose A is neither packed nor row-major (test entry only). */
static __attribute__((noinline)) void GN(tile_any)(int64_t k, const FT *a, int64_t ars,
                                                   int64_t acs, const FT *b, FT *c,
                                                   int64_t rsc, const ARGS *args) {
    GN(tile)(GEN_MR, 1, k, a, ars, acs, b, c, rsc, args);
}

static inline void GN(full)(int64_t k, const FT *a, int64_t ars, int64_t acs, const FT *b,
                            FT *c, int64_t rsc, const ARGS *args) {
    if (acs == 1) KROWA(k, a, ars, b, c, rsc, args);
    else if (ars == 1 && acs == GEN_MR) KPACKED(k, a, b, c, rsc, args);
    else GN(tile_any)(k, a, ars, acs, b, c, rsc, args);
}

#define FM_GEN_CASE1(n) case n: GN(tile)(n, 1, k, a, ars, acs, bq, cq, rsc, &pa); break;
#define FM_GEN_CASE2(n) case n: GN(tile)(n, 2, k, a, ars, acs, b, c, rsc, args); return;

/* Everything but a single full tile: up to 6 rows over two panels at once
 * (at most 24 accumulators), more rows one panel at a time. */
static __attribute__((noinline)) void GN(other)(int mi, int np, int64_t k, const FT *a,
                                                int64_t ars, int64_t acs, const FT *b, FT *c,
                                                int64_t rsc, const ARGS *args) {
    if (np == 2 && mi <= 6) {
        switch (mi) {
        FM_GEN_CASE2(6) FM_GEN_CASE2(5) FM_GEN_CASE2(4) FM_GEN_CASE2(3) FM_GEN_CASE2(2)
        FM_GEN_CASE2(1)
        default: return;
        }
    }
    ARGS pa = *args;
    for (int q = 0; q < np; q++) {
        const FT *bq = b + q * GEN_NR * k;
        FT *cq = c + GEN_NR * q;
        pa.bias = args->bias ? args->bias + GEN_NR * q : NULL;
        switch (mi) {
        case GEN_MR: GN(full)(k, a, ars, acs, bq, cq, rsc, &pa); break;
        FM_GEN_CASE1(11) FM_GEN_CASE1(10) FM_GEN_CASE1(9) FM_GEN_CASE1(8) FM_GEN_CASE1(7)
        FM_GEN_CASE1(6) FM_GEN_CASE1(5) FM_GEN_CASE1(4) FM_GEN_CASE1(3) FM_GEN_CASE1(2)
        FM_GEN_CASE1(1)
        default: break;
        }
    }
}

void GEN_ENTRY(int mi, int np, int64_t k, const FT *a, int64_t ars, int64_t acs, const FT *b,
               FT *c, int64_t rsc, const ARGS *args) {
    if (mi == GEN_MR && np == 1) GN(full)(k, a, ars, acs, b, c, rsc, args);
    else GN(other)(mi, np, k, a, ars, acs, b, c, rsc, args);
}

#undef FM_GEN_CASE1
#undef FM_GEN_CASE2
#undef GEN_NR
#undef GEN_MR
