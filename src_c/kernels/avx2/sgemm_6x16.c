/* AVX2 + FMA sgemm micro-kernel, 6 x 16 register block.
 *
 * Design: 12 ymm accumulators hold the 6 x 16 tile (2 vectors of 8 floats per
 * row); each k step loads one row of the packed B panel (2 vectors), then
 * broadcasts the 6 values of the packed A column and issues 12 FMAs. That is
 * 12 FMA for 8 loads: enough independent chains (12) to cover the FMA
 * latency on two FMA pipes, and 15 of 16 ymm registers in use. The k loop is
 * unrolled by 4. The epilogue (alpha, beta, bias, activation) runs on the
 * accumulators before the store, so a fused linear layer does not make a
 * second pass over C.
 *
 * The file holds the three forms of this tile (kernels/ukernel.h):
 *   fm_sgemm_avx2_6x16       packed A micro-panel (6 values per k step);
 *   fm_sgemm_avx2_6x16_rowa  row-major A read in place (no packing);
 *   fm_sgemm_avx2_gen16      the general kernel: M-edge tiles of 1-5 rows
 *                            (one or two B panels) and dispatch to the two
 *                            above for full tiles.
 * All three give every element the same FMA sequence and epilogue, so they
 * are bitwise interchangeable (tests/kernels/test_gemm.py checks it).
 *
 * Compiled with -mavx2 -mfma (per-file flags in setup.py); only called after
 * the run-time CPU check in gemm/config.c.
 */
#include <immintrin.h>
#include "../ukernel.h"
#include "../epilogue.h"
#include "../../fastmlp.h"
#include "vmath_avx2.h"
#include "epilogue_avx2.h"

static inline __m256 fm_s_epi(__m256 v, const float *cij, int has_beta, __m256 vbeta,
                              const float *bias, int act, __m256 vslope) {
    if (has_beta) v = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(cij), v);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    return fm_s_act_avx2(v, act, vslope);
}

/* The tile's epilogue and store, shared by both kernels of this file. */
static inline __attribute__((always_inline)) void fm_s_store_6x16(
    float *restrict c, int64_t rsc, const fm_sukr_args *args, __m256 c00, __m256 c01,
    __m256 c10, __m256 c11, __m256 c20, __m256 c21, __m256 c30, __m256 c31, __m256 c40,
    __m256 c41, __m256 c50, __m256 c51) {
    FM_STORE_6X2(__m256, ps, 8, fm_s_epi);
}

/* One k step: B row bp (two vectors) times the six A values at p0..p5. */
#define FM_S_STEP_AT(bp, p0, p1, p2, p3, p4, p5)                               \
    do {                                                                       \
        const __m256 b0 = _mm256_loadu_ps(bp);                                 \
        const __m256 b1 = _mm256_loadu_ps((bp) + 8);                           \
        __m256 av;                                                             \
        av = _mm256_broadcast_ss(p0);                                          \
        c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);\
        av = _mm256_broadcast_ss(p1);                                          \
        c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);\
        av = _mm256_broadcast_ss(p2);                                          \
        c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);\
        av = _mm256_broadcast_ss(p3);                                          \
        c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);\
        av = _mm256_broadcast_ss(p4);                                          \
        c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);\
        av = _mm256_broadcast_ss(p5);                                          \
        c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);\
    } while (0)

/* Step u of the packed kernel: the six values of a packed A column. */
#define FM_S_STEP(u)                                                           \
    FM_S_STEP_AT(b + 16 * (u), a + 6 * (u), a + 6 * (u) + 1, a + 6 * (u) + 2,  \
                 a + 6 * (u) + 3, a + 6 * (u) + 4, a + 6 * (u) + 5)

/* One k step of the tile in asm: B row halves at BLO, BHI into ymm13/14, the
 * six A values at A0..A5 broadcast through ymm15, twelve FMAs. Operands are
 * AT&T address strings, so the packed and in-place kernels share the body
 * and differ only in their addressing. */
