/* AVX-512 vector maths for the GEMM epilogues (float32), the 16-lane twins of
 * kernels/avx2/vmath_avx2.h.
 *
 * Design: every helper performs, lane by lane, exactly the operations of its
 * AVX2 twin in the same order (same constants, same clamps, same rounding,
 * one FMA where the twin has one), so an element gets bitwise the same value
 * whichever ISA computed it (the cross-ISA tests in tests/kernels/
 * test_gemm_isa.py check it). MAXPS/MINPS keep their "NaN: return the second
 * operand" rule in 512 bits, so NaN still survives the clamps. Only included
 * from files compiled with the AVX-512 flags (setup.py).
 */
#ifndef FM_VMATH_AVX512_H
#define FM_VMATH_AVX512_H

#include <immintrin.h>

/* exp(x): see fm_exp_ps (vmath_avx2.h) for the range reduction and series. */
static inline __m512 fm_exp_ps512(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.3f), hi = _mm512_set1_ps(88.37f);
    x = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* expm1(y) for y <= 0: see fm_expm1_neg_ps. */
static inline __m512 fm_expm1_neg_ps512(__m512 y) {
    __m512 p = _mm512_set1_ps(1.0f / 40320.0f);
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f / 5040.0f));
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, y, _mm512_set1_ps(1.0f));
    __m512 small = _mm512_mul_ps(p, y);
    __m512 large = _mm512_sub_ps(fm_exp_ps512(y), _mm512_set1_ps(1.0f));
    __mmask16 is_small = _mm512_cmp_ps_mask(y, _mm512_set1_ps(-0.34657359f), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(is_small, large, small);
}

static inline __m512 fm_sigmoid_ps512(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e = fm_exp_ps512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(one, _mm512_add_ps(one, e));
}

/* tanh(x) = sign(x) * -m / (2 + m), m = expm1(-2|x|): see fm_tanh_ps. The
 * sign bit is moved with integer ops (AVX512F has no float and/or). */
static inline __m512 fm_tanh_ps512(__m512 x) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512i xi = _mm512_castps_si512(x);
    __m512 ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    __m512 m = fm_expm1_neg_ps512(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0f)));
    __m512 t = _mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), m),
                             _mm512_add_ps(_mm512_set1_ps(2.0f), m));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(sign, xi)));
}

static inline __m512 fm_relu_ps512(__m512 x) { return _mm512_max_ps(_mm512_setzero_ps(), x); }

static inline __m512 fm_leaky_relu_ps512(__m512 x, __m512 slope) {
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(neg, x, _mm512_mul_ps(x, slope));
}

static inline __m512d fm_relu_pd512(__m512d x) { return _mm512_max_pd(_mm512_setzero_pd(), x); }

static inline __m512d fm_leaky_relu_pd512(__m512d x, __m512d slope) {
    __mmask8 neg = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_LT_OQ);
    return _mm512_mask_blend_pd(neg, x, _mm512_mul_pd(x, slope));
}

#endif
