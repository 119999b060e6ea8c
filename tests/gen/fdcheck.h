/* tests/gen: finite-difference gradient checks of generated code.
 *
 * Plain networks: the objective is L(theta, x) = sum_i y_i * r_i for a fixed
 * random r, so one P_backward(r, dx) must leave dL/dtheta in the parameter
 * grads and dL/dx in dx.  Training specs: the gradient P_train_step leaves
 * in the grads (after stale gradients from unrelated backward calls, which
 * the step must replace) is compared with differences of the loss; the loss
 * is computed here in double from P_forward's y (P_loss returns a float,
 * whose rounding alone would cost ~|L| * 6e-8 / e) and checked equal to
 * P_loss and to the step's return value; dL/dx comes from P_backward of the
 * loss gradient computed by hand, whose parameter gradients must also equal
 * the step's.
 *
 * Central differences in double: the perturbed coordinate is stored as
 * float, so the step actually taken is (float)(v + e) - v, and that is what
 * we divide by; L is accumulated in double from the float outputs.
 * Coordinates: every element of a small tensor (<= 64), else the first, the
 * last and 40 random ones; every coordinate of x up to 64, else 42.
 *
 * Kinks: a relu / leaky_relu input that crosses 0 between v - e and v + e
 * makes the difference quotient meaningless.  Networks with such layers come
 * with a small double-precision reference (`rop` list: the linear layers and
 * activations up to the last kink) that recomputes every relu / leaky_relu
 * input from the model's own tensors.  The input x is resampled until every
 * pre-activation is at least 2e from 0 (or, for wide layers where that is
 * hopeless, the best of 50 draws: largest smallest |pre-activation|).  Then
 * for each coordinate the pre-activations at v - e, v and v + e must keep
 * their signs and stay 1e-4 away from 0; if not, the step is shrunk (e/8,
 * e/64) and the coordinate is skipped, and counted, only if that does not
 * help; a network fails if more than 1 in 5 coordinates are skipped or a
 * tensor has none left.
 *
 * FD_VERBOSE=1 in the environment prints every coordinate whose error
 * exceeds 1e-3 relative or one noise unit (see fd_tolerance).
 */
#ifndef GEN_FDCHECK_H
#define GEN_FDCHECK_H

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnet.h"

/* one step of the reference: 'L' linear with parameters named P.weight /
   P.bias (bias optional), 'R' relu, 'K' leaky_relu(a), 'S' sigmoid, 'T' tanh,
   'G' gelu, 'I' identity / flatten (no change to the flat data) */
typedef struct rop {
    char k;
    const char *p;
    double a;
} rop;

/* the step: 1e-2 for inputs and parameters of order 1, a compromise between
   truncation (~ e^2) and float rounding (~ 1/e), see fd_tolerance; near a
   kink it is shrunk FD_SHRINK-fold, up to FD_TRIES - 1 times */
#define FD_EPS 1e-2
#define FD_SHRINK 8.0
#define FD_TRIES 3
/* a pre-activation this close to 0 counts as on the kink (float vs double
   rounding of the forward pass is ~1e-6 here) */
#define FD_ZTINY 1e-4
/* coordinates per tensor: all of a small tensor, else this many sampled
   (plus the first and the last) */
#define FD_ALL_UP_TO 64
#define FD_SAMPLES 40

typedef struct fdstats {
    long checked;      /* coordinates compared */
    long skipped;      /* on a kink even with the smallest step */
    long shrunk;       /* needed a smaller step */
    double max_rel;    /* max |fd - analytic| / max(|analytic|, rms of the tensor's gradient) */
    char worst[96];
    double max_noise;  /* max |fd - analytic| / (S * FLT_EPSILON / e), see fd_tolerance */
    double max_floor;  /* max over tensors of the tolerance's noise term (at the full step)
                          relative to the rms of the tensor's gradient */
    double max_rel_full; /* max_rel over coordinates checked with the full step e */
    double min_z;      /* smallest |relu / leaky_relu input| at the drawn x (0: none) */
} fdstats;

static fdstats fd_total;

