/* GEMM driver template, included by gemm.c once per dtype with
 *   FT      element type (float / double)
 *   FM_X(n) name mangler (fm_s_##n / fm_d_##n)
 *   FM_PUB(n) public name mangler (fm_sgemm_##n / fm_dgemm_##n)
 *   CFG     configuration table type, UKR_ARGS micro-kernel argument type
 *   ACT_SCALAR scalar activation (epilogue.h)
 *
 * Design (Goto & van de Geijn; BLIS's five loops around the micro-kernel):
 *
 *   for jc in N step NC:                      B block KC x NC -> L3
 *     for pc in K step KC:
 *       pack B block into NR-wide micro-panels (shared by the threads)
 *       for ic in (this thread's rows) step MC: A block MC x KC -> L2
 *         pack A block into MR-tall micro-panels (private to the thread)
 *         for jr in (this thread's columns) step NR:  B micro-panel in L1
 *           for ir in MC step MR:
 *             micro-kernel(A micro-panel, B micro-panel) -> C tile
 *
 * Threads: the C matrix is split into a tm x tn grid of thread blocks along
 * M and N only (never K), on micro-tile boundaries fixed by the matrix origin.
 * So every element of C gets exactly the same sequence of FMAs (k in order,
 * KC blocking fixed by the table) whatever the number of threads: results
 * are bitwise identical for any thread count. The tm threads that share a
 * column range pack its B panels together (two barriers per K block) when
 * the problem is short; otherwise, and always when tm == 1, every thread
 * packs the panels it uses itself and no thread ever waits for another.
 *
 * Strides: A, B and C are read and written through row and column strides in
 * elements, so transposed, Fortran-ordered, sliced and broadcast (stride 0)
 * arrays are packed in place with no extra copy.
 *
 * With a general kernel in the table (cfg->gen, kernels/ukernel.h):
 *   - a row-major A (unit column stride: x in x @ W) is not packed at all;
 *     the kernel reads its six rows in place;
 *   - the M edge (m % MR rows at the end of a thread's range) is computed as
 *     a thin tile of exactly those rows, two B panels at a time, instead of
 *     a zero-padded MR-row tile through a temporary (m = 128 wasted 3%).
 * Neither changes any element's arithmetic (the general kernel gives bitwise
 * the packed kernel's values), so results stay independent of the path and
 * of the number of threads.
 *
 * Hot B panels (plan field hot): when a thread's rows of A, one K block
 * deep, fit in FM_GEMM_HOT_A_BYTES (the MLP training shapes), they are a
 * single A block (packed once, or read in place), and the loops above turn
 * into: for each pair of B panels, pack it into the start of the buffer and
 * run all the thread's rows against it while it is in L1/L2. Column threads
 * then split (panel, row tile) units rather than whole panels, so an odd
 * panel count is shared by rows. Only the order of whole tiles changes.
 */

/* ---- packing ---- */

/* Pack rows [0, mc) x columns [0, kc) of A into MR-tall micro-panels: panel q
 * holds, for each p, the MR values A[q*MR + i, p]; rows past mc are zero. */
static void FM_X(pack_a)(const CFG *cfg, int64_t mc, int64_t kc, const FT *a, int64_t rsa,
                         int64_t csa, FT *restrict dst) {
    const int mr = cfg->mr;
    if (rsa == 1 && mc >= mr) {
        /* Column-major A (e.g. x.T of a C-ordered x): a panel's MR values
         * for one p are contiguous in column p. Fill one panel at a time, so
         * the writes are one sequential stream; the reads (MR values from
         * each of kc columns) share lines with the next panels' and come
         * from L1 then. (Column by column instead -- scattering MR values
         * into every panel per column -- was ~5% of x.T @ g.) */
        const int64_t mfull = mc / mr * mr;
        if (cfg->pack_at) {
            cfg->pack_at(kc, mfull / mr, a, csa, dst);
        } else {
            for (int64_t i0 = 0; i0 < mfull; i0 += mr) {
                const FT *col = a + i0;
                FT *d = dst + i0 * kc;
                if (mr == 6) {
                    /* Constant MR: six plain moves, not a memcpy call per p. */
                    for (int64_t p = 0; p < kc; p++, d += 6, col += csa)
                        for (int i = 0; i < 6; i++) d[i] = col[i];
                } else {
                    for (int64_t p = 0; p < kc; p++, d += mr, col += csa)
                        for (int i = 0; i < mr; i++) d[i] = col[i];
                }
            }
        }
        if (mfull == mc) return;
        a += mfull * rsa;
        dst += mfull * kc;
        mc -= mfull;
    }
    for (int64_t i0 = 0; i0 < mc; i0 += mr) {
        const int64_t mi = mc - i0 < mr ? mc - i0 : mr;
        const FT *ap = a + i0 * rsa;
        if (mi == 6 && mr == 6 && csa == 1) {
            /* Row-major A, the common case: six sequential read streams and
             * contiguous writes (constant MR lets the compiler keep all six
             * row pointers in registers). */
            const FT *r0 = ap, *r1 = ap + rsa, *r2 = ap + 2 * rsa, *r3 = ap + 3 * rsa,
                     *r4 = ap + 4 * rsa, *r5 = ap + 5 * rsa;
            for (int64_t p = 0; p < kc; p++) {
                FT *d = dst + p * 6;
                d[0] = r0[p]; d[1] = r1[p]; d[2] = r2[p];
                d[3] = r3[p]; d[4] = r4[p]; d[5] = r5[p];
            }
        } else if (mi == mr && csa == 1) {
            for (int i = 0; i < mr; i++) {
                const FT *row = ap + i * rsa;
                for (int64_t p = 0; p < kc; p++) dst[p * mr + i] = row[p];
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                int i = 0;
                for (; i < mi; i++) dst[p * mr + i] = ap[i * rsa + p * csa];
                for (; i < mr; i++) dst[p * mr + i] = 0;
            }
        }
        dst += (int64_t)mr * kc;
    }
}

