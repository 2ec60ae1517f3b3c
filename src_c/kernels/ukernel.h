/* Micro-kernel interface shared by every architecture.
 *
 * Design: a micro-kernel computes one MR x NR tile of C from a packed A
 * micro-panel (k columns of MR values, contiguous) and a packed B micro-panel
 * (k rows of NR values, contiguous):
 *
 *     C = act(alpha * A_panel @ B_panel + beta * C + bias)
 *
 * It always works on a full tile whose rows are contiguous (column stride 1);
 * the driver in gemm/ handles edge tiles and general strides by going through
 * a small aligned temporary tile. Each element is accumulated in a single
 * register lane in k order, one FMA (or mul+add in the reference) per step, so
 * a given element's value never depends on where the tile boundaries fall or
 * on how the work is split among threads.
 *
 * bias points at NR values (the columns of this tile) or is NULL; act and
 * slope are only applied when the driver passes them, i.e. on the last
 * K block.
 */
#ifndef FM_UKERNEL_H
#define FM_UKERNEL_H

#include <stdint.h>

typedef struct {
    float alpha, beta;
    const float *bias;
    int act;
    float slope;
} fm_sukr_args;

typedef struct {
    double alpha, beta;
    const double *bias;
    int act;
    double slope;
} fm_dukr_args;

typedef void (*fm_sgemm_ukr)(int64_t k, const float *a, const float *b,
                             float *c, int64_t rsc, const fm_sukr_args *args);
typedef void (*fm_dgemm_ukr)(int64_t k, const double *a, const double *b,
                             double *c, int64_t rsc, const fm_dukr_args *args);

/* Largest register block any kernel uses (sizes temporary edge tiles). */
#define FM_MR_MAX 12
#define FM_NR_MAX 32

/* Reference kernels (kernels/ref/gemm_ref.c): plain C, same signatures and
 * the same register blocks as the AVX2 kernels so that tests can feed both
 * the same packed panels. */
void fm_sgemm_ref_6x16(int64_t k, const float *a, const float *b, float *c,
                       int64_t rsc, const fm_sukr_args *args);
void fm_dgemm_ref_6x8(int64_t k, const double *a, const double *b, double *c,
                      int64_t rsc, const fm_dukr_args *args);

/* AVX2 + FMA kernels (kernels/avx2/), only built on x86-64. */
void fm_sgemm_avx2_6x16(int64_t k, const float *a, const float *b, float *c,
                        int64_t rsc, const fm_sukr_args *args);
void fm_dgemm_avx2_6x8(int64_t k, const double *a, const double *b, double *c,
                       int64_t rsc, const fm_dukr_args *args);


/* General micro-kernels: the same tile arithmetic as the kernel above (per
 * element: one FMA -- mul + add in the reference -- per k step in k order,
 * then the same epilogue), for the tiles the packed kernel does not fit:
 *   mi <= MR rows (the M edge: m % MR rows need not be computed as a full,
 *   zero-padded MR-row tile), and
 *   np = 1 or 2 B micro-panels side by side (np * NR columns; panel q at
 *   b + q * NR * k), so that a thin edge still has enough independent FMA
 *   chains to hide the FMA latency;
 * with A read through strides: A[i, p] = a[i * ars + p * acs]. ars = 1,
 * acs = MR is a packed A micro-panel; ars = rsa, acs = 1 is a row-major A read
 * in place, with no packing. C: mi rows of np * NR columns, rows rsc apart,
 * unit column stride; bias (if any) points at np * NR values. Every element
 * comes out bitwise equal to what the packed kernel of the same architecture
 * gives for it. */
typedef void (*fm_sgemm_gen)(int mi, int np, int64_t k, const float *a, int64_t ars,
                             int64_t acs, const float *b, float *c, int64_t rsc,
                             const fm_sukr_args *args);
typedef void (*fm_dgemm_gen)(int mi, int np, int64_t k, const double *a, int64_t ars,
                             int64_t acs, const double *b, double *c, int64_t rsc,
                             const fm_dukr_args *args);
void fm_sgemm_ref_gen16(int mi, int np, int64_t k, const float *a, int64_t ars, int64_t acs,
                        const float *b, float *c, int64_t rsc, const fm_sukr_args *args);
void fm_dgemm_ref_gen8(int mi, int np, int64_t k, const double *a, int64_t ars, int64_t acs,
                       const double *b, double *c, int64_t rsc, const fm_dukr_args *args);
void fm_sgemm_avx2_gen16(int mi, int np, int64_t k, const float *a, int64_t ars, int64_t acs,
                         const float *b, float *c, int64_t rsc, const fm_sukr_args *args);
void fm_dgemm_avx2_gen8(int mi, int np, int64_t k, const double *a, int64_t ars, int64_t acs,
                        const double *b, double *c, int64_t rsc, const fm_dukr_args *args);
/* The AVX2 kernels on a row-major A read in place (A[i, p] = a[i * rsa + p]);
 * the general kernels' full-tile case. */
void fm_sgemm_avx2_6x16_rowa(int64_t k, const float *a, int64_t rsa, const float *b, float *c,
                             int64_t rsc, const fm_sukr_args *args);
