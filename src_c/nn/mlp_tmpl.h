/* Dense MLP drivers, included by mlp.c once per dtype with
 *   FT, FM_X(n) (fm_s_##n / fm_d_##n), FM_NET, FM_CALL, FM_SOFTMAX_ROWS.
 * See mlp.c for the design. */

/* Rows of the output softmax per work item: any split gives the same bits
 * (the softmax is row-wise); this only sizes the pieces. */
#define FM_MLP_SOFTMAX_ROWS 64

/* Prepare layer i's product for a team of nt threads. */
static int FM_X(mlp_layer_prepare)(int arch, const FM_NET *net, int i, int64_t m,
                                   const FT *x, int64_t rsx, int64_t csx, FT *const *h, int nt,
                                   FM_CALL *call) {
    const int64_t *u = net->units;
    const int last = i == net->n_layers - 1;
    const FT *a = i == 0 ? x : h[i - 1];
    const int64_t rsa = i == 0 ? rsx : u[i], csa = i == 0 ? csx : 1;
    return FM_X(gemm_team_prepare)(arch, m, u[i + 1], u[i], (FT)1, a, rsa, csa, net->w[i],
                                   net->rsw[i], net->csw[i], (FT)0, h[i], u[i + 1], 1,
                                   net->b[i], last ? FM_ACT_NONE : net->act, net->slope, nt,
                                   call);
}

/* Every thread of the team of call[0].nt threads runs this. */
static void FM_X(mlp_forward_team)(int arch, const FM_NET *net, const FM_CALL *calls, int64_t m,
                                   FT *const *h, int softmax, int tid, void *ws) {
    const int L = net->n_layers;
    const int nt = calls[0].nt;
    for (int i = 0; i < L; i++) {
        FM_X(gemm_team)(&calls[i], tid, ws);
        if (nt > 1) {
#pragma omp barrier
        }
    }
    if (softmax) {
        const int64_t n = net->units[L];
        const int64_t pieces = (m + FM_MLP_SOFTMAX_ROWS - 1) / FM_MLP_SOFTMAX_ROWS;
        for (int64_t p = tid; p < pieces; p += nt) {
            const int64_t r0 = p * FM_MLP_SOFTMAX_ROWS;
            const int64_t rows = m - r0 < FM_MLP_SOFTMAX_ROWS ? m - r0 : FM_MLP_SOFTMAX_ROWS;
            FM_SOFTMAX_ROWS(arch, h[L - 1] + r0 * n, h[L - 1] + r0 * n, rows, n, n, 0);
        }
    }
}

int FM_X(mlp_forward)(int arch, const FM_NET *net, int64_t m, const FT *x, int64_t rsx,
                      int64_t csx, FT *const *h, int softmax, int nthreads) {
    const int L = net->n_layers;
    if (L < 1 || L > FM_MLP_MAX_LAYERS || m < 0) return FM_ERR_ARG;
    if (m == 0) return FM_OK;
    FM_CALL calls[FM_MLP_MAX_LAYERS];
    int status, team = 1;
    if (nthreads < 1) nthreads = 1;
    /* The team: as many threads as the busiest layer would start alone. */
    for (int i = 0; i < L; i++) {
        status = FM_X(mlp_layer_prepare)(arch, net, i, m, x, rsx, csx, h, nthreads, &calls[i]);
        if (status != FM_OK) return status;
        if (calls[i].solo > team) team = calls[i].solo;
    }
#ifdef _OPENMP
    if (omp_in_parallel()) team = 1;
#endif
    size_t bytes = 0;
    for (int i = 0; i < L; i++) {
        if (team != nthreads) {
            status = FM_X(mlp_layer_prepare)(arch, net, i, m, x, rsx, csx, h, team, &calls[i]);
            if (status != FM_OK) return status;
        }
        if (calls[i].ws_bytes > bytes) bytes = calls[i].ws_bytes;
    }
    int owned = 0;
    void *ws = bytes ? fm_workspace_get(bytes, &owned) : NULL;
    if (bytes && !ws) return FM_ERR_NOMEM;
#ifdef _OPENMP
    if (team > 1) {
#pragma omp parallel num_threads(team)
        {
            if (omp_get_num_threads() == team) {
                FM_X(mlp_forward_team)(arch, net, calls, m, h, softmax, omp_get_thread_num(), ws);
            } else if (omp_get_thread_num() == 0) {
                /* A smaller team than asked for: alone, as one thread plans
                 * it (ws_bytes covers that plan too). */
                FM_CALL c1[FM_MLP_MAX_LAYERS];
                for (int i = 0; i < L; i++) {
                    c1[i] = calls[i];
                    c1[i].nt = 1;
                    c1[i].used = 1;
                }
                FM_X(mlp_forward_team)(arch, net, c1, m, h, softmax, 0, ws);
            }
        }
        fm_workspace_release(ws, owned);
        return FM_OK;
    }
#endif
    FM_X(mlp_forward_team)(arch, net, calls, m, h, softmax, 0, ws);
    fm_workspace_release(ws, owned);
    return FM_OK;
}

