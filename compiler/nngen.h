/* nngen: the compiler's one internal header.  A section per source file;
 * the pipeline (main.c) is: yaml.c reads the file into a tree of ynodes
 * with locations, check.c turns it into a checked program (module tree,
 * shapes, names, init plan, training setup), emit.c writes C.
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

/* ---- check.c: the checked program ----------------------------------- */

typedef enum {
#define LAYER(E, name, cls, np) L_##E,
#include "layers.def"
#undef LAYER
    L_COUNT
} layer_kind;
extern const char *const layer_names[L_COUNT];
extern const char *const layer_classes[L_COUNT];

typedef struct shape {
    int ndim;                   /* including the batch dimension */
    int64_t d[NN_MAX_DIM];
} shape;
int64_t shape_numel(const shape *s);
void shape_str(char *buf, size_t n, const shape *s, int with_batch);

typedef enum {
    I_DEFAULT, I_ZEROS, I_ONES, I_CONSTANT, I_UNIFORM, I_NORMAL,
    I_XAVIER_UNIFORM, I_XAVIER_NORMAL, I_KAIMING_UNIFORM, I_KAIMING_NORMAL,
    I_TRUNC_NORMAL, I_MIXTURE, I_CUSTOM
} init_kind;

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
} initializer;

typedef struct rule_param {
    const char *name;           /* "weight" */
    initializer *init;
    loc loc;
} rule_param;

typedef struct rule {
    loc loc;
    const char *at;             /* NULL: the module itself */
    loc at_loc;
    int layer;                  /* -1: any */
    int nparams;
    rule_param *params;
} rule;

typedef struct module module;
typedef struct child {
    const char *name;
    module *m;
    loc loc;                    /* where this use is written */
} child;

struct module {
    int id;
    int is_layer;
    layer_kind layer;           /* when is_layer */
    loc loc;
    const char *origin;         /* "block 'block1'", "shared 'tied'" or NULL */
    int nchildren;
    child *children;
    /* layer arguments */
    int64_t in, out;            /* linear; in == 0 until inferred */
    loc in_loc;
    int bias;
    double slope;               /* leaky_relu */
    int slope_is_int;
    const char *slope_text;     /* leaky_relu: the slope as written (for an int) */
    int dim;                    /* softmax, log_softmax */
    /* meta */
    int frozen;
    int nrules;
    rule *rules;
    const char *shared_name;    /* declared under shared: */
    int used;                   /* shared: number of uses so far */
    shape first_in;             /* shared: input shape of the first use */
    /* filled by naming */
    const char *path;           /* canonical path */
    int nparams;
    const char *param_local[2];
    int param_ids[2];
    char *extra;                /* extra_repr() */
    int constructed;            /* init planning */
};

typedef struct tensor {
    const char *name;           /* canonical */
    const char *local;          /* "weight" */
    module *owner;
    int ndim;
    int64_t shape[NN_MAX_DIM];
    int64_t numel;
    int requires_grad;
    int64_t offset;             /* floats into the data/grad blocks */
} tensor;

typedef struct state_entry {
    const char *key;
    int tensor;
} state_entry;

typedef struct init_step {
    int tensor;
    const initializer *init;
    int fan_in;                 /* for a layer default: the owner's in_features */
    module *m;
} init_step;

/* One use of a layer in the forward pass. */
typedef struct op {
    module *m;
    const char *use_path;       /* the path of this use ("4") */
    shape in, out;
    int in_buf, out_buf;
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
    shape output;
    int has_seed;
    uint64_t seed;
    module *root;
    int nshared;
    module **shared;
    int nmodules;
    module **modules;
    int ntensors;
    tensor *tensors;
    int nstate;
    state_entry *state;
    int nsteps;
    init_step *steps;
    int nops;
    op *ops;
    int nbufs;
    int64_t *buf_numel;         /* floats in each activation buffer; buffer 0 is x */
    int ncustom;
    const char **custom;        /* distinct custom init function names */
    train_cfg train;
    int64_t param_floats;
} program;

program *check_program(const char *file, ynode *doc);

/* ---- view.c: the runtime's nn_model for the compiler's own use ------- */
nn_model *build_view(const program *p);

/* ---- emit.c ---------------------------------------------------------- */
typedef struct emit_opts {
    int no_blas;
    int inference;              /* forward only: no gradients, activations reused */
    const char *header_name;    /* as #included by the .c */
} emit_opts;
void emit_c(FILE *c, FILE *h, const program *p, const emit_opts *o);

/* ---- emit_py.c, dot.c: other views of the program ------------------ */
/* `nngen --emit pytorch`: a Python file building the same torch.nn network. */
void emit_pytorch(FILE *f, const program *p);
/* `nngen --dot`: a Graphviz picture of the network. */
void emit_dot(FILE *f, const program *p);
/* Decodes the UTF-8 sequence at s into *cp; its length, or 0 if invalid. */
int utf8_decode(const unsigned char *s, unsigned long *cp);

#endif
