/* Element-wise activations, softmax and fused losses: dispatch and the
 * portable C versions.
 *
 * Design: each public entry point resolves `arch` and calls the AVX2 kernel
 * (kernels/avx2/act_avx2.c) where one exists, else the plain C loop here. The
 * plain C loops are the reference implementation of the arithmetic the
 * AVX2 kernels vectorise; both evaluate the same formulas:
 *
 *   sigmoid(x) = x < 0 ? e/(1+e) : 1/(1+e) with e = exp(-|x|): exp only ever
 *       sees a non-positive argument, so nothing overflows and the limits are
 *       exactly 0 and 1 (-inf -> 0/(1+0), +inf -> 1/(1+0));
 *   sigmoid'(x) = e/(1+e)^2 and tanh'(x) = 4e/(1+e)^2 with e = exp(-|x|),
 *       exp(-2|x|): no cancellation, unlike s(1-s) or 1 - tanh^2 whose
 *       relative error grows like 1/f' in the tails;
 *   row softmax: m = max(z), e = exp(z - m) <= 1, s = sum e in double;
 *       log s >= 0 cannot overflow whatever the logits' size;
 *   losses: per-element arithmetic in double for both dtypes, partial sums
 *       in double in a fixed order.
 */
#include <math.h>
#include "act.h"

int fm_arch_resolve_act(int arch) {
    if (arch == FM_ARCH_AUTO) return fm_arch_best();
    return fm_arch_usable(arch) ? arch : FM_ARCH_REF;
}

/* ------------------------------------------------------------ scalar maths */

static inline float sigmoid_f(float x) {
    float e = expf(-fabsf(x));
    float d = 1.0f / (1.0f + e);
    return x < 0.0f ? e * d : d;
}

static inline double sigmoid_d(double x) {
    double e = exp(-fabs(x));
    double d = 1.0 / (1.0 + e);
    return x < 0.0 ? e * d : d;
}

/* Written with comparisons that are false for NaN so that NaN propagates. */
#define RELU(x) ((x) < 0 ? 0 : (x))
#define LEAKY(x, a) ((x) < 0 ? (a) * (x) : (x))
#define SIGN(x) ((x) > 0 ? 1 : ((x) < 0 ? -1 : ((x) == 0 ? 0 : (x))))
/* Derivatives: the x itself where x is NaN. */
#define D_RELU(x) ((x) > 0 ? 1 : ((x) <= 0 ? 0 : (x)))
#define D_LEAKY(x, a) ((x) < 0 ? (a) : ((x) >= 0 ? 1 : (x)))
#define D_SIGN(x) ((x) == (x) ? 0 : (x))

static inline float d_sigmoid_f(float x) {
    float e = expf(-fabsf(x));
    float p = 1.0f + e;
    return e / (p * p);
}

static inline double d_sigmoid_d(double x) {
    double e = exp(-fabs(x));
    double p = 1.0 + e;
    return e / (p * p);
}

static inline float d_tanh_f(float x) {
    float e = expf(-2.0f * fabsf(x));
    float p = 1.0f + e;
    return 4.0f * e / (p * p);
}

static inline double d_tanh_d(double x) {
    double e = exp(-2.0 * fabs(x));
    double p = 1.0 + e;
    return 4.0 * e / (p * p);
}

/* ------------------------------------------------------------ activations */

#define FWD_LOOPS(T, SIG, TANH)                                                   \
    switch (act) {                                                                \
    case FM_ELT_IDENTITY:                                                         \
        if (out != z) for (int64_t i = 0; i < n; i++) out[i] = z[i];              \
        return FM_OK;                                                             \
    case FM_ELT_RELU: for (int64_t i = 0; i < n; i++) out[i] = RELU(z[i]); return FM_OK; \
    case FM_ELT_LEAKY_RELU:                                                       \
        for (int64_t i = 0; i < n; i++) out[i] = LEAKY(z[i], alpha);              \
        return FM_OK;                                                             \
    case FM_ELT_SIGMOID: for (int64_t i = 0; i < n; i++) out[i] = SIG(z[i]); return FM_OK; \
    case FM_ELT_TANH: for (int64_t i = 0; i < n; i++) out[i] = TANH(z[i]); return FM_OK; \
    case FM_ELT_SIGN: for (int64_t i = 0; i < n; i++) out[i] = (T)SIGN(z[i]); return FM_OK; \
    default: return FM_ERR_ARG;                                                   \
    }

