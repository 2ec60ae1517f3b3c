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
#include "transpose_avx2.h"

static inline void fm_transpose8_store(const float *src, int64_t cs, float *dst, int64_t ld) {
    __m256 x[8], t[8];
    for (int r = 0; r < 8; r++) x[r] = _mm256_loadu_ps(src + r * cs);
    fm_transpose8x8_ps(x, t);
    for (int r = 0; r < 8; r++) _mm256_storeu_ps(dst + r * ld, t[r]);
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
