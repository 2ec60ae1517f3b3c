/* Fused in-place optimizer updates over flat buffers: portable kernels,
 * coefficient set-up and arch dispatch.
 *
 * Design: one pass over the elements per step. For element i, with p the
 * parameter, g the caller's gradient (never written) and the state buffers
 * s0..s2 (all of the same length and dtype), the kernel first forms the
 * gradient the update uses,
 *
 *     g' = scale * g + wd * p + l1 * sign(p)        (sign(0) = sign(NaN) = 0)
 *
 * (scale < 1 only when clipping is on, see below; wd * p is the gradient of
 * the L2 penalty wd/2 * ||p||^2 -- scikit-learn's MLP `alpha` has this form --
 * and l1 * sign(p) a subgradient of l1 * ||p||_1; for ADAMW the wd term is
 * replaced by decoupled decay), then applies the method (lr = learning rate,
 * mu = momentum, t = step count starting at 1):
 *
 *   SGD       p = p - lr g'
 *   MOMENTUM  v = mu v - lr g';  p = p + v                 (scikit-learn's form;
 *             with a constant lr it equals PyTorch's v = mu v + g, p -= lr v)
 *   NESTEROV  v = mu v - lr g';  p = p + (mu v - lr g')    (scikit-learn's NAG)
 *   ADAGRAD   G = G + g'^2;      p = p - lr g' / (sqrt(G) + eps)
 *   ADADELTA  (Zeiler 2012; rho, eps; lr = 1 in the paper)
 *             E = rho E + (1 - rho) g'^2
 *             dx = sqrt(D + eps) / sqrt(E + eps) * g'
 *             D = rho D + (1 - rho) dx^2;  p = p - lr dx
 *   RMSPROP   E = rho E + (1 - rho) g'^2;  p = p - lr g' / (sqrt(E) + eps)
 *   ADAM      (Kingma & Ba 2015, Algorithm 1; PyTorch's arithmetic)
 *             m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
 *             p = p - lr/(1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *             i.e. lr * m_hat / (sqrt(v_hat) + eps): eps outside the root,
 *             added to sqrt(v_hat) (scikit-learn adds it to sqrt(v) instead)
 *   AMSGRAD   ADAM with w = max(w, v) stored and sqrt(w) in the denominator
 *   ADAMW     (Loshchilov & Hutter 2019) ADAM without the wd term in g' and
 *             p = p * (1 - lr wd) before the ADAM update (PyTorch's AdamW)
 *   ADAMAX    (Kingma & Ba 2015, sec. 7.1)
 *             m = b1 m + (1 - b1) g';  u = max(b2 u, |g'|)
 *             p = p - lr/(1 - b1^t) * m / (u + eps)
 *             The paper divides by u alone; u is 0 where every gradient so
 *             far was 0, and 0/0 would poison p, so eps is added to the
 *             denominator (like Adam's); the state u itself has no eps.
 *
 * Arithmetic: float64 buffers compute in float64. float32 buffers compute in
 * float32 (the loop is bandwidth-bound and float64 would halve the SIMD
 * width); every coefficient (1 - b1, lr / (1 - b1^t), 1 / sqrt(1 - b2^t),
 * ...) is computed once per step in float64 and rounded to float32 once.
 * No FMA contraction anywhere (ISO C mode; FP_CONTRACT OFF for clang), so
 * the portable and the AVX2 kernels give bitwise the same results, on any
 * CPU and for any thread count (the update is element-wise).
 *
 * Gradient clipping (done by the driver): the global L2 norm of the raw
 * gradient is a deterministic float64 reduction: one partial sum per fixed
 * chunk of FM_OPTIM_CHUNK elements (computed in parallel; inside a chunk
 * eight lane accumulators in a fixed order), the partials added in chunk
 * order. float64 sums of squared float32 values cannot overflow; for
 * float64 an overflowing sum is recomputed scaled by 1/max|g|. Then, as
 * PyTorch's clip_grad_norm_: scale = c / (norm + 1e-6) if norm + 1e-6 > c,
 * else 1 (no scaling). A non-finite norm (a NaN/inf gradient) leaves the
 * gradient unscaled.
 *
 * Non-finite values: NaN or inf in g propagate element-wise into p and the
 * state of that element (max() is written so that NaN wins, see optim_max);
 * other elements are unaffected (unless clipping, whose norm then is
 * non-finite and which then scales nothing).
 *
 * SIMD: GCC cannot vectorise sqrt without -fno-math-errno (a flag the
 * shipped build does not use), so the portable kernels are scalar where
 * they take square roots; kernels/avx2/optim_avx2.c has the AVX2 loops.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>
#include "nn/optim.h"
#include "nn/optim_impl.h"

#define FT float
#define FN(x) x##_f32
#define FSQRT sqrtf
#include "nn/optim_tmpl.h"
#undef FT
#undef FN
#undef FSQRT

#define FT double
#define FN(x) x##_f64
#define FSQRT sqrt
#include "nn/optim_tmpl.h"
#undef FT
#undef FN
#undef FSQRT

static const char *const optim_names[FM_OPTIM_COUNT] = {
    "sgd", "momentum", "nesterov", "adagrad", "adadelta",
    "rmsprop", "adam", "amsgrad", "adamw", "adamax"};
static const int optim_nstate[FM_OPTIM_COUNT] = {0, 1, 1, 1, 2, 1, 2, 3, 2, 2};

int fm_optim_nstate(int method) {
    return (method >= 0 && method < FM_OPTIM_COUNT) ? optim_nstate[method] : -1;
}

const char *fm_optim_name(int method) {
    return (method >= 0 && method < FM_OPTIM_COUNT) ? optim_names[method] : "unknown";
}

int fm_optim_resolve_arch(int arch) {
    if (arch == FM_ARCH_AUTO) return fm_arch_best();
    return fm_arch_usable(arch) ? arch : -1;
}

static int is_adam_family(int method) {
    return method == FM_OPTIM_ADAM || method == FM_OPTIM_AMSGRAD ||
           method == FM_OPTIM_ADAMW || method == FM_OPTIM_ADAMAX;
}

int fm_optim_plan_init(fm_optim_plan *pl, int method, int arch, double lr,
                       double momentum, double rho, double beta1, double beta2,
                       double eps, double weight_decay, double l1,
                       double grad_scale, int64_t step) {
    if (method < 0 || method >= FM_OPTIM_COUNT) return FM_ERR_ARG;
    arch = fm_optim_resolve_arch(arch);
    if (arch < 0) return FM_ERR_ARG;
    if (is_adam_family(method) && step < 1) return FM_ERR_ARG;
    pl->method = method;
    pl->arch = arch;
    pl->lr = lr;
    pl->mu = momentum;
    pl->rho = rho;
    pl->crho = 1.0 - rho;
    pl->b1 = beta1;
    pl->c1 = 1.0 - beta1;
    pl->b2 = beta2;
    pl->c2 = 1.0 - beta2;
    pl->eps = eps;
    pl->wd = weight_decay;
    pl->l1 = l1;
    pl->scale = grad_scale;
    pl->has_scale = grad_scale != 1.0;
    pl->has_wd = weight_decay != 0.0 && method != FM_OPTIM_ADAMW;
    pl->has_l1 = l1 != 0.0;
    pl->step_size = lr;
    pl->inv_bc2 = 1.0;
    pl->decay = 1.0;
    if (is_adam_family(method)) {
        /* pow of an exactly representable t; beta^t underflows to 0 for
         * large t, where the corrections become 1 as they should. */
        double t = (double)step;
        pl->step_size = lr / (1.0 - pow(beta1, t));
        pl->inv_bc2 = 1.0 / sqrt(1.0 - pow(beta2, t));
    }
    if (method == FM_OPTIM_ADAMW) pl->decay = 1.0 - lr * weight_decay;
    return FM_OK;
}

