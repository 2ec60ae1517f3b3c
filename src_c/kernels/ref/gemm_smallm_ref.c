/* Reference small-m GEMM kernels: plain C, portable, always built.
 *
 * Design: the portable twin of kernels/avx2/gemm_smallm_avx2.c (see there):
 * C (m x n) = act(alpha * A @ B + beta * C + bias) for a B with unit column
 * stride, read in place (no packing), in groups of up to 4 rows of A and
 * chunks of NW columns of C whose accumulators live across the whole K loop
 * (the compiler vectorises across the NW columns). Every element gets the
 * arithmetic of the reference micro-kernel (gemm_ref.c) under the blocked
 * driver: the same K blocks of `kc`, `acc = fma(a, b, acc)` per k step from
 * zero, then per block `alpha * acc`, `fma(beta, C, .)` (first block, beta != 0) or
 * `+ running total` (later blocks), and on the last block `+ bias` and the
 * scalar activation. So results are bitwise those of the blocked path.
 */
#include <math.h>
#include "../ukernel.h"
#include "../epilogue.h"

#define FM_SM_MG 4

#define FM_DEFINE_REF_SMALLM(NAME, FT, ARGS, ACT, FMA, NW)                               \
    static void NAME##_chunk(int mg, int nw, int64_t k, int64_t kc, const FT *a,        \
                             int64_t rsa, int64_t csa, const FT *b, int64_t rsb, FT *c,  \
                             int64_t rsc, int64_t csc, const ARGS *args) {               \
        FT acc[FM_SM_MG][NW], tot[FM_SM_MG][NW];                                         \
        const FT alpha = args->alpha, beta = args->beta;                                 \
        for (int64_t p0 = 0; p0 < k; p0 += kc) {                                         \
            const int64_t p1 = k - p0 < kc ? k : p0 + kc;                                \
            const int first = p0 == 0, last = p1 == k;                                   \
            for (int i = 0; i < mg; i++)                                                 \
                for (int j = 0; j < NW; j++) acc[i][j] = 0;                              \
            for (int64_t p = p0; p < p1; p++) {                                          \
                const FT *bp = b + p * rsb;                                              \
                for (int i = 0; i < mg; i++) {                                           \
                    const FT ai = a[i * rsa + p * csa];                                  \
                    if (nw == NW) {                                                      \
                        for (int j = 0; j < NW; j++) acc[i][j] = FMA(ai, bp[j], acc[i][j]); \
                    } else {                                                             \
                        for (int j = 0; j < nw; j++) acc[i][j] = FMA(ai, bp[j], acc[i][j]); \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
            for (int i = 0; i < mg; i++) {                                               \
                FT *ci = c + i * rsc;                                                    \
                for (int j = 0; j < nw; j++) {                                           \
                    FT v = alpha * acc[i][j];                                            \
                    if (!first) v += tot[i][j];                                          \
                    else if (beta != 0) v = FMA(beta, ci[j * csc], v); /* beta == 0: C unread */ \
                    if (!last) {                                                         \
                        tot[i][j] = v;                                                   \
                        continue;                                                        \
                    }                                                                    \
                    if (args->bias) v += args->bias[j];                                  \
                    ci[j * csc] = ACT(v, args->act, args->slope);                        \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    void NAME(int64_t m, int64_t n, int64_t k, int64_t kc, const FT *a, int64_t rsa,     \
              int64_t csa, const FT *b, int64_t rsb, FT *c, int64_t rsc, int64_t csc,    \
              const ARGS *args) {                                                        \
        for (int64_t i = 0; i < m; i += FM_SM_MG) {                                      \
            const int mg = m - i < FM_SM_MG ? (int)(m - i) : FM_SM_MG;                   \
            ARGS t = *args;                                                              \
            for (int64_t j = 0; j < n; j += NW) {                                        \
                const int nw = n - j < NW ? (int)(n - j) : NW;                           \
                t.bias = args->bias ? args->bias + j : NULL;                             \
                NAME##_chunk(mg, nw, k, kc, a + i * rsa, rsa, csa, b + j, rsb,           \
                             c + i * rsc + j * csc, rsc, csc, &t);                       \
            }                                                                            \
        }                                                                                \
    }

FM_DEFINE_REF_SMALLM(fm_sgemm_smallm_ref, float, fm_sukr_args, fm_act_scalar_s, fmaf, 16)
FM_DEFINE_REF_SMALLM(fm_dgemm_smallm_ref, double, fm_dukr_args, fm_act_scalar_d, fma, 8)
