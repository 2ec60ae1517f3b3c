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
    fm_spack_b16t pack_bt;   /* optional fast packer for transposed B (nr == 16) */
    fm_sgemm_smallm smallm;  /* unpacked kernel for few rows (ukernel.h) */
    int64_t smallm_max;      /* m <= this (and B with unit column stride) uses it */
    fm_spack_b16n pack_bn;   /* optional fast packer for row-major B (nr == 16) */
    fm_spack_at6 pack_at;    /* optional fast packer for column-major A (mr == 6) */
    fm_sgemm_gen gen;        /* optional general kernel: M edges, row-major A in place */
} fm_sgemm_cfg;

typedef struct {
    const char *name;
    int arch;
    int mr, nr;
    int64_t mc, kc, nc;
    fm_dgemm_ukr ukr;
    void (*pack_bt)(int64_t kc, const double *b, int64_t csb, double *dst);  /* optional */
    fm_dgemm_smallm smallm;
    int64_t smallm_max;
    void (*pack_bn)(int64_t kc, int64_t npan, const double *b, int64_t rsb, double *dst);
    void (*pack_at)(int64_t kc, int64_t npan, const double *a, int64_t csa, double *dst);
    fm_dgemm_gen gen;
} fm_dgemm_cfg;

/* How a product is computed (gemm_impl.h prepare()). */
enum { FM_PATH_NONE = 0, FM_PATH_SCALE = 1, FM_PATH_SMALLM = 2, FM_PATH_BLOCKED = 3 };

/* One product as each thread sees it (gemm_impl.h): C = act(alpha A B +
 * beta C + bias), with the K block KC the path sums in. */
typedef struct {
    int64_t m, n, k, KC;
    float alpha;
    const float *a;
    int64_t rsa, csa;
    const float *b;
    int64_t rsb, csb;
    float beta;
    float *c;
    int64_t rsc, csc;
    const float *bias;
    int act;
    float slope;
} fm_s_prob;

typedef struct {
    int64_t m, n, k, KC;
    double alpha;
    const double *a;
    int64_t rsa, csa;
    const double *b;
    int64_t rsb, csb;
    double beta;
    double *c;
    int64_t rsc, csc;
    const double *bias;
    int act;
    double slope;
} fm_d_prob;

/* A product prepared for a team of `nt` OpenMP threads (fm_?gemm_team_prepare):
 * drivers that run a sequence of kernels inside one parallel region (e.g.
 * src_c/nn/mlp.c) prepare each product once, give the team one shared
 * workspace of the largest ws_bytes, and have every thread call
 * fm_?gemm_team(call, tid, ws) between barriers. Results are bitwise those
 * of fm_?gemm. `used` threads of the team get work; the rest return at once;
 * `solo` is how many fm_?gemm would start for the product alone (a driver
 * sizes its team by that: a team is worth starting only for work that would
 * be worth it alone).
 * ws_bytes also covers the call made with nt = 1 and used = 1 instead (the
 * fallback of a driver that gets a smaller team than it asked for). */
typedef struct {
    const fm_sgemm_cfg *cfg;
    int path, nt, used, solo;
    size_t ws_bytes;
    fm_s_prob prob;
} fm_s_gemm_call;

typedef struct {
    const fm_dgemm_cfg *cfg;
    int path, nt, used, solo;
    size_t ws_bytes;
    fm_d_prob prob;
} fm_d_gemm_call;

int fm_s_gemm_team_prepare(int arch, int64_t m, int64_t n, int64_t k, float alpha,
                           const float *a, int64_t rsa, int64_t csa, const float *b,
                           int64_t rsb, int64_t csb, float beta, float *c, int64_t rsc,
                           int64_t csc, const float *bias, int act, float slope, int nt,
                           fm_s_gemm_call *call);
int fm_d_gemm_team_prepare(int arch, int64_t m, int64_t n, int64_t k, double alpha,
                           const double *a, int64_t rsa, int64_t csa, const double *b,
                           int64_t rsb, int64_t csb, double beta, double *c, int64_t rsc,
                           int64_t csc, const double *bias, int act, double slope, int nt,
                           fm_d_gemm_call *call);
void fm_s_gemm_team(const fm_s_gemm_call *call, int tid, void *ws);
void fm_d_gemm_team(const fm_d_gemm_call *call, int tid, void *ws);

const fm_sgemm_cfg *fm_sgemm_cfg_get(int arch); /* NULL if arch unusable */
const fm_dgemm_cfg *fm_dgemm_cfg_get(int arch);

void *fm_workspace_get(size_t bytes, int *owned);
void fm_workspace_release(void *p, int owned);

/* The K block of the results contract: every element of C is summed in K
 * blocks of (about) this many steps -- k is cut into ceil(k / FM_GEMM_KBLOCK)
 * balanced blocks (gemm_impl.h prepare()) -- and the partial sum is folded
 * into C at the end of each. It is the same in every table, so every
 * architecture (reference, AVX2, AVX-512) and every machine gives the same
 * bits; the cache blocks MC and NC never change a result.
 * FASTMLP_GEMM_KC overrides it, for experiments only (results then differ
 * from the contract in the last bits). */
#define FM_GEMM_KBLOCK 1024

/* Below this many multiply-adds per thread a GEMM uses fewer threads: the
 * cost of waking a thread (a few microseconds on an idle machine, a scheduler
 * time slice -- milliseconds -- when another process holds the other core)
 * must stay small against the work it gets: 2^20 MACs are ~25 us of one
 * core's FMA peak. Depends only on the problem size, never on the thread
 * count requested, and does not affect results (see gemm_impl.h). */
#define FM_GEMM_MIN_MACS_PER_THREAD ((int64_t)1 << 20)

/* The same inside a team that is already running (fm_?gemm_team, used by the
 * whole-step drivers of src_c/nn/mlp.c): a thread there costs a barrier, not
 * a wake-up, so products down to ~2 us of work are split (784-256-128-10
 * training step, batch 128, 2 threads: ~2% faster than with 2^20). */
#define FM_GEMM_TEAM_MIN_MACS_PER_THREAD ((int64_t)1 << 16)

/* The small-m path (gemm_impl.h) is bound by streaming B for one row and by
 * FMAs for four: a second thread pays off once each thread gets this many
 * bytes of B or this many multiply-adds (measured on Zen 3: with 2 threads,
 * 1x256x256 float32 2.8 us against 3.7 us, 1x256x128 no gain; starting
 * the team costs ~0.5-1 us while its threads still spin). Problem size only,
 * never results. */
/* The blocked path packs B panels just before use ("hot", gemm_impl.h) when
 * one thread's rows of A take at most this many bytes per K block: they are
 * then one block (packed, or read in place) that stays in L2 (or streams from
 * L3) while each pair of B panels is used. 784-256 layer, batch 128: x is
 * 400 KB. Order only, never results. */
#define FM_GEMM_HOT_A_BYTES ((int64_t)512 << 10)

#define FM_SMALLM_MIN_BYTES_PER_THREAD ((int64_t)128 << 10)
#define FM_SMALLM_MIN_MACS_PER_THREAD ((int64_t)1 << 17)

#endif
