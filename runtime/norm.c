/* nngen-rt: batch norm (nn_batch_norm_forward, nn_batch_norm_backward; rt.h
 * says what they compute), for the generated code outside --no-blas.
 *
 * The arithmetic is the generated --no-blas code's (compiler/ops/batch_norm.c),
 * operation for operation: statistics in double, per channel in 8 partial
 * sums over the positions when l >= 16 (one sum below), the planes
 * elementwise.  Here the channels are split over nn_parallel's threads when
 * the layer is large (each channel is one thread's alone, so the thread
 * count changes no value), and each channel's loops run through a table
 * (nn_bn_loops): norm_vec.c's on CPUs with AVX-512F or AVX2 (nn__vec_isa),
 * the plain loops below elsewhere; each gives the same bits.  Large
 * batch norms were a fifth of the small ResNet's train step as the
 * generated scalar loops (cc -O2 keeps double arithmetic scalar or 2
 * lanes wide, on one thread per channel share). */
#include <math.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

#ifndef NN_HAVE_AVX512_KERNEL
#define NN_HAVE_AVX512_KERNEL 0
#endif

/* floats per call from which the channels are split over threads (the
   generated code's CH_PARALLEL_MIN) */
#define PARALLEL_MIN 65536L

/* ---- the plain loops: norm_vec.c's contract, one element at a time ---- */