/* ======================================================================
 * One training step (see mlp.h). Stages, separated by team barriers:
 *
 *   gather   the batch rows of x (and their labels) -> xb     rows split
 *   forward  h_i = act(h_{i-1} W_i + b_i), one team GEMM per layer
 *   loss     softmax cross-entropy + gradient -> g_{L-1}      row pieces
 *   backward per layer, from the last: dW_i = h_{i-1}^T g_i and
 *            g_{i-1} = g_i W_i^T (two team GEMMs on separate workspaces,
 *            so no barrier between them), the column-sum table of g_i for
 *            db_i, then g_{i-1} *= act'(h_{i-1})                 elements
 *   biases   the tables reduced (fixed pairwise tree) -> db_i   columns
 *   update   per chunk of FM_OPTIM_CHUNK parameters: the chunk's sum of
 *            squares / absolute values (weights, before the update), then
 *            the optimizer step                                  chunks
 *
 * Every split is of fixed pieces whose results do not depend on which thread
 * computes them, and every sum of pieces is taken in piece order by one
 * thread: the step is bitwise the same for any team size.
 *
 * A run of steps (fm_?_mlp_train_steps, an epoch a few dozen batches at a
 * time) stays in the same parallel region: a barrier after each step, and
 * the next batch's rows prefetched during the update, so neither a team
 * start nor a return to Python separates the batches.
 * ====================================================================== */

/* Rows ahead whose lines the gather prefetches. */
#define FM_MLP_GATHER_AHEAD 2
/* Column chunk of a bias table reduction (as fastmlp/_core/_norm.pyx). */
#define FM_MLP_REDUCE_COLS 512

#ifndef FM_MLP_TRAIN_HELPERS
#define FM_MLP_TRAIN_HELPERS
static inline void fm_mlp_split(int64_t count, int parts, int idx, int64_t *lo, int64_t *hi) {
    *lo = count * idx / parts;
    *hi = count * (idx + 1) / parts;
}
static inline size_t fm_mlp_align(size_t b) { return (b + 63) / 64 * 64; }
#ifdef _OPENMP
#define FM_MLP_FLAG_BAD(S) do { _Pragma("omp atomic write") (S)->bad = 1; } while (0)
#else
#define FM_MLP_FLAG_BAD(S) ((S)->bad = 1)
#endif
#endif

/* The products of one step, prepared for a batch of m rows read from a0 by a
 * team of nt threads. Every thread keeps its own copy (preparing is cheap
 * and deterministic), so a run of steps re-prepares without a barrier. */
typedef struct {
    FM_CALL fwd[FM_MLP_MAX_LAYERS];
    FM_CALL dw[FM_MLP_MAX_LAYERS];
    FM_CALL dx[FM_MLP_MAX_LAYERS];
    const FT *a0;            /* the batch's input rows (xb or x in place) */
    int64_t rs0, cs0;
    int64_t m;
    int nt;
} FM_X(mlp_step_calls);

/* Scratch the team shares, sized for the largest batch of the run. */
typedef struct {
    int64_t *lab;            /* m labels */
    double *xent;            /* loss pieces */
    double *tab[FM_MLP_MAX_LAYERS];  /* bias tables, nb x units[i+1] */
    double *sq, *ab;         /* per weight chunk */
    char *ws_a, *ws_b;
    int64_t xent_rows, wchunks, chunks;
    int bad;                 /* a row or label out of range (set atomically) */
} FM_X(mlp_step_ctx);

