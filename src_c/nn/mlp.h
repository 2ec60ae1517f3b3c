/* Whole-network drivers of a dense MLP (src_c/nn/mlp.c).
 *
 * A network of L layers maps units[0] inputs to units[L] outputs; layer i
 * computes h_i = act_i(h_{i-1} @ W_i + b_i) with W_i a units[i] x units[i+1]
 * matrix (any strides) and b_i a contiguous vector of units[i+1] values;
 * act_i is the hidden activation for i < L-1 and the identity for the last
 * layer (the output activation, softmax, is applied separately).
 */
#ifndef FM_NN_MLP_H
#define FM_NN_MLP_H

#include <stdint.h>
#include "../fastmlp.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FM_MLP_MAX_LAYERS 64

typedef struct {
    int n_layers;
    const int64_t *units;        /* n_layers + 1 widths */
    const float *const *w;       /* w[i]: units[i] x units[i+1] */
    const int64_t *rsw, *csw;    /* its row and column strides (elements) */
    const float *const *b;       /* b[i]: units[i+1] contiguous values */
    int act;                     /* FM_ACT_* of the hidden layers */
    float slope;                 /* leaky ReLU slope */
} fm_s_mlp_net;

typedef struct {
    int n_layers;
    const int64_t *units;
    const double *const *w;
    const int64_t *rsw, *csw;
    const double *const *b;
    int act;
    double slope;
} fm_d_mlp_net;

/* Forward pass of m rows of x (m x units[0], strides rsx, csx) in one OpenMP
 * parallel region: h[i] (m x units[i+1], C-contiguous) receives layer i's
 * output; with `softmax` the last one is turned into row-wise softmax
 * probabilities. Each layer's product is bitwise what fm_?gemm gives, so the
 * result does not depend on nthreads. Returns FM_OK or an FM_ERR_* code. */
int fm_s_mlp_forward(int arch, const fm_s_mlp_net *net, int64_t m, const float *x, int64_t rsx,
                     int64_t csx, float *const *h, int softmax, int nthreads);
int fm_d_mlp_forward(int arch, const fm_d_mlp_net *net, int64_t m, const double *x,
                     int64_t rsx, int64_t csx, double *const *h, int softmax, int nthreads);

/* ---- one training step of a softmax classifier (fm_?_mlp_train_step) ----
 *
 * Everything a mini-batch step does -- gather the batch rows, forward pass,
 * softmax cross-entropy and its gradient, backward pass (weight, bias and
 * input gradients, activation derivative), the squared / absolute sums of the
 * weights for the penalty terms of the loss, and the optimizer update of all
 * parameters -- in one OpenMP parallel region, with barriers between the
 * stages. Each stage splits its work exactly as the kernel-by-kernel path
 * does (fastmlp.nn.mlp.DenseMLP.forward_train / backward, fastmlp._core
 * drivers), so the parameters are bitwise those of that path, and the same
 * for every thread count. */
typedef struct {
    int n_layers;
    const int64_t *units;
    float *const *w, *const *b;      /* parameters: views into `params` */
    float *const *dw, *const *db;    /* gradients: views into `grads` (C-contiguous) */
    float *const *h, *const *g;      /* rows_cap x units[i+1]: outputs, output gradients */
    float *xb;                       /* rows_cap x units[0]: gathered batch */
    int64_t rows_cap;
    int act;
    float slope;
    float *params, *grads;           /* flat: the n_coef weights first, then the rest */
    float *s0, *s1, *s2;             /* optimizer state (flat, like params) or NULL */
    int64_t n_coef, n_params;
} fm_s_mlp_train;

typedef struct {
    int n_layers;
    const int64_t *units;
    double *const *w, *const *b;
    double *const *dw, *const *db;
    double *const *h, *const *g;
    double *xb;
    int64_t rows_cap;
    int act;
    double slope;
    double *params, *grads;
    double *s0, *s1, *s2;
    int64_t n_coef, n_params;
} fm_d_mlp_train;

