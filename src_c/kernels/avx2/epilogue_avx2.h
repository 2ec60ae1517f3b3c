/* Vector epilogue pieces shared by the AVX2 GEMM kernels (the 6x16 / 6x8
 * micro-kernels and the small-m kernel), and the micro-tiles' start and store, so that a fused activation gives
 * bit-for-bit the same value whichever kernel computed the element.
 *
 * The full epilogue of an element is, in this order:
 *     v = alpha * acc;  v = fma(beta, c, v) if beta != 0;  v = v + bias;  act(v)
 * float32 applies every activation here; float64 only ReLU / leaky ReLU (the
 * kernels apply sigmoid and tanh per element with libm, epilogue.h, after
 * the vector store). Only included from files compiled with -mavx2 -mfma.
 */
#ifndef FM_EPILOGUE_AVX2_H
#define FM_EPILOGUE_AVX2_H

#include <immintrin.h>
#include "../../fastmlp.h"
#include "vmath_avx2.h"

static inline __m256 fm_s_act_avx2(__m256 v, int act, __m256 vslope) {
    switch (act) {
    case FM_ACT_RELU: return fm_relu_ps(v);
    case FM_ACT_LEAKY_RELU: return fm_leaky_relu_ps(v, vslope);
    case FM_ACT_SIGMOID: return fm_sigmoid_ps(v);
    case FM_ACT_TANH: return fm_tanh_ps(v);
    default: return v;
    }
}

/* ReLU and leaky ReLU only: sigmoid and tanh are left to the scalar pass. */
static inline __m256d fm_d_act_avx2(__m256d v, int act, __m256d vslope) {
    switch (act) {
    case FM_ACT_RELU: return fm_relu_pd(v);
    case FM_ACT_LEAKY_RELU: return fm_leaky_relu_pd(v, vslope);
    default: return v;
    }
}

/* ---- pieces of the 6 x 2-vector micro-tiles (sgemm 6x16, dgemm 6x8) ----
 * Statement macros over the tile's twelve accumulators c00..c51, with c and
 * rsc (and args, for the store) in scope; VT is the vector type, SFX the
 * intrinsics' suffix (ps / pd), VL the lanes, so one body serves both
 * dtypes. */

/* A tile's start: its accumulators, zeroed, and its C rows pulled towards L1
 * while the k loop runs. */
#define FM_TILE_BEGIN_6X2(VT, SFX, VL)                                                  \
    VT c00 = _mm256_setzero_##SFX(), c01 = _mm256_setzero_##SFX();                     \
    VT c10 = _mm256_setzero_##SFX(), c11 = _mm256_setzero_##SFX();                     \
    VT c20 = _mm256_setzero_##SFX(), c21 = _mm256_setzero_##SFX();                     \
    VT c30 = _mm256_setzero_##SFX(), c31 = _mm256_setzero_##SFX();                     \
    VT c40 = _mm256_setzero_##SFX(), c41 = _mm256_setzero_##SFX();                     \
    VT c50 = _mm256_setzero_##SFX(), c51 = _mm256_setzero_##SFX();                     \
    for (int i_ = 0; i_ < 6; i_++) {                                                    \
        _mm_prefetch((const char *)(c + i_ * rsc), _MM_HINT_T0);                        \
        _mm_prefetch((const char *)(c + i_ * rsc + 2 * (VL) - 1), _MM_HINT_T0);         \
    }

/* The tile's epilogue and store. EPI(v, cij, has_beta, vbeta, bias, act,
 * vslope) is the file's per-vector epilogue (beta, bias, vector activation).
 * Plain GEMM (no bias, no activation: C = alpha AB, or alpha AB + beta C on
 * later K blocks) skips the per-vector tests of the general path: at k = 128
 * those ~70 compares and branches per tile cost ~5% of x.T @ g. Each element
 * gets the same operations either way, so the same bits (alpha == 1 skips a
 * multiplication by one, which is exact). The plain path returns from the
 * calling function (nothing after the store applies to it); as a branch
 * around the general path instead, GCC 12 spilled an accumulator in the
 * float64 in-place kernel's k loop (8% slower). */
