/* emit_layout.c: the instance's memory.
 *
 * One allocation, 64-byte aligned (P_place takes it from the caller):
 *     [header: struct P, HEADER_BYTES] [data: parameters, then buffers]
 *     [grad: gradients of the parameters] [act: saved activations]
 *     [scratch: 2 gradient buffers] [opt: optimizer state] [dy]
 * Every region and every tensor inside it starts on a 64-byte boundary.
 *
 * Training layout: every activation that backward reads has its own buffer
 * (buffer 0 is the input, read through the pointer X0), and the extra
 * tensors ops save for backward follow; two scratch buffers carry the
 * gradients flowing back.  A linear layer's output is never stored when
 * its activation runs in its epilogue.
 * Inference layout (--inference): no gradients; each layer's output goes
 * to one of two buffers used in turn, and the last layer writes straight
 * into the caller's y. */
#include "emit.h"

layout plan_layout(const program *p, const emit_opts *o, const sched *s)
{
    layout L = {0};
    L.data = p->param_floats;
    L.buf_off = xalloc(sizeof *L.buf_off * (size_t)p->nbufs);
    L.bufname = xalloc(sizeof *L.bufname * (size_t)p->nbufs);
    L.saved = xalloc(sizeof *L.saved * (size_t)(p->nops * OP_MAX_SAVED + 1));
    L.bufname[0] = "X0";
    int64_t maxbuf = 0;
    for (int i = 1; i < p->nbufs; i++)
        if (p->buf_numel[i] > maxbuf)
            maxbuf = p->buf_numel[i];
    char *dead = xalloc((size_t)p->nbufs + 1);
    for (int i = 0; i < p->nops; i++)
        if (s->fused[i])
            dead[op_out(p, &p->ops[i])->buf] = 1;
    if (o->inference) {
        /* buffers by liveness: an op's output takes a free slot; a slot is free
           again after the last reader of the value in it.  A chain uses two
           slots in turn; a residual's skip keeps its slot until the sum. */
        int last_real = -1, nslots = 0;
        for (int i = 0; i < p->nops; i++)
            if (!p->ops[i].d->view)
                last_real = op_out(p, &p->ops[i])->buf;
        int *slot_of = xalloc(sizeof *slot_of * (size_t)(p->nbufs + 1)); /* slot + 1 */
        int *last_use = xalloc(sizeof *last_use * (size_t)(p->nbufs + 1));
        for (int i = 0; i < p->nops; i++)
            for (int k = 0; k < p->ops[i].nin; k++)
                last_use[op_in(p, &p->ops[i], k)->buf] = i;
        char *busy = xalloc((size_t)p->nops + 2);
        for (int i = 0; i < p->nops; i++) {
            int b = op_out(p, &p->ops[i])->buf;
            if (!p->ops[i].d->view && !L.bufname[b] && !dead[b]) {
                if (b == last_real) {
                    L.bufname[b] = "Y";
                } else {
                    int k = 0;
                    while (busy[k])
                        k++;
                    busy[k] = 1;
                    slot_of[b] = k + 1;
                    if (k + 1 > nslots)
                        nslots = k + 1;
                    L.bufname[b] = k == 0 ? "A" : k == 1 ? "A + PING" : xfmt("A + %d * PING", k);
                }
            }
            /* free the inputs read last here; a fused pair (one kernel for
               ops i and i + 1) and a folded one (one kernel in eval mode)
               free op i's inputs only after op i + 1's output has its slot */
            if (s->fused[i] || s->folded[i])
                continue;
            for (int j = i > 0 && (s->fused[i - 1] || s->folded[i - 1]) ? i - 1 : i; j <= i; j++)
                for (int q = 0; q < p->ops[j].nin; q++) {
                    int ib = op_in(p, &p->ops[j], q)->buf;
                    if (slot_of[ib] && last_use[ib] <= i)
                        busy[slot_of[ib] - 1] = 0;
                }
        }
        L.scratch_each = align16(maxbuf);
        L.act = (nslots > 2 ? nslots : 2) * L.scratch_each; /* the slots */
        /* work space of forward kernels (saved_forward), after the slots */
        for (int i = 0; i < p->nops; i++)
            for (int k = 0; k < p->ops[i].d->saved_forward && k < p->ops[i].nsaved; k++) {
                if (p->ops[i].d->saved_blas_only && !op_blas(p, &p->ops[i], o->no_blas)) {
                    L.saved[i * OP_MAX_SAVED + k] = "NULL";
                    continue;
                }
                L.saved[i * OP_MAX_SAVED + k] = xfmt("(float *)(A + %lld)", (long long)L.act);
                L.act += align16(p->ops[i].saved_numel[k]);
            }
        /* a folded pair's weight and bias (computed by each eval forward) */
        L.fold = xalloc(sizeof *L.fold * (size_t)(p->nops + 1));
        for (int i = 0; i < p->nops; i++)
            if (s->folded[i]) {
                const tensor *w = &p->tensors[p->ops[i].m->tens_ids[0]];
                L.fold[i] = xfmt("(A + %lld)", (long long)L.act);
                L.act += align16(w->numel + w->shape[0]);
            }
    } else {
        L.act = align16(p->buf_numel[0]); /* P_forward's copy of x */
        for (int i = 1; i < p->nbufs; i++) {
            L.buf_off[i] = L.act;
            L.bufname[i] = xfmt("A + %lld", (long long)L.act);
            if (!dead[i])
                L.act += align16(p->buf_numel[i]);
        }
        for (int i = 0; i < p->nops; i++)
            for (int k = 0; k < p->ops[i].nsaved; k++) {
                const op *oi = &p->ops[i];
                if (oi->d->saved_blas_only && !op_blas(p, oi, o->no_blas)) {
                    L.saved[i * OP_MAX_SAVED + k] = "NULL";
                    continue;
                }
                L.saved[i * OP_MAX_SAVED + k] = xfmt("(%s *)(A + %lld)",
                                                     oi->saved_dtype[k] == DT_F32 ? "float"
                                                     : oi->saved_dtype[k] == DT_I32 ? "int32_t"
                                                                                    : "int64_t",
                                                     (long long)L.act);
                L.act += align16(oi->saved_numel[k] * (oi->saved_dtype[k] == DT_I64 ? 2 : 1));
            }
        /* a gradient buffer of its own for every value read more than once,
           or read by another op than the next (see emit_backward) */
        L.vgrad = xalloc(sizeof *L.vgrad * (size_t)(p->nvalues + 1));
        for (int v = 0; v < p->nvalues; v++) {
            int r = s->readers[v], prod = p->values[v].producer;
            if (r >= 2 || (r == 1 && s->last_reader[v] != prod + 1)) {
                L.vgrad[v] = xfmt("(R + %lld)", (long long)L.vgrad_floats);
                L.vgrad_floats += align16(shape_numel(&p->values[v].shape));
            }
        }
        L.grad = p->grad_floats;
        L.scratch_each = align16(maxbuf > p->buf_numel[0] ? maxbuf : p->buf_numel[0]);
        L.scratch = 2 * L.scratch_each + L.vgrad_floats;
        int copies = 0;
        if (p->train.opt == OPT_SGD && p->train.momentum != 0)
            copies = 1;
        else if (p->train.opt == OPT_ADAM)
            copies = p->train.amsgrad ? 3 : 2;
        L.opt = copies * p->grad_floats;
        L.dy = p->train.loss != LOSS_NONE ? align16(shape_numel(&p->output)) : 0;
    }
    /* the struct: nn_model, the tensor array, the generator (about 2.5 KiB)
       and a few scalars; generous for any ABI, checked by a compile-time
       assertion in the output */
    L.header_bytes = (256 + 2560 + 128 * (int64_t)p->ntensors + 63) / 64 * 64;
    /* --weights --inference: the parameters are the compiled-in array, not
       in the instance */
    L.total_bytes = L.header_bytes + 4 * ((BAKED_RO(o) ? 0 : L.data) + L.grad + L.act +
                                          L.scratch + L.opt + L.dy);
    return L;
}
