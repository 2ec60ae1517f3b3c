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

typedef struct {
    FM_CALL fwd[FM_MLP_MAX_LAYERS];
    FM_CALL dw[FM_MLP_MAX_LAYERS];
    FM_CALL dx[FM_MLP_MAX_LAYERS];
    const FT *a0;            /* the batch's input rows (xb or x in place) */
    int64_t rs0, cs0;
    int64_t *lab;            /* m labels */
    double *xent;            /* loss pieces */
    double *tab[FM_MLP_MAX_LAYERS];  /* bias tables, nb x units[i+1] */
    double *sq, *ab;         /* per weight chunk */
    char *ws_a, *ws_b;
    int64_t nb, xent_rows, xent_pieces, wchunks, chunks;
    int bad;                 /* a row or label out of range (set atomically) */
} FM_X(mlp_step_ctx);

/* Layer i's input: (pointer, row stride, column stride). */
static inline const FT *FM_X(mlp_input)(const FM_TRAIN *T, const FM_X(mlp_step_ctx) *S, int i,
                                        int64_t *rs, int64_t *cs) {
    if (i == 0) {
        *rs = S->rs0;
        *cs = S->cs0;
        return S->a0;
    }
    *rs = T->units[i];
    *cs = 1;
    return T->h[i - 1];
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
                                    FM_X(mlp_step_ctx) *S, int tid, int nt) {
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
        FM_X(gemm_team)(&S->fwd[i], tid, S->ws_a);
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
    int64_t p0, p1;
    fm_mlp_split(S->xent_pieces, nt, tid, &p0, &p1);
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

/* Stage UPDATE: backward pass, bias gradients, penalty sums and the
 * optimizer step. */
static void FM_X(mlp_backward_update)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                                      const fm_optim_plan *plan_w,
                                      const fm_optim_plan *plan_b, int want_sq, int want_abs,
                                      FM_X(mlp_step_ctx) *S, int tid, int nt) {
    const int L = T->n_layers;
    const int64_t *u = T->units;
    const int64_t m = B->m;
    int64_t lo, hi;

    /* -- backward */
    for (int i = L - 1; i >= 0; i--) {
        const int64_t ni = u[i + 1];
        FM_X(gemm_team)(&S->dw[i], tid, S->ws_a);
        /* The threads take the shares of g_{i-1}'s product in reverse order:
         * when each product keeps only some of them busy (small layers), the
         * two run side by side on different threads. (Which thread computes
         * a share never changes its bits.) */
        if (i > 0) FM_X(gemm_team)(&S->dx[i], nt - 1 - tid, S->ws_b);
        /* column-sum table of g_i: row blocks x whole rows, split over tasks */
        int64_t t0, t1;
        fm_mlp_split(S->nb, nt, tid, &t0, &t1);
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
                if (S->nb > 1) fm_norm_block_reduce(S->nb, cols, S->tab[i] + c0, ni);
                for (int64_t j = c0; j < c0 + cols; j++) T->db[i][j] = (FT)S->tab[i][j];
            }
        }
    }
    if (nt > 1) {
#pragma omp barrier
    }

    /* -- penalty sums (before the update) and the optimizer step */
    {
        int64_t c0, c1;
        fm_mlp_split(S->chunks, nt, tid, &c0, &c1);
        for (int64_t c = c0; c < c1; c++) {
            int64_t off, cnt;
            const fm_optim_plan *pl;
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
    }
}

/* Every thread of a team of nt threads runs this (nt = 1: the caller alone). */
static void FM_X(mlp_step_team)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                                const fm_optim_plan *plan_w, const fm_optim_plan *plan_b,
                                int want_sq, int want_abs, int stages, FM_X(mlp_step_ctx) *S,
                                int tid, int nt) {
    if ((stages & FM_MLP_STAGE_FORWARD) && !FM_X(mlp_gather_forward)(T, B, stages, S, tid, nt))
        return;
    if (stages & FM_MLP_STAGE_XENT) FM_X(mlp_xent)(arch, T, B, S, tid, nt);
    if (stages & FM_MLP_STAGE_UPDATE)
        FM_X(mlp_backward_update)(arch, T, B, plan_w, plan_b, want_sq, want_abs, S, tid, nt);
}

