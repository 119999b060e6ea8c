/* ops/batch_norm.c: nn.BatchNorm1d ([N, C] or [N, C, L]) and nn.BatchNorm2d
 * ([N, C, H, W]) (SPEC 1.2.2, 1.6).
 *
 * Parameters weight [C] (ones), bias [C] (zeros) when affine; buffers
 * running_mean [C] (zeros), running_var [C] (ones), num_batches_tracked []
 * (int64, 0) when track_running_stats: torch's names and order, no draws.
 * num_batches_tracked is an int64 in the data block (two floats' room,
 * names.c); the kernels add 1 to it through an int64_t pointer.  Its value
 * after P_create / P_init is 0 because the block is zeroed and the default
 * initializer is zeros (the runtime's nn_init_zeros on an I64 tensor clears
 * at least the low half).
 *
 * Training mode (or without running statistics): per channel c the mean and
 * the biased variance over the call's n rows (and L = H*W positions), in
 * double; y = (x - mean) * invstd * w + b with invstd = 1/sqrt(var + eps);
 * running_mean = momentum * mean + (1 - momentum) * running_mean,
 * running_var likewise with the unbiased variance var * M / (M - 1)
 * (M = n * L; torch refuses M = 1, here it gives NaN), in double as torch's
 * CPU kernel; num_batches_tracked += 1.  Eval mode: the running statistics.
 * The mean and invstd used are saved (extra_saved); backward is torch's:
 * with batch statistics gx = w * invstd * (gy - mean(gy) - xhat *
 * mean(gy * xhat)), with running statistics gx = gy * w * invstd; gw =
 * sum(gy * xhat), gb = sum(gy).  Backward uses the mode at the time of the
 * call (the forward's: do not switch between them). */
#include <stdlib.h>
#include <string.h>

#include "op.h"

enum { EPS, MOMENTUM, AFFINE, TRACK, FEATURES };
static const arg_spec args[] = {
    [EPS] = {"eps", ARG_NUM, "1e-5", 0, NULL, 0, 0, 0, NULL},
    [MOMENTUM] = {"momentum", ARG_NUM, "0.1", 0, NULL, 0, 0, 0, NULL},
    [AFFINE] = {"affine", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},
    [TRACK] = {"track_running_stats", ARG_BOOL, "true", 0, NULL, 0, 1, 0, NULL},
    [FEATURES] = {"num_features", ARG_INT, NULL, 0, "the number of channels", 1, MAX_DIM_SIZE,
                  1, NULL},
};

static const char *const tensors[] = {"weight", "bias", "running_mean", "running_var",
                                      "num_batches_tracked"};

static void bn_shape(shape_ctx *sc, module *m, const shape *in, shape *out)
{
    int two = m->op->data != NULL;
    if (two ? in->ndim != 4 : in->ndim != 2 && in->ndim != 3)
        shape_error(sc, "%s needs an input %s, got %s", shape_what(sc),
                    two ? "[N, C, H, W]" : "[N, C] or [N, C, L]", shape_text(in));
    int64_t c = in->d[1];
    if (!m->args[FEATURES].given && !m->args[FEATURES].inferred)
        shape_infer_arg(sc, FEATURES, c);
    else if (arg_int(m, FEATURES) != c)
        shape_error(sc, "%s takes %lld channels (%s) but gets input %s with %lld",
                    shape_what(sc), (long long)arg_int(m, FEATURES),
                    shape_arg_origin(sc, FEATURES), shape_text(in), (long long)c);
    *out = *in;
}