static void fd_note(fdstats *s, double rel, const char *net, const char *what, long idx)
{
    if (rel > s->max_rel) {
        s->max_rel = rel;
        snprintf(s->worst, sizeof s->worst, "%s %s[%ld]", net, what, idx);
    }
}

static void fd_add(fdstats *t, const fdstats *s)
{
    t->checked += s->checked;
    t->skipped += s->skipped;
    t->shrunk += s->shrunk;
    t->max_noise = fmax(t->max_noise, s->max_noise);
    t->max_floor = fmax(t->max_floor, s->max_floor);
    t->max_rel_full = fmax(t->max_rel_full, s->max_rel_full);
    if (s->max_rel > t->max_rel) {
        t->max_rel = s->max_rel;
        memcpy(t->worst, s->worst, sizeof t->worst);
    }
}

/* ---- the double-precision reference of relu / leaky_relu inputs ---- */

#define REF_MAXV 65536

static nn_tensor *ref_param(nn_model *m, const char *p, const char *local)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", p, local);
    return nn_find(m, key);
}

/* every relu / leaky_relu input of the forward pass from x (n floats), in
   order, into z; returns how many */
static int ref_kinks(nn_model *m, const rop *ref, const float *x, int n, double *z, int cap)
{
    static double bufa[REF_MAXV], bufb[REF_MAXV];
    double *a = bufa, *b = bufb;
    int nz = 0;
    ck_assert_int_le(n, REF_MAXV);
    for (int i = 0; i < n; i++)
        a[i] = x[i];
    for (const rop *o = ref; o->k; o++) {
        switch (o->k) {
        case 'L': {
            const nn_tensor *w = ref_param(m, o->p, "weight");
            const nn_tensor *bias = ref_param(m, o->p, "bias");
            ck_assert_msg(w != NULL, "reference: no %s.weight", o->p);
            int out = (int)w->shape[0], in = (int)w->shape[1], rows = n / in;
            ck_assert_int_eq(rows * in, n);
            ck_assert_int_le(rows * out, REF_MAXV);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < out; j++) {
                    double s = bias ? bias->data[j] : 0.0;
                    for (int i = 0; i < in; i++)
                        s += a[r * in + i] * (double)w->data[j * in + i];
                    b[r * out + j] = s;
                }
            double *t = a;
            a = b;
            b = t;
            n = rows * out;
            break;
        }
        case 'R':
        case 'K':
            for (int i = 0; i < n; i++) {
                ck_assert_int_lt(nz, cap);
                z[nz++] = a[i];
                if (a[i] <= 0)
                    a[i] = o->k == 'R' ? 0.0 : a[i] * o->a;
            }
            break;
        case 'S':
            for (int i = 0; i < n; i++)
                a[i] = 1.0 / (1.0 + exp(-a[i]));
            break;
        case 'T':
            for (int i = 0; i < n; i++)
                a[i] = tanh(a[i]);
            break;
        case 'G':
            for (int i = 0; i < n; i++)
                a[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
            break;
        case 'I':
            break;
        default:
            ck_abort_msg("reference: unknown op '%c'", o->k);
        }
    }
    return nz;
}

static double min_abs(const double *z, int n)
{
    double m = INFINITY;
    for (int i = 0; i < n; i++)
        if (fabs(z[i]) < m)
            m = fabs(z[i]);
    return m;
}

/* the pre-activations at v - e and v + e keep the signs they have at v and
   stay clear of 0 */
static int kinks_stable(const double *z0, const double *zm, const double *zp, int n)
{
    for (int i = 0; i < n; i++) {
        if (fabs(z0[i]) < FD_ZTINY || fabs(zm[i]) < FD_ZTINY || fabs(zp[i]) < FD_ZTINY)
            return 0;
        if ((z0[i] > 0) != (zm[i] > 0) || (z0[i] > 0) != (zp[i] > 0))
            return 0;
    }
    return 1;
}

/* ---- the objective ---- */