/* Layer i's input: (pointer, row stride, column stride). */
static inline const FT *FM_X(mlp_input)(const FM_TRAIN *T, const FM_X(mlp_step_calls) *C,
                                        int i, int64_t *rs, int64_t *cs) {
    if (i == 0) {
        *rs = C->rs0;
        *cs = C->cs0;
        return C->a0;
    }
    *rs = T->units[i];
    *cs = 1;
    return T->h[i - 1];
}

/* Prepare every product of a step on batch B for a team of nt threads. */
static int FM_X(mlp_step_prepare)(int arch, const FM_TRAIN *T, const FM_BATCH *B, int nt,
                                  FM_X(mlp_step_calls) *C) {
    const int L = T->n_layers;
    const int64_t *u = T->units;
    const int64_t m = B->m;
    if (B->rows) {
        C->a0 = T->xb; C->rs0 = u[0]; C->cs0 = 1;
    } else {
        C->a0 = B->x + B->row0 * B->rsx; C->rs0 = B->rsx; C->cs0 = B->csx;
    }
    C->m = m;
    C->nt = nt;
    for (int i = 0; i < L; i++) {
        int64_t rs, cs;
        const FT *a = FM_X(mlp_input)(T, C, i, &rs, &cs);
        int status = FM_X(gemm_team_prepare)(arch, m, u[i + 1], u[i], (FT)1, a, rs, cs,
                                             T->w[i], u[i + 1], 1, (FT)0, T->h[i], u[i + 1], 1,
                                             T->b[i], i == L - 1 ? FM_ACT_NONE : T->act,
                                             T->slope, nt, &C->fwd[i]);
        if (status != FM_OK) return status;
        /* dW_i = a^T g_i */
        status = FM_X(gemm_team_prepare)(arch, u[i], u[i + 1], m, (FT)1, a, cs, rs, T->g[i],
                                         u[i + 1], 1, (FT)0, T->dw[i], u[i + 1], 1, NULL,
                                         FM_ACT_NONE, (FT)0, nt, &C->dw[i]);
        if (status != FM_OK) return status;
        if (i == 0) continue;
        /* g_{i-1} = g_i W_i^T */
        status = FM_X(gemm_team_prepare)(arch, m, u[i], u[i + 1], (FT)1, T->g[i], u[i + 1], 1,
                                         T->w[i], 1, u[i + 1], (FT)0, T->g[i - 1], u[i], 1, NULL,
                                         FM_ACT_NONE, (FT)0, nt, &C->dx[i]);
        if (status != FM_OK) return status;
    }
    return FM_OK;
}

/* Threads the step's busiest product would start alone. */
static int FM_X(mlp_step_solo)(const FM_TRAIN *T, const FM_X(mlp_step_calls) *C) {
    int team = 1;
    for (int i = 0; i < T->n_layers; i++) {
        if (C->fwd[i].solo > team) team = C->fwd[i].solo;
        if (C->dw[i].solo > team) team = C->dw[i].solo;
        if (i > 0 && C->dx[i].solo > team) team = C->dx[i].solo;
    }
    return team;
}

/* Give the step's products to a team of one (a smaller team than planned). */
static void FM_X(mlp_step_solo_team)(const FM_TRAIN *T, FM_X(mlp_step_calls) *C) {
    for (int i = 0; i < T->n_layers; i++) {
        FM_CALL *cs[3] = {&C->fwd[i], &C->dw[i], i > 0 ? &C->dx[i] : NULL};
        for (int c = 0; c < 3; c++)
            if (cs[c]) { cs[c]->nt = 1; cs[c]->used = 1; }
    }
    C->nt = 1;
}

static void FM_X(mlp_act_backward)(int arch, const FM_TRAIN *T, const FT *y, FT *g,
                                   int64_t lo, int64_t hi) {
    if (hi <= lo) return;
    switch (T->act) {
    case FM_ACT_RELU:
        FM_ACT_BACKWARD(arch, FM_ELT_RELU, T->slope, y + lo, g + lo, g + lo, hi - lo, 0);
        break;
    case FM_ACT_LEAKY_RELU:
        /* through the output: for slope > 0, y < 0 exactly when z < 0 */
        FM_ACT_BACKWARD(arch, FM_ELT_LEAKY_RELU, T->slope, y + lo, g + lo, g + lo, hi - lo, 0);
        break;
    case FM_ACT_TANH:
        /* g *= 1 - y^2, rounded step by step as the NumPy path does */
        for (int64_t j = lo; j < hi; j++) {
            FT t = y[j] * y[j];
            t = (FT)1 - t;
            g[j] = g[j] * t;
        }
        break;
    case FM_ACT_SIGMOID:
        /* g *= (1 - y) y */
        for (int64_t j = lo; j < hi; j++) {
            FT t = (FT)1 - y[j];
            t = t * y[j];
            g[j] = g[j] * t;
        }
        break;
    default:
        break;
    }
}