static void declare(module *m)
{
    if (!m->args[FEATURES].given && !m->args[FEATURES].inferred)
        error_at(m->loc, "cannot infer this batch norm's channels: it is never used in the "
                         "model; give 'num_features:' or use it");
    double eps = arg_num(m, EPS), mom = arg_num(m, MOMENTUM);
    if (!(eps > 0))
        error_at(m->args[EPS].loc, "batch norm eps must be > 0, got %s", arg_py(m, EPS));
    if (!(mom >= 0 && mom <= 1))
        error_at(m->args[MOMENTUM].loc, "batch norm momentum must be in [0, 1], got %s",
                 arg_py(m, MOMENTUM));
    int64_t c = arg_int(m, FEATURES);
    if (arg_int(m, AFFINE)) {
        declare_tensor(m, "weight", 1, &c, DT_F32, 0);
        declare_tensor(m, "bias", 1, &c, DT_F32, 0);
    }
    if (arg_int(m, TRACK)) {
        declare_tensor(m, "running_mean", 1, &c, DT_F32, 1);
        declare_tensor(m, "running_var", 1, &c, DT_F32, 1);
        declare_tensor(m, "num_batches_tracked", 0, NULL, DT_I64, 1);
    }
}

static const char *extra(const module *m)
{
    return xfmt("%lld, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
                (long long)arg_int(m, FEATURES), arg_py(m, EPS), arg_py(m, MOMENTUM),
                arg_int(m, AFFINE) ? "True" : "False", arg_int(m, TRACK) ? "True" : "False");
}

static const char *ctor(const module *m)
{
    return xfmt("nn.%s(%lld, eps=%s, momentum=%s, affine=%s, track_running_stats=%s)",
                m->op->cls, (long long)arg_int(m, FEATURES), arg_py(m, EPS),
                arg_py(m, MOMENTUM), arg_int(m, AFFINE) ? "True" : "False",
                arg_int(m, TRACK) ? "True" : "False");
}

static void default_init(const module *m, const tensor *t, initializer *out)
{
    (void)m;
    memset(out, 0, sizeof *out);
    out->kind = !strcmp(t->local, "weight") || !strcmp(t->local, "running_var") ? I_ONES
                                                                                  : I_ZEROS;
}

static void extra_saved(const program *p, op *o)
{
    (void)p;
    o->nsaved = 2;
    o->saved_numel[0] = o->saved_numel[1] = arg_int(o->m, FEATURES);
    o->saved_dtype[0] = o->saved_dtype[1] = DT_F32;
}

static void geometry(const op_emit *ec, long long *c, long long *l)
{
    *c = (long long)arg_int(ec->o->m, FEATURES);
    *l = (long long)(per_example(op_in(ec->p, ec->o, 0)) / *c);
}

static int64_t batch_values(const program *p, const op *o, int *always)
{
    *always = !arg_int(o->m, TRACK);
    return per_example(op_in(p, o, 0)) / arg_int(o->m, FEATURES);
}

static int fold_ok(const module *m)
{
    return (int)arg_int(m, TRACK);
}

/* eval mode, y = (z - mf) a + b with a = (float)invstd * w[c] (forward's
   formula), folded into z = W x + bz: W' = W a, b' = (bz - mf) a + b */
static void fold(op_emit *ec, const char *w, const char *b, const char *wout, const char *bout,
                 int64_t per)
{
    const module *m = ec->o->m;
    long long C_, L;
    geometry(ec, &C_, &L);
    int affine = (int)arg_int(m, AFFINE);
    kbegin(ec);
    K(ec, "static void @(const float *restrict w, %sfloat *restrict wout, float *restrict bout, "
          "const float *restrict rm, const float *restrict rv%s)",
      b ? "const float *restrict bz, " : "",
      affine ? ", const float *restrict g, const float *restrict beta" : "");
    K(ec, "{");
    K(ec, "    for (int c = 0; c < %lld; c++) {", C_);
    K(ec, "        const double invstd = 1.0 / sqrt((double)rv[c] + %s);", dlit(arg_num(m, EPS)));
    K(ec, "        const float mf = rm[c], a = (float)invstd%s;", affine ? " * g[c]" : "");
    K(ec, "        for (int k = 0; k < %lld; k++) wout[c * %lld + k] = w[c * %lld + k] * a;",
      (long long)per, (long long)per, (long long)per);
    K(ec, "        bout[c] = (%s - mf) * a%s;", b ? "bz[c]" : "0.0f", affine ? " + beta[c]" : "");
    K(ec, "    }");
    K(ec, "}");
    const char *f = kend(ec, "fold");
    int k = affine ? 2 : 0;
    strbuf a = {0};
    sb_printf(&a, "%s, ", w);
    if (b)
        sb_printf(&a, "%s, ", b);
    sb_printf(&a, "%s, %s, %s, %s", wout, bout, ec->data[k], ec->data[k + 1]);
    if (affine)
        sb_printf(&a, ", %s, %s", ec->data[0], ec->data[1]);
    C(ec, "%s(%s);", f, a.s);
    free(a.s);
}

