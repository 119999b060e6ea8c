/* nngen-rt: safetensors persistence in memory (F32, I64, I32; canonical
 * names): nn_load_mem, nn_save_mem, nn_save_to.  The file versions, nn_load
 * and nn_save, are thin wrappers in safetensors_file.c.  This file is ISO
 * C99 (no POSIX, no file system): it builds for a microcontroller as it does
 * for a host.
 *
 * File layout (https://github.com/huggingface/safetensors):
 *   8 bytes   N, little-endian u64
 *   N bytes   JSON header {"name":{"dtype":"F32","shape":[..],
 *             "data_offsets":[begin,end]},...}, optional "__metadata__"
 *             object of strings; padded with spaces to a multiple of 8
 *   rest      the tensors' bytes, little-endian; offsets are relative to
 *             this section
 *
 * Each tensor is stored in its own dtype: NN_F32 as "F32" (4 bytes an
 * element), NN_I64 as "I64" (8 bytes, two's complement: batch norm's
 * num_batches_tracked, as torch's state_dict holds it), NN_I32 as "I32".
 *
 * Saving writes exactly what the Python safetensors library writes for the
 * same tensors: entries sorted by dtype, larger alignment first (the order
 * of safetensors' Dtype enum: I64 before F32 before I32), then by name;
 * data in that order and contiguous, header padded to 8 bytes, no
 * __metadata__.  Every tensor of the model's table is written once under
 * its canonical name (parameters and buffers); aliases of shared tensors
 * ("4.weight" for "2.weight") are not written, as
 * safetensors.torch.save_model drops them.  The bytes go to a writer
 * callback (nn_save_to) in pieces: the header's JSON in small pieces, then
 * each tensor's data (in one piece on a little-endian machine, converted
 * through a small stack buffer elsewhere).  Saving allocates nothing for a
 * model of at most ST_STACK_TENSORS tensors (the sort table is on the
 * stack), one table of pointers otherwise.
 *
 * Loading is strict and transactional.  It validates the whole buffer
 * before touching the model: sizes (at least 8 bytes, header length <= 100
 * MB and within the buffer), UTF-8, the JSON syntax (own parser, reading
 * the caller's buffer in place: no trailing characters, no duplicate keys),
 * the schema (dtype one of safetensors' names, shape of non-negative
 * integers, data_offsets [begin, end] with begin <= end inside the data
 * section and end - begin == product(shape) times the dtype's element size
 * without overflow), the layout (tensors contiguous from 0 to the end of
 * the buffer, as safetensors requires: no overlap, no gap, no trailing
 * data), and the names (every canonical name present with the model's dtype
 * and shape, no unknown name; no conversion: F32 data is accepted only for
 * an NN_F32 tensor, I64 only for NN_I64, I32 only for NN_I32).  An alias
 * key of a shared tensor (a state_dict key that is not canonical) is
 * accepted only if it has the same dtype, shape and bit-identical data as
 * the canonical entry, which must be present too; it is then redundant.
 * Only when all of this holds are the values copied into the model, from
 * the buffer.  On failure: -1, the model is unchanged, nn_error() says why,
 * prefixed with the label ("nn_load_mem", or nn_load's path).  A buffer
 * that is not safetensors but a torch.save file (a zip archive, or a legacy
 * pickle) is named as such, with the way to write safetensors from torch.
 * Loading allocates transiently for the header's entries (names, shapes,
 * three tables of pointers), never for the data.
 *
 * Nothing here is thread-safe with respect to nn_error() (one static
 * message buffer).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#include "safetensors_internal.h"

#define ST_MAX_HEADER 100000000u
/* models with at most this many tensors are saved without malloc */
#define ST_STACK_TENSORS 64

/* ------------------------------------------------------------------ */
/* Growing byte buffer (the parser's decoded strings)                  */

typedef struct dbuf {
    char *p;
    size_t len, cap;
    int oom;
} dbuf;

static void db_put(dbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *q;
        while (cap < b->len + n + 1)
            cap *= 2;
        q = (char *)realloc(b->p, cap);
        if (q == NULL) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Shape as "[8, 4]" for messages. */
static void shape_text(char *out, size_t n, int ndim, const uint64_t *dims)
{
    size_t p = 0;
    int i;
    p += (size_t)snprintf(out, n, "[");
    for (i = 0; i < ndim && p < n; i++)
        p += (size_t)snprintf(out + p, n - p, "%s%llu", i ? ", " : "",
                              (unsigned long long)dims[i]);
    if (p < n)
        snprintf(out + p, n - p, "]");
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
    p[2] = (unsigned char)((v >> 16) & 0xff);
    p[3] = (unsigned char)((v >> 24) & 0xff);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    put_le32(p, (uint32_t)(v & 0xffffffffu));
    put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_le64(const unsigned char *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ------------------------------------------------------------------ */
/* dtypes                                                              */

/* safetensors' dtypes, in the order of its Dtype enum ("increasing
   alignment order"), which orders the entries nn_save writes. */
static const struct {
    const char *name;
    unsigned size;             /* bytes an element */
} st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
    {"U16", 2}, {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8},
    {"I64", 8}, {"U64", 8},
};
enum { ST_I32 = 9, ST_F32 = 11, ST_I64 = 13, ST_NDTYPES = 15 };

/* The safetensors dtype of a model tensor's nn_dtype; -1 if none. */
static int st_dtype_of(int dtype)
{
    switch (dtype) {
    case NN_F32: return ST_F32;
    case NN_I64: return ST_I64;
    case NN_I32: return ST_I32;
    default:     return -1;
    }
}

static int st_dtype_named(const char *name)
{
    int i;
    for (i = 0; i < ST_NDTYPES; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return i;
    return -1;
}

/* A tensor whose dtype nn_save and nn_load cannot handle; NULL if none. */
static const nn_tensor *bad_dtype_tensor(const nn_model *m)
{
    int i;
    for (i = 0; i < m->info->ntensors; i++)
        if (st_dtype_of(m->tensors[i].dtype) < 0)
            return &m->tensors[i];
    return NULL;
}


/* 1 on a little-endian machine: tensors' bytes are then the file's bytes. */
static int little_endian(void)
{
    const uint32_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 1;
}

/* ------------------------------------------------------------------ */
/* Saving                                                              */

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const nn_tensor *const *)a)->name, (*(const nn_tensor *const *)b)->name);
}