/* Stage FORWARD: gather (and check) the batch rows and their labels, then
 * the forward pass. Returns 0 when a row or label is out of range (every
 * thread sees that after the gather's barrier). */
static int FM_X(mlp_gather_forward)(const FM_TRAIN *T, const FM_BATCH *B, int stages,
                                    const FM_X(mlp_step_calls) *C, FM_X(mlp_step_ctx) *S,
                                    int tid, int nt) {
    const int L = T->n_layers;
    const int64_t n0 = T->units[0], nout = T->units[L];
    int64_t lo, hi;
    fm_mlp_split(B->m, nt, tid, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const int64_t src = B->rows ? B->rows[r] : B->row0 + r;
        if (src < 0 || src >= B->n_rows) { FM_MLP_FLAG_BAD(S); continue; }
        if (stages & FM_MLP_STAGE_XENT) {
            const int64_t lab = B->labels[src];
            if (lab < 0 || lab >= nout) { FM_MLP_FLAG_BAD(S); continue; }
            S->lab[r] = lab;
        }
        if (!B->rows) continue;     /* x is read in place */
        if (B->csx == 1 && r + FM_MLP_GATHER_AHEAD < hi) {
            /* Random rows of a large x come from DRAM: ask for a later row's
             * lines now, so that several rows are in flight at once (the
             * prefetcher only follows a row, not the jump to the next). */
            const int64_t nxt = B->rows[r + FM_MLP_GATHER_AHEAD];
            if (nxt >= 0 && nxt < B->n_rows) {
                const char *pf = (const char *)(B->x + nxt * B->rsx);
                for (int64_t o = 0; o < n0 * (int64_t)sizeof(FT); o += 64) __builtin_prefetch(pf + o);
            }
        }
        const FT *xs = B->x + src * B->rsx;
        FT *xd = T->xb + r * n0;
        if (B->csx == 1) memcpy(xd, xs, (size_t)n0 * sizeof(FT));
        else for (int64_t j = 0; j < n0; j++) xd[j] = xs[j * B->csx];
    }
    if (nt > 1) {
#pragma omp barrier
    }
    if (S->bad) return 0;
    for (int i = 0; i < L; i++) {
        FM_X(gemm_team)(&C->fwd[i], tid, S->ws_a);
        if (nt > 1) {
#pragma omp barrier
        }
    }
    return 1;
}

/* Stage XENT: softmax cross-entropy pieces, the gradient into g[L-1]. */
static void FM_X(mlp_xent)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                           FM_X(mlp_step_ctx) *S, int tid, int nt) {
    const int L = T->n_layers;
    const int64_t m = B->m, nout = T->units[L];
    const double inv = 1.0 / B->wsum;
    const int64_t pieces = (m + S->xent_rows - 1) / S->xent_rows;
    int64_t p0, p1;
    fm_mlp_split(pieces, nt, tid, &p0, &p1);
    for (int64_t p = p0; p < p1; p++) {
        const int64_t r0 = p * S->xent_rows;
        const int64_t cnt = m - r0 < S->xent_rows ? m - r0 : S->xent_rows;
        S->xent[p] = FM_XENT(arch, T->h[L - 1] + r0 * nout, S->lab + r0,
                             B->w ? B->w + r0 : NULL, inv, T->g[L - 1] + r0 * nout, cnt, nout);
    }
    if (nt > 1) {
#pragma omp barrier
    }
}

/* Prefetch rows [r0, r1) of batch `next` (the rows this thread will gather
 * at the next step) towards this core's caches. */
