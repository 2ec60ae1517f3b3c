/* Reference micro-kernels: plain C, portable, always built.
 *
 * Design: the same signature and register block as the AVX2 kernels
 * (sgemm 6x16, dgemm 6x8), so tests can run both on identical packed panels,
 * and so that on a CPU without AVX2 the blocked driver still works unchanged
 * with these as its kernels. One accumulator per element, k in order, one
 * fused multiply-add (C99 fma, exactly rounded on any CPU) per step, and the
 * SIMD kernels' epilogue (epilogue.h): so the reference gives bitwise the
 * AVX2 and AVX-512 results, and a test can ask for equality, not closeness.
 */
#include <math.h>
#include "../ukernel.h"
#include "../epilogue.h"

/* The general kernels (ukernel.h): mi <= MR rows, np B panels, strided A.
 * beta == 0 must not read C: it may hold NaN or garbage. */
#define FM_DEFINE_REF_GEN(NAME, FT, ARGS, ACT, FMA, MR, NR)                    \
    void NAME(int mi, int np, int64_t k, const FT *a, int64_t ars, int64_t acs,  \
              const FT *b, FT *c, int64_t rsc, const ARGS *args) {             \
        FT acc[MR][2 * NR] = {{0}};                                            \
        const int nc = np * NR;                                                \
        for (int64_t p = 0; p < k; p++) {                                      \
            for (int i = 0; i < mi; i++) {                                     \
                FT ai = a[i * ars + p * acs];                                  \
                for (int q = 0; q < np; q++) {                                 \
                    const FT *bp = b + q * NR * k + p * NR;                    \
                    for (int j = 0; j < NR; j++)                               \
                        acc[i][q * NR + j] = FMA(ai, bp[j], acc[i][q * NR + j]);  \
                }                                                              \
            }                                                                  \
        }                                                                      \
        const FT alpha = args->alpha, beta = args->beta;                       \
        for (int i = 0; i < mi; i++) {                                         \
            FT *ci = c + i * rsc;                                              \
            for (int j = 0; j < nc; j++) {                                     \
                FT v = alpha * acc[i][j];                                      \
                if (beta != 0) v = FMA(beta, ci[j], v);                        \
                if (args->bias) v += args->bias[j];                            \
                ci[j] = ACT(v, args->act, args->slope);                        \
            }                                                                  \
        }                                                                      \
    }

FM_DEFINE_REF_GEN(fm_sgemm_ref_gen16, float, fm_sukr_args, fm_act_scalar_s, fmaf, 6, 16)
FM_DEFINE_REF_GEN(fm_dgemm_ref_gen8, double, fm_dukr_args, fm_act_scalar_d, fma, 6, 8)

/* The packed micro-kernels: a full MR-row tile, one panel, A packed (A[i, p]
 * at a[i + p * MR]). */
void fm_sgemm_ref_6x16(int64_t k, const float *a, const float *b, float *c, int64_t rsc,
                       const fm_sukr_args *args) {
    fm_sgemm_ref_gen16(6, 1, k, a, 1, 6, b, c, rsc, args);
}

void fm_dgemm_ref_6x8(int64_t k, const double *a, const double *b, double *c, int64_t rsc,
                      const fm_dukr_args *args) {
    fm_dgemm_ref_gen8(6, 1, k, a, 1, 6, b, c, rsc, args);
}
