/* AVX2/FMA vector maths for epilogues and element-wise kernels (float32).
 *
 * Design: only included from files compiled with -mavx2 -mfma. Every helper
 * propagates NaN (clamps are written max(lo, x) / min(hi, x): with the
 * x86 MAXPS/MINPS rule "if either is NaN return the second operand" a NaN
 * input survives the clamp).
 */
#ifndef FM_VMATH_AVX2_H
#define FM_VMATH_AVX2_H

#include <immintrin.h>

/* exp(x) for float lanes, about 1 ulp.
 * Range reduction x = n*ln2 + r with |r| <= ln2/2, ln2 split in a high part
 * with few significant bits (n*ln2_hi is exact) and a low correction, so r is
 * accurate; then exp(r) by its Taylor series to degree 7 (truncation error
 * below 1e-8 relative on that interval) and 2^n built in the exponent bits.
 * x is clamped to [-87.3, 88.37] so that n stays in [-126, 127]: results
 * saturate at ~1.2e-38 and ~2.4e38 instead of producing inf/denormals
 * through the bit trick. */
static inline __m256 fm_exp_ps(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.37f);
    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* expm1(y) for y <= 0. Near 0, exp(y) - 1 cancels, so for |y| < ln2/2 use the
 * series y + y^2/2! + ... + y^8/8! directly (no cancellation, truncation
 * < 1e-9 relative); elsewhere exp(y) - 1 loses at most a few ulp. */
static inline __m256 fm_expm1_neg_ps(__m256 y) {
    __m256 p = _mm256_set1_ps(1.0f / 40320.0f);
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(1.0f / 5040.0f));
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, y, _mm256_set1_ps(1.0f));
    __m256 small = _mm256_mul_ps(p, y);
    __m256 large = _mm256_sub_ps(fm_exp_ps(y), _mm256_set1_ps(1.0f));
    __m256 is_small = _mm256_cmp_ps(y, _mm256_set1_ps(-0.34657359f), _CMP_GT_OQ);
    return _mm256_blendv_ps(large, small, is_small);
}

/* sigmoid(x) = 1 / (1 + exp(-x)); exact 0/1 limits come out of the clamp. */
static inline __m256 fm_sigmoid_ps(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = fm_exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

/* tanh(x) = sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|), written as
 * -m / (2 + m) with m = expm1(-2|x|) so that small |x| keeps full relative
 * precision (1 - e would cancel). */
static inline __m256 fm_tanh_ps(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 m = fm_expm1_neg_ps(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
    __m256 t = _mm256_div_ps(_mm256_sub_ps(_mm256_setzero_ps(), m),
                             _mm256_add_ps(_mm256_set1_ps(2.0f), m));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

/* max(0, x) keeping NaN (see the note at the top). */
static inline __m256 fm_relu_ps(__m256 x) {
    return _mm256_max_ps(_mm256_setzero_ps(), x);
}

/* x < 0 ? slope * x : x; NaN compares false and is kept. */
static inline __m256 fm_leaky_relu_ps(__m256 x, __m256 slope) {
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(x, _mm256_mul_ps(x, slope), neg);
}

static inline __m256d fm_relu_pd(__m256d x) {
    return _mm256_max_pd(_mm256_setzero_pd(), x);
}

static inline __m256d fm_leaky_relu_pd(__m256d x, __m256d slope) {
    __m256d neg = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ);
    return _mm256_blendv_pd(x, _mm256_mul_pd(x, slope), neg);
}

#endif
