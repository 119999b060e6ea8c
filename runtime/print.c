/* nngen-rt: printing, byte-identical to PyTorch 1.13 (Python 3.11) with the
 * default print options.
 *
 * Tensors mirror torch/_tensor_str.py: _Formatter (int / fixed / scientific
 * mode, one common width), _tensor_str_with_formatter, _vector_str (line
 * wrapping at linewidth 80), get_summarized_data (more than 1000 elements:
 * 3 edge items per dimension around "..."), and _add_suffixes.  Values are
 * formatted by the C library, which (like Python) rounds the exact binary
 * value correctly, ties to even; nan and inf are spelled as Python does.
 * Integer tensors (NN_I64, NN_I32) take _Formatter's integer path: each
 * value as "{}" (decimal), right-aligned in the widest shown value's width;
 * int64 is torch's default integer type, so only an empty int64 tensor
 * says "dtype=torch.int64", while int32 always says "dtype=torch.int32".
 *
 * Modules mirror torch.nn.Module.__repr__ and _addindent; state dicts
 * mirror repr(OrderedDict) of detached tensors.
 *
 * Nothing here allocates: output goes through a small sink that writes to
 * a FILE or into a caller buffer (snprintf semantics), counting every byte.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include <nngen/rt.h>

enum {
    PO_PRECISION = 4,
    PO_THRESHOLD = 1000,
    PO_EDGEITEMS = 3,
    PO_LINEWIDTH = 80
};

/* ------------------------------------------------------------------ */
/* Output sink                                                         */

typedef struct sink {
    FILE *f;             /* stream, or NULL for a buffer */
    char *buf;
    size_t cap;          /* buffer size, NUL included */
    size_t len;          /* bytes produced so far (all of them) */
    size_t last_nl;      /* len just after the last '\n' produced */
    int any_nl;
} sink;

