/* AVX2 optimizer kernels, written once for float (8 lanes) and double (4).
 *
 * Design: a "template" header, included only by kernels/avx2/optim_avx2.c
 * after nn/optim_tmpl.h for the same FT/FN, with these macros defined:
 *   VT, VL            vector type and lanes
 *   VLD/VST           unaligned load/store
 *   VADD VSUB VMUL VDIV VSQRT VMAX VAND
 *   VCMPGT/VCMPLT     ordered compares (false for NaN)
 *   VSET1, VZERO, VFN(x)
 * Every vector expression mirrors the scalar one in nn/optim_tmpl.h operation
 * for operation (same operand order for max, which is not commutative with
 * NaN), so lanes and the scalar tail agree bitwise with the portable kernels.
 * No FMA on purpose (see nn/optim.c): the loops are bandwidth-bound, and
 * bitwise agreement with the portable path is worth more than half an ulp.
 */

typedef struct {
    int has_scale, has_wd, has_l1;
    VT scale, wd, l1, one, zero;
} VFN(optim_vgrad);

static inline VT VFN(optim_grad)(VT g, VT p, const VFN(optim_vgrad) *c) {
    if (c->has_scale) g = VMUL(g, c->scale);
    if (c->has_wd) g = VADD(g, VMUL(c->wd, p));
    if (c->has_l1) {
        VT sign = VSUB(VAND(VCMPGT(p, c->zero), c->one), VAND(VCMPLT(p, c->zero), c->one));
        g = VADD(g, VMUL(c->l1, sign));
    }
    return g;
}

static void VFN(optim_avx2)(const fm_optim_plan *pl, FT *restrict p, const FT *restrict g,
                            FT *restrict s0, FT *restrict s1, FT *restrict s2, int64_t n) {
    FN(optim_coef) k;
    FN(optim_coef_load)(pl, &k);
    VFN(optim_vgrad) gc;
    gc.has_scale = k.has_scale;
    gc.has_wd = k.has_wd;
    gc.has_l1 = k.has_l1;
    gc.scale = VSET1(k.scale);
    gc.wd = VSET1(k.wd);
    gc.l1 = VSET1(k.l1);
    gc.one = VSET1((FT)1);
    gc.zero = VZERO();
    const VT lr = VSET1(k.lr), mu = VSET1(k.mu), eps = VSET1(k.eps);
    const VT rho = VSET1(k.rho), crho = VSET1(k.crho);
    const VT b1 = VSET1(k.b1), c1 = VSET1(k.c1), b2 = VSET1(k.b2), c2 = VSET1(k.c2);
    const VT ss = VSET1(k.step_size), ibc2 = VSET1(k.inv_bc2), decay = VSET1(k.decay);
    const int64_t nv = n - n % VL;
    int64_t i;

    switch (k.method) {
    case FM_OPTIM_SGD:
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VST(p + i, VSUB(pi, VMUL(lr, gi)));
        }
        break;
    case FM_OPTIM_MOMENTUM:
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VT v = VSUB(VMUL(mu, VLD(s0 + i)), VMUL(lr, gi));
            VST(s0 + i, v);
            VST(p + i, VADD(pi, v));
        }
        break;
    case FM_OPTIM_NESTEROV:
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VT lg = VMUL(lr, gi);
            VT v = VSUB(VMUL(mu, VLD(s0 + i)), lg);
            VST(s0 + i, v);
            VST(p + i, VADD(pi, VSUB(VMUL(mu, v), lg)));
        }
        break;
    case FM_OPTIM_ADAGRAD:
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VT acc = VADD(VLD(s0 + i), VMUL(gi, gi));
            VST(s0 + i, acc);
            VST(p + i, VSUB(pi, VDIV(VMUL(lr, gi), VADD(VSQRT(acc), eps))));
        }
        break;
    case FM_OPTIM_ADADELTA:
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VT eg2 = VADD(VMUL(rho, VLD(s0 + i)), VMUL(crho, VMUL(gi, gi)));
            VT dx2 = VLD(s1 + i);
            VT dx = VMUL(VDIV(VSQRT(VADD(dx2, eps)), VSQRT(VADD(eg2, eps))), gi);
            VST(s0 + i, eg2);
            VST(s1 + i, VADD(VMUL(rho, dx2), VMUL(crho, VMUL(dx, dx))));
            VST(p + i, VSUB(pi, VMUL(lr, dx)));
        }
        break;
    case FM_OPTIM_RMSPROP:
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VT eg2 = VADD(VMUL(rho, VLD(s0 + i)), VMUL(crho, VMUL(gi, gi)));
            VST(s0 + i, eg2);
            VST(p + i, VSUB(pi, VDIV(VMUL(lr, gi), VADD(VSQRT(eg2), eps))));
        }
        break;
    case FM_OPTIM_ADAM:
    case FM_OPTIM_AMSGRAD:
    case FM_OPTIM_ADAMW: {
        const int ams = k.method == FM_OPTIM_AMSGRAD, decoupled = k.method == FM_OPTIM_ADAMW;
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), gi = VFN(optim_grad)(VLD(g + i), pi, &gc);
            VT m = VADD(VMUL(b1, VLD(s0 + i)), VMUL(c1, gi));
            VT v = VADD(VMUL(b2, VLD(s1 + i)), VMUL(c2, VMUL(gi, gi)));
            VST(s0 + i, m);
            VST(s1 + i, v);
            if (ams) {
                v = VMAX(VLD(s2 + i), v);
                VST(s2 + i, v);
            }
            if (decoupled) pi = VMUL(pi, decay);
            VT den = VADD(VMUL(VSQRT(v), ibc2), eps);
            VST(p + i, VSUB(pi, VDIV(VMUL(ss, m), den)));
        }
        break;
    }
    case FM_OPTIM_ADAMAX: {
        for (i = 0; i < nv; i += VL) {
            VT pi = VLD(p + i), g0 = VLD(g + i);
            VT gi = VFN(optim_grad)(g0, pi, &gc);
            VT m = VADD(VMUL(b1, VLD(s0 + i)), VMUL(c1, gi));
            VT ag = VANDNOT(VSET1((FT)-0.0), gi);  /* |g'|: clear the sign bit */
            VT u = VMAX(VMUL(b2, VLD(s1 + i)), ag);
            VST(s0 + i, m);
            VST(s1 + i, u);
            VST(p + i, VSUB(pi, VDIV(VMUL(ss, m), VADD(u, eps))));
        }
        break;
    }
    default:
        return;
    }
    if (nv < n)
        FN(optim_scalar)(&k, p + nv, g + nv, s0 ? s0 + nv : NULL, s1 ? s1 + nv : NULL,
                         s2 ? s2 + nv : NULL, n - nv);
}
