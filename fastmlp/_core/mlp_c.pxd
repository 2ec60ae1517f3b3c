# Declarations of the whole-network MLP drivers in src_c/nn/mlp.h, for
# fastmlp/_core/_mlp.pyx.
from libc.stdint cimport int64_t
from fastmlp._core.optim_c cimport fm_optim_plan

cdef extern from "nn/mlp.h" nogil:
    enum:
        FM_MLP_MAX_LAYERS
        FM_MLP_STAGE_FORWARD
        FM_MLP_STAGE_XENT
        FM_MLP_STAGE_UPDATE
        FM_MLP_STAGE_ALL

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

    ctypedef struct fm_s_mlp_train:
        int n_layers
        const int64_t *units
        float *const *w
        float *const *b
        float *const *dw
        float *const *db
        float *const *h
        float *const *g
        float *xb
        int64_t rows_cap
        int act
        float slope
        float *params
        float *grads
        float *s0
        float *s1
        float *s2
        int64_t n_coef
        int64_t n_params

    ctypedef struct fm_d_mlp_train:
        int n_layers
        const int64_t *units
        double *const *w
        double *const *b
        double *const *dw
        double *const *db
        double *const *h
        double *const *g
        double *xb
        int64_t rows_cap
        int act
        double slope
        double *params
        double *grads
        double *s0
        double *s1
        double *s2
        int64_t n_coef
        int64_t n_params

    ctypedef struct fm_s_mlp_batch:
        const float *x
        int64_t n_rows, rsx, csx
        const int64_t *rows
        int64_t row0, m
        const int64_t *labels
        const double *w
        double wsum

    ctypedef struct fm_d_mlp_batch:
        const double *x
        int64_t n_rows, rsx, csx
        const int64_t *rows
        int64_t row0, m
        const int64_t *labels
        const double *w
        double wsum

    int fm_s_mlp_train_step(int arch, const fm_s_mlp_train *T, const fm_s_mlp_batch *B,
                            const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                            int want_sq, int want_abs, int stages, int nthreads, double *out)
    int fm_d_mlp_train_step(int arch, const fm_d_mlp_train *T, const fm_d_mlp_batch *B,
                            const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                            int want_sq, int want_abs, int stages, int nthreads, double *out)
    int fm_s_mlp_train_steps(int arch, const fm_s_mlp_train *T, const fm_s_mlp_batch *B,
                             const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                             int want_sq, int want_abs, int stages, int64_t n_steps,
                             int nthreads, double *out, int64_t *done)
    int fm_d_mlp_train_steps(int arch, const fm_d_mlp_train *T, const fm_d_mlp_batch *B,
                             const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                             int want_sq, int want_abs, int stages, int64_t n_steps,
                             int nthreads, double *out, int64_t *done)