#define BWD_LOOPS(T, DSIG, DTANH)                                                 \
    switch (act) {                                                                \
    case FM_ELT_IDENTITY:                                                         \
        if (out != grad) for (int64_t i = 0; i < n; i++) out[i] = grad[i];        \
        return FM_OK;                                                             \
    case FM_ELT_RELU:                                                             \
        for (int64_t i = 0; i < n; i++) out[i] = grad[i] * (T)D_RELU(z[i]);       \
        return FM_OK;                                                             \
    case FM_ELT_LEAKY_RELU:                                                       \
        for (int64_t i = 0; i < n; i++) out[i] = grad[i] * (T)D_LEAKY(z[i], alpha); \
        return FM_OK;                                                             \
    case FM_ELT_SIGMOID:                                                          \
        for (int64_t i = 0; i < n; i++) out[i] = grad[i] * DSIG(z[i]);            \
        return FM_OK;                                                             \
    case FM_ELT_TANH:                                                             \
        for (int64_t i = 0; i < n; i++) out[i] = grad[i] * DTANH(z[i]);           \
        return FM_OK;                                                             \
    case FM_ELT_SIGN:                                                             \
        for (int64_t i = 0; i < n; i++) out[i] = grad[i] * (T)D_SIGN(z[i]);       \
        return FM_OK;                                                             \
    default: return FM_ERR_ARG;                                                   \
    }

static int act_forward_s_ref(int act, float alpha, const float *z, float *out, int64_t n) {
    FWD_LOOPS(float, sigmoid_f, tanhf)
}

static int act_forward_d_ref(int act, double alpha, const double *z, double *out, int64_t n) {
    FWD_LOOPS(double, sigmoid_d, tanh)
}

static int act_backward_s_ref(int act, float alpha, const float *z, const float *grad,
                              float *out, int64_t n) {
    BWD_LOOPS(float, d_sigmoid_f, d_tanh_f)
}

static int act_backward_d_ref(int act, double alpha, const double *z, const double *grad,
                              double *out, int64_t n) {
    BWD_LOOPS(double, d_sigmoid_d, d_tanh_d)
}

/* The AVX2 kernels return -1 for an activation they leave to the C loops. */
int fm_act_forward_s(int arch, int act, float alpha, const float *z, float *out,
                     int64_t n, int stream) {
    if (act < 0 || act >= FM_ELT_COUNT) return FM_ERR_ARG;
    if (n <= 0) return FM_OK;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(fm_arch_resolve_act(arch))) {
        int st = fm_act_forward_s_avx2(act, alpha, z, out, n, stream);
        if (st >= 0) return st;
    }
#endif
    (void)arch; (void)stream;
    return act_forward_s_ref(act, alpha, z, out, n);
}

int fm_act_forward_d(int arch, int act, double alpha, const double *z, double *out,
                     int64_t n, int stream) {
    if (act < 0 || act >= FM_ELT_COUNT) return FM_ERR_ARG;
    if (n <= 0) return FM_OK;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(fm_arch_resolve_act(arch))) {
        int st = fm_act_forward_d_avx2(act, alpha, z, out, n, stream);
        if (st >= 0) return st;
    }
#endif
    (void)arch; (void)stream;
    return act_forward_d_ref(act, alpha, z, out, n);
}

int fm_act_backward_s(int arch, int act, float alpha, const float *z, const float *grad,
                      float *out, int64_t n, int stream) {
    if (act < 0 || act >= FM_ELT_COUNT) return FM_ERR_ARG;
    if (n <= 0) return FM_OK;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(fm_arch_resolve_act(arch))) {
        int st = fm_act_backward_s_avx2(act, alpha, z, grad, out, n, stream);
        if (st >= 0) return st;
    }
#endif
    (void)arch; (void)stream;
    return act_backward_s_ref(act, alpha, z, grad, out, n);
}

