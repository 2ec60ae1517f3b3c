/* GEMM drivers for float32 and float64: instantiates gemm_impl.h twice. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "gemm.h"
#include "../kernels/epilogue.h"

#define FT float
#define FM_X(n) fm_s_##n
#define FM_PUB(n) fm_sgemm_##n
#define CFG fm_sgemm_cfg
#define CFG_GET fm_sgemm_cfg_get
#define UKR_ARGS fm_sukr_args
#define ACT_SCALAR fm_act_scalar_s
#include "gemm_impl.h"
#undef FT
#undef FM_X
#undef FM_PUB
#undef CFG
#undef CFG_GET
#undef UKR_ARGS
#undef ACT_SCALAR

#define FT double
#define FM_X(n) fm_d_##n
#define FM_PUB(n) fm_dgemm_##n
#define CFG fm_dgemm_cfg
#define CFG_GET fm_dgemm_cfg_get
#define UKR_ARGS fm_dukr_args
#define ACT_SCALAR fm_act_scalar_d
#include "gemm_impl.h"

int fm_sgemm(int arch, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t rsa,
             int64_t csa, const float *b, int64_t rsb, int64_t csb, float beta, float *c,
             int64_t rsc, int64_t csc, const float *bias, int act, float slope, int nthreads) {
    return fm_s_gemm(arch, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, bias,
                     act, slope, nthreads);
}

int fm_dgemm(int arch, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
             int64_t rsa, int64_t csa, const double *b, int64_t rsb, int64_t csb, double beta,
             double *c, int64_t rsc, int64_t csc, const double *bias, int act, double slope,
             int nthreads) {
    return fm_d_gemm(arch, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, bias,
                     act, slope, nthreads);
}