static inline void FM_X(mlp_prefetch_rows)(const FM_TRAIN *T, const FM_BATCH *next, int64_t r0,
                                           int64_t r1) {
    const int64_t bytes = T->units[0] * (int64_t)sizeof(FT);
    for (int64_t r = r0; r < r1; r++) {
        const int64_t src = next->rows[r];
        if (src < 0 || src >= next->n_rows) continue;
        const char *p = (const char *)(next->x + src * next->rsx);
        for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 2);
        __builtin_prefetch(p + bytes - 1, 0, 2);
    }
}

/* Stage UPDATE: backward pass, bias gradients, penalty sums and the
 * optimizer step. `next` (or NULL): the batch the next step gathers, whose
 * rows this thread prefetches while the optimizer runs. */
static void FM_X(mlp_backward_update)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                                      const fm_optim_plan *plan_w,
                                      const fm_optim_plan *plan_b, int want_sq, int want_abs,
                                      const FM_X(mlp_step_calls) *C, FM_X(mlp_step_ctx) *S,
                                      const FM_BATCH *next, int tid, int nt) {
    const int L = T->n_layers;
    const int64_t *u = T->units;
    const int64_t m = B->m;
    const int64_t nb = (m + FM_NORM_BLOCK_ROWS - 1) / FM_NORM_BLOCK_ROWS;
    int64_t lo, hi;

    /* -- backward */
    for (int i = L - 1; i >= 0; i--) {
        const int64_t ni = u[i + 1];
        FM_X(gemm_team)(&C->dw[i], tid, S->ws_a);
        /* The threads take the shares of g_{i-1}'s product in reverse order:
         * when each product keeps only some of them busy (small layers), the
         * two run side by side on different threads. (Which thread computes
         * a share never changes its bits.) */
        if (i > 0) FM_X(gemm_team)(&C->dx[i], nt - 1 - tid, S->ws_b);
        /* column-sum table of g_i: row blocks x whole rows, split over tasks */
        int64_t t0, t1;
        fm_mlp_split(nb, nt, tid, &t0, &t1);
        for (int64_t t = t0; t < t1; t++) {
            const int64_t r0 = t * FM_NORM_BLOCK_ROWS;
            const int64_t rows = m - r0 < FM_NORM_BLOCK_ROWS ? m - r0 : FM_NORM_BLOCK_ROWS;
            FM_COLSUM(arch, rows, ni, T->g[i] + r0 * ni, ni, S->tab[i] + t * ni);
        }
        if (i == 0) break;
        if (nt > 1) {
#pragma omp barrier
        }
        const int64_t n = m * u[i];
        fm_mlp_split(n, nt, tid, &lo, &hi);
        FM_X(mlp_act_backward)(arch, T, T->h[i - 1], T->g[i - 1], lo, hi);
        if (nt > 1) {
#pragma omp barrier
        }
    }
    if (nt > 1) {
#pragma omp barrier
    }

    /* -- bias gradients: reduce each table (fixed tree), round once */
    {
        int64_t ntask = 0;
        for (int i = 0; i < L; i++) ntask += (u[i + 1] + FM_MLP_REDUCE_COLS - 1) / FM_MLP_REDUCE_COLS;
        int64_t k0, k1;
        fm_mlp_split(ntask, nt, tid, &k0, &k1);
        int64_t k = 0;
        for (int i = 0; i < L; i++) {
            const int64_t ni = u[i + 1];
            for (int64_t c0 = 0; c0 < ni; c0 += FM_MLP_REDUCE_COLS, k++) {
                if (k < k0 || k >= k1) continue;
                const int64_t cols = ni - c0 < FM_MLP_REDUCE_COLS ? ni - c0 : FM_MLP_REDUCE_COLS;
                if (nb > 1) fm_norm_block_reduce(nb, cols, S->tab[i] + c0, ni);
                for (int64_t j = c0; j < c0 + cols; j++) T->db[i][j] = (FT)S->tab[i][j];
            }
        }
    }
    if (nt > 1) {
#pragma omp barrier
    }

    /* -- penalty sums (before the update) and the optimizer step; the next
     * batch's rows are prefetched a slice per chunk, so that their DRAM
     * latency overlaps the update instead of stalling the next gather */
    {
        int64_t c0, c1, pr0 = 0, pr1 = 0;
        fm_mlp_split(S->chunks, nt, tid, &c0, &c1);
        const int pf = next && next->rows && next->csx == 1;
        if (pf) fm_mlp_split(next->m, nt, tid, &pr0, &pr1);
        for (int64_t c = c0; c < c1; c++) {
            int64_t off, cnt;
            const fm_optim_plan *pl;
            if (pf) {
                const int64_t span = pr1 - pr0, q = c - c0, nq = c1 - c0;
                FM_X(mlp_prefetch_rows)(T, next, pr0 + span * q / nq, pr0 + span * (q + 1) / nq);
            }
            if (c < S->wchunks) {
                off = c * FM_OPTIM_CHUNK;
                cnt = T->n_coef - off < FM_OPTIM_CHUNK ? T->n_coef - off : FM_OPTIM_CHUNK;
                pl = plan_w;
                if (want_sq) S->sq[c] = FM_SUMSQ(plan_w->arch, T->params + off, cnt);
                if (want_abs) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < cnt; j++) acc += fabs((double)T->params[off + j]);
                    S->ab[c] = acc;
                }
            } else {
                off = T->n_coef + (c - S->wchunks) * FM_OPTIM_CHUNK;
                cnt = T->n_params - off < FM_OPTIM_CHUNK ? T->n_params - off : FM_OPTIM_CHUNK;
                pl = plan_b;
            }
            FM_OPTIM_STEP(pl, T->params, T->grads, T->s0, T->s1, T->s2, off, cnt);
        }
        if (pf && c1 <= c0) FM_X(mlp_prefetch_rows)(T, next, pr0, pr1);
    }
}