static double tree8(const double *p)
{
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

static void sum_c(long n, long rs, long l, int nch, const float *x, double *out)
{
    long body = l / 8 * 8;
    for (int q = 0; q < nch; q++) {
        double p[8] = {0}, s = 0.0;
        for (long r = 0; r < n; r++) {
            const float *xr = x + r * rs + q * l;
            for (long i = 0; i < body; i += 8)
                for (int k = 0; k < 8; k++)
                    p[k] += xr[i + k];
            for (long i = body; i < l; i++)
                s += xr[i];
        }
        out[q] = s + tree8(p);
    }
}

static void sqdev_c(long n, long rs, long l, int nch, const float *x, const double *mean,
                    double *out)
{
    long body = l / 8 * 8;
    for (int q = 0; q < nch; q++) {
        double p[8] = {0}, v = 0.0;
        for (long r = 0; r < n; r++) {
            const float *xr = x + r * rs + q * l;
            for (long i = 0; i < body; i += 8)
                for (int k = 0; k < 8; k++) {
                    double d = xr[i + k] - mean[q];
                    p[k] += d * d;
                }
            for (long i = body; i < l; i++) {
                double d = xr[i] - mean[q];
                v += d * d;
            }
        }
        out[q] = v + tree8(p);
    }
}

static void gsums_c(long n, long rs, long l, int nch, const float *gy, const float *x,
                    const double *mean, double *sg, double *sgx)
{
    long body = l / 8 * 8;
    for (int q = 0; q < nch; q++) {
        double g[8] = {0}, h[8] = {0}, a = 0.0, b = 0.0;
        for (long r = 0; r < n; r++) {
            const float *gr = gy + r * rs + q * l, *xr = x + r * rs + q * l;
            for (long i = 0; i < body; i += 8)
                for (int k = 0; k < 8; k++) {
                    g[k] += gr[i + k];
                    h[k] += (double)gr[i + k] * (xr[i + k] - mean[q]);
                }
            for (long i = body; i < l; i++) {
                a += gr[i];
                b += (double)gr[i] * (xr[i] - mean[q]);
            }
        }
        sg[q] = a + tree8(g);
        sgx[q] = b + tree8(h);
    }
}

static void plane_c(long n, long rs, long l, const float *x, float *y, float mf, float a,
                    const float *b, int relu)
{
    const float bb = b ? *b : 0.0f;
    for (long r = 0; r < n; r++) {
        const float *xr = x + r * rs;
        float *yr = y + r * rs;
        for (long i = 0; i < l; i++) {
            float t = b ? (xr[i] - mf) * a + bb : (xr[i] - mf) * a;
            yr[i] = relu ? (t > 0.0f ? t : 0.0f) : t;
        }
    }
}

static void gtrain_c(long n, long rs, long l, const float *gy, const float *x, float *gx,
                     double mg, double mean, double k2, double a)
{
    for (long r = 0; r < n; r++) {
        const float *gr = gy + r * rs, *xr = x + r * rs;
        float *d = gx + r * rs;
        for (long i = 0; i < l; i++)
            d[i] = (float)((gr[i] - mg - (xr[i] - mean) * k2) * a);
    }
}

static void geval_c(long n, long rs, long l, const float *gy, float *gx, double a)
{
    for (long r = 0; r < n; r++) {
        const float *gr = gy + r * rs;
        float *d = gx + r * rs;
        for (long i = 0; i < l; i++)
            d[i] = (float)(a * gr[i]);
    }
}

static const nn_bn_loops plain = {sum_c, sqdev_c, gsums_c, plane_c, gtrain_c, geval_c};

static const nn_bn_loops *loops(void)
{
#if NN_HAVE_AVX512_KERNEL
    int isa = nn__vec_isa();
    if (isa == 2)
        return &nn__bn_loops_avx512;
    if (isa == 1)
        return &nn__bn_loops_avx2;
#endif
    return &plain;
}

/* ---- the layers, channel by channel ---- */

typedef struct bn_job {
    void (*group)(const struct bn_job *j, long c0, int nch);  /* fwd_group, bwd_group */
    const nn_batch_norm_geom *g;
    const nn_bn_loops *k;
    long n;
    const float *x, *gy, *w, *b, *smean_in, *sinvstd_in;
    float *y, *gx, *rm, *rv, *smean, *sinvstd, *gw, *gb;
    int batch, set_w, set_b, relu;
} bn_job;

/* channels at a time through the sums (a group's statistics on the stack) */
#define GROUP 16

/* the sums of nch channels of few positions (l < 16): one sum each, in order */
static void sums_few(const bn_job *j, const float *x, int nch, double *out)
{
    long L = j->g->l, rs = (long)j->g->c * L;
    for (int q = 0; q < nch; q++) {
        double s = 0.0;
        for (long r = 0; r < j->n; r++)
            for (long i = 0; i < L; i++)
                s += x[r * rs + q * L + i];
        out[q] = s;
    }
}

static void sqdev_few(const bn_job *j, const float *x, int nch, const double *mean,
                      double *out)
{
    long L = j->g->l, rs = (long)j->g->c * L;
    for (int q = 0; q < nch; q++) {
        double v = 0.0;
        for (long r = 0; r < j->n; r++)
            for (long i = 0; i < L; i++) {
                double d = x[r * rs + q * L + i] - mean[q];
                v += d * d;
            }
        out[q] = v;
    }
}

static void gsums_few(const bn_job *j, const float *gy, const float *x, int nch,
                      const double *mean, double *sg, double *sgx)
{
    long L = j->g->l, rs = (long)j->g->c * L;
    for (int q = 0; q < nch; q++) {
        double a = 0.0, b = 0.0;
        for (long r = 0; r < j->n; r++)
            for (long i = 0; i < L; i++) {
                long k = r * rs + q * L + i;
                a += gy[k];
                b += (double)gy[k] * (x[k] - mean[q]);
            }
        sg[q] = a;
        sgx[q] = b;
    }
}

/* channels [c0, c0 + nch), nch <= GROUP */
static void fwd_group(const bn_job *j, long c0, int nch)
{
    const nn_batch_norm_geom *g = j->g;
    long L = g->l, rs = (long)g->c * L, M = j->n * L;
    const float *x = j->x + c0 * L;
    double mean[GROUP], var[GROUP];
    if (j->batch) {
        if (L >= 16)
            j->k->sum(j->n, rs, L, nch, x, mean);
        else
            sums_few(j, x, nch, mean);
        for (int q = 0; q < nch; q++)
            mean[q] = mean[q] / M;
        if (L >= 16)
            j->k->sqdev(j->n, rs, L, nch, x, mean, var);
        else
            sqdev_few(j, x, nch, mean, var);
    }
    for (int q = 0; q < nch; q++) {
        long c = c0 + q;
        double mu, invstd;
        if (j->batch) {
            double v = var[q];
            mu = mean[q];
            invstd = 1.0 / sqrt(v / M + g->eps);
            if (j->rm) {
                j->rm[c] = (float)(g->momentum * mu + (1.0 - g->momentum) * j->rm[c]);
                j->rv[c] = (float)(g->momentum * (v / (M - 1)) + (1.0 - g->momentum) * j->rv[c]);
            }
        } else {
            mu = j->rm[c];
            invstd = 1.0 / sqrt((double)j->rv[c] + g->eps);
        }
        if (j->smean) {
            j->smean[c] = (float)mu;
            j->sinvstd[c] = (float)invstd;
        }
        const float mf = (float)mu, a = j->w ? (float)invstd * j->w[c] : (float)invstd;
        j->k->plane(j->n, rs, L, j->x + c * L, j->y + c * L, mf, a, j->b ? j->b + c : NULL,
                    j->relu);
    }
}

static void bwd_group(const bn_job *j, long c0, int nch)
{
    const nn_batch_norm_geom *g = j->g;
    long L = g->l, rs = (long)g->c * L, M = j->n * L;
    const float *gy = j->gy + c0 * L, *x = j->x + c0 * L;
    double mean[GROUP], sg[GROUP], sgx[GROUP];
    for (int q = 0; q < nch; q++)
        mean[q] = j->smean_in[c0 + q];
    if (L >= 16)
        j->k->gsums(j->n, rs, L, nch, gy, x, mean, sg, sgx);
    else
        gsums_few(j, gy, x, nch, mean, sg, sgx);
    for (int q = 0; q < nch; q++) {
        long c = c0 + q;
        const double invstd = j->sinvstd_in[c];
        if (j->gw)
            j->gw[c] = (float)((j->set_w ? 0.0 : (double)j->gw[c]) + sgx[q] * invstd);
        if (j->gb)
            j->gb[c] = (float)((j->set_b ? 0.0 : (double)j->gb[c]) + sg[q]);
        if (!j->gx)
            continue;
        const double a = j->w ? invstd * j->w[c] : invstd;
        if (j->batch) {
            const double mg = sg[q] / M, k2 = sgx[q] * invstd * invstd / M;
            j->k->gtrain(j->n, rs, L, j->gy + c * L, j->x + c * L, j->gx + c * L, mg, mean[q],
                         k2, a);
        } else {
            j->k->geval(j->n, rs, L, j->gy + c * L, j->gx + c * L, a);
        }
    }
}

/* the groups of channels [c0, c1) of one pass (j->group) */
static void channels(const bn_job *j, long c0, long c1)
{
    for (long c = c0; c < c1; c += GROUP)
        j->group(j, c, (int)(c1 - c < GROUP ? c1 - c : GROUP));
}

static void task(void *ctx, int t, int nt)
{
    const bn_job *j = ctx;
    long C = j->g->c;
    channels(j, C * t / nt, C * (t + 1) / nt);
}

/* the channels split over the pool when the layer is large */
static void run(const bn_job *j)
{
    const nn_batch_norm_geom *g = j->g;
    if (j->n * g->c * g->l >= PARALLEL_MIN && g->c > 1)
        nn_parallel(task, (void *)j);
    else
        channels(j, 0, g->c);
}

static void forward(const nn_batch_norm_geom *g, int n, const float *x, float *y, int training,
                    const float *w, const float *b, float *rm, float *rv, int64_t *nbt,
                    float *smean, float *sinvstd, int relu)
{
    bn_job j = {0};
    j.relu = relu;
    j.g = g;
    j.k = loops();
    j.n = n;
    j.x = x;
    j.y = y;
    j.w = w;
    j.b = b;
    j.rm = rm;
    j.rv = rv;
    j.smean = smean;
    j.sinvstd = sinvstd;
    j.batch = training || rm == NULL;
    if (rm && training && nbt)
        nbt[0] += 1;
    j.group = fwd_group;
    run(&j);
}

void nn_batch_norm_forward(const nn_batch_norm_geom *g, int n, const float *x, float *y,
                           int training, const float *w, const float *b, float *rm, float *rv,
                           int64_t *nbt, float *smean, float *sinvstd)
{
    forward(g, n, x, y, training, w, b, rm, rv, nbt, smean, sinvstd, 0);
}

void nn_batch_norm_relu_forward(const nn_batch_norm_geom *g, int n, const float *x, float *y,
                                int training, const float *w, const float *b, float *rm,
                                float *rv, int64_t *nbt, float *smean, float *sinvstd)
{
    forward(g, n, x, y, training, w, b, rm, rv, nbt, smean, sinvstd, 1);
}

void nn_batch_norm_backward(const nn_batch_norm_geom *g, int n, const float *gy, float *gx,
                            const float *x, int batch, const float *smean,
                            const float *sinvstd, const float *w, float *gw, float *gb,
                            int set_w, int set_b)
{
    bn_job j = {0};
    j.g = g;
    j.k = loops();
    j.n = n;
    j.gy = gy;
    j.gx = gx;
    j.x = x;
    j.batch = batch;
    j.smean_in = smean;
    j.sinvstd_in = sinvstd;
    j.w = w;
    j.gw = gw;
    j.gb = gb;
    j.set_w = set_w;
    j.set_b = set_b;
    j.group = bwd_group;
    run(&j);
}
