/* Vector epilogue pieces shared by the AVX2 GEMM kernels (the 6x16 / 6x8
 * micro-kernels and the small-m kernel), so that a fused activation gives
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

/* The plain-GEMM store of a 6 x 2-vector micro-tile (no bias, no
 * activation): C = alpha AB (one K block) or alpha AB + beta C (later K
 * blocks: beta = 1), without the per-vector tests of the general epilogue
 * (at k = 128 those ~70 compares and branches per tile cost ~5% of x.T @ g).
 * Each element gets the general epilogue's operations, so the same bits
 * (alpha == 1 skips a multiplication by one, which is exact). Used as a
 * statement by the float32 and float64 kernels: VT the vector type, SFX the
 * intrinsics' suffix (ps / pd), VL the lanes; c, rsc, args and the twelve
 * accumulators c00..c51 in scope; the caller returns after it. */
#define FM_STORE_PLAIN_6X2(VT, SFX, VL)                                             \
    do {                                                                            \
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
    } while (0)
#define FM_BETA_ROW_(SFX, VL, i, x0, x1)                                              \
    x0 = _mm256_fmadd_##SFX(vb_, _mm256_loadu_##SFX(c + (i) * rsc), x0);              \
    x1 = _mm256_fmadd_##SFX(vb_, _mm256_loadu_##SFX(c + (i) * rsc + (VL)), x1)
#define FM_PUT_ROW_(SFX, VL, i, x0, x1)                                               \
    _mm256_storeu_##SFX(c + (i) * rsc, x0); _mm256_storeu_##SFX(c + (i) * rsc + (VL), x1)

#endif
