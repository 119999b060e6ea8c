/* util.c: the compilation arena, string buffers, diagnostics. */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "nngen.h"

/* ---- arena ------------------------------------------------------------ */
/* Every allocation of one compilation is kept on a list and released at
 * the end, so error paths (which longjmp to main) leak nothing.  Small
 * objects are carved out of 64 KiB blocks (a spec near the module limit
 * makes millions of them); under AddressSanitizer every object gets its
 * own allocation so that overruns are still caught. */

typedef struct chunk {
    struct chunk *next;
    size_t cap, used;           /* payload bytes; the payload follows, 16-aligned */
} chunk;

#define CHUNK_HEAD ((sizeof(chunk) + 15) & ~(size_t)15)
#define ARENA_BLOCK ((size_t)64 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_BUMP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_BUMP 0
#endif
#endif
#ifndef ARENA_BUMP
#define ARENA_BUMP 1
#endif

static chunk *arena;

NORETURN static void out_of_memory(void)
{
    fputs("nngen: error: out of memory\n", stderr);
    exit(3);
}

void *xalloc(size_t n)
{
    if (n > SIZE_MAX - CHUNK_HEAD - 16)
        out_of_memory();
    size_t need = ((n ? n : 1) + 15) & ~(size_t)15;
    if (ARENA_BUMP && arena && arena->cap - arena->used >= need) {
        void *p = (char *)arena + CHUNK_HEAD + arena->used;
        arena->used += need;
        return p; /* zero: blocks come from calloc and are never reused */
    }
    size_t cap = ARENA_BUMP && need <= ARENA_BLOCK / 4 ? ARENA_BLOCK : need;
    chunk *c = calloc(1, CHUNK_HEAD + cap);
    if (!c)
        out_of_memory();
    c->cap = cap;
    c->used = need;
    if (cap == need && arena) {
        /* a big object: keep the current block in front for small ones */
        c->next = arena->next;
        arena->next = c;
    } else {
        c->next = arena;
        arena = c;
    }
    return (char *)c + CHUNK_HEAD;
}

void *xrealloc_array(void *p, size_t old_n, size_t new_n, size_t size)
{
    if (size && new_n > SIZE_MAX / size)
        out_of_memory();
    void *q = xalloc(new_n * size);
    if (p && old_n)
        memcpy(q, p, (old_n < new_n ? old_n : new_n) * size);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *d = xalloc(n + 1);
    memcpy(d, s, n);
    return d;
}

char *xfmt(const char *fmt, ...)
{
    strbuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    char *s = xstrdup(b.s ? b.s : "");
    free(b.s);
    return s;
}

void arena_release(void)
{
    while (arena) {
        chunk *n = arena->next;
        free(arena);
        arena = n;
    }
}

/* ---- strbuf (malloc-backed: outlives the arena when needed) ----------- */

static void sb_reserve(strbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        out_of_memory();
    b->s = s;
    b->cap = cap;
}

void sb_putc(strbuf *b, char c)
{
    sb_reserve(b, 1);
    b->s[b->len++] = c;
    b->s[b->len] = 0;
}

