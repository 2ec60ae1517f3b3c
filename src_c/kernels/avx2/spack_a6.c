/* AVX2 packing kernel for sgemm: six rows of a row-major A -> one MR=6 panel.
 *
 * Design: the generic packer (gemm/gemm_impl.h) moves one float at a time,
 * six scalar loads and stores per column. Here eight columns at a time: load
 * 8 floats from each of the six rows, transpose the 8x8 block (two rows
 * unused) with unpack/shuffle/permute, and store the eight 6-float columns
 * with overlapping unmasked stores (see below). Pure data movement: bit-for-bit the same panel as the
 * generic packer.
 */
#include <immintrin.h>
#include <stdint.h>
#include "../ukernel.h"
#include "transpose_avx2.h"

void fm_spack_a6_avx2(int64_t kc, const float *a, int64_t rsa, float *restrict dst) {
    const float *r0 = a, *r1 = a + rsa, *r2 = a + 2 * rsa, *r3 = a + 3 * rsa,
                *r4 = a + 4 * rsa, *r5 = a + 5 * rsa;
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        __m256 x0 = _mm256_loadu_ps(r0 + p), x1 = _mm256_loadu_ps(r1 + p);
        __m256 x2 = _mm256_loadu_ps(r2 + p), x3 = _mm256_loadu_ps(r3 + p);
        __m256 x4 = _mm256_loadu_ps(r4 + p), x5 = _mm256_loadu_ps(r5 + p);
        __m256 x[8] = {x0, x1, x2, x3, x4, x5, _mm256_setzero_ps(), _mm256_setzero_ps()}, t[8];
        fm_transpose8x8_ps(x, t);
        /* Stores go in ascending order, each writing 8 floats of which the
         * last 2 are junk overwritten by the next store; the eighth column
         * is stored as 4 + 2 floats so nothing past it is touched. (Masked
         * stores would be simpler but are microcoded and slow on AMD Zen.) */
        float *d = dst + p * 6;
        for (int j = 0; j < 7; j++) _mm256_storeu_ps(d + 6 * j, t[j]);
        _mm_storeu_ps(d + 42, _mm256_castps256_ps128(t[7]));
        _mm_storel_pi((__m64 *)(d + 46), _mm256_extractf128_ps(t[7], 1));
    }
    for (; p < kc; p++) {
        float *d = dst + p * 6;
        d[0] = r0[p]; d[1] = r1[p]; d[2] = r2[p];
        d[3] = r3[p]; d[4] = r4[p]; d[5] = r5[p];
    }
}
