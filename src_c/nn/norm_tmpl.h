/* Type-generic bodies of the normalisation kernels (a C "template").
 *
 * Design: this file is included four times: by nn/norm.c (portable build)
 * and by kernels/avx2/norm_avx2.c (built with -mavx2 -mfma), each time with
 * FM_T = float / double, FM_SFX = s / d and FM_ISA = ref / avx2 defined. The
 * loops are written so that GCC and clang vectorise them on their own:
 *  - column reductions run over rows in the outer loop and over columns in
 *    the inner loop, one float64 accumulator per column (no reassociation
 *    needed, so vectorisation does not change any result);
 *  - row reductions use FM_NORM_LANES interleaved accumulators, combined by
 *    a fixed pairwise tree (the order depends only on the row length), so
 *    the compiler may keep them in vector registers without -ffast-math.
 * -std=c11 turns FP contraction off (no FMA from a*b+c), hence the portable
 * and AVX2 builds round identically.
 *
 * All arithmetic is float64; float32 inputs are widened on load and the
 * result rounded once on store. No output may overlap an input (restrict:
 * the compiler vectorises without run-time overlap checks; fastmlp.ops
 * routes overlapping out= arrays through temporaries).
 */
#if !defined(FM_T) || !defined(FM_SFX) || !defined(FM_ISA)
#error "define FM_T, FM_SFX and FM_ISA before including norm_tmpl.h"
#endif

#if defined(__clang__)
/* clang contracts a*b+c within an expression by default even under -std=c11;
 * keep every product and sum rounded separately, as GCC does. */
#pragma STDC FP_CONTRACT OFF
#endif

#define FM_TGLUE_(a, b, c) a##_##b##_##c
#define FM_TGLUE(a, b, c) FM_TGLUE_(a, b, c)
#define FM_FN(base) FM_TGLUE(base, FM_SFX, FM_ISA)

/* Sum of x[j] (or of (x[j] - mu)^2 when sq) over a row, in float64 with
 * FM_NORM_LANES interleaved accumulators: lane l sums j = l (mod LANES);
 * the lanes are added by a pairwise tree ((a0+a1)+(a2+a3))+... The
 * interleaving also cuts the rounding error by ~LANES and breaks the
 * add-latency chain. */
static inline double FM_FN(fm_norm_rowsum)(int64_t n, const FM_T *x, double mu, int sq) {
    double acc[FM_NORM_LANES] = {0};
    int64_t j = 0;
    if (sq) {
        for (; j + FM_NORM_LANES <= n; j += FM_NORM_LANES)
            for (int l = 0; l < FM_NORM_LANES; l++) {
                double d = (double)x[j + l] - mu;
                acc[l] += d * d;
            }
        for (int l = 0; j + l < n; l++) {
            double d = (double)x[j + l] - mu;
            acc[l] += d * d;
        }
    } else {
        for (; j + FM_NORM_LANES <= n; j += FM_NORM_LANES)
            for (int l = 0; l < FM_NORM_LANES; l++) acc[l] += (double)x[j + l];
        for (int l = 0; j + l < n; l++) acc[l] += (double)x[j + l];
    }
    for (int w = 1; w < FM_NORM_LANES; w *= 2)
        for (int l = 0; l + w < FM_NORM_LANES; l += 2 * w) acc[l] += acc[l + w];
    return acc[0];
}

/* Column reductions. Four rows per sweep over the accumulator row, so that
 * each accumulator is loaded and stored once per four rows (the adds stay in
 * row order: ((acc + x0) + x1) + x2) + x3, the same as one row at a time). */
void FM_FN(fm_norm_colsum)(int64_t rows, int64_t cols, const FM_T *restrict x, int64_t ldx,
                           double *restrict acc) {
    for (int64_t c = 0; c < cols; c++) acc[c] = 0.0;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const FM_T *x0 = x + r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        for (int64_t c = 0; c < cols; c++) {
            double a = acc[c];
            a += (double)x0[c];
            a += (double)x1[c];
            a += (double)x2[c];
            a += (double)x3[c];
            acc[c] = a;
        }
    }
    for (; r < rows; r++) {
        const FM_T *xr = x + r * ldx;
        for (int64_t c = 0; c < cols; c++) acc[c] += (double)xr[c];
    }
}

