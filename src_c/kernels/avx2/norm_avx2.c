/* AVX2 + FMA builds of the normalisation kernels, and AVX2 dropout.
 *
 * Design: the normalisation kernels are nn/norm_tmpl.h compiled with
 * -mavx2 -mfma: the compiler vectorises them with 256-bit registers (they
 * are bandwidth-bound, the wider float32->float64 conversions are what
 * pays). Contraction to FMA is off under -std=c11, so they round exactly as
 * the portable build does.
 *
 * Dropout is hand-written: Philox4x32-10 needs 32x32->64-bit products, and
 * _mm256_mul_epu32 multiplies the low 32 bits of each 64-bit lane. So the
 * four Philox words of four counters live in four vectors with one counter
 * per 64-bit lane (only the low 32 bits are meaningful; the multiply reads
 * only those, xor is bitwise, and the high word of a product is extracted
 * with a 64-bit shift, so garbage in the upper halves never reaches a
 * result). Two such groups (8 counters) are interleaved to hide the
 * multiply latency. The words are then transposed to element order and
 * compared against the integer keep threshold; the scalar loops of
 * nn/philox.h do the few elements before the first whole counter block and
 * after the last group, so the output is bit-identical to the reference.
 */
#include <immintrin.h>
#include <math.h>
#include "../../nn/norm.h"
#include "../../nn/philox.h"

#define FM_ISA avx2
#define FM_T float
#define FM_SFX s
#include "../../nn/norm_tmpl.h"
#define FM_T double
#define FM_SFX d
#include "../../nn/norm_tmpl.h"
#undef FM_ISA

typedef struct {
    __m256i k0[10], k1[10];  /* round keys, broadcast to the 64-bit lanes */
} fm_philox_keys;

static inline void fm_philox_keys_init(fm_philox_keys *rk, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        rk->k0[r] = _mm256_set1_epi64x((long long)k0);
        rk->k1[r] = _mm256_set1_epi64x((long long)k1);
        k0 += FM_PHILOX_W0;
        k1 += FM_PHILOX_W1;
    }
}

/* Ten rounds on two groups of four counters (c[0..3] and d[0..3]). */
static inline void fm_philox_x8(__m256i c[4], __m256i d[4], const fm_philox_keys *rk) {
    const __m256i m0 = _mm256_set1_epi64x(FM_PHILOX_M0), m1 = _mm256_set1_epi64x(FM_PHILOX_M1);
#pragma GCC unroll 10
    for (int r = 0; r < 10; r++) {
        __m256i pc0 = _mm256_mul_epu32(c[0], m0), pc1 = _mm256_mul_epu32(c[2], m1);
        __m256i pd0 = _mm256_mul_epu32(d[0], m0), pd1 = _mm256_mul_epu32(d[2], m1);
        c[0] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pc1, 32), c[1]), rk->k0[r]);
        c[2] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pc0, 32), c[3]), rk->k1[r]);
        c[1] = pc1;
        c[3] = pc0;
        d[0] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pd1, 32), d[1]), rk->k0[r]);
        d[2] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(pd0, 32), d[3]), rk->k1[r]);
        d[1] = pd1;
        d[3] = pd0;
    }
}

/* Counters {j+l, 0, 0} for l = 0..3 (64-bit block index split in two words). */
static inline void fm_philox_counters(uint64_t j, __m256i c[4]) {
    __m256i jj = _mm256_add_epi64(_mm256_set1_epi64x((long long)j), _mm256_set_epi64x(3, 2, 1, 0));
    c[0] = jj;  /* low word; the high half is ignored by the multiply */
    c[1] = _mm256_srli_epi64(jj, 32);
    c[2] = _mm256_setzero_si256();
    c[3] = _mm256_setzero_si256();
}

/* Words of 4 counters (one per 64-bit lane) -> 16 words in element order:
 * e0 = counters 0 and 1 (words 0..3 each), e1 = counters 2 and 3. */
static inline void fm_philox_to_elements(const __m256i c[4], __m256i *e0, __m256i *e1) {
    __m256i a = _mm256_blend_epi32(c[0], _mm256_slli_epi64(c[1], 32), 0xAA); /* w0 w1 */
    __m256i b = _mm256_blend_epi32(c[2], _mm256_slli_epi64(c[3], 32), 0xAA); /* w2 w3 */
    __m256i lo = _mm256_unpacklo_epi64(a, b);  /* counter 0 | counter 2 */
    __m256i hi = _mm256_unpackhi_epi64(a, b);  /* counter 1 | counter 3 */
    *e0 = _mm256_permute2x128_si256(lo, hi, 0x20);
    *e1 = _mm256_permute2x128_si256(lo, hi, 0x31);
}

static inline __m256 fm_dropout_apply8_s(__m256i w, __m256i thresh, __m256 scale, const float *x) {
    __m256i keep = _mm256_cmpgt_epi32(thresh, _mm256_srli_epi32(w, 8));
    return _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_and_ps(_mm256_castsi256_ps(keep), scale));
}