static void put_mem(sink *s, const char *p, size_t n)
{
    size_t i;
    if (n == 0)
        return;
    for (i = n; i > 0; i--)
        if (p[i - 1] == '\n') {
            s->last_nl = s->len + i;
            s->any_nl = 1;
            break;
        }
    if (s->f != NULL) {
        fwrite(p, 1, n, s->f);
    } else if (s->buf != NULL && s->len + 1 < s->cap) {
        size_t room = s->cap - 1 - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

static void put_str(sink *s, const char *p)
{
    put_mem(s, p, strlen(p));
}

static void put_ch(sink *s, char c)
{
    put_mem(s, &c, 1);
}

static void put_spaces(sink *s, long n)
{
    static const char sp[] = "                                ";
    while (n > 0) {
        size_t k = n > 32 ? 32 : (size_t)n;
        put_mem(s, sp, k);
        n -= (long)k;
    }
}

static void put_i64(sink *s, int64_t v)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    put_str(s, tmp);
}

static void sink_file(sink *s, FILE *f)
{
    memset(s, 0, sizeof *s);
    s->f = f;
}

/* ------------------------------------------------------------------ */
/* Tensors                                                             */

typedef struct formatter {
    int floating;        /* floating_dtype */
    int int_mode;
    int sci_mode;
    int max_width;
} formatter;

typedef struct tview {
    int ndim;
    int64_t shape[NN_MAX_DIM];
    int64_t stride[NN_MAX_DIM];
    int64_t numel;
    const float *data;   /* the storage, of dtype */
    int dtype;
    int summarize;
} tview;

/* Element off of a float tensor. */
static float elem_f(const tview *t, int64_t off)
{
    return t->data[off];
}

/* Element off of an integer tensor (the storage read bytewise: no alignment
   or aliasing assumptions about the float * it comes as). */
static int64_t elem_i(const tview *t, int64_t off)
{
    const unsigned char *p = (const unsigned char *)t->data;
    if (t->dtype == NN_I64) {
        int64_t v;
        memcpy(&v, p + 8 * off, sizeof v);
        return v;
    } else {
        int32_t v;
        memcpy(&v, p + 4 * off, sizeof v);
        return v;
    }
}

/* Python's '{:.4e}', '{:.0f}', '{:.4f}' of a float (always 'nan'/'inf'). */
static int fmt_value(char *out, size_t n, float v, char mode)
{
    double d = (double)v;
    if (isnan(d))
        return snprintf(out, n, "nan");
    if (isinf(d))
        return snprintf(out, n, d < 0 ? "-inf" : "inf");
    switch (mode) {
    case 'e': return snprintf(out, n, "%.*e", PO_PRECISION, d);
    case '0': return snprintf(out, n, "%.0f", d);
    default:  return snprintf(out, n, "%.*f", PO_PRECISION, d);
    }
}

/* Calls fn on every element that the (possibly summarized) print shows,
   in row-major order: get_summarized_data(). */
typedef void (*elem_fn)(const tview *t, int64_t off, void *ctx);

static void visit(const tview *t, int d, int64_t off, elem_fn fn, void *ctx)
{
    int64_t i, n;
    if (d == t->ndim) {
        fn(t, off, ctx);
        return;
    }
    n = t->shape[d];
    if (t->summarize && n > 2 * PO_EDGEITEMS) {
        for (i = 0; i < PO_EDGEITEMS; i++)
            visit(t, d + 1, off + i * t->stride[d], fn, ctx);
        for (i = n - PO_EDGEITEMS; i < n; i++)
            visit(t, d + 1, off + i * t->stride[d], fn, ctx);
    } else {
        for (i = 0; i < n; i++)
            visit(t, d + 1, off + i * t->stride[d], fn, ctx);
    }
}

typedef struct scan_ctx {
    int count;           /* nonzero finite values seen */
    double min_abs, max_abs;
    int int_mode;
    char mode;           /* for the width pass */
    int max_width;
} scan_ctx;

static void scan_range(const tview *t, int64_t off, void *p)
{
    scan_ctx *c = (scan_ctx *)p;
    float v = elem_f(t, off);
    double a;
    if (!isfinite(v) || v == 0.0f)
        return;
    a = fabs((double)v);
    if (c->count == 0 || a < c->min_abs)
        c->min_abs = a;
    if (c->count == 0 || a > c->max_abs)
        c->max_abs = a;
    if ((double)v != ceil((double)v))
        c->int_mode = 0;
    c->count++;
}

static void scan_width(const tview *t, int64_t off, void *p)
{
    scan_ctx *c = (scan_ctx *)p;
    float v = elem_f(t, off);
    char tmp[64];
    int w;
    if (!isfinite(v) || v == 0.0f)
        return;
    w = fmt_value(tmp, sizeof tmp, v, c->mode);
    if (c->mode == '0')
        w += 1;          /* room for the '.' */
    if (w > c->max_width)
        c->max_width = w;
}

/* Integer tensors: the width of the longest "{}" of the shown values (all
   of them, zeros included). */
static void scan_int_width(const tview *t, int64_t off, void *p)
{
    scan_ctx *c = (scan_ctx *)p;
    char tmp[32];
    int w = snprintf(tmp, sizeof tmp, "%lld", (long long)elem_i(t, off));
    if (w > c->max_width)
        c->max_width = w;
}

static void formatter_init(formatter *fm, const tview *t)
{
    scan_ctx c;
    memset(&c, 0, sizeof c);
    c.int_mode = 1;
    c.max_width = 1;
    fm->floating = t->dtype == NN_F32;
    fm->int_mode = 1;
    fm->sci_mode = 0;
    fm->max_width = 1;
    if (!fm->floating) {
        visit(t, 0, 0, scan_int_width, &c);
        fm->max_width = c.max_width;
        return;
    }
    visit(t, 0, 0, scan_range, &c);
    if (c.count == 0)
        return;          /* no valid number */
    fm->int_mode = c.int_mode;
    if (c.int_mode) {
        if (c.max_abs / c.min_abs > 1000.0 || c.max_abs > 1.0e8) {
            fm->sci_mode = 1;
            c.mode = 'e';
        } else {
            c.mode = '0';
        }
    } else {
        if (c.max_abs / c.min_abs > 1000.0 || c.max_abs > 1.0e8 || c.min_abs < 1.0e-4) {
            fm->sci_mode = 1;
            c.mode = 'e';
        } else {
            c.mode = 'f';
        }
    }
    visit(t, 0, 0, scan_width, &c);
    fm->max_width = c.max_width;
}

/* _Formatter.format(): element off right-aligned in max_width. */
static void put_value(sink *s, const formatter *fm, const tview *t, int64_t off)
{
    char tmp[64];
    float v;
    int w;
    if (!fm->floating) {
        w = snprintf(tmp, sizeof tmp, "%lld", (long long)elem_i(t, off));
        put_spaces(s, (long)fm->max_width - w);
        put_mem(s, tmp, (size_t)w);
        return;
    }
    v = elem_f(t, off);
    if (fm->sci_mode) {
        w = fmt_value(tmp, sizeof tmp, v, 'e');
    } else if (fm->int_mode) {
        w = fmt_value(tmp, sizeof tmp, v, '0');
        if (!isnan(v) && !isinf(v) && w < (int)sizeof tmp - 1) {
            tmp[w++] = '.';
            tmp[w] = '\0';
        }
    } else {
        w = fmt_value(tmp, sizeof tmp, v, 'f');
    }
    if (w < 0)
        w = 0;
    put_spaces(s, (long)fm->max_width - w);
    put_mem(s, tmp, (size_t)w);
}

/* _vector_str() */
static void put_vector(sink *s, const tview *t, int64_t off, int indent, const formatter *fm)
{
    int64_t n = t->shape[t->ndim - 1];
    int64_t st = t->stride[t->ndim - 1];
    int element_length = fm->max_width + 2;
    long per_line = (long)floor((double)(PO_LINEWIDTH - indent) / (double)element_length);
    long k = 0;
    int64_t i;
    int sum = t->summarize && n > 2 * PO_EDGEITEMS;
    if (per_line < 1)
        per_line = 1;
    put_ch(s, '[');
#define NEXT_SEP()                                     \
    do {                                               \
        if (k > 0) {                                   \
            if (k % per_line == 0) {                   \
                put_str(s, ",\n");                     \
                put_spaces(s, (long)indent + 1);       \
            } else {                                   \
                put_str(s, ", ");                      \
            }                                          \
        }                                              \
        k++;                                           \
    } while (0)
    if (sum) {
        for (i = 0; i < PO_EDGEITEMS; i++) {
            NEXT_SEP();
            put_value(s, fm, t, off + i * st);
        }
        NEXT_SEP();
        put_str(s, " ...");
        for (i = n - PO_EDGEITEMS; i < n; i++) {
            NEXT_SEP();
            put_value(s, fm, t, off + i * st);
        }
    } else {
        for (i = 0; i < n; i++) {
            NEXT_SEP();
            put_value(s, fm, t, off + i * st);
        }
    }
#undef NEXT_SEP
    put_ch(s, ']');
}

/* _tensor_str_with_formatter() for dimension d onwards. */
static void put_dims(sink *s, const tview *t, int d, int64_t off, int indent,
                     const formatter *fm)
{
    int rest = t->ndim - d;      /* self.dim() of the sub-tensor */
    int64_t n, i;
    int first = 1;
    if (rest == 0) {
        put_value(s, fm, t, off);
        return;
    }
    if (rest == 1) {
        put_vector(s, t, off, indent, fm);
        return;
    }
    n = t->shape[d];
    put_ch(s, '[');
#define SLICE_SEP()                                    \
    do {                                               \
        if (!first) {                                  \
            int nl_;                                   \
            put_ch(s, ',');                            \
            for (nl_ = 0; nl_ < rest - 1; nl_++)       \
                put_ch(s, '\n');                       \
            put_spaces(s, (long)indent + 1);           \
        }                                              \
        first = 0;                                     \
    } while (0)
    if (t->summarize && n > 2 * PO_EDGEITEMS) {
        for (i = 0; i < PO_EDGEITEMS; i++) {
            SLICE_SEP();
            put_dims(s, t, d + 1, off + i * t->stride[d], indent + 1, fm);
        }
        SLICE_SEP();
        put_str(s, "...");
        for (i = n - PO_EDGEITEMS; i < n; i++) {
            SLICE_SEP();
            put_dims(s, t, d + 1, off + i * t->stride[d], indent + 1, fm);
        }
    } else {
        for (i = 0; i < n; i++) {
            SLICE_SEP();
            put_dims(s, t, d + 1, off + i * t->stride[d], indent + 1, fm);
        }
    }
#undef SLICE_SEP
    put_ch(s, ']');
}

/* _str_intern() for a strided CPU tensor of dtype float32 (the default
   dtype), int64 or int32; requires_grad adds the "requires_grad=True"
   suffix (a Parameter that requires grad). */
static void put_tensor_repr(sink *s, const nn_tensor *t, int requires_grad)
{
    static const char prefix[] = "tensor(";
    const int indent = (int)(sizeof prefix - 1);
    const char *suffixes[3];
    const char *dtype_suffix;
    char size_suffix[160];
    int nsuffixes = 0, i;
    size_t start = s->len;
    long last_line_len;
    tview v;

    put_str(s, prefix);
    if (t == NULL || t->ndim < 0 || t->ndim > NN_MAX_DIM ||
        (t->dtype != NN_F32 && t->dtype != NN_I64 && t->dtype != NN_I32)) {
        put_str(s, "<invalid tensor>)");
        return;
    }
    dtype_suffix = t->dtype == NN_I64 ? "dtype=torch.int64"
                 : t->dtype == NN_I32 ? "dtype=torch.int32" : NULL;
    v.ndim = t->ndim;
    v.numel = 1;
    for (i = 0; i < t->ndim; i++) {
        v.shape[i] = t->shape[i] < 0 ? 0 : t->shape[i];
        v.numel *= v.shape[i];
    }
    for (i = t->ndim - 1; i >= 0; i--)
        v.stride[i] = i == t->ndim - 1 ? 1 : v.stride[i + 1] * v.shape[i + 1];
    v.data = t->data;
    v.dtype = t->dtype;
    v.summarize = v.numel > PO_THRESHOLD;

    if (v.numel == 0 || v.data == NULL) {
        put_str(s, "[]");
        if (v.ndim != 1) {
            /* str(tuple(shape)) */
            size_t p = 0;
            p += (size_t)snprintf(size_suffix + p, sizeof size_suffix - p, "size=(");
            for (i = 0; i < v.ndim; i++)
                p += (size_t)snprintf(size_suffix + p, sizeof size_suffix - p, "%s%lld",
                                      i ? ", " : "", (long long)v.shape[i]);
            snprintf(size_suffix + p, sizeof size_suffix - p, ")");
            suffixes[nsuffixes++] = size_suffix;
        }
        /* no element to tell an integer type by: any dtype but the default */
        if (dtype_suffix != NULL)
            suffixes[nsuffixes++] = dtype_suffix;
    } else {
        formatter fm;
        /* has_default_dtype: float32, and int64 (torch.long) */
        if (t->dtype == NN_I32)
            suffixes[nsuffixes++] = dtype_suffix;
        formatter_init(&fm, &v);
        put_dims(s, &v, 0, 0, indent, &fm);
    }
    if (requires_grad)
        suffixes[nsuffixes++] = "requires_grad=True";

    /* _add_suffixes(): last_line_len = len(s) - s.rfind("\n") + 1, where
       rfind() is -1 without a newline: the characters after the last
       newline (or all of them) plus 2, in both cases. */
    if (s->any_nl && s->last_nl > start)
        last_line_len = (long)(s->len - s->last_nl) + 2;
    else
        last_line_len = (long)(s->len - start) + 2;
    for (i = 0; i < nsuffixes; i++) {
        long sl = (long)strlen(suffixes[i]);
        if (last_line_len + sl + 2 > PO_LINEWIDTH) {
            put_str(s, ",\n");
            put_spaces(s, indent);
            put_str(s, suffixes[i]);
            last_line_len = indent + sl;
        } else {
            put_str(s, ", ");
            put_str(s, suffixes[i]);
            last_line_len += sl + 2;
        }
    }
    put_ch(s, ')');
}

size_t nn_format_tensor(char *buf, size_t n, const nn_tensor *t)
{
    sink s;
    memset(&s, 0, sizeof s);
    s.buf = buf;
    s.cap = buf != NULL ? n : 0;
    put_tensor_repr(&s, t, 0);
    if (buf != NULL && n > 0)
        buf[s.len < n ? s.len : n - 1] = '\0';
    return s.len;
}

void nn_print_tensor(FILE *f, const nn_tensor *t)
{
    sink s;
    sink_file(&s, f);
    put_tensor_repr(&s, t, 0);
    put_ch(&s, '\n');
}

/* print(param); a buffer is a plain tensor, so print(buffer) is its repr
   (never requires_grad). */
void nn_print_param(FILE *f, const nn_tensor *t)
{
    sink s;
    sink_file(&s, f);
    if (t != NULL && t->is_buffer) {
        put_tensor_repr(&s, t, 0);
        put_ch(&s, '\n');
        return;
    }
    put_str(&s, "Parameter containing:\n");
    put_tensor_repr(&s, t, t != NULL && t->requires_grad);
    put_ch(&s, '\n');
}

/* ------------------------------------------------------------------ */
/* Modules                                                             */

/* A child's key in its parent's repr: torch writes "(" + key + "): " as one
   of the parent's lines, so a newline inside the key starts a line that only
   the parent's ancestors indent (_addindent), by `base`, not base + 2. */
static void put_child_name(sink *s, const char *name, long base)
{
    for (;;) {
        const char *nl = strchr(name, '\n');
        if (nl == NULL)
            break;
        put_mem(s, name, (size_t)(nl - name + 1));
        put_spaces(s, base);
        name = nl + 1;
    }
    put_str(s, name);
}

/* Module.__repr__ with every line after the first indented by `base`. */
static void put_module(sink *s, const nn_module *mod, long base)
{
    const char *extra = mod->extra != NULL ? mod->extra : "";
    int has_children = mod->nchildren > 0;
    int i;

    put_str(s, mod->type != NULL ? mod->type : "Module");
    put_ch(s, '(');
    if (extra[0] != '\0' && strchr(extra, '\n') == NULL && !has_children) {
        put_str(s, extra);                 /* simple one-liner */
    } else if (extra[0] != '\0' || has_children) {
        const char *p = extra;
        if (extra[0] != '\0') {
            for (;;) {                     /* extra_repr().split('\n') */
                const char *nl = strchr(p, '\n');
                size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
                put_ch(s, '\n');
                put_spaces(s, base + 2);
                put_mem(s, p, n);
                if (nl == NULL)
                    break;
                p = nl + 1;
            }
        }
        for (i = 0; i < mod->nchildren; i++) {
            put_ch(s, '\n');
            put_spaces(s, base + 2);
            put_ch(s, '(');
            put_child_name(s, mod->child_names[i], base);
            put_str(s, "): ");
            put_module(s, mod->children[i], base + 2);
        }
        put_ch(s, '\n');
        put_spaces(s, base);
    }
    put_ch(s, ')');
}

void nn_print_module(FILE *f, const nn_module *mod)
{
    sink s;
    sink_file(&s, f);
    if (mod == NULL) {
        put_str(&s, "None\n");
        return;
    }
    put_module(&s, mod, 0);
    put_ch(&s, '\n');
}

void nn_print_model(FILE *f, const nn_model *m)
{
    nn_print_module(f, m->info->root);
}

/* ------------------------------------------------------------------ */
/* Names: keys are '.'-joined components kept on the C stack.          */

typedef struct path_node {
    const char *name;                 /* component; NULL for the walk's root */
    const struct path_node *parent;
} path_node;

static int path_has(const path_node *p, const char *local, char c)
{
    for (; p != NULL; p = p->parent)
        if (p->name != NULL && strchr(p->name, c) != NULL)
            return 1;
    return strchr(local, c) != NULL;
}

static void put_repr_chars(sink *s, const char *p, char q)
{
    for (; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        char tmp[8];
        if (c == '\\' || c == (unsigned char)q) {
            put_ch(s, '\\');
            put_ch(s, (char)c);
        } else if (c == '\n') {
            put_str(s, "\\n");
        } else if (c == '\r') {
            put_str(s, "\\r");
        } else if (c == '\t') {
            put_str(s, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            put_str(s, tmp);
        } else {
            put_ch(s, (char)c);
        }
    }
}

static void put_path_chars(sink *s, const path_node *p, char q)
{
    if (p == NULL || p->name == NULL)
        return;
    put_path_chars(s, p->parent, q);
    put_repr_chars(s, p->name, q);
    put_ch(s, '.');
}

/* Python repr() of the str path + local. */
static void put_key_repr(sink *s, const path_node *p, const char *local)
{
    char q = '\'';
    if (path_has(p, local, '\'') && !path_has(p, local, '"'))
        q = '"';
    put_ch(s, q);
    put_path_chars(s, p, q);
    put_repr_chars(s, local, q);
    put_ch(s, q);
}

/* ------------------------------------------------------------------ */
/* State dicts                                                         */

static void put_item(sink *s, int *first, const path_node *p, const char *local,
                     const nn_tensor *t)
{
    if (!*first)
        put_str(s, ", ");
    *first = 0;
    put_ch(s, '(');
    put_key_repr(s, p, local);
    put_str(s, ", ");
    put_tensor_repr(s, t, 0);
    put_ch(s, ')');
}

/* Module.state_dict(): own parameters, own buffers, then children; no
   de-duplication, so shared tensors appear under every name. */
static void put_state_walk(sink *s, int *first, const nn_model *m, const nn_module *mod,
                           const path_node *p)
{
    int pass, i;
    for (pass = 0; pass < 2; pass++)
        for (i = 0; i < mod->nparams; i++) {
            int id = mod->param_ids[i];
            if (m->info->tensors[id].is_buffer != pass)
                continue;
            put_item(s, first, p, mod->param_names[i], &m->tensors[id]);
        }
    for (i = 0; i < mod->nchildren; i++) {
        path_node child;
        child.name = mod->child_names[i];
        child.parent = p;
        put_state_walk(s, first, m, mod->children[i], &child);
    }
}

void nn_print_state_dict(FILE *f, const nn_model *m)
{
    sink s;
    size_t i, n = nn_state_count(m);
    int first = 1;
    sink_file(&s, f);
    if (n == 0) {
        put_str(&s, "OrderedDict()\n");
        return;
    }
    put_str(&s, "OrderedDict([");
    for (i = 0; i < n; i++)
        put_item(&s, &first, NULL, m->info->state_keys[i],
                 &m->tensors[m->info->state_ids[i]]);
    put_str(&s, "])\n");
}

static int count_state(const nn_module *mod)
{
    int i, n = mod->nparams;
    for (i = 0; i < mod->nchildren; i++)
        n += count_state(mod->children[i]);
    return n;
}

void nn_print_module_state_dict(FILE *f, const nn_model *m, const nn_module *mod)
{
    sink s;
    int first = 1;
    sink_file(&s, f);
    if (mod == NULL || count_state(mod) == 0) {
        put_str(&s, "OrderedDict()\n");
        return;
    }
    put_str(&s, "OrderedDict([");
    put_state_walk(&s, &first, m, mod, NULL);
    put_str(&s, "])\n");
}

/* ------------------------------------------------------------------ */
/* named_parameters(): pre-order, each tensor under its first name.     */
/* De-duplication without allocation: a parameter is listed at walk     */
/* position k iff its tensor does not occur earlier in the walk.        */

typedef struct np_walk {
    const nn_model *m;
    long pos;            /* running position */
    long stop;           /* look for `id` strictly before this position */
    int id;
    int found;
} np_walk;

static void np_scan(np_walk *w, const nn_module *mod)
{
    int i;
    for (i = 0; i < mod->nparams && !w->found; i++) {
        int id = mod->param_ids[i];
        if (w->m->info->tensors[id].is_buffer)
            continue;
        if (w->pos >= w->stop)
            return;
        if (id == w->id)
            w->found = 1;
        w->pos++;
    }
    for (i = 0; i < mod->nchildren && !w->found && w->pos < w->stop; i++)
        np_scan(w, mod->children[i]);
}

static void put_shapes_walk(sink *s, const nn_model *m, const nn_module *root,
                            const nn_module *mod, const path_node *p, long *pos, int *first)
{
    int i, d;
    for (i = 0; i < mod->nparams; i++) {
        int id = mod->param_ids[i];
        const nn_tensor *t = &m->tensors[id];
        np_walk w;
        if (m->info->tensors[id].is_buffer)
            continue;
        w.m = m;
        w.pos = 0;
        w.stop = *pos;
        w.id = id;
        w.found = 0;
        np_scan(&w, root);
        (*pos)++;
        if (w.found)
            continue;
        if (!*first)
            put_ch(s, ' ');
        *first = 0;
        put_ch(s, '(');
        put_key_repr(s, p, mod->param_names[i]);
        put_str(s, ", torch.Size([");
        for (d = 0; d < t->ndim; d++) {
            if (d)
                put_str(s, ", ");
            put_i64(s, t->shape[d]);
        }
        put_str(s, "]))");
    }
    for (i = 0; i < mod->nchildren; i++) {
        path_node child;
        child.name = mod->child_names[i];
        child.parent = p;
        put_shapes_walk(s, m, root, mod->children[i], &child, pos, first);
    }
}

void nn_print_named_shapes(FILE *f, const nn_model *m, const nn_module *mod)
{
    sink s;
    long pos = 0;
    int first = 1;
    sink_file(&s, f);
    if (mod == NULL)
        mod = m->info->root;
    if (mod != NULL)
        put_shapes_walk(&s, m, mod, mod, NULL, &pos, &first);
    put_ch(&s, '\n');
}
