/* AVX2 + FMA dgemm micro-kernel, 6 x 8 register block.
 *
 * Design: the float64 twin of sgemm_6x16.c: 12 ymm accumulators (2 vectors of
 * 4 doubles per row), 2 B loads and 6 broadcasts per k step, k unrolled by 4.
 * The epilogue vectorises alpha/beta/bias and ReLU/leaky ReLU; sigmoid and
 * tanh go through libm per element after the vector store, because a float64
 * vector exp accurate to the last bit costs as much as it saves here and the
 * GEMM's own cost dominates (2k flops per element).
 *
 * The file holds the three forms of the tile (kernels/ukernel.h), as
 * sgemm_6x16.c does: fm_dgemm_avx2_6x8 (packed A), fm_dgemm_avx2_6x8_rowa
 * (row-major A read in place) and fm_dgemm_avx2_gen8 (M-edge tiles of 1-5
 * rows, one or two B panels, and dispatch). All give every element the same
 * FMA sequence and epilogue: bitwise interchangeable.
 *
 * Compiled with -mavx2 -mfma (per-file flags in setup.py).
 */
#include <immintrin.h>
#include <math.h>
#include "../ukernel.h"
#include "../epilogue.h"
#include "../../fastmlp.h"
#include "vmath_avx2.h"
#include "epilogue_avx2.h"

static inline __m256d fm_d_epi(__m256d v, const double *cij, int has_beta, __m256d vbeta,
                               const double *bias, int act, __m256d vslope) {
    if (has_beta) v = _mm256_fmadd_pd(vbeta, _mm256_loadu_pd(cij), v);
    if (bias) v = _mm256_add_pd(v, _mm256_loadu_pd(bias));
    return fm_d_act_avx2(v, act, vslope);
}

/* One k step: B row bp (two vectors) times the six A values at p0..p5. */
#define FM_D_STEP_AT(bp, p0, p1, p2, p3, p4, p5)                               \
    do {                                                                       \
        const __m256d b0 = _mm256_loadu_pd(bp);                                \
        const __m256d b1 = _mm256_loadu_pd((bp) + 4);                          \
        __m256d av;                                                            \
        av = _mm256_broadcast_sd(p0);                                          \
        c00 = _mm256_fmadd_pd(av, b0, c00); c01 = _mm256_fmadd_pd(av, b1, c01);\
        av = _mm256_broadcast_sd(p1);                                          \
        c10 = _mm256_fmadd_pd(av, b0, c10); c11 = _mm256_fmadd_pd(av, b1, c11);\
        av = _mm256_broadcast_sd(p2);                                          \
        c20 = _mm256_fmadd_pd(av, b0, c20); c21 = _mm256_fmadd_pd(av, b1, c21);\
        av = _mm256_broadcast_sd(p3);                                          \
        c30 = _mm256_fmadd_pd(av, b0, c30); c31 = _mm256_fmadd_pd(av, b1, c31);\
        av = _mm256_broadcast_sd(p4);                                          \
        c40 = _mm256_fmadd_pd(av, b0, c40); c41 = _mm256_fmadd_pd(av, b1, c41);\
        av = _mm256_broadcast_sd(p5);                                          \
        c50 = _mm256_fmadd_pd(av, b0, c50); c51 = _mm256_fmadd_pd(av, b1, c51);\
    } while (0)

/* Step u of the packed kernel: the six values of a packed A column. */
#define FM_D_STEP(u)                                                           \
    FM_D_STEP_AT(b + 8 * (u), a + 6 * (u), a + 6 * (u) + 1, a + 6 * (u) + 2,   \
                 a + 6 * (u) + 3, a + 6 * (u) + 4, a + 6 * (u) + 5)

/* The tile's epilogue and store, shared by the packed and in-place kernels;
 * sigmoid and tanh then per element (see the top of this file). */
static inline __attribute__((always_inline)) void fm_d_store_6x8(
    double *restrict c, int64_t rsc, const fm_dukr_args *args, __m256d c00, __m256d c01,
    __m256d c10, __m256d c11, __m256d c20, __m256d c21, __m256d c30, __m256d c31, __m256d c40,
    __m256d c41, __m256d c50, __m256d c51) {
    FM_STORE_6X2(__m256d, pd, 4, fm_d_epi);
    const int act = args->act;
    if (act == FM_ACT_SIGMOID || act == FM_ACT_TANH) {
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 8; j++)
                c[i * rsc + j] = fm_act_scalar_d(c[i * rsc + j], act, args->slope);
    }
}

