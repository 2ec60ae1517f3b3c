/* FMA peak probe, portable C (see kernels/peak.h).
 *
 * Design: the baseline ISA has no fused multiply-add, so each step is a
 * multiply and an add per lane (2 flops), written over arrays of 4 lanes that
 * the compiler may keep in SSE registers. Used only where no vector ISA of
 * fastmlp's is usable; the GEMM then runs the reference kernels. */
#include "../peak.h"

#define FM_PEAK_REF(name, T)                                                     \
    double name(long iters) {                                                    \
        T acc[FM_PEAK_CHAINS][4];                                                \
        const T a = (T)0.999999, b = (T)1e-7;                                    \
        for (int c = 0; c < FM_PEAK_CHAINS; c++)                                 \
            for (int l = 0; l < 4; l++) acc[c][l] = (T)(c + l);                  \
        for (long i = 0; i < iters; i++)                                         \
            for (int c = 0; c < FM_PEAK_CHAINS; c++)                             \
                for (int l = 0; l < 4; l++) acc[c][l] = acc[c][l] * a + b;       \
        double s = 0;                                                            \
        for (int c = 0; c < FM_PEAK_CHAINS; c++)                                 \
            for (int l = 0; l < 4; l++) s += acc[c][l];                          \
        return s;                                                                \
    }

FM_PEAK_REF(fm_peak_loop_ref_s, float)
FM_PEAK_REF(fm_peak_loop_ref_d, double)