/* Pack rows [0, kc) of B, columns [j0, j1) (j0 a multiple of nr; j1 <= nc),
 * into NR-wide micro-panels: panel q holds, for each p, the NR values
 * B[p, q*NR + j]; columns past nc are zero. `dst` points at panel j0/nr. */
static void FM_X(pack_b)(const CFG *cfg, int64_t j0, int64_t j1, int64_t nc, int64_t kc,
                         const FT *b, int64_t rsb, int64_t csb, FT *restrict dst) {
    const int nr = cfg->nr;
    const int64_t jfull = j0 + (j1 - j0) / nr * nr;  /* end of the full panels */
    if (csb == 1 && jfull > j0 && cfg->pack_bn) {
        cfg->pack_bn(kc, (jfull - j0) / nr, b + j0, rsb, dst);
    } else if (csb == 1 && jfull > j0) {
        /* Row-major B: walk each row once, left to right, so the reads are
         * sequential (reading one 64-byte panel row per B row would touch a
         * new page per row and defeat the hardware prefetcher). */
        for (int64_t p = 0; p < kc; p++) {
            const FT *row = b + p * rsb;
            FT *d = dst + p * nr;
            if (nr == 16) {
                for (int64_t j = j0; j < jfull; j += 16, d += 16 * kc)
                    for (int t = 0; t < 16; t++) d[t] = row[j + t];
            } else if (nr == 8) {
                for (int64_t j = j0; j < jfull; j += 8, d += 8 * kc)
                    for (int t = 0; t < 8; t++) d[t] = row[j + t];
            } else {
                for (int64_t j = j0; j < jfull; j += nr, d += nr * kc)
                    for (int t = 0; t < nr; t++) d[t] = row[j + t];
            }
        }
    } else if (rsb == 1 && cfg->pack_bt) {
        for (int64_t j = j0; j < jfull; j += nr) cfg->pack_bt(kc, b + j * csb, csb, dst + (j - j0) * kc);
    } else if (rsb == 1) {
        /* Transposed B (e.g. W.T of a C-ordered W): each column is contiguous. */
        for (int64_t j = j0; j < jfull; j++) {
            const FT *col = b + j * csb;
            FT *d = dst + (j - j0) / nr * nr * kc + (j - j0) % nr;
            for (int64_t p = 0; p < kc; p++) d[p * nr] = col[p];
        }
    } else {
        for (int64_t j = j0; j < jfull; j += nr) {
            FT *d = dst + (j - j0) * kc;
            for (int64_t p = 0; p < kc; p++)
                for (int t = 0; t < nr; t++) d[p * nr + t] = b[p * rsb + (j + t) * csb];
        }
    }
    if (jfull < j1 || (j1 == nc && jfull < nc)) {
        /* The last, partial panel: zero-padded to NR. */
        const int64_t nj = nc - jfull;
        FT *d = dst + (jfull - j0) * kc;
        for (int64_t p = 0; p < kc; p++) {
            int t = 0;
            for (; t < nj; t++) d[p * nr + t] = b[p * rsb + (jfull + t) * csb];
            for (; t < nr; t++) d[p * nr + t] = 0;
        }
    }
}

/* C = act(beta * C + bias) when there is nothing to multiply (k == 0 or
 * alpha == 0). beta == 0 does not read C. */
static void FM_X(scale_only)(int64_t m, int64_t n, FT beta, FT *c, int64_t rsc, int64_t csc,
                             const FT *bias, int act, FT slope) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            FT *cij = c + i * rsc + j * csc;
            FT v = beta != 0 ? beta * *cij : (FT)0;
            if (bias) v += bias[j];
            *cij = ACT_SCALAR(v, act, slope);
        }
}

/* A tile that sticks out of C (mi < MR rows for the packed kernel, nj
 * columns short of its width) or a C without unit column stride: computed
 * into an aligned temporary, then copied out. use_gen = 0: the packed kernel
 * on the MR-row panel a (it writes all MR rows of the temporary; the arithmetic
 * per element is that of an interior tile); use_gen = 1: the general kernel,
 * mi rows, np panels, A[i, p] at a[i * ars + p * acs]. Out of line: its frame
 * is large, and the interior tiles' calls below must stay plain calls. */
