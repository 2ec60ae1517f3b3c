/* GEMM configuration tables: one per dtype and architecture.
 *
 * Design: as in BLIS, a table holds the micro-kernel pointer and its register
 * block (MR x NR) with the cache blocks it is tuned for:
 *   KC: the K block; every tile of C is loaded, updated and stored once per
 *       K block, so a long KC spreads that fixed cost (and the per-tile call)
 *       over more FMAs;
 *   MC: the rows of A one thread works through while the B block is reused:
 *       MC x KC of A stays in the (private) L2;
 *   NC: the packed B block KC x NC lives in the (shared) L3.
 * The AVX2 figures were tuned on AMD Zen 3 (32 KiB L1d, 512 KiB L2 per core,
 * 32 MiB L3). BLIS's Zen figures (KC = 256, MC = 144, NC = 4080) keep a
 * B micro-panel in L1; measured here, KC = 1024 with MC = 48 and NC = 1024
 * (float64: MC = 24) is faster although a 1024 x 16 B micro-panel (64 KiB)
 * no longer fits in L1: the kernel needs ~15 bytes per cycle from L2, well
 * within its bandwidth, and a tile's fixed cost is paid once per 1024 k
 * steps instead of 256. Best of several runs, 1 thread, float32: 1024^3
 * 88.7 -> 95-96 GFLOP/s; 128x784x256 (x @ W1) 86.9 -> 90-92; float64 1024^3
 * 46.4 -> 47.7; 2 threads float64 128x784x256 76.7 -> 82.1.
 * FASTMLP_GEMM_MC/KC/NC override them for tuning experiments (rounded to the
 * register block); results then differ in the last bits because KC fixes the
 * summation blocking.
 */
#include <stdlib.h>
#include "gemm.h"

/* Largest m that takes the small-m kernels (no packing; gemm_impl.h),
 * measured against the blocked path on Zen 3 (benchmarks/bench_gemm.py
 * GemmSmallM), float32 784x256: AVX2 m=1 ~15 us against ~60 us, m=8 ~55
 * against ~95 us, about even at m=12, blocked ahead from m~16-24; the
 * reference kernels: the small-m one is 5-10x faster than the blocked one up
 * to m=64 at least. FASTMLP_GEMM_SMALLM overrides both (0 = never); results
 * are bitwise the same either way. */
#define FM_SMALLM_MAX_REF 16
#define FM_SMALLM_MAX_AVX2 8

/* Designated initializers: a field left out is NULL / 0 (no such kernel). */
static fm_sgemm_cfg fm_s_tables[FM_ARCH_COUNT] = {
    {.name = "ref sgemm 6x16", .arch = FM_ARCH_REF, .mr = 6, .nr = 16, .mc = 48,
     .kc = FM_GEMM_KBLOCK, .nc = 1024, .ukr = fm_sgemm_ref_6x16, .gen = fm_sgemm_ref_gen16,
     .smallm = fm_sgemm_smallm_ref, .smallm_max = FM_SMALLM_MAX_REF},
#ifdef FM_BUILD_AVX2
    {.name = "avx2 sgemm 6x16", .arch = FM_ARCH_AVX2, .mr = 6, .nr = 16, .mc = 48,
     .kc = FM_GEMM_KBLOCK, .nc = 1024, .ukr = fm_sgemm_avx2_6x16, .gen = fm_sgemm_avx2_gen16,
     .pack_bt = fm_spack_b16t_avx2, .pack_bn = fm_spack_b16n_avx2,
     .pack_at = fm_spack_at6_avx2, .smallm = fm_sgemm_smallm_avx2,
     .smallm_max = FM_SMALLM_MAX_AVX2},
#else
    {.name = "avx2 sgemm 6x16", .arch = FM_ARCH_AVX2, .mr = 6, .nr = 16, .mc = 48,
     .kc = FM_GEMM_KBLOCK, .nc = 1024},
#endif
#ifdef FM_BUILD_AVX512
    /* The small-m path reuses the AVX2 kernels: same bits (ukernel.h), and
     * it is bound by streaming B, not by the vector width. */
    {.name = "avx512 sgemm 12x32", .arch = FM_ARCH_AVX512, .mr = 12, .nr = 32, .mc = 48,
     .kc = FM_GEMM_KBLOCK, .nc = 1024, .ukr = fm_sgemm_avx512_12x32,
     .gen = fm_sgemm_avx512_gen32, .smallm = fm_sgemm_smallm_avx2,
     .smallm_max = FM_SMALLM_MAX_AVX2},
#else
    {.name = "avx512 sgemm 12x32", .arch = FM_ARCH_AVX512, .mr = 12, .nr = 32, .mc = 48,
     .kc = FM_GEMM_KBLOCK, .nc = 1024},
#endif
};

