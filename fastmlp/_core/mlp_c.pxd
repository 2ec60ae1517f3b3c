# Declarations of the whole-network MLP drivers in src_c/nn/mlp.h, for
# fastmlp/_core/_mlp.pyx.
from libc.stdint cimport int64_t

cdef extern from "nn/mlp.h" nogil:
    enum:
        FM_MLP_MAX_LAYERS

    ctypedef struct fm_s_mlp_net:
        int n_layers
        const int64_t *units
        const float *const *w
        const int64_t *rsw
        const int64_t *csw
        const float *const *b
        int act
        float slope

    ctypedef struct fm_d_mlp_net:
        int n_layers
        const int64_t *units
        const double *const *w
        const int64_t *rsw
        const int64_t *csw
        const double *const *b
        int act
        double slope

    int fm_s_mlp_forward(int arch, const fm_s_mlp_net *net, int64_t m, const float *x,
                         int64_t rsx, int64_t csx, float *const *h, int softmax, int nthreads)
    int fm_d_mlp_forward(int arch, const fm_d_mlp_net *net, int64_t m, const double *x,
                         int64_t rsx, int64_t csx, double *const *h, int softmax, int nthreads)
