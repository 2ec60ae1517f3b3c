/* AVX2 + FMA small-m GEMM kernels (float32 and float64), for the few-row
 * products of prediction: x (1 x 784) @ W (784 x 256) + bias, relu.
 *
 * Design: the blocked driver packs all of B into micro-panels before the
 * first FMA. For m = 1 that copy costs more than the product itself (the
 * product reads B once and does one FMA per element of B). Here B (unit
 * column stride: a C-ordered weight matrix) is read in place, once per group
 * of up to 4 rows of A, streaming its rows:
 *
 *   for each group of MG <= 4 rows of A:
 *     for each K block (kc rows of B: ~200 KB for n = 256, stays in L2):
 *       for each chunk of NV vectors of C:
 *         for p in the block:  acc[i][v] += a[i, p] * B[p, chunk v]
 *         C chunk = block epilogue(acc, C chunk)
 *
 * The MG x NV accumulators stay in registers for the whole K block (every
 * loop over them is fully unrolled on constants, so GCC keeps them out of
 * memory); between blocks the running total lives in C, as in the blocked
 * driver. Chunk widths, measured on Zen 3: MG=1: 8 vectors (256 bytes of a B
 * row per step: bandwidth bound), MG=2: 6, MG=3: 4, MG=4: 3 (12
 * accumulators: FMA bound). B rows are read with a stride of n elements, so
 * each step prefetches the row FM_SM_PF steps ahead (worth ~10-25% from L3).
 * The columns past the last full chunk go through one narrower chunk whose
 * last vector is loaded and stored with a lane mask.
 *
 * One row whose column range is all of a contiguous B's rows (one thread,
 * rows of 0.5-4 KB) takes a pure streaming kernel instead (rows1s in the
 * template): B read once, front to back, four rows per step into L1
 * accumulators -- what the hardware prefetchers handle best.
 *
 * Bitwise identity with the blocked path: every element of C gets exactly
 * the operations the micro-kernels give it. The sum is split into the same
 * K blocks (`kc`, computed by the driver as for the blocked path); within a
 * block one FMA per k step into an accumulator that starts at zero, in k
 * order; after each block the blocked driver's store (alpha * acc, then
 * + beta * C on the first block or + the running total on later ones, then
 * bias and activation on the last), with the shared vector activations of
 * epilogue_avx2.h (float64 sigmoid/tanh: libm per element, as dgemm_6x8).
 * So a row's result does not depend on which path, how many rows, or which
 * column chunk or thread computed it.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "../ukernel.h"
#include "../epilogue.h"
#include "../../fastmlp.h"
#include "vmath_avx2.h"
#include "epilogue_avx2.h"

static inline __m256i fm_mask32(int r) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m256i fm_mask64(int r) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(r), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* Software prefetch distance, in B rows (k steps). */
#define FM_SM_PF 8

/* Row group sizes and the chunk width (in vectors) for each. */
#define FM_SM_DISPATCH                                                                    \
    for (int64_t i = 0; i < m;) {                                                         \
        const int64_t left = m - i;                                                       \
        /* Groups of 4, but 5 -> 3 + 2 and 6 -> 3 + 3 (no lone 1- or 2-row pass). */  \
        const int64_t mg = left <= 4 ? left : (left <= 6 ? 3 : 4);                        \
        const FT *ai = a + i * rsa;                                                       \
        FT *ci = c + i * rsc;                                                             \
        switch (mg) {                                                                     \
        case 1:                                                                           \
            if (rsb == n && n * (int64_t)sizeof(FT) >= 512 && n <= SM_ROWW)               \
                SM(rows1s)(n, k, kc, ai, rsa, csa, b, rsb, ci, rsc, csc, args);           \
            else                                                                          \
                SM(rows1c)(n, k, kc, ai, rsa, csa, b, rsb, ci, rsc, csc, args);           \
            break;                                                                        \
        case 2: SM(rows2)(n, k, kc, ai, rsa, csa, b, rsb, ci, rsc, csc, args); break;     \
        case 3: SM(rows3)(n, k, kc, ai, rsa, csa, b, rsb, ci, rsc, csc, args); break;     \
        default: SM(rows4)(n, k, kc, ai, rsa, csa, b, rsb, ci, rsc, csc, args); break;    \
        }                                                                                 \
        i += mg;                                                                          \
    }

