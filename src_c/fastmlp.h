/* fastmlp C kernels: public interface (pure C, no Python headers).
 *
 * Design: everything the Cython layer calls is declared here. GEMM follows
 * BLIS: micro-kernels in kernels/<arch>/, packing, blocking and threading in
 * gemm/, one configuration table per dtype and architecture chosen once at
 * start-up from the CPU's features (see gemm/config.c).
 *
 * Matrices are described by a pointer plus row and column strides counted in
 * elements (negative and zero strides allowed), so transposed, Fortran-ordered
 * and sliced NumPy arrays are read in place by the packing routines.
 */
#ifndef FASTMLP_H
#define FASTMLP_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by the drivers. */
enum {
    FM_OK = 0,
    FM_ERR_SIZE = 1,   /* a size or its byte count overflows */
    FM_ERR_NOMEM = 2,  /* workspace allocation failed */
    FM_ERR_ARG = 3     /* invalid argument (unknown activation, arch, ...) */
};

/* Activations that can be fused into the GEMM store (the epilogue). */
enum {
    FM_ACT_NONE = 0,
    FM_ACT_RELU = 1,
    FM_ACT_LEAKY_RELU = 2,
    FM_ACT_SIGMOID = 3,
    FM_ACT_TANH = 4
};

/* Micro-kernel architectures. FM_ARCH_AUTO picks the best the CPU supports. */
enum {
    FM_ARCH_AUTO = -1,
    FM_ARCH_REF = 0,   /* portable C, always built, always correct */
    FM_ARCH_AVX2 = 1,  /* x86-64 AVX2 + FMA intrinsics */
    FM_ARCH_AVX512 = 2, /* x86-64 AVX-512 (F, DQ, BW, VL) GEMM kernels; the
                         * element-wise kernels run their AVX2 code there */
    FM_ARCH_COUNT = 3
};

/* ---- CPU features and build information (cpu.c) ---- */
int fm_cpu_has_avx2(void);       /* AVX2 usable (CPU bit and OS state saving) */
int fm_cpu_has_fma(void);
int fm_cpu_has_avx512(void);     /* AVX-512 F/DQ/BW/VL usable (CPU bits and OS ZMM state) */
int fm_cpu_avx512_full_width(void); /* 512-bit FMAs at twice the 256-bit rate (not AMD Zen 4) */
/* The element-wise kernels (activations, losses, optimizers, norms) have
 * reference and AVX2 code: the AVX2 code for FM_ARCH_AVX2 and FM_ARCH_AVX512. */
static inline int fm_arch_avx2_family(int arch) {
    return arch == FM_ARCH_AVX2 || arch == FM_ARCH_AVX512;
}
/* Why FASTMLP_KERNEL could not be honoured (NULL if it was, or is unset). */
const char *fm_arch_env_error(void);
int fm_arch_compiled(int arch);  /* 1 if the kernels of `arch` are in this build */
int fm_arch_usable(int arch);    /* compiled and supported by this CPU */
int fm_arch_best(void);          /* what FM_ARCH_AUTO resolves to */
const char *fm_arch_name(int arch);
const char *fm_compiler(void);   /* compiler name and version */
int fm_openmp_version(void);     /* _OPENMP date (e.g. 201511) or 0 if built without */

/* ---- Measured FMA peak (peak.c) ----
 * fm_peak_gflops: GFLOP/s of nthreads threads each running `iters` steps of
 * the probe of `arch` (kernels/<isa>/peak_<isa>.c), float (dbl=0) or double;
 * -1 if arch is not usable here or the arguments are bad. One call is one
 * measurement: callers warm up, repeat and keep the best. */
int fm_peak_lanes(int arch, int dbl);
double fm_peak_gflops(int arch, int dbl, int nthreads, long iters);

/* ---- GEMM ----
 * C = act(alpha * A @ B + beta * C + bias), A is m x k, B is k x n, C is m x n.
 * bias (length n, one value per column of C, unit stride) may be NULL.
 * When beta == 0, C is not read (it may hold NaN). k == 0 is allowed.
 * nthreads >= 1 is an upper bound; small problems run on fewer threads.
 * The result is bitwise identical for every nthreads: K is never split and
 * every element of C is always computed by the same micro-kernel code.
 */
typedef struct {
    const char *name;   /* e.g. "avx2 sgemm 6x16" */
    int arch;
    int mr, nr;         /* register block */
    int64_t mc, kc, nc; /* cache blocks: A block mc x kc in L2, B block kc x nc in L3 */
    int64_t smallm;     /* m <= smallm with a unit-column-stride B skips packing (0: never) */
    int64_t hot_a_bytes; /* when one thread's rows of A (rounded up to mr) take at most
                          * this many bytes per K block, B panels are packed just before
                          * use (0: never; order only, never results) */
} fm_gemm_info;

int fm_gemm_info_get(int dtype_is_double, int arch, fm_gemm_info *out);

int fm_sgemm(int arch, int64_t m, int64_t n, int64_t k, float alpha,
             const float *a, int64_t rsa, int64_t csa,
             const float *b, int64_t rsb, int64_t csb, float beta,
             float *c, int64_t rsc, int64_t csc,
             const float *bias, int act, float slope, int nthreads);

int fm_dgemm(int arch, int64_t m, int64_t n, int64_t k, double alpha,
             const double *a, int64_t rsa, int64_t csa,
             const double *b, int64_t rsb, int64_t csb, double beta,
             double *c, int64_t rsc, int64_t csc,
             const double *bias, int act, double slope, int nthreads);

/* Run one micro-kernel call on already-packed panels (for tests comparing
 * an architecture's kernel against the reference kernel): a is an mr x k
 * panel (k columns of mr values), b a k x nr panel (k rows of nr values),
 * c an mr x nr tile with row stride rsc and unit column stride. */
int fm_sgemm_ukr_call(int arch, int64_t k, const float *a, const float *b,
                      float *c, int64_t rsc, float alpha, float beta,
                      const float *bias, int act, float slope);
int fm_dgemm_ukr_call(int arch, int64_t k, const double *a, const double *b,
                      double *c, int64_t rsc, double alpha, double beta,
                      const double *bias, int act, double slope);

/* Run one call of an architecture's general kernel (mi <= mr rows, np = 1 or
 * 2 B panels, A[i, p] = a[i*ars + p*acs]; see kernels/ukernel.h), for tests:
 * c is mi x np*nr with row stride rsc. FM_ERR_ARG if the architecture has no
 * general kernel for the dtype. */
int fm_sgemm_gen_call(int arch, int mi, int np, int64_t k, const float *a, int64_t ars,
                      int64_t acs, const float *b, float *c, int64_t rsc, float alpha,
                      float beta, const float *bias, int act, float slope);
int fm_dgemm_gen_call(int arch, int mi, int np, int64_t k, const double *a, int64_t ars,
                      int64_t acs, const double *b, double *c, int64_t rsc, double alpha,
                      double beta, const double *bias, int act, double slope);

#ifdef __cplusplus
}
#endif
#endif
