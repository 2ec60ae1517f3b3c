/* FMA peak probe, AVX-512F: 12 chains of zmm FMAs (kernels/peak.h).
 *
 * Design: kernels/peak_tmpl.h's loop on 512-bit vectors. On a core with
 * full-width 512-bit FMA units it measures twice the AVX2 figure; on AMD
 * Zen 4, which executes each 512-bit FMA as two 256-bit halves, the same. */
#include <immintrin.h>

#include "../peak_tmpl.h"

FM_PEAK_VEC(fm_peak_loop_avx512_s, __m512, float, _mm512_set1_ps, _mm512_fmadd_ps,
            _mm512_add_ps, _mm512_storeu_ps, 16)
FM_PEAK_VEC(fm_peak_loop_avx512_d, __m512d, double, _mm512_set1_pd, _mm512_fmadd_pd,
            _mm512_add_pd, _mm512_storeu_pd, 8)
