/* AVX-512 sgemm micro-kernels, 12 x 32 register block (two zmm of 16 floats
 * per row): fm_sgemm_avx512_12x32 (packed A), fm_sgemm_avx512_12x32_rowa
 * (row-major A read in place) and fm_sgemm_avx512_gen32 (M-edge tiles and
 * dispatch). Design and the arithmetic contract: gemm_avx512_tmpl.h.
 * Compiled with the AVX-512 flags (setup.py); only called after the run-time
 * check of cpu.c (CPUID and the OS's ZMM state via XGETBV).
 */
#include <immintrin.h>
#include "../ukernel.h"
#include "../epilogue.h"
#include "../../fastmlp.h"
#include "vmath_avx512.h"

static inline __m512 fm_s_act_avx512(__m512 v, int act, __m512 vslope) {
    switch (act) {
    case FM_ACT_RELU: return fm_relu_ps512(v);
    case FM_ACT_LEAKY_RELU: return fm_leaky_relu_ps512(v, vslope);
    case FM_ACT_SIGMOID: return fm_sigmoid_ps512(v);
    case FM_ACT_TANH: return fm_tanh_ps512(v);
    default: return v;
    }
}

static inline __m512 fm_s_epi512(__m512 v, const float *cij, int has_beta, __m512 vbeta,
                                 const float *bias, int act, __m512 vslope) {
    if (has_beta) v = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(cij), v);
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias));
    return fm_s_act_avx512(v, act, vslope);
}

#define FT float
#define VT __m512
#define VL 16
#define GN(n) fm_s512_##n
#define ARGS fm_sukr_args
#define KPACKED fm_sgemm_avx512_12x32
#define KROWA fm_sgemm_avx512_12x32_rowa
#define GEN_ENTRY fm_sgemm_avx512_gen32
#define EPI fm_s_epi512
#define SCALAR_ACT_AFTER 0
#define ACT_SCALAR fm_act_scalar_s
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADA(p) _mm512_load_ps(p)
#define V_STORE(p, x) _mm512_storeu_ps(p, x)
#define V_STOREA(p, x) _mm512_store_ps(p, x)
#define V_FMA(x, y, z) _mm512_fmadd_ps(x, y, z)
#define V_MUL(x, y) _mm512_mul_ps(x, y)
#include "gemm_avx512_tmpl.h"
