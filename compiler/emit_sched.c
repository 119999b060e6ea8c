/* emit_sched.c: the backward schedule, one pass over the ops each.
 *
 * Fusions (forward): a linear-like op (takes_epilogue) runs the next op's
 * elementwise epilogue when that op's backward reads only its output and
 * the linear's output has no other reader: the pre-activation is never
 * stored.  A batch norm and a residual's sum do the same with a ReLU after
 * them (a batch norm not when --inference folds it into the layer before).  Masks (backward): a BLAS-size op that takes_mask applies the
 * backward of the ReLU-like op before it (mask_backward) as it stores its
 * input gradient, when it is that op's only reader; the ReLU's backward is
 * skipped.
 *
 * Gradients: walking backward, the first op to touch a tensor's gradient
 * writes it in a train step instead of adding (so the gradients need no
 * zeroing), and the last (the first use in forward order) completes it, so
 * the optimizer can step that tensor right there while it is in cache.
 * trainable_before / trainable_here say where backward can stop computing
 * anything but dx. */
#include "emit.h"

/* --inference: a batch norm (fold_ok) whose only input is op a's output,
   read by it alone, channels in dimension 1 of a rank-2 or rank-4 value
   with as many channels as a's weight has rows */
static int can_fold(const program *p, const op *a, const op *b, const int *readers,
                    int fused)
{
    if (!a->d->folds_bn || !b->d->fold || !b->d->fold_ok(b->m) || fused || b->nin != 1 ||
        b->in[0] != a->out || readers[a->out] != 1 || a->m->nparams < 1 || a->m->has_borrow)
        return 0;
    /* the layer's output channels must be the norm's: dimension 1 of a
       conv2d's [N, O, H, W] or of a linear's [N, O] (not a linear on the
       last dimension of a larger value: found by tests/diff s3/n388) */
    const shape *y = &op_out(p, a)->shape;
    const tensor *w = &p->tensors[a->m->tens_ids[0]];
    return y->ndim == a->d->folds_bn && w->shape[0] == y->d[1];
}

sched *plan_schedule(const program *p, int no_blas, int inference)
{
    sched *s = xalloc(sizeof *s);
    int n = p->nops;
    s->fused = xalloc((size_t)n + 1);
    s->folded = xalloc((size_t)n + 1);
    s->masked = xalloc((size_t)n + 1);
    s->tbase = xalloc(sizeof *s->tbase * (size_t)(n + 1));
    s->trainable_before = xalloc((size_t)n + 1);
    s->trainable_here = xalloc((size_t)n + 1);
    s->complete_at = xalloc(sizeof *s->complete_at * (size_t)(p->ntensors + 1));
    int *readers = xalloc(sizeof *readers * (size_t)(p->nvalues + 1));
    s->last_reader = xalloc(sizeof *s->last_reader * (size_t)(p->nvalues + 1));
    for (int v = 0; v < p->nvalues; v++)
        s->last_reader[v] = -1;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < p->ops[i].nin; k++) {
            readers[p->ops[i].in[k]]++;
            s->last_reader[p->ops[i].in[k]] = i;
        }
    s->readers = readers;
    int total = 0;
    for (int i = 0; i < n; i++) {
        s->tbase[i] = total; /* the op's tensors: its parameters, then a borrowed weight */
        total += p->ops[i].m->nparams + p->ops[i].m->has_borrow;
    }
    s->tbase[n] = total;
    s->set = xalloc((size_t)total + 1);

    for (int i = 0; i + 1 < n; i++) {
        const op *a = &p->ops[i], *b = &p->ops[i + 1];
        s->fused[i] = a->d->takes_epilogue && b->d->epilogue_expr && !op_reads_input(b->m) &&
                      (a->d->takes_epilogue == 1 || b->d->mask_backward) && b->nin == 1 &&
                      b->in[0] == a->out && readers[a->out] == 1;
    }
    for (int i = 0; inference && i + 1 < n; i++) {
        s->folded[i] = (char)can_fold(p, &p->ops[i], &p->ops[i + 1], readers, s->fused[i]);
        if (s->folded[i]) /* a folded batch norm is emitted with its layer, unfused */
            s->fused[i + 1] = 0;
        i += s->folded[i];
    }
    for (int i = 1; i < n; i++) {
        const op *a = &p->ops[i - 1], *b = &p->ops[i];
        /* in a chain: the ReLU's input is read by the ReLU alone, made right
           before it, so its gradient passes through scratch */
        int u = a->nin == 1 ? a->in[0] : -1;
        s->masked[i] = b->d->takes_mask && op_blas(p, b, no_blas) && a->d->mask_backward &&
                       b->nin == 1 && b->in[0] == a->out && readers[a->out] == 1 && u >= 0 &&
                       readers[u] == 1 && p->values[u].producer == i - 2;
    }

    char *touched = xalloc((size_t)p->ntensors + 1);
    for (int i = n - 1; i >= 0; i--) {
        const module *m = p->ops[i].m;
        for (int k = 0; k < m->nparams + m->has_borrow; k++) {
            int t = k < m->nparams ? m->tens_ids[k] : m->borrow;
            s->set[s->tbase[i] + k] = !touched[t];
            touched[t] = 1;
        }
    }
    for (int k = 0; k < p->ntensors; k++)
        s->complete_at[k] = -1;
    int any = 0;
    for (int i = 0; i < n; i++) {
        const module *m = p->ops[i].m;
        s->trainable_before[i] = (char)any;
        for (int k = 0; k < m->nparams + m->has_borrow; k++) {
            int t = k < m->nparams ? m->tens_ids[k] : m->borrow;
            if (s->complete_at[t] < 0)
                s->complete_at[t] = i;
            if (p->tensors[t].requires_grad)
                s->trainable_here[i] = 1;
        }
        any |= s->trainable_here[i];
    }
    /* whose gradient backward needs: the input's for dx only; an op's output's
       when the op or anything before it on its inputs' paths trains */
    s->value_need = xalloc((size_t)p->nvalues + 1);
    s->value_need[0] = NEED_DX;
    for (int i = 0; i < n; i++) {
        const op *o = &p->ops[i];
        char need = s->trainable_here[i] ? NEED_YES : NEED_NO;
        for (int k = 0; k < o->nin; k++)
            if (s->value_need[o->in[k]] > need)
                need = s->value_need[o->in[k]];
        s->value_need[o->out] = need;
    }
    return s;
}