/* safetensors' order: dtype descending (larger alignment first), then name */
static int cmp_tensor_dtype_name(const void *a, const void *b)
{
    const nn_tensor *x = *(const nn_tensor *const *)a, *y = *(const nn_tensor *const *)b;
    int dx = st_dtype_of(x->dtype), dy = st_dtype_of(y->dtype);
    if (dx != dy)
        return dx > dy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Where the bytes go: the writer (NULL: only count them). */
typedef struct sink {
    nn_write_fn fn;
    void *ctx;
    uint64_t count;          /* bytes accepted so far */
    int failed;
} sink;

static void put(sink *s, const void *p, size_t n)
{
    if (s->failed || n == 0)
        return;
    if (s->fn != NULL && s->fn(s->ctx, p, n) != 0) {
        s->failed = 1;
        return;
    }
    s->count += n;
}

static void put_str(sink *s, const char *str)
{
    put(s, str, strlen(str));
}

static void put_u64(sink *s, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    put_str(s, tmp);
}

/* A JSON string literal. */
static void put_json_str(sink *s, const char *str)
{
    const char *run = str;
    put(s, "\"", 1);
    for (; *str != '\0'; str++) {
        unsigned char c = (unsigned char)*str;
        char tmp[8];
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        put(s, run, (size_t)(str - run));
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            put(s, tmp, 2);
        } else {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            put_str(s, tmp);
        }
        run = str + 1;
    }
    put(s, run, (size_t)(str - run));
    put(s, "\"", 1);
}

static uint64_t tensor_bytes(const nn_tensor *t)
{
    return (uint64_t)t->numel * st_dtypes[st_dtype_of(t->dtype)].size;
}

/* The header's JSON, unpadded, in safetensors' own serialization. */
static void put_header(sink *s, const nn_tensor *const *order, int n)
{
    uint64_t offset = 0;
    int i, d;
    put(s, "{", 1);
    for (i = 0; i < n; i++) {
        const nn_tensor *t = order[i];
        uint64_t bytes = tensor_bytes(t);
        if (i)
            put(s, ",", 1);
        put_json_str(s, t->name);
        put_str(s, ":{\"dtype\":\"");
        put_str(s, st_dtypes[st_dtype_of(t->dtype)].name);
        put_str(s, "\",\"shape\":[");
        for (d = 0; d < t->ndim; d++) {
            if (d)
                put(s, ",", 1);
            put_u64(s, (uint64_t)t->shape[d]);
        }
        put_str(s, "],\"data_offsets\":[");
        put_u64(s, offset);
        put(s, ",", 1);
        put_u64(s, offset + bytes);
        put_str(s, "]}");
        offset += bytes;
    }
    put(s, "}", 1);
}

/* A tensor's bytes, little-endian. */
static void put_data(sink *s, const nn_tensor *t)
{
    const unsigned char *src = (const unsigned char *)t->data;
    size_t esize = st_dtypes[st_dtype_of(t->dtype)].size;
    unsigned char chunk[256];
    int64_t k = 0;
    if (little_endian()) {
        put(s, src, (size_t)t->numel * esize);
        return;
    }
    while (k < t->numel && !s->failed) {
        size_t c = 0;
        while (k < t->numel && c + esize <= sizeof chunk) {
            if (esize == 8) {
                uint64_t w;
                memcpy(&w, src + 8 * (size_t)k, 8);
                put_le64(chunk + c, w);
            } else {
                uint32_t w;
                memcpy(&w, src + 4 * (size_t)k, 4);
                put_le32(chunk + c, w);
            }
            c += esize;
            k++;
        }
        put(s, chunk, c);
    }
}

