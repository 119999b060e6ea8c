/* nngen: the compiler's one internal header.  A section per source file;
 * the pipeline (cli.c) is: yaml.c reads the file into a tree of ynodes
 * with locations, check.c runs the checking phases (build.c, rules.c,
 * shapes.c, names.c, plan.c, train.c) that turn it into a checked program,
 * and the emitters write it out (emit*.c: C; emit_py.c: PyTorch; dot.c).
 * What each layer is and does lives in one file under ops/ (ops/op.h).
 */
#ifndef NNGEN_H
#define NNGEN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <nngen/rt.h>

#if defined(__GNUC__)
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF(a, b)
#define NORETURN
#endif

/* Documented limits (README "Limits"). */
#define MAX_NESTING 64          /* YAML nesting depth and module nesting depth */
#define MAX_DIM_SIZE 2147483647 /* any single size: dimension, batch, features */
#define MAX_TENSOR_ELEMS 2147483647LL /* elements of one tensor or activation */
#define MAX_TOTAL_BYTES ((int64_t)1 << 40)  /* one instance: 1 TiB */
#define MAX_SPEC_BYTES (16 * 1024 * 1024)   /* size of a spec file */
#define MAX_REPEAT 100000

/* ---- util.c: memory, strings, diagnostics ---------------------------- */

typedef struct loc {
    const char *file;
    int line, col;              /* 1-based; 0 when unknown */
} loc;

void *xalloc(size_t n);         /* zeroed, from the compilation arena */
void *xrealloc_array(void *p, size_t old_n, size_t new_n, size_t size);
char *xstrdup(const char *s);
char *xfmt(const char *fmt, ...) PRINTF(1, 2);
void arena_release(void);

typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;
void sb_putc(strbuf *b, char c);
void sb_puts(strbuf *b, const char *s);
void sb_printf(strbuf *b, const char *fmt, ...) PRINTF(2, 3);
void sb_vprintf(strbuf *b, const char *fmt, va_list ap);

/* Source text of the spec, for caret lines under errors. */
void diag_set_source(const char *file, const char *text, size_t len);
/* Report a user error at l and unwind to main (exit status 1). */
NORETURN void error_at(loc l, const char *fmt, ...) PRINTF(2, 3);
/* A warning at l: one line `FILE:LINE:COL: warning: MESSAGE` on standard
   error, and compilation goes on (the exit status stays 0).  Called only
   once the spec is known to be valid, so that a failing run's standard
   error still starts with its error. */
void warn_at(loc l, const char *fmt, ...) PRINTF(2, 3);
/* An I/O error (exit status 3). */
NORETURN void io_error(const char *fmt, ...) PRINTF(1, 2);
/* A bug in nngen itself. */
NORETURN void die_bug(const char *file, int line, const char *what);
#define unreachable() die_bug(__FILE__, __LINE__, "unreachable")
extern jmp_buf diag_jmp;        /* set by main; error_at longjmps with 1 or 3 */

/* The candidate closest to word by edit distance, or NULL if none is close. */
const char *suggest(const char *word, const char *const *cands, int n);
/* " (did you mean 'x'?)" or "" */
const char *did_you_mean(const char *word, const char *const *cands, int n);
int is_identifier(const char *s);
/* Python's repr() of a double (shortest round-trip form). */
void py_float_repr(char *buf, size_t n, double v);

/* ---- cli.c: the command line (main.c calls it) ------------------------ */
/* Runs nngen with these arguments; the exit status (0 ok, 1 spec wrong,
   2 usage, 3 I/O).  Everything it allocated is released on return. */
int nngen_main(int argc, char **argv);

/* ---- cnames.c: names the spec's name must not take ------------------- */
/* Why s cannot be the spec's name (a keyword, a library or runtime name, a
   name the generated file uses), or NULL when it can. */
const char *reserved_name_reason(const char *s);

/* ---- yaml.c: libyaml events -> ynode tree ---------------------------- */

typedef enum { Y_SCALAR, Y_SEQ, Y_MAP } ykind;
typedef struct ynode ynode;
struct ynode {
    ykind kind;
    loc loc;
    const char *str;            /* scalar text */
    int quoted;                 /* scalar was quoted or a block scalar: a string */
    int n;                      /* items of a sequence, pairs of a mapping */
    ynode **items;              /* sequence items; mapping values */
    ynode **keys;               /* mapping keys (scalars) */
};
ynode *yaml_load(const char *path, const char *text, size_t len);
void yaml_release(void);       /* after an error unwound through yaml_load */

/* ---- spec.c: typed reads of YAML nodes (shared by every phase) ------- */

const char *describe(const ynode *n);           /* "a list", "'x'", ... for messages */
int is_null(const ynode *n);
ynode *map_get(const ynode *m, const char *key);
void expect_kind(const ynode *n, ykind k, const char *what);
/* Unknown keys are errors: reports the first with the nearest allowed key. */
void check_keys(const ynode *m, const char *const *allowed, int n, const char *what);
int64_t get_int(const ynode *n, const char *what, int64_t min, int64_t max);
uint64_t get_u64(const ynode *n, const char *what);
double get_num(const ynode *n, const char *what);
int get_bool(const ynode *n, const char *what);
const char *get_str(const ynode *n, const char *what);
int is_int_text(const char *s);
size_t hash_str(const char *s);

