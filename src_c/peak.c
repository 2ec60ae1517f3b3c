/* Measured FMA peak: the limit benchmarks quote GFLOP/s against.
 *
 * Design: a nominal clock times a nominal width is wrong both ways (turbo
 * runs above the listed clock; Zen 4's AVX-512 is not twice its AVX2), so
 * the peak is measured: every thread of an OpenMP team runs the ISA's probe
 * loop (kernels/<isa>/peak_<isa>.c) between two barriers, and the flops of
 * all threads are divided by the wall time between the barriers. The caller
 * repeats and keeps the best (fastmlp/_bench.py caches it per process). */
#ifdef _OPENMP
#include <omp.h>
#endif
#include <time.h>

#include "fastmlp.h"
#include "kernels/peak.h"

static double fm_now(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

/* Where the probes' results go, so the compiler must compute them. */
static volatile double fm_peak_sink;

static double fm_peak_loop(int arch, int dbl, long iters) {
    switch (arch) {
#if defined(__x86_64__) || defined(_M_X64)
    case FM_ARCH_AVX512: return dbl ? fm_peak_loop_avx512_d(iters) : fm_peak_loop_avx512_s(iters);
    case FM_ARCH_AVX2: return dbl ? fm_peak_loop_avx2_d(iters) : fm_peak_loop_avx2_s(iters);
#endif
    default: return dbl ? fm_peak_loop_ref_d(iters) : fm_peak_loop_ref_s(iters);
    }
}

int fm_peak_lanes(int arch, int dbl) {
    switch (arch) {
    case FM_ARCH_AVX512: return dbl ? 8 : 16;
    case FM_ARCH_AVX2: return dbl ? 4 : 8;
    default: return 4;   /* the reference probe's 4-lane arrays */
    }
}

double fm_peak_gflops(int arch, int dbl, int nthreads, long iters) {
    if (arch < 0 || arch >= FM_ARCH_COUNT || !fm_arch_usable(arch) || nthreads < 1 || iters < 1)
        return -1.0;
    /* per step: FM_PEAK_CHAINS vectors x lanes x 2 flops (FMA, or mul + add) */
    const double flops_per_thread = (double)iters * FM_PEAK_CHAINS * fm_peak_lanes(arch, dbl) * 2.0;
    double t0 = 0, t1 = 0;
    int team = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
    {
#pragma omp single
        team = omp_get_num_threads();
#pragma omp barrier
#pragma omp master
        t0 = fm_now();
#pragma omp barrier
        double s = fm_peak_loop(arch, dbl, iters);
#pragma omp atomic
        fm_peak_sink += s;
#pragma omp barrier
#pragma omp master
        t1 = fm_now();
    }
#else
    (void)nthreads;
    t0 = fm_now();
    fm_peak_sink += fm_peak_loop(arch, dbl, iters);
    t1 = fm_now();
#endif
    const double dt = t1 - t0;
    return dt > 0 ? flops_per_thread * team / dt / 1e9 : -1.0;
}
