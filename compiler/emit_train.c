/* emit_train.c: with train: in the spec, the loss (torch's mean over the
 * rows of the call), the optimizer kernels (torch.optim's update, one
 * kernel per distinct body), and the loss / train step entry points with
 * their row counts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"

/* Optimizer kernels of tensors this large run on the runtime's threads
 * (nn_parallel), each thread on its own slice; smaller ones on the caller.
 * Not with --no-blas, which promises code without the runtime's threads. */
#define PAR_MIN_FLOATS 32768

static int use_parallel_opt(const emitter *e, const tensor *t)
{
    return !e->o->no_blas && !e->o->inference && t->requires_grad &&
           align16(t->numel) >= PAR_MIN_FLOATS;
}

/* The optimizer, one kernel per trainable tensor (restrict-qualified, so it
 * vectorizes; lengths are rounded up to 16: the padding is zero in data and
 * grad, and every update keeps a zero at zero).  bwd() calls a tensor's
 * kernel in a train step as soon as its gradient is complete, while it is
 * still in cache. */
static const char *opt_call_range(const emitter *e, int k, const char *lo, const char *n);

void emit_opt_kernels(emitter *e)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    if (t->opt == OPT_SGD) {
        E(e, "/* ---- torch.optim.SGD(lr=%g, momentum=%g, dampening=%g, weight_decay=%g, "
             "nesterov=%s) ---- */", t->lr, t->momentum, t->dampening, t->weight_decay,
          t->nesterov ? "True" : "False");
    } else {
        E(e, "/* ---- torch.optim.Adam(lr=%g, betas=(%g, %g), eps=%g, weight_decay=%g, "
             "amsgrad=%s) ---- */",
          t->lr, t->beta1, t->beta2, t->eps, t->weight_decay, t->amsgrad ? "True" : "False");
    }
    NL(e);
    int sgd_m = t->opt == OPT_SGD && t->momentum != 0;
    e->optname = xalloc(sizeof *e->optname * (size_t)(p->ntensors + 1));
    strbuf *file = e->out;
    strbuf text = {0};
    for (int k = 0; k < p->ntensors; k++) {
        const tensor *ts = &p->tensors[k];
        if (!ts->requires_grad)
            continue;
        long long len = (long long)align16(ts->numel);
        text.len = 0;
        if (text.s)
            text.s[0] = 0;
        e->out = &text;
        if (t->opt == OPT_SGD)
            E(e, "static void @(float *restrict P, const float *restrict G%s, int n)",
              sgd_m ? ", float *restrict M, int first" : "");
        else
            E(e, "static void @(float *restrict P, const float *restrict G, float *restrict M, "
                 "float *restrict V%s, float neg_step_size, float bc2_sqrt, int n)",
              t->amsgrad ? ", float *restrict VMAX" : "");
        open_block(e, "");
        const char *g = t->weight_decay != 0 ? xfmt("(G[i] + %s * P[i])", flit(t->weight_decay))
                                             : "G[i]";
        if (t->opt == OPT_SGD) {
            const char *upd = t->nesterov ? xfmt("P[i] = P[i] + %s * (%s + %s * M[i]);",
                                                 flit(-t->lr), g, flit(t->momentum))
                                          : xfmt("P[i] = P[i] + %s * M[i];", flit(-t->lr));
            if (sgd_m) {
                E(e, "if (first) /* the momentum buffer starts as a copy of the gradient */");
                E(e, "    for (int i = 0; i < n; i++) { M[i] = %s; %s }", g, upd);
                E(e, "else");
                E(e, "    for (int i = 0; i < n; i++) { M[i] = M[i] * %s + %s * %s; %s }",
                  flit(t->momentum), flit(1.0 - t->dampening), g, upd);
            } else {
                E(e, "for (int i = 0; i < n; i++) P[i] = P[i] + %s * %s;", flit(-t->lr), g);
            }
        } else {
            E(e, "for (int i = 0; i < n; i++) {");
            E(e, "    float g = %s;", g);
            E(e, "    M[i] = M[i] * %s + %s * g;", flit(t->beta1), flit(1.0 - t->beta1));
            E(e, "    V[i] = V[i] * %s + %s * g * g;", flit(t->beta2), flit(1.0 - t->beta2));
            if (t->amsgrad) {
                E(e, "    VMAX[i] = V[i] > VMAX[i] ? V[i] : VMAX[i];");
                E(e, "    P[i] = P[i] + neg_step_size * (M[i] / (sqrtf(VMAX[i]) / bc2_sqrt + "
                     "%s));", flit(t->eps));
            } else {
                E(e, "    P[i] = P[i] + neg_step_size * (M[i] / (sqrtf(V[i]) / bc2_sqrt + %s));",
                  flit(t->eps));
            }
            E(e, "}");
        }
        close_block(e);
        e->out = file;
        e->optname[k] = kernel_once(e, file, text.s, "opt", k,
                                    xfmt("the update of %s", ccomment(ts->name)));
        NL(e);
        if (use_parallel_opt(e, ts)) {
            /* thread t of nt updates 16-float blocks [len16 t / nt, len16 (t+1) / nt) */
            long long len16 = len / 16;
            E(e, "static void opt%d_part(void *ctx, int t, int nt)", k);
            open_block(e, "");
            E(e, "struct %s *net = ctx;", e->n);
            E(e, "int lo = (int)(%lldLL * t / nt * 16), hi = (int)(%lldLL * (t + 1) / nt * 16);",
              len16, len16);
            E(e, "%s", opt_call_range(e, k, "lo", "hi - lo"));
            close_block(e);
            NL(e);
        }
    }
    free(text.s);
}

