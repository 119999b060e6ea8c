/* emit.h: what the C emitter's files share.
 *
 *   emit_sched.c   the backward schedule: fusions, which op first writes
 *                  each gradient, where each gradient is complete, where
 *                  dx is still needed (one pass, linear in the ops)
 *   emit_layout.c  the instance's memory: regions and activation buffers
 *   emit.c         the kernels and the forward / backward passes (through
 *                  the ops' emitters, ops/op.h), and emit_c()
 *   emit_api.c     the header, tables, struct, create / init / modes and
 *                  the public forward / backward entry points
 *   emit_train.c   loss, optimizer kernels, the train step
 */
#ifndef NNGEN_EMIT_H
#define NNGEN_EMIT_H

#include "nngen.h"
#include "ops/op.h"

/* ---- emit_sched.c ---------------------------------------------------------- */

enum { NEED_NO, NEED_DX, NEED_YES }; /* whose gradient: nobody's, dx's only, a parameter's */

typedef struct sched {
    char *fused;                /* [nops] op i runs op i+1 as its epilogue (writes
                                   op i+1's output; op i's output is never stored) */
    char *masked;               /* [nops] op i applies op i-1's mask backward as it
                                   stores gx; op i-1's own backward is skipped */
    int *tbase;                 /* [nops + 1] op i's own tensors are set[tbase[i] + k] */
    char *set;                  /* the first write of that gradient in backward order */
    int *complete_at;           /* [ntensors] the op whose backward completes the
                                   gradient (the first use in forward order), or -1 */
    char *trainable_before;     /* [nops] a trainable tensor in an op before op i */
    char *trainable_here;       /* [nops] op i has a trainable tensor */
    int *readers;               /* [nvalues] ops reading the value */
    int *last_reader;           /* [nvalues] the last of them in forward order, or -1 */
    char *value_need;           /* [nvalues] NEED_*: whether backward needs its gradient */
    char *folded;               /* [nops] --inference: op i + 1, a batch norm, is folded
                                   into op i's weight and bias in eval mode */
} sched;
sched *plan_schedule(const program *p, int no_blas, int inference);

/* ---- emit_layout.c ----------------------------------------------------------- */

typedef struct layout {
    int64_t data, grad, act, scratch; /* floats per region */
    int64_t opt;                      /* optimizer state: 1-3 copies of the parameters */
    int64_t dy;                       /* the loss gradient (training only) */
    int64_t *buf_off;                 /* activation buffer offsets within act */
    int64_t scratch_each;
    const char **bufname;             /* C expression of each activation buffer */
    const char **saved;               /* [nops * OP_MAX_SAVED] extra saved tensors */
    const char **fold;                /* [nops] a folded pair's weight and bias (inference) */
    const char **vgrad;               /* [nvalues] a value's own gradient buffer ("R + 16"),
                                         or NULL: it passes through scratch */
    int64_t vgrad_floats;
    int64_t header_bytes;
    int64_t total_bytes;
} layout;
layout plan_layout(const program *p, const emit_opts *o, const sched *s);

/* ---- the emitter --------------------------------------------------------------- */

typedef struct kernel_set {
    const char **text;          /* kernel text with its name as '@' */
    const char **name;
    int n, cap;
} kernel_set;

struct emitter {
    strbuf *out;                /* where E() writes */
    int indent;
    const program *p;
    const emit_opts *o;
    const sched *s;
    const layout *L;
    const char *n;              /* the spec's name: prefix of every symbol */
    strbuf *kernels;            /* op kernels go here (kend) */
    strbuf kbuf;                /* the kernel being written */
    kernel_set ks;              /* every kernel emitted so far */
    const char **optname;       /* by tensor: its optimizer kernel */
    const char *pass;           /* "static", or "PASS" (inlined) for small networks */
};

void E(emitter *e, const char *fmt, ...) PRINTF(2, 3);
void NL(emitter *e);
void open_block(emitter *e, const char *head);
void close_block(emitter *e);
const char *cstr(const char *s);
const char *ccomment(const char *s);    /* spec text made safe inside a C comment */
int64_t align16(int64_t n);
/* Writes text (a static function with '@' for its name) once per distinct
   text into *to; returns its name (prefix + id on first emission). */
const char *kernel_once(emitter *e, strbuf *to, const char *text, const char *prefix, int id,
                        const char *comment);
int any_blas(const emitter *e);

/* emit_api.c */
void emit_header(emitter *e, FILE *h);
const char *api_xtype(const emitter *e);        /* "const float" or "const int32_t" */
const char *api_x(const emitter *e, const char *x); /* x as fwd() and bwd() take it */
void emit_tables(emitter *e);
void emit_struct_and_create(emitter *e);
void emit_init(emitter *e);
void emit_entry_points(emitter *e);
void check_rows(emitter *e, const char *fn, const char *ret);
/* `if (one_value(net, n, "P_FN")) { ON_ERROR return RET; }` when a batch
   norm can see one value per channel (n = 1 row); nothing otherwise */
void check_one_value(emitter *e, const char *fn, const char *on_error, const char *ret);

/* emit_train.c */
void emit_opt_kernels(emitter *e);
const char *opt_call(emitter *e, int k);
void emit_train(emitter *e);

#endif