/* ---- the checked program -------------------------------------------- */

typedef struct shape {
    int ndim;                   /* including the batch dimension */
    int64_t d[NN_MAX_DIM];
} shape;
int64_t shape_numel(const shape *s);
void shape_str(char *buf, size_t n, const shape *s, int with_batch);
const char *shape_text(const shape *s);

/* Element types of tensors and values. */
typedef enum { DT_F32, DT_I32, DT_I64 } dtype;

typedef enum {
    I_DEFAULT, I_ZEROS, I_ONES, I_CONSTANT, I_UNIFORM, I_NORMAL,
    I_XAVIER_UNIFORM, I_XAVIER_NORMAL, I_KAIMING_UNIFORM, I_KAIMING_NORMAL,
    I_TRUNC_NORMAL, I_MIXTURE, I_CUSTOM
} init_kind;
extern const char *const init_names[];  /* by init_kind */

typedef struct mix_part {
    double p;
    init_kind kind;             /* I_CONSTANT, I_UNIFORM, I_NORMAL */
    double a, b;
} mix_part;

typedef struct initializer {
    init_kind kind;
    loc loc;
    double a, b, c, d;          /* uniform a,b; normal/trunc mean,std,(lo,hi); constant a; gain a; kaiming a */
    int mode;                   /* nn_fan_mode */
    int nonlinearity;           /* nn_nonlinearity */
    const char *custom;         /* C function name */
    int nmix;
    mix_part *mix;
    int has_zero_abs_below;
    double zero_abs_below;
    int64_t zero_row;           /* a default's row + 1 to zero after (embedding's
                                   padding_idx); 0: none */
} initializer;
extern const char *const nl_names[];    /* torch's nonlinearity names, by nn_nonlinearity */
#define N_NL_NAMES 12

typedef struct op_desc op_desc;

typedef struct rule_param {
    const char *name;           /* "weight" */
    initializer *init;
    loc loc;
} rule_param;

typedef struct rule {
    loc loc;
    const char *at;             /* NULL: the module itself */
    loc at_loc;
    const op_desc *layer;       /* NULL: any */
    int nparams;
    rule_param *params;
} rule;

/* One layer argument's value (its schema is the op's arg_spec). */
typedef struct argval {
    int given;                  /* written in the spec */
    int inferred;               /* set from the incoming shape (linear 'in') */
    loc loc;                    /* where written; the layer when not */
    int64_t i;                  /* int and bool values */
    double d;                   /* num values (ints too) */
    const char *text;           /* num: the scalar as written */
    int is_int;                 /* num: written as an integer literal */
    int64_t i2;                 /* pair: the second value (= i for a single int) */
    int is_list;                /* pair: written as a list [a, b] */
    const char *word;           /* pair: the word given instead ("same"), or NULL */
    int ndims;                  /* shape: the sizes given (an int is one) */
    int64_t dims[NN_MAX_DIM];
} argval;

typedef struct module module;
typedef struct child {
    const char *name;
    module *m;
    loc loc;                    /* where this use is written */
} child;

/* What a container computes with its children. */
typedef enum {
    MOD_SEQUENTIAL,             /* children in order */
    MOD_RESIDUAL,               /* x + children in order (x): {residual: [...]} */
    MOD_RESIDUAL2               /* body(x) + shortcut(x): {residual: {body:, shortcut:}} */
} module_kind;

struct module {
    int id;
    const op_desc *op;          /* the layer's op; NULL for a container */
    module_kind kind;           /* a container's kind */
    loc loc;
    const char *origin;         /* "block 'block1'", "shared 'tied'" or NULL */
    int nchildren;
    child *children;
    argval *args;               /* layer arguments, by the op's arg_spec index */
    loc inferred_at;            /* the use that fixed an inferred argument */
    /* meta */
    int frozen;
    int nrules;
    rule *rules;
    const char *shared_name;    /* declared under shared: */
    int used;                   /* shared: number of uses so far */
    shape first_in;             /* shared: input shape of the first use */
    /* filled by naming */
    const char *path;           /* canonical path */
    int nparams, nbuffers;      /* own tensors: parameters, then buffers */
    const char **tens_local;    /* [nparams + nbuffers] local names */
    int *tens_ids;              /* [nparams + nbuffers] tensor ids */
    char *tens_tied;            /* [nparams + nbuffers]: this slot is another layer's
                                   tensor ({tied: PATH}, SPEC 1.2.5), or NULL: none is */
    int has_borrow;             /* {tied: PATH, transpose: true}: the layer computes with */
    int borrow;                 /* this tensor transposed, which is not its own (not in
                                   its state dict, not frozen with it, never its init) */
    loc tied_loc;               /* where the tie is written */
    char *extra;                /* extra_repr() */
    int constructed;            /* init planning */
};
const char *module_class(const module *m);  /* torch class: "Linear", "Sequential", "Residual" */