typedef struct fdctx {
    const gnet *g;
    const gtrain *t;    /* training spec: the objective is the loss (by hand, from y) */
    void *net;
    const rop *ref;
    float *x;           /* the input, perturbed in place for dL/dx */
    const float *r;     /* L = sum y * r (plain networks) */
    const void *target; /* the loss's target (training specs) */
    float *y;
    int nx, ny;
    double *z0, *zm, *zp;
    int nz, zcap;
} fdctx;

static double loss_by_hand(const gtrain *t, const float *y, const void *target, double *dy);

static double fd_objective(fdctx *c, double *z)
{
    double L = 0.0;
    c->g->forward(c->net, c->x, c->y);
    if (c->t) {
        L = loss_by_hand(c->t, c->y, c->target, NULL);
    } else {
        for (int i = 0; i < c->ny; i++)
            L += (double)c->y[i] * (double)c->r[i];
    }
    if (c->ref && z) {
        int nz = ref_kinks(c->g->model(c->net), c->ref, c->x, c->nx, z, c->zcap);
        ck_assert_int_eq(nz, c->nz);
    }
    return L;
}

/* the central difference of the objective in *v; 0 if every step tried
   crosses a kink */
static int fd_coord(fdctx *c, float *v, double *fd, double *e_used, fdstats *s)
{
    const float v0 = *v;
    double e = FD_EPS;
    for (int t = 0; t < FD_TRIES; t++, e /= FD_SHRINK) {
        *v = (float)(v0 + e);
        const double hp = (double)*v - (double)v0;
        const double Lp = fd_objective(c, c->zp);
        *v = (float)(v0 - e);
        const double hm = (double)*v - (double)v0;
        const double Lm = fd_objective(c, c->zm);
        *v = v0;
        if (!c->ref || kinks_stable(c->z0, c->zm, c->zp, c->nz)) {
            *fd = (Lp - Lm) / (hp - hm);
            *e_used = e;
            if (t)
                s->shrunk++;
            return 1;
        }
    }
    s->skipped++;
    return 0;
}

/* The comparison, for float32 kernels checked by double differences:
 *     |fd - analytic| <= 1e-2 * max(|analytic|, rms) + 16 * S * FLT_EPSILON / e
 * rms: of the whole tensor's analytic gradient (so that a coordinate whose
 * gradient happens to be ~0 is judged on the tensor's scale instead of being
 * held to an impossible relative accuracy).  S (fd_noise_scale): the size
 * of the objective's float rounding error, a few ulp of each output weighted
 * by |dL/dy|; the differences divide it by the step ("noise unit" =
 * S * FLT_EPSILON / e).  What the summary shows over ~6300 coordinates:
 * - truncation, ~ e^2 |f'''| / 6: at most 1.5e-3 relative at e = 1e-2
 *   (the deep sigmoid/tanh/gelu chains; ~1e-4 elsewhere): the 1e-2 term
 *   leaves a margin of 7x or more;
 * - rounding: at most ~4 noise units where it dominates (cblas outputs, the
 *   shrunk steps next to kinks; larger "noise unit" ratios printed for
 *   smooth nets are truncation): the 16-unit term leaves 4x;
 * - the noise term stays below 7% of every tensor's rms gradient at the full
 *   step ("noise floor"), so it cannot hide a wrong gradient.
 * A wrong backward formula (sign, a missing factor or term, a wrong index,
 * even a 2% error in one derivative) fails: verified by breaking copies of
 * generated files (relu, leaky_relu, sigmoid, tanh, gelu, softmax,
 * log_softmax, linear loop and cblas, flatten, tied, frozen, the loss). */
#define FD_RTOL 1e-2
#define FD_NOISE 16.0

static double fd_tolerance(double an, double rms, double S, double e)
{
    return FD_RTOL * fmax(fabs(an), rms) + FD_NOISE * S * FLT_EPSILON / e;
}

/* the scale of the objective's rounding error: each output y_i carries an
   error of a few ulp of the magnitudes it is computed from (taken as |y_i|
   plus the mean |y|, which covers outputs near 0 by cancellation), weighted
   by |dL/dy_i|; the errors of different outputs are independent, so they
   add in quadrature */
