/* AVX2 packing kernel for sgemm: a row-major B (unit column stride, e.g. a
 * C-ordered weight matrix W in x @ W) -> NR=16 micro-panels.
 *
 * Design: the generic packer (gemm/gemm_impl.h) is compiled without AVX, so
 * each 64-byte panel row costs four 16-byte loads and stores; packing W1 of
 * a 784-256 layer was ~5% of x @ W1. Here each B row is walked once, left to
 * right (sequential reads the prefetcher follows), and each panel row is one
 * pair of 32-byte loads and stores; two B rows per iteration keep more
 * loads in flight. Pure data movement: bit-for-bit the generic packer's
 * panels.
 */
#include <immintrin.h>
#include <stdint.h>
#include "../ukernel.h"

/* b points at B[0, j0]; B[p, j] = b[p * rsb + j]. Packs kc rows x npan*16
 * columns into npan panels of kc x 16 (panel q at dst + q * 16 * kc). */
void fm_spack_b16n_avx2(int64_t kc, int64_t npan, const float *b, int64_t rsb,
                        float *restrict dst) {
    const int64_t ps = 16 * kc;
    int64_t p = 0;
    for (; p + 2 <= kc; p += 2) {
        const float *r0 = b + p * rsb, *r1 = r0 + rsb;
        float *d = dst + p * 16;
        for (int64_t q = 0; q < npan; q++, d += ps) {
            const __m256 a0 = _mm256_loadu_ps(r0 + 16 * q), a1 = _mm256_loadu_ps(r0 + 16 * q + 8);
            const __m256 c0 = _mm256_loadu_ps(r1 + 16 * q), c1 = _mm256_loadu_ps(r1 + 16 * q + 8);
            _mm256_storeu_ps(d, a0);
            _mm256_storeu_ps(d + 8, a1);
            _mm256_storeu_ps(d + 16, c0);
            _mm256_storeu_ps(d + 24, c1);
        }
    }
    for (; p < kc; p++) {
        const float *r0 = b + p * rsb;
        float *d = dst + p * 16;
        for (int64_t q = 0; q < npan; q++, d += ps) {
            _mm256_storeu_ps(d, _mm256_loadu_ps(r0 + 16 * q));
            _mm256_storeu_ps(d + 8, _mm256_loadu_ps(r0 + 16 * q + 8));
        }
    }
}
