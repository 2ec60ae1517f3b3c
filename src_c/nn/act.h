/* Element-wise activations, row-wise softmax and fused losses (pure C API).
 *
 * Design: every function works on flat contiguous buffers (element-wise
 * kernels) or on contiguous rows (row kernels) of one fixed-size piece of the
 * work; the Cython layer (fastmlp/_core/_act.pyx) cuts arrays into FIXED-size
 * chunks / row blocks and spreads them over OpenMP threads. Because no
 * kernel's result depends on where a chunk starts or on the thread that runs
 * it, and reductions return one partial sum per fixed chunk that the caller
 * adds in chunk order, results are bitwise identical for any thread count.
 *
 * `arch` is FM_ARCH_AUTO (best usable), FM_ARCH_REF (portable C) or
 * FM_ARCH_AVX2; an unusable arch falls back to FM_ARCH_REF.
 *
 * Semantics shared by all arch versions (see fastmlp.ops for the contract):
 *   relu(x) = x < 0 ? 0 : x, NaN kept; relu'(x) = x > 0 (so relu'(0) = 0);
 *   leaky_relu(x) = x < 0 ? alpha*x : x; derivative x < 0 ? alpha : 1;
 *   sigmoid(x) = 1/(1+e^-x); tanh; sign(x) in {-1, 0, +1} (sign(0) = 0),
 *   derivative 0; identity derivative 1.
 *   The backward is grad * f'(z) in IEEE arithmetic (inf * 0 = NaN), with
 *   f'(NaN) = NaN for every activation except identity.
 */
#ifndef FM_NN_ACT_H
#define FM_NN_ACT_H

#include <stdint.h>
#include "../fastmlp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element-wise activation codes (the first five equal FM_ACT_* of the GEMM
 * epilogue). */
enum {
    FM_ELT_IDENTITY = 0,
    FM_ELT_RELU = 1,
    FM_ELT_LEAKY_RELU = 2,
    FM_ELT_SIGMOID = 3,
    FM_ELT_TANH = 4,
    FM_ELT_SIGN = 5,
    FM_ELT_COUNT = 6
};

/* Element-wise loss codes. */
enum {
    FM_ELOSS_MSE = 0,          /* (x - t)^2,             grad 2 (x - t)        */
    FM_ELOSS_MAE = 1,          /* |x - t|,               grad sign(x - t)      */
    FM_ELOSS_POISSON = 2,      /* exp(x) - t x,          grad exp(x) - t       */
    FM_ELOSS_SIGMOID_BCE = 3,  /* max(x,0) - x t + log1p(exp(-|x|)), grad sigmoid(x) - t */
    FM_ELOSS_BCE = 4,          /* -(t log p + (1-t) log(1-p)), p clipped to [eps, 1-eps] */
    FM_ELOSS_COUNT = 5
};

/* out[i] = f(z[i]), i < n. out may equal z (in place); otherwise the buffers
 * must not overlap. stream != 0 allows non-temporal stores (for outputs much
 * larger than the caches; ignored when out == z). Returns FM_OK or
 * FM_ERR_ARG (unknown activation). */
/* Rows per piece of row-wise work (softmax, cross-entropy): about
 * FM_ROW_PIECE_ELEMS elements, 1 to 256 rows. A loss is summed piece by piece,
 * in piece order, so every driver (fastmlp/_core/_act.pyx, nn/mlp.c) takes its
 * pieces from this one rule and they agree to the bit. */
#define FM_ROW_PIECE_ELEMS 32768
static inline int64_t fm_row_piece_rows(int64_t cols) {
    int64_t r = cols > 0 ? FM_ROW_PIECE_ELEMS / cols : 256;
    return r < 1 ? 1 : (r > 256 ? 256 : r);
}

int fm_act_forward_s(int arch, int act, float alpha, const float *z, float *out,
                     int64_t n, int stream);
int fm_act_forward_d(int arch, int act, double alpha, const double *z, double *out,
                     int64_t n, int stream);

/* out[i] = grad[i] * f'(z[i]). out may equal z or grad. */
int fm_act_backward_s(int arch, int act, float alpha, const float *z, const float *grad,
                      float *out, int64_t n, int stream);