void fm_dgemm_avx2_6x8_rowa(int64_t k, const double *a, int64_t rsa, const double *b,
                            double *c, int64_t rsc, const fm_dukr_args *args);

/* AVX-512 kernels (kernels/avx512/, gemm_avx512_tmpl.h), only built on
 * x86-64: sgemm 12x32 and dgemm 12x16, in the same three forms. */
void fm_sgemm_avx512_12x32(int64_t k, const float *a, const float *b, float *c, int64_t rsc,
                           const fm_sukr_args *args);
void fm_sgemm_avx512_12x32_rowa(int64_t k, const float *a, int64_t rsa, const float *b,
                                float *c, int64_t rsc, const fm_sukr_args *args);
void fm_sgemm_avx512_gen32(int mi, int np, int64_t k, const float *a, int64_t ars, int64_t acs,
                           const float *b, float *c, int64_t rsc, const fm_sukr_args *args);
void fm_dgemm_avx512_12x16(int64_t k, const double *a, const double *b, double *c, int64_t rsc,
                           const fm_dukr_args *args);
void fm_dgemm_avx512_12x16_rowa(int64_t k, const double *a, int64_t rsa, const double *b,
                                double *c, int64_t rsc, const fm_dukr_args *args);
void fm_dgemm_avx512_gen16(int mi, int np, int64_t k, const double *a, int64_t ars,
                           int64_t acs, const double *b, double *c, int64_t rsc,
                           const fm_dukr_args *args);

/* Small-m kernels (no packing): C (m x n) = act(alpha * A @ B + beta * C +
 * bias) for a B with unit column stride (B[p, j] = b[p * rsb + j]) and any A
 * and C strides, summed in K blocks of kc exactly as the blocked driver does,
 * so every element is bitwise what the blocked path with the same
 * architecture's micro-kernel gives. args->bias points at the n columns'
 * values (or is NULL). Meant for few rows (m <= the table's smallm_max). */
typedef void (*fm_sgemm_smallm)(int64_t m, int64_t n, int64_t k, int64_t kc, const float *a,
                                int64_t rsa, int64_t csa, const float *b, int64_t rsb,
                                float *c, int64_t rsc, int64_t csc, const fm_sukr_args *args);
typedef void (*fm_dgemm_smallm)(int64_t m, int64_t n, int64_t k, int64_t kc, const double *a,
                                int64_t rsa, int64_t csa, const double *b, int64_t rsb,
                                double *c, int64_t rsc, int64_t csc, const fm_dukr_args *args);
void fm_sgemm_smallm_ref(int64_t m, int64_t n, int64_t k, int64_t kc, const float *a,
                         int64_t rsa, int64_t csa, const float *b, int64_t rsb, float *c,
                         int64_t rsc, int64_t csc, const fm_sukr_args *args);
void fm_dgemm_smallm_ref(int64_t m, int64_t n, int64_t k, int64_t kc, const double *a,
                         int64_t rsa, int64_t csa, const double *b, int64_t rsb, double *c,
                         int64_t rsc, int64_t csc, const fm_dukr_args *args);
void fm_sgemm_smallm_avx2(int64_t m, int64_t n, int64_t k, int64_t kc, const float *a,
                          int64_t rsa, int64_t csa, const float *b, int64_t rsb, float *c,
                          int64_t rsc, int64_t csc, const fm_sukr_args *args);
void fm_dgemm_smallm_avx2(int64_t m, int64_t n, int64_t k, int64_t kc, const double *a,
                          int64_t rsa, int64_t csa, const double *b, int64_t rsb, double *c,
                          int64_t rsc, int64_t csc, const fm_dukr_args *args);

/* Packing kernels (same result as the generic packers of gemm/). A row-major
 * A needs none where the table has a general kernel (it is read in place).
 * kc rows x 16 columns of a B with unit row stride (B[p, j] = b[p + j*csb])
 * into one NR = 16 micro-panel. */
typedef void (*fm_spack_b16t)(int64_t kc, const float *b, int64_t csb, float *dst);
void fm_spack_b16t_avx2(int64_t kc, const float *b, int64_t csb, float *dst);
/* The same for float64, one NR = 8 micro-panel. */
void fm_dpack_b8t_avx2(int64_t kc, const double *b, int64_t csb, double *dst);
/* kc rows x npan*16 columns of a row-major B (B[p, j] = b[p*rsb + j]) into
 * npan NR = 16 micro-panels, panel q at dst + q*16*kc. */
typedef void (*fm_spack_b16n)(int64_t kc, int64_t npan, const float *b, int64_t rsb, float *dst);
void fm_spack_b16n_avx2(int64_t kc, int64_t npan, const float *b, int64_t rsb, float *dst);
/* Rows [0, 6*npan) x columns [0, kc) of a column-major A (A[i, p] =
 * a[i + p*csa]) into npan MR = 6 micro-panels, panel q at dst + 6*q*kc. */
typedef void (*fm_spack_at6)(int64_t kc, int64_t npan, const float *a, int64_t csa, float *dst);
void fm_spack_at6_avx2(int64_t kc, int64_t npan, const float *a, int64_t csa, float *dst);

#endif