static __attribute__((noinline)) void FM_X(tile_tmp)(const CFG *cfg, int use_gen, int64_t kc,
                                                     int mi, int np, const FT *a, int64_t ars,
                                                     int64_t acs, const FT *bp, FT *c,
                                                     int64_t rsc, int64_t csc, int64_t nj,
                                                     const UKR_ARGS *args) {
    const int w = np * cfg->nr, rows = use_gen ? mi : cfg->mr;
    FT ct[FM_MR_MAX * 2 * FM_NR_MAX] __attribute__((aligned(64)));
    FT bt[2 * FM_NR_MAX] __attribute__((aligned(64)));
    UKR_ARGS targs = *args;
    if (args->beta != 0) {
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < w; j++)
                ct[i * w + j] = (i < mi && j < nj) ? c[i * rsc + j * csc] : (FT)0;
    }
    if (args->bias) {
        for (int64_t j = 0; j < w; j++) bt[j] = j < nj ? args->bias[j] : (FT)0;
        targs.bias = bt;
    }
    if (use_gen) cfg->gen(mi, np, kc, a, ars, acs, bp, ct, w, &targs);
    else cfg->ukr(kc, a, bp, ct, w, &targs);
    for (int64_t i = 0; i < mi; i++)
        for (int64_t j = 0; j < nj; j++) c[i * rsc + j * csc] = ct[i * w + j];
}

/* One micro-tile from a packed A panel: a full tile with unit column stride
 * goes straight to the kernel (inline: at k = 128 a tile is ~800 cycles,
 * and a wrapper call per tile was 1-1.5% of x.T @ g), the rest through the
 * temporary. */
static inline __attribute__((always_inline)) void FM_X(tile)(
    const CFG *cfg, int64_t kc, const FT *ap, const FT *bp, FT *c, int64_t rsc, int64_t csc,
    int64_t mi, int64_t nj, const UKR_ARGS *args) {
    if (mi == cfg->mr && nj == cfg->nr && csc == 1) cfg->ukr(kc, ap, bp, c, rsc, args);
    else FM_X(tile_tmp)(cfg, 0, kc, (int)mi, 1, ap, 1, cfg->mr, bp, c, rsc, csc, nj, args);
}

/* The same through the general kernel (cfg->gen): mi <= MR rows, np B panels
 * side by side (np * NR columns, nj of them inside C), A[i, p] at
 * a[i * ars + p * acs]. */
static inline __attribute__((always_inline)) void FM_X(tile_gen)(
    const CFG *cfg, int64_t kc, int mi, int np, const FT *a, int64_t ars, int64_t acs,
    const FT *bp, FT *c, int64_t rsc, int64_t csc, int64_t nj, const UKR_ARGS *args) {
    if (nj == np * cfg->nr && csc == 1) cfg->gen(mi, np, kc, a, ars, acs, bp, c, rsc, args);
    else FM_X(tile_tmp)(cfg, 1, kc, mi, np, a, ars, acs, bp, c, rsc, csc, nj, args);
}

/* Split `count` items into `parts` nearly equal contiguous ranges. */
static inline void FM_X(split)(int64_t count, int parts, int idx, int64_t *lo, int64_t *hi) {
    *lo = count * idx / parts;
    *hi = count * (idx + 1) / parts;
}

/* How the work is split among threads, and the workspace it needs. */
typedef struct {
    int nt, tm, tn;      /* threads, as a tm x tn grid over (M, N) */
    int share_b;         /* a column group's tm threads pack its B panels together */
    int hot;             /* one A block per thread; B panels packed just before use */
    int64_t pan_grp;     /* B panels per column group and NC block */
    int64_t kc_max;
    size_t a_bytes, b_bytes, total;
} FM_X(plan);

/* The problem as each thread sees it, FM_X(prob), is declared in gemm.h. */

