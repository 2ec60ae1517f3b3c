/* Internal interface between the portable optimizer kernels (nn/optim.c)
 * and their AVX2 versions (kernels/avx2/optim_avx2.c). Not part of the
 * public C interface (nn/optim.h). */
#ifndef FM_NN_OPTIM_IMPL_H
#define FM_NN_OPTIM_IMPL_H

#include <stdint.h>
#include "nn/optim.h"

/* The eight lane sums of fm_optim_sumsq_* combined in a fixed pairwise
 * order, shared by every arch so that they agree bitwise. */
static inline double fm_optim_reduce8(const double acc[8]) {
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#ifdef FM_BUILD_AVX2
void fm_optim_step_f32_avx2(const fm_optim_plan *plan, float *p, const float *g,
                            float *s0, float *s1, float *s2, int64_t n);
void fm_optim_step_f64_avx2(const fm_optim_plan *plan, double *p, const double *g,
                            double *s0, double *s1, double *s2, int64_t n);
double fm_optim_sumsq_f32_avx2(const float *x, int64_t n);
double fm_optim_sumsq_f64_avx2(const double *x, int64_t n);
#endif

#endif
