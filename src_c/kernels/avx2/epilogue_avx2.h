/* Vector epilogue pieces shared by the AVX2 GEMM kernels (the 6x16 / 6x8
 * micro-kernels and the small-m kernel), so that a fused activation gives
 * bit-for-bit the same value whichever kernel computed the element.
 *
 * The full epilogue of an element is, in this order:
 *     v = alpha * acc;  v = fma(beta, c, v) if beta != 0;  v = v + bias;  act(v)
 * float32 applies every activation here; float64 only ReLU / leaky ReLU (the
 * kernels apply sigmoid and tanh per element with libm, epilogue.h, after
 * the vector store). Only included from files compiled with -mavx2 -mfma.
 */
#ifndef FM_EPILOGUE_AVX2_H
#define FM_EPILOGUE_AVX2_H

#include <immintrin.h>
#include "../../fastmlp.h"
#include "vmath_avx2.h"

static inline __m256 fm_s_act_avx2(__m256 v, int act, __m256 vslope) {
    switch (act) {
    case FM_ACT_RELU: return fm_relu_ps(v);
    case FM_ACT_LEAKY_RELU: return fm_leaky_relu_ps(v, vslope);
    case FM_ACT_SIGMOID: return fm_sigmoid_ps(v);
    case FM_ACT_TANH: return fm_tanh_ps(v);
    default: return v;
    }
}

/* ReLU and leaky ReLU only: sigmoid and tanh are left to the scalar pass. */
static inline __m256d fm_d_act_avx2(__m256d v, int act, __m256d vslope) {
    switch (act) {
    case FM_ACT_RELU: return fm_relu_pd(v);
    case FM_ACT_LEAKY_RELU: return fm_leaky_relu_pd(v, vslope);
    default: return v;
    }
}

#endif
