/* GEMM drivers for float32 and float64: instantiates gemm_impl.h twice. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "gemm.h"
#include "../kernels/epilogue.h"

#define FT float
#define FM_X(n) fm_s_##n
#define CFG fm_sgemm_cfg
#define CFG_GET fm_sgemm_cfg_get
#define UKR_ARGS fm_sukr_args
#define ACT_SCALAR fm_act_scalar_s
#include "gemm_impl.h"
#undef FT
#undef FM_X
#undef CFG
#undef CFG_GET
#undef UKR_ARGS
#undef ACT_SCALAR

#define FT double
#define FM_X(n) fm_d_##n
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

int fm_sgemm_ukr_call(int arch, int64_t k, const float *a, const float *b, float *c, int64_t rsc,
                      float alpha, float beta, const float *bias, int act, float slope) {
    const fm_sgemm_cfg *cfg = fm_sgemm_cfg_get(arch);
    if (!cfg || k < 0 || act < FM_ACT_NONE || act > FM_ACT_TANH) return FM_ERR_ARG;
    fm_sukr_args args = {alpha, beta, bias, act, slope};
    cfg->ukr(k, a, b, c, rsc, &args);
    return FM_OK;
}

int fm_dgemm_ukr_call(int arch, int64_t k, const double *a, const double *b, double *c,
                      int64_t rsc, double alpha, double beta, const double *bias, int act,
                      double slope) {
    const fm_dgemm_cfg *cfg = fm_dgemm_cfg_get(arch);
    if (!cfg || k < 0 || act < FM_ACT_NONE || act > FM_ACT_TANH) return FM_ERR_ARG;
    fm_dukr_args args = {alpha, beta, bias, act, slope};
    cfg->ukr(k, a, b, c, rsc, &args);
    return FM_OK;
}

/* The general kernel (ukernel.h fm_?gemm_gen) of an architecture, for tests:
 * FM_ERR_ARG if the table has none or the tile is out of range. */
int fm_sgemm_gen_call(int arch, int mi, int np, int64_t k, const float *a, int64_t ars,
                      int64_t acs, const float *b, float *c, int64_t rsc, float alpha,
                      float beta, const float *bias, int act, float slope) {
    const fm_sgemm_cfg *cfg = fm_sgemm_cfg_get(arch);
    if (!cfg || !cfg->gen || k < 0 || mi < 1 || mi > cfg->mr || np < 1 || np > 2 ||
        act < FM_ACT_NONE || act > FM_ACT_TANH)
        return FM_ERR_ARG;
    fm_sukr_args args = {alpha, beta, bias, act, slope};
    cfg->gen(mi, np, k, a, ars, acs, b, c, rsc, &args);
    return FM_OK;
}

int fm_dgemm_gen_call(int arch, int mi, int np, int64_t k, const double *a, int64_t ars,
                      int64_t acs, const double *b, double *c, int64_t rsc, double alpha,
                      double beta, const double *bias, int act, double slope) {
    const fm_dgemm_cfg *cfg = fm_dgemm_cfg_get(arch);
    if (!cfg || !cfg->gen || k < 0 || mi < 1 || mi > cfg->mr || np < 1 || np > 2 ||
        act < FM_ACT_NONE || act > FM_ACT_TANH)
        return FM_ERR_ARG;
    fm_dukr_args args = {alpha, beta, bias, act, slope};
    cfg->gen(mi, np, k, a, ars, acs, b, c, rsc, &args);
    return FM_OK;
}
