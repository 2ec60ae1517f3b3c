# Declarations of the element-wise activation, softmax and loss kernels in
# src_c/nn/act.h, for fastmlp/_core/_act.pyx.
from libc.stdint cimport int64_t

cdef extern from "nn/act.h" nogil:
    enum:
        FM_ELT_IDENTITY
        FM_ELT_RELU
        FM_ELT_LEAKY_RELU
        FM_ELT_SIGMOID
        FM_ELT_TANH
        FM_ELT_SIGN
        FM_ELT_COUNT
        FM_ELOSS_MSE
        FM_ELOSS_MAE
        FM_ELOSS_POISSON
        FM_ELOSS_SIGMOID_BCE
        FM_ELOSS_BCE
        FM_ELOSS_COUNT

    int fm_arch_resolve_act(int arch)
    int64_t fm_row_piece_rows(int64_t cols)
    int fm_act_forward_s(int arch, int act, float alpha, const float *z, float *out,
                         int64_t n, int stream)
    int fm_act_forward_d(int arch, int act, double alpha, const double *z, double *out,
                         int64_t n, int stream)
    int fm_act_backward_s(int arch, int act, float alpha, const float *z, const float *grad,
                          float *out, int64_t n, int stream)
    int fm_act_backward_d(int arch, int act, double alpha, const double *z, const double *grad,
                          double *out, int64_t n, int stream)
    void fm_softmax_rows_s(int arch, const float *z, float *out, int64_t rows, int64_t cols,
                           int64_t ld, int log)
    void fm_softmax_rows_d(int arch, const double *z, double *out, int64_t rows, int64_t cols,
                           int64_t ld, int log)
    double fm_xent_labels_s(int arch, const float *z, const int64_t *y, const double *w,
                            double inv_wsum, float *grad, int64_t rows, int64_t cols)
    double fm_xent_labels_d(int arch, const double *z, const int64_t *y, const double *w,
                            double inv_wsum, double *grad, int64_t rows, int64_t cols)
    double fm_xent_probs_s(int arch, const float *z, const float *t, const double *w,
                           double inv_wsum, float *grad, int64_t rows, int64_t cols)
    double fm_xent_probs_d(int arch, const double *z, const double *t, const double *w,
                           double inv_wsum, double *grad, int64_t rows, int64_t cols)
    double fm_eloss_s(int arch, int kind, const float *x, const float *t, float *grad,
                      int64_t n, double scale, double eps)
    double fm_eloss_d(int arch, int kind, const double *x, const double *t, double *grad,
                      int64_t n, double scale, double eps)
