/* Scalar epilogue (activation applied on the GEMM store), shared by the
 * reference kernel and the drivers' k == 0 path. */
#ifndef FM_EPILOGUE_H
#define FM_EPILOGUE_H

#include <math.h>
#include "../fastmlp.h"

static inline float fm_act_scalar_s(float x, int act, float slope) {
    switch (act) {
    /* Written as x < 0 ? ... : x so that NaN propagates instead of becoming 0. */
    case FM_ACT_RELU: return x < 0.0f ? 0.0f : x;
    case FM_ACT_LEAKY_RELU: return x < 0.0f ? slope * x : x;
    /* 1/(1+exp(-x)): exp(-x) overflows to inf for x < -88, giving exactly 0,
     * which is the correctly rounded float result there. */
    case FM_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case FM_ACT_TANH: return tanhf(x);
    default: return x;
    }
}

static inline double fm_act_scalar_d(double x, int act, double slope) {
    switch (act) {
    case FM_ACT_RELU: return x < 0.0 ? 0.0 : x;
    case FM_ACT_LEAKY_RELU: return x < 0.0 ? slope * x : x;
    case FM_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case FM_ACT_TANH: return tanh(x);
    default: return x;
    }
}

#endif
