/* nngen-rt: conv2d lowered to matrix products (nn_conv2d_forward,
 * nn_conv2d_backward), for the generated code's larger convolutions.
 *
 * On nngen's vector kernels (nn__vec_kernels: gemm_avx512.c's where the
 * AVX-512 kernel is in use, conv_avx2.c's on an AVX2 CPU in the auto and
 * nngen modes): implicit GEMMs over the zero-padded input split into stride
 * phases (see "the implicit GEMM" below), with no im2col copy; the input
 * gradient of a stride-1 conv as the forward of the transposed conv over gy
 * (see "as a forward conv").  Elsewhere (NNGEN_GEMM=cblas or portable, no
 * AVX2), per example and group, im2col
 * writes the group's input as a kd x L matrix of columns (kd = C/G * KH * KW
 * rows, ordered (c, kh, kw) as the weight; L = OH * OW), then
 *     forward   y = W col + b
 *     backward  gW += gy col^T,  col = W^T gy,  gx = col2im(col),  gb += sum of gy
 * through nn_sgemm; im2col and col2im work on whole rows (zeros, one copy,
 * zeros), with no test per element.
 *
 * Threads.  With the kernel the examples are split over the pool's threads,
 * each working alone (thread 0 in the caller's `work`, the others in
 * per-thread buffers of this file, grown on demand and kept for the
 * process, as the packing buffers are).  The weight and bias gradients are
 * summed per block of examples (NBLK blocks, fixed by n, not by the thread
 * count) and the blocks' sums are added in block order, so the result does
 * not depend on how many threads ran.  Without the kernel, or when the pool
 * is busy, the caller does everything alone with im2col and nn_sgemm
 * (cblas where that is the implementation), block by block in the same
 * order, in `work`; when only a helper buffer cannot be allocated, the
 * caller runs the kernel's path alone.
 */
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

/* blocks of examples for the parameter gradients' partial sums */
#define NBLK 16

static long kdim(const nn_conv2d_geom *g)
{
    return (long)(g->c / g->groups) * g->kh * g->kw;
}

static long plane(const nn_conv2d_geom *g)
{
    return (long)g->oh * g->ow;
}

/* weight and bias gradient floats (one block's partial sums) */
static long grad_floats(const nn_conv2d_geom *g)
{
    return (long)g->o * kdim(g) + g->o;
}

/* ---- the implicit GEMM of the forward (nngen's kernel) --------------------

   The group's zero-padded input, split into sh x sw phase planes: plane
   (a, b) of channel c holds xpad[c][a + sh i][b + sw j] for i < hq,
   j < wq.  Then weight row k = (c, kh, kw) meets the input at
   plane (c, kh dh % sh, kw dw % sw) shifted by (kh dh / sh) wq + kw dw / sw,
   for every output (oh, ow) at the flat index oh wq + ow: each row of the
   im2col matrix is a contiguous piece of the planes, and the product reads
   it in place (nn__sgemm_offs_avx512, B's rows as offsets) into an
   output of oh x wq columns, of which the first ow of each row are kept. */

typedef struct {
    long hq, wq;       /* a phase plane */
    long planes;       /* floats of the planes of the group (+ slack) */
    long lq;           /* oh * wq: the product's columns */
} phases;

static void phase_geom(const nn_conv2d_geom *g, phases *ph)
{
    long hp = (long)(g->oh - 1) * g->sh + (long)(g->kh - 1) * g->dh + 1;
    long wp = (long)(g->ow - 1) * g->sw + (long)(g->kw - 1) * g->dw + 1;
    ph->hq = (hp + g->sh - 1) / g->sh;
    ph->wq = (wp + g->sw - 1) / g->sw;
    /* the junk columns of the last output row read up to (kw - 1) dw / sw
       floats past the last plane */
    ph->planes = (long)(g->c / g->groups) * g->sh * g->sw * ph->hq * ph->wq + ph->wq + 16;
    ph->lq = (long)g->oh * ph->wq;
}

/* The implicit GEMMs' buffers, carved from one block of floats: the
   planes, their gradient, a wide output or gy (og x lq: the junk columns
   zero), the weight gradient's 16 lanes per sum, and int tables (in
   float-sized slots): the rows' offsets and four of other kinds. */

