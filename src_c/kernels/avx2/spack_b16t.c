/* AVX2 packing kernel for sgemm: a transposed B (unit row stride, e.g. W.T
 * of a C-ordered W) -> one NR=16 micro-panel.
 *
 * Design: the generic packer reads each column of B contiguously but writes
 * it one float at a time with a 64-byte stride. Here 8 columns x 8 rows at a
 * time: eight contiguous loads, an 8x8 transpose in registers
 * (unpack/shuffle/permute), eight contiguous 32-byte stores into the panel
 * rows. Pure data movement: bit-for-bit the generic packer's panel.
 */
#include <immintrin.h>
#include <stdint.h>
#include "../ukernel.h"

static inline void fm_transpose8_store(const float *src, int64_t cs, float *dst, int64_t ld) {
    __m256 x0 = _mm256_loadu_ps(src + 0 * cs), x1 = _mm256_loadu_ps(src + 1 * cs);
    __m256 x2 = _mm256_loadu_ps(src + 2 * cs), x3 = _mm256_loadu_ps(src + 3 * cs);
    __m256 x4 = _mm256_loadu_ps(src + 4 * cs), x5 = _mm256_loadu_ps(src + 5 * cs);
    __m256 x6 = _mm256_loadu_ps(src + 6 * cs), x7 = _mm256_loadu_ps(src + 7 * cs);
    __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
    __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
    __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
    __m256 t6 = _mm256_unpacklo_ps(x6, x7), t7 = _mm256_unpackhi_ps(x6, x7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* b points at B[0, j0]; B[p, j] = b[p + j * csb]. Packs kc rows x 16 columns. */
void fm_spack_b16t_avx2(int64_t kc, const float *b, int64_t csb, float *restrict dst) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        fm_transpose8_store(b + p, csb, dst + p * 16, 16);
        fm_transpose8_store(b + p + 8 * csb, csb, dst + p * 16 + 8, 16);
    }
    for (; p < kc; p++)
        for (int j = 0; j < 16; j++) dst[p * 16 + j] = b[p + j * csb];
}