static void FM_X(make_plan)(FM_X(plan) *P, const CFG *cfg, int64_t m, int64_t n, int64_t k,
                            int64_t KC, int nthreads, int may_share, int64_t min_macs) {
    const int mr = cfg->mr, nr = cfg->nr;
    const int64_t MC = cfg->mc, NC = cfg->nc;
    const int64_t mp = (m + mr - 1) / mr, np = (n + nr - 1) / nr;

    /* Threads: enough work each, and a tm x tn grid that fits the tiles. */
    int64_t nt64 = nthreads < 1 ? 1 : nthreads;
    int64_t by_work = m * n * k / min_macs;
    if (by_work < 1) by_work = 1;
    if (nt64 > by_work) nt64 = by_work;
    if (nt64 > mp * np) nt64 = mp * np;
    int nt = (int)nt64, tm = 1, tn = 1;
    for (; nt > 1; nt--) {
        /* Per-thread traffic ~ k (m/tm + n/tn): pick the squarest blocks;
         * on ties prefer splitting M. */
        double best = -1.0;
        for (int t = 1; t <= nt; t++) {
            if (nt % t) continue;
            int u = nt / t;
            if (t > mp || u > np) continue;
            double cost = (double)m / t + (double)n / u;
            if (best < 0 || cost <= best) {
                best = cost;
                tm = t;
                tn = u;
            }
        }
        if (best >= 0) break;
    }
    if (nt <= 1) { nt = 1; tm = 1; tn = 1; }

    /* Workspace: B regions plus one A block per thread, 64-byte aligned. */
    const int64_t kc_max = k < KC ? k : KC;
    const int64_t nc_max = n < NC ? n : NC;
    const int64_t m_thr = ((mp + tm - 1) / tm) * mr;
    /* Each column group of threads gets its own region of the B buffer, so
     * groups never need to wait for each other: a group's panels change from
     * one jc/pc block to the next, and a shared layout would let one group
     * overwrite panels another group is still reading. */
    const int64_t pan_grp = ((nc_max + nr - 1) / nr + tn - 1) / tn;
    /* Sharing a column group's B panels among its tm threads costs two
     * barriers per K block; packing them privately costs each thread about
     * k*n extra element moves, ~0.3 cycle each against m*n*k/(16 nt) cycles
     * of FMAs, i.e. ~5 nt/m of the run time. Tall problems (m > 160 nt: under
     * 3%) pack privately and never wait for each other. */
    const int share_b = may_share && tm > 1 && m <= 160 * (int64_t)nt;
    /* Hot B panels (see run()): when a thread's rows of A, K block deep, fit
     * in FM_GEMM_HOT_A_BYTES they are a single A block, and B is private. */
    const int hot = !share_b && m_thr * kc_max * (int64_t)sizeof(FT) <= FM_GEMM_HOT_A_BYTES;
    const int64_t mc_max = hot || m_thr < MC ? m_thr : MC;
    const int n_bgroups = share_b ? tn : nt;
    const size_t b_elems = (size_t)(n_bgroups * pan_grp * nr * kc_max);
    const size_t a_elems = (size_t)(((mc_max + mr - 1) / mr) * mr * kc_max);
    P->nt = nt; P->tm = tm; P->tn = tn; P->share_b = share_b; P->hot = hot;
    P->pan_grp = pan_grp; P->kc_max = kc_max;
    P->b_bytes = (b_elems * sizeof(FT) + 63) / 64 * 64;
    P->a_bytes = (a_elems * sizeof(FT) + 63) / 64 * 64;
    P->total = P->b_bytes + (size_t)nt * P->a_bytes;
}

/* The tiles of one block of rows [0, mc) of C (at c) against B panels
 * [0, npan) (at bp, panel q at bp + q * nr * kc; panel 0 is C column j).
 * A: the packed block abuf (arow == NULL) or, with a general kernel, the
 * row-major block arow read in place (row stride rsa). Full MR-row tiles
 * panel by panel, then the M edge (mc % MR rows, general kernel only) two
 * panels at a time (enough FMA chains for one or two rows). */
static inline void FM_X(block_tiles)(const CFG *cfg, const FM_X(prob) *pr, UKR_ARGS *args,
                                     int last, int64_t kc, int64_t mc, const FT *abuf,
                                     const FT *arow, int64_t rsa, const FT *bp, int64_t npan,
                                     FT *c, int64_t j) {
    const int mr = cfg->mr, nr = cfg->nr;
    const int64_t n = pr->n, rsc = pr->rsc, csc = pr->csc;
    const int64_t mfull = cfg->gen ? mc / mr * mr : mc;
    for (int64_t q = 0; q < npan; q++) {
        const int64_t jq = j + q * nr;
        const int64_t nj = n - jq < nr ? n - jq : nr;
        const FT *bq = bp + q * nr * kc;
        FT *cq = c + (jq - j) * csc;
        args->bias = (last && pr->bias) ? pr->bias + jq : NULL;
        for (int64_t i = 0; i < mfull; i += mr) {
            if (arow)
                FM_X(tile_gen)(cfg, kc, mr, 1, arow + i * rsa, rsa, 1, bq, cq + i * rsc, rsc,
                               csc, nj, args);
            else
                FM_X(tile)(cfg, kc, abuf + i * kc, bq, cq + i * rsc, rsc, csc,
                           mfull - i < mr ? mfull - i : mr, nj, args);
        }
    }
    if (mfull < mc) {
        const int mi = (int)(mc - mfull);
        const FT *ae = arow ? arow + mfull * rsa : abuf + mfull * kc;
        const int64_t ars = arow ? rsa : 1, acs = arow ? 1 : mr;
        for (int64_t q = 0; q < npan;) {
            const int np = q + 1 < npan ? 2 : 1;
            const int64_t jq = j + q * nr;
            const int64_t nj = n - jq < np * nr ? n - jq : np * nr;
            args->bias = (last && pr->bias) ? pr->bias + jq : NULL;
            FM_X(tile_gen)(cfg, kc, mi, np, ae, ars, acs, bp + q * nr * kc,
                           c + mfull * rsc + (jq - j) * csc, rsc, csc, nj, args);
            q += np;
        }
    }
}

/* Thread `tid`'s share of the five loops (see the top of this file). Every
 * thread of the plan must call it: it contains barriers when share_b. */