/* ---- float32 ---- */
#define FT float
#define VT __m256
#define MT __m256i
#define VL 8
#define SM(n) fm_s_smallm_##n
#define ARGS fm_sukr_args
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_MLOAD(p, mk) _mm256_maskload_ps(p, mk)
#define V_STORE(p, x) _mm256_storeu_ps(p, x)
#define V_MSTORE(p, mk, x) _mm256_maskstore_ps(p, mk, x)
#define V_FMA(x, y, z) _mm256_fmadd_ps(x, y, z)
#define V_MUL(x, y) _mm256_mul_ps(x, y)
#define V_ADD(x, y) _mm256_add_ps(x, y)
#define V_MASK(r) fm_mask32(r)
#define V_ACT(x, act, s) fm_s_act_avx2(x, act, s)
#define SCALAR_ACT_AFTER 0
#define ACT_SCALAR fm_act_scalar_s
#include "gemm_smallm_avx2_tmpl.h"
SM_DEFINE_ROWS(rows1c, 1, 8, FM_SM_PF)
SM_DEFINE_ROWS(rows2, 2, 6, FM_SM_PF)
SM_DEFINE_ROWS(rows3, 3, 4, FM_SM_PF)
SM_DEFINE_ROWS(rows4, 4, 3, FM_SM_PF)

void fm_sgemm_smallm_avx2(int64_t m, int64_t n, int64_t k, int64_t kc, const float *a,
                          int64_t rsa, int64_t csa, const float *b, int64_t rsb, float *c,
                          int64_t rsc, int64_t csc, const fm_sukr_args *args) {
    FM_SM_DISPATCH
}
#undef FT
#undef VT
#undef MT
#undef VL
#undef SM
#undef ARGS
#undef V_ZERO
#undef V_SET1
#undef V_BCAST
#undef V_LOAD
#undef V_MLOAD
#undef V_STORE
#undef V_MSTORE
#undef V_FMA
#undef V_MUL
#undef V_ADD
#undef V_MASK
#undef V_ACT
#undef SCALAR_ACT_AFTER
#undef ACT_SCALAR
#undef SM_MGMAX
#undef SM_NVMAX
#undef SM_ROWW
#undef SM_DEFINE_ROWS
#undef SM_TAIL

/* ---- float64 ---- */
#define FT double
#define VT __m256d
#define MT __m256i
#define VL 4
#define SM(n) fm_d_smallm_##n
#define ARGS fm_dukr_args
#define V_ZERO() _mm256_setzero_pd()
#define V_SET1(x) _mm256_set1_pd(x)
#define V_BCAST(p) _mm256_broadcast_sd(p)
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_MLOAD(p, mk) _mm256_maskload_pd(p, mk)
#define V_STORE(p, x) _mm256_storeu_pd(p, x)
#define V_MSTORE(p, mk, x) _mm256_maskstore_pd(p, mk, x)
#define V_FMA(x, y, z) _mm256_fmadd_pd(x, y, z)
#define V_MUL(x, y) _mm256_mul_pd(x, y)
#define V_ADD(x, y) _mm256_add_pd(x, y)
#define V_MASK(r) fm_mask64(r)
#define V_ACT(x, act, s) fm_d_act_avx2(x, act, s)
#define SCALAR_ACT_AFTER 1
#define ACT_SCALAR fm_act_scalar_d
#include "gemm_smallm_avx2_tmpl.h"
SM_DEFINE_ROWS(rows1c, 1, 8, FM_SM_PF)
SM_DEFINE_ROWS(rows2, 2, 6, FM_SM_PF)
SM_DEFINE_ROWS(rows3, 3, 4, FM_SM_PF)
SM_DEFINE_ROWS(rows4, 4, 3, FM_SM_PF)

void fm_dgemm_smallm_avx2(int64_t m, int64_t n, int64_t k, int64_t kc, const double *a,
                          int64_t rsa, int64_t csa, const double *b, int64_t rsb, double *c,
                          int64_t rsc, int64_t csc, const fm_dukr_args *args) {
    FM_SM_DISPATCH
}
