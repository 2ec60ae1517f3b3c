/* Scalar epilogue (activation applied on the GEMM store), shared by the
 * reference kernel and the drivers' k == 0 path.
 *
 * Design: float32 sigmoid and tanh are the SIMD kernels' own polynomial
 * (kernels/avx2/vmath_avx2.h, kernels/avx512/vmath_avx512.h) written lane by
 * lane: the same constants, clamps (MAXPS/MINPS's NaN rule spelled out),
 * rounding and FMAs (C99 fmaf, exactly rounded everywhere), so a fused
 * float32 activation gives the same bits on every ISA. float64 sigmoid and
 * tanh are libm's in every kernel (the SIMD ones apply them per element). */
#ifndef FM_EPILOGUE_H
#define FM_EPILOGUE_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "../fastmlp.h"

/* fm_exp_ps, one lane. */
static inline float fm_exp_poly_s(float x) {
    x = -87.3f > x ? -87.3f : x;   /* _mm_max_ps(lo, x): NaN stays x */
    x = 88.37f < x ? 88.37f : x;   /* _mm_min_ps(hi, x) */
    const float n = rintf(x * 1.44269504088896341f);
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    /* NaN: n is NaN and the vector conversion gives INT_MIN; any scale
     * times the NaN p is NaN, so only the non-NaN path needs the bits. */
    const uint32_t eb = x == x ? (uint32_t)((int32_t)n + 127) << 23 : 0x3f800000u;
    float e;
    memcpy(&e, &eb, sizeof e);
    return p * e;
}

/* fm_expm1_neg_ps, one lane. */
static inline float fm_expm1_neg_poly_s(float y) {
    float p = 1.0f / 40320.0f;
    p = fmaf(p, y, 1.0f / 5040.0f);
    p = fmaf(p, y, 1.0f / 720.0f);
    p = fmaf(p, y, 1.0f / 120.0f);
    p = fmaf(p, y, 1.0f / 24.0f);
    p = fmaf(p, y, 1.0f / 6.0f);
    p = fmaf(p, y, 0.5f);
    p = fmaf(p, y, 1.0f);
    const float small = p * y, large = fm_exp_poly_s(y) - 1.0f;
    return y > -0.34657359f ? small : large;
}

static inline float fm_sigmoid_poly_s(float x) {
    return 1.0f / (1.0f + fm_exp_poly_s(0.0f - x));
}

static inline float fm_tanh_poly_s(float x) {
    uint32_t xb, tb;
    memcpy(&xb, &x, sizeof xb);
    const uint32_t ab = xb & 0x7fffffffu;
    float ax;
    memcpy(&ax, &ab, sizeof ax);
    const float m = fm_expm1_neg_poly_s(ax * -2.0f);
    const float t = (0.0f - m) / (2.0f + m);
    memcpy(&tb, &t, sizeof tb);
    tb |= xb & 0x80000000u;
    float r;
    memcpy(&r, &tb, sizeof r);
    return r;
}

static inline float fm_act_scalar_s(float x, int act, float slope) {
    switch (act) {
    /* Written as x < 0 ? ... : x so that NaN propagates instead of becoming 0. */
    case FM_ACT_RELU: return x < 0.0f ? 0.0f : x;
    case FM_ACT_LEAKY_RELU: return x < 0.0f ? slope * x : x;
    case FM_ACT_SIGMOID: return fm_sigmoid_poly_s(x);
    case FM_ACT_TANH: return fm_tanh_poly_s(x);
    default: return x;
    }
}

static inline double fm_act_scalar_d(double x, int act, double slope) {
    switch (act) {
    case FM_ACT_RELU: return x < 0.0 ? 0.0 : x;
    case FM_ACT_LEAKY_RELU: return x < 0.0 ? slope * x : x;
    case FM_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case FM_ACT_TANH: return tanh(x);
    default: return x;
    }
}

#endif