int nn__st_save(const nn_model *m, nn_write_fn fn, void *ctx, const char *label,
                uint64_t *total)
{
    int n = m->info->ntensors, i, rc = -1;
    const nn_tensor *stack_order[ST_STACK_TENSORS] = {NULL};
    const nn_tensor **order = stack_order, *bad;
    sink count = {NULL, NULL, 0, 0}, out;
    uint64_t hlen, pad, size;
    unsigned char len8[8];
    static const char spaces[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

    if ((bad = bad_dtype_tensor(m)) != NULL) {
        nn_set_error("%s: tensor '%s' has an unsupported dtype %d", label, bad->name,
                     bad->dtype);
        return -1;
    }
    if (n > ST_STACK_TENSORS) {
        order = (const nn_tensor **)malloc(sizeof *order * (size_t)n);
        if (order == NULL) {
            nn_set_error("%s: out of memory", label);
            return -1;
        }
    }
    for (i = 0; i < n; i++)
        order[i] = &m->tensors[i];
    if (n > 1)
        qsort((void *)order, (size_t)n, sizeof *order, cmp_tensor_name);
    for (i = 1; i < n; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
            nn_set_error("%s: the model has two tensors named '%s'", label, order[i]->name);
            goto out;
        }
    if (n > 1)
        qsort((void *)order, (size_t)n, sizeof *order, cmp_tensor_dtype_name);

    put_header(&count, order, n);
    hlen = count.count;
    pad = (8 - hlen % 8) % 8;
    size = 8 + hlen + pad;
    for (i = 0; i < n; i++)
        size += tensor_bytes(order[i]);
    if (total != NULL)
        *total = size;
    if (fn == NULL) {
        rc = 0;
        goto out;
    }

    out.fn = fn;
    out.ctx = ctx;
    out.count = 0;
    out.failed = 0;
    put_le64(len8, hlen + pad);
    put(&out, len8, 8);
    put_header(&out, order, n);
    put(&out, spaces, (size_t)pad);
    for (i = 0; i < n && !out.failed; i++)
        put_data(&out, order[i]);
    if (out.failed) {
        nn_set_error("%s: write error after %llu of %llu bytes", label,
                     (unsigned long long)out.count, (unsigned long long)size);
        goto out;
    }
    rc = 0;
out:
    if (order != stack_order)
        free((void *)order);
    return rc;
}

int nn_save_to(const nn_model *m, nn_write_fn write, void *ctx)
{
    if (write == NULL) {
        nn_set_error("nn_save_to: no writer");
        return -1;
    }
    return nn__st_save(m, write, ctx, "nn_save_to", NULL);
}

typedef struct mem_out {
    unsigned char *p;
    size_t pos;
} mem_out;

static int mem_write(void *ctx, const void *p, size_t n)
{
    mem_out *o = (mem_out *)ctx;
    memcpy(o->p + o->pos, p, n);
    o->pos += n;
    return 0;
}

int nn_save_mem(const nn_model *m, void *buf, size_t cap, size_t *len)
{
    uint64_t need = 0;
    mem_out o;
    if (nn__st_save(m, NULL, NULL, "nn_save_mem", &need) != 0)
        return -1;
    if (need > (uint64_t)SIZE_MAX) {
        nn_set_error("nn_save_mem: the file needs %llu bytes, more than a size_t holds",
                     (unsigned long long)need);
        return -1;
    }
    if (len != NULL)
        *len = (size_t)need;
    if (buf == NULL)
        return 0;
    if (cap < need) {
        nn_set_error("nn_save_mem: the buffer holds %llu bytes but the file needs %llu",
                     (unsigned long long)cap, (unsigned long long)need);
        return -1;
    }
    o.p = (unsigned char *)buf;
    o.pos = 0;
    return nn__st_save(m, mem_write, &o, "nn_save_mem", NULL);
}

/* ------------------------------------------------------------------ */
/* Header parsing                                                      */

typedef struct st_entry {
    char *name;
    int ndim;
    uint64_t *dims;
    uint64_t begin, end;
    int dtype;               /* index into st_dtypes */
    int has_dtype, has_shape, has_offsets;
    int model_id;            /* tensor index, or -1 */
    int canonical;           /* name is the tensor's canonical name */
} st_entry;

typedef struct parser {
    const char *s;
    size_t n, i;
    const char *path;
    int failed;
    st_entry *e;
    size_t ne, cap;
} parser;

#define FAIL(...)                                                                     \
    do {                                                                              \
        if (!ps->failed) {                                                            \
            ps->failed = 1;                                                           \
            set_err(ps, __VA_ARGS__);                                                 \
        }                                                                             \
        return 0;                                                                     \
    } while (0)

/* nn_set_error with the "LABEL: " prefix. */
static void set_err(const parser *ps, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void set_err(const parser *ps, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nn_set_error("%s: %s", ps->path, msg);
}

static void skip_ws(parser *ps)
{
    while (ps->i < ps->n && (ps->s[ps->i] == ' ' || ps->s[ps->i] == '\t' ||
                             ps->s[ps->i] == '\n' || ps->s[ps->i] == '\r'))
        ps->i++;
}

static int peek(parser *ps)
{
    skip_ws(ps);
    return ps->i < ps->n ? (unsigned char)ps->s[ps->i] : -1;
}

static int expect(parser *ps, char c, const char *what)
{
    if (peek(ps) != (unsigned char)c)
        FAIL("invalid JSON header at byte %zu: expected %s", ps->i, what);
    ps->i++;
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_u4(parser *ps, unsigned *out)
{
    unsigned v = 0;
    int k;
    if (ps->n - ps->i < 4)
        FAIL("invalid JSON header at byte %zu: truncated \\u escape", ps->i);
    for (k = 0; k < 4; k++) {
        int h = hexval((unsigned char)ps->s[ps->i + (size_t)k]);
        if (h < 0)
            FAIL("invalid JSON header at byte %zu: bad \\u escape", ps->i);
        v = v * 16 + (unsigned)h;
    }
    ps->i += 4;
    *out = v;
    return 1;
}

/* A JSON string into a fresh NUL-terminated UTF-8 string (*out). */
static int parse_string(parser *ps, char **out)
{
    dbuf b = {NULL, 0, 0, 0};
    *out = NULL;
    if (peek(ps) != '"')
        FAIL("invalid JSON header at byte %zu: expected a string", ps->i);
    ps->i++;
    db_put(&b, "", 0);
    for (;;) {
        unsigned char c;
        if (ps->i >= ps->n) {
            free(b.p);
            FAIL("invalid JSON header at byte %zu: unterminated string", ps->i);
        }
        c = (unsigned char)ps->s[ps->i++];
        if (c == '"')
            break;
        if (c < 0x20) {
            free(b.p);
            FAIL("invalid JSON header at byte %zu: control character in a string", ps->i - 1);
        }
        if (c != '\\') {
            db_put(&b, (const char *)&c, 1);
            continue;
        }
        if (ps->i >= ps->n) {
            free(b.p);
            FAIL("invalid JSON header at byte %zu: unterminated string", ps->i);
        }
        c = (unsigned char)ps->s[ps->i++];
        switch (c) {
        case '"': case '\\': case '/':
            db_put(&b, (const char *)&c, 1);
            break;
        case 'b': db_put(&b, "\b", 1); break;
        case 'f': db_put(&b, "\f", 1); break;
        case 'n': db_put(&b, "\n", 1); break;
        case 'r': db_put(&b, "\r", 1); break;
        case 't': db_put(&b, "\t", 1); break;
        case 'u': {
            unsigned u, lo;
            char enc[4];
            size_t k = 0;
            if (!read_u4(ps, &u)) {
                free(b.p);
                return 0;
            }
            if (u >= 0xDC00 && u <= 0xDFFF) {
                free(b.p);
                FAIL("invalid JSON header at byte %zu: lone surrogate in \\u escape", ps->i);
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (ps->n - ps->i < 2 || ps->s[ps->i] != '\\' || ps->s[ps->i + 1] != 'u') {
                    free(b.p);
                    FAIL("invalid JSON header at byte %zu: lone surrogate in \\u escape",
                         ps->i);
                }
                ps->i += 2;
                if (!read_u4(ps, &lo)) {
                    free(b.p);
                    return 0;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(b.p);
                    FAIL("invalid JSON header at byte %zu: lone surrogate in \\u escape",
                         ps->i);
                }
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (u == 0) {
                free(b.p);
                FAIL("invalid JSON header at byte %zu: \\u0000 in a string", ps->i);
            }
            if (u < 0x80) {
                enc[k++] = (char)u;
            } else if (u < 0x800) {
                enc[k++] = (char)(0xC0 | (u >> 6));
                enc[k++] = (char)(0x80 | (u & 0x3F));
            } else if (u < 0x10000) {
                enc[k++] = (char)(0xE0 | (u >> 12));
                enc[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                enc[k++] = (char)(0x80 | (u & 0x3F));
            } else {
                enc[k++] = (char)(0xF0 | (u >> 18));
                enc[k++] = (char)(0x80 | ((u >> 12) & 0x3F));
                enc[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                enc[k++] = (char)(0x80 | (u & 0x3F));
            }
            db_put(&b, enc, k);
            break;
        }
        default:
            free(b.p);
            FAIL("invalid JSON header at byte %zu: bad escape '\\%c'", ps->i - 1,
                 c >= 0x20 && c < 0x7f ? (char)c : '?');
        }
    }
    if (b.oom) {
        free(b.p);
        FAIL("out of memory");
    }
    *out = b.p;
    return 1;
}

/* A JSON number that must be a non-negative integer (no fraction, no
   exponent, no sign) fitting in int64. */
static int parse_count(parser *ps, uint64_t *out, const char *what, const char *name)
{
    size_t start;
    uint64_t v = 0;
    int c = peek(ps), overflow = 0;
    start = ps->i;
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t j = ps->i;
        int neg = 0, frac = 0;
        if (ps->s[j] == '-') {
            neg = 1;
            j++;
        }
        if (j >= ps->n || ps->s[j] < '0' || ps->s[j] > '9')
            FAIL("invalid JSON header at byte %zu: bad number", start);
        if (ps->s[j] == '0' && j + 1 < ps->n && ps->s[j + 1] >= '0' && ps->s[j + 1] <= '9')
            FAIL("invalid JSON header at byte %zu: bad number (leading zero)", start);
        while (j < ps->n && ps->s[j] >= '0' && ps->s[j] <= '9') {
            unsigned d = (unsigned)(ps->s[j] - '0');
            if (v > (UINT64_C(0x7fffffffffffffff) - d) / 10)
                overflow = 1;
            else
                v = v * 10 + d;
            j++;
        }
        if (j < ps->n && ps->s[j] == '.') {
            frac = 1;
            j++;
            if (j >= ps->n || ps->s[j] < '0' || ps->s[j] > '9')
                FAIL("invalid JSON header at byte %zu: bad number", start);
            while (j < ps->n && ps->s[j] >= '0' && ps->s[j] <= '9')
                j++;
        }
        if (j < ps->n && (ps->s[j] == 'e' || ps->s[j] == 'E')) {
            frac = 1;
            j++;
            if (j < ps->n && (ps->s[j] == '+' || ps->s[j] == '-'))
                j++;
            if (j >= ps->n || ps->s[j] < '0' || ps->s[j] > '9')
                FAIL("invalid JSON header at byte %zu: bad number", start);
            while (j < ps->n && ps->s[j] >= '0' && ps->s[j] <= '9')
                j++;
        }
        ps->i = j;
        if (neg)
            FAIL("tensor '%s': %s must be non-negative integers, got %.*s", name, what,
                 (int)(j - start > 40 ? 40 : j - start), ps->s + start);
        if (frac)
            FAIL("tensor '%s': %s must be integers, got %.*s", name, what,
                 (int)(j - start > 40 ? 40 : j - start), ps->s + start);
        if (overflow)
            FAIL("tensor '%s': %s value %.*s is too large", name, what,
                 (int)(j - start > 40 ? 40 : j - start), ps->s + start);
        *out = v;
        return 1;
    }
    FAIL("tensor '%s': %s must be an array of non-negative integers", name, what);
}

static int parse_tensor(parser *ps, st_entry *e)
{
    int first = 1;
    if (!expect(ps, '{', "an object for a tensor"))
        return 0;
    for (;;) {
        char *key = NULL;
        int c = peek(ps);
        if (c == '}' && first) {
            ps->i++;
            break;
        }
        if (!parse_string(ps, &key))
            return 0;
        if (!expect(ps, ':', "':'")) {
            free(key);
            return 0;
        }
        if (strcmp(key, "dtype") == 0) {
            char *dt = NULL;
            free(key);
            if (e->has_dtype)
                FAIL("tensor '%s': duplicate key 'dtype'", e->name);
            e->has_dtype = 1;
            if (peek(ps) != '"')
                FAIL("tensor '%s': dtype must be a string", e->name);
            if (!parse_string(ps, &dt))
                return 0;
            e->dtype = st_dtype_named(dt);
            if (e->dtype < 0) {
                set_err(ps, "tensor '%s': unknown dtype '%.32s'", e->name, dt);
                ps->failed = 1;
                free(dt);
                return 0;
            }
            free(dt);
        } else if (strcmp(key, "shape") == 0) {
            free(key);
            if (e->has_shape)
                FAIL("tensor '%s': duplicate key 'shape'", e->name);
            e->has_shape = 1;
            if (!expect(ps, '[', "'[' for the shape"))
                return 0;
            if (peek(ps) == ']') {
                ps->i++;
            } else {
                for (;;) {
                    uint64_t d;
                    uint64_t *nd;
                    if (!parse_count(ps, &d, "shape dimensions", e->name))
                        return 0;
                    if (e->ndim >= 64)
                        FAIL("tensor '%s': shape has more than 64 dimensions", e->name);
                    nd = (uint64_t *)realloc(e->dims, sizeof(uint64_t) * (size_t)(e->ndim + 1));
                    if (nd == NULL)
                        FAIL("out of memory");
                    e->dims = nd;
                    e->dims[e->ndim++] = d;
                    c = peek(ps);
                    if (c == ',') {
                        ps->i++;
                        continue;
                    }
                    if (!expect(ps, ']', "',' or ']' in the shape"))
                        return 0;
                    break;
                }
            }
        } else if (strcmp(key, "data_offsets") == 0) {
            free(key);
            if (e->has_offsets)
                FAIL("tensor '%s': duplicate key 'data_offsets'", e->name);
            e->has_offsets = 1;
            if (!expect(ps, '[', "'[' for data_offsets"))
                return 0;
            if (!parse_count(ps, &e->begin, "data_offsets", e->name))
                return 0;
            if (!expect(ps, ',', "',' in data_offsets (two offsets)"))
                return 0;
            if (!parse_count(ps, &e->end, "data_offsets", e->name))
                return 0;
            if (!expect(ps, ']', "']' after the two data_offsets"))
                return 0;
        } else {
            set_err(ps, "tensor '%s': unexpected key '%.64s' (expected dtype, shape, "
                        "data_offsets)", e->name, key);
            ps->failed = 1;
            free(key);
            return 0;
        }
        first = 0;
        c = peek(ps);
        if (c == ',') {
            ps->i++;
            continue;
        }
        if (!expect(ps, '}', "',' or '}'"))
            return 0;
        break;
    }
    if (!e->has_dtype)
        FAIL("tensor '%s': missing 'dtype'", e->name);
    if (!e->has_shape)
        FAIL("tensor '%s': missing 'shape'", e->name);
    if (!e->has_offsets)
        FAIL("tensor '%s': missing 'data_offsets'", e->name);
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "__metadata__": an object whose values are strings; ignored. */
static int parse_metadata(parser *ps)
{
    char **keys = NULL;
    size_t nk = 0, k;
    int ok = 1;
    if (peek(ps) != '{')
        FAIL("__metadata__ must be an object of strings");
    ps->i++;
    if (peek(ps) == '}') {
        ps->i++;
        return 1;
    }
    for (;;) {
        char *key = NULL, *val = NULL;
        char **nkeys;
        if (!parse_string(ps, &key)) {
            ok = 0;
            break;
        }
        nkeys = (char **)realloc(keys, sizeof(char *) * (nk + 1));
        if (nkeys == NULL) {
            free(key);
            set_err(ps, "out of memory");
            ps->failed = 1;
            ok = 0;
            break;
        }
        keys = nkeys;
        keys[nk++] = key;
        if (!expect(ps, ':', "':'")) {
            ok = 0;
            break;
        }
        if (peek(ps) != '"') {
            set_err(ps, "__metadata__ values must be strings ('%.64s' is not)", key);
            ps->failed = 1;
            ok = 0;
            break;
        }
        if (!parse_string(ps, &val)) {
            ok = 0;
            break;
        }
        free(val);
        if (peek(ps) == ',') {
            ps->i++;
            continue;
        }
        if (!expect(ps, '}', "',' or '}'"))
            ok = 0;
        break;
    }
    if (ok && nk > 1) {
        qsort(keys, nk, sizeof(char *), cmp_str);
        for (k = 1; k < nk; k++)
            if (strcmp(keys[k], keys[k - 1]) == 0) {
                set_err(ps, "__metadata__: duplicate key '%.64s'", keys[k]);
                ps->failed = 1;
                ok = 0;
                break;
            }
    }
    for (k = 0; k < nk; k++)
        free(keys[k]);
    free(keys);
    return ok;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static int cmp_entry_offsets(const void *a, const void *b)
{
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int parse_header(parser *ps)
{
    int seen_meta = 0;
    if (peek(ps) != '{')
        FAIL("invalid JSON header at byte %zu: the header must be a JSON object", ps->i);
    ps->i++;
    if (peek(ps) == '}') {
        ps->i++;
    } else {
        for (;;) {
            char *key = NULL;
            if (!parse_string(ps, &key))
                return 0;
            if (!expect(ps, ':', "':'")) {
                free(key);
                return 0;
            }
            if (strcmp(key, "__metadata__") == 0) {
                free(key);
                if (seen_meta)
                    FAIL("duplicate key '__metadata__'");
                seen_meta = 1;
                if (!parse_metadata(ps))
                    return 0;
            } else {
                st_entry *e;
                if (ps->ne == ps->cap) {
                    size_t cap = ps->cap ? ps->cap * 2 : 16;
                    st_entry *ne = (st_entry *)realloc(ps->e, cap * sizeof *ne);
                    if (ne == NULL) {
                        free(key);
                        FAIL("out of memory");
                    }
                    ps->e = ne;
                    ps->cap = cap;
                }
                e = &ps->e[ps->ne++];
                memset(e, 0, sizeof *e);
                e->name = key;
                e->model_id = -1;
                if (!parse_tensor(ps, e))
                    return 0;
            }
            if (peek(ps) == ',') {
                ps->i++;
                continue;
            }
            if (!expect(ps, '}', "',' or '}'"))
                return 0;
            break;
        }
    }
    skip_ws(ps);
    if (ps->i != ps->n)
        FAIL("invalid JSON header at byte %zu: unexpected characters after the object",
             ps->i);
    return 1;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned cp, k;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += len;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Checks of a parsed header against the model                         */

static int state_index(const nn_model *m, const char *key)
{
    int i;
    for (i = 0; i < m->info->nstate; i++)
        if (strcmp(m->info->state_keys[i], key) == 0)
            return i;
    return -1;
}

static int canonical_index(const nn_model *m, const char *key)
{
    int i;
    for (i = 0; i < m->info->ntensors; i++)
        if (strcmp(m->tensors[i].name, key) == 0)
            return i;
    return -1;
}

/* The checks after parsing; returns 1 if the file may be loaded. */
static int check_entries(parser *ps, const nn_model *m, uint64_t data_size,
                         st_entry **by_off, st_entry **by_name, st_entry **canon_entry)
{
    size_t k;
    int i;
    char a[256], b[256];

    /* names are unique (a JSON-level check, so first) */
    for (k = 0; k < ps->ne; k++) {
        by_off[k] = &ps->e[k];
        by_name[k] = &ps->e[k];
    }
    qsort(by_name, ps->ne, sizeof *by_name, cmp_entry_name);
    for (k = 1; k < ps->ne; k++)
        if (strcmp(by_name[k]->name, by_name[k - 1]->name) == 0)
            FAIL("duplicate key '%s' in the header", by_name[k]->name);

    for (k = 0; k < ps->ne; k++) {
        st_entry *e = &ps->e[k];
        uint64_t numel = 1, bytes, esize = st_dtypes[e->dtype].size;
        int d, overflow = 0;
        if (e->begin > e->end)
            FAIL("tensor '%s': data_offsets [%llu, %llu] are reversed", e->name,
                 (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->end > data_size)
            FAIL("tensor '%s': data_offsets [%llu, %llu] are out of range of the data "
                 "section (%llu bytes)", e->name, (unsigned long long)e->begin,
                 (unsigned long long)e->end, (unsigned long long)data_size);
        for (d = 0; d < e->ndim; d++) {
            if (e->dims[d] != 0 && numel > UINT64_MAX / e->dims[d])
                overflow = 1;
            else
                numel *= e->dims[d];
        }
        shape_text(a, sizeof a, e->ndim, e->dims);
        if (overflow || numel > UINT64_MAX / esize)
            FAIL("tensor '%s': shape %s overflows", e->name, a);
        bytes = numel * esize;
        if (bytes != e->end - e->begin)
            FAIL("tensor '%s': shape %s needs %llu bytes but data_offsets [%llu, %llu] "
                 "hold %llu (size mismatch)", e->name, a, (unsigned long long)bytes,
                 (unsigned long long)e->begin, (unsigned long long)e->end,
                 (unsigned long long)(e->end - e->begin));
    }

    /* layout: contiguous from 0 to the end of the file */
    qsort(by_off, ps->ne, sizeof *by_off, cmp_entry_offsets);
    {
        uint64_t pos = 0;
        const st_entry *prev = NULL;
        for (k = 0; k < ps->ne; k++) {
            const st_entry *e = by_off[k];
            if (e->begin < pos)
                FAIL("tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and "
                     "[%llu, %llu])", prev->name, e->name, (unsigned long long)prev->begin,
                     (unsigned long long)prev->end, (unsigned long long)e->begin,
                     (unsigned long long)e->end);
            if (e->begin > pos)
                FAIL("gap in the data section: bytes [%llu, %llu) before tensor '%s' "
                     "belong to no tensor", (unsigned long long)pos,
                     (unsigned long long)e->begin, e->name);
            pos = e->end;
            prev = e;
        }
        if (pos != data_size)
            FAIL("%llu bytes of trailing data after the last tensor",
                 (unsigned long long)(data_size - pos));
    }

    /* names and shapes against the model, in header order */
    for (i = 0; i < m->info->ntensors; i++)
        canon_entry[i] = NULL;
    for (k = 0; k < ps->ne; k++) {
        st_entry *e = &ps->e[k];
        const nn_tensor *t;
        int id = canonical_index(m, e->name), d, same;
        uint64_t mdims[NN_MAX_DIM];
        if (id >= 0) {
            e->canonical = 1;
            canon_entry[id] = e;
        } else {
            int si = state_index(m, e->name);
            if (si < 0)
                FAIL("unknown tensor '%s' (not in the model's state dict)", e->name);
            id = m->info->state_ids[si];
        }
        e->model_id = id;
        t = &m->tensors[id];
        if (e->dtype != st_dtype_of(t->dtype))
            FAIL("tensor '%s': dtype %s does not match the model's %s", e->name,
                 st_dtypes[e->dtype].name, st_dtypes[st_dtype_of(t->dtype)].name);
        same = e->ndim == t->ndim;
        for (d = 0; d < t->ndim; d++) {
            mdims[d] = (uint64_t)t->shape[d];
            if (same && e->dims[d] != mdims[d])
                same = 0;
        }
        if (!same) {
            shape_text(a, sizeof a, e->ndim, e->dims);
            shape_text(b, sizeof b, t->ndim, mdims);
            FAIL("tensor '%s': shape %s does not match the model's %s", e->name, a, b);
        }
    }
    for (i = 0; i < m->info->ntensors; i++)
        if (canon_entry[i] == NULL)
            FAIL("missing tensor '%s'", m->tensors[i].name);
    return 1;
}


/* ------------------------------------------------------------------ */
/* Loading                                                             */

/* The fix for a torch.save file, in every message that finds one. */
#define ST_TORCH_FIX                                                                      \
    "write safetensors from torch with nngen_safetensors.save_file(model.state_dict(), "  \
    "PATH), or convert this file with python3 nngen_safetensors.py convert FILE "         \
    "OUT.safetensors (tools/nngen_safetensors.py, installed in share/nngen/python; it "  \
    "needs only torch and numpy, not the safetensors package)"

/* If p[0 .. n) starts like a torch.save file (a zip archive, or a pickle
   as torch.save(..., _use_new_zipfile_serialization=False) writes), sets
   nn_error() to say so and returns 1; else 0.  Called only for what does
   not read as safetensors (see plausible()): a header length can start
   with these bytes too. */
static int torch_save_file(const unsigned char *p, size_t n, const char *label)
{
    static const char fix[] = ST_TORCH_FIX;   /* one copy in flash */
    if (n >= 4 && p[0] == 'P' && p[1] == 'K' && p[2] == 3 && p[3] == 4) {
        /* the first member's name (local file header: its length at 26,
           the name at 30): torch.save's archives hold NAME/data.pkl */
        size_t nl = n >= 30 ? (size_t)p[26] | (size_t)p[27] << 8 : 0;
        const char *name = (const char *)p + 30;
        if (nl >= 8 && nl <= 200 && n - 30 >= nl && memcmp(name + nl - 8, "data.pkl", 8) == 0)
            nn_set_error("%s: this is a torch.save file (a zip archive holding %.*s), not "
                         "safetensors: %s", label, (int)nl, name, fix);
        else
            nn_set_error("%s: this is a zip archive (as torch.save writes), not safetensors: %s",
                         label, fix);
        return 1;
    }
    /* PROTO 2..5, then an opcode (never 0, which a header length below
       64 KiB would have there): torch.save's first pickle is its magic
       number, a LONG1 (0x8a), or a FRAME (0x95) from protocol 4 on */
    if (n >= 3 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5 && p[2] != 0) {
        nn_set_error("%s: this is %s%d), not safetensors: %s", label,
                     p[2] == 0x8a || p[2] == 0x95 ? "a torch.save file (a pickle, protocol "
                                                  : "a Python pickle (protocol ",
                     p[1], fix);
        return 1;
    }
    return 0;
}

int nn__st_reject_start(const unsigned char *head, size_t n, const char *label)
{
    uint64_t hlen = get_le64(head);
    if (hlen <= ST_MAX_HEADER)
        return 0;
    if (!torch_save_file(head, n, label))
        nn_set_error("%s: header length %llu is absurd (more than %u bytes)", label,
                     (unsigned long long)hlen, ST_MAX_HEADER);
    return 1;
}

/* The start of a safetensors file: a sane header length within the
   buffer, and a header whose first non-blank character opens an object. */
static int plausible(const unsigned char *p, size_t n)
{
    uint64_t hlen = get_le64(p), i;
    if (hlen > ST_MAX_HEADER || hlen < 2 || hlen > n - 8)
        return 0;
    for (i = 0; i < hlen; i++) {
        unsigned char c = p[8 + i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return c == '{';
    }
    return 0;
}

int nn__st_load(nn_model *m, const unsigned char *buf, size_t len, const char *label)
{
    parser ps;
    uint64_t hlen, data_size;
    const unsigned char *data;
    st_entry **by_off = NULL, **by_name = NULL, **canon = NULL;
    const nn_tensor *bad;
    size_t k;
    int i, rc = -1, le = little_endian();

    memset(&ps, 0, sizeof ps);
    ps.path = label;

    if (m->weights_readonly) {
        nn_set_error("%s: the weights of model '%s' are compiled into the program (nngen "
                     "--weights with --inference) and are read-only: compile without "
                     "--inference to load others", label, m->info->name);
        return -1;
    }
    if ((bad = bad_dtype_tensor(m)) != NULL) {
        nn_set_error("%s: tensor '%s' of the model has an unsupported dtype %d", label,
                     bad->name, bad->dtype);
        goto out;
    }
    if (len == 0) {
        nn_set_error("%s: file is empty (not a safetensors file)", label);
        goto out;
    }
    if (len < 8) {
        nn_set_error("%s: truncated: %llu bytes is too short for the 8-byte header length",
                     label, (unsigned long long)len);
        goto out;
    }
    if (!plausible(buf, len) && torch_save_file(buf, len, label))
        goto out;
    if (nn__st_reject_start(buf, len, label))
        goto out;
    hlen = get_le64(buf);
    if (hlen > len - 8) {
        nn_set_error("%s: truncated: header length %llu is longer than the %llu bytes "
                     "after it", label, (unsigned long long)hlen,
                     (unsigned long long)(len - 8));
        goto out;
    }
    if (hlen < 2) {
        nn_set_error("%s: header length %llu is too small for a JSON object", label,
                     (unsigned long long)hlen);
        goto out;
    }
    data_size = len - 8 - hlen;
    if (!valid_utf8(buf + 8, (size_t)hlen)) {
        nn_set_error("%s: header is not valid UTF-8", label);
        goto out;
    }
    ps.s = (const char *)buf + 8;
    ps.n = (size_t)hlen;
    if (!parse_header(&ps))
        goto out;

    by_off = (st_entry **)malloc(sizeof *by_off * (ps.ne + 1));
    by_name = (st_entry **)malloc(sizeof *by_name * (ps.ne + 1));
    canon = (st_entry **)malloc(sizeof *canon * ((size_t)m->info->ntensors + 1));
    if (by_off == NULL || by_name == NULL || canon == NULL) {
        nn_set_error("%s: out of memory", label);
        goto out;
    }
    if (!check_entries(&ps, m, data_size, by_off, by_name, canon))
        goto out;
    data = buf + 8 + hlen;

    /* aliases must repeat their canonical tensor exactly */
    for (k = 0; k < ps.ne; k++) {
        const st_entry *e = &ps.e[k], *c;
        if (e->canonical)
            continue;
        c = canon[e->model_id];
        if (memcmp(data + e->begin, data + c->begin, (size_t)(e->end - e->begin)) != 0) {
            nn_set_error("%s: tensor '%s' is an alias of '%s' but holds different data",
                         label, e->name, c->name);
            goto out;
        }
    }

    /* everything checked: copy */
    for (i = 0; i < m->info->ntensors; i++) {
        nn_tensor *t = &m->tensors[i];
        const unsigned char *p = data + canon[i]->begin;
        unsigned char *dst = (unsigned char *)t->data;
        size_t esize = st_dtypes[canon[i]->dtype].size;
        int64_t j;
        if (le) {
            if (t->numel > 0)
                memcpy(dst, p, (size_t)t->numel * esize);
        } else if (esize == 8) {
            for (j = 0; j < t->numel; j++) {
                uint64_t w = get_le64(p + 8 * j);
                memcpy(dst + 8 * j, &w, 8);
            }
        } else {
            for (j = 0; j < t->numel; j++) {
                uint32_t w = get_le32(p + 4 * j);
                memcpy(dst + 4 * j, &w, 4);
            }
        }
    }
    rc = 0;

out:
    for (k = 0; k < ps.ne; k++) {
        free(ps.e[k].name);
        free(ps.e[k].dims);
    }
    free(ps.e);
    free(by_off);
    free(by_name);
    free(canon);
    return rc;
}

int nn_load_mem(nn_model *m, const void *buf, size_t len)
{
    if (buf == NULL && len > 0) {
        nn_set_error("nn_load_mem: NULL buffer of %llu bytes", (unsigned long long)len);
        return -1;
    }
    return nn__st_load(m, (const unsigned char *)buf, len, "nn_load_mem");
}
