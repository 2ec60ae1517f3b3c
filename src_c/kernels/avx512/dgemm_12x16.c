/* AVX-512 dgemm micro-kernels, 12 x 16 register block (two zmm of 8 doubles
 * per row): fm_dgemm_avx512_12x16 (packed A), fm_dgemm_avx512_12x16_rowa
 * (row-major A read in place) and fm_dgemm_avx512_gen16 (M-edge tiles and
 * dispatch). Design and the arithmetic contract: gemm_avx512_tmpl.h. As in
 * every float64 kernel, sigmoid and tanh are applied per element with libm
 * after the vector store (epilogue.h), ReLU / leaky ReLU in the vectors.
 * Compiled with the AVX-512 flags (setup.py).
 */
#include <immintrin.h>
#include <math.h>
#include "../ukernel.h"
#include "../epilogue.h"
#include "../../fastmlp.h"
#include "vmath_avx512.h"

static inline __m512d fm_d_epi512(__m512d v, const double *cij, int has_beta, __m512d vbeta,
                                  const double *bias, int act, __m512d vslope) {
    if (has_beta) v = _mm512_fmadd_pd(vbeta, _mm512_loadu_pd(cij), v);
    if (bias) v = _mm512_add_pd(v, _mm512_loadu_pd(bias));
    if (act == FM_ACT_RELU) return fm_relu_pd512(v);
    if (act == FM_ACT_LEAKY_RELU) return fm_leaky_relu_pd512(v, vslope);
    return v;
}

#define FT double
#define VT __m512d
#define VL 8
#define GN(n) fm_d512_##n
#define ARGS fm_dukr_args
#define KPACKED fm_dgemm_avx512_12x16
#define KROWA fm_dgemm_avx512_12x16_rowa
#define GEN_ENTRY fm_dgemm_avx512_gen16
#define EPI fm_d_epi512
#define SCALAR_ACT_AFTER 1
#define ACT_SCALAR fm_act_scalar_d
#define V_ZERO() _mm512_setzero_pd()
#define V_SET1(x) _mm512_set1_pd(x)
#define V_BCAST(p) _mm512_set1_pd(*(p))
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_LOADA(p) _mm512_load_pd(p)
#define V_STORE(p, x) _mm512_storeu_pd(p, x)
#define V_STOREA(p, x) _mm512_store_pd(p, x)
#define V_FMA(x, y, z) _mm512_fmadd_pd(x, y, z)
#define V_MUL(x, y) _mm512_mul_pd(x, y)
#include "gemm_avx512_tmpl.h"