/* The call of tensor k's optimizer kernel on floats [lo, lo + n) (lo NULL: 0). */
static const char *opt_call_range(const emitter *e, int k, const char *lo, const char *n)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    long long off = (long long)p->tensors[k].offset, PF = (long long)p->grad_floats;
    const char *plus = lo ? xfmt(" + %s", lo) : "";
#define AT(region, o) xfmt("net->%s + %lld%s", region, (long long)(o), plus)
    if (t->opt == OPT_SGD)
        return xfmt("%s(%s, %s%s, %s);", e->optname[k], AT("data", off), AT("grad", off),
                    t->momentum != 0 ? xfmt(", %s, net->steps == 0", AT("opt", off)) : "", n);
    return xfmt("%s(%s, %s, %s, %s%s, net->neg_step_size, net->bc2_sqrt, %s);", e->optname[k],
                AT("data", off), AT("grad", off), AT("opt", off), AT("opt", PF + off),
                t->amsgrad ? xfmt(", %s", AT("opt", 2 * PF + off)) : "", n);
#undef AT
}

/* The call of tensor k's optimizer. */
static const char *opt_step(emitter *e, int k)
{
    const tensor *ts = &e->p->tensors[k];
    if (use_parallel_opt(e, ts))
        return xfmt("nn_parallel(opt%d_part, net);", k);
    return opt_call_range(e, k, NULL, xfmt("%lld", (long long)align16(ts->numel)));
}

/* What bwd() does in a train step where tensor k's gradient is complete:
   the optimizer steps it there, or, with train-step hooks (nn_model.hooks,
   data parallel), the hooks are told and step_rows() steps it after
   pre_step (the parameter index is the tensor index: parameters come
   first). */
const char *opt_call(emitter *e, int k)
{
    return xfmt("{ if (net->model.hooks) net->model.hooks->grad_ready(net->model.hooks, "
                "&net->model, %d); else %s }", k, opt_step(e, k));
}