void fm_optim_step_f32(const fm_optim_plan *pl, float *p, const float *g,
                       float *s0, float *s1, float *s2, int64_t offset, int64_t n) {
    if (n <= 0) return;
    p += offset;
    g += offset;
    if (s0) s0 += offset;
    if (s1) s1 += offset;
    if (s2) s2 += offset;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(pl->arch)) {
        fm_optim_step_f32_avx2(pl, p, g, s0, s1, s2, n);
        return;
    }
#endif
    optim_coef_f32 k;
    optim_coef_load_f32(pl, &k);
    optim_scalar_f32(&k, p, g, s0, s1, s2, n);
}

void fm_optim_step_f64(const fm_optim_plan *pl, double *p, const double *g,
                       double *s0, double *s1, double *s2, int64_t offset, int64_t n) {
    if (n <= 0) return;
    p += offset;
    g += offset;
    if (s0) s0 += offset;
    if (s1) s1 += offset;
    if (s2) s2 += offset;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(pl->arch)) {
        fm_optim_step_f64_avx2(pl, p, g, s0, s1, s2, n);
        return;
    }
#endif
    optim_coef_f64 k;
    optim_coef_load_f64(pl, &k);
    optim_scalar_f64(&k, p, g, s0, s1, s2, n);
}

double fm_optim_sumsq_f32(int arch, const float *x, int64_t n) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) return fm_optim_sumsq_f32_avx2(x, n);
#endif
    (void)arch;
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    optim_sumsq_tail_f32(x, 0, n, acc);
    return fm_optim_reduce8(acc);
}

double fm_optim_sumsq_f64(int arch, const double *x, int64_t n) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) return fm_optim_sumsq_f64_avx2(x, n);
#endif
    (void)arch;
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    optim_sumsq_tail_f64(x, 0, n, acc);
    return fm_optim_reduce8(acc);
}

double fm_optim_maxabs_f64(const double *x, int64_t n) {
    double mx = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs(x[i]);
        if (!(a <= mx)) mx = a;  /* NaN wins */
    }
    return mx;
}

double fm_optim_sumsq_scaled_f64(const double *x, int64_t n, double inv) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i] * inv;
        acc[i & 7] = acc[i & 7] + xi * xi;
    }
    return fm_optim_reduce8(acc);
}