static void FM_X(run)(const CFG *cfg, const FM_X(prob) *pr, const FM_X(plan) *P, int tid,
                      char *ws) {
    const int mr = cfg->mr, nr = cfg->nr;
    const int64_t MC = cfg->mc, NC = cfg->nc, KC = pr->KC;
    const int64_t m = pr->m, n = pr->n, k = pr->k;
    const FT *a = pr->a, *b = pr->b;
    const int64_t rsa = pr->rsa, csa = pr->csa, rsb = pr->rsb, csb = pr->csb;
    const int64_t rsc = pr->rsc;
    const int tm = P->tm, tn = P->tn, share_b = P->share_b;
    const int64_t mp = (m + mr - 1) / mr;
    const int ti = tid % tm, tj = tid / tm;
    /* A row-major A (unit column stride) is read in place by the general
     * kernel, with no packing: each tile's six rows are six sequential
     * streams, and the block of A stays in L2 across the column panels just
     * as the packed copy would. Packing it cost 3-6% of x @ W (each column
     * thread of a 2-thread split packs all of x). */
    const int rowa = cfg->gen != NULL && csa == 1;
    FT *abuf = (FT *)(ws + P->b_bytes + (size_t)tid * P->a_bytes);
    FT *bgrp = (FT *)ws + (size_t)(share_b ? tj : tid) * P->pan_grp * nr * P->kc_max;
    int64_t ip0, ip1;
    FM_X(split)(mp, tm, ti, &ip0, &ip1);
    const int64_t i_lo = ip0 * mr, i_hi = ip1 * mr < m ? ip1 * mr : m;
    UKR_ARGS args;
    args.slope = pr->slope;

    for (int64_t jc = 0; jc < n; jc += NC) {
        const int64_t nc = n - jc < NC ? n - jc : NC;
        const int64_t npan = (nc + nr - 1) / nr;
        int64_t jp0, jp1;
        FM_X(split)(npan, tn, tj, &jp0, &jp1);
        for (int64_t pc = 0; pc < k; pc += KC) {
            const int64_t kc = k - pc < KC ? k - pc : KC;
            const int last = pc + kc == k;
            const FT *bblk = b + pc * rsb + jc * csb;
            args.alpha = pr->alpha;
            args.beta = pc == 0 ? pr->beta : (FT)1;
            args.act = last ? pr->act : FM_ACT_NONE;

            /* Hot B panels: when this thread's rows of A are a single block
             * (P->hot: they fit in L2, K block deep) and B is private, every
             * B panel is used right after it is packed and never again. Pack
             * two panels at a time into the start of the buffer, where they
             * stay in L1/L2, and run all the rows against them: the packing
             * writes no longer stream the whole packed B out to L3 and back
             * (2 threads: x @ W and g @ W.T ~2% faster, A read in place;
             * x.T @ g ~2%, A packed). Same tiles, same arithmetic, other
             * order. */
            if (P->hot) {
                const int64_t rows = i_hi - i_lo, rt = (rows + mr - 1) / mr;
                const FT *a_blk = a + i_lo * rsa + pc * csa;
                if (!rowa) FM_X(pack_a)(cfg, rows, kc, a_blk, rsa, csa, abuf);
                /* This thread's work in (panel, row tile) units, panel-major.
                 * Split among column threads (tm == 1) by units rather than
                 * whole panels, so that an odd panel count is shared by rows:
                 * g @ W.T has 49 panels, and 24/25 left one thread ~4% idle.
                 * Both threads then pack the shared panel. */
                int64_t u0 = jp0 * rt, u1 = jp1 * rt;
                if (tm == 1 && tn > 1) FM_X(split)(npan * rt, tn, tj, &u0, &u1);
                for (int64_t u = u0; u < u1;) {
                    const int64_t jp = u / rt, r0 = u % rt;
                    const int64_t r1 = u1 - u < rt - r0 ? r0 + (u1 - u) : rt;
                    const int64_t np = r0 == 0 && r1 == rt && u + 2 * rt <= u1 ? 2 : 1;
                    const int64_t j1 = (jp + np) * nr < nc ? (jp + np) * nr : nc;
                    const int64_t row0 = r0 * mr, row1 = r1 * mr < rows ? r1 * mr : rows;
                    FM_X(pack_b)(cfg, jp * nr, j1, nc, kc, bblk, rsb, csb, bgrp);
                    FM_X(block_tiles)(cfg, pr, &args, last, kc, row1 - row0, abuf + row0 * kc,
                                      rowa ? a_blk + row0 * rsa : NULL, rsa, bgrp, np,
                                      pr->c + (i_lo + row0) * rsc + (jc + jp * nr) * pr->csc,
                                      jc + jp * nr);
                    u += np == 2 ? 2 * rt : r1 - r0;
                }
                continue;
            }

            /* Pack this column group's B panels: together with the other
             * tm - 1 threads of the group, or all of them alone. */
            int64_t q0 = 0, q1 = jp1 - jp0;
            if (share_b) FM_X(split)(jp1 - jp0, tm, ti, &q0, &q1);
            if (q1 > q0) {
                const int64_t j0 = (jp0 + q0) * nr;
                const int64_t j1 = (jp0 + q1) * nr < nc ? (jp0 + q1) * nr : nc;
                FM_X(pack_b)(cfg, j0, j1, nc, kc, bblk, rsb, csb, bgrp + q0 * nr * kc);
            }
            if (share_b) {
#pragma omp barrier
            }

            for (int64_t ic = i_lo; ic < i_hi; ic += MC) {
                const int64_t mc = i_hi - ic < MC ? i_hi - ic : MC;
                const FT *a_blk = a + ic * rsa + pc * csa;
                if (!rowa) FM_X(pack_a)(cfg, mc, kc, a_blk, rsa, csa, abuf);
                FM_X(block_tiles)(cfg, pr, &args, last, kc, mc, abuf, rowa ? a_blk : NULL, rsa,
                                  bgrp, jp1 - jp0, pr->c + ic * rsc + (jc + jp0 * nr) * pr->csc,
                                  jc + jp0 * nr);
            }
            if (share_b) {
#pragma omp barrier
            }
        }
    }
}