#define FM_STORE_6X2(VT, SFX, VL, EPI)                                                  \
    do {                                                                                \
        if (args->act == FM_ACT_NONE && !args->bias) {                                  \
            if (args->alpha != 1) {                                                     \
                const VT va_ = _mm256_set1_##SFX(args->alpha);                          \
                c00 = _mm256_mul_##SFX(va_, c00); c01 = _mm256_mul_##SFX(va_, c01);     \
                c10 = _mm256_mul_##SFX(va_, c10); c11 = _mm256_mul_##SFX(va_, c11);     \
                c20 = _mm256_mul_##SFX(va_, c20); c21 = _mm256_mul_##SFX(va_, c21);     \
                c30 = _mm256_mul_##SFX(va_, c30); c31 = _mm256_mul_##SFX(va_, c31);     \
                c40 = _mm256_mul_##SFX(va_, c40); c41 = _mm256_mul_##SFX(va_, c41);     \
                c50 = _mm256_mul_##SFX(va_, c50); c51 = _mm256_mul_##SFX(va_, c51);     \
            }                                                                           \
            if (args->beta != 0) {                                                      \
                const VT vb_ = _mm256_set1_##SFX(args->beta);                           \
                FM_BETA_ROW_(SFX, VL, 0, c00, c01); FM_BETA_ROW_(SFX, VL, 1, c10, c11); \
                FM_BETA_ROW_(SFX, VL, 2, c20, c21); FM_BETA_ROW_(SFX, VL, 3, c30, c31); \
                FM_BETA_ROW_(SFX, VL, 4, c40, c41); FM_BETA_ROW_(SFX, VL, 5, c50, c51); \
            }                                                                           \
            FM_PUT_ROW_(SFX, VL, 0, c00, c01); FM_PUT_ROW_(SFX, VL, 1, c10, c11);       \
            FM_PUT_ROW_(SFX, VL, 2, c20, c21); FM_PUT_ROW_(SFX, VL, 3, c30, c31);       \
            FM_PUT_ROW_(SFX, VL, 4, c40, c41); FM_PUT_ROW_(SFX, VL, 5, c50, c51);       \
            return;                                                                     \
        }                                                                               \
        {                                                                               \
            const VT valpha_ = _mm256_set1_##SFX(args->alpha);                          \
            const VT vbeta_ = _mm256_set1_##SFX(args->beta);                            \
            const VT vslope_ = _mm256_set1_##SFX(args->slope);                          \
            const int has_beta_ = args->beta != 0, act_ = args->act;                    \
            const __typeof__(args->bias) bias0_ = args->bias;                           \
            const __typeof__(args->bias) bias1_ = args->bias ? args->bias + (VL) : NULL; \
            FM_EPI_ROW_(VT, SFX, VL, EPI, 0, c00, c01);                                 \
            FM_EPI_ROW_(VT, SFX, VL, EPI, 1, c10, c11);                                 \
            FM_EPI_ROW_(VT, SFX, VL, EPI, 2, c20, c21);                                 \
            FM_EPI_ROW_(VT, SFX, VL, EPI, 3, c30, c31);                                 \
            FM_EPI_ROW_(VT, SFX, VL, EPI, 4, c40, c41);                                 \
            FM_EPI_ROW_(VT, SFX, VL, EPI, 5, c50, c51);                                 \
        }                                                                               \
    } while (0)
#define FM_BETA_ROW_(SFX, VL, i, x0, x1)                                              \
    x0 = _mm256_fmadd_##SFX(vb_, _mm256_loadu_##SFX(c + (i) * rsc), x0);              \
    x1 = _mm256_fmadd_##SFX(vb_, _mm256_loadu_##SFX(c + (i) * rsc + (VL)), x1)
#define FM_PUT_ROW_(SFX, VL, i, x0, x1)                                               \
    _mm256_storeu_##SFX(c + (i) * rsc, x0); _mm256_storeu_##SFX(c + (i) * rsc + (VL), x1)
#define FM_EPI_ROW_(VT, SFX, VL, EPI, i, x0, x1)                                      \
    do {                                                                              \
        __typeof__(c) ci_ = c + (i) * rsc;                                            \
        const VT v0_ = EPI(_mm256_mul_##SFX(valpha_, x0), ci_, has_beta_, vbeta_,     \
                           bias0_, act_, vslope_);                                    \
        const VT v1_ = EPI(_mm256_mul_##SFX(valpha_, x1), ci_ + (VL), has_beta_,      \
                           vbeta_, bias1_, act_, vslope_);                            \
        _mm256_storeu_##SFX(ci_, v0_);                                                \
        _mm256_storeu_##SFX(ci_ + (VL), v1_);                                         \
    } while (0)

#endif
