/* AVX2 packing kernel for sgemm: a column-major A (unit row stride, e.g. x.T
 * of a C-ordered x in x.T @ g) -> MR=6 micro-panels.
 *
 * Design: a panel's six values for one p are contiguous in column p, so a
 * panel is kc copies of 6 floats. The generic packer (compiled without AVX)
 * spends two loads and two stores plus shuffles on each. Here each copy is
 * one 8-float load and one 8-float store: the store's last two floats are
 * junk that the next p's store overwrites (ascending order), and the last p
 * of a panel is stored exactly (4 + 2 floats), so nothing past the panel is
 * touched. The 8-float load reads two rows past the panel, so it is used only
 * where those rows are inside the block (every panel but the last). Pure data
 * movement: bit-for-bit the generic packer's panels.
 */
#include <immintrin.h>
#include <stdint.h>
#include "../ukernel.h"

static inline void fm_copy6(const float *s, float *d) {
    _mm_storeu_ps(d, _mm_loadu_ps(s));
    _mm_storel_pi((__m64 *)(d + 4), _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(s + 4))));
}

/* a points at A[0, 0] of the block; A[i, p] = a[i + p * csa]. Packs rows
 * [0, 6 npan) x columns [0, kc) into npan panels (panel q at dst + 6 q kc). */
void fm_spack_at6_avx2(int64_t kc, int64_t npan, const float *a, int64_t csa,
                       float *restrict dst) {
    if (kc < 1) return;
    for (int64_t q = 0; q < npan; q++) {
        const float *col = a + 6 * q;
        float *d = dst + 6 * q * kc;
        if (q + 1 < npan) {   /* rows 6q+6, 6q+7 exist: 8-float loads */
            int64_t p = 0;
            for (; p + 1 < kc; p++, col += csa, d += 6)
                _mm256_storeu_ps(d, _mm256_loadu_ps(col));
            fm_copy6(col, d);
        } else {
            for (int64_t p = 0; p < kc; p++, col += csa, d += 6) fm_copy6(col, d);
        }
    }
}