/* One step by thread tid of a team of nt (nt = 1: the caller alone).
 * Returns 0 when a row or label was out of range (nothing updated). */
static int FM_X(mlp_step_team)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                               const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                               int want_sq, int want_abs, int stages,
                               const FM_X(mlp_step_calls) *C, FM_X(mlp_step_ctx) *S,
                               const FM_BATCH *next, int tid, int nt) {
    if ((stages & FM_MLP_STAGE_FORWARD) && !FM_X(mlp_gather_forward)(T, B, stages, C, S, tid, nt))
        return 0;
    if (stages & FM_MLP_STAGE_XENT) FM_X(mlp_xent)(arch, T, B, S, tid, nt);
    if (stages & FM_MLP_STAGE_UPDATE)
        FM_X(mlp_backward_update)(arch, T, B, plan_w, plan_b, want_sq, want_abs, C, S, next,
                                  tid, nt);
    return 1;
}

/* A step's results from the shared pieces, summed in piece order. */
static void FM_X(mlp_step_out)(const FM_BATCH *B, int stages, int want_sq, int want_abs,
                               const FM_X(mlp_step_ctx) *S, double out[3]) {
    double x = 0.0, sq = 0.0, ab = 0.0;
    const int64_t pieces = (B->m + S->xent_rows - 1) / S->xent_rows;
    if (stages & FM_MLP_STAGE_XENT)
        for (int64_t p = 0; p < pieces; p++) x += S->xent[p];
    const int upd = (stages & FM_MLP_STAGE_UPDATE) != 0;
    for (int64_t c = 0; c < S->wchunks; c++) {
        if (upd && want_sq) sq += S->sq[c];
        if (upd && want_abs) ab += S->ab[c];
    }
    out[0] = (stages & FM_MLP_STAGE_XENT) ? x / B->wsum : 0.0;
    out[1] = sqrt(sq);
    out[2] = ab;
}

/* Steps [0, n_steps) by thread tid of a team of nt (nt = 1: the caller
 * alone); C0 is prepared for batch 0. garch: the GEMM architecture (as the
 * caller's), arch: the resolved one of the element-wise kernels. A barrier separates the steps (the
 * next forward pass reads the updated weights); thread 0 then writes the
 * step's results. Every thread stops at the same step when a batch is bad;
 * *done counts the steps completed. */