/* The batch: rows[0..m) of the n_rows x units[0] matrix x (strides rsx, csx),
 * or, when rows is NULL, its rows row0 .. row0 + m (read in place, no copy);
 * labels[r] is the class of row r of x; w: the m sample weights of the batch
 * (in batch order) or NULL for all 1; wsum their sum. */
typedef struct {
    const float *x;
    int64_t n_rows, rsx, csx;
    const int64_t *rows;
    int64_t row0, m;
    const int64_t *labels;
    const double *w;
    double wsum;
} fm_s_mlp_batch;

typedef struct {
    const double *x;
    int64_t n_rows, rsx, csx;
    const int64_t *rows;
    int64_t row0, m;
    const int64_t *labels;
    const double *w;
    double wsum;
} fm_d_mlp_batch;

/* Stages of a step (bit mask): gather + forward pass; softmax cross-entropy
 * and its gradient; backward pass + bias gradients + penalty sums + update.
 * All three make a softmax classifier's step in one call. Other outputs and
 * losses run FORWARD, compute the loss and write the output gradient into
 * g[L-1] themselves, then run UPDATE on the same batch (xb still holds it). */
enum { FM_MLP_STAGE_FORWARD = 1, FM_MLP_STAGE_XENT = 2, FM_MLP_STAGE_UPDATE = 4,
       FM_MLP_STAGE_ALL = 7 };

/* One step; `plan_w` updates the n_coef weights, `plan_b` the other
 * parameters (fastmlp/_core/optim_c: fm_optim_plan_init). out[0] = the batch's
 * mean cross-entropy (sum_i w_i CE_i / wsum), out[1] = sqrt(sum W^2) when
 * want_sq, out[2] = sum |W| when want_abs, both over the weights before the
 * update (the ones the batch's forward pass used). labels may be NULL (and
 * plans too) when the stages do not need them. Returns FM_OK, FM_ERR_ARG (a
 * row index or label out of range, m > rows_cap, a bad size) with nothing
 * updated, or FM_ERR_NOMEM. */
int fm_s_mlp_train_step(int arch, const fm_s_mlp_train *T, const fm_s_mlp_batch *B,
                        const fm_optim_plan *plan_w, const fm_optim_plan *plan_b, int want_sq,
                        int want_abs, int stages, int nthreads, double out[3]);
int fm_d_mlp_train_step(int arch, const fm_d_mlp_train *T, const fm_d_mlp_batch *B,
                        const fm_optim_plan *plan_w, const fm_optim_plan *plan_b, int want_sq,
                        int want_abs, int stages, int nthreads, double out[3]);

/* A run of n_steps steps, one after the other, in ONE parallel region (no
 * team start-up and no return to the caller between steps): step s trains
 * on batch B[s] with plans plan_w[s], plan_b[s] (arrays of n_steps, or NULL
 * when the stages do not update) and writes out[3 s .. 3 s + 3) as
 * fm_?_mlp_train_step does. While the optimizer of step s runs, each thread
 * prefetches the rows of B[s + 1] it will gather next. Bitwise the same as
 * n_steps calls of fm_?_mlp_train_step. *done: the steps completed; on
 * FM_ERR_ARG for a bad row or label, the steps before it were applied and
 * that step updated nothing; other argument errors are found before any
 * step runs (*done = 0). */
int fm_s_mlp_train_steps(int arch, const fm_s_mlp_train *T, const fm_s_mlp_batch *B,
                         const fm_optim_plan *plan_w, const fm_optim_plan *plan_b, int want_sq,
                         int want_abs, int stages, int64_t n_steps, int nthreads, double *out,
                         int64_t *done);
int fm_d_mlp_train_steps(int arch, const fm_d_mlp_train *T, const fm_d_mlp_batch *B,
                         const fm_optim_plan *plan_w, const fm_optim_plan *plan_b, int want_sq,
                         int want_abs, int stages, int64_t n_steps, int nthreads, double *out,
                         int64_t *done);

#ifdef __cplusplus
}
#endif
#endif