/* ---- the kernels ----

   A large batch norm (at least CH_PARALLEL_MIN floats per batch, outside
   --no-blas) is one call of the runtime's nn_batch_norm_forward /
   nn_batch_norm_backward (runtime/norm.c), which splits the channels over
   its threads and runs the loops below 8 or 16 lanes at a time where the
   CPU has AVX2 or AVX-512, with the same operations in the same order: the
   same bits as these loops.  Smaller ones, and every one under --no-blas,
   are the loops, one plain function over the channels. */
#define CH_PARALLEL_MIN 65536

typedef struct {
    const char *type, *name;  /* "const float *restrict", "x" */
} kparam;

static int bn_parallel(const program *p, const op *o)
{
    return per_example(op_in(p, o, 0)) * p->batch >= CH_PARALLEL_MIN;
}

/* "static void @(int n, <ps>)" and "{" */
static void signature(op_emit *ec, const kparam *ps, int np)
{
    strbuf b = {0};
    sb_puts(&b, "int n");
    for (int i = 0; i < np; i++)
        sb_printf(&b, ", %s %s", ps[i].type, ps[i].name);
    K(ec, "static void @(%s)", b.s);
    K(ec, "{");
    free(b.s);
}

/* the loops' signature and first lines: prologue runs once per call,
   before the channels (may assign the parameters) */
static void ch_begin(op_emit *ec, const kparam *ps, int np, const char *const *prologue,
                     long long C)
{
    signature(ec, ps, np);
    for (int i = 0; prologue[i]; i++)
        K(ec, "    %s", prologue[i]);
    K(ec, "    const int c0 = 0, c1 = %lld;", C);
}

/* the runtime's geometry of this batch norm, as the kernel's first line */
static void geom_decl(op_emit *ec, long long C_, long long L)
{
    const module *m = ec->o->m;
    K(ec, "    static const nn_batch_norm_geom g = {%lld, %lld, %s, %s};", C_, L,
      dlit(arg_num(m, EPS)), dlit(arg_num(m, MOMENTUM)));
}

/* The per-plane loops of forward's normalization and backward's input
   gradient, as functions of their own, first in the kernel: with the
   pointers as parameters GCC vectorizes them at -O2.  Written inside @_ch,
   with the pointers copied from the argument struct, it did not ("no
   vectype" for the loads), and those scalar loops were a third of the
   small ResNet's forward and a sixth of its train step.  The arithmetic is
   the same expression per element as before. */
static void plane_helpers(op_emit *ec, long long L, int bwd, int affine, int track)
{
    if (!bwd) {
        K(ec, "static void @_plane(const float *restrict x, float *restrict y, float mf, "
              "float a%s)", affine ? ", float b" : "");
        K(ec, "{");
        K(ec, "    for (int l = 0; l < %lld; l++)%s", L, ec->epi ? " {" : "");
        if (ec->epi) { /* the relu after it, in the store (sched: fused) */
            K(ec, "        const float t = (x[l] - mf) * a%s;", affine ? " + b" : "");
            K(ec, "        y[l] = %s;", ec->epi->d->epilogue_expr(ec->epi->m, "t"));
            K(ec, "    }");
        } else {
            K(ec, "        y[l] = (x[l] - mf) * a%s;", affine ? " + b" : "");
        }
        K(ec, "}");
        return;
    }
    K(ec, "static void @_gtrain(const float *restrict gy, const float *restrict x, "
          "float *restrict gx, double mg, double mean, double k2, double a)");
    K(ec, "{");
    K(ec, "    for (int l = 0; l < %lld; l++)", L);
    K(ec, "        gx[l] = (float)((gy[l] - mg - (x[l] - mean) * k2) * a);");
    K(ec, "}");
    if (track) {
        K(ec, "static void @_geval(const float *restrict gy, float *restrict gx, double a)");
        K(ec, "{");
        K(ec, "    for (int l = 0; l < %lld; l++)", L);
        K(ec, "        gx[l] = (float)(a * gy[l]);");
        K(ec, "}");
    }
}