/* ---- small m: no packing ----
 *
 * For a few rows (prediction: x is 1 x 784) packing all of B costs more than
 * the product, which reads each element of B once. cfg->smallm reads B in
 * place when it has unit column stride (a C-ordered weight matrix), with the
 * blocked path's K blocks and per-element arithmetic, so the result is
 * bitwise what the blocked path gives (ukernel.h).
 *
 * Threads split N into ranges of whole 64-byte column units (never K). Any
 * split gives the same bits, so the split follows the team OpenMP actually
 * hands out. The path is bound by streaming B, so a thread needs enough of
 * B (or enough FMAs, for several rows) to pay for starting the team. */
static void FM_X(smallm_part)(const CFG *cfg, const FM_X(prob) *pr, int64_t j0, int64_t j1) {
    if (j1 <= j0) return;
    UKR_ARGS args;
    args.alpha = pr->alpha;
    args.beta = pr->beta;
    args.bias = pr->bias ? pr->bias + j0 : NULL;
    args.act = pr->act;
    args.slope = pr->slope;
    cfg->smallm(pr->m, j1 - j0, pr->k, pr->KC, pr->a, pr->rsa, pr->csa, pr->b + j0, pr->rsb,
                pr->c + j0 * pr->csc, pr->rsc, pr->csc, &args);
}

/* ---- one product, prepared once ---- */

/* Fill *pr and choose the path. Arguments already checked (sizes >= 0, no
 * overflow, valid act). */
static int FM_X(prepare)(const CFG *cfg, FM_X(prob) *pr, int64_t m, int64_t n, int64_t k,
                         FT alpha, const FT *a, int64_t rsa, int64_t csa, const FT *b,
                         int64_t rsb, int64_t csb, FT beta, FT *c, int64_t rsc, int64_t csc,
                         const FT *bias, int act, FT slope) {
    FM_X(prob) p0 = {m, n, k, 0, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, bias,
                     act, slope};
    *pr = p0;
    if (m == 0 || n == 0) return FM_PATH_NONE;
    if (k == 0 || alpha == 0) return FM_PATH_SCALE;

    /* Balanced K blocks: k = 1100 with KC = 1024 becomes 2 x 552 rather than
     * 1024 + 76 (a thin last block pays a full pass over C for little
     * work). Depends on k and the table only, so summation order is still
     * independent of the thread count (and of the small-m path). */
    const int64_t kblocks = (k + cfg->kc - 1) / cfg->kc;
    pr->KC = ((k + kblocks - 1) / kblocks + 7) / 8 * 8;

    if (m <= cfg->smallm_max && csb == 1 && cfg->smallm) return FM_PATH_SMALLM;

    /* Column-major C without bias: compute C^T = B^T A^T instead, so that the
     * kernel stores along unit stride. Each element's sum is unchanged. */
    if (csc != 1 && rsc == 1 && bias == NULL) {
        pr->m = n; pr->n = m;
        pr->a = b; pr->rsa = csb; pr->csa = rsb;
        pr->b = a; pr->rsb = csa; pr->csb = rsa;
        pr->rsc = csc; pr->csc = rsc;
    }
    return FM_PATH_BLOCKED;
}

/* Threads the small-m path can use: enough bytes of B or multiply-adds each.
 * (The same inside a team that is already running: splitting 784-256-128's
 * second layer too, so that each core could keep its share of all weights in
 * its L2, measured slower -- 18 against 13 us a prediction.) */
static int FM_X(smallm_threads)(const FM_X(prob) *pr, int nthreads) {
    const int64_t unit = 64 / (int64_t)sizeof(FT);
    const int64_t units = (pr->n + unit - 1) / unit;
    int64_t by_work = pr->k * pr->n / (FM_SMALLM_MIN_BYTES_PER_THREAD / (int64_t)sizeof(FT));
    const int64_t by_macs = pr->m * pr->n * pr->k / FM_SMALLM_MIN_MACS_PER_THREAD;
    if (by_work < by_macs) by_work = by_macs;
    int64_t nt = nthreads < 1 ? 1 : nthreads;
    if (nt > by_work) nt = by_work;
    if (nt > units) nt = units;
    return nt < 1 ? 1 : (int)nt;
}