#define FM_SQ(xr) ((double)(xr)[c] - mean[c]) * ((double)(xr)[c] - mean[c])
void FM_FN(fm_norm_colsumsq)(int64_t rows, int64_t cols, const FM_T *restrict x, int64_t ldx,
                             const double *restrict mean, double *restrict acc) {
    for (int64_t c = 0; c < cols; c++) acc[c] = 0.0;
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const FM_T *x0 = x + r * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        for (int64_t c = 0; c < cols; c++) {
            double a = acc[c];
            a += FM_SQ(x0);
            a += FM_SQ(x1);
            a += FM_SQ(x2);
            a += FM_SQ(x3);
            acc[c] = a;
        }
    }
    for (; r < rows; r++) {
        const FM_T *xr = x + r * ldx;
        for (int64_t c = 0; c < cols; c++) acc[c] += FM_SQ(xr);
    }
}
#undef FM_SQ

/* One block's column means and sums of squared deviations from them: two
 * passes, the second one over data still in L2 (the block is small). */
void FM_FN(fm_norm_colstats)(int64_t rows, int64_t cols, const FM_T *restrict x, int64_t ldx,
                             double *restrict mean, double *restrict m2) {
    FM_FN(fm_norm_colsum)(rows, cols, x, ldx, mean);
    for (int64_t c = 0; c < cols; c++) mean[c] /= (double)rows;
    FM_FN(fm_norm_colsumsq)(rows, cols, x, ldx, mean, m2);
}

void FM_FN(fm_norm_bn_bwd_sums)(int64_t rows, int64_t cols, const FM_T *restrict dy,
                                int64_t lddy, const FM_T *restrict x, int64_t ldx,
                                const double *restrict mean, double *restrict sum_dy,
                                double *restrict sum_dyxc) {
    for (int64_t c = 0; c < cols; c++) sum_dy[c] = sum_dyxc[c] = 0.0;
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const FM_T *d0 = dy + r * lddy, *d1 = d0 + lddy, *x0 = x + r * ldx, *x1 = x0 + ldx;
        for (int64_t c = 0; c < cols; c++) {
            double g0 = (double)d0[c], g1 = (double)d1[c];
            double s = sum_dy[c], t = sum_dyxc[c];
            s += g0;
            t += g0 * ((double)x0[c] - mean[c]);
            s += g1;
            t += g1 * ((double)x1[c] - mean[c]);
            sum_dy[c] = s;
            sum_dyxc[c] = t;
        }
    }
    for (; r < rows; r++) {
        const FM_T *dyr = dy + r * lddy, *xr = x + r * ldx;
        for (int64_t c = 0; c < cols; c++) {
            double g = (double)dyr[c];
            sum_dy[c] += g;
            sum_dyxc[c] += g * ((double)xr[c] - mean[c]);
        }
    }
}

void FM_FN(fm_norm_affine)(int64_t rows, int64_t cols, const FM_T *restrict x, int64_t ldx,
                           const double *restrict shift, const double *restrict scale,
                           const double *restrict offset, FM_T *restrict y, int64_t ldy) {
    for (int64_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * ldx;
        FM_T *yr = y + r * ldy;
        for (int64_t c = 0; c < cols; c++)
            yr[c] = (FM_T)(((double)xr[c] - shift[c]) * scale[c] + offset[c]);
    }
}

