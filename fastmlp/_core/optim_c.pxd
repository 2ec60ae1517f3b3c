# Declarations of the optimizer kernels in src_c/nn/optim.h (pure C).
from libc.stdint cimport int64_t

cdef extern from "nn/optim.h" nogil:
    enum:
        FM_OPTIM_SGD
        FM_OPTIM_MOMENTUM
        FM_OPTIM_NESTEROV
        FM_OPTIM_ADAGRAD
        FM_OPTIM_ADADELTA
        FM_OPTIM_RMSPROP
        FM_OPTIM_ADAM
        FM_OPTIM_AMSGRAD
        FM_OPTIM_ADAMW
        FM_OPTIM_ADAMAX
        FM_OPTIM_COUNT
        FM_OPTIM_CHUNK
        FM_OPTIM_PAR_MIN

    ctypedef struct fm_optim_plan:
        int method
        int arch
        int has_scale
        int has_wd
        int has_l1
        double lr
        double mu
        double rho
        double crho
        double b1
        double c1
        double b2
        double c2
        double eps
        double wd
        double l1
        double scale
        double step_size
        double inv_bc2
        double decay

    int fm_optim_nstate(int method)
    const char *fm_optim_name(int method)
    int fm_optim_resolve_arch(int arch)
    int fm_optim_plan_init(fm_optim_plan *plan, int method, int arch, double lr,
                           double momentum, double rho, double beta1, double beta2,
                           double eps, double weight_decay, double l1,
                           double grad_scale, int64_t step)
    void fm_optim_step_f32(const fm_optim_plan *plan, float *p, const float *g,
                           float *s0, float *s1, float *s2, int64_t offset, int64_t n)
    void fm_optim_step_f64(const fm_optim_plan *plan, double *p, const double *g,
                           double *s0, double *s1, double *s2, int64_t offset, int64_t n)
    double fm_optim_sumsq_f32(int arch, const float *x, int64_t n)
    double fm_optim_sumsq_f64(int arch, const double *x, int64_t n)
    double fm_optim_maxabs_f64(const double *x, int64_t n)
    double fm_optim_sumsq_scaled_f64(const double *x, int64_t n, double inv)
