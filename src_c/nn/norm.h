/* fastmlp normalisation, bias-gradient and dropout kernels (pure C).
 *
 * Design: every function here works on ONE block of rows (or one range of
 * elements) on the calling thread; the Cython layer (fastmlp/_core/_norm.pyx)
 * runs the blocks in parallel with OpenMP. Matrices are row-major with unit
 * column stride and a row stride `ld` counted in elements.
 *
 * Determinism: column reductions (sums over rows) are computed per fixed
 * block of FM_NORM_BLOCK_ROWS rows, sequentially in row order and in
 * float64, into a scratch row per block; fm_norm_block_reduce then adds the
 * block rows with a fixed pairwise tree. Neither the blocks nor the tree
 * depend on the number of threads, so results are bitwise identical for any
 * thread count. Row reductions (layer norm) are computed by one thread per
 * row with FM_NORM_LANES fixed interleaved accumulators.
 *
 * Arithmetic: float32 data is widened to float64 for every reduction and
 * every per-element formula; the result is rounded to float32 once.
 *
 * Outputs never overlap inputs (except dropout's y, which may be x itself).
 *
 * `arch` arguments: FM_ARCH_REF or FM_ARCH_AVX2 as returned by
 * fm_norm_arch(); the AVX2 versions are the same source compiled with
 * -mavx2 -mfma (no FP contraction under -std=c11, so they round exactly
 * like the reference), except dropout, which has hand-written intrinsics.
 */
#ifndef FM_NN_NORM_H
#define FM_NN_NORM_H

#include <stdint.h>
#include "../fastmlp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per reduction block (fixes the summation order of column sums). */
#define FM_NORM_BLOCK_ROWS 64
/* Interleaved accumulators of a row sum (fixes its summation order). */
#define FM_NORM_LANES 16

/* FM_ARCH_AUTO -> the best usable architecture; an explicit one if usable;
 * -1 if not usable. */
int fm_norm_arch(int arch);

/* ---- column reductions over one block of rows (acc overwritten) ---- */
/* acc[c] = sum_r x[r, c] */
void fm_norm_colsum_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx, double *acc);
void fm_norm_colsum_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx, double *acc);
/* acc[c] = sum_r (x[r, c] - mean[c])^2 */
void fm_norm_colsumsq_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                        const double *mean, double *acc);
void fm_norm_colsumsq_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                        const double *mean, double *acc);
/* mean[c] = sum_r x[r, c] / rows;  m2[c] = sum_r (x[r, c] - mean[c])^2
 * (two passes over the block, the second from cache). */
void fm_norm_colstats_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                        double *mean, double *m2);
void fm_norm_colstats_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                        double *mean, double *m2);
/* sum_dy[c] = sum_r dy[r, c];  sum_dyxc[c] = sum_r dy[r, c] * (x[r, c] - mean[c]) */
void fm_norm_bn_bwd_sums_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                           const float *x, int64_t ldx, const double *mean,
                           double *sum_dy, double *sum_dyxc);
void fm_norm_bn_bwd_sums_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                           const double *x, int64_t ldx, const double *mean,
                           double *sum_dy, double *sum_dyxc);

/* In place on column range [0, cols) of an nb x cols block table with row
 * stride ldp: p[0, c] = sum_b p[b, c] by a fixed pairwise tree over b
 * (level s = 1, 2, 4, ...: p[b] += p[b + s] for b a multiple of 2s).
 * Other rows are clobbered. */
void fm_norm_block_reduce(int64_t nb, int64_t cols, double *p, int64_t ldp);
/* The same tree for per-block (mean, m2) tables of fm_norm_colstats over
 * blocks of block_rows rows (the last one holding the rest of n rows),
 * merged with Chan, Golub & LeVeque's formula:
 *   delta = mean_b - mean_a,  mean = mean_a + delta * n_b / n,
 *   m2 = m2_a + m2_b + delta^2 * n_a * n_b / n.
 * Result in row 0 of both tables. */
void fm_norm_stats_reduce(int64_t nb, int64_t n, int64_t block_rows, int64_t cols,
                          double *mean, double *m2, int64_t ldp);

/* ---- element-wise passes over one block of rows ---- */
/* y[r, c] = (x[r, c] - shift[c]) * scale[c] + offset[c], in float64. */
void fm_norm_affine_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                      const double *shift, const double *scale, const double *offset,
                      float *y, int64_t ldy);
void fm_norm_affine_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                      const double *shift, const double *scale, const double *offset,
                      double *y, int64_t ldy);
/* dx[r, c] = a[c] * dy[r, c] - b[c] * (x[r, c] - mean[c]) - k[c], in float64. */
void fm_norm_bn_bwd_dx_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                         const float *x, int64_t ldx, const double *mean, const double *a,
                         const double *b, const double *k, float *dx, int64_t lddx);
void fm_norm_bn_bwd_dx_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                         const double *x, int64_t ldx, const double *mean, const double *a,
                         const double *b, const double *k, double *dx, int64_t lddx);

/* ---- layer norm: each row normalised over its cols features ---- */
/* mean[r], rstd[r] = 1/sqrt(var + eps) (biased var, two passes over the row);
 * y = (x - mean) * rstd * gamma + beta. */
void fm_norm_ln_fwd_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                      const double *gamma, const double *beta, double eps,
                      float *y, int64_t ldy, double *mean, double *rstd);
void fm_norm_ln_fwd_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                      const double *gamma, const double *beta, double eps,
                      double *y, int64_t ldy, double *mean, double *rstd);