static fm_dgemm_cfg fm_d_tables[FM_ARCH_COUNT] = {
    {.name = "ref dgemm 6x8", .arch = FM_ARCH_REF, .mr = 6, .nr = 8, .mc = 24,
     .kc = FM_GEMM_KBLOCK, .nc = 1024, .ukr = fm_dgemm_ref_6x8, .gen = fm_dgemm_ref_gen8,
     .smallm = fm_dgemm_smallm_ref, .smallm_max = FM_SMALLM_MAX_REF},
#ifdef FM_BUILD_AVX2
    {.name = "avx2 dgemm 6x8", .arch = FM_ARCH_AVX2, .mr = 6, .nr = 8, .mc = 24,
     .kc = FM_GEMM_KBLOCK, .nc = 1024, .ukr = fm_dgemm_avx2_6x8, .gen = fm_dgemm_avx2_gen8,
     .pack_bt = fm_dpack_b8t_avx2,
     .smallm = fm_dgemm_smallm_avx2, .smallm_max = FM_SMALLM_MAX_AVX2},
#else
    {.name = "avx2 dgemm 6x8", .arch = FM_ARCH_AVX2, .mr = 6, .nr = 8, .mc = 24,
     .kc = FM_GEMM_KBLOCK, .nc = 1024},
#endif
#ifdef FM_BUILD_AVX512
    {.name = "avx512 dgemm 12x16", .arch = FM_ARCH_AVX512, .mr = 12, .nr = 16, .mc = 24,
     .kc = FM_GEMM_KBLOCK, .nc = 1024, .ukr = fm_dgemm_avx512_12x16,
     .gen = fm_dgemm_avx512_gen16, .smallm = fm_dgemm_smallm_avx2,
     .smallm_max = FM_SMALLM_MAX_AVX2},
#else
    {.name = "avx512 dgemm 12x16", .arch = FM_ARCH_AVX512, .mr = 12, .nr = 16, .mc = 24,
     .kc = FM_GEMM_KBLOCK, .nc = 1024},
#endif
};

static int64_t fm_env_block(const char *name, int64_t dflt, int64_t unit) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    long long v = atoll(s);
    if (v < unit || v > (1 << 20)) return dflt;
    return (int64_t)((v + unit - 1) / unit * unit);
}

static int64_t fm_env_int(const char *name, int64_t dflt, int64_t hi) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    long long v = atoll(s);
    return v < 0 || v > hi ? dflt : (int64_t)v;
}

/* Runs once when the extension is loaded (before any other thread can call
 * in), so the tables are read-only afterwards. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((constructor))
#endif
static void fm_tables_init(void) {
    static int done = 0;
    if (done) return;
    for (int a = 0; a < FM_ARCH_COUNT; a++) {
        fm_sgemm_cfg *s = &fm_s_tables[a];
        s->mc = fm_env_block("FASTMLP_GEMM_MC", s->mc, s->mr);
        s->kc = fm_env_block("FASTMLP_GEMM_KC", s->kc, 1);
        s->nc = fm_env_block("FASTMLP_GEMM_NC", s->nc, s->nr);
        fm_dgemm_cfg *d = &fm_d_tables[a];
        d->mc = fm_env_block("FASTMLP_GEMM_MC", d->mc, d->mr);
        d->kc = fm_env_block("FASTMLP_GEMM_KC", d->kc, 1);
        d->nc = fm_env_block("FASTMLP_GEMM_NC", d->nc, d->nr);
        s->smallm_max = fm_env_int("FASTMLP_GEMM_SMALLM", s->smallm_max, 1 << 20);
        d->smallm_max = fm_env_int("FASTMLP_GEMM_SMALLM", d->smallm_max, 1 << 20);
    }
    done = 1;
}

static int fm_resolve(int arch) {
    if (arch == FM_ARCH_AUTO) return fm_arch_best();
    if (arch < 0 || arch >= FM_ARCH_COUNT || !fm_arch_usable(arch)) return -1;
    return arch;
}

const fm_sgemm_cfg *fm_sgemm_cfg_get(int arch) {
    arch = fm_resolve(arch);
    if (arch < 0) return NULL;
    fm_tables_init();
    return &fm_s_tables[arch];
}

const fm_dgemm_cfg *fm_dgemm_cfg_get(int arch) {
    arch = fm_resolve(arch);
    if (arch < 0) return NULL;
    fm_tables_init();
    return &fm_d_tables[arch];
}

int fm_gemm_info_get(int dtype_is_double, int arch, fm_gemm_info *out) {
    if (dtype_is_double) {
        const fm_dgemm_cfg *c = fm_dgemm_cfg_get(arch);
        if (!c) return FM_ERR_ARG;
        out->name = c->name; out->arch = c->arch; out->mr = c->mr; out->nr = c->nr;
        out->mc = c->mc; out->kc = c->kc; out->nc = c->nc;
        out->smallm = c->smallm ? c->smallm_max : 0;
        out->hot_a_bytes = FM_GEMM_HOT_A_BYTES;
    } else {
        const fm_sgemm_cfg *c = fm_sgemm_cfg_get(arch);
        if (!c) return FM_ERR_ARG;
        out->name = c->name; out->arch = c->arch; out->mr = c->mr; out->nr = c->nr;
        out->mc = c->mc; out->kc = c->kc; out->nc = c->nc;
        out->smallm = c->smallm ? c->smallm_max : 0;
        out->hot_a_bytes = FM_GEMM_HOT_A_BYTES;
    }
    return FM_OK;
}