/* By output rows (y written and gy read in place, ow columns at a time)
   or wide (oh x wq columns at once through a copy): on LeNet (ow 28 and
   10) the wide products made its train step 20 % faster (6.3 against
   7.6 ms), the rows' short tiles (one or two vectors, k = 16 for the input
   gradient) costing more than the copies, and on the small ResNet (ow 32
   and 16) rows were no faster (90 against 85 ms, within the noise); rows
   from 64 columns on, where a row fills whole tiles.  Once the rest of
   the step had become faster the copies showed (an eighth of the small
   ResNet's train step): the forward products (and the transposed forward
   of the input gradient) now also run by rows when a row is whole vectors
   (ow 32, 48), 3.25 against 3.07 ms and 3.64 against 2.98 ms on its
   16-channel 32 x 32 conv; the weight gradient's dot products stay wide
   below 64 columns (4.2 against 4.7 ms by rows: runs of two vectors) on
   the AVX-512 set, where by rows from 32 columns measured the same over
   the whole step (67.2 against 67.7 ms, 4 alternated runs).  On the AVX2
   set (8 lanes) they (and the input gradient that is not a transposed
   forward, which shares their layout) run by rows by the forward's rule:
   the small ResNet's train step 83.3 -> 81.2 ms (4 alternated runs,
   NNGEN_ISA=avx2 on the Intel Xeon; by rows from 32 columns only gave
   about half of that). */
#if NN_HAVE_AVX512_KERNEL
static int by_rows(const nn_vec_kernels *ck, const nn_conv2d_geom *g)
{
    return g->ow >= 64 || (g->ow >= 2 * ck->lanes && g->ow % ck->lanes == 0);
}

static int dot_by_rows(const nn_vec_kernels *ck, const nn_conv2d_geom *g)
{
    return g->ow >= 64 || (ck->lanes == 8 && by_rows(ck, g));
}
#endif
typedef struct {
    float *planes, *gplanes, *gyw, *cv;
    int *off, *t1, *t2, *t3, *t4;
} dbufs;

static long tab_len(const nn_conv2d_geom *g, const phases *ph)
{
    long kd = kdim(g), og = g->o / g->groups, n = kd > og ? kd : og;
    return n > ph->lq ? n : ph->lq;
}

static long carve(const nn_conv2d_geom *g, const phases *ph, float *base, dbufs *d)
{
    long og = g->o / g->groups, kd = kdim(g), t = tab_len(g, ph), at = 0;
    float *p = base;
#define TAKE(field, type, n) (d->field = base ? (type *)(void *)(p + at) : NULL, at += (n))
    TAKE(planes, float, ph->planes);
    TAKE(gplanes, float, ph->planes);
    TAKE(gyw, float, og * ph->lq);
    TAKE(cv, float, og * kd * 16);
    TAKE(off, int, kd);
    TAKE(t1, int, t);
    TAKE(t2, int, t);
    TAKE(t3, int, t);
    TAKE(t4, int, t);
#undef TAKE
    return at;
}

static long direct_floats(const nn_conv2d_geom *g)
{
    phases ph;
    dbufs d;
    phase_geom(g, &ph);
    return carve(g, &ph, NULL, &d);
}

static long base_work_floats(const nn_conv2d_geom *g)
{
    long col = kdim(g) * plane(g), direct = direct_floats(g);
    return (col > direct ? col : direct) + grad_floats(g);
}

static int transposable(const nn_conv2d_geom *g);
static nn_conv2d_geom transposed(const nn_conv2d_geom *g);

/* the backward's transposed forward (backward_gx_transposed) uses the
   same buffer before the weight gradient does: the flipped weights, then
   that forward's own work */
size_t nn_conv2d_work_floats(const nn_conv2d_geom *g)
{
    long base = base_work_floats(g);
    if (transposable(g)) {
        nn_conv2d_geom t = transposed(g);
        long tw = (long)g->c * g->o * g->kh * g->kw + base_work_floats(&t);
        if (tw > base)
            base = tw;
    }
    return (size_t)base;
}

/* the output columns [lo, hi) whose input column ow * sw + off lies in
   [0, w) */
