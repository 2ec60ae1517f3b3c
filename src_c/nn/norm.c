/* Normalisation / bias-gradient / dropout kernels: portable build and
 * run-time dispatch.
 *
 * Design: the kernel bodies live in norm_tmpl.h and are instantiated here
 * for the baseline ISA (suffix _ref) and in kernels/avx2/norm_avx2.c with
 * -mavx2 -mfma (suffix _avx2). Each public fm_norm_* function takes the
 * architecture already resolved by fm_norm_arch() (the Cython layer resolves
 * it once per call, then calls a kernel per block from OpenMP threads) and
 * forwards to that instantiation. The AVX2 symbols are only referenced when
 * FM_BUILD_AVX2 is defined (x86-64 builds).
 */
#include <math.h>
#include "norm.h"
#include "philox.h"

#define FM_ISA ref
#define FM_T float
#define FM_SFX s
#include "norm_tmpl.h"
#define FM_T double
#define FM_SFX d
#include "norm_tmpl.h"
#undef FM_ISA

int fm_norm_arch(int arch) {
    if (arch == FM_ARCH_AUTO) return fm_arch_best();
    if (arch < 0 || arch >= FM_ARCH_COUNT || !fm_arch_usable(arch)) return -1;
    return arch;
}

#ifdef FM_BUILD_AVX2
#define FM_DISPATCH(arch, name, ...)                         \
    do {                                                     \
        if (fm_arch_avx2_family(arch)) name##_avx2(__VA_ARGS__); \
        else name##_ref(__VA_ARGS__);                        \
    } while (0)
#else
#define FM_DISPATCH(arch, name, ...) \
    do {                             \
        (void)(arch);                \
        name##_ref(__VA_ARGS__);     \
    } while (0)
#endif

void fm_norm_colsum_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx, double *acc) {
    FM_DISPATCH(arch, fm_norm_colsum_s, rows, cols, x, ldx, acc);
}
void fm_norm_colsum_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx, double *acc) {
    FM_DISPATCH(arch, fm_norm_colsum_d, rows, cols, x, ldx, acc);
}
void fm_norm_colsumsq_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                        const double *mean, double *acc) {
    FM_DISPATCH(arch, fm_norm_colsumsq_s, rows, cols, x, ldx, mean, acc);
}
void fm_norm_colsumsq_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                        const double *mean, double *acc) {
    FM_DISPATCH(arch, fm_norm_colsumsq_d, rows, cols, x, ldx, mean, acc);
}
void fm_norm_colstats_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                        double *mean, double *m2) {
    FM_DISPATCH(arch, fm_norm_colstats_s, rows, cols, x, ldx, mean, m2);
}
void fm_norm_colstats_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                        double *mean, double *m2) {
    FM_DISPATCH(arch, fm_norm_colstats_d, rows, cols, x, ldx, mean, m2);
}
void fm_norm_bn_bwd_sums_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                           const float *x, int64_t ldx, const double *mean,
                           double *sum_dy, double *sum_dyxc) {
    FM_DISPATCH(arch, fm_norm_bn_bwd_sums_s, rows, cols, dy, lddy, x, ldx, mean, sum_dy, sum_dyxc);
}
void fm_norm_bn_bwd_sums_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                           const double *x, int64_t ldx, const double *mean,
                           double *sum_dy, double *sum_dyxc) {
    FM_DISPATCH(arch, fm_norm_bn_bwd_sums_d, rows, cols, dy, lddy, x, ldx, mean, sum_dy, sum_dyxc);
}
void fm_norm_affine_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                      const double *shift, const double *scale, const double *offset,
                      float *y, int64_t ldy) {
    FM_DISPATCH(arch, fm_norm_affine_s, rows, cols, x, ldx, shift, scale, offset, y, ldy);
}
void fm_norm_affine_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                      const double *shift, const double *scale, const double *offset,
                      double *y, int64_t ldy) {
    FM_DISPATCH(arch, fm_norm_affine_d, rows, cols, x, ldx, shift, scale, offset, y, ldy);
}
void fm_norm_bn_bwd_dx_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                         const float *x, int64_t ldx, const double *mean, const double *a,
                         const double *b, const double *k, float *dx, int64_t lddx) {
    FM_DISPATCH(arch, fm_norm_bn_bwd_dx_s, rows, cols, dy, lddy, x, ldx, mean, a, b, k, dx, lddx);
}
void fm_norm_bn_bwd_dx_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                         const double *x, int64_t ldx, const double *mean, const double *a,
                         const double *b, const double *k, double *dx, int64_t lddx) {
    FM_DISPATCH(arch, fm_norm_bn_bwd_dx_d, rows, cols, dy, lddy, x, ldx, mean, a, b, k, dx, lddx);
}
void fm_norm_ln_fwd_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                      const double *gamma, const double *beta, double eps,
                      float *y, int64_t ldy, double *mean, double *rstd) {
    FM_DISPATCH(arch, fm_norm_ln_fwd_s, rows, cols, x, ldx, gamma, beta, eps, y, ldy, mean, rstd);
}
void fm_norm_ln_fwd_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                      const double *gamma, const double *beta, double eps,
                      double *y, int64_t ldy, double *mean, double *rstd) {
    FM_DISPATCH(arch, fm_norm_ln_fwd_d, rows, cols, x, ldx, gamma, beta, eps, y, ldy, mean, rstd);
}
void fm_norm_ln_bwd_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                      const float *x, int64_t ldx, const double *mean, const double *rstd,
                      const double *gamma, float *dx, int64_t lddx,
                      double *dgamma, double *dbeta) {
    FM_DISPATCH(arch, fm_norm_ln_bwd_s, rows, cols, dy, lddy, x, ldx, mean, rstd, gamma, dx, lddx,
                dgamma, dbeta);
}
void fm_norm_ln_bwd_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                      const double *x, int64_t ldx, const double *mean, const double *rstd,
                      const double *gamma, double *dx, int64_t lddx,
                      double *dgamma, double *dbeta) {
    FM_DISPATCH(arch, fm_norm_ln_bwd_d, rows, cols, dy, lddy, x, ldx, mean, rstd, gamma, dx, lddx,
                dgamma, dbeta);
}