enum { BN_SPLIT = 8 };

/* "p0 = 0.0, p1 = 0.0, ..." (BN_SPLIT named partial sums: named, they stay
   in registers, where a p[8] array went through memory at -O2) */
static const char *partials(const char *p)
{
    strbuf b = {0};
    for (int q = 0; q < BN_SPLIT; q++)
        sb_printf(&b, "%s%s%d = 0.0", q ? ", " : "", p, q);
    const char *r = xstrdup(b.s);
    free(b.s);
    return r;
}

/* "((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))" */
static const char *partials_sum(const char *p)
{
    return xfmt("((%s0 + %s1) + (%s2 + %s3)) + ((%s4 + %s5) + (%s6 + %s7))", p, p, p, p, p, p,
                p, p);
}

/* the BN_SPLIT statements of one step, statement q written by fn(b, q) */
static void unrolled(op_emit *ec, const char *indent, void (*fn)(strbuf *b, int q))
{
    for (int q = 0; q < BN_SPLIT; q++) {
        strbuf b = {0};
        fn(&b, q);
        K(ec, "%s%s", indent, b.s);
        free(b.s);
    }
}

static void st_sum(strbuf *b, int q)
{
    sb_printf(b, "s%d += xr[l + %d];", q, q);
}

static void st_var(strbuf *b, int q)
{
    sb_printf(b, "{ const double d = xr[l + %d] - mean; v%d += d * d; }", q, q);
}

static void st_bwd(strbuf *b, int q)
{
    sb_printf(b, "g%d += gr[l + %d]; h%d += (double)gr[l + %d] * (xr[l + %d] - mean);", q, q, q,
              q, q);
}