static void col_range(const nn_conv2d_geom *g, long off, long *lo, long *hi)
{
    long l = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    long h = g->w - 1 - off < 0 ? 0 : (g->w - 1 - off) / g->sw + 1;
    if (h > g->ow)
        h = g->ow;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* col (kd x L) from the group's input planes x (C/G x H x W) */
static void im2col(const nn_conv2d_geom *g, const float *x, float *col)
{
    long cg = g->c / g->groups, L = plane(g);
    for (long c = 0; c < cg; c++)
        for (long kh = 0; kh < g->kh; kh++)
            for (long kw = 0; kw < g->kw; kw++) {
                float *cr = col + ((c * g->kh + kh) * g->kw + kw) * L;
                long off = kw * g->dw - g->pl, lo, hi;
                col_range(g, off, &lo, &hi);
                for (long oh = 0; oh < g->oh; oh++) {
                    long ih = oh * g->sh - g->pt + kh * g->dh;
                    float *d = cr + oh * g->ow;
                    if (ih < 0 || ih >= g->h) {
                        memset(d, 0, sizeof(float) * (size_t)g->ow);
                        continue;
                    }
                    const float *s = x + (c * g->h + ih) * g->w + off;
                    if (lo > 0)
                        memset(d, 0, sizeof(float) * (size_t)lo);
                    if (g->sw == 1)
                        memcpy(d + lo, s + lo, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (long ow = lo; ow < hi; ow++)
                            d[ow] = s[ow * g->sw];
                    if (hi < g->ow)
                        memset(d + hi, 0, sizeof(float) * (size_t)(g->ow - hi));
                }
            }
}

/* the group's input gradient planes gx (C/G x H x W) += col2im(col) */
static void col2im(const nn_conv2d_geom *g, const float *col, float *gx)
{
    long cg = g->c / g->groups, L = plane(g);
    for (long c = 0; c < cg; c++)
        for (long kh = 0; kh < g->kh; kh++)
            for (long kw = 0; kw < g->kw; kw++) {
                const float *cr = col + ((c * g->kh + kh) * g->kw + kw) * L;
                long off = kw * g->dw - g->pl, lo, hi;
                col_range(g, off, &lo, &hi);
                for (long oh = 0; oh < g->oh; oh++) {
                    long ih = oh * g->sh - g->pt + kh * g->dh;
                    if (ih < 0 || ih >= g->h)
                        continue;
                    const float *s = cr + oh * g->ow;
                    float *d = gx + (c * g->h + ih) * g->w + off;
                    if (g->sw == 1)
                        for (long ow = lo; ow < hi; ow++)
                            d[ow] += s[ow];
                    else
                        for (long ow = lo; ow < hi; ow++)
                            d[ow * g->sw] += s[ow];
                }
            }
}

#if NN_HAVE_AVX512_KERNEL
/* floats of a padded input row for the stride-2 planes' vector path */
#define ROW_TMP 1024

/* the planes of the group's input planes x (C/G x H x W) */
static void fill_planes(const nn_vec_kernels *ck, const nn_conv2d_geom *g, const phases *ph,
                        const float *x, float *xp)
{
    long cg = g->c / g->groups, pl = ph->hq * ph->wq;
    if (g->sh == 1 && g->sw == 1) { /* one plane per channel: rows of zeros,
                                       zeros | the row | zeros, zeros */
        long top = g->pt < ph->hq ? g->pt : ph->hq;
        long nr = ph->hq - top < g->h ? ph->hq - top : g->h;
        long lp = g->pl < ph->wq ? g->pl : ph->wq;
        long nw = ph->wq - lp < g->w ? ph->wq - lp : g->w;
        for (long c = 0; c < cg; c++) {
            float *p = xp + c * pl;
            memset(p, 0, sizeof(float) * (size_t)(top * ph->wq));
            ck->copy_rows(nr, nw, x + c * g->h * g->w, g->w, p + top * ph->wq, ph->wq, lp,
                          ph->wq - lp - nw);
            memset(p + (top + nr) * ph->wq, 0, sizeof(float) * (size_t)((ph->hq - top - nr) *
                                                                         ph->wq));
        }
        memset(xp + cg * pl, 0, sizeof(float) * (size_t)(ph->planes - cg * pl));
        return;
    }
    memset(xp, 0, sizeof(float) * (size_t)ph->planes);
    for (long c = 0; c < cg; c++)
        for (long ih = 0; ih < g->h; ih++) {
            long r = ih + g->pt;
            if (r >= ph->hq * g->sh)
                break;
            const float *s = x + (c * g->h + ih) * g->w;
            float *base = xp + ((c * g->sh + r % g->sh) * g->sw) * pl + (r / g->sh) * ph->wq;
            if (g->sw == 1) {
                long n = g->w < ph->wq - g->pl ? g->w : ph->wq - g->pl;
                if (n > 0)
                    memcpy(base + g->pl, s, sizeof(float) * (size_t)n);
                continue;
            }
            if (g->sw == 2 && 2 * ph->wq <= ROW_TMP) {
                /* the row padded (pl zeros, the row, zeros) to 2 wq floats,
                   its even and odd columns the two planes' rows */
                float tmp[ROW_TMP];
                long lp = g->pl < 2 * ph->wq ? g->pl : 2 * ph->wq;
                long nw = 2 * ph->wq - lp < g->w ? 2 * ph->wq - lp : g->w;
                ck->copy_rows(1, nw, s, 0, tmp, 0, lp, 2 * ph->wq - lp - nw);
                ck->deinterleave2(ph->wq, tmp, base, base + pl);
                continue;
            }
            for (long b = 0; b < g->sw; b++) { /* plane b: columns iw = j sw + b - pl */
                float *dst = base + b * pl;
                for (long j = 0; j < ph->wq; j++) {
                    long iw = j * g->sw + b - g->pl;
                    if (iw >= g->w)
                        break;
                    if (iw >= 0)
                        dst[j] = s[iw];
                }
            }
        }
}

/* the adjoint of fill_planes: the group's input gradient planes gx
   (C/G x H x W) from the planes' gradient (positions no window reads: 0) */
static void unfill_planes(const nn_vec_kernels *ck, const nn_conv2d_geom *g, const phases *ph,
                          const float *gp, float *gx)
{
    long cg = g->c / g->groups, pl = ph->hq * ph->wq;
    memset(gx, 0, sizeof(float) * (size_t)(cg * g->h * g->w));
    for (long c = 0; c < cg; c++)
        for (long ih = 0; ih < g->h; ih++) {
            long r = ih + g->pt;
            if (r >= ph->hq * g->sh)
                break;
            float *d = gx + (c * g->h + ih) * g->w;
            const float *base = gp + ((c * g->sh + r % g->sh) * g->sw) * pl + (r / g->sh) * ph->wq;
            if (g->sw == 1) {
                long n = g->w < ph->wq - g->pl ? g->w : ph->wq - g->pl;
                if (n > 0)
                    memcpy(d, base + g->pl, sizeof(float) * (size_t)n);
                continue;
            }
            if (g->sw == 2 && 2 * ph->wq <= ROW_TMP) { /* fill_planes' inverse */
                float tmp[ROW_TMP];
                long lp = g->pl < 2 * ph->wq ? g->pl : 2 * ph->wq;
                long nw = 2 * ph->wq - lp < g->w ? 2 * ph->wq - lp : g->w;
                ck->interleave2(ph->wq, base, base + pl, tmp);
                memcpy(d, tmp + lp, sizeof(float) * (size_t)nw);
                continue;
            }
            for (long b = 0; b < g->sw; b++) {
                const float *src = base + b * pl;
                for (long j = 0; j < ph->wq; j++) {
                    long iw = j * g->sw + b - g->pl;
                    if (iw >= g->w)
                        break;
                    if (iw >= 0)
                        d[iw] = src[j];
                }
            }
        }
}

/* the offsets of the im2col rows k = (c, kh, kw) in the planes */
static void row_offsets(const nn_conv2d_geom *g, const phases *ph, int *off)
{
    long cg = g->c / g->groups, pl = ph->hq * ph->wq;
    for (long c = 0; c < cg; c++)
        for (long kh = 0; kh < g->kh; kh++)
            for (long kw = 0; kw < g->kw; kw++) {
                long a = kh * g->dh, b = kw * g->dw;
                off[(c * g->kh + kh) * g->kw + kw] =
                    (int)(((c * g->sh + a % g->sh) * g->sw + b % g->sw) * pl +
                          (a / g->sh) * ph->wq + b / g->sw);
            }
}

#endif

/* ------------------------------------------------------------------ */
/* per-thread buffers (threads 1 .. NN_MAX_THREADS-1; thread 0 has work) */

static struct {
    float *p;
    size_t cap;
} bufs[NN_MAX_THREADS];
static float *parts;        /* NBLK blocks' gradient sums; used by the pool holder only */
static size_t parts_cap;

static float *grow(float **p, size_t *cap, size_t floats)
{
    if (*cap < floats) {
        float *q = realloc(*p, sizeof(float) * floats);
        if (q == NULL)
            return NULL;
        *p = q;
        *cap = floats;
    }
    return *p;
}

/* buffers for nt threads; 0 when one cannot be had */
static int have_buffers(int nt, size_t col_floats, size_t parts_floats)
{
    for (int t = 1; t < nt && t < NN_MAX_THREADS; t++)
        if (!grow(&bufs[t].p, &bufs[t].cap, col_floats))
            return 0;
    if (parts_floats && !grow(&parts, &parts_cap, parts_floats))
        return 0;
    return 1;
}

/* ------------------------------------------------------------------ */

/* the product through nn_sgemm's kernels (the im2col path: no AVX-512
   kernel, or the pool busy), with the bias added to each row as it is
   stored; on the kernel the mode fixes, not the measured choice, so that
   the bits do not depend on the thread count (auto mode on an AVX-512 CPU
   whose pool is busy: nngen's kernel, as conv.c's own paths are; on an
   AVX2 CPU: cblas_sgemm, or the AVX2 kernel with NNGEN_GEMM=nngen) */
static void gemm(int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                 const float *b, int ldb, int acc, float *c, int ldc, const float *bias)
{
    if (bias) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(long)i * ldc + j] = 0.0f;
        nn__sgemm_unmeasured(trans_a, trans_b, m, n, k, a, lda, b, ldb, 1, c, ldc);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(long)i * ldc + j] += bias[i];
        return;
    }
    nn__sgemm_unmeasured(trans_a, trans_b, m, n, k, a, lda, b, ldb, acc, c, ldc);
}