static void FM_X(mlp_steps_team)(int garch, int arch, const FM_TRAIN *T, const FM_BATCH *B,
                                 const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                                 int want_sq, int want_abs, int stages, int64_t n_steps,
                                 const FM_X(mlp_step_calls) *C0, FM_X(mlp_step_ctx) *S,
                                 int tid, int nt, double *out, int64_t *done) {
    FM_X(mlp_step_calls) C = *C0;
    for (int64_t s = 0; s < n_steps; s++) {
        const FM_BATCH *b = &B[s];
        /* Re-prepare for a new batch size or in-place rows (a new a0): every
         * thread alike, from the same inputs, so no barrier is needed. */
        if (s > 0 && (b->m != C.m || !b->rows) &&
            FM_X(mlp_step_prepare)(garch, T, b, nt, &C) != FM_OK)
            break;   /* cannot happen: every batch was prepared before the run */
        const FM_BATCH *next = s + 1 < n_steps ? &B[s + 1] : NULL;
        const fm_optim_plan *pw = plan_w ? &plan_w[s] : NULL;
        const fm_optim_plan *pb = plan_b ? &plan_b[s] : NULL;
        if (!FM_X(mlp_step_team)(arch, T, b, pw, pb, want_sq, want_abs, stages, &C, S, next,
                                 tid, nt))
            break;
        if (nt > 1) {
#pragma omp barrier
        }
        if (tid == 0) {
            FM_X(mlp_step_out)(b, stages, want_sq, want_abs, S, out + 3 * s);
            *done = s + 1;
        }
    }
}

/* Prepare every batch size of a run (in C, for a team of nt threads): the
 * most threads any product would start alone (*solo) and the largest
 * workspaces of the two GEMM streams (*wa, *wb, maxima kept). */
static int FM_X(mlp_steps_size)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                                int64_t n_steps, int nt, FM_X(mlp_step_calls) *C, int *solo,
                                size_t *wa, size_t *wb) {
    *solo = 1;
    for (int64_t s = 0; s < n_steps; s++) {
        if (s > 0 && B[s].m == B[s - 1].m) continue;
        const int status = FM_X(mlp_step_prepare)(arch, T, &B[s], nt, C);
        if (status != FM_OK) return status;
        const int k = FM_X(mlp_step_solo)(T, C);
        if (k > *solo) *solo = k;
        for (int i = 0; i < T->n_layers; i++) {
            if (C->fwd[i].ws_bytes > *wa) *wa = C->fwd[i].ws_bytes;
            if (C->dw[i].ws_bytes > *wa) *wa = C->dw[i].ws_bytes;
            if (i > 0 && C->dx[i].ws_bytes > *wb) *wb = C->dx[i].ws_bytes;
        }
    }
    return FM_OK;
}

