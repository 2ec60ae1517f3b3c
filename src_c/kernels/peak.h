/* FMA throughput probes: the hardware limit that benchmarks quote GFLOP/s
 * against (kernels/<isa>/peak_<isa>.c, driven by peak.c).
 *
 * Each probe runs `iters` steps of FM_PEAK_CHAINS independent vector FMA
 * chains on the calling thread and returns a value derived from every chain
 * (so the compiler cannot drop the work). One step is FM_PEAK_CHAINS FMAs of
 * the ISA's widest vector. 12 chains cover latency x pipes of current cores
 * (4-cycle FMA latency x 2 pipes = 8 in flight on Zen 3/4/5 and Skylake-SP
 * through Granite Rapids) with room to spare. */
#ifndef FM_KERNELS_PEAK_H
#define FM_KERNELS_PEAK_H

#define FM_PEAK_CHAINS 12

double fm_peak_loop_ref_s(long iters);     /* scalar float mul + add (no FMA in the baseline ISA) */
double fm_peak_loop_ref_d(long iters);
double fm_peak_loop_avx2_s(long iters);    /* 8 float lanes per FMA */
double fm_peak_loop_avx2_d(long iters);    /* 4 double lanes */
double fm_peak_loop_avx512_s(long iters);  /* 16 float lanes */
double fm_peak_loop_avx512_d(long iters);  /* 8 double lanes */

#endif