typedef struct {
    const nn_vec_kernels *ck; /* the implicit GEMMs' (NULL: im2col) */
    const nn_conv2d_geom *g;
    int n;
    const float *x, *w, *b, *gy;
    float *y, *gx, *work;
    int want_grads;         /* gw or gb */
    int want_bias;          /* gb */
    float *parts;           /* NBLK x grad_floats */
} conv_job;

/* the pool for at most n threads when there are kernels, else 0 (and 0
   when another thread holds it) */
static int take(const nn_vec_kernels *ck, int n)
{
    return ck ? nn__pool_take(n) : 0;
}

static float *col_of(const conv_job *j, int t)
{
    return t <= 0 || t >= NN_MAX_THREADS ? j->work : bufs[t].p;
}

/* forward of examples [r0, r1) */
static void fwd_rows(const conv_job *j, int t, int r0, int r1)
{
    const nn_conv2d_geom *g = j->g;
    long cg = g->c / g->groups, og = g->o / g->groups, kd = kdim(g), L = plane(g);
    float *col = col_of(j, t);
#if NN_HAVE_AVX512_KERNEL
    if (t >= 0 && j->ck) {   /* the implicit GEMM */
        const nn_vec_kernels *ck = j->ck;
        phases ph;
        dbufs d;
        phase_geom(g, &ph);
        carve(g, &ph, col, &d);
        row_offsets(g, &ph, d.off);
        int rows = by_rows(ck, g);
        for (long i = 0; i < og; i++)
            d.t1[i] = (int)(i * kd), d.t2[i] = (int)(i * (rows ? L : ph.lq));
        /* by rows: the ow valid columns of each output row, read at oh wq
           in the planes and written at oh ow in y; wide: oh x wq columns
           into gyw, then the valid ones copied */
        nn_gemm_rows gm = {og, rows ? g->ow : ph.lq, kd, NULL, d.t1, 1, d.planes, d.off, d.gyw,
                           d.t2, 0, NULL, rows ? g->oh : 0, ph.wq, g->ow};
        for (long r = r0; r < r1; r++)
            for (long q = 0; q < g->groups; q++) {
                fill_planes(ck, g, &ph, j->x + (r * g->c + q * cg) * g->h * g->w, d.planes);
                gm.a = j->w + q * og * kd;
                gm.bias = j->b ? j->b + q * og : NULL;
                float *y = j->y + (r * g->o + q * og) * L;
                if (rows)
                    gm.c = y;
                ck->rows(&gm);
                if (!rows) /* row (o, oh) at o lq + oh wq = (o oh + oh) wq */
                    ck->copy_rows(og * g->oh, g->ow, d.gyw, ph.wq, y, g->ow, 0, 0);
            }
        return;
    }
#endif
    for (long r = r0; r < r1; r++)
        for (long q = 0; q < g->groups; q++) {
            im2col(g, j->x + (r * g->c + q * cg) * g->h * g->w, col);
            gemm(0, 0, (int)og, (int)L, (int)kd, j->w + q * og * kd, (int)kd, col, (int)L, 0,
                 j->y + (r * g->o + q * og) * L, (int)L, j->b ? j->b + q * og : NULL);
        }
}

