/* Philox4x32-10 counter-based random numbers and the scalar dropout loops.
 *
 * Design: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11) maps a 128-bit counter and a 64-bit
 * key to 128 random bits with 10 rounds of two 32x32->64-bit multiplies and
 * xors, the key bumped by the Weyl constants between rounds. Being a pure
 * function of (counter, key), the mask element i gets depends only on the
 * seed and i: nothing is stored, any thread may compute any element, and the
 * backward pass regenerates the forward mask. Checked against Random123's
 * known-answer vectors (tests/kernels/test_norm.py).
 *
 * Used by nn/norm.c (reference dropout) and by kernels/avx2/norm_avx2.c for
 * the head and tail elements of a range. Header-only: static inline.
 */
#ifndef FM_NN_PHILOX_H
#define FM_NN_PHILOX_H

#include <math.h>
#include <stdint.h>

#define FM_PHILOX_M0 0xD2511F53u
#define FM_PHILOX_M1 0xCD9E8D57u
#define FM_PHILOX_W0 0x9E3779B9u
#define FM_PHILOX_W1 0xBB67AE85u

static inline void fm_philox4x32_10(const uint32_t ctr[4], uint32_t k0, uint32_t k1,
                                    uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)FM_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)FM_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
        k0 += FM_PHILOX_W0;  /* the key bump after the last round is unused */
        k1 += FM_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Philox block j of the dropout stream: counter {j_lo, j_hi, 0, 0}, key = seed. */
static inline void fm_philox_block(uint64_t j, uint64_t seed, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), 0u, 0u};
    fm_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32), out);
}

/* Keep thresholds: u < keep  <=>  integer u' < ceil(keep * 2^bits) for
 * u = u' / 2^bits (keep * 2^bits is exact: a power-of-two scaling). */
static inline uint32_t fm_dropout_threshold24(double keep) {
    double t = ceil(keep * 16777216.0);
    return t >= 16777216.0 ? 16777216u : (t <= 0.0 ? 0u : (uint32_t)t);
}

static inline uint64_t fm_dropout_threshold53(double keep) {
    double t = ceil(keep * 9007199254740992.0);
    return t >= 9007199254740992.0 ? (uint64_t)1 << 53 : (t <= 0.0 ? 0u : (uint64_t)t);
}

/* 53-bit integer from two words: the top 27 bits of a, the top 26 of b. */
static inline uint64_t fm_dropout_u53(uint32_t a, uint32_t b) {
    return ((uint64_t)(a >> 5) << 26) | (uint64_t)(b >> 6);
}

/* Elements start .. start+n-1 (x[0] is element `start`), float32. */
static inline void fm_dropout_range_s(int64_t start, int64_t n, const float *x, float *y,
                                      uint64_t seed, uint32_t thresh, float scale) {
    int64_t i = 0;
    while (i < n) {
        uint64_t e = (uint64_t)(start + i);
        uint32_t w[4];
        fm_philox_block(e >> 2, seed, w);
        for (unsigned k = (unsigned)(e & 3u); k < 4 && i < n; k++, i++)
            y[i] = x[i] * ((w[k] >> 8) < thresh ? scale : 0.0f);
    }
}

/* Elements start .. start+n-1, float64. */
static inline void fm_dropout_range_d(int64_t start, int64_t n, const double *x, double *y,
                                      uint64_t seed, uint64_t thresh, double scale) {
    int64_t i = 0;
    while (i < n) {
        uint64_t e = (uint64_t)(start + i);
        uint32_t w[4];
        fm_philox_block(e >> 1, seed, w);
        for (unsigned h = (unsigned)(e & 1u); h < 2 && i < n; h++, i++)
            y[i] = x[i] * (fm_dropout_u53(w[2 * h], w[2 * h + 1]) < thresh ? scale : 0.0);
    }
}

#endif