#define FM_S_ASM_STEP(BLO, BHI, A0, A1, A2, A3, A4, A5)                        \
    "vmovups " BLO ", %%ymm13\n\t"                                              \
    "vmovups " BHI ", %%ymm14\n\t"                                              \
    FM_S_ASM_ROW_(A0, "c00", "c01") FM_S_ASM_ROW_(A1, "c10", "c11")             \
    FM_S_ASM_ROW_(A2, "c20", "c21") FM_S_ASM_ROW_(A3, "c30", "c31")             \
    FM_S_ASM_ROW_(A4, "c40", "c41") FM_S_ASM_ROW_(A5, "c50", "c51")
#define FM_S_ASM_ROW_(A, C0, C1)                                               \
    "vbroadcastss " A ", %%ymm15\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm15, %[" C0 "]\n\t"                               \
    "vfmadd231ps %%ymm14, %%ymm15, %[" C1 "]\n\t"

void fm_sgemm_avx2_6x16(int64_t k, const float *restrict a, const float *restrict b,
                        float *restrict c, int64_t rsc, const fm_sukr_args *args) {
    FM_TILE_BEGIN_6X2(__m256, ps, 8);

    /* Main loop, 4 k steps per iteration, in inline assembly: written with
     * intrinsics GCC 12 spills one accumulator per iteration, which puts a
     * store-to-load forwarding delay on that accumulator's FMA chain. Here
     * the 12 accumulators are pinned to registers (the compiler picks which)
     * and ymm13-15 hold the two B vectors and the A broadcast. */
    int64_t p = k & ~(int64_t)3;
    int64_t iters = k >> 2;
    if (iters > 0) {
        __asm__ volatile(
            "1:\n\t"
            /* A advances 96 bytes (1.5 lines) per iteration: prefetch two
             * lines so that none is skipped. */
            "prefetcht0 384(%[a])\n\t"
            "prefetcht0 448(%[a])\n\t"
            FM_S_ASM_STEP("0(%[b])", "32(%[b])", "0(%[a])", "4(%[a])", "8(%[a])",
                          "12(%[a])", "16(%[a])", "20(%[a])")
            FM_S_ASM_STEP("64(%[b])", "96(%[b])", "24(%[a])", "28(%[a])", "32(%[a])",
                          "36(%[a])", "40(%[a])", "44(%[a])")
            FM_S_ASM_STEP("128(%[b])", "160(%[b])", "48(%[a])", "52(%[a])", "56(%[a])",
                          "60(%[a])", "64(%[a])", "68(%[a])")
            FM_S_ASM_STEP("192(%[b])", "224(%[b])", "72(%[a])", "76(%[a])", "80(%[a])",
                          "84(%[a])", "88(%[a])", "92(%[a])")
            "addq $96, %[a]\n\t"
            "addq $256, %[b]\n\t"
            "decq %[it]\n\t"
            "jnz 1b\n\t"
            : [a] "+r"(a), [b] "+r"(b), [it] "+r"(iters),
              [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11),
              [c20] "+x"(c20), [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31),
              [c40] "+x"(c40), [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51)
            :
            : "xmm13", "xmm14", "xmm15", "memory", "cc");
    }
    for (; p < k; p++) {
        FM_S_STEP(0);
        a += 6;
        b += 16;
    }

    fm_s_store_6x16(c, rsc, args, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

/* The same kernel on a row-major A read in place: A[i, p] = a[i * rsa + p]
 * (six rows, each a sequential stream), so a row-major A -- x in x @ W, g in
 * g @ W.T -- needs no packing at all. BLIS's "sup" kernels read A the same
 * way. Per element the arithmetic is the packed kernel's, in the same order,
 * so the two give bitwise the same tile. */
void fm_sgemm_avx2_6x16_rowa(int64_t k, const float *restrict a, int64_t rsa,
                             const float *restrict b, float *restrict c, int64_t rsc,
                             const fm_sukr_args *args) {
    FM_TILE_BEGIN_6X2(__m256, ps, 8);
    const int64_t rs = rsa * (int64_t)sizeof(float);

    /* Rows 0-2 are addressed from r8 (a), rows 3-5 from r9 (a + 3 rows),
     * with the row stride in a register (base + stride * 1 or 2): no pointer
     * per row. The cursors live in scratch registers because an asm
     * statement takes at most 30 operands. */
    int64_t p = k & ~(int64_t)3;
    int64_t iters = k >> 2;
    if (iters > 0) {
        __asm__ volatile(
            "movq %[a], %%r8\n\t"
            "leaq (%[a],%[rs],2), %%r9\n\t"
            "addq %[rs], %%r9\n\t"
            "movq %[b], %%r10\n\t"
            "1:\n\t"
            /* No software prefetch: the hardware prefetchers follow the six
             * row streams, and prefetching each row two lines ahead measured
             * slower (x @ W1, 1 thread: 601 against 585 us). */
            FM_S_ASM_STEP("0(%%r10)", "32(%%r10)", "0(%%r8)", "0(%%r8,%[rs],1)", "0(%%r8,%[rs],2)",
                          "0(%%r9)", "0(%%r9,%[rs],1)", "0(%%r9,%[rs],2)")
            FM_S_ASM_STEP("64(%%r10)", "96(%%r10)", "4(%%r8)", "4(%%r8,%[rs],1)", "4(%%r8,%[rs],2)",
                          "4(%%r9)", "4(%%r9,%[rs],1)", "4(%%r9,%[rs],2)")
            FM_S_ASM_STEP("128(%%r10)", "160(%%r10)", "8(%%r8)", "8(%%r8,%[rs],1)", "8(%%r8,%[rs],2)",
                          "8(%%r9)", "8(%%r9,%[rs],1)", "8(%%r9,%[rs],2)")
            FM_S_ASM_STEP("192(%%r10)", "224(%%r10)", "12(%%r8)", "12(%%r8,%[rs],1)", "12(%%r8,%[rs],2)",
                          "12(%%r9)", "12(%%r9,%[rs],1)", "12(%%r9,%[rs],2)")
            "addq $16, %%r8\n\t"
            "addq $16, %%r9\n\t"
            "addq $256, %%r10\n\t"
            "decq %[it]\n\t"
            "jnz 1b\n\t"
            : [it] "+r"(iters),
              [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11),
              [c20] "+x"(c20), [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31),
              [c40] "+x"(c40), [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51)
            : [a] "r"(a), [b] "r"(b), [rs] "r"(rs)
            : "r8", "r9", "r10", "xmm13", "xmm14", "xmm15", "memory", "cc");
        a += p;
        b += 16 * p;
    }
    for (; p < k; p++, a++, b += 16)
        FM_S_STEP_AT(b, a, a + rsa, a + 2 * rsa, a + 3 * rsa, a + 4 * rsa, a + 5 * rsa);
    fm_s_store_6x16(c, rsc, args, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

/* ---- the general kernel (ukernel.h fm_sgemm_gen): M-edge tiles and dispatch ---- */
#define FT float
#define VT __m256
#define VL 8
#define GN(n) fm_s_gen_##n
#define ARGS fm_sukr_args
#define GEN_ENTRY fm_sgemm_avx2_gen16
#define KPACKED fm_sgemm_avx2_6x16
#define KROWA fm_sgemm_avx2_6x16_rowa
#define EPI fm_s_epi
#define SCALAR_ACT_AFTER 0
#define ACT_SCALAR fm_act_scalar_s
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADA(p) _mm256_load_ps(p)
#define V_STORE(p, x) _mm256_storeu_ps(p, x)
#define V_STOREA(p, x) _mm256_store_ps(p, x)
#define V_FMA(x, y, z) _mm256_fmadd_ps(x, y, z)
#define V_MUL(x, y) _mm256_mul_ps(x, y)
#include "gemm_gen_avx2_tmpl.h"