static void fwd_task(void *ctx, int t, int nt)
{
    const conv_job *j = ctx;
    fwd_rows(j, t, (int)((long)j->n * t / nt), (int)((long)j->n * (t + 1) / nt));
}

void nn_conv2d_forward(const nn_conv2d_geom *g, int n, const float *x, const float *w,
                       const float *b, float *y, float *work)
{
    if (n <= 0)
        return;
    conv_job j = {nn__vec_kernels(), g, n, x, w, b, NULL, y, NULL, work, 0, 0, NULL};
    int nt = take(j.ck, n);
    long col = kdim(g) * plane(g), direct = direct_floats(g);
    if (nt >= 2 && have_buffers(nt, (size_t)(col > direct ? col : direct), 0)) {
        nn__pool_run(fwd_task, &j);
        nn__pool_give();
        return;
    }
    if (nt > 0) {          /* the pool alone: thread 0's own kernel */
        fwd_rows(&j, 0, 0, n);
        nn__pool_give();
        return;
    }
    fwd_rows(&j, -1, 0, n);
}

#if NN_HAVE_AVX512_KERNEL
/* bwd_block on nngen's kernel: the implicit GEMMs
       gW (og x kd) += gy (og x lq) . planes rows (kd x lq)^T
       planes' gradient rows (kd x lq, shifted, overlapping) += W^T gy
   then the input gradient from the planes' (unfill_planes) */