void emit_train(emitter *e)
{
    const program *p = e->p;
    const train_cfg *t = &p->train;
    const char *n = e->n;
    int64_t out_per = shape_numel(&p->output) / p->batch;
    int64_t in_per = shape_numel(&p->input) / p->batch;
    NL(e);
    if (t->loss == LOSS_MSE) {
        E(e, "/* nn.MSELoss() (mean) over n rows; writes d loss / d y into dy unless dy is NULL */");
        open_block(e, xfmt("%s float loss_fn(const float *y, const float *target, float *dy, "
                           "int *bad, int n)\n", e->pass));
        E(e, "double sum = 0.0;");
        E(e, "const int count = %s;", rows_expr(out_per));
        E(e, "const float scale = (float)(2.0 / (double)count);");
        E(e, "*bad = 0;");
        open_block(e, "for (int i = 0; i < count; i++) ");
        E(e, "float d = y[i] - target[i];");
        E(e, "sum += (double)d * d;");
        E(e, "if (dy) dy[i] = d * scale;");
        close_block(e);
        E(e, "return (float)(sum / (double)count);");
        close_block(e);
    } else {
        int64_t C = p->output.d[p->output.ndim - 1];
        int64_t per = out_per / C; /* labels per example: [N, T, V] is [N * T, V] */
        E(e, "/* nn.CrossEntropyLoss() (mean) over the integer class labels of n rows%s; writes",
          per > 1 ? xfmt(" (%lld per example: the output as [n * %lld, %lld])", (long long)per,
                         (long long)per, (long long)C) : "");
        E(e, "   d loss / d y into dy unless dy is NULL; a label outside [0, %lld) sets *bad */",
          (long long)C);
        open_block(e, xfmt("%s float loss_fn(const float *y, const int32_t *target, float *dy, "
                           "int *bad, int n)\n", e->pass));
        E(e, "double sum = 0.0;");
        E(e, "const int rows = %s;", rows_expr(per));
        E(e, "const float scale = (float)(1.0 / (double)rows);");
        E(e, "*bad = 0;");
        open_block(e, "for (int b = 0; b < rows; b++) ");
        E(e, "const float *row = y + b * %lld;", (long long)C);
        E(e, "int32_t label = target[b];");
        E(e, "float mx = row[0], s = 0.0f, lse;");
        open_block(e, xfmt("if (label < 0 || label >= %lld) ", (long long)C));
        E(e, "nn_set_error(\"%s: class label %%ld of row %%d is out of range [0, %lld)\", "
             "(long)label, b);", n, (long long)C);
        E(e, "*bad = 1;");
        E(e, "return NAN;");
        close_block(e);
        E(e, "for (int c = 1; c < %lld; c++) if (row[c] > mx) mx = row[c];", (long long)C);
        E(e, "for (int c = 0; c < %lld; c++) s += expf(row[c] - mx);", (long long)C);
        E(e, "lse = mx + logf(s);");
        E(e, "sum += (double)lse - row[label];");
        E(e, "if (dy)");
        E(e, "    for (int c = 0; c < %lld; c++)", (long long)C);
        E(e, "        dy[b * %lld + c] = (expf(row[c] - lse) - (c == label ? 1.0f : 0.0f)) * scale;",
          (long long)C);
        close_block(e);
        E(e, "return (float)(sum / (double)rows);");
        close_block(e);
    }
    const char *T = t->loss == LOSS_MSE ? "float" : "int32_t";
    NL(e);
    const char *XT = api_xtype(e);
    open_block(e, xfmt("%s float loss_rows(%s *net, int n, %s *x, const %s *target)\n",
                       e->pass, n, XT, T));
    E(e, "int bad;");
    check_one_value(e, "loss", NULL, " NAN");
    if (p->input_dtype == DT_I32)
        E(e, "if (bad_index(x, n, \"%s_loss\")) return NAN; /* and nothing changes */", n);
    E(e, "memcpy(net->act, x, sizeof *x * %s); /* for a later backward */",
      rows_size(in_per));
    E(e, "net->rows = n;");
    E(e, "return loss_fn(fwd(net, net->act, n), target, NULL, &bad, n);");
    close_block(e);
    NL(e);
    open_block(e, xfmt("float %s_loss(%s *net, %s *x, const %s *target)\n", n, n, XT, T));
    E(e, "return loss_rows(net, %s_BATCH, x, target);", n);
    close_block(e);
    NL(e);
    open_block(e, xfmt("float %s_loss_n(%s *net, int n, %s *x, const %s *target)\n", n,
                       n, XT, T));
    check_rows(e, "loss_n", " NAN");
    E(e, "return loss_rows(net, n, x, target);");
    close_block(e);
    NL(e);

    open_block(e, xfmt("%s float step_rows(%s *net, int n, %s *x, const %s *target)\n",
                       e->pass, n, XT, T));
    E(e, "int bad;");
    E(e, "float loss;");
    check_one_value(e, "train_step", NULL, " NAN");
    if (p->input_dtype == DT_I32)
        E(e, "if (bad_index(x, n, \"%s_train_step\")) return NAN; /* and nothing changes */",
          n);
    E(e, "/* x is read in place (no copy); the first write of each gradient replaces");
    E(e, "   it, so zero_grad costs nothing; bwd() updates each parameter as soon as");
    E(e, "   its gradient is complete */");
    E(e, "/* train-step hooks (data parallel: buffers follow rank 0) */");
    E(e, "if (net->model.hooks && net->model.hooks->pre_forward(net->model.hooks, &net->model))");
    E(e, "    return NAN; /* and nothing changes */");
    E(e, "net->rows = n;");
    E(e, "loss = loss_fn(fwd(net, %s, n), target, net->dy, &bad, n);", api_x(e, "x"));
    E(e, "if (bad) return loss;");
    if (t->opt == OPT_ADAM) {
        E(e, "{");
        E(e, "    const double step = (double)(net->steps + 1);");
        E(e, "    const double bc1 = 1.0 - pow(%s, step), bc2 = 1.0 - pow(%s, step);",
          dlit(t->beta1), dlit(t->beta2));
        E(e, "    net->neg_step_size = (float)-(%s / bc1);", dlit(t->lr));
        E(e, "    net->bc2_sqrt = (float)sqrt(bc2);");
        E(e, "}");
    }
    E(e, "bwd(net, %s, net->dy, NULL, 1, n);", api_x(e, "x"));
    /* with hooks, bwd() told them of each complete gradient instead of
       stepping: after pre_step (the gradients averaged over the ranks),
       the tensors it would have stepped */
    open_block(e, "if (net->model.hooks) ");
    E(e, "if (net->model.hooks->pre_step(net->model.hooks, &net->model))");
    E(e, "    return NAN; /* the gradients are not the average: no step */");
    for (int k = 0; k < p->ntensors; k++)
        if (p->tensors[k].requires_grad && e->s->complete_at[k] >= 0)
            E(e, "%s /* %s */", opt_step(e, k), ccomment(p->tensors[k].name));
    close_block(e);
    E(e, "net->steps++;");
    E(e, "return loss;");
    close_block(e);
    NL(e);
    open_block(e, xfmt("float %s_train_step(%s *net, %s *x, const %s *target)\n", n, n,
                       XT, T));
    E(e, "return step_rows(net, %s_BATCH, x, target);", n);
    close_block(e);
    NL(e);
    open_block(e, xfmt("float %s_train_step_n(%s *net, int n, %s *x, const %s *target)\n",
                       n, n, XT, T));
    check_rows(e, "train_step_n", " NAN");
    E(e, "return step_rows(net, n, x, target);");
    close_block(e);
}