/* Thread `idx` of `parts`: its range of whole 64-byte column units. */
static void FM_X(smallm_share)(const CFG *cfg, const FM_X(prob) *pr, int parts, int idx) {
    const int64_t unit = 64 / (int64_t)sizeof(FT);
    const int64_t units = (pr->n + unit - 1) / unit;
    int64_t u0, u1;
    FM_X(split)(units, parts, idx, &u0, &u1);
    FM_X(smallm_part)(cfg, pr, u0 * unit, u1 * unit < pr->n ? u1 * unit : pr->n);
}

/* The plan of a team of exactly nt threads: when the problem uses fewer,
 * the idle ones never reach run()'s barriers, so B is then packed privately. */
static void FM_X(team_plan)(FM_X(plan) *P, const CFG *cfg, const FM_X(prob) *pr, int nt) {
    FM_X(make_plan)(P, cfg, pr->m, pr->n, pr->k, pr->KC, nt, 1, FM_GEMM_TEAM_MIN_MACS_PER_THREAD);
    if (P->nt < nt && P->share_b)
        FM_X(make_plan)(P, cfg, pr->m, pr->n, pr->k, pr->KC, nt, 0, FM_GEMM_TEAM_MIN_MACS_PER_THREAD);
}

/* Thread tid's share of a prepared product computed by a team of nt threads
 * (every thread of the team calls it). No barrier at the end. */
static void FM_X(team_part)(const CFG *cfg, const FM_X(prob) *pr, int path, int tid, int nt,
                            char *ws) {
    if (path == FM_PATH_SCALE) {
        if (tid == 0)
            FM_X(scale_only)(pr->m, pr->n, pr->beta, pr->c, pr->rsc, pr->csc, pr->bias, pr->act,
                             pr->slope);
    } else if (path == FM_PATH_SMALLM) {
        const int used = FM_X(smallm_threads)(pr, nt);
        if (tid < used) FM_X(smallm_share)(cfg, pr, used, tid);
    } else if (path == FM_PATH_BLOCKED) {
        FM_X(plan) P;
        FM_X(team_plan)(&P, cfg, pr, nt);
        if (tid < P.nt) FM_X(run)(cfg, pr, &P, tid, ws);
    }
}

static int FM_X(check_args)(int64_t m, int64_t n, int64_t k, int act) {
    if (m < 0 || n < 0 || k < 0) return FM_ERR_ARG;
    if (act < FM_ACT_NONE || act > FM_ACT_TANH) return FM_ERR_ARG;
    int64_t tmp;
    if (__builtin_mul_overflow(m, k, &tmp) || __builtin_mul_overflow(k, n, &tmp) ||
        __builtin_mul_overflow(m, n, &tmp) || __builtin_mul_overflow(tmp, k, &tmp) ||
        __builtin_mul_overflow(m * n, (int64_t)sizeof(FT), &tmp))
        return FM_ERR_SIZE;
    return FM_OK;
}

int FM_X(gemm)(int arch, int64_t m, int64_t n, int64_t k, FT alpha, const FT *a, int64_t rsa,
               int64_t csa, const FT *b, int64_t rsb, int64_t csb, FT beta, FT *c, int64_t rsc,
               int64_t csc, const FT *bias, int act, FT slope, int nthreads) {
    const CFG *cfg = CFG_GET(arch);
    if (!cfg) return FM_ERR_ARG;
    int status = FM_X(check_args)(m, n, k, act);
    if (status != FM_OK) return status;
    FM_X(prob) pr;
    const int path = FM_X(prepare)(cfg, &pr, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta,
                                   c, rsc, csc, bias, act, slope);
    if (path == FM_PATH_NONE) return FM_OK;
    if (path == FM_PATH_SCALE) {
        FM_X(team_part)(cfg, &pr, path, 0, 1, NULL);
        return FM_OK;
    }
    if (path == FM_PATH_SMALLM) {
        int nt = FM_X(smallm_threads)(&pr, nthreads);
#ifdef _OPENMP
        if (nt > 1 && !omp_in_parallel()) {
            /* Any split gives the same bits: follow the team OpenMP hands out. */
#pragma omp parallel num_threads(nt)
            FM_X(smallm_share)(cfg, &pr, omp_get_num_threads(), omp_get_thread_num());
            return FM_OK;
        }
#endif
        FM_X(smallm_part)(cfg, &pr, 0, pr.n);
        return FM_OK;
    }

    /* Two plans: for the requested threads, and a one-thread plan to fall
     * back on if OpenMP hands us a smaller team than asked for (nested
     * parallel regions, OMP_DYNAMIC, OMP_THREAD_LIMIT). The workspace fits
     * either. */
    FM_X(plan) P, P1;
    FM_X(make_plan)(&P, cfg, pr.m, pr.n, pr.k, pr.KC, nthreads, 1, FM_GEMM_MIN_MACS_PER_THREAD);
    FM_X(make_plan)(&P1, cfg, pr.m, pr.n, pr.k, pr.KC, 1, 1, FM_GEMM_MIN_MACS_PER_THREAD);
    const size_t bytes = P.total > P1.total ? P.total : P1.total;
    int owned = 0;
    char *ws = (char *)fm_workspace_get(bytes, &owned);
    if (!ws) return FM_ERR_NOMEM;

#ifdef _OPENMP
    if (P.nt > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(P.nt)
        {
            if (omp_get_num_threads() == P.nt)
                FM_X(run)(cfg, &pr, &P, omp_get_thread_num(), ws);
            else if (omp_get_thread_num() == 0)
                FM_X(run)(cfg, &pr, &P1, 0, ws);
        }
    } else {
        FM_X(run)(cfg, &pr, &P1, 0, ws);
    }
#else
    FM_X(run)(cfg, &pr, &P1, 0, ws);
#endif
    fm_workspace_release(ws, owned);
    return FM_OK;
}

