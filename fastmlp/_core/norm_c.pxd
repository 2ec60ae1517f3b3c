# Declarations of the normalisation / bias-gradient / dropout kernels in
# src_c/nn/norm.h (see that header for the exact contracts).
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "nn/norm.h" nogil:
    enum:
        FM_NORM_BLOCK_ROWS
        FM_NORM_LANES

    int fm_norm_arch(int arch)

    void fm_norm_colsum_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                          double *acc)
    void fm_norm_colsum_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                          double *acc)
    void fm_norm_colsumsq_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                            const double *mean, double *acc)
    void fm_norm_colsumsq_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                            const double *mean, double *acc)
    void fm_norm_colstats_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                            double *mean, double *m2)
    void fm_norm_colstats_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                            double *mean, double *m2)
    void fm_norm_stats_reduce(int64_t nb, int64_t n, int64_t block_rows, int64_t cols,
                              double *mean, double *m2, int64_t ldp)
    void fm_norm_bn_bwd_sums_s(int arch, int64_t rows, int64_t cols, const float *dy,
                               int64_t lddy, const float *x, int64_t ldx, const double *mean,
                               double *sum_dy, double *sum_dyxc)
    void fm_norm_bn_bwd_sums_d(int arch, int64_t rows, int64_t cols, const double *dy,
                               int64_t lddy, const double *x, int64_t ldx, const double *mean,
                               double *sum_dy, double *sum_dyxc)
    void fm_norm_block_reduce(int64_t nb, int64_t cols, double *p, int64_t ldp)

    void fm_norm_affine_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                          const double *shift, const double *scale, const double *offset,
                          float *y, int64_t ldy)
    void fm_norm_affine_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                          const double *shift, const double *scale, const double *offset,
                          double *y, int64_t ldy)
    void fm_norm_bn_bwd_dx_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                             const float *x, int64_t ldx, const double *mean, const double *a,
                             const double *b, const double *k, float *dx, int64_t lddx)
    void fm_norm_bn_bwd_dx_d(int arch, int64_t rows, int64_t cols, const double *dy,
                             int64_t lddy, const double *x, int64_t ldx, const double *mean,
                             const double *a, const double *b, const double *k, double *dx,
                             int64_t lddx)

    void fm_norm_ln_fwd_s(int arch, int64_t rows, int64_t cols, const float *x, int64_t ldx,
                          const double *gamma, const double *beta, double eps,
                          float *y, int64_t ldy, double *mean, double *rstd)
    void fm_norm_ln_fwd_d(int arch, int64_t rows, int64_t cols, const double *x, int64_t ldx,
                          const double *gamma, const double *beta, double eps,
                          double *y, int64_t ldy, double *mean, double *rstd)
    void fm_norm_ln_bwd_s(int arch, int64_t rows, int64_t cols, const float *dy, int64_t lddy,
                          const float *x, int64_t ldx, const double *mean, const double *rstd,
                          const double *gamma, float *dx, int64_t lddx,
                          double *dgamma, double *dbeta)
    void fm_norm_ln_bwd_d(int arch, int64_t rows, int64_t cols, const double *dy, int64_t lddy,
                          const double *x, int64_t ldx, const double *mean, const double *rstd,
                          const double *gamma, double *dx, int64_t lddx,
                          double *dgamma, double *dbeta)

    void fm_dropout_s(int arch, int64_t start, int64_t n, const float *x, float *y,
                      uint64_t seed, double keep)
    void fm_dropout_d(int arch, int64_t start, int64_t n, const double *x, double *y,
                      uint64_t seed, double keep)
    int fm_philox4x32_10_many(int arch, int64_t n, const uint32_t *ctr, const uint32_t *key,
                              uint32_t *out)
