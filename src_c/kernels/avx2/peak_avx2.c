/* FMA peak probe, AVX2 + FMA: 12 chains of ymm FMAs (kernels/peak.h).
 *
 * Design: the loop is kernels/peak_tmpl.h's, instantiated for 256-bit
 * vectors; this file is compiled with -mavx2 -mfma. */
#include <immintrin.h>

#include "../peak_tmpl.h"

FM_PEAK_VEC(fm_peak_loop_avx2_s, __m256, float, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
            _mm256_storeu_ps, 8)
FM_PEAK_VEC(fm_peak_loop_avx2_d, __m256d, double, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd,
            _mm256_storeu_pd, 4)
