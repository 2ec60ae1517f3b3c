/* Scalar optimizer kernels, written once for float and double.
 *
 * Design: a "template" header. Include it after defining
 *   FT      the element type (float or double)
 *   FN(x)   a name for x specialised to FT (e.g. x##_f32)
 *   FSQRT   the square root for FT (sqrtf or sqrt)
 * It is included by optim.c (the portable kernels) and by
 * kernels/avx2/optim_avx2.c, whose vector loops leave the last n % width
 * elements to FN(optim_scalar) below. Both vector and scalar code perform the
 * same IEEE operations (+, -, *, /, sqrt, max; no FMA contraction: ISO C
 * mode, and clang is told FP_CONTRACT OFF) in the same order, so every arch
 * gives bitwise the same result and chunk boundaries do not matter.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The coefficients of one step, rounded once to FT. */
typedef struct {
    int method, has_scale, has_wd, has_l1;
    FT lr, mu, rho, crho, b1, c1, b2, c2, eps, wd, l1, scale, step_size, inv_bc2, decay;
} FN(optim_coef);

static inline void FN(optim_coef_load)(const fm_optim_plan *pl, FN(optim_coef) *k) {
    k->method = pl->method;
    k->has_scale = pl->has_scale;
    k->has_wd = pl->has_wd;
    k->has_l1 = pl->has_l1;
    k->lr = (FT)pl->lr;
    k->mu = (FT)pl->mu;
    k->rho = (FT)pl->rho;
    k->crho = (FT)pl->crho;
    k->b1 = (FT)pl->b1;
    k->c1 = (FT)pl->c1;
    k->b2 = (FT)pl->b2;
    k->c2 = (FT)pl->c2;
    k->eps = (FT)pl->eps;
    k->wd = (FT)pl->wd;
    k->l1 = (FT)pl->l1;
    k->scale = (FT)pl->scale;
    k->step_size = (FT)pl->step_size;
    k->inv_bc2 = (FT)pl->inv_bc2;
    k->decay = (FT)pl->decay;
}

/* sign(x) in {-1, 0, +1}; NaN -> 0 (both comparisons are false). */
static inline FT FN(optim_sign)(FT x) {
    return (FT)((x > 0) - (x < 0));
}

/* x > y ? x : y -- exactly x86 MAXPS/MAXPD(x, y): a NaN in either operand
 * yields y, so a NaN gradient (y = |g| or v) propagates into the state. */
static inline FT FN(optim_max)(FT x, FT y) {
    return x > y ? x : y;
}

/* The gradient the update uses: clipped, then the regularisers added
 * (PyTorch's order: clip_grad_norm_ acts on the raw gradient, weight decay
 * is added inside the step). Each term only when its coefficient is used,
 * so that 0 * inf never turns an infinite parameter into NaN. */
static inline FT FN(optim_grad)(FT g, FT p, const FN(optim_coef) *k) {
    if (k->has_scale) g = g * k->scale;
    if (k->has_wd) g = g + k->wd * p;
    if (k->has_l1) g = g + k->l1 * FN(optim_sign)(p);
    return g;
}

/* One step over n elements (pointers already offset). */
static void FN(optim_scalar)(const FN(optim_coef) *k, FT *restrict p, const FT *restrict g,
                             FT *restrict s0, FT *restrict s1, FT *restrict s2, int64_t n) {
    int64_t i;
    switch (k->method) {
    case FM_OPTIM_SGD:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            p[i] = pi - k->lr * gi;
        }
        break;
    case FM_OPTIM_MOMENTUM:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT v = k->mu * s0[i] - k->lr * gi;
            s0[i] = v;
            p[i] = pi + v;
        }
        break;
    case FM_OPTIM_NESTEROV:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT v = k->mu * s0[i] - k->lr * gi;
            s0[i] = v;
            p[i] = pi + (k->mu * v - k->lr * gi);
        }
        break;
    case FM_OPTIM_ADAGRAD:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT acc = s0[i] + gi * gi;
            s0[i] = acc;
            p[i] = pi - (k->lr * gi) / (FSQRT(acc) + k->eps);
        }
        break;
    case FM_OPTIM_ADADELTA:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT eg2 = k->rho * s0[i] + k->crho * (gi * gi);
            FT dx = (FSQRT(s1[i] + k->eps) / FSQRT(eg2 + k->eps)) * gi;
            s0[i] = eg2;
            s1[i] = k->rho * s1[i] + k->crho * (dx * dx);
            p[i] = pi - k->lr * dx;
        }
        break;
    case FM_OPTIM_RMSPROP:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT eg2 = k->rho * s0[i] + k->crho * (gi * gi);
            s0[i] = eg2;
            p[i] = pi - (k->lr * gi) / (FSQRT(eg2) + k->eps);
        }
        break;
    case FM_OPTIM_ADAM:
    case FM_OPTIM_AMSGRAD:
    case FM_OPTIM_ADAMW: {
        const int ams = k->method == FM_OPTIM_AMSGRAD, decoupled = k->method == FM_OPTIM_ADAMW;
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT m = k->b1 * s0[i] + k->c1 * gi;
            FT v = k->b2 * s1[i] + k->c2 * (gi * gi);
            s0[i] = m;
            s1[i] = v;
            if (ams) {
                v = FN(optim_max)(s2[i], v);
                s2[i] = v;
            }
            if (decoupled) pi = pi * k->decay;
            p[i] = pi - (k->step_size * m) / (FSQRT(v) * k->inv_bc2 + k->eps);
        }
        break;
    }
    case FM_OPTIM_ADAMAX:
        for (i = 0; i < n; i++) {
            FT pi = p[i], gi = FN(optim_grad)(g[i], pi, k);
            FT m = k->b1 * s0[i] + k->c1 * gi;
            FT u = FN(optim_max)(k->b2 * s1[i], (FT)fabs(gi));
            s0[i] = m;
            s1[i] = u;
            p[i] = pi - (k->step_size * m) / (u + k->eps);
        }
        break;
    default:
        break;
    }
}

/* Elements [start, n) of x added into the eight lane accumulators, element i
 * into acc[i % 8] (start is a multiple of 8). */
static inline void FN(optim_sumsq_tail)(const FT *x, int64_t start, int64_t n, double acc[8]) {
    int64_t i = start;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            double xj = (double)x[i + j];
            acc[j] = acc[j] + xj * xj;
        }
    }
    for (int j = 0; i + j < n; j++) {
        double xj = (double)x[i + j];
        acc[j] = acc[j] + xj * xj;
    }
}