void fm_dgemm_avx2_6x8(int64_t k, const double *restrict a, const double *restrict b,
                       double *restrict c, int64_t rsc, const fm_dukr_args *args) {
    FM_TILE_BEGIN_6X2(__m256d, pd, 4);

    int64_t p = 0;
    for (; p + 4 <= k; p += 4) {
        _mm_prefetch((const char *)(a + 96), _MM_HINT_T0);
        FM_D_STEP(0);
        FM_D_STEP(1);
        FM_D_STEP(2);
        FM_D_STEP(3);
        a += 24;
        b += 32;
    }
    for (; p < k; p++) {
        FM_D_STEP(0);
        a += 6;
        b += 8;
    }

    fm_d_store_6x8(c, rsc, args, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

/* The same kernel on a row-major A read in place: A[i, p] = a[i * rsa + p]
 * (six rows, each a sequential stream), so a row-major A -- x in x @ W, g in
 * g @ W.T -- needs no packing. Per element the packed kernel's arithmetic in
 * the same order: bitwise the same tile. */
void fm_dgemm_avx2_6x8_rowa(int64_t k, const double *restrict a, int64_t rsa,
                            const double *restrict b, double *restrict c, int64_t rsc,
                            const fm_dukr_args *args) {
    FM_TILE_BEGIN_6X2(__m256d, pd, 4);
    /* Rows 0-2 at ra + {0, 1, 2} rs bytes, rows 3-5 at rb + {0, 1, 2} rs: two
     * cursors and one stride in registers (base + index * {1, 2} addressing).
     * Six separate row cursors made GCC spill them in the loop. */
    const char *ra = (const char *)a, *rb = (const char *)(a + 3 * rsa);
    const int64_t rs = rsa * (int64_t)sizeof(double);
#define FM_D_ROWS(u)                                                                      \
    (const double *)(ra + 8 * (u)), (const double *)(ra + rs + 8 * (u)),                  \
        (const double *)(ra + 2 * rs + 8 * (u)), (const double *)(rb + 8 * (u)),           \
        (const double *)(rb + rs + 8 * (u)), (const double *)(rb + 2 * rs + 8 * (u))
#define FM_D_STEP_ROWS(...) FM_D_STEP_AT(__VA_ARGS__)
    int64_t p = 0;
    for (; p + 4 <= k; p += 4, ra += 32, rb += 32, b += 32) {
        FM_D_STEP_ROWS(b, FM_D_ROWS(0));
        FM_D_STEP_ROWS(b + 8, FM_D_ROWS(1));
        FM_D_STEP_ROWS(b + 16, FM_D_ROWS(2));
        FM_D_STEP_ROWS(b + 24, FM_D_ROWS(3));
    }
    for (; p < k; p++, ra += 8, rb += 8, b += 8) FM_D_STEP_ROWS(b, FM_D_ROWS(0));
#undef FM_D_STEP_ROWS
#undef FM_D_ROWS
    fm_d_store_6x8(c, rsc, args, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

/* ---- the general kernel (ukernel.h fm_dgemm_gen): M-edge tiles and dispatch ---- */
#define FT double
#define VT __m256d
#define VL 4
#define GN(n) fm_d_gen_##n
#define ARGS fm_dukr_args
#define GEN_ENTRY fm_dgemm_avx2_gen8
#define KPACKED fm_dgemm_avx2_6x8
#define KROWA fm_dgemm_avx2_6x8_rowa
#define EPI fm_d_epi
#define SCALAR_ACT_AFTER 1
#define ACT_SCALAR fm_act_scalar_d
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_BCAST(p) _mm256_broadcast_sd(p)
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_LOADA(p) _mm256_load_pd(p)
#define V_STORE(p, x) _mm256_storeu_pd(p, x)
#define V_STOREA(p, x) _mm256_store_pd(p, x)
#define V_FMA(x, y, z) _mm256_fmadd_pd(x, y, z)
#define V_MUL(x, y) _mm256_mul_pd(x, y)
#include "gemm_gen_avx2_tmpl.h"
