/* AVX2 + FMA dgemm micro-kernel, 6 x 8 register block.
 *
 * Design: the float64 twin of sgemm_6x16.c: 12 ymm accumulators (2 vectors of
 * 4 doubles per row), 2 B loads and 6 broadcasts per k step, k unrolled by 4.
 * The epilogue vectorises alpha/beta/bias and ReLU/leaky ReLU; sigmoid and
 * tanh go through libm per element after the vector store, because a float64
 * vector exp accurate to the last bit costs as much as it saves here and the
 * GEMM's own cost dominates (2k flops per element).
 *
 * Compiled with -mavx2 -mfma (per-file flags in setup.py).
 */
#include <immintrin.h>
#include <math.h>
#include "../ukernel.h"
#include "../epilogue.h"
#include "../../fastmlp.h"
#include "vmath_avx2.h"
#include "epilogue_avx2.h"

static inline __m256d fm_d_epi(__m256d v, const double *cij, int has_beta, __m256d vbeta,
                               const double *bias, int act, __m256d vslope) {
    if (has_beta) v = _mm256_fmadd_pd(vbeta, _mm256_loadu_pd(cij), v);
    if (bias) v = _mm256_add_pd(v, _mm256_loadu_pd(bias));
    return fm_d_act_avx2(v, act, vslope);
}

#define FM_D_STEP(u)                                                           \
    do {                                                                       \
        const __m256d b0 = _mm256_loadu_pd(b + 8 * (u));                       \
        const __m256d b1 = _mm256_loadu_pd(b + 8 * (u) + 4);                   \
        __m256d av;                                                            \
        av = _mm256_broadcast_sd(a + 6 * (u) + 0);                             \
        c00 = _mm256_fmadd_pd(av, b0, c00); c01 = _mm256_fmadd_pd(av, b1, c01);\
        av = _mm256_broadcast_sd(a + 6 * (u) + 1);                             \
        c10 = _mm256_fmadd_pd(av, b0, c10); c11 = _mm256_fmadd_pd(av, b1, c11);\
        av = _mm256_broadcast_sd(a + 6 * (u) + 2);                             \
        c20 = _mm256_fmadd_pd(av, b0, c20); c21 = _mm256_fmadd_pd(av, b1, c21);\
        av = _mm256_broadcast_sd(a + 6 * (u) + 3);                             \
        c30 = _mm256_fmadd_pd(av, b0, c30); c31 = _mm256_fmadd_pd(av, b1, c31);\
        av = _mm256_broadcast_sd(a + 6 * (u) + 4);                             \
        c40 = _mm256_fmadd_pd(av, b0, c40); c41 = _mm256_fmadd_pd(av, b1, c41);\
        av = _mm256_broadcast_sd(a + 6 * (u) + 5);                             \
        c50 = _mm256_fmadd_pd(av, b0, c50); c51 = _mm256_fmadd_pd(av, b1, c51);\
    } while (0)

void fm_dgemm_avx2_6x8(int64_t k, const double *restrict a, const double *restrict b,
                       double *restrict c, int64_t rsc, const fm_dukr_args *args) {
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();

    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * rsc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * rsc + 7), _MM_HINT_T0);
    }

    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
        _mm_prefetch((const char *)(a + 96), _MM_HINT_T0);
        FM_D_STEP(0);
        FM_D_STEP(1);
        FM_D_STEP(2);
        FM_D_STEP(3);
        a += 24;
        b += 32;
    }
    for (; p < k; p++) {
        FM_D_STEP(0);
        a += 6;
        b += 8;
    }

    /* Plain GEMM (no bias, no activation) without the general epilogue's
     * per-vector tests; the same operations per element, so the same bits
     * (alpha == 1 skips an exact multiplication by one). See sgemm_6x16.c. */
    if (args->act == FM_ACT_NONE && !args->bias) {
        if (args->alpha != 1.0) {
            const __m256d va = _mm256_set1_pd(args->alpha);
            c00 = _mm256_mul_pd(va, c00); c01 = _mm256_mul_pd(va, c01);
            c10 = _mm256_mul_pd(va, c10); c11 = _mm256_mul_pd(va, c11);
            c20 = _mm256_mul_pd(va, c20); c21 = _mm256_mul_pd(va, c21);
            c30 = _mm256_mul_pd(va, c30); c31 = _mm256_mul_pd(va, c31);
            c40 = _mm256_mul_pd(va, c40); c41 = _mm256_mul_pd(va, c41);
            c50 = _mm256_mul_pd(va, c50); c51 = _mm256_mul_pd(va, c51);
        }
        if (args->beta != 0.0) {
            const __m256d vb = _mm256_set1_pd(args->beta);
#define FM_D_BETA(i, x0, x1)                                                     \
    x0 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(c + (i) * rsc), x0);                \
    x1 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(c + (i) * rsc + 4), x1)
            FM_D_BETA(0, c00, c01); FM_D_BETA(1, c10, c11); FM_D_BETA(2, c20, c21);
            FM_D_BETA(3, c30, c31); FM_D_BETA(4, c40, c41); FM_D_BETA(5, c50, c51);
#undef FM_D_BETA
        }
#define FM_D_PUT(i, x0, x1)                                                      \
    _mm256_storeu_pd(c + (i) * rsc, x0); _mm256_storeu_pd(c + (i) * rsc + 4, x1)
        FM_D_PUT(0, c00, c01); FM_D_PUT(1, c10, c11); FM_D_PUT(2, c20, c21);
        FM_D_PUT(3, c30, c31); FM_D_PUT(4, c40, c41); FM_D_PUT(5, c50, c51);
#undef FM_D_PUT
        return;
    }
    const __m256d valpha = _mm256_set1_pd(args->alpha);
    const __m256d vbeta = _mm256_set1_pd(args->beta);
    const __m256d vslope = _mm256_set1_pd(args->slope);
    const int has_beta = args->beta != 0.0;
    const int act = args->act;
    const double *bias0 = args->bias, *bias1 = args->bias ? args->bias + 4 : NULL;

#define FM_D_ROW(i, x0, x1)                                                              \
    do {                                                                                 \
        double *ci = c + (i) * rsc;                                                      \
        __m256d v0 = fm_d_epi(_mm256_mul_pd(valpha, x0), ci, has_beta, vbeta, bias0, act, vslope); \
        __m256d v1 = fm_d_epi(_mm256_mul_pd(valpha, x1), ci + 4, has_beta, vbeta, bias1, act, vslope); \
        _mm256_storeu_pd(ci, v0);                                                        \
        _mm256_storeu_pd(ci + 4, v1);                                                    \
    } while (0)

    FM_D_ROW(0, c00, c01);
    FM_D_ROW(1, c10, c11);
    FM_D_ROW(2, c20, c21);
    FM_D_ROW(3, c30, c31);
    FM_D_ROW(4, c40, c41);
    FM_D_ROW(5, c50, c51);
#undef FM_D_ROW

    if (act == FM_ACT_SIGMOID || act == FM_ACT_TANH) {
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 8; j++)
                c[i * rsc + j] = fm_act_scalar_d(c[i * rsc + j], act, args->slope);
    }
}