int FM_X(mlp_train_steps)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                          const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                          int want_sq, int want_abs, int stages, int64_t n_steps, int nthreads,
                          double *out, int64_t *done) {
    const int L = T->n_layers;
    const int64_t *u = T->units;
    *done = 0;
    if (n_steps < 1 || L < 1 || L > FM_MLP_MAX_LAYERS || T->n_coef < 0 ||
        T->n_params < T->n_coef || u[L] < 1 || stages < 1 || stages > FM_MLP_STAGE_ALL ||
        ((stages & FM_MLP_STAGE_UPDATE) && (!plan_w || !plan_b)))
        return FM_ERR_ARG;
    const int act_arch = fm_arch_resolve_act(arch);
    const int norm_arch = fm_norm_arch(arch);
    if (act_arch < 0 || norm_arch < 0) return FM_ERR_ARG;
    if (nthreads < 1) nthreads = 1;
    int64_t m_max = 0;
    for (int64_t s = 0; s < n_steps; s++) {
        const FM_BATCH *b = &B[s];
        if (b->m < 1 || b->m > T->rows_cap || !(b->wsum > 0) ||
            ((stages & FM_MLP_STAGE_XENT) && !b->labels))
            return FM_ERR_ARG;
        if (!b->rows && (b->row0 < 0 || b->row0 > b->n_rows - b->m)) return FM_ERR_ARG;
        if (b->m > m_max) m_max = b->m;
    }

    FM_X(mlp_step_calls) *C = (FM_X(mlp_step_calls) *)malloc(sizeof *C);
    FM_X(mlp_step_ctx) *S = (FM_X(mlp_step_ctx) *)calloc(1, sizeof *S);
    if (!C || !S) { free(C); free(S); return FM_ERR_NOMEM; }

    /* The team: as many threads as the busiest product of any batch size
     * would start alone (a run of small products runs on one thread: no
     * barriers to wait at, on a busy machine each one can cost a scheduler
     * time slice). Then the workspaces, for every batch size, for that team
     * (sized again only when the team differs from nthreads). */
    int team = 1;
    size_t wa = 0, wb = 0;
    int status = FM_X(mlp_steps_size)(arch, T, B, n_steps, nthreads, C, &team, &wa, &wb);
#ifdef _OPENMP
    if (omp_in_parallel()) team = 1;
#endif
    if (status == FM_OK && team != nthreads) {
        int unused;
        wa = wb = 0;
        status = FM_X(mlp_steps_size)(arch, T, B, n_steps, team, C, &unused, &wa, &wb);
    }
    if (status == FM_OK) status = FM_X(mlp_step_prepare)(arch, T, &B[0], team, C);
    if (status != FM_OK) { free(C); free(S); return status; }

    /* Scratch: two GEMM workspaces, labels, loss pieces, bias tables, chunk sums. */
    const int64_t nb = (m_max + FM_NORM_BLOCK_ROWS - 1) / FM_NORM_BLOCK_ROWS;
    S->xent_rows = fm_row_piece_rows(u[L]);   /* the pieces _act.softmax_xent sums */
    const int64_t xent_pieces = (m_max + S->xent_rows - 1) / S->xent_rows;
    S->wchunks = (T->n_coef + FM_OPTIM_CHUNK - 1) / FM_OPTIM_CHUNK;
    S->chunks = S->wchunks + (T->n_params - T->n_coef + FM_OPTIM_CHUNK - 1) / FM_OPTIM_CHUNK;
    size_t tab = 0;
    for (int i = 0; i < L; i++) tab += fm_mlp_align((size_t)(nb * u[i + 1]) * sizeof(double));
    const size_t bytes = fm_mlp_align(wa) + fm_mlp_align(wb) +
                         fm_mlp_align((size_t)m_max * sizeof(int64_t)) +
                         fm_mlp_align((size_t)xent_pieces * sizeof(double)) + tab +
                         2 * fm_mlp_align((size_t)(S->wchunks + 1) * sizeof(double));
    int owned = 0;
    char *w = (char *)fm_workspace_get(bytes, &owned);
    if (!w) { free(C); free(S); return FM_ERR_NOMEM; }
    char *q = w;
    S->ws_a = q; q += fm_mlp_align(wa);
    S->ws_b = q; q += fm_mlp_align(wb);
    S->lab = (int64_t *)q; q += fm_mlp_align((size_t)m_max * sizeof(int64_t));
    S->xent = (double *)q; q += fm_mlp_align((size_t)xent_pieces * sizeof(double));
    for (int i = 0; i < L; i++) {
        S->tab[i] = (double *)q;
        q += fm_mlp_align((size_t)(nb * u[i + 1]) * sizeof(double));
    }
    S->sq = (double *)q; q += fm_mlp_align((size_t)(S->wchunks + 1) * sizeof(double));
    S->ab = (double *)q;

#ifdef _OPENMP
    if (team > 1) {
        int got = team;
#pragma omp parallel num_threads(team)
        {
            if (omp_get_num_threads() == team) {
                FM_X(mlp_steps_team)(arch, act_arch, T, B, plan_w, plan_b, want_sq, want_abs, stages,
                                     n_steps, C, S, omp_get_thread_num(), team, out, done);
            } else {
#pragma omp single
                got = omp_get_num_threads();
            }
        }
        if (got != team) {
            /* A smaller team than asked for: run alone, as one thread plans
             * it (ws_bytes covers that plan too). */
            FM_X(mlp_step_solo_team)(T, C);
            team = 1;
        }
    }
#endif
    if (team == 1)
        FM_X(mlp_steps_team)(arch, act_arch, T, B, plan_w, plan_b, want_sq, want_abs, stages, n_steps,
                             C, S, 0, 1, out, done);
    status = *done == n_steps ? FM_OK : FM_ERR_ARG;
    fm_workspace_release(w, owned);
    free(C);
    free(S);
    return status;
}

int FM_X(mlp_train_step)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                         const fm_optim_plan *plan_w, const fm_optim_plan *plan_b, int want_sq,
                         int want_abs, int stages, int nthreads, double out[3]) {
    int64_t done;
    return FM_X(mlp_train_steps)(arch, T, B, plan_w, plan_b, want_sq, want_abs, stages, 1,
                                 nthreads, out, &done);
}