void sb_puts(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    sb_reserve(b, n);
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void sb_vprintf(strbuf *b, const char *fmt, va_list ap)
{
    /* never true; without it GCC 12 with -fsanitize=undefined warns "null
     * format string" about the instrumented path */
    if (!fmt)
        return;
    /* format straight into the free space; only a longer result needs a
     * second pass (measuring with vsnprintf(NULL, 0) first is slow in glibc) */
    sb_reserve(b, 128);
    size_t room = b->cap - b->len;
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(b->s + b->len, room, fmt, aq);
    va_end(aq);
    if (n < 0) {
        b->s[b->len] = 0;
        return;
    }
    if ((size_t)n >= room) {
        sb_reserve(b, (size_t)n);
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    }
    b->len += (size_t)n;
}

void sb_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* ---- diagnostics ------------------------------------------------------- */

jmp_buf diag_jmp;
static const char *src_file;
static const char *src_text;
static size_t src_len;

void diag_set_source(const char *file, const char *text, size_t len)
{
    src_file = file;
    src_text = text;
    src_len = len;
}

/* Print the source line of l and a caret under its column. */
static void show_line(loc l)
{
    if (!src_text || !l.file || !src_file || strcmp(l.file, src_file) != 0 || l.line < 1)
        return;
    size_t i = 0;
    for (int line = 1; line < l.line && i < src_len; i++)
        if (src_text[i] == '\n')
            line++;
    if (i >= src_len && l.line > 1)
        return;
    size_t e = i;
    while (e < src_len && src_text[e] != '\n' && src_text[e] != '\r')
        e++;
    if (e - i > 200)
        return;
    fprintf(stderr, " %5d | ", l.line);
    for (size_t k = i; k < e; k++) {
        unsigned char c = (unsigned char)src_text[k];
        fputc(c == '\t' ? ' ' : (c < 32 ? '?' : c), stderr);
    }
    fputs("\n       | ", stderr);
    for (int k = 1; k < l.col && k < 200; k++)
        fputc(' ', stderr);
    fputs("^\n", stderr);
}

void error_at(loc l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (l.file && l.line > 0)
        fprintf(stderr, "%s:%d:%d: error: ", l.file, l.line, l.col);
    else if (l.file)
        fprintf(stderr, "%s: error: ", l.file);
    else
        fputs("nngen: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    show_line(l);
    longjmp(diag_jmp, 1);
}

void warn_at(loc l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (l.file && l.line > 0)
        fprintf(stderr, "%s:%d:%d: warning: ", l.file, l.line, l.col);
    else if (l.file)
        fprintf(stderr, "%s: warning: ", l.file);
    else
        fputs("nngen: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void io_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nngen: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    longjmp(diag_jmp, 3);
}

void die_bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "nngen: internal error at %s:%d: %s (please report this)\n", file, line,
            what);
    abort();
}

/* The optimal string alignment distance (Levenshtein plus the swap of two
 * neighbours as one edit: "rleu" is one edit from "relu"), ignoring case. */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64)
        return INT_MAX;
    int prev2[65], prev[65], row[65];
    for (size_t j = 0; j <= m; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        row[0] = (int)i;
        int ai = tolower((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= m; j++) {
            int bj = tolower((unsigned char)b[j - 1]);
            int v = prev[j - 1] + (ai != bj);
            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            row[j] = v;
        }
        memcpy(prev2, prev, sizeof prev);
        memcpy(prev, row, sizeof row);
    }
    return prev[m];
}

/* The candidate nearest to word, when it is close: at most a third of the
 * word's length in edits (plus one), at most 3, and at most 40% of the
 * longer of the two names, so that a short word is never "corrected" into
 * an unrelated one ('rnn' is two edits from 'ref', 'gru' two from 'relu':
 * no suggestion; 'int64' is two from 'int32': suggested).  A
 * difference of case only is distance 0 ('LSTM' -> 'lstm'). */
const char *suggest(const char *word, const char *const *cands, int n)
{
    const char *best = NULL;
    int bestd = INT_MAX;
    for (int i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        int d = edit_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    if (!best)
        return NULL;
    size_t len = strlen(word), blen = strlen(best);
    int limit = (int)(len / 3) + 1;
    if (limit > 3)
        limit = 3;
    size_t longer = len > blen ? len : blen;
    return bestd <= limit && (size_t)bestd * 5 <= longer * 2 ? best : NULL;
}

const char *did_you_mean(const char *word, const char *const *cands, int n)
{
    const char *s = suggest(word, cands, n);
    return s ? xfmt(" (did you mean '%s'?)", s) : "";
}

int is_identifier(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

void py_float_repr(char *buf, size_t n, double v)
{
    if (v != v) {
        snprintf(buf, n, "nan");
        return;
    }
    if (v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
        return;
    }
    char tmp[64];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* tmp holds d.ddddde[+-]XX with prec significant digits */
    char digits[32];
    int nd = 0;
    const char *p = tmp;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p))
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    int exp = atoi(p + 1);
    strbuf b = {0};
    if (neg)
        sb_putc(&b, '-');
    if (exp < -4 || exp >= 16) {
        sb_putc(&b, digits[0]);
        if (nd > 1) {
            sb_putc(&b, '.');
            sb_puts(&b, digits + 1);
        }
        sb_printf(&b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        sb_puts(&b, "0.");
        for (int i = -1; i > exp; i--)
            sb_putc(&b, '0');
        sb_puts(&b, digits);
    } else {
        for (int i = 0; i <= exp; i++)
            sb_putc(&b, i < nd ? digits[i] : '0');
        sb_putc(&b, '.');
        if (nd > exp + 1)
            sb_puts(&b, digits + exp + 1);
        else
            sb_putc(&b, '0');
    }
    snprintf(buf, n, "%s", b.s);
    free(b.s);
}