static double fd_noise_scale(const float *y, const double *dLdy, int n)
{
    double mean = 0.0, S = 0.0;
    for (int i = 0; i < n; i++)
        mean += fabs(y[i]);
    mean /= n;
    for (int i = 0; i < n; i++) {
        double t = dLdy[i] * (fabs(y[i]) + mean);
        S += t * t;
    }
    return sqrt(S);
}

static double rms_of(const double *g, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++)
        s += g[i] * g[i];
    return n ? sqrt(s / (double)n) : 0.0;
}

/* indices to check in a tensor of n elements */
static long fd_pick(trng *rng, long n, long *idx)
{
    if (n <= FD_ALL_UP_TO) {
        for (long i = 0; i < n; i++)
            idx[i] = i;
        return n;
    }
    long k = 0;
    idx[k++] = 0;
    idx[k++] = n - 1;
    while (k < FD_SAMPLES + 2)
        idx[k++] = (long)(trng_next(rng) % (uint64_t)n);
    return k;
}

/* compare analytic (n values) against FD over the floats v (the tensor or x) */
static void fd_tensor(fdctx *c, trng *rng, float *v, const double *analytic, long n,
                      const char *what, double S, fdstats *s)
{
    long idx[FD_SAMPLES + 2 > FD_ALL_UP_TO ? FD_SAMPLES + 2 : FD_ALL_UP_TO];
    long k = fd_pick(rng, n, idx);
    double rms = rms_of(analytic, n);
    long ok = 0;
    if (rms > 0)
        s->max_floor = fmax(s->max_floor, (FD_NOISE * S * FLT_EPSILON / FD_EPS) / rms);
    for (long j = 0; j < k; j++) {
        double fd, e;
        long i = idx[j];
        if (!fd_coord(c, &v[i], &fd, &e, s))
            continue;
        ok++;
        s->checked++;
        double err = fabs(fd - analytic[i]);
        double scale = fmax(fabs(analytic[i]), rms);
        fd_note(s, scale > 0 ? err / scale : err, c->g->name, what, i);
        s->max_noise = fmax(s->max_noise, err / (S * FLT_EPSILON / e));
        if (e == FD_EPS)
            s->max_rel_full = fmax(s->max_rel_full, scale > 0 ? err / scale : err);
        if (getenv("FD_VERBOSE") && (err > 1e-3 * scale || err > S * FLT_EPSILON / e))
            printf("  %s %s[%ld]: fd %.7g an %.7g rel %.2e step %g tol %.3g (noise part %.3g)\n",
                   c->g->name, what, i, fd, analytic[i], err / scale, e,
                   fd_tolerance(analytic[i], rms, S, e), FD_NOISE * S * FLT_EPSILON / e);
        ck_assert_msg(err <= fd_tolerance(analytic[i], rms, S, e),
                      "%s: d/d %s[%ld]: finite difference %.7g, backward %.7g (|diff| %.3g, "
                      "tolerance %.3g, step %g)",
                      c->g->name, what, i, fd, analytic[i], err,
                      fd_tolerance(analytic[i], rms, S, e), e);
    }
    ck_assert_msg(ok > 0, "%s: every coordinate of %s is on a kink", c->g->name, what);
}

/* draw x in [-2, 2); with a reference, until every relu / leaky_relu input
   is more than 2e from 0, else the best of 50 draws (largest smallest
   |pre-activation|) */
static void fd_draw_input(fdctx *c, trng *rng)
{
    float *best = malloc(sizeof(float) * (size_t)c->nx);
    double best_min = -1.0;
    int tries = c->ref ? 50 : 1;
    for (int t = 0; t < tries; t++) {
        for (int i = 0; i < c->nx; i++)
            c->x[i] = (float)trng_uniform(rng, -2.0, 2.0);
        if (!c->ref)
            break;
        int nz = ref_kinks(c->g->model(c->net), c->ref, c->x, c->nx, c->z0, c->zcap);
        double m = min_abs(c->z0, nz);
        if (m > best_min) {
            best_min = m;
            memcpy(best, c->x, sizeof(float) * (size_t)c->nx);
        }
        if (m > 2 * FD_EPS)
            break;
    }
    if (c->ref) {
        memcpy(c->x, best, sizeof(float) * (size_t)c->nx);
        c->nz = ref_kinks(c->g->model(c->net), c->ref, c->x, c->nx, c->z0, c->zcap);
        ck_assert_int_gt(c->nz, 0);
    }
    free(best);
}