/* ---- team entry points (for drivers that run a whole sequence of kernels
 * inside one parallel region, src_c/nn/mlp.c) ---- */

/* Prepare a product for a team of nt threads: returns the status; on FM_OK
 * *call holds everything fm_?gemm_team needs (gemm.h: used, solo, ws_bytes). */
int FM_X(gemm_team_prepare)(int arch, int64_t m, int64_t n, int64_t k, FT alpha, const FT *a,
                            int64_t rsa, int64_t csa, const FT *b, int64_t rsb, int64_t csb,
                            FT beta, FT *c, int64_t rsc, int64_t csc, const FT *bias, int act,
                            FT slope, int nt, FM_X(gemm_call) *call) {
    const CFG *cfg = CFG_GET(arch);
    if (!cfg) return FM_ERR_ARG;
    int status = FM_X(check_args)(m, n, k, act);
    if (status != FM_OK) return status;
    FM_X(prob) pr;
    const int path = FM_X(prepare)(cfg, &pr, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c,
                                   rsc, csc, bias, act, slope);
    call->cfg = cfg;
    call->path = path;
    call->nt = nt < 1 ? 1 : nt;
    call->used = call->solo = 1;
    call->ws_bytes = 0;
    if (path == FM_PATH_SMALLM) {
        call->used = call->solo = FM_X(smallm_threads)(&pr, call->nt);
    } else if (path == FM_PATH_BLOCKED) {
        /* The team's plan; the one fm_?gemm would make alone (how many threads
         * the product is worth); and a one-thread plan, whose workspace the
         * call also gets (a driver given a smaller team than it asked for
         * runs the call with nt = 1). */
        FM_X(plan) P, Q, P1;
        FM_X(team_plan)(&P, cfg, &pr, call->nt);
        FM_X(make_plan)(&Q, cfg, pr.m, pr.n, pr.k, pr.KC, call->nt, 1,
                        FM_GEMM_MIN_MACS_PER_THREAD);
        FM_X(make_plan)(&P1, cfg, pr.m, pr.n, pr.k, pr.KC, 1, 0, FM_GEMM_MIN_MACS_PER_THREAD);
        call->used = P.nt;
        call->solo = Q.nt;
        call->ws_bytes = P.total > P1.total ? P.total : P1.total;
    }
    call->prob = pr;
    return FM_OK;
}

/* Thread tid's share of a prepared product; every thread of the team of
 * call->nt threads calls it (after a barrier that makes A and B ready), then
 * the caller puts a barrier before anyone reads C. */
void FM_X(gemm_team)(const FM_X(gemm_call) *call, int tid, void *ws) {
    FM_X(team_part)(call->cfg, &call->prob, call->path, tid, call->nt, (char *)ws);
}

/* ---- test entries (fastmlp.h fm_?gemm_ukr_call / fm_?gemm_gen_call) ---- */

/* The packed micro-kernel of an architecture on one tile. */
int FM_PUB(ukr_call)(int arch, int64_t k, const FT *a, const FT *b, FT *c, int64_t rsc, FT alpha,
                     FT beta, const FT *bias, int act, FT slope) {
    const CFG *cfg = CFG_GET(arch);
    if (!cfg || k < 0 || act < FM_ACT_NONE || act > FM_ACT_TANH) return FM_ERR_ARG;
    UKR_ARGS args = {alpha, beta, bias, act, slope};
    cfg->ukr(k, a, b, c, rsc, &args);
    return FM_OK;
}

/* The general kernel (ukernel.h fm_?gemm_gen) of an architecture:
 * FM_ERR_ARG if the table has none or the tile is out of range. */
int FM_PUB(gen_call)(int arch, int mi, int np, int64_t k, const FT *a, int64_t ars, int64_t acs,
                     const FT *b, FT *c, int64_t rsc, FT alpha, FT beta, const FT *bias, int act,
                     FT slope) {
    const CFG *cfg = CFG_GET(arch);
    if (!cfg || !cfg->gen || k < 0 || mi < 1 || mi > cfg->mr || np < 1 || np > 2 ||
        act < FM_ACT_NONE || act > FM_ACT_TANH)
        return FM_ERR_ARG;
    UKR_ARGS args = {alpha, beta, bias, act, slope};
    cfg->gen(mi, np, k, a, ars, acs, b, c, rsc, &args);
    return FM_OK;
}
