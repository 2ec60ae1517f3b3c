# Declarations of the pure-C kernels in src_c/fastmlp.h, shared by the
# Cython modules of fastmlp._core.
from libc.stdint cimport int64_t

cdef extern from "fastmlp.h" nogil:
    enum:
        FM_OK
        FM_ERR_SIZE
        FM_ERR_NOMEM
        FM_ERR_ARG
        FM_ACT_NONE
        FM_ACT_RELU
        FM_ACT_LEAKY_RELU
        FM_ACT_SIGMOID
        FM_ACT_TANH
        FM_ARCH_AUTO
        FM_ARCH_REF
        FM_ARCH_AVX2
        FM_ARCH_AVX512
        FM_ARCH_COUNT

    ctypedef struct fm_gemm_info:
        const char *name
        int arch
        int mr
        int nr
        int64_t mc
        int64_t kc
        int64_t nc
        int64_t smallm
        int64_t hot_a_bytes

    int fm_cpu_has_avx2()
    int fm_cpu_has_fma()
    int fm_cpu_has_avx512()
    int fm_cpu_avx512_full_width()
    const char *fm_arch_env_error()
    int fm_arch_compiled(int arch)
    int fm_arch_usable(int arch)
    int fm_arch_best()
    const char *fm_arch_name(int arch)
    const char *fm_compiler()
    int fm_openmp_version()
    int fm_peak_lanes(int arch, int dbl)
    double fm_peak_gflops(int arch, int dbl, int nthreads, long iters) nogil
    int fm_gemm_info_get(int dtype_is_double, int arch, fm_gemm_info *out)

    int fm_sgemm(int arch, int64_t m, int64_t n, int64_t k, float alpha,
                 const float *a, int64_t rsa, int64_t csa,
                 const float *b, int64_t rsb, int64_t csb, float beta,
                 float *c, int64_t rsc, int64_t csc,
                 const float *bias, int act, float slope, int nthreads)
    int fm_dgemm(int arch, int64_t m, int64_t n, int64_t k, double alpha,
                 const double *a, int64_t rsa, int64_t csa,
                 const double *b, int64_t rsb, int64_t csb, double beta,
                 double *c, int64_t rsc, int64_t csc,
                 const double *bias, int act, double slope, int nthreads)
    int fm_sgemm_ukr_call(int arch, int64_t k, const float *a, const float *b,
                          float *c, int64_t rsc, float alpha, float beta,
                          const float *bias, int act, float slope)
    int fm_dgemm_ukr_call(int arch, int64_t k, const double *a, const double *b,
                          double *c, int64_t rsc, double alpha, double beta,
                          const double *bias, int act, double slope)
    int fm_sgemm_gen_call(int arch, int mi, int np, int64_t k, const float *a, int64_t ars,
                          int64_t acs, const float *b, float *c, int64_t rsc, float alpha,
                          float beta, const float *bias, int act, float slope)
    int fm_dgemm_gen_call(int arch, int mi, int np, int64_t k, const double *a, int64_t ars,
                          int64_t acs, const double *b, double *c, int64_t rsc, double alpha,
                          double beta, const double *bias, int act, double slope)