int fm_act_backward_d(int arch, int act, double alpha, const double *z, const double *grad,
                      double *out, int64_t n, int stream) {
    if (act < 0 || act >= FM_ELT_COUNT) return FM_ERR_ARG;
    if (n <= 0) return FM_OK;
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(fm_arch_resolve_act(arch))) {
        int st = fm_act_backward_d_avx2(act, alpha, z, grad, out, n, stream);
        if (st >= 0) return st;
    }
#endif
    (void)arch; (void)stream;
    return act_backward_d_ref(act, alpha, z, grad, out, n);
}

/* ------------------------------------------------------------ row softmax */

/* Row maximum. A NaN in the row makes the row's exponentials (and so its
 * sum and every output) NaN whatever m is, so the max need not track NaN. */
#define ROWMAX(z, n, m)                                        \
    do {                                                       \
        m = z[0];                                              \
        for (int64_t j = 1; j < n; j++) if (z[j] > m) m = z[j]; \
    } while (0)

static double rowexp_s_ref(const float *z, float *e, int64_t n, float *zmax) {
    float m;
    ROWMAX(z, n, m);
    double s = 0.0;
    for (int64_t j = 0; j < n; j++) {
        float v = expf(z[j] - m);
        e[j] = v;
        s += v;
    }
    *zmax = m;
    return s;
}

static double rowexp_d_ref(const double *z, double *e, int64_t n, double *zmax) {
    double m;
    ROWMAX(z, n, m);
    double s = 0.0;
    for (int64_t j = 0; j < n; j++) {
        double v = exp(z[j] - m);
        e[j] = v;
        s += v;
    }
    *zmax = m;
    return s;
}

static double rowlse_s_ref(const float *z, int64_t n, float *zmax) {
    float m;
    ROWMAX(z, n, m);
    double s = 0.0;
    for (int64_t j = 0; j < n; j++) s += expf(z[j] - m);
    *zmax = m;
    return s;
}

static double rowlse_d_ref(const double *z, int64_t n, double *zmax) {
    double m;
    ROWMAX(z, n, m);
    double s = 0.0;
    for (int64_t j = 0; j < n; j++) s += exp(z[j] - m);
    *zmax = m;
    return s;
}

static inline double rowexp_s(int arch, const float *z, float *e, int64_t n, float *zmax) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) return fm_rowexp_s_avx2(z, e, n, zmax);
#endif
    (void)arch;
    return rowexp_s_ref(z, e, n, zmax);
}

static inline double rowexp_d(int arch, const double *z, double *e, int64_t n, double *zmax) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) return fm_rowexp_d_avx2(z, e, n, zmax);
#endif
    (void)arch;
    return rowexp_d_ref(z, e, n, zmax);
}

static inline double rowlse_s(int arch, const float *z, int64_t n, float *zmax) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) return fm_rowlse_s_avx2(z, n, zmax);
#endif
    (void)arch;
    return rowlse_s_ref(z, n, zmax);
}

static inline double rowlse_d(int arch, const double *z, int64_t n, double *zmax) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) return fm_rowlse_d_avx2(z, n, zmax);
#endif
    (void)arch;
    return rowlse_d_ref(z, n, zmax);
}

static inline void scale_s(int arch, const float *z, float *out, int64_t n, float c) {
#ifdef FM_BUILD_AVX2
    if (fm_arch_avx2_family(arch)) { fm_scale_s_avx2(z, out, n, c); return; }
#endif
    (void)arch;
    for (int64_t j = 0; j < n; j++) out[j] = z[j] * c;
}

void fm_softmax_rows_s(int arch, const float *z, float *out, int64_t rows, int64_t cols,
                       int64_t ld, int log_) {
    if (cols <= 0) return;
    arch = fm_arch_resolve_act(arch);
    for (int64_t r = 0; r < rows; r++) {
        const float *zr = z + r * ld;
        float *o = out + r * ld;
        float m;
        if (log_) {
            double s = rowlse_s(arch, zr, cols, &m);
            /* (z - m) - log s: z - m is exact for nearby values, and log s
             * in [0, log cols] is small, so large logits keep their digits. */
            float ls = (float)log(s);
            for (int64_t j = 0; j < cols; j++) o[j] = (zr[j] - m) - ls;
        } else {
            double s = rowexp_s(arch, zr, o, cols, &m);
            scale_s(arch, o, o, cols, (float)(1.0 / s));
        }
    }
}