int FM_X(mlp_train_step)(int arch, const FM_TRAIN *T, const FM_BATCH *B,
                         const fm_optim_plan *plan_w, const fm_optim_plan *plan_b, int want_sq,
                         int want_abs, int stages, int nthreads, double out[3]) {
    const int L = T->n_layers;
    const int64_t *u = T->units;
    const int64_t m = B->m;
    if (L < 1 || L > FM_MLP_MAX_LAYERS || m < 1 || m > T->rows_cap || !(B->wsum > 0) ||
        T->n_coef < 0 || T->n_params < T->n_coef || u[L] < 1 || stages < 1 ||
        stages > FM_MLP_STAGE_ALL || ((stages & FM_MLP_STAGE_XENT) && !B->labels) ||
        ((stages & FM_MLP_STAGE_UPDATE) && (!plan_w || !plan_b)))
        return FM_ERR_ARG;
    const int act_arch = fm_arch_resolve_act(arch);
    const int norm_arch = fm_norm_arch(arch);
    if (act_arch < 0 || norm_arch < 0) return FM_ERR_ARG;
    if (nthreads < 1) nthreads = 1;

    FM_X(mlp_step_ctx) *S = (FM_X(mlp_step_ctx) *)malloc(sizeof *S);
    if (!S) return FM_ERR_NOMEM;
    memset(S, 0, sizeof *S);
    if (B->rows) {
        S->a0 = T->xb; S->rs0 = u[0]; S->cs0 = 1;
    } else {
        if (B->row0 < 0 || B->row0 + m > B->n_rows) { free(S); return FM_ERR_ARG; }
        S->a0 = B->x + B->row0 * B->rsx; S->rs0 = B->rsx; S->cs0 = B->csx;
    }

    /* The team: as many threads as the busiest product would start alone (a
     * step of small products runs on one thread: no barriers to wait at, on
     * a busy machine each one can cost a scheduler time slice). */
    int team = 1, status = FM_OK;
    for (int pass = 0; pass < 2; pass++) {
        const int nt = pass == 0 ? nthreads : team;
        for (int i = 0; i < L && status == FM_OK; i++) {
            int64_t rs, cs;
            const FT *a = FM_X(mlp_input)(T, S, i, &rs, &cs);
            status = FM_X(gemm_team_prepare)(arch, m, u[i + 1], u[i], (FT)1, a, rs, cs, T->w[i],
                                             u[i + 1], 1, (FT)0, T->h[i], u[i + 1], 1, T->b[i],
                                             i == L - 1 ? FM_ACT_NONE : T->act, T->slope, nt,
                                             &S->fwd[i]);
            if (status != FM_OK) break;
            /* dW_i = a^T g_i */
            status = FM_X(gemm_team_prepare)(arch, u[i], u[i + 1], m, (FT)1, a, cs, rs, T->g[i],
                                             u[i + 1], 1, (FT)0, T->dw[i], u[i + 1], 1, NULL,
                                             FM_ACT_NONE, (FT)0, nt, &S->dw[i]);
            if (status != FM_OK || i == 0) continue;
            /* g_{i-1} = g_i W_i^T */
            status = FM_X(gemm_team_prepare)(arch, m, u[i], u[i + 1], (FT)1, T->g[i], u[i + 1], 1,
                                             T->w[i], 1, u[i + 1], (FT)0, T->g[i - 1], u[i], 1,
                                             NULL, FM_ACT_NONE, (FT)0, nt, &S->dx[i]);
        }
        if (status != FM_OK) { free(S); return status; }
        if (pass == 0) {
            for (int i = 0; i < L; i++) {
                if (S->fwd[i].solo > team) team = S->fwd[i].solo;
                if (S->dw[i].solo > team) team = S->dw[i].solo;
                if (i > 0 && S->dx[i].solo > team) team = S->dx[i].solo;
            }
#ifdef _OPENMP
            if (omp_in_parallel()) team = 1;
#endif
            if (team == nthreads) break;   /* prepared for this team already */
        }
    }

    /* Scratch: two GEMM workspaces, labels, loss pieces, bias tables, chunk sums. */
    size_t wa = 0, wb = 0;
    for (int i = 0; i < L; i++) {
        if (S->fwd[i].ws_bytes > wa) wa = S->fwd[i].ws_bytes;
        if (S->dw[i].ws_bytes > wa) wa = S->dw[i].ws_bytes;
        if (i > 0 && S->dx[i].ws_bytes > wb) wb = S->dx[i].ws_bytes;
    }
    S->nb = (m + FM_NORM_BLOCK_ROWS - 1) / FM_NORM_BLOCK_ROWS;
    S->xent_rows = fm_row_piece_rows(u[L]);   /* the pieces _act.softmax_xent sums */
    S->xent_pieces = (m + S->xent_rows - 1) / S->xent_rows;
    S->wchunks = (T->n_coef + FM_OPTIM_CHUNK - 1) / FM_OPTIM_CHUNK;
    S->chunks = S->wchunks + (T->n_params - T->n_coef + FM_OPTIM_CHUNK - 1) / FM_OPTIM_CHUNK;
    size_t tab = 0;
    for (int i = 0; i < L; i++) tab += fm_mlp_align((size_t)(S->nb * u[i + 1]) * sizeof(double));
    const size_t bytes = fm_mlp_align(wa) + fm_mlp_align(wb) +
                         fm_mlp_align((size_t)m * sizeof(int64_t)) +
                         fm_mlp_align((size_t)S->xent_pieces * sizeof(double)) + tab +
                         2 * fm_mlp_align((size_t)(S->wchunks + 1) * sizeof(double));
    int owned = 0;
    char *w = (char *)fm_workspace_get(bytes, &owned);
    if (!w) { free(S); return FM_ERR_NOMEM; }
    char *q = w;
    S->ws_a = q; q += fm_mlp_align(wa);
    S->ws_b = q; q += fm_mlp_align(wb);
    S->lab = (int64_t *)q; q += fm_mlp_align((size_t)m * sizeof(int64_t));
    S->xent = (double *)q; q += fm_mlp_align((size_t)S->xent_pieces * sizeof(double));
    for (int i = 0; i < L; i++) {
        S->tab[i] = (double *)q;
        q += fm_mlp_align((size_t)(S->nb * u[i + 1]) * sizeof(double));
    }
    S->sq = (double *)q; q += fm_mlp_align((size_t)(S->wchunks + 1) * sizeof(double));
    S->ab = (double *)q;

#ifdef _OPENMP
    if (team > 1) {
        int got = team;
#pragma omp parallel num_threads(team)
        {
            if (omp_get_num_threads() == team) {
                FM_X(mlp_step_team)(act_arch, T, B, plan_w, plan_b, want_sq, want_abs, stages,
                                    S, omp_get_thread_num(), team);
            } else {
#pragma omp single
                got = omp_get_num_threads();
            }
        }
        if (got != team) {
            /* A smaller team than asked for: run alone, as one thread plans
             * it (ws_bytes covers that plan too). */
            for (int i = 0; i < L; i++) {
                FM_CALL *cs[3] = {&S->fwd[i], &S->dw[i], i > 0 ? &S->dx[i] : NULL};
                for (int c = 0; c < 3; c++)
                    if (cs[c]) { cs[c]->nt = 1; cs[c]->used = 1; }
            }
            team = 1;
        }
    }
#endif
    if (team == 1) {
        FM_X(mlp_step_team)(act_arch, T, B, plan_w, plan_b, want_sq, want_abs, stages, S, 0,
                            1);
    }
    status = S->bad ? FM_ERR_ARG : FM_OK;
    if (status == FM_OK) {
        double x = 0.0, sq = 0.0, ab = 0.0;
        if (stages & FM_MLP_STAGE_XENT)
            for (int64_t p = 0; p < S->xent_pieces; p++) x += S->xent[p];
        const int upd = (stages & FM_MLP_STAGE_UPDATE) != 0;
        for (int64_t c = 0; c < S->wchunks; c++) {
            if (upd && want_sq) sq += S->sq[c];
            if (upd && want_abs) ab += S->ab[c];
        }
        out[0] = (stages & FM_MLP_STAGE_XENT) ? x / B->wsum : 0.0;
        out[1] = sqrt(sq);
        out[2] = ab;
    }
    fm_workspace_release(w, owned);
    free(S);
    return status;
}
