/* Internal declarations of the GEMM engine (not part of the public API). */
#ifndef FM_GEMM_INTERNAL_H
#define FM_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "../fastmlp.h"
#include "../kernels/ukernel.h"

/* One configuration per dtype and architecture: the micro-kernel and the
 * blocking it is tuned for (config.c). */
typedef struct {
    const char *name;
    int arch;
    int mr, nr;
    int64_t mc, kc, nc;
    fm_sgemm_ukr ukr;
    fm_spack_a6 pack_a6;     /* optional fast packer for row-major A (mr == 6) */
    fm_spack_b16t pack_bt;   /* optional fast packer for transposed B (nr == 16) */
    fm_sgemm_smallm smallm;  /* unpacked kernel for few rows (ukernel.h) */
    int64_t smallm_max;      /* m <= this (and B with unit column stride) uses it */
} fm_sgemm_cfg;

typedef struct {
    const char *name;
    int arch;
    int mr, nr;
    int64_t mc, kc, nc;
    fm_dgemm_ukr ukr;
    void (*pack_a6)(int64_t kc, const double *a, int64_t rsa, double *dst); /* optional */
    void (*pack_bt)(int64_t kc, const double *b, int64_t csb, double *dst);  /* optional */
    fm_dgemm_smallm smallm;
    int64_t smallm_max;
} fm_dgemm_cfg;

const fm_sgemm_cfg *fm_sgemm_cfg_get(int arch); /* NULL if arch unusable */
const fm_dgemm_cfg *fm_dgemm_cfg_get(int arch);

void *fm_workspace_get(size_t bytes, int *owned);
void fm_workspace_release(void *p, int owned);

/* Below this many multiply-adds per thread a GEMM uses fewer threads: the
 * cost of waking a thread (a few microseconds on an idle machine, a scheduler
 * time slice -- milliseconds -- when another process holds the other core)
 * must stay small against the work it gets: 2^20 MACs are ~25 us of one
 * core's FMA peak. Depends only on the problem size, never on the thread
 * count requested, and does not affect results (see gemm_impl.h). */
#define FM_GEMM_MIN_MACS_PER_THREAD ((int64_t)1 << 20)

/* The small-m path (gemm_impl.h) is bound by streaming B for one row and by
 * FMAs for four: a second thread pays off once each thread gets this many
 * bytes of B or this many multiply-adds (measured on Zen 3: with 2 threads,
 * 1x256x256 float32 2.8 us against 3.7 us, 1x256x128 no gain; starting
 * the team costs ~0.5-1 us while its threads still spin). Problem size only,
 * never results. */
#define FM_SMALLM_MIN_BYTES_PER_THREAD ((int64_t)128 << 10)
#define FM_SMALLM_MIN_MACS_PER_THREAD ((int64_t)1 << 17)

#endif