void FM_FN(fm_norm_bn_bwd_dx)(int64_t rows, int64_t cols, const FM_T *restrict dy, int64_t lddy,
                              const FM_T *restrict x, int64_t ldx, const double *restrict mean,
                              const double *restrict a, const double *restrict b,
                              const double *restrict k, FM_T *restrict dx, int64_t lddx) {
    for (int64_t r = 0; r < rows; r++) {
        const FM_T *dyr = dy + r * lddy, *xr = x + r * ldx;
        FM_T *dxr = dx + r * lddx;
        for (int64_t c = 0; c < cols; c++)
            dxr[c] = (FM_T)(a[c] * (double)dyr[c] - b[c] * ((double)xr[c] - mean[c]) - k[c]);
    }
}

void FM_FN(fm_norm_ln_fwd)(int64_t rows, int64_t cols, const FM_T *restrict x, int64_t ldx,
                           const double *restrict gamma, const double *restrict beta, double eps,
                           FM_T *restrict y, int64_t ldy, double *restrict mean,
                           double *restrict rstd) {
    double inv_n = 1.0 / (double)cols;
    for (int64_t r = 0; r < rows; r++) {
        const FM_T *xr = x + r * ldx;
        FM_T *yr = y + r * ldy;
        /* Two passes over the row (it stays in L1): the centred second pass
         * has no cancellation, unlike E[x^2] - E[x]^2. */
        double mu = FM_FN(fm_norm_rowsum)(cols, xr, 0.0, 0) * inv_n;
        double var = FM_FN(fm_norm_rowsum)(cols, xr, mu, 1) * inv_n;
        double rs = 1.0 / sqrt(var + eps);
        mean[r] = mu;
        rstd[r] = rs;
        for (int64_t c = 0; c < cols; c++)
            yr[c] = (FM_T)((((double)xr[c] - mu) * rs) * gamma[c] + beta[c]);
    }
}

void FM_FN(fm_norm_ln_bwd)(int64_t rows, int64_t cols, const FM_T *restrict dy, int64_t lddy,
                           const FM_T *restrict x, int64_t ldx, const double *restrict mean,
                           const double *restrict rstd, const double *restrict gamma,
                           FM_T *restrict dx, int64_t lddx, double *restrict dgamma,
                           double *restrict dbeta) {
    double inv_n = 1.0 / (double)cols;
    for (int64_t c = 0; c < cols; c++) dgamma[c] = dbeta[c] = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const FM_T *dyr = dy + r * lddy, *xr = x + r * ldx;
        FM_T *dxr = dx + r * lddx;
        double mu = mean[r], rs = rstd[r];
        /* s1 = sum g, s2 = sum g * xhat with g = dy * gamma (lanes as in rowsum) */
        double a1[FM_NORM_LANES] = {0}, a2[FM_NORM_LANES] = {0};
        int64_t j = 0;
        for (; j + FM_NORM_LANES <= cols; j += FM_NORM_LANES)
            for (int l = 0; l < FM_NORM_LANES; l++) {
                double g = (double)dyr[j + l] * gamma[j + l];
                a1[l] += g;
                a2[l] += g * (((double)xr[j + l] - mu) * rs);
            }
        for (int l = 0; j + l < cols; l++) {
            double g = (double)dyr[j + l] * gamma[j + l];
            a1[l] += g;
            a2[l] += g * (((double)xr[j + l] - mu) * rs);
        }
        for (int w = 1; w < FM_NORM_LANES; w *= 2)
            for (int l = 0; l + w < FM_NORM_LANES; l += 2 * w) {
                a1[l] += a1[l + w];
                a2[l] += a2[l + w];
            }
        double m1 = a1[0] * inv_n, m2 = a2[0] * inv_n;
        for (int64_t c = 0; c < cols; c++) {
            double g = (double)dyr[c];
            double xhat = ((double)xr[c] - mu) * rs;
            dgamma[c] += g * xhat;
            dbeta[c] += g;
            /* dx = rstd * (g*gamma - mean(g*gamma) - xhat * mean(g*gamma*xhat)) */
            dxr[c] = (FM_T)(rs * ((g * gamma[c] - m1) - xhat * m2));
        }
    }
}

#undef FM_FN
#undef FM_TGLUE
#undef FM_TGLUE_
#undef FM_T
#undef FM_SFX