typedef struct tensor {
    const char *name;           /* canonical */
    const char *local;          /* "weight" */
    module *owner;
    int ndim;
    int64_t shape[NN_MAX_DIM];
    int64_t numel;
    dtype dtype;
    int is_buffer;              /* in the state dict, not a parameter; never a gradient */
    int requires_grad;
    int64_t offset;             /* elements into the data (and grad) blocks */
} tensor;

typedef struct state_entry {
    const char *key;
    int tensor;
} state_entry;

typedef struct init_step {
    int tensor;
    int discard;                /* draw the default of a {tied: PATH} layer's own weight
                                   (shaped as tensor) and throw it away, as torch does */
    const initializer *init;    /* I_DEFAULT: the owner's op default (op_default_init) */
    module *m;
} init_step;

/* A value of the forward pass: the network input, or an op's output. */
typedef struct value {
    shape shape;                /* with the batch dimension first */
    dtype dtype;
    int buf;                    /* activation buffer; a view shares its input's */
    int producer;               /* op index; -1 for the network input */
} value;

#define OP_MAX_IN 4
#define OP_MAX_SAVED 4
/* One use of a layer in the forward pass. */
typedef struct op {
    module *m;
    const op_desc *d;           /* m->op */
    const char *use_path;       /* the path of this use ("4") */
    int nin;
    int in[OP_MAX_IN];          /* value ids */
    int out;                    /* value id */
    int nsaved;                 /* extra tensors saved for backward (masks, statistics) */
    int64_t saved_numel[OP_MAX_SAVED];
    dtype saved_dtype[OP_MAX_SAVED];
} op;

typedef enum { LOSS_NONE, LOSS_MSE, LOSS_CROSS_ENTROPY } loss_kind;
typedef enum { OPT_NONE, OPT_SGD, OPT_ADAM } opt_kind;
typedef struct train_cfg {
    loss_kind loss;
    opt_kind opt;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    int nesterov, amsgrad;
} train_cfg;

typedef struct program {
    const char *file;
    const char *name;
    int64_t batch;
    shape input;                /* with batch */
    dtype input_dtype;          /* DT_F32, or DT_I32: indices for an embedding */
    loc input_dtype_loc;
    shape output;
    int has_seed;
    uint64_t seed;
    module *root;
    int nshared;
    module **shared;
    int nmodules;
    module **modules;
    int ntensors;
    tensor *tensors;            /* parameters first, then buffers */
    int nparam_tensors;         /* named_parameters() */
    int nstate;
    state_entry *state;
    int nsteps;
    init_step *steps;
    int nops;
    op *ops;
    int nvalues;
    value *values;              /* value 0 is the input */
    int nbufs;
    int64_t *buf_numel;         /* floats in each activation buffer; buffer 0 is x */
    int ncustom;
    const char **custom;        /* distinct custom init function names */
    train_cfg train;
    int64_t param_floats;       /* the data block: parameters and buffers */
    int64_t grad_floats;        /* the gradient block: the parameters' part */
} program;

/* The value an op reads (k-th input) and writes. */
static inline const value *op_in(const program *p, const op *o, int k)
{
    return &p->values[o->in[k]];
}
static inline const value *op_out(const program *p, const op *o)
{
    return &p->values[o->out];
}

/* check.c: the phases in order (build.c, rules.c, shapes.c, names.c,
 * plan.c, train.c), from the document to the checked program. */
program *check_program(const char *file, ynode *doc);
/* The command line's overrides of the spec (--name, --batch): NULL / 0 for
   none.  They replace the spec's name: and batch: as if written there. */
typedef struct check_opts {
    const char *name;
    int64_t batch;
} check_opts;
program *check_program_opts(const char *file, ynode *doc, const check_opts *o);

/* ---- view.c: the runtime's nn_model for the compiler's own use ------- */
nn_model *build_view(const program *p);
/* --weights: FILE read with nn_load's rules into a data block laid out as
   the generated instance's (its bits, p->param_floats words); on a bad file
   "FILE: error: ..." (exit 1), an unreadable one exit 3. */
const uint32_t *load_baked_weights(const program *p, const char *path);

/* ---- emit.c ---------------------------------------------------------- */
typedef struct emit_opts {
    int no_blas;
    int inference;              /* forward only: no gradients, activations reused */
    const char *header_name;    /* as #included by the .c */
    const uint32_t *baked;      /* --weights: the data block's bits (param_floats words),
                                   or NULL */
    const char *baked_file;     /* the file they came from (for comments) */
} emit_opts;
/* --weights with --inference: the data block is the compiled-in const array */
#define BAKED_RO(o) ((o)->baked && (o)->inference)
void emit_c(FILE *c, FILE *h, const program *p, const emit_opts *o);

/* ---- emit_py.c, dot.c: other views of the program ------------------ */
/* `nngen --emit pytorch`: a Python file building the same torch.nn network. */
void emit_pytorch(FILE *f, const program *p);
/* `nngen --dot`: a Graphviz picture of the network. */
void emit_dot(FILE *f, const program *p);
/* Decodes the UTF-8 sequence at s into *cp; its length, or 0 if invalid. */
int utf8_decode(const unsigned char *s, unsigned long *cp);

#endif