void fm_softmax_rows_d(int arch, const double *z, double *out, int64_t rows, int64_t cols,
                       int64_t ld, int log_) {
    if (cols <= 0) return;
    arch = fm_arch_resolve_act(arch);
    for (int64_t r = 0; r < rows; r++) {
        const double *zr = z + r * ld;
        double *o = out + r * ld;
        double m;
        if (log_) {
            double s = rowlse_d(arch, zr, cols, &m);
            double ls = log(s);
            for (int64_t j = 0; j < cols; j++) o[j] = (zr[j] - m) - ls;
        } else {
            double s = rowexp_d(arch, zr, o, cols, &m);
            double c = 1.0 / s;
            for (int64_t j = 0; j < cols; j++) o[j] *= c;
        }
    }
}

/* ------------------------------------------------------------ softmax cross-entropy */

/* Sum in double of the exponentials of every class but k. */
#define SUM_EXCEPT(T)                                                     \
    static double sum_except_##T(const T *e, int64_t n, int64_t k) {     \
        double s = 0.0;                                                   \
        for (int64_t j = 0; j < k; j++) s += e[j];                        \
        for (int64_t j = k + 1; j < n; j++) s += e[j];                    \
        return s;                                                         \
    }
SUM_EXCEPT(float)
SUM_EXCEPT(double)

/* With rest = s - e_y, the sum of the other classes' exponentials:
 * grad[y] = c (e_y / s - 1) = -c rest / s, and CE = log(s) - (z_y - m).
 * When the label is the row's maximum (e_y = 1) and p_y > 2/3, rest is
 * summed again without e_y and CE = log1p(rest): the loss and gradient of
 * a confidently right sample keep their relative precision instead of
 * being the rounding error of s - 1 (costs one pass over a row in L1,
 * only for such rows). */
double fm_xent_labels_s(int arch, const float *z, const int64_t *y, const double *w,
                        double inv_wsum, float *grad, int64_t rows, int64_t cols) {
    arch = fm_arch_resolve_act(arch);
    double acc = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const float *zr = z + r * cols;
        float *g = grad + r * cols;
        float m;
        double s = rowexp_s(arch, zr, g, cols, &m);
        double wr = w ? w[r] : 1.0;
        int64_t k = y[r];
        double rest = s - g[k], ce = log(s) - ((double)zr[k] - (double)m);
        if (zr[k] == m && rest < 0.5) {
            rest = sum_except_float(g, cols, k);
            ce = log1p(rest);
        }
        acc += wr * ce;
        double c = wr * inv_wsum;
        scale_s(arch, g, g, cols, (float)(c / s));
        g[k] = (float)(-c * (rest / s));
    }
    return acc;
}

double fm_xent_labels_d(int arch, const double *z, const int64_t *y, const double *w,
                        double inv_wsum, double *grad, int64_t rows, int64_t cols) {
    arch = fm_arch_resolve_act(arch);
    double acc = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const double *zr = z + r * cols;
        double *g = grad + r * cols;
        double m;
        double s = rowexp_d(arch, zr, g, cols, &m);
        double wr = w ? w[r] : 1.0;
        int64_t k = y[r];
        double rest = s - g[k], ce = log(s) - (zr[k] - m);
        if (zr[k] == m && rest < 0.5) {
            rest = sum_except_double(g, cols, k);
            ce = log1p(rest);
        }
        acc += wr * ce;
        double c = wr * inv_wsum;
        double cs = c / s;
        for (int64_t j = 0; j < cols; j++) g[j] *= cs;
        g[k] = -c * (rest / s);
    }
    return acc;
}

/* Target rows t (probabilities, one-hot, or any non-negative weights):
 * CE = sum_j t_j (lse - z_j) = T log s - sum_j t_j (z_j - m) with
 * T = sum_j t_j and lse = m + log s; terms with t_j == 0 are
 * skipped (0 * (-inf) would be NaN for a -inf logit). */
