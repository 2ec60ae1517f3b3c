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
    /* The team: as many threads as the busiest layer keeps busy. */
    for (int i = 0; i < L; i++) {
        status = FM_X(mlp_layer_prepare)(arch, net, i, m, x, rsx, csx, h, nthreads, &calls[i]);
        if (status != FM_OK) return status;
        if (calls[i].used > team) team = calls[i].used;
    }
#ifdef _OPENMP
    if (omp_in_parallel()) team = 1;
#endif
    /* Workspace for the team's plans and for the one-thread plans a smaller
     * team than asked for falls back on. */
    size_t bytes = 0;
    FM_CALL one;
    for (int i = 0; i < L; i++) {
        if (team > 1) {
            status = FM_X(mlp_layer_prepare)(arch, net, i, m, x, rsx, csx, h, team, &calls[i]);
            if (status != FM_OK) return status;
            if (calls[i].ws_bytes > bytes) bytes = calls[i].ws_bytes;
        }
        status = FM_X(mlp_layer_prepare)(arch, net, i, m, x, rsx, csx, h, 1, &one);
        if (status != FM_OK) return status;
        if (one.ws_bytes > bytes) bytes = one.ws_bytes;
        if (team == 1) calls[i] = one;
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
                FM_CALL c1[FM_MLP_MAX_LAYERS];
                for (int i = 0; i < L; i++)
                    FM_X(mlp_layer_prepare)(arch, net, i, m, x, rsx, csx, h, 1, &c1[i]);
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