static void fd_ctx_alloc(fdctx *c)
{
    c->nx = c->g->batch * c->g->in_size;
    c->ny = c->g->batch * c->g->out_size;
    c->x = calloc((size_t)c->nx, sizeof(float));
    c->y = calloc((size_t)c->ny, sizeof(float));
    c->zcap = REF_MAXV * 4;
    c->z0 = calloc((size_t)c->zcap, sizeof(double));
    c->zm = calloc((size_t)c->zcap, sizeof(double));
    c->zp = calloc((size_t)c->zcap, sizeof(double));
    ck_assert(c->x && c->y && c->z0 && c->zm && c->zp);
}

static void fd_ctx_free(fdctx *c)
{
    free(c->x);
    free(c->y);
    free(c->z0);
    free(c->zm);
    free(c->zp);
}

/* the analytic gradient of every parameter, copied out (NULL entries for
   frozen ones, whose grad must be NULL) */
static double **fd_copy_grads(nn_model *m)
{
    size_t np = nn_param_count(m);
    double **g = calloc(np + 1, sizeof *g);
    for (size_t i = 0; i < np; i++) {
        const nn_tensor *t = nn_param(m, i);
        if (!t->requires_grad) {
            ck_assert_msg(t->grad == NULL, "frozen %s has a gradient", t->name);
            continue;
        }
        ck_assert_msg(t->grad != NULL, "%s: no gradient after backward", t->name);
        g[i] = malloc(sizeof(double) * (size_t)t->numel);
        for (int64_t j = 0; j < t->numel; j++)
            g[i][j] = t->grad[j];
    }
    return g;
}

static void fd_free_grads(double **g, size_t np)
{
    for (size_t i = 0; i < np; i++)
        free(g[i]);
    free(g);
}

static void fd_print(const char *net, const fdstats *s)
{
    char kink[64] = "";
    if (s->min_z > 0)
        snprintf(kink, sizeof kink, ", min |pre-activation| %.1e", s->min_z);
    printf("fd %-17s %4ld coords, %ld skipped, %2ld smaller step%s; max rel err %.1e "
           "(full step %.1e; %s); max err %.1f noise units; noise floor %.1e rms\n",
           net, s->checked, s->skipped, s->shrunk, kink, s->max_rel, s->max_rel_full, s->worst,
           s->max_noise, s->max_floor);
    fflush(stdout);
}

/* The common start of both checks: a fresh instance initialized from
   seed, the buffers, a random input and its smallest |pre-activation|. */
static void fd_start(fdctx *c, fdstats *s, const gnet *g, const rop *ref, uint64_t seed,
                     trng *rng)
{
    c->g = g;
    c->ref = ref;
    c->net = g->create();
    ck_assert_ptr_nonnull(c->net);
    g->init(c->net, seed);
    fd_ctx_alloc(c);
    fd_draw_input(c, rng);
    s->min_z = c->ref ? min_abs(c->z0, c->nz) : 0.0;
}