static void bwd_direct(const conv_job *j, int t, long r0, long r1, float *part)
{
    const nn_vec_kernels *ck = j->ck;
    const nn_conv2d_geom *g = j->g;
    long cg = g->c / g->groups, og = g->o / g->groups, kd = kdim(g), L = plane(g);
    phases ph;
    dbufs d;
    phase_geom(g, &ph);
    carve(g, &ph, col_of(j, t), &d);
    row_offsets(g, &ph, d.off);
    for (long k = 0; k < kd; k++)
        d.t3[k] = (int)k;
    int rows = dot_by_rows(ck, g);
    for (long o = 0; o < og; o++)
        d.t4[o] = (int)(o * (rows ? L : ph.lq));
    /* by rows: gy read in place, output row by output row (ow columns at
       oh ow), against the planes' rows at oh wq; wide: gy copied into gyw
       (og x lq, zeros in the junk columns) */
    nn_gemm_dot gw = {og, kd, rows ? g->ow : ph.lq, d.gyw, d.t4, d.planes, d.off, NULL, kd, 0,
                      d.cv, rows ? g->oh : 0, g->ow, ph.wq};
    nn_gemm_rows gx = {kd, rows ? g->ow : ph.lq, og, NULL, d.t3, kd, d.gyw, d.t4, d.gplanes,
                       d.off, 1, NULL, rows ? g->oh : 0, g->ow, ph.wq};
    for (long q = 0; q < g->groups; q++) {
        gx.a = j->w + q * og * kd;
        for (long r = r0; r < r1; r++) {
            const float *gyq = j->gy + (r * g->o + q * og) * L;
            if (rows) {
                gw.a = gyq;
                gx.b = gyq;
            } else {
                /* every row of gyw (og x lq = og oh rows of wq): gy's, then
                   zeros in the junk columns */
                ck->copy_rows(og * g->oh, g->ow, gyq, g->ow, d.gyw, ph.wq, 0, ph.wq - g->ow);
            }
            if (j->want_grads) {
                fill_planes(ck, g, &ph, j->x + (r * g->c + q * cg) * g->h * g->w, d.planes);
                gw.beta = r > r0;
                ck->dot(&gw);
            }
            if (j->gx) {
                memset(d.gplanes, 0, sizeof(float) * (size_t)ph.planes);
                ck->rows(&gx);
                unfill_planes(ck, g, &ph, d.gplanes,
                              j->gx + (r * g->c + q * cg) * g->h * g->w);
            }
        }
        if (j->want_grads) /* the block's sums: the lanes of each, added */
            for (long i = 0; i < og * kd; i++) {
                const float *v = d.cv + i * ck->lanes;
                float s = 0.0f;
                for (int q2 = 0; q2 < ck->lanes; q2++)
                    s += v[q2];
                part[q * og * kd + i] = s;
            }
    }
}
#endif

