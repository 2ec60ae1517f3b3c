/* AVX2 + FMA kernels for element-wise activations and row softmax.
 *
 * Design: one loop skeleton per direction, instantiated by macro for each
 * activation so the vector formula is inlined in its loop. Every element,
 * including the first (alignment) and last (partial) vector, goes through the
 * same vector formula: partial vectors use masked loads and stores instead of
 * a scalar tail. A value therefore never depends on its position in the
 * buffer, on where the caller's fixed chunks start, or on alignment.
 *
 * Large outputs (the caller's `stream` flag) are written with non-temporal
 * stores: the output's cache lines are not read from memory first (no
 * read-for-ownership), which cuts a memory-bound pass from three transfers
 * per element (read z, read + write out) to two. Not used in place, where
 * the line is in cache anyway.
 *
 * Exponentials take non-positive arguments only (sigmoid: exp(-|x|); tanh';
 * softmax: exp(z - max)); exp_neg_ps/pd below extend the exp of
 * vmath_avx2.h down to the underflow threshold (denormals and exact 0) by
 * scaling with two powers of two, so sigmoid(-inf) = 0 and exp(-inf) = 0
 * exactly instead of saturating at FLT_MIN.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "../../nn/act.h"
#include "vmath_avx2.h"

/* ------------------------------------------------------------ vector maths */

/* exp(x) for x <= 0 (NaN propagates), float lanes, about 1 ulp.
 * x = n ln2 + r, |r| <= ln2/2 (ln2 split so that n*ln2_hi is exact), exp(r) by
 * its degree-7 Taylor polynomial, 2^n = 2^n1 * 2^n2 with n1 = floor(n/2):
 * both factors are normal floats for n in [-150, 0], and the product rounds
 * once, to a denormal or 0 where exp(x) underflows. Below -104 exp(x) rounds
 * to 0; the clamp keeps n in range. */
static inline __m256 exp_neg_ps(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);  /* NaN in x is kept */
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
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* Double version: degree-13 Taylor polynomial (truncation < 5e-18 relative
 * on |r| <= ln2/2), ln2 split as in fdlibm (ln2_hi has 21 trailing zero
 * bits), n in [-1076, 0] split in two halves, each turned into 2^k by
 * adding 1.5 * 2^52 (which leaves k in the low mantissa bits) and moving
 * k + 1023 into the exponent field. */
static inline __m256d exp_neg_pd(__m256d x) {
    x = _mm256_max_pd(_mm256_set1_pd(-746.0), x);
    __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634074)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    static const double inv_fact[14] = {
        1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
        1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600,
        1.0 / 6227020800.0};
    __m256d p = _mm256_set1_pd(inv_fact[13]);
    for (int k = 12; k >= 0; k--) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inv_fact[k]));
    __m256d n1 = _mm256_floor_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)));
    __m256d n2 = _mm256_sub_pd(n, n1);
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    const __m256i bias = _mm256_set1_epi64x(1023);
    __m256i k1 = _mm256_castpd_si256(_mm256_add_pd(n1, magic));
    __m256i k2 = _mm256_castpd_si256(_mm256_add_pd(n2, magic));
    __m256d s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k1, bias), 52));
    __m256d s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(k2, bias), 52));
    return _mm256_mul_pd(_mm256_mul_pd(p, s1), s2);
}

/* expm1(y) for y <= 0: the series where exp(y) - 1 would cancel. */
static inline __m256d expm1_neg_pd(__m256d y) {
    __m256d p = _mm256_set1_pd(1.0 / 6227020800.0);
    static const double inv_fact[13] = {
        1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
        1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600};
    for (int k = 12; k >= 1; k--) p = _mm256_fmadd_pd(p, y, _mm256_set1_pd(inv_fact[k]));
    __m256d small = _mm256_mul_pd(p, y);
    __m256d large = _mm256_sub_pd(exp_neg_pd(y), _mm256_set1_pd(1.0));
    __m256d is_small = _mm256_cmp_pd(y, _mm256_set1_pd(-0.34657359027997264), _CMP_GT_OQ);
    return _mm256_blendv_pd(large, small, is_small);
}

/* -|x| */
static inline __m256 neg_abs_ps(__m256 x) { return _mm256_or_ps(x, _mm256_set1_ps(-0.0f)); }
static inline __m256d neg_abs_pd(__m256d x) { return _mm256_or_pd(x, _mm256_set1_pd(-0.0)); }

/* ------------------------------------------------------------ float formulas */

