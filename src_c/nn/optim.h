/* Fused in-place optimizer updates over flat parameter buffers (pure C).
 *
 * Design: a model keeps all of its parameters in one contiguous buffer (and
 * its gradients and every optimizer state in buffers of the same length), so
 * one optimizer step is one call here: a single fused pass that reads each
 * element of params, grads and state once and writes params and state once.
 * See optim.c for the formulas of every method and the numerical choices.
 *
 * The driver (fastmlp/_core/_optim.pyx) splits a buffer into FIXED chunks of
 * FM_OPTIM_CHUNK elements and runs the chunks in parallel. The update is
 * element-wise, so the result does not depend on the split; the gradient norm
 * (for clipping) is a reduction and is made deterministic by computing one
 * float64 partial sum per chunk (fm_optim_sumsq_*) and adding the partials
 * in chunk order.
 */
#ifndef FM_NN_OPTIM_H
#define FM_NN_OPTIM_H

#include <stdint.h>
#include "fastmlp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Methods. The state buffers each method uses, in order (s0, s1, s2):
 *   SGD: none           MOMENTUM, NESTEROV: velocity     ADAGRAD: sum of g^2
 *   ADADELTA: E[g^2], E[dx^2]     RMSPROP: E[g^2]
 *   ADAM, ADAMW: m, v   AMSGRAD: m, v, max(v)            ADAMAX: m, u       */
enum {
    FM_OPTIM_SGD = 0,
    FM_OPTIM_MOMENTUM = 1,
    FM_OPTIM_NESTEROV = 2,
    FM_OPTIM_ADAGRAD = 3,
    FM_OPTIM_ADADELTA = 4,
    FM_OPTIM_RMSPROP = 5,
    FM_OPTIM_ADAM = 6,
    FM_OPTIM_AMSGRAD = 7,
    FM_OPTIM_ADAMW = 8,
    FM_OPTIM_ADAMAX = 9,
    FM_OPTIM_COUNT = 10
};

/* Elements per chunk: the unit of parallel work and of the norm's partial
 * sums (64 KiB of float32 per buffer). */
#define FM_OPTIM_CHUNK 16384
/* Below this many elements a step runs on one thread (the OpenMP fork costs
 * more than the work). */
#define FM_OPTIM_PAR_MIN (4 * FM_OPTIM_CHUNK)

/* Everything one step needs, computed once per step by fm_optim_plan_init in
 * float64 (bias corrections, 1 - beta, ...). The float32 kernels round each
 * coefficient to float once per chunk. */
typedef struct {
    int method;
    int arch;          /* resolved: FM_ARCH_REF or FM_ARCH_AVX2 */
    int has_scale;     /* g is multiplied by `scale` (gradient clipping) */
    int has_wd;        /* coupled L2: g += wd * p (not for ADAMW) */
    int has_l1;        /* g += l1 * sign(p) */
    double lr, mu;     /* learning rate, momentum */
    double rho, crho;  /* decay of the running averages, 1 - rho */
    double b1, c1;     /* beta1, 1 - beta1 */
    double b2, c2;     /* beta2, 1 - beta2 */
    double eps, wd, l1, scale;
    double step_size;  /* Adam family: lr / (1 - beta1^t) */
    double inv_bc2;    /* Adam, AMSGrad, AdamW: 1 / sqrt(1 - beta2^t) */
    double decay;      /* AdamW: 1 - lr * wd (decoupled weight decay) */
} fm_optim_plan;

int fm_optim_nstate(int method);        /* number of state buffers, -1 if unknown */
const char *fm_optim_name(int method);  /* "adam", ...; "unknown" if unknown */
/* FM_ARCH_AUTO -> fm_arch_best(); a usable arch -> itself; otherwise -1. */
int fm_optim_resolve_arch(int arch);

/* Fill `plan`. `step` (t >= 1) is used by the Adam family only; grad_scale
 * (from clipping) multiplies the raw gradient, 1.0 = no clipping.
 * Returns FM_OK, or FM_ERR_ARG for an unknown method/arch or t < 1. */
int fm_optim_plan_init(fm_optim_plan *plan, int method, int arch, double lr,
                       double momentum, double rho, double beta1, double beta2,
                       double eps, double weight_decay, double l1,
                       double grad_scale, int64_t step);

/* One step on elements [offset, offset + n) of the buffers, in place.
 * s0..s2 may be NULL when the method uses fewer state buffers. */
void fm_optim_step_f32(const fm_optim_plan *plan, float *p, const float *g,
                       float *s0, float *s1, float *s2, int64_t offset, int64_t n);
void fm_optim_step_f64(const fm_optim_plan *plan, double *p, const double *g,
                       double *s0, double *s1, double *s2, int64_t offset, int64_t n);

/* Sum of squares of x[0..n) in float64 (one chunk's partial sum). Fixed
 * order: eight accumulators, element i into accumulator i mod 8, combined
 * pairwise at the end; bitwise the same for every arch. */
double fm_optim_sumsq_f32(int arch, const float *x, int64_t n);
double fm_optim_sumsq_f64(int arch, const double *x, int64_t n);
/* Overflow fallback for float64 norms: max |x| and sum of (x * inv)^2 in
 * the same fixed order as fm_optim_sumsq_f64. */
double fm_optim_maxabs_f64(const double *x, int64_t n);
double fm_optim_sumsq_scaled_f64(const double *x, int64_t n, double inv);

#ifdef __cplusplus
}
#endif
#endif