/* backward of block blk (its examples): the input gradient of its examples
   (when gx) and, when want_grads, the block's weight and bias gradient sums
   into part (grad_floats) */
static void bwd_block(const conv_job *j, int t, int blk, int nblk, float *part)
{
    const nn_conv2d_geom *g = j->g;
    long cg = g->c / g->groups, og = g->o / g->groups, kd = kdim(g), L = plane(g);
    long r0 = (long)j->n * blk / nblk, r1 = (long)j->n * (blk + 1) / nblk;
    float *col = col_of(j, t);
    if (j->want_bias) { /* (a conv without bias, before a batch norm: not summed) */
        float *pb = part + g->o * kd;
        for (long o = 0; o < g->o; o++) {
            /* in double: the sum is often near 0 (a batch norm after); in 8
               partial sums, so that the additions do not wait for each other */
            double s = 0.0, s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0,
                   s6 = 0.0, s7 = 0.0; /* named, so that they stay in registers */
            for (long r = r0; r < r1; r++) {
                const float *d = j->gy + (r * g->o + o) * L;
                long l = 0;
                for (; l + 8 <= L; l += 8) {
                    s0 += d[l], s1 += d[l + 1], s2 += d[l + 2], s3 += d[l + 3];
                    s4 += d[l + 4], s5 += d[l + 5], s6 += d[l + 6], s7 += d[l + 7];
                }
                for (; l < L; l++)
                    s += d[l];
            }
            s += ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
            pb[o] = (float)s;
        }
    }
#if NN_HAVE_AVX512_KERNEL
    if (t >= 0 && j->ck) {
        bwd_direct(j, t, r0, r1, part);
        return;
    }
#endif
    if (j->want_grads) {
        float *pw = part;
        for (long r = r0; r < r1; r++)
            for (long q = 0; q < g->groups; q++) {
                im2col(g, j->x + (r * g->c + q * cg) * g->h * g->w, col);
                gemm(0, 1, (int)og, (int)kd, (int)L, j->gy + (r * g->o + q * og) * L, (int)L,
                     col, (int)L, r > r0, pw + q * og * kd, (int)kd, NULL);
            }
    }
    if (j->gx)
        for (long r = r0; r < r1; r++) {
            float *gxr = j->gx + r * g->c * g->h * g->w;
            memset(gxr, 0, sizeof(float) * (size_t)(g->c * g->h * g->w));
            for (long q = 0; q < g->groups; q++) {
                gemm(1, 0, (int)kd, (int)L, (int)og, j->w + q * og * kd, (int)kd,
                     j->gy + (r * g->o + q * og) * L, (int)L, 0, col, (int)L, NULL);
                col2im(g, col, gxr + q * cg * g->h * g->w);
            }
        }
}

static int nblocks(int n)
{
    return n < NBLK ? n : NBLK;
}

static void bwd_task(void *ctx, int t, int nt)
{
    const conv_job *j = ctx;
    int nb = nblocks(j->n);
    for (int blk = t; blk < nb; blk += nt)
        bwd_block(j, t, blk, nb, j->parts ? j->parts + (long)blk * grad_floats(j->g) : NULL);
}

/* gw, gb (either may be NULL) = or += the block sums */
static void add_part(const nn_conv2d_geom *g, const float *part, float *gw, float *gb, int setw,
                     int setb)
{
    long nw = (long)g->o * kdim(g);
    if (gw)
        for (long i = 0; i < nw; i++)
            gw[i] = setw ? part[i] : gw[i] + part[i];
    if (gb)
        for (long o = 0; o < g->o; o++)
            gb[o] = setb ? part[nw + o] : gb[o] + part[nw + o];
}

