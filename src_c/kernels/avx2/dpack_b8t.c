/* AVX2 packing kernel for dgemm: a transposed B (unit row stride, e.g. W.T
 * of a C-ordered W in g @ W.T) -> one NR=8 micro-panel.
 *
 * Design: the generic packer reads each column of B contiguously but writes
 * it one double at a time with a 64-byte stride (g @ W.T, float64: ~6% of
 * the product). Here 8 columns x 4 rows at a time: eight contiguous 4-double
 * loads, two 4x4 transposes in registers (unpack, then swap 128-bit halves),
 * eight contiguous 32-byte stores into the panel rows. Pure data movement:
 * bit-for-bit the generic packer's panel.
 */
#include <immintrin.h>
#include <stdint.h>
#include "../ukernel.h"

/* Rows p..p+3 of four columns (x[j] = column j) -> out[r] = row p+r. */
static inline void fm_transpose4x4_pd(const __m256d x[4], __m256d out[4]) {
    const __m256d t0 = _mm256_unpacklo_pd(x[0], x[1]), t1 = _mm256_unpackhi_pd(x[0], x[1]);
    const __m256d t2 = _mm256_unpacklo_pd(x[2], x[3]), t3 = _mm256_unpackhi_pd(x[2], x[3]);
    out[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    out[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    out[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    out[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* b points at B[0, j0]; B[p, j] = b[p + j * csb]. Packs kc rows x 8 columns. */
void fm_dpack_b8t_avx2(int64_t kc, const double *b, int64_t csb, double *restrict dst) {
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        __m256d x[4], y[4];
        for (int h = 0; h < 2; h++) {  /* columns 4h..4h+3 */
            for (int j = 0; j < 4; j++) x[j] = _mm256_loadu_pd(b + p + (4 * h + j) * csb);
            fm_transpose4x4_pd(x, y);
            for (int r = 0; r < 4; r++) _mm256_storeu_pd(dst + (p + r) * 8 + 4 * h, y[r]);
        }
    }
    for (; p < kc; p++)
        for (int j = 0; j < 8; j++) dst[p * 8 + j] = b[p + j * csb];
}
