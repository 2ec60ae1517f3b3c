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

#ifdef __cplusplus
}
#endif
#endif