static inline __m256 f_identity_ps(__m256 x, __m256 a) { (void)a; return x; }
static inline __m256 f_relu_ps(__m256 x, __m256 a) { (void)a; return fm_relu_ps(x); }
static inline __m256 f_leaky_ps(__m256 x, __m256 a) { return fm_leaky_relu_ps(x, a); }
static inline __m256 f_tanh_ps(__m256 x, __m256 a) { (void)a; return fm_tanh_ps(x); }

/* x < 0 ? e/(1+e) : 1/(1+e), e = exp(-|x|). */
static inline __m256 f_sigmoid_ps(__m256 x, __m256 a) {
    (void)a;
    __m256 e = exp_neg_ps(neg_abs_ps(x));
    __m256 d = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(d, _mm256_mul_ps(e, d), neg);
}

static inline __m256 f_sign_ps(__m256 x, __m256 a) {
    (void)a;
    const __m256 zero = _mm256_setzero_ps();
    __m256 pos = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), _mm256_set1_ps(1.0f));
    __m256 neg = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), _mm256_set1_ps(-1.0f));
    return _mm256_blendv_ps(_mm256_or_ps(pos, neg), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* Backward: g * f'(z), f'(NaN) = NaN (z itself is blended in). */
static inline __m256 nan_of(__m256 d, __m256 z) {
    return _mm256_blendv_ps(d, z, _mm256_cmp_ps(z, z, _CMP_UNORD_Q));
}
static inline __m256 b_identity_ps(__m256 z, __m256 g, __m256 a) { (void)z; (void)a; return g; }
static inline __m256 b_relu_ps(__m256 z, __m256 g, __m256 a) {
    (void)a;
    __m256 d = _mm256_and_ps(_mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ),
                             _mm256_set1_ps(1.0f));
    return _mm256_mul_ps(g, nan_of(d, z));
}
static inline __m256 b_leaky_ps(__m256 z, __m256 g, __m256 a) {
    __m256 d = _mm256_blendv_ps(_mm256_set1_ps(1.0f), a,
                                _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ));
    return _mm256_mul_ps(g, nan_of(d, z));
}
static inline __m256 b_sign_ps(__m256 z, __m256 g, __m256 a) {
    (void)a;
    return _mm256_mul_ps(g, nan_of(_mm256_setzero_ps(), z));
}
/* sigmoid'(z) = e/(1+e)^2, e = exp(-|z|) */
static inline __m256 b_sigmoid_ps(__m256 z, __m256 g, __m256 a) {
    (void)a;
    __m256 e = exp_neg_ps(neg_abs_ps(z));
    __m256 p = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
    return _mm256_mul_ps(g, _mm256_div_ps(e, _mm256_mul_ps(p, p)));
}
/* tanh'(z) = 4e/(1+e)^2, e = exp(-2|z|) */
static inline __m256 b_tanh_ps(__m256 z, __m256 g, __m256 a) {
    (void)a;
    __m256 e = exp_neg_ps(_mm256_mul_ps(neg_abs_ps(z), _mm256_set1_ps(2.0f)));
    __m256 p = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
    return _mm256_mul_ps(g, _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), e),
                                          _mm256_mul_ps(p, p)));
}

/* ------------------------------------------------------------ double formulas */