#define XENT_PROBS_BODY(T, ROWEXP)                                                \
    arch = fm_arch_resolve_act(arch);                                             \
    double acc = 0.0;                                                             \
    for (int64_t r = 0; r < rows; r++) {                                          \
        const T *zr = z + r * cols;                                               \
        const T *tr = t + r * cols;                                               \
        T *g = grad + r * cols;                                                   \
        T m;                                                                      \
        double s = ROWEXP(arch, zr, g, cols, &m);                                 \
        double tsum = 0.0, dot = 0.0;                                             \
        for (int64_t j = 0; j < cols; j++) {                                      \
            double tj = tr[j];                                                    \
            tsum += tj;                                                           \
            if (tj != 0.0) dot += tj * ((double)zr[j] - (double)m);               \
        }                                                                         \
        double wr = w ? w[r] : 1.0;                                               \
        acc += wr * (tsum * log(s) - dot);                                        \
        double c = wr * inv_wsum, ts = tsum / s;                                  \
        for (int64_t j = 0; j < cols; j++)                                        \
            g[j] = (T)(c * (ts * (double)g[j] - (double)tr[j]));                  \
    }                                                                             \
    return acc;

double fm_xent_probs_s(int arch, const float *z, const float *t, const double *w,
                       double inv_wsum, float *grad, int64_t rows, int64_t cols) {
    XENT_PROBS_BODY(float, rowexp_s)
}

double fm_xent_probs_d(int arch, const double *z, const double *t, const double *w,
                       double inv_wsum, double *grad, int64_t rows, int64_t cols) {
    XENT_PROBS_BODY(double, rowexp_d)
}

/* ------------------------------------------------------------ element-wise losses */

/* Loss of one element, in double; *g receives d loss / d x. */
static inline double eloss_one(int kind, double x, double t, double eps, double *g) {
    switch (kind) {
    case FM_ELOSS_MSE: {
        double d = x - t;
        *g = 2.0 * d;
        return d * d;
    }
    case FM_ELOSS_MAE: {
        double d = x - t;
        *g = d > 0 ? 1.0 : (d < 0 ? -1.0 : (d == 0 ? 0.0 : d));  /* 0 at 0, NaN kept */
        return fabs(d);
    }
    case FM_ELOSS_POISSON: {
        double ex = exp(x);
        *g = ex - t;
        return ex - t * x;
    }
    case FM_ELOSS_SIGMOID_BCE: {
        /* max(x,0) - x t + log1p(exp(-|x|)): exp of a non-positive number
         * only, and log1p keeps the small tail term exact. */
        *g = sigmoid_d(x) - t;
        return (x < 0 ? 0.0 : x) - x * t + log1p(exp(-fabs(x)));
    }
    case FM_ELOSS_BCE: {
        double p = x < eps ? eps : (x > 1.0 - eps ? 1.0 - eps : x);  /* NaN kept */
        *g = (1.0 - t) / (1.0 - p) - t / p;
        return -(t * log(p) + (1.0 - t) * log1p(-p));
    }
    default:
        *g = NAN;
        return NAN;
    }
}

#define ELOSS_LOOP(T)                                                             \
    double acc = 0.0;                                                             \
    for (int64_t i = 0; i < n; i++) {                                             \
        double g;                                                                 \
        acc += eloss_one(kind, (double)x[i], (double)t[i], eps, &g);              \
        grad[i] = (T)(g * scale);                                                 \
    }                                                                             \
    return acc;

static double eloss_s_ref(int kind, const float *x, const float *t, float *grad, int64_t n,
                          double scale, double eps) {
    ELOSS_LOOP(float)
}

double fm_eloss_s(int arch, int kind, const float *x, const float *t, float *grad,
                  int64_t n, double scale, double eps) {
    if (kind < 0 || kind >= FM_ELOSS_COUNT) return NAN;
(void)arch;  /* memory-bound double arithmetic: one C loop for every arch */
    return eloss_s_ref(kind, x, t, grad, n, scale, eps);
}

double fm_eloss_d(int arch, int kind, const double *x, const double *t, double *grad,
                  int64_t n, double scale, double eps) {
    if (kind < 0 || kind >= FM_ELOSS_COUNT) return NAN;
    (void)arch;
    ELOSS_LOOP(double)
}