/* dx (per row, closed form) and this block's partial column sums
 * dgamma[c] = sum_r dy * xhat, dbeta[c] = sum_r dy (overwritten). */
void fm_norm_ln_bwd_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                      const float *x, int64_t ldx, const double *mean, const double *rstd,
                      const double *gamma, float *dx, int64_t lddx,
                      double *dgamma, double *dbeta);
void fm_norm_ln_bwd_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                      const double *x, int64_t ldx, const double *mean, const double *rstd,
                      const double *gamma, double *dx, int64_t lddx,
                      double *dgamma, double *dbeta);

/* ---- dropout with a counter-based RNG (Philox4x32-10, key = seed) ----
 * Element i of the logical array (C-order flat index; the call covers
 * indices start .. start+n-1, x[0] being index `start`) is kept with
 * probability `keep` = 1 - p in (0, 1]:
 *   float32: Philox block j = i / 4 (counter {j_lo, j_hi, 0, 0}), word w = i % 4,
 *            kept iff (word >> 8) < ceil(keep * 2^24)  [u = top 24 bits / 2^24 < keep];
 *   float64: block j = i / 2, words a = 2(i % 2), b = a + 1,
 *            kept iff ((wa >> 5) * 2^26 + (wb >> 6)) < ceil(keep * 2^53)  [53-bit u < keep].
 * y[i] = x[i] * m with m = 1/keep (rounded to the dtype) if kept else 0
 * (so NaN/inf stay NaN where dropped, as x * mask * scale does). y may be x. */
void fm_dropout_s(int arch, int64_t start, int64_t n, const float *x, float *y,
                  uint64_t seed, double keep);
void fm_dropout_d(int arch, int64_t start, int64_t n, const double *x, double *y,
                  uint64_t seed, double keep);

/* Philox4x32-10 of n counters (n x 4 words) with one key (2 words): out is
 * n x 4 words. For known-answer tests of both implementations.
 * Returns FM_OK or FM_ERR_ARG for an unusable arch. */
int fm_philox4x32_10_many(int arch, int64_t n, const uint32_t *ctr, const uint32_t *key,
                          uint32_t *out);

/* ---- per-architecture entry points (same arguments, no arch) ---- */
#define FM_NORM_DECLARE(isa)                                                                   \
    void fm_norm_colsum_s_##isa(int64_t, int64_t, const float *, int64_t, double *);          \
    void fm_norm_colsum_d_##isa(int64_t, int64_t, const double *, int64_t, double *);         \
    void fm_norm_colsumsq_s_##isa(int64_t, int64_t, const float *, int64_t, const double *,   \
                                  double *);                                                   \
    void fm_norm_colsumsq_d_##isa(int64_t, int64_t, const double *, int64_t, const double *,  \
                                  double *);                                                   \
    void fm_norm_colstats_s_##isa(int64_t, int64_t, const float *, int64_t, double *,        \
                                  double *);                                                   \
    void fm_norm_colstats_d_##isa(int64_t, int64_t, const double *, int64_t, double *,       \
                                  double *);                                                   \
    void fm_norm_bn_bwd_sums_s_##isa(int64_t, int64_t, const float *, int64_t, const float *,  \
                                     int64_t, const double *, double *, double *);             \
    void fm_norm_bn_bwd_sums_d_##isa(int64_t, int64_t, const double *, int64_t,                \
                                     const double *, int64_t, const double *, double *,        \
                                     double *);                                                \
    void fm_norm_affine_s_##isa(int64_t, int64_t, const float *, int64_t, const double *,     \
                                const double *, const double *, float *, int64_t);             \
    void fm_norm_affine_d_##isa(int64_t, int64_t, const double *, int64_t, const double *,    \
                                const double *, const double *, double *, int64_t);            \
    void fm_norm_bn_bwd_dx_s_##isa(int64_t, int64_t, const float *, int64_t, const float *,    \
                                   int64_t, const double *, const double *, const double *,    \
                                   const double *, float *, int64_t);                          \
    void fm_norm_bn_bwd_dx_d_##isa(int64_t, int64_t, const double *, int64_t, const double *,  \
                                   int64_t, const double *, const double *, const double *,    \
                                   const double *, double *, int64_t);                         \
    void fm_norm_ln_fwd_s_##isa(int64_t, int64_t, const float *, int64_t, const double *,     \
                                const double *, double, float *, int64_t, double *, double *); \
    void fm_norm_ln_fwd_d_##isa(int64_t, int64_t, const double *, int64_t, const double *,    \
                                const double *, double, double *, int64_t, double *,           \
                                double *);                                                     \
    void fm_norm_ln_bwd_s_##isa(int64_t, int64_t, const float *, int64_t, const float *,      \
                                int64_t, const double *, const double *, const double *,       \
                                float *, int64_t, double *, double *);                         \
    void fm_norm_ln_bwd_d_##isa(int64_t, int64_t, const double *, int64_t, const double *,    \
                                int64_t, const double *, const double *, const double *,       \
                                double *, int64_t, double *, double *);

FM_NORM_DECLARE(ref)
FM_NORM_DECLARE(avx2)

void fm_dropout_s_avx2(int64_t start, int64_t n, const float *x, float *y, uint64_t seed,
                       double keep);
void fm_dropout_d_avx2(int64_t start, int64_t n, const double *x, double *y, uint64_t seed,
                       double keep);
void fm_philox4x32_10_many_avx2(int64_t n, const uint32_t *ctr, const uint32_t *key,
                                uint32_t *out);

#ifdef __cplusplus
}
#endif
#endif