int fm_act_backward_d(int arch, int act, double alpha, const double *z, const double *grad,
                      double *out, int64_t n, int stream);

/* Row-wise softmax (log_softmax when `log`) of `rows` contiguous rows of
 * `cols` values, row stride `ld` (>= cols) for both z and out; out may equal
 * z. Each row: m = max, s = sum exp(z - m) accumulated in double, then
 * exp(z - m) / s or z - m - log(s). */
void fm_softmax_rows_s(int arch, const float *z, float *out, int64_t rows, int64_t cols,
                       int64_t ld, int log);
void fm_softmax_rows_d(int arch, const double *z, double *out, int64_t rows, int64_t cols,
                       int64_t ld, int log);

/* Fused softmax cross-entropy over `rows` rows of `cols` logits (row stride
 * cols, contiguous), with integer labels y[r] in [0, cols) (not checked) or
 * target rows t (row stride cols). w: per-row weights or NULL (all 1);
 * inv_wsum = 1 / (sum of all weights of the batch).
 * Writes grad[r, :] = w_r * inv_wsum * (T_r softmax(z_r) - t_r) (T_r = sum of
 * t_r, 1 for labels) and returns sum_r w_r * CE_r in double, where
 * CE_r = T_r logsumexp(z_r) - sum_j t_rj z_rj. grad must not overlap z. */
double fm_xent_labels_s(int arch, const float *z, const int64_t *y, const double *w,
                        double inv_wsum, float *grad, int64_t rows, int64_t cols);
double fm_xent_labels_d(int arch, const double *z, const int64_t *y, const double *w,
                        double inv_wsum, double *grad, int64_t rows, int64_t cols);
double fm_xent_probs_s(int arch, const float *z, const float *t, const double *w,
                       double inv_wsum, float *grad, int64_t rows, int64_t cols);
double fm_xent_probs_d(int arch, const double *z, const double *t, const double *w,
                       double inv_wsum, double *grad, int64_t rows, int64_t cols);

/* Element-wise loss over n values: returns sum_i loss(x[i], t[i]) in double
 * (fixed order) and writes grad[i] = scale * dloss/dx(x[i], t[i]).
 * eps is the clipping bound of FM_ELOSS_BCE (ignored by the others).
 * Returns NaN for an unknown kind (cannot happen through fastmlp.ops). */
double fm_eloss_s(int arch, int kind, const float *x, const float *t, float *grad,
                  int64_t n, double scale, double eps);
double fm_eloss_d(int arch, int kind, const double *x, const double *t, double *grad,
                  int64_t n, double scale, double eps);

/* ---- per-arch kernels (internal; called by the dispatchers in nn/act.c) ---- */
int fm_arch_resolve_act(int arch);

#ifdef FM_BUILD_AVX2
int fm_act_forward_s_avx2(int act, float alpha, const float *z, float *out, int64_t n,
                          int stream);
int fm_act_backward_s_avx2(int act, float alpha, const float *z, const float *grad,
                           float *out, int64_t n, int stream);
int fm_act_forward_d_avx2(int act, double alpha, const double *z, double *out, int64_t n,
                          int stream);
int fm_act_backward_d_avx2(int act, double alpha, const double *z, const double *grad,
                           double *out, int64_t n, int stream);
/* e[j] = exp(z[j] - max(z)) for j < n (e may equal z); *zmax = max(z);
 * returns sum_j e[j] accumulated in double. */
double fm_rowexp_s_avx2(const float *z, float *e, int64_t n, float *zmax);
double fm_rowexp_d_avx2(const double *z, double *e, int64_t n, double *zmax);
/* max(z) and sum_j exp(z[j] - max) without storing the exponentials. */
double fm_rowlse_s_avx2(const float *z, int64_t n, float *zmax);
double fm_rowlse_d_avx2(const double *z, int64_t n, double *zmax);
/* out[j] = z[j] * c. */
void fm_scale_s_avx2(const float *z, float *out, int64_t n, float c);
#endif

#ifdef __cplusplus
}
#endif
#endif