/* forward's loops (--no-blas, or small): the kernel with signature ps */
static void forward_loops(op_emit *ec, const kparam *ps, int np)
{
    const module *m = ec->o->m;
    long long C_, L;
    geometry(ec, &C_, &L);
    int affine = (int)arg_int(m, AFFINE), track = (int)arg_int(m, TRACK);
    int keep = ec->saved[0] != NULL;
    double mom = arg_num(m, MOMENTUM);
    plane_helpers(ec, L, 0, affine, track);
    const char *pro[] = {track ? "if (training) nbt[0] += 1;" : "(void)training;", NULL};
    ch_begin(ec, ps, np, pro, C_);
    K(ec, "    const int M = n * %lld;", L);
    K(ec, "    for (int c = c0; c < c1; c++) {");
    K(ec, "        double mean, invstd;");
    if (track)
        K(ec, "        if (training) {");
    else
        K(ec, "        {");
    /* the sums in double (as torch's acc_type), in SPLIT partial sums over
       the positions l so that the additions do not wait for each other
       (one chain of dependent double additions made the statistics of the
       small ResNet's batch norms a quarter of its forward) */
    if (L >= 2 * BN_SPLIT) {
        long long body = L / BN_SPLIT * BN_SPLIT;
        K(ec, "            double s = 0.0, v = 0.0, %s, %s;", partials("s"), partials("v"));
        K(ec, "            for (int r = 0; r < n; r++) {");
        K(ec, "                const float *xr = x + (r * %lld + c) * %lld;", C_, L);
        K(ec, "                for (int l = 0; l < %lld; l += %d) {", body, BN_SPLIT);
        unrolled(ec, "                    ", st_sum);
        K(ec, "                }");
        if (body < L)
            K(ec, "                for (int l = %lld; l < %lld; l++) s += xr[l];", body, L);
        K(ec, "            }");
        K(ec, "            s += %s;", partials_sum("s"));
        K(ec, "            mean = s / M;");
        K(ec, "            for (int r = 0; r < n; r++) {");
        K(ec, "                const float *xr = x + (r * %lld + c) * %lld;", C_, L);
        K(ec, "                for (int l = 0; l < %lld; l += %d) {", body, BN_SPLIT);
        unrolled(ec, "                    ", st_var);
        K(ec, "                }");
        if (body < L) {
            K(ec, "                for (int l = %lld; l < %lld; l++) {", body, L);
            K(ec, "                    double d = xr[l] - mean;");
            K(ec, "                    v += d * d;");
            K(ec, "                }");
        }
        K(ec, "            }");
        K(ec, "            v += %s;", partials_sum("v"));
    } else {
        K(ec, "            double s = 0.0, v = 0.0;");
        K(ec, "            for (int r = 0; r < n; r++)");
        K(ec, "                for (int l = 0; l < %lld; l++) s += x[(r * %lld + c) * %lld + l];",
          L, C_, L);
        K(ec, "            mean = s / M;");
        K(ec, "            for (int r = 0; r < n; r++)");
        K(ec, "                for (int l = 0; l < %lld; l++) {", L);
        K(ec, "                    double d = x[(r * %lld + c) * %lld + l] - mean;", C_, L);
        K(ec, "                    v += d * d;");
        K(ec, "                }");
    }
    K(ec, "            invstd = 1.0 / sqrt(v / M + %s);", dlit(arg_num(m, EPS)));
    if (track) {
        K(ec, "            rm[c] = (float)(%s * mean + %s * rm[c]);", dlit(mom), dlit(1.0 - mom));
        K(ec, "            rv[c] = (float)(%s * (v / (M - 1)) + %s * rv[c]);", dlit(mom),
          dlit(1.0 - mom));
        K(ec, "        } else {");
        K(ec, "            mean = rm[c];");
        K(ec, "            invstd = 1.0 / sqrt((double)rv[c] + %s);", dlit(arg_num(m, EPS)));
    }
    K(ec, "        }");
    if (keep) {
        K(ec, "        smean[c] = (float)mean;");
        K(ec, "        sinvstd[c] = (float)invstd;");
    }
    /* one plane at a time through @_plane (its pointers are parameters:
       see plane_helpers) */
    K(ec, "        {");
    K(ec, "            const float mf = (float)mean, a = (float)invstd%s;",
      affine ? " * w[c]" : "");
    K(ec, "            for (int r = 0; r < n; r++)");
    K(ec, "                @_plane(x + (r * %lld + c) * %lld, y + (r * %lld + c) * %lld, mf, a%s);",
      C_, L, C_, L, affine ? ", b[c]" : "");
    K(ec, "        }");
    K(ec, "    }");
    K(ec, "}");
}

static void forward(op_emit *ec)
{
    const module *m = ec->o->m;
    long long C_, L;
    geometry(ec, &C_, &L);
    int affine = (int)arg_int(m, AFFINE), track = (int)arg_int(m, TRACK);
    int keep = ec->saved[0] != NULL;
    kbegin(ec);
    kparam ps[10];
    int np = 0;
    ps[np++] = (kparam){"const float *restrict", "x"};
    ps[np++] = (kparam){"float *restrict", "y"};
    ps[np++] = (kparam){"int", "training"};
    if (affine) {
        ps[np++] = (kparam){"const float *restrict", "w"};
        ps[np++] = (kparam){"const float *restrict", "b"};
    }
    if (track) {
        ps[np++] = (kparam){"float *restrict", "rm"};
        ps[np++] = (kparam){"float *restrict", "rv"};
        ps[np++] = (kparam){"int64_t *restrict", "nbt"};
    }
    if (keep) {
        ps[np++] = (kparam){"float *restrict", "smean"};
        ps[np++] = (kparam){"float *restrict", "sinvstd"};
    }
    if (ec->blas) {
        signature(ec, ps, np);
        geom_decl(ec, C_, L);
        K(ec, "    nn_batch_norm%s_forward(&g, n, x, y, training, %s, %s, %s, %s);",
          ec->epi ? "_relu" : "", affine ? "w, b" : "NULL, NULL", track ? "rm, rv" : "NULL, NULL",
          track ? "nbt" : "NULL", keep ? "smean, sinvstd" : "NULL, NULL");
        K(ec, "}");
    } else {
        forward_loops(ec, ps, np);
    }
    const char *f = kend(ec, "f");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s, %s", ec->x, ec->y, ec->training);
    int k = 0;
    if (affine) {
        sb_printf(&a, ", %s, %s", ec->data[0], ec->data[1]);
        k = 2;
    }
    if (track)
        sb_printf(&a, ", (float *)(%s), (float *)(%s), (int64_t *)(void *)(%s)", ec->data[k],
                  ec->data[k + 1], ec->data[k + 2]);
    if (keep)
        sb_printf(&a, ", %s, %s", ec->saved[0], ec->saved[1]);
    C(ec, "%s(%s);", f, a.s);
    free(a.s);
}