/* ---- a plain network: L = sum y * r ---- */
static void fd_check_net(const gnet *g, const rop *ref, uint64_t seed)
{
    fdctx c = {0};
    fdstats s = {0};
    trng rng = {seed * 0x1234567ull + 1};
    fd_start(&c, &s, g, ref, seed, &rng);
    float *r = malloc(sizeof(float) * (size_t)c.ny);
    float *dx = malloc(sizeof(float) * (size_t)c.nx);
    for (int i = 0; i < c.ny; i++)
        r[i] = (float)trng_uniform(&rng, -1.0, 1.0);
    c.r = r;

    nn_model *m = g->model(c.net);
    size_t np = nn_param_count(m);
    for (size_t i = 0; i < np; i++)
        ck_assert_msg(nn_param(m, i)->grad == NULL, "%s has a gradient before backward",
                      nn_param(m, i)->name);
    g->forward(c.net, c.x, c.y);
    double *rd = malloc(sizeof(double) * (size_t)c.ny);
    for (int i = 0; i < c.ny; i++)
        rd[i] = r[i];
    double S = fd_noise_scale(c.y, rd, c.ny);
    free(rd);
    for (int i = 0; i < c.nx; i++)
        dx[i] = NAN;
    g->backward(c.net, r, dx);
    double **an = fd_copy_grads(m);
    double *anx = malloc(sizeof(double) * (size_t)c.nx);
    for (int i = 0; i < c.nx; i++) {
        ck_assert_msg(isfinite(dx[i]), "%s: dx[%d] not written", g->name, i);
        anx[i] = dx[i];
    }

    for (size_t i = 0; i < np; i++) {
        nn_tensor *t = nn_param(m, i);
        if (an[i])
            fd_tensor(&c, &rng, t->data, an[i], (long)t->numel, t->name, S, &s);
    }
    fd_tensor(&c, &rng, c.x, anx, c.nx, "x", S, &s);
    /* the kinks may cost a few coordinates, never most of them */
    ck_assert_msg(s.skipped * 5 <= s.checked, "%s: %ld coordinates skipped, %ld checked",
                  g->name, s.skipped, s.checked);
    fd_print(g->name, &s);
    fd_add(&fd_total, &s);

    fd_free_grads(an, np);
    free(anx);
    free(r);
    free(dx);
    fd_ctx_free(&c);
    g->destroy(c.net);
}

/* ---- a training spec: the gradient P_train_step leaves in .grad, and dx
   from P_backward of the loss gradient computed here by hand ---- */

/* nn.MSELoss / nn.CrossEntropyLoss (mean) of y, and d loss / d y into dy
   unless NULL, in double */
static double loss_by_hand(const gtrain *t, const float *y, const void *target, double *dy)
{
    const gnet *g = t->g;
    int ny = g->batch * g->out_size;
    double L = 0.0;
    if (!t->ce) {
        const float *tg = target;
        for (int i = 0; i < ny; i++) {
            double d = (double)y[i] - tg[i];
            L += d * d;
            if (dy)
                dy[i] = 2.0 * d / ny;
        }
        return L / ny;
    }
    const int32_t *lab = target;
    int C = g->out_size;
    for (int b = 0; b < g->batch; b++) {
        double mx = y[b * C], s = 0.0;
        for (int k = 1; k < C; k++)
            mx = fmax(mx, y[b * C + k]);
        for (int k = 0; k < C; k++)
            s += exp(y[b * C + k] - mx);
        L += mx + log(s) - y[b * C + lab[b]];
        if (dy)
            for (int k = 0; k < C; k++)
                dy[b * C + k] = (exp(y[b * C + k] - mx) / s - (k == lab[b])) / g->batch;
    }
    return L / g->batch;
}

