/* General micro-kernel template (AVX2 + FMA, ukernel.h fm_?gemm_gen), included
 * at the end of sgemm_6x16.c and dgemm_6x8.c with
 *   FT, VT (vector type), VL (lanes; NR = 2 VL), GN(n) name mangler,
 *   ARGS (fm_?ukr_args), GEN_ENTRY (the exported name), KPACKED / KROWA (the
 *   file's packed and in-place 6-row kernels), EPI (the file's per-vector
 *   epilogue: beta, bias, vector activation), SCALAR_ACT_AFTER (1: sigmoid
 *   and tanh per element after the store, as the float64 kernel does),
 *   ACT_SCALAR (epilogue.h), V_ZERO V_SET1 V_BCAST V_LOAD V_LOADA V_STORE
 *   V_STOREA V_FMA V_MUL.
 *
 * An M-edge tile (mi < 6 rows: m = 128 is 21 x 6 + 2) computed as a full,
 * zero-padded 6-row tile costs a whole tile (3% of a 128-row product) plus a
 * copy through a temporary. Here it costs mi rows: MI x 2 NP accumulators in
 * registers, and for one or two rows two B panels side by side, so that at
 * least 8 independent FMA chains cover the FMA latency (4 cycles, 2 pipes).
 * Every element gets the packed kernel's FMA sequence and epilogue, so the
 * general kernel is bitwise interchangeable with it. */

#define GEN_NR (2 * VL)

/* MI, NP are compile-time constants (always_inline), so for the edge tiles
 * (MI * 2 NP <= 10) acc[][] lives in registers. */
static inline __attribute__((always_inline)) void GN(tile)(
    const int MI, const int NP, int64_t k, const FT *restrict a, int64_t ars, int64_t acs,
    const FT *restrict b, FT *restrict c, int64_t rsc, const ARGS *args) {
    VT acc[6][4];
    const int64_t ps = GEN_NR * k;  /* B panel stride */
    for (int i = 0; i < MI; i++)
        for (int v = 0; v < 2 * NP; v++) acc[i][v] = V_ZERO();
    for (int i = 0; i < MI; i++) {
        _mm_prefetch((const char *)(c + i * rsc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * rsc + GEN_NR * NP - 1), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < k; p++) {
        VT bv[4];
        for (int q = 0; q < NP; q++) {
            bv[2 * q] = V_LOAD(b + q * ps + p * GEN_NR);
            bv[2 * q + 1] = V_LOAD(b + q * ps + p * GEN_NR + VL);
        }
        for (int i = 0; i < MI; i++) {
            const VT av = V_BCAST(a + i * ars + p * acs);
            for (int v = 0; v < 2 * NP; v++) acc[i][v] = V_FMA(av, bv[v], acc[i][v]);
        }
    }
    /* acc is indexed by constants only (fully unrolled loops), so it stays
     * in registers; the epilogue, a loop the compiler need not unroll, works
     * on a copy stored once (indexing acc there would keep it in memory,
     * with a store per FMA). */
    FT sums[6][4 * VL] __attribute__((aligned(32)));
    for (int i = 0; i < MI; i++)
        for (int v = 0; v < 2 * NP; v++) V_STOREA(sums[i] + VL * v, acc[i][v]);
    /* The packed kernel's general epilogue, vector by vector (its plain fast
     * path gives the same bits: it only skips an exact multiplication by
     * alpha == 1). */
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

/* A full tile whose A is neither packed nor row-major: only reachable
 * through the test entry (the driver passes one of those two), so the
 * generic body is enough. Out of line, as is GN(other): their frames (sums,
 * saved registers) are not small. */
static __attribute__((noinline)) void GN(tile6)(int64_t k, const FT *a, int64_t ars,
                                                int64_t acs, const FT *b, FT *c, int64_t rsc,
                                                const ARGS *args) {
    GN(tile)(6, 1, k, a, ars, acs, b, c, rsc, args);
}

/* A full 6-row tile of one panel, A packed, row-major or strided. */
static inline void GN(full)(int64_t k, const FT *a, int64_t ars, int64_t acs, const FT *b,
                            FT *c, int64_t rsc, const ARGS *args) {
    if (acs == 1) KROWA(k, a, ars, b, c, rsc, args);
    else if (ars == 1 && acs == 6) KPACKED(k, a, b, c, rsc, args);
    else GN(tile6)(k, a, ars, acs, b, c, rsc, args);
}

/* Everything but a single full tile. */
static __attribute__((noinline)) void GN(other)(int mi, int np, int64_t k, const FT *a,
                                                int64_t ars, int64_t acs, const FT *b, FT *c,
                                                int64_t rsc, const ARGS *args) {
    if (np == 2 && mi <= 2) {
        if (mi == 2) GN(tile)(2, 2, k, a, ars, acs, b, c, rsc, args);
        else GN(tile)(1, 2, k, a, ars, acs, b, c, rsc, args);
        return;
    }
    /* One panel at a time (mi > 2 has enough chains in one panel). */
    ARGS pa = *args;
    for (int q = 0; q < np; q++) {
        const FT *bq = b + q * GEN_NR * k;
        FT *cq = c + GEN_NR * q;
        pa.bias = args->bias ? args->bias + GEN_NR * q : NULL;
        switch (mi) {
        case 6: GN(full)(k, a, ars, acs, bq, cq, rsc, &pa); break;
        case 5: GN(tile)(5, 1, k, a, ars, acs, bq, cq, rsc, &pa); break;
        case 4: GN(tile)(4, 1, k, a, ars, acs, bq, cq, rsc, &pa); break;
        case 3: GN(tile)(3, 1, k, a, ars, acs, bq, cq, rsc, &pa); break;
        case 2: GN(tile)(2, 1, k, a, ars, acs, bq, cq, rsc, &pa); break;
        case 1: GN(tile)(1, 1, k, a, ars, acs, bq, cq, rsc, &pa); break;
        default: break;
        }
    }
}

void GEN_ENTRY(int mi, int np, int64_t k, const FT *a, int64_t ars, int64_t acs, const FT *b,
               FT *c, int64_t rsc, const ARGS *args) {
    /* The common case, a full tile, is a plain (tail) call. */
    if (mi == 6 && np == 1) GN(full)(k, a, ars, acs, b, c, rsc, args);
    else GN(other)(mi, np, k, a, ars, acs, b, c, rsc, args);
}

#undef GEN_NR