void fm_dropout_s_avx2(int64_t start, int64_t n, const float *x, float *y, uint64_t seed,
                       double keep) {
    uint32_t t24 = fm_dropout_threshold24(keep);
    float scale = (float)(1.0 / keep);
    /* head: up to the first whole Philox block (4 elements) */
    int64_t head = (int64_t)((4 - ((uint64_t)start & 3u)) & 3u);
    if (head > n) head = n;
    fm_dropout_range_s(start, head, x, y, seed, t24, scale);
    int64_t i = head;
    fm_philox_keys rk;
    fm_philox_keys_init(&rk, (uint32_t)seed, (uint32_t)(seed >> 32));
    /* t24 <= 2^24 and words >> 8 < 2^24: a signed 32-bit compare is exact. */
    const __m256i thresh = _mm256_set1_epi32((int)t24);
    const __m256 vscale = _mm256_set1_ps(scale);
    for (; i + 32 <= n; i += 32) {
        uint64_t j = (uint64_t)(start + i) >> 2;
        __m256i c[4], d[4], e[4];
        fm_philox_counters(j, c);
        fm_philox_counters(j + 4, d);
        fm_philox_x8(c, d, &rk);
        fm_philox_to_elements(c, &e[0], &e[1]);
        fm_philox_to_elements(d, &e[2], &e[3]);
        for (int q = 0; q < 4; q++)
            _mm256_storeu_ps(y + i + 8 * q, fm_dropout_apply8_s(e[q], thresh, vscale, x + i + 8 * q));
    }
    fm_dropout_range_s(start + i, n - i, x + i, y + i, seed, t24, scale);
}

/* 53-bit integers of the 4 counters of c: even = words (0, 1), odd = (2, 3);
 * keep masks for 8 consecutive elements in element order. */
static inline void fm_dropout_keep8_d(const __m256i c[4], __m256i thresh, __m256i *k0, __m256i *k1) {
    const __m256i m27 = _mm256_set1_epi64x(0x7FFFFFF), m26 = _mm256_set1_epi64x(0x3FFFFFF);
    __m256i ue = _mm256_or_si256(
        _mm256_slli_epi64(_mm256_and_si256(_mm256_srli_epi32(c[0], 5), m27), 26),
        _mm256_and_si256(_mm256_srli_epi32(c[1], 6), m26));
    __m256i uo = _mm256_or_si256(
        _mm256_slli_epi64(_mm256_and_si256(_mm256_srli_epi32(c[2], 5), m27), 26),
        _mm256_and_si256(_mm256_srli_epi32(c[3], 6), m26));
    /* u < 2^53 and thresh <= 2^53: the signed 64-bit compare is exact. */
    __m256i ke = _mm256_cmpgt_epi64(thresh, ue);  /* elements 0, 2, 4, 6 */
    __m256i ko = _mm256_cmpgt_epi64(thresh, uo);  /* elements 1, 3, 5, 7 */
    __m256i lo = _mm256_unpacklo_epi64(ke, ko);   /* 0 1 | 4 5 */
    __m256i hi = _mm256_unpackhi_epi64(ke, ko);   /* 2 3 | 6 7 */
    *k0 = _mm256_permute2x128_si256(lo, hi, 0x20);
    *k1 = _mm256_permute2x128_si256(lo, hi, 0x31);
}

void fm_dropout_d_avx2(int64_t start, int64_t n, const double *x, double *y, uint64_t seed,
                       double keep) {
    uint64_t t53 = fm_dropout_threshold53(keep);
    double scale = 1.0 / keep;
    int64_t head = (int64_t)((uint64_t)start & 1u);
    if (head > n) head = n;
    fm_dropout_range_d(start, head, x, y, seed, t53, scale);
    int64_t i = head;
    fm_philox_keys rk;
    fm_philox_keys_init(&rk, (uint32_t)seed, (uint32_t)(seed >> 32));
    const __m256i thresh = _mm256_set1_epi64x((long long)t53);
    const __m256d vscale = _mm256_set1_pd(scale);
    for (; i + 16 <= n; i += 16) {
        uint64_t j = (uint64_t)(start + i) >> 1;
        __m256i c[4], d[4], k[4];
        fm_philox_counters(j, c);
        fm_philox_counters(j + 4, d);
        fm_philox_x8(c, d, &rk);
        fm_dropout_keep8_d(c, thresh, &k[0], &k[1]);
        fm_dropout_keep8_d(d, thresh, &k[2], &k[3]);
        for (int q = 0; q < 4; q++) {
            __m256d m = _mm256_and_pd(_mm256_castsi256_pd(k[q]), vscale);
            _mm256_storeu_pd(y + i + 4 * q, _mm256_mul_pd(_mm256_loadu_pd(x + i + 4 * q), m));
        }
    }
    fm_dropout_range_d(start + i, n - i, x + i, y + i, seed, t53, scale);
}

void fm_philox4x32_10_many_avx2(int64_t n, const uint32_t *ctr, const uint32_t *key,
                                uint32_t *out) {
    fm_philox_keys rk;
    fm_philox_keys_init(&rk, key[0], key[1]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i c[4], d[4];
        const uint32_t *p = ctr + 4 * i, *q = ctr + 4 * (i + 4);
        for (int w = 0; w < 4; w++) {
            c[w] = _mm256_set_epi64x(p[12 + w], p[8 + w], p[4 + w], p[w]);
            d[w] = _mm256_set_epi64x(q[12 + w], q[8 + w], q[4 + w], q[w]);
        }
        fm_philox_x8(c, d, &rk);
        for (int w = 0; w < 4; w++) {
            uint64_t lc[4], ld[4];
            _mm256_storeu_si256((__m256i *)lc, c[w]);
            _mm256_storeu_si256((__m256i *)ld, d[w]);
            for (int l = 0; l < 4; l++) {
                out[4 * (i + l) + w] = (uint32_t)lc[l];
                out[4 * (i + 4 + l) + w] = (uint32_t)ld[l];
            }
        }
    }
    for (; i < n; i++) fm_philox4x32_10(ctr + 4 * i, key[0], key[1], out + 4 * i);
}
