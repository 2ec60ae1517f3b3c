/* The vector FMA probe loop, written once for every x86 vector width
 * (included by kernels/avx2/peak_avx2.c and kernels/avx512/peak_avx512.c,
 * each compiled with its ISA's flags).
 *
 * FM_PEAK_CHAINS accumulators, each updated acc = acc * a + b with a just
 * below 1: the values converge to b / (1 - a) and stay normal (a denormal
 * would slow some cores down and understate the peak). */
#ifndef FM_KERNELS_PEAK_TMPL_H
#define FM_KERNELS_PEAK_TMPL_H

#include "peak.h"

#define FM_PEAK_VEC(name, V, T, set1, fmadd, add, store, lanes)                  \
    double name(long iters) {                                                    \
        V acc[FM_PEAK_CHAINS];                                                   \
        const V a = set1((T)0.999999), b = set1((T)1e-7);                        \
        for (int c = 0; c < FM_PEAK_CHAINS; c++) acc[c] = set1((T)c);            \
        for (long i = 0; i < iters; i++)                                         \
            for (int c = 0; c < FM_PEAK_CHAINS; c++) acc[c] = fmadd(acc[c], a, b); \
        for (int c = 1; c < FM_PEAK_CHAINS; c++) acc[0] = add(acc[0], acc[c]);   \
        T out[lanes];                                                            \
        store(out, acc[0]);                                                      \
        double s = 0;                                                            \
        for (int l = 0; l < lanes; l++) s += out[l];                             \
        return s;                                                                \
    }

#endif