/* backward's loops (--no-blas, or small): the kernel with signature ps */
static void backward_loops(op_emit *ec, const kparam *ps, int np)
{
    const module *m = ec->o->m;
    long long C_, L;
    geometry(ec, &C_, &L);
    int affine = (int)arg_int(m, AFFINE), track = (int)arg_int(m, TRACK);
    int gw = affine && ec->grad[0] != NULL, gb = affine && ec->grad[1] != NULL;
    int set_w = gw && ec->set[0], set_b = gb && ec->set[1];
    plane_helpers(ec, L, 1, affine, track);
    const char *pro[] = {track ? "(void)training;"
                               : "(void)training; /* always the batch statistics */",
                         NULL};
    ch_begin(ec, ps, np, pro, C_);
    K(ec, "    const int M = n * %lld;", L);
    K(ec, "    for (int c = c0; c < c1; c++) {");
    K(ec, "        const double mean = smean[c], invstd = sinvstd[c];");
    if (L >= 2 * BN_SPLIT) {  /* partial sums, as forward's statistics */
        long long body = L / BN_SPLIT * BN_SPLIT;
        K(ec, "        double sg = 0.0, sgx = 0.0, %s, %s;", partials("g"), partials("h"));
        K(ec, "        for (int r = 0; r < n; r++) {");
        K(ec, "            const float *gr = gy + (r * %lld + c) * %lld, *xr = x + (r * %lld + c) "
              "* %lld;", C_, L, C_, L);
        K(ec, "            for (int l = 0; l < %lld; l += %d) {", body, BN_SPLIT);
        unrolled(ec, "                ", st_bwd);
        K(ec, "            }");
        if (body < L) {
            K(ec, "            for (int l = %lld; l < %lld; l++) {", body, L);
            K(ec, "                sg += gr[l];");
            K(ec, "                sgx += (double)gr[l] * (xr[l] - mean);");
            K(ec, "            }");
        }
        K(ec, "        }");
        K(ec, "        sg += %s;", partials_sum("g"));
        K(ec, "        sgx += %s;", partials_sum("h"));
    } else {
        K(ec, "        double sg = 0.0, sgx = 0.0;");
        K(ec, "        for (int r = 0; r < n; r++)");
        K(ec, "            for (int l = 0; l < %lld; l++) {", L);
        K(ec, "                int k = (r * %lld + c) * %lld + l;", C_, L);
        K(ec, "                sg += gy[k];");
        K(ec, "                sgx += (double)gy[k] * (x[k] - mean);");
        K(ec, "            }");
    }
    if (gw)
        K(ec, "        gw[c] = (float)(%s + sgx * invstd);", set_w ? "(set ? 0.0 : (double)gw[c])" : "(double)gw[c]");
    if (gb)
        K(ec, "        gb[c] = (float)(%s + sg);", set_b ? "(set ? 0.0 : (double)gb[c])" : "(double)gb[c]");
    K(ec, "        %s{", ec->gx_maybe_null ? "if (gx) " : "");
    K(ec, "            const double a = invstd%s;", affine ? " * w[c]" : "");
    K(ec, "            const double mg = sg / M, k2 = sgx * invstd * invstd / M;");
    /* one plane at a time through the helpers (see plane_helpers), the
       mode tested once per plane */
    K(ec, "            for (int r = 0; r < n; r++) {");
    K(ec, "                const long long o = (long long)(r * %lld + c) * %lld;", C_, L);
    if (track) {
        K(ec, "                if (training)");
        K(ec, "                    @_gtrain(gy + o, x + o, gx + o, mg, mean, k2, a);");
        K(ec, "                else");
        K(ec, "                    @_geval(gy + o, gx + o, a);");
    } else {
        K(ec, "                @_gtrain(gy + o, x + o, gx + o, mg, mean, k2, a);");
    }
    K(ec, "            }");
    K(ec, "        }");
    K(ec, "    }");
    K(ec, "}");
}