/* ---- the input gradient of a stride-1 conv as a forward conv ----

   With stride 1 and one group, gx[c][ih][iw] = sum over (o, kh, kw) of
   w[o][c][kh][kw] gy[o][ih + pt - kh dh][iw + pl - kw dw] (gy zero outside
   its oh x ow): the forward of a conv from o to c channels over gy, with
   the weights transposed and flipped (wt[c][o][kh'][kw'] = w[o][c][KH-1-kh']
   [KW-1-kw']) and padding dh (kh - 1) - pt, dw (kw - 1) - pl.  On nngen's
   kernel that is the forward's implicit GEMM, k = o kh kw, where the planes'
   gradient (bwd_direct) is a product with k = o into kd rows of overlapping
   planes, loaded and stored per o: on the small ResNet's 16- and 32-channel
   3 x 3 convs the input gradient went from 4.7 to 3.4 ms and from 3.9 to
   3.0 ms (batch 128, 2 threads).  Each gx element is then one sum over (o,
   kh, kw) in that order, whatever the threads.  From 8 input channels (the
   transposed product's rows): an 8-channel one went from 2.4 to 2.2 ms,
   but with 3 or 6 (the ResNet's stem, LeNet's second conv) the few rows
   made it slower (1.03 against 1.25 ms, 0.64 against 0.69). */
#define TRANSPOSED_MIN_C 8

static int transposable(const nn_conv2d_geom *g)
{
    return g->c >= TRANSPOSED_MIN_C && g->sh == 1 && g->sw == 1 && g->groups == 1 && g->pt >= 0 && g->pl >= 0 &&
           g->pt <= g->dh * (g->kh - 1) && g->pl <= g->dw * (g->kw - 1);
}

static nn_conv2d_geom transposed(const nn_conv2d_geom *g)
{
    nn_conv2d_geom t = {g->o, g->oh, g->ow, g->c, g->h, g->w, g->kh, g->kw, 1, 1,
                        g->dh * (g->kh - 1) - g->pt, g->dw * (g->kw - 1) - g->pl, g->dh,
                        g->dw, 1};
    return t;
}

/* gx by the transposed forward, in work (nn_conv2d_work_floats counts
   it): the flipped weights, then that forward's own buffer */
static void backward_gx_transposed(const nn_conv2d_geom *g, int n, const float *gy,
                                   const float *w, float *gx, float *work)
{
    nn_conv2d_geom t = transposed(g);
    long taps = (long)g->kh * g->kw, nwt = (long)g->c * g->o * taps;
    for (long o = 0; o < g->o; o++)
        for (long c = 0; c < g->c; c++)
            for (long k = 0; k < taps; k++)
                work[(c * g->o + o) * taps + (taps - 1 - k)] = w[(o * g->c + c) * taps + k];
    nn_conv2d_forward(&t, n, gy, work, NULL, gx, work + nwt);
}

void nn_conv2d_backward(const nn_conv2d_geom *g, int n, const float *gy, const float *x,
                        const float *w, float *gx, float *gw, float *gb, int setw, int setb,
                        float *work)
{
    long nw = (long)g->o * kdim(g);
    const nn_vec_kernels *ck = nn__vec_kernels();
    if (n > 0 && gx && transposable(g) && ck) {
        backward_gx_transposed(g, n, gy, w, gx, work);
        gx = NULL; /* done; the weight and bias gradients below */
    }
    if (n <= 0) {
        if (gw && setw)
            memset(gw, 0, sizeof(float) * (size_t)nw);
        if (gb && setb)
            memset(gb, 0, sizeof(float) * (size_t)g->o);
        return;
    }
    int want = gw != NULL || gb != NULL;
    int nb = nblocks(n);
    conv_job j = {ck, g, n, x, w, NULL, gy, NULL, gx, work, want, gb != NULL, NULL};
    int nt = take(ck, nb);
    long col = kdim(g) * plane(g), direct = direct_floats(g);
    if (nt >= 2 && have_buffers(nt, (size_t)(col > direct ? col : direct),
                                want ? (size_t)(nb * grad_floats(g)) : 0)) {
        j.parts = parts;
        nn__pool_run(bwd_task, &j);
        nn__pool_give();
        for (int blk = 0; blk < nb; blk++)
            add_part(g, parts + (long)blk * grad_floats(g), gw, gb, setw && blk == 0,
                     setb && blk == 0);
        return;
    }
    /* alone (t = 0 with the pool, -1 without), one block at a time, its
       sums in the end of work */
    int t = nt > 0 ? 0 : -1;
    float *part = work + (col > direct ? col : direct);
    for (int blk = 0; blk < nb; blk++) {
        bwd_block(&j, t, blk, nb, part);
        if (want)
            add_part(g, part, gw, gb, setw && blk == 0, setb && blk == 0);
    }
    if (nt > 0)
        nn__pool_give();
}