static void fd_check_train(const gtrain *t, const rop *ref, uint64_t seed)
{
    const gnet *g = t->g;
    fdctx c = {0};
    fdstats s = {0};
    trng rng = {seed * 0x7654321ull + 3};
    c.t = t;
    fd_start(&c, &s, g, ref, seed, &rng);
    float *tf = malloc(sizeof(float) * (size_t)c.ny);
    int32_t *tl = malloc(sizeof(int32_t) * (size_t)g->batch);
    for (int i = 0; i < c.ny; i++)
        tf[i] = (float)trng_uniform(&rng, -1.0, 1.0);
    for (int b = 0; b < g->batch; b++)
        tl[b] = trng_below(&rng, g->out_size);
    c.target = t->ce ? (const void *)tl : (const void *)tf;

    nn_model *m = g->model(c.net);
    size_t np = nn_param_count(m);
    /* stale gradients from an unrelated backward: the step must replace them */
    float *junk = malloc(sizeof(float) * (size_t)c.ny);
    for (int i = 0; i < c.ny; i++)
        junk[i] = (float)trng_uniform(&rng, -3.0, 3.0);
    g->forward(c.net, c.x, c.y);
    g->backward(c.net, junk, NULL);
    g->backward(c.net, junk, NULL);

    /* the step, from a snapshot of the parameters that is restored after */
    float **saved = calloc(np, sizeof *saved);
    for (size_t i = 0; i < np; i++) {
        nn_tensor *p = nn_param(m, i);
        saved[i] = malloc(sizeof(float) * (size_t)p->numel);
        memcpy(saved[i], p->data, sizeof(float) * (size_t)p->numel);
    }
    float L0 = t->train_step(c.net, c.x, c.target);
    ck_assert_msg(isfinite(L0), "%s: train step loss %g", g->name, L0);
    double **an = fd_copy_grads(m);
    int moved = 0;
    for (size_t i = 0; i < np; i++) {
        nn_tensor *p = nn_param(m, i);
        int changed = memcmp(saved[i], p->data, sizeof(float) * (size_t)p->numel) != 0;
        if (!p->requires_grad)
            ck_assert_msg(!changed, "%s: frozen %s changed by the step", g->name, p->name);
        moved |= changed;
        memcpy(p->data, saved[i], sizeof(float) * (size_t)p->numel);
    }
    ck_assert_msg(moved, "%s: the step changed no parameter", g->name);
    float L1 = t->loss(c.net, c.x, c.target);
    ck_assert_msg(fabsf(L1 - L0) <= 1e-6f * fabsf(L0), "%s: P_loss %.9g, train step %.9g",
                  g->name, L1, L0);
    /* the objective of the differences is the loss computed here in double
       from P_forward's output (P_loss returns a float: its rounding alone
       would limit the differences to ~|L| * 6e-8 / e); it must be P_loss */
    double *dyd = malloc(sizeof(double) * (size_t)c.ny);
    float *dy = malloc(sizeof(float) * (size_t)c.ny);
    float *dx = malloc(sizeof(float) * (size_t)c.nx);
    double *anx = malloc(sizeof(double) * (size_t)c.nx);
    g->forward(c.net, c.x, c.y);
    double Lh = loss_by_hand(t, c.y, c.target, dyd);
    ck_assert_msg(fabs(Lh - L1) <= 1e-6 * fabs(Lh), "%s: P_loss %.9g, by hand %.9g", g->name,
                  L1, Lh);
    double S = fd_noise_scale(c.y, dyd, c.ny);

    for (size_t i = 0; i < np; i++) {
        nn_tensor *p = nn_param(m, i);
        if (an[i])
            fd_tensor(&c, &rng, p->data, an[i], (long)p->numel, p->name, S, &s);
    }

    /* dx: P_backward of the loss gradient computed by hand; its parameter
       gradients must also agree with the step's */
    g->forward(c.net, c.x, c.y);
    for (int i = 0; i < c.ny; i++)
        dy[i] = (float)dyd[i];
    g->zero_grad(c.net);
    g->backward(c.net, dy, dx);
    for (size_t i = 0; i < np; i++) {
        nn_tensor *p = nn_param(m, i);
        if (!an[i])
            continue;
        double rms = rms_of(an[i], (long)p->numel);
        for (int64_t j = 0; j < p->numel; j++)
            ck_assert_msg(fabs(p->grad[j] - an[i][j]) <= 1e-4 * fmax(fabs(an[i][j]), rms) + 1e-9,
                          "%s: %s[%lld]: train step grad %.7g, backward of the loss gradient "
                          "%.7g", g->name, p->name, (long long)j, an[i][j], p->grad[j]);
    }
    for (int i = 0; i < c.nx; i++)
        anx[i] = dx[i];
    fd_tensor(&c, &rng, c.x, anx, c.nx, "x", S, &s);
    ck_assert_msg(s.skipped * 5 <= s.checked, "%s: %ld coordinates skipped, %ld checked",
                  g->name, s.skipped, s.checked);
    fd_print(g->name, &s);
    fd_add(&fd_total, &s);

    for (size_t i = 0; i < np; i++)
        free(saved[i]);
    free(saved);
    fd_free_grads(an, np);
    free(dyd);
    free(dy);
    free(dx);
    free(anx);
    free(junk);
    free(tf);
    free(tl);
    fd_ctx_free(&c);
    g->destroy(c.net);
}

#endif