static void backward(op_emit *ec)
{
    const module *m = ec->o->m;
    long long C_, L;
    geometry(ec, &C_, &L);
    int affine = (int)arg_int(m, AFFINE), track = (int)arg_int(m, TRACK);
    int gw = affine && ec->grad[0] != NULL, gb = affine && ec->grad[1] != NULL;
    int set_w = gw && ec->set[0], set_b = gb && ec->set[1];
    kbegin(ec);
    kparam ps[10];
    int np = 0;
    ps[np++] = (kparam){"const float *restrict", "gy"};
    ps[np++] = (kparam){"float *restrict", "gx"};
    ps[np++] = (kparam){"const float *restrict", "x"};
    ps[np++] = (kparam){"int", "training"};
    ps[np++] = (kparam){"const float *restrict", "smean"};
    ps[np++] = (kparam){"const float *restrict", "sinvstd"};
    if (affine)
        ps[np++] = (kparam){"const float *restrict", "w"};
    if (gw)
        ps[np++] = (kparam){"float *restrict", "gw"};
    if (gb)
        ps[np++] = (kparam){"float *restrict", "gb"};
    if (set_w || set_b)
        ps[np++] = (kparam){"int", "set"};
    if (ec->blas) {
        signature(ec, ps, np);
        geom_decl(ec, C_, L);
        if (!track)
            K(ec, "    (void)training; /* always the batch statistics */");
        K(ec, "    nn_batch_norm_backward(&g, n, gy, gx, x, %s, smean, sinvstd, %s, %s, %s, %s, %s);",
          track ? "training" : "1", affine ? "w" : "NULL", gw ? "gw" : "NULL",
          gb ? "gb" : "NULL", set_w ? "set" : "0", set_b ? "set" : "0");
        K(ec, "}");
    } else {
        backward_loops(ec, ps, np);
    }
    const char *b = kend(ec, "b");
    strbuf a = {0};
    sb_printf(&a, "n, %s, %s, %s, %s, %s, %s", ec->gy, ec->gx, ec->saved_in, ec->training,
              ec->saved[0], ec->saved[1]);
    if (affine)
        sb_printf(&a, ", %s", ec->data[0]);
    if (gw)
        sb_printf(&a, ", %s", ec->grad[0]);
    if (gb)
        sb_printf(&a, ", %s", ec->grad[1]);
    if (set_w || set_b)
        sb_puts(&a, ", set");
    C(ec, "%s(%s);", b, a.s);
    free(a.s);
}

static const int is_2d = 1;

#define BN_COMMON                                                                          \
    .args = args, .nargs = 5, .main_arg = EPS, .tensor_names = tensors,                    \
    .ntensor_names = 5, .shape = bn_shape, .extra_saved = extra_saved, .declare = declare,  \
    .extra_repr = extra, .torch_ctor = ctor, .default_init = default_init,                 \
    .default_init_what = "BatchNorm.reset_parameters (ones, zeros; running stats reset)",  \
    .forward = forward, .backward = backward, .backward_reads_input = 1,                   \
    .mode_dependent = 1, .fold_ok = fold_ok, .fold = fold, .batch_values = batch_values,  \
    .uses_blas = bn_parallel, .takes_epilogue = 2

const op_desc op_batch_norm1d = {
    .name = "batch_norm1d", .cls = "BatchNorm1d", .main_what = "batch_norm1d's eps", BN_COMMON,
};

const op_desc op_batch_norm2d = {
    .name = "batch_norm2d", .cls = "BatchNorm2d", .main_what = "batch_norm2d's eps",
    .data = &is_2d, BN_COMMON,
};