void fm_norm_block_reduce(int64_t nb, int64_t cols, double *p, int64_t ldp) {
    /* Pairwise over blocks: the error grows with log2(nb), not nb. */
    for (int64_t s = 1; s < nb; s *= 2)
        for (int64_t b = 0; b + s < nb; b += 2 * s) {
            double *dst = p + b * ldp;
            const double *src = p + (b + s) * ldp;
            for (int64_t c = 0; c < cols; c++) dst[c] += src[c];
        }
}

void fm_norm_stats_reduce(int64_t nb, int64_t n, int64_t block_rows, int64_t cols,
                          double *mean, double *m2, int64_t ldp) {
    /* Chan et al.'s pairwise update is stable: no E[x^2] - E[x]^2 cancellation. */
    for (int64_t s = 1; s < nb; s *= 2)
        for (int64_t b = 0; b + s < nb; b += 2 * s) {
            int64_t end = b + 2 * s < nb ? (b + 2 * s) * block_rows : n;
            double na = (double)(s * block_rows), nbr = (double)(end - (b + s) * block_rows);
            double wb = nbr / (na + nbr), wab = na * nbr / (na + nbr);
            double *ma = mean + b * ldp, *qa = m2 + b * ldp;
            const double *mb = mean + (b + s) * ldp, *qb = m2 + (b + s) * ldp;
            for (int64_t c = 0; c < cols; c++) {
                double delta = mb[c] - ma[c];
                ma[c] += delta * wb;
                qa[c] += qb[c] + delta * delta * wab;
            }
        }
}

/* ---- dropout ---- */

void fm_dropout_s(int arch, int64_t start, int64_t n, const float *x, float *y,
                  uint64_t seed, double keep) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) {
        fm_dropout_s_avx2(start, n, x, y, seed, keep);
        return;
    }
#endif
    (void)arch;
    fm_dropout_range_s(start, n, x, y, seed, fm_dropout_threshold24(keep), (float)(1.0 / keep));
}

void fm_dropout_d(int arch, int64_t start, int64_t n, const double *x, double *y,
                  uint64_t seed, double keep) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) {
        fm_dropout_d_avx2(start, n, x, y, seed, keep);
        return;
    }
#endif
    (void)arch;
    fm_dropout_range_d(start, n, x, y, seed, fm_dropout_threshold53(keep), 1.0 / keep);
}

int fm_philox4x32_10_many(int arch, int64_t n, const uint32_t *ctr, const uint32_t *key,
                          uint32_t *out) {
    arch = fm_norm_arch(arch);
    if (arch < 0) return FM_ERR_ARG;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) {
        fm_philox4x32_10_many_avx2(n, ctr, key, out);
        return FM_OK;
    }
#endif
    for (int64_t i = 0; i < n; i++) fm_philox4x32_10(ctr + 4 * i, key[0], key[1], out + 4 * i);
    return FM_OK;
}
