/* AVX2 optimizer kernels (compiled with -mavx2 -mfma; called only when the
 * CPU has AVX2, see fm_optim_resolve_arch).
 *
 * Design: the methods and formulas are documented in nn/optim.c. The loops
 * are 8 float / 4 double lanes of the scalar code in nn/optim_tmpl.h, which
 * also handles the last n % lanes elements, operation for operation without
 * FMA, so results are bitwise those of the portable kernels. They pay
 * because GCC cannot vectorise the portable sqrt loops without
 * -fno-math-errno. The norm's partial sums keep the portable lane order:
 * element i goes into accumulator i mod 8 (two 4-double vectors).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <immintrin.h>
#include <math.h>
#include "nn/optim.h"
#include "nn/optim_impl.h"

/* ---- float ---- */
#define FT float
#define FN(x) x##_f32
#define FSQRT sqrtf
#include "nn/optim_tmpl.h"

#define VT __m256
#define VL 8
#define VFN(x) x##_f32_avx2
#define VLD _mm256_loadu_ps
#define VST _mm256_storeu_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VSQRT _mm256_sqrt_ps
#define VMAX _mm256_max_ps
#define VAND _mm256_and_ps
#define VANDNOT _mm256_andnot_ps
#define VCMPGT(a, b) _mm256_cmp_ps(a, b, _CMP_GT_OQ)
#define VCMPLT(a, b) _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define VSET1 _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#include "nn/optim_avx2_tmpl.h"
#undef VT
#undef VL
#undef VFN
#undef VLD
#undef VST
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VSQRT
#undef VMAX
#undef VAND
#undef VANDNOT
#undef VCMPGT
#undef VCMPLT
#undef VSET1
#undef VZERO
#undef FT
#undef FN
#undef FSQRT

/* ---- double ---- */
#define FT double
#define FN(x) x##_f64
#define FSQRT sqrt
#include "nn/optim_tmpl.h"

#define VT __m256d
#define VL 4
#define VFN(x) x##_f64_avx2
#define VLD _mm256_loadu_pd
#define VST _mm256_storeu_pd
#define VADD _mm256_add_pd
#define VSUB _mm256_sub_pd
#define VMUL _mm256_mul_pd
#define VDIV _mm256_div_pd
#define VSQRT _mm256_sqrt_pd
#define VMAX _mm256_max_pd
#define VAND _mm256_and_pd
#define VANDNOT _mm256_andnot_pd
#define VCMPGT(a, b) _mm256_cmp_pd(a, b, _CMP_GT_OQ)
#define VCMPLT(a, b) _mm256_cmp_pd(a, b, _CMP_LT_OQ)
#define VSET1 _mm256_set1_pd
#define VZERO _mm256_setzero_pd
#include "nn/optim_avx2_tmpl.h"

void fm_optim_step_f32_avx2(const fm_optim_plan *pl, float *p, const float *g,
                            float *s0, float *s1, float *s2, int64_t n) {
    optim_avx2_f32_avx2(pl, p, g, s0, s1, s2, n);
}

void fm_optim_step_f64_avx2(const fm_optim_plan *pl, double *p, const double *g,
                            double *s0, double *s1, double *s2, int64_t n) {
    optim_avx2_f64_avx2(pl, p, g, s0, s1, s2, n);
}

/* Lanes 0-3 of the eight accumulators in lo, 4-7 in hi. */
double fm_optim_sumsq_f32_avx2(const float *x, int64_t n) {
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        lo = _mm256_add_pd(lo, _mm256_mul_pd(a, a));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(b, b));
    }
    double acc[8];
    _mm256_storeu_pd(acc, lo);
    _mm256_storeu_pd(acc + 4, hi);
    optim_sumsq_tail_f32(x, i, n, acc);
    return fm_optim_reduce8(acc);
}

double fm_optim_sumsq_f64_avx2(const double *x, int64_t n) {
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(x + i + 4);
        lo = _mm256_add_pd(lo, _mm256_mul_pd(a, a));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(b, b));
    }
    double acc[8];
    _mm256_storeu_pd(acc, lo);
    _mm256_storeu_pd(acc + 4, hi);
    optim_sumsq_tail_f64(x, i, n, acc);
    return fm_optim_reduce8(acc);
}