static inline __m256d f_identity_pd(__m256d x, __m256d a) { (void)a; return x; }
static inline __m256d f_relu_pd(__m256d x, __m256d a) { (void)a; return fm_relu_pd(x); }
static inline __m256d f_leaky_pd(__m256d x, __m256d a) { return fm_leaky_relu_pd(x, a); }
static inline __m256d f_sigmoid_pd(__m256d x, __m256d a) {
    (void)a;
    __m256d e = exp_neg_pd(neg_abs_pd(x));
    __m256d d = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_add_pd(_mm256_set1_pd(1.0), e));
    __m256d neg = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ);
    return _mm256_blendv_pd(d, _mm256_mul_pd(e, d), neg);
}
/* tanh(x) = sign(x) * (-m / (2 + m)), m = expm1(-2|x|). */
static inline __m256d f_tanh_pd(__m256d x, __m256d a) {
    (void)a;
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d m = expm1_neg_pd(_mm256_mul_pd(neg_abs_pd(x), _mm256_set1_pd(2.0)));
    __m256d t = _mm256_div_pd(_mm256_sub_pd(_mm256_setzero_pd(), m),
                              _mm256_add_pd(_mm256_set1_pd(2.0), m));
    return _mm256_or_pd(t, _mm256_and_pd(sign, x));
}
static inline __m256d f_sign_pd(__m256d x, __m256d a) {
    (void)a;
    const __m256d zero = _mm256_setzero_pd();
    __m256d pos = _mm256_and_pd(_mm256_cmp_pd(x, zero, _CMP_GT_OQ), _mm256_set1_pd(1.0));
    __m256d neg = _mm256_and_pd(_mm256_cmp_pd(x, zero, _CMP_LT_OQ), _mm256_set1_pd(-1.0));
    return _mm256_blendv_pd(_mm256_or_pd(pos, neg), x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

static inline __m256d nan_of_pd(__m256d d, __m256d z) {
    return _mm256_blendv_pd(d, z, _mm256_cmp_pd(z, z, _CMP_UNORD_Q));
}
static inline __m256d b_identity_pd(__m256d z, __m256d g, __m256d a) {
    (void)z; (void)a; return g;
}
static inline __m256d b_relu_pd(__m256d z, __m256d g, __m256d a) {
    (void)a;
    __m256d d = _mm256_and_pd(_mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_GT_OQ),
                              _mm256_set1_pd(1.0));
    return _mm256_mul_pd(g, nan_of_pd(d, z));
}
static inline __m256d b_leaky_pd(__m256d z, __m256d g, __m256d a) {
    __m256d d = _mm256_blendv_pd(_mm256_set1_pd(1.0), a,
                                 _mm256_cmp_pd(z, _mm256_setzero_pd(), _CMP_LT_OQ));
    return _mm256_mul_pd(g, nan_of_pd(d, z));
}
static inline __m256d b_sign_pd(__m256d z, __m256d g, __m256d a) {
    (void)a;
    return _mm256_mul_pd(g, nan_of_pd(_mm256_setzero_pd(), z));
}
static inline __m256d b_sigmoid_pd(__m256d z, __m256d g, __m256d a) {
    (void)a;
    __m256d e = exp_neg_pd(neg_abs_pd(z));
    __m256d p = _mm256_add_pd(_mm256_set1_pd(1.0), e);
    return _mm256_mul_pd(g, _mm256_div_pd(e, _mm256_mul_pd(p, p)));
}
static inline __m256d b_tanh_pd(__m256d z, __m256d g, __m256d a) {
    (void)a;
    __m256d e = exp_neg_pd(_mm256_mul_pd(neg_abs_pd(z), _mm256_set1_pd(2.0)));
    __m256d p = _mm256_add_pd(_mm256_set1_pd(1.0), e);
    return _mm256_mul_pd(g, _mm256_div_pd(_mm256_mul_pd(_mm256_set1_pd(4.0), e),
                                          _mm256_mul_pd(p, p)));
}

/* ------------------------------------------------------------ loop skeletons */

/* Lanes [0, k) of a partial vector, k in [1, 8] (floats) or [1, 4] (doubles). */
static inline __m256i mask_ps(int64_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i mask_pd(int64_t k) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* Elements before the first 32-byte aligned output address (non-temporal
 * stores need it); `out` is at least element-aligned. */
static inline int64_t head_len(const void *out, int64_t size, int64_t n) {
    int64_t h = (int64_t)(((32 - ((uintptr_t)out & 31)) & 31) / (uintptr_t)size);
    return h < n ? h : n;
}

/* Instantiate out[i] = F(z[i]) for float (W = 8 lanes). */
#define FWD_PS(NAME, F)                                                             \
    static void NAME(const float *z, float *out, int64_t n, int stream, __m256 a) {  \
        int64_t i = 0;                                                              \
        if (stream && out != z && ((uintptr_t)out & 3) == 0) {                      \
            int64_t h = head_len(out, 4, n);                                        \
            if (h > 0) {                                                            \
                __m256i m = mask_ps(h);                                             \
                _mm256_maskstore_ps(out, m, F(_mm256_maskload_ps(z, m), a));        \
                i = h;                                                              \
            }                                                                       \
            for (; i + 8 <= n; i += 8)                                              \
                _mm256_stream_ps(out + i, F(_mm256_loadu_ps(z + i), a));            \
            _mm_sfence();                                                           \
        } else {                                                                    \
            for (; i + 8 <= n; i += 8)                                              \
                _mm256_storeu_ps(out + i, F(_mm256_loadu_ps(z + i), a));            \
        }                                                                           \
        if (i < n) {                                                                \
            __m256i m = mask_ps(n - i);                                             \
            _mm256_maskstore_ps(out + i, m, F(_mm256_maskload_ps(z + i, m), a));    \
        }                                                                           \
    }

/* out[i] = B(z[i], g[i]) for float. */
#define BWD_PS(NAME, B)                                                             \
    static void NAME(const float *z, const float *g, float *out, int64_t n, int stream, \
                     __m256 a) {                                                    \
        int64_t i = 0;                                                              \
        if (stream && out != z && out != g && ((uintptr_t)out & 3) == 0) {          \
            int64_t h = head_len(out, 4, n);                                        \
            if (h > 0) {                                                            \
                __m256i m = mask_ps(h);                                             \
                _mm256_maskstore_ps(out, m, B(_mm256_maskload_ps(z, m),             \
                                              _mm256_maskload_ps(g, m), a));        \
                i = h;                                                              \
            }                                                                       \
            for (; i + 8 <= n; i += 8)                                              \
                _mm256_stream_ps(out + i, B(_mm256_loadu_ps(z + i),                 \
                                            _mm256_loadu_ps(g + i), a));            \
            _mm_sfence();                                                           \
        } else {                                                                    \
            for (; i + 8 <= n; i += 8)                                              \
                _mm256_storeu_ps(out + i, B(_mm256_loadu_ps(z + i),                 \
                                            _mm256_loadu_ps(g + i), a));            \
        }                                                                           \
        if (i < n) {                                                                \
            __m256i m = mask_ps(n - i);                                             \
            _mm256_maskstore_ps(out + i, m, B(_mm256_maskload_ps(z + i, m),         \
                                              _mm256_maskload_ps(g + i, m), a));    \
        }                                                                           \
    }

#define FWD_PD(NAME, F)                                                             \
    static void NAME(const double *z, double *out, int64_t n, int stream, __m256d a) { \
        int64_t i = 0;                                                              \
        if (stream && out != z && ((uintptr_t)out & 7) == 0) {                      \
            int64_t h = head_len(out, 8, n);                                        \
            if (h > 0) {                                                            \
                __m256i m = mask_pd(h);                                             \
                _mm256_maskstore_pd(out, m, F(_mm256_maskload_pd(z, m), a));        \
                i = h;                                                              \
            }                                                                       \
            for (; i + 4 <= n; i += 4)                                              \
                _mm256_stream_pd(out + i, F(_mm256_loadu_pd(z + i), a));            \
            _mm_sfence();                                                           \
        } else {                                                                    \
            for (; i + 4 <= n; i += 4)                                              \
                _mm256_storeu_pd(out + i, F(_mm256_loadu_pd(z + i), a));            \
        }                                                                           \
        if (i < n) {                                                                \
            __m256i m = mask_pd(n - i);                                             \
            _mm256_maskstore_pd(out + i, m, F(_mm256_maskload_pd(z + i, m), a));    \
        }                                                                           \
    }

#define BWD_PD(NAME, B)                                                             \
    static void NAME(const double *z, const double *g, double *out, int64_t n, int stream, \
                     __m256d a) {                                                   \
        int64_t i = 0;                                                              \
        if (stream && out != z && out != g && ((uintptr_t)out & 7) == 0) {          \
            int64_t h = head_len(out, 8, n);                                        \
            if (h > 0) {                                                            \
                __m256i m = mask_pd(h);                                             \
                _mm256_maskstore_pd(out, m, B(_mm256_maskload_pd(z, m),             \
                                              _mm256_maskload_pd(g, m), a));        \
                i = h;                                                              \
            }                                                                       \
            for (; i + 4 <= n; i += 4)                                              \
                _mm256_stream_pd(out + i, B(_mm256_loadu_pd(z + i),                 \
                                            _mm256_loadu_pd(g + i), a));            \
            _mm_sfence();                                                           \
        } else {                                                                    \
            for (; i + 4 <= n; i += 4)                                              \
                _mm256_storeu_pd(out + i, B(_mm256_loadu_pd(z + i),                 \
                                            _mm256_loadu_pd(g + i), a));            \
        }                                                                           \
        if (i < n) {                                                                \
            __m256i m = mask_pd(n - i);                                             \
            _mm256_maskstore_pd(out + i, m, B(_mm256_maskload_pd(z + i, m),         \
                                              _mm256_maskload_pd(g + i, m), a));    \
        }                                                                           \
    }

FWD_PS(fwd_identity_s, f_identity_ps)
FWD_PS(fwd_relu_s, f_relu_ps)
FWD_PS(fwd_leaky_s, f_leaky_ps)
FWD_PS(fwd_sigmoid_s, f_sigmoid_ps)
FWD_PS(fwd_tanh_s, f_tanh_ps)
FWD_PS(fwd_sign_s, f_sign_ps)
BWD_PS(bwd_identity_s, b_identity_ps)
BWD_PS(bwd_relu_s, b_relu_ps)
BWD_PS(bwd_leaky_s, b_leaky_ps)
BWD_PS(bwd_sigmoid_s, b_sigmoid_ps)
BWD_PS(bwd_tanh_s, b_tanh_ps)
BWD_PS(bwd_sign_s, b_sign_ps)
FWD_PD(fwd_identity_d, f_identity_pd)
FWD_PD(fwd_relu_d, f_relu_pd)
FWD_PD(fwd_leaky_d, f_leaky_pd)
FWD_PD(fwd_sigmoid_d, f_sigmoid_pd)
FWD_PD(fwd_tanh_d, f_tanh_pd)
FWD_PD(fwd_sign_d, f_sign_pd)
BWD_PD(bwd_identity_d, b_identity_pd)
BWD_PD(bwd_relu_d, b_relu_pd)
BWD_PD(bwd_leaky_d, b_leaky_pd)
BWD_PD(bwd_sigmoid_d, b_sigmoid_pd)
BWD_PD(bwd_tanh_d, b_tanh_pd)
BWD_PD(bwd_sign_d, b_sign_pd)

int fm_act_forward_s_avx2(int act, float alpha, const float *z, float *out, int64_t n,
                          int stream) {
    __m256 a = _mm256_set1_ps(alpha);
    switch (act) {
    case FM_ELT_IDENTITY: if (out != z) fwd_identity_s(z, out, n, stream, a); return FM_OK;
    case FM_ELT_RELU: fwd_relu_s(z, out, n, stream, a); return FM_OK;
    case FM_ELT_LEAKY_RELU: fwd_leaky_s(z, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGMOID: fwd_sigmoid_s(z, out, n, stream, a); return FM_OK;
    case FM_ELT_TANH: fwd_tanh_s(z, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGN: fwd_sign_s(z, out, n, stream, a); return FM_OK;
    default: return FM_ERR_ARG;
    }
}

int fm_act_backward_s_avx2(int act, float alpha, const float *z, const float *grad,
                           float *out, int64_t n, int stream) {
    __m256 a = _mm256_set1_ps(alpha);
    switch (act) {
    case FM_ELT_IDENTITY:
        if (out != grad) bwd_identity_s(z, grad, out, n, stream, a);
        return FM_OK;
    case FM_ELT_RELU: bwd_relu_s(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_LEAKY_RELU: bwd_leaky_s(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGMOID: bwd_sigmoid_s(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_TANH: bwd_tanh_s(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGN: bwd_sign_s(z, grad, out, n, stream, a); return FM_OK;
    default: return FM_ERR_ARG;
    }
}

int fm_act_forward_d_avx2(int act, double alpha, const double *z, double *out, int64_t n,
                          int stream) {
    __m256d a = _mm256_set1_pd(alpha);
    switch (act) {
    case FM_ELT_IDENTITY: if (out != z) fwd_identity_d(z, out, n, stream, a); return FM_OK;
    case FM_ELT_RELU: fwd_relu_d(z, out, n, stream, a); return FM_OK;
    case FM_ELT_LEAKY_RELU: fwd_leaky_d(z, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGMOID: fwd_sigmoid_d(z, out, n, stream, a); return FM_OK;
    case FM_ELT_TANH: fwd_tanh_d(z, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGN: fwd_sign_d(z, out, n, stream, a); return FM_OK;
    default: return FM_ERR_ARG;
    }
}

int fm_act_backward_d_avx2(int act, double alpha, const double *z, const double *grad,
                           double *out, int64_t n, int stream) {
    __m256d a = _mm256_set1_pd(alpha);
    switch (act) {
    case FM_ELT_IDENTITY:
        if (out != grad) bwd_identity_d(z, grad, out, n, stream, a);
        return FM_OK;
    case FM_ELT_RELU: bwd_relu_d(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_LEAKY_RELU: bwd_leaky_d(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGMOID: bwd_sigmoid_d(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_TANH: bwd_tanh_d(z, grad, out, n, stream, a); return FM_OK;
    case FM_ELT_SIGN: bwd_sign_d(z, grad, out, n, stream, a); return FM_OK;
    default: return FM_ERR_ARG;
    }
}

/* ------------------------------------------------------------ row softmax */

static inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline double hsum_pd(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

static inline double hmax_pd(__m256d v) {
    __m128d m = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    m = _mm_max_sd(m, _mm_unpackhi_pd(m, m));
    return _mm_cvtsd_f64(m);
}

/* Row maximum (n >= 1). A NaN may or may not win; either way it reaches the
 * sum of exponentials and makes the whole row NaN. */
static float rowmax_ps(const float *z, int64_t n) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(z + i));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(z + i + 8));
    }
    for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(z + i));
    if (i < n) {
        __m256i k = mask_ps(n - i);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(z + i, k), _mm256_castsi256_ps(k));
        m0 = _mm256_max_ps(m0, v);
    }
    return hmax_ps(_mm256_max_ps(m0, m1));
}

static double rowmax_pd(const double *z, int64_t n) {
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    __m256d m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        m0 = _mm256_max_pd(m0, _mm256_loadu_pd(z + i));
        m1 = _mm256_max_pd(m1, _mm256_loadu_pd(z + i + 4));
    }
    for (; i + 4 <= n; i += 4) m0 = _mm256_max_pd(m0, _mm256_loadu_pd(z + i));
    if (i < n) {
        __m256i k = mask_pd(n - i);
        __m256d v = _mm256_blendv_pd(ninf, _mm256_maskload_pd(z + i, k), _mm256_castsi256_pd(k));
        m0 = _mm256_max_pd(m0, v);
    }
    return hmax_pd(_mm256_max_pd(m0, m1));
}

/* Sum of the 8 float lanes of e into two double accumulators. */
#define ACC_PS(e)                                                              \
    do {                                                                       \
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));    \
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));  \
    } while (0)

/* e = exp(z - max), returning the sum in double (store when e != NULL). */
static double rowexp_ps(const float *z, float *e, int64_t n, float *zmax) {
    float m = rowmax_ps(z, n);
    __m256 vm = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp_neg_ps(_mm256_sub_ps(_mm256_loadu_ps(z + i), vm));
        if (e) _mm256_storeu_ps(e + i, v);
        ACC_PS(v);
    }
    if (i < n) {
        __m256i k = mask_ps(n - i);
        __m256 v = exp_neg_ps(_mm256_sub_ps(_mm256_maskload_ps(z + i, k), vm));
        v = _mm256_and_ps(v, _mm256_castsi256_ps(k));  /* inactive lanes add 0 */
        if (e) _mm256_maskstore_ps(e + i, k, v);
        ACC_PS(v);
    }
    *zmax = m;
    return hsum_pd(_mm256_add_pd(s0, s1));
}

static double rowexp_pd(const double *z, double *e, int64_t n, double *zmax) {
    double m = rowmax_pd(z, n);
    __m256d vm = _mm256_set1_pd(m);
    __m256d s0 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d v = exp_neg_pd(_mm256_sub_pd(_mm256_loadu_pd(z + i), vm));
        if (e) _mm256_storeu_pd(e + i, v);
        s0 = _mm256_add_pd(s0, v);
    }
    if (i < n) {
        __m256i k = mask_pd(n - i);
        __m256d v = exp_neg_pd(_mm256_sub_pd(_mm256_maskload_pd(z + i, k), vm));
        v = _mm256_and_pd(v, _mm256_castsi256_pd(k));
        if (e) _mm256_maskstore_pd(e + i, k, v);
        s0 = _mm256_add_pd(s0, v);
    }
    *zmax = m;
    return hsum_pd(s0);
}

double fm_rowexp_s_avx2(const float *z, float *e, int64_t n, float *zmax) {
    return rowexp_ps(z, e, n, zmax);
}

double fm_rowlse_s_avx2(const float *z, int64_t n, float *zmax) {
    return rowexp_ps(z, NULL, n, zmax);
}

double fm_rowexp_d_avx2(const double *z, double *e, int64_t n, double *zmax) {
    return rowexp_pd(z, e, n, zmax);
}

double fm_rowlse_d_avx2(const double *z, int64_t n, double *zmax) {
    return rowexp_pd(z, NULL, n, zmax);
}

/* Plain loop: compiled here it is vectorised with AVX2. */
void fm_scale_s_avx2(const float *z, float *out, int64_t n, float c) {
    for (int64_t j = 0; j < n; j++) out[j] = z[j] * c;
}
