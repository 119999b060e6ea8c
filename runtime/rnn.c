/* nngen-rt: recurrent layers (nn.RNN, nn.LSTM, nn.GRU with batch_first),
 * forward and backward through time, for the generated code
 * (compiler/ops/rnn.c).  The caller owns every buffer: `work` keeps what
 * backward needs (each layer's output, gate activations, cell states,
 * dropout noise), `scratch` is backward's; nothing is allocated here.
 *
 * Layout.  x is n x T x in and y n x T x (hidden * dirs), batch first, as
 * the spec's values, and so is everything inside: a layer's output is
 * out[r][t][d * H + j], its gates gates[r][t][gate * H + j], so that the
 * input projections of all steps are one product (n T rows) and the hidden
 * products of one step read rows T apart.  The cell equations are torch 1.13's
 * (aten/src/ATen/native/RNN.cpp: RNNCell, LSTMCell, GRUCell):
 *   rnn   h = act(x W_ih^T + b_ih + h W_hh^T + b_hh)          act tanh or relu
 *   lstm  i, f, g, o = chunks of the same sum (sigmoid, sigmoid, tanh, sigmoid)
 *         c = f c + i g,  h = o tanh(c)
 *   gru   gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh (chunks r, z, n)
 *         r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
 *         n = tanh(gi_n + r gh_n),  h = (h - n) z + n
 * with the bias first in each product's sum (torch's addmm), the hidden
 * part added to the input part.  The reverse direction runs t = T-1 .. 0.
 * Between stacked layers in training mode (keep < 1) the layer's whole
 * time-major output [T, n, H * dirs] gets dropout, drawn in that order from
 * the instance's generator as torch's bernoulli_(keep) draws (SPEC 1.6).
 *
 * Backward adds every step's contribution into the one gradient of each
 * parameter: W_hh step by step, W_ih and the input gradient in one product
 * over all steps, the biases summed in double over all steps.
 */
#include <math.h>
#include <string.h>

#include <nngen/rt.h>

#include "gemm_internal.h"

static int gates_of(int kind)
{
    return kind == NN_LSTM ? 4 : kind == NN_GRU ? 3 : 1;
}

/* c (m x k) = op(a) op(b), added when acc; loops without the BLAS */
static void mm(const nn_rnn_geom *g, int ta, int tb, int m, int nn, int k, const float *a,
               int lda, const float *b, int ldb, int acc, float *c, int ldc)
{
    if (m <= 0 || nn <= 0)
        return;
    if (g->blas) {
        nn_sgemm(ta, tb, m, nn, k, a, lda, b, ldb, acc, c, ldc);
        return;
    }
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * (size_t)ldc;
        if (!acc)
            for (int j = 0; j < nn; j++)
                ci[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            float av = ta ? a[(size_t)p * (size_t)lda + (size_t)i] : a[(size_t)i * (size_t)lda + (size_t)p];
            if (tb)
                for (int j = 0; j < nn; j++)
                    ci[j] += av * b[(size_t)j * (size_t)ldb + (size_t)p];
            else
                for (int j = 0; j < nn; j++)
                    ci[j] += av * b[(size_t)p * (size_t)ldb + (size_t)j];
        }
    }
}

/* Where the pieces of `work` are, for n rows. */
typedef struct {
    size_t out, noise, dropped, gates, cell, ghn, hh; /* offsets of layer 0, dir 0 */
    size_t out_per, gates_per, cell_per;              /* per layer / per (layer, dir) */
    size_t total;
} wlayout;

static int dropout_on(const nn_rnn_geom *g, int training)
{
    return training && g->layers > 1 && g->keep < 1.0;
}

static wlayout layout(const nn_rnn_geom *g, int n)
{
    wlayout L;
    size_t T = (size_t)g->t, N = (size_t)n, H = (size_t)g->hidden, D = (size_t)g->dirs;
    size_t G = (size_t)gates_of(g->kind), Lc = (size_t)g->layers;
    L.out_per = T * N * H * D;
    L.gates_per = T * N * G * H;
    L.cell_per = T * N * H;
    L.out = 0;
    L.noise = L.out + Lc * L.out_per;
    L.dropped = L.noise + (Lc - 1) * L.out_per;
    L.gates = L.dropped + (Lc - 1) * L.out_per;
    L.cell = L.gates + Lc * D * L.gates_per;
    L.ghn = L.cell + (g->kind == NN_LSTM ? Lc * D * L.cell_per : 0);
    L.hh = L.ghn + (g->kind == NN_GRU ? Lc * D * L.cell_per : 0);
    L.total = L.hh + N * G * H;
    return L;
}

size_t nn_rnn_work_floats(const nn_rnn_geom *g)
{
    return layout(g, g->batch).total;
}

/* backward: the gradient of a layer's output and of its input, the gates'
   gradients of all steps (and GRU's hidden part of them), dh, dh_next, dc */
size_t nn_rnn_scratch_floats(const nn_rnn_geom *g)
{
    size_t T = (size_t)g->t, N = (size_t)g->batch, H = (size_t)g->hidden, D = (size_t)g->dirs;
    size_t G = (size_t)gates_of(g->kind);
    return 2 * T * N * H * D + (g->kind == NN_GRU ? 2 : 1) * T * N * G * H + 3 * N * H;
}

/* the parameters of (layer l, direction d): w_ih, w_hh, b_ih, b_hh */
static int pidx(const nn_rnn_geom *g, int l, int d)
{
    return (l * g->dirs + d) * (g->bias ? 4 : 2);
}

/* layer l's input, n x T x IN (contiguous) */
static const float *layer_in(const nn_rnn_geom *g, const wlayout *L, int l, const float *x,
                             const float *work, int training)
{
    if (l == 0)
        return x;
    return dropout_on(g, training) ? work + L->dropped + (size_t)(l - 1) * L->out_per
                                   : work + L->out + (size_t)(l - 1) * L->out_per;
}

#define AT(r, t, w) (((size_t)(r) * (size_t)T + (size_t)(t)) * (size_t)(w))

/* A step's elementwise work over its n rows, split over the pool's threads
   when it is large enough to pay for waking one: every row is computed
   alone, so the split changes no bit.  The activations inside a share run
   the same vector loops on a worker as on the caller (nn_sigmoid_forward
   and nn__tanh_forward run them on the calling thread alone while the pool
   is held). */
#define ROWS_PARALLEL_MIN 8192L /* floats of gates per step */
typedef struct {
    int n;
    void (*rows)(const void *ctx, int r0, int r1);
    const void *ctx;
} rows_job;

static void rows_task(void *ctx, int t, int nt)
{
    const rows_job *j = ctx;
    int r0 = (int)((long)j->n * t / nt), r1 = (int)((long)j->n * (t + 1) / nt);
    if (r0 < r1)
        j->rows(j->ctx, r0, r1);
}

static void rows_run(int n, int gh, void (*rows)(const void *ctx, int r0, int r1),
                     const void *ctx)
{
    rows_job j = {n, rows, ctx};
    if (n > 1 && (long)n * gh >= ROWS_PARALLEL_MIN)
        nn_parallel(rows_task, &j);
    else
        rows(ctx, 0, n);
}

typedef struct {
    const nn_rnn_geom *g;
    int d, t, tp, s;
    float *gates, *cell, *ghn;
    const float *hh;
    float *out;
    const float *hprev;
} fwd_step;

/* one forward step's rows [r0, r1): the gates' activations and the cell */
static void fwd_rows(const void *ctx, int r0, int r1)
{
    const fwd_step *st = ctx;
    const nn_rnn_geom *g = st->g;
    const int T = g->t, H = g->hidden, HD = H * g->dirs, GH = gates_of(g->kind) * H;
    const int d = st->d, t = st->t, tp = st->tp, s = st->s;
    float *gates = st->gates, *cell = st->cell, *ghn = st->ghn, *out = st->out;
    const float *hh = st->hh, *hprev = st->hprev;
    for (int r = r0; r < r1; r++) {
        float *a = gates + AT(r, t, GH);
        const float *b = hh + (size_t)r * (size_t)GH;
        float *h = out + AT(r, t, HD) + (size_t)d * (size_t)H;
        const float *hp = hprev ? hprev + (size_t)r * (size_t)T * (size_t)HD : NULL;
        /* the gates' sums first, then each activation over a whole chunk
           (the vector loops, 16 or 8 lanes at a time; the scalar expf and
           tanhf were three quarters of a GRU forward), then the cell */
        if (g->kind == NN_RNN_TANH || g->kind == NN_RNN_RELU) {
            for (int j = 0; j < H; j++) {
                float v = b[j] + a[j];
                a[j] = g->kind == NN_RNN_TANH ? v : v > 0.0f ? v : 0.0f;
            }
            if (g->kind == NN_RNN_TANH)
                nn__tanh_forward(H, a, a);
            memcpy(h, a, sizeof(float) * (size_t)H);
        } else if (g->kind == NN_LSTM) {
            float *c = cell + AT(r, t, H);
            const float *cp = s ? cell + AT(r, tp, H) : NULL;
            for (int j = 0; j < 4 * H; j++)
                a[j] = b[j] + a[j];
            nn_sigmoid_forward(2L * H, a, a);          /* i, f */
            nn__tanh_forward(H, a + 2 * H, a + 2 * H); /* g */
            nn_sigmoid_forward(H, a + 3 * H, a + 3 * H); /* o */
            for (int j = 0; j < H; j++) {
                float ig = a[j], fg = a[H + j], cg = a[2 * H + j];
                c[j] = (cp ? fg * cp[j] : fg * 0.0f) + ig * cg;
            }
            nn__tanh_forward(H, c, h);
            for (int j = 0; j < H; j++)
                h[j] = a[3 * H + j] * h[j];
        } else {
            float *gn = ghn + AT(r, t, H);
            for (int j = 0; j < 2 * H; j++)
                a[j] = b[j] + a[j];
            nn_sigmoid_forward(2L * H, a, a); /* r, z */
            for (int j = 0; j < H; j++) {
                a[2 * H + j] = a[2 * H + j] + b[2 * H + j] * a[j];
                gn[j] = b[2 * H + j];
            }
            nn__tanh_forward(H, a + 2 * H, a + 2 * H); /* n */
            for (int j = 0; j < H; j++) {
                float zg = a[H + j], ng = a[2 * H + j];
                float hv = hp ? hp[j] : 0.0f;
                h[j] = (hv - ng) * zg + ng;
            }
        }
    }
}

void nn_rnn_forward(const nn_rnn_geom *g, int n, const float *x, float *y,
                    const float *const *w, float *work, int training, nn_rng *rng)
{
    const int T = g->t, H = g->hidden, D = g->dirs, HD = H * D, G = gates_of(g->kind);
    const int GH = G * H;
    wlayout L = layout(g, n);
    float *hh = work + L.hh;
    for (int l = 0; l < g->layers; l++) {
        int IN = l == 0 ? g->in : HD;
        const float *xin = layer_in(g, &L, l, x, work, training);
        float *out = work + L.out + (size_t)l * L.out_per;
        for (int d = 0; d < D; d++) {
            const float *wih = w[pidx(g, l, d)], *whh = w[pidx(g, l, d) + 1];
            const float *bih = g->bias ? w[pidx(g, l, d) + 2] : NULL;
            const float *bhh = g->bias ? w[pidx(g, l, d) + 3] : NULL;
            float *gates = work + L.gates + (size_t)(l * D + d) * L.gates_per;
            float *cell = work + L.cell + (size_t)(l * D + d) * L.cell_per;
            float *ghn = work + L.ghn + (size_t)(l * D + d) * L.cell_per;
            /* the input part of every step: b_ih + x W_ih^T, one product */
            for (size_t k = 0; bih && k < (size_t)n * (size_t)T; k++)
                memcpy(gates + k * (size_t)GH, bih, sizeof(float) * (size_t)GH);
            mm(g, 0, 1, n * T, GH, IN, xin, IN, wih, IN, bih != NULL, gates, GH);
            for (int s = 0; s < T; s++) {
                int t = d == 0 ? s : T - 1 - s, tp = d == 0 ? t - 1 : t + 1;
                /* the hidden part: b_hh + h W_hh^T (h = 0 at the first step) */
                for (int r = 0; r < n; r++) {
                    if (bhh)
                        memcpy(hh + (size_t)r * (size_t)GH, bhh, sizeof(float) * (size_t)GH);
                    else
                        memset(hh + (size_t)r * (size_t)GH, 0, sizeof(float) * (size_t)GH);
                }
                const float *hprev = s ? out + (size_t)tp * (size_t)HD + (size_t)d * (size_t)H : NULL;
                if (hprev)
                    mm(g, 0, 1, n, GH, H, hprev, T * HD, whh, H, 1, hh, GH);
                fwd_step st = {g, d, t, tp, s, gates, cell, ghn, hh, out, hprev};
                rows_run(n, GH, fwd_rows, &st);
            }
        }
        if (l + 1 < g->layers && dropout_on(g, training)) {
            /* torch draws over the layer's output as it holds it: [T, n, HD] */
            float *noise = work + L.noise + (size_t)l * L.out_per;
            float *dropped = work + L.dropped + (size_t)l * L.out_per;
            for (int t = 0; t < T; t++)
                for (int r = 0; r < n; r++)
                    for (int j = 0; j < HD; j++) {
                        size_t k = AT(r, t, HD) + (size_t)j;
                        uint64_t rv = nn_rng_u64(rng);
                        double u = (double)(rv & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
                        float v = u < g->keep ? g->scale : 0.0f;
                        noise[k] = v;
                        dropped[k] = out[k] * v;
                    }
        }
    }
    memcpy(y, work + L.out + (size_t)(g->layers - 1) * L.out_per, sizeof(float) * L.out_per);
}

/* gb += the sum of m rows of gr (ld floats apart), in double, each column
   summed in row order, and gb2 (when not NULL) += the same sums: LSTM's two
   bias gradients are the sums of one gradient.  Row by row over blocks of
   BIAS_COLS columns (the partial sums on the stack): walking down a column,
   one cache line per row, made these sums 70 % of the LSTM language model's
   backward (bench (f)); the order of the additions, and so every bit, is
   the same.  The blocks are split over the pool's threads when the sum is
   large: each column's sum is the same whoever computes it. */
#define BIAS_COLS 256
#define BIAS_PARALLEL_MIN (1L << 18) /* floats read */
typedef struct {
    float *gb, *gb2;
    const float *gr;
    size_t m;
    int cols, ld;
} bias_job;

static void bias_blocks(const bias_job *j, int b0, int b1)
{
    double acc[BIAS_COLS];
    for (int j0 = b0 * BIAS_COLS; j0 < j->cols && j0 < b1 * BIAS_COLS; j0 += BIAS_COLS) {
        int w = j->cols - j0 < BIAS_COLS ? j->cols - j0 : BIAS_COLS;
        for (int c = 0; c < w; c++)
            acc[c] = 0.0;
        for (size_t k = 0; k < j->m; k++) {
            const float *row = j->gr + k * (size_t)j->ld + (size_t)j0;
            for (int c = 0; c < w; c++)
                acc[c] += (double)row[c];
        }
        for (int c = 0; c < w; c++)
            j->gb[j0 + c] += (float)acc[c];
        if (j->gb2)
            for (int c = 0; c < w; c++)
                j->gb2[j0 + c] += (float)acc[c];
    }
}

static void bias_task(void *ctx, int t, int nt)
{
    const bias_job *j = ctx;
    int nb = (j->cols + BIAS_COLS - 1) / BIAS_COLS;
    bias_blocks(j, nb * t / nt, nb * (t + 1) / nt);
}

static void bias_sum(float *gb, float *gb2, const float *gr, size_t m, int cols, int ld)
{
    bias_job j = {gb, gb2, gr, m, cols, ld};
    int nb = (cols + BIAS_COLS - 1) / BIAS_COLS;
    if (nb > 1 && (double)m * (double)cols >= (double)BIAS_PARALLEL_MIN)
        nn_parallel(bias_task, &j);
    else
        bias_blocks(&j, 0, nb);
}

typedef struct {
    const nn_rnn_geom *g;
    int d, t, tp, s;
    const float *gates, *cell, *ghn, *hprev, *gcur;
    float *dpre, *dghall, *dh, *dnext, *dcn;
} bwd_step;

/* one backward step's rows [r0, r1): the gates' gradients from dh */
static void bwd_rows(const void *ctx, int r0, int r1)
{
    const bwd_step *st = ctx;
    const nn_rnn_geom *g = st->g;
    const int T = g->t, H = g->hidden, HD = H * g->dirs, GH = gates_of(g->kind) * H;
    const int d = st->d, t = st->t, tp = st->tp, s = st->s;
    const float *gates = st->gates, *cell = st->cell, *ghn = st->ghn, *hprev = st->hprev;
    const float *gcur = st->gcur;
    float *dpre = st->dpre, *dghall = st->dghall, *dh = st->dh, *dnext = st->dnext;
    float *dcn = st->dcn;
    for (int r = r0; r < r1; r++) {
        const float *a = gates + AT(r, t, GH);
        float *dpr = dpre + AT(r, t, GH);
        float *dgr = dghall + AT(r, t, GH);
        const float *go = gcur + AT(r, t, HD) + (size_t)d * (size_t)H;
        float *dhr = dh + (size_t)r * (size_t)H, *dnr = dnext + (size_t)r * (size_t)H;
        float *dcr = dcn + (size_t)r * (size_t)H;
        for (int j = 0; j < H; j++)
            dhr[j] = go[j] + dnr[j];
        if (g->kind == NN_RNN_TANH || g->kind == NN_RNN_RELU) {
            for (int j = 0; j < H; j++) {
                float hv = a[j];
                dpr[j] = g->kind == NN_RNN_TANH ? dhr[j] * (1.0f - hv * hv)
                                                : hv > 0.0f ? dhr[j] : 0.0f;
            }
        } else if (g->kind == NN_LSTM) {
            const float *c = cell + AT(r, t, H);
            const float *cp = s ? cell + AT(r, tp, H) : NULL;
            /* tanh(c) as forward computed it, into the o chunk
               (element j is read there before it is written) */
            nn__tanh_forward(H, c, dpr + 3 * H);
            for (int j = 0; j < H; j++) {
                float ig = a[j], fg = a[H + j], cg = a[2 * H + j], og = a[3 * H + j];
                float tc = dpr[3 * H + j];
                float dc = dhr[j] * og * (1.0f - tc * tc) + dcr[j];
                float cpv = cp ? cp[j] : 0.0f;
                dpr[j] = dc * cg * ig * (1.0f - ig);
                dpr[H + j] = dc * cpv * fg * (1.0f - fg);
                dpr[2 * H + j] = dc * ig * (1.0f - cg * cg);
                dpr[3 * H + j] = dhr[j] * tc * og * (1.0f - og);
                dcr[j] = dc * fg;
            }
        } else {
            const float *gn = ghn + AT(r, t, H);
            const float *hp = hprev ? hprev + (size_t)r * (size_t)T * (size_t)HD : NULL;
            for (int j = 0; j < H; j++) {
                float rg = a[j], zg = a[H + j], ng = a[2 * H + j];
                float hv = hp ? hp[j] : 0.0f;
                float dn = dhr[j] * (1.0f - zg) * (1.0f - ng * ng);
                float dz = dhr[j] * (hv - ng) * zg * (1.0f - zg);
                float dr = dn * gn[j] * rg * (1.0f - rg);
                dpr[j] = dr;
                dpr[H + j] = dz;
                dpr[2 * H + j] = dn;
                dgr[j] = dr;
                dgr[H + j] = dz;
                dgr[2 * H + j] = dn * rg;
                dnr[j] = dhr[j] * zg; /* the direct path; W_hh's below */
            }
        }
    }
}

void nn_rnn_backward(const nn_rnn_geom *g, int n, const float *gy, const float *x,
                     const float *const *w, float *gx, float *const *gw, int set,
                     const float *work, float *scratch, int training)
{
    const int T = g->t, H = g->hidden, D = g->dirs, HD = H * D, G = gates_of(g->kind);
    const int GH = G * H;
    wlayout L = layout(g, n);
    size_t outsz = L.out_per, rows = (size_t)n * (size_t)T;
    float *gcur = scratch, *gin = scratch + outsz;
    float *dpre = gin + outsz;                      /* [n][T][GH]: the input part's */
    float *dghall = g->kind == NN_GRU ? dpre + rows * (size_t)GH : dpre; /* the hidden part's */
    float *dh = dpre + (g->kind == NN_GRU ? 2 : 1) * rows * (size_t)GH; /* [n][H] */
    float *dnext = dh + (size_t)n * (size_t)H;      /* [n][H] */
    float *dcn = dnext + (size_t)n * (size_t)H;     /* [n][H] */
    int per = g->bias ? 4 : 2;
    if (set)
        for (int k = 0; k < g->layers * D * per; k++) {
            if (!gw[k])
                continue;
            int l = k / (D * per), which = k % per;
            size_t cnt = which == 0 ? (size_t)GH * (size_t)(l == 0 ? g->in : HD)
                         : which == 1 ? (size_t)GH * (size_t)H : (size_t)GH;
            memset(gw[k], 0, sizeof(float) * cnt);
        }
    memcpy(gcur, gy, sizeof(float) * outsz);
    for (int l = g->layers - 1; l >= 0; l--) {
        int IN = l == 0 ? g->in : HD;
        const float *xin = layer_in(g, &L, l, x, work, training);
        const float *out = work + L.out + (size_t)l * L.out_per;
        float *gxl = l > 0 ? gin : gx; /* the layer input's gradient, or NULL */
        if (gxl)
            memset(gxl, 0, sizeof(float) * rows * (size_t)IN);
        for (int d = 0; d < D; d++) {
            const float *wih = w[pidx(g, l, d)], *whh = w[pidx(g, l, d) + 1];
            float *gwih = gw[pidx(g, l, d)], *gwhh = gw[pidx(g, l, d) + 1];
            float *gbih = g->bias ? gw[pidx(g, l, d) + 2] : NULL;
            float *gbhh = g->bias ? gw[pidx(g, l, d) + 3] : NULL;
            const float *gates = work + L.gates + (size_t)(l * D + d) * L.gates_per;
            const float *cell = work + L.cell + (size_t)(l * D + d) * L.cell_per;
            const float *ghn = work + L.ghn + (size_t)(l * D + d) * L.cell_per;
            memset(dnext, 0, sizeof(float) * (size_t)n * (size_t)H);
            memset(dcn, 0, sizeof(float) * (size_t)n * (size_t)H);
            for (int s = T - 1; s >= 0; s--) {
                int t = d == 0 ? s : T - 1 - s, tp = d == 0 ? t - 1 : t + 1;
                const float *hprev = s ? out + (size_t)tp * (size_t)HD + (size_t)d * (size_t)H : NULL;
                bwd_step st = {g, d, t, tp, s, gates, cell, ghn, hprev,
                               gcur, dpre, dghall, dh, dnext, dcn};
                rows_run(n, GH, bwd_rows, &st);
                if (hprev) {
                    const float *dgt = dghall + (size_t)t * (size_t)GH; /* rows T * GH apart */
                    if (gwhh) /* W_hh += dgh^T h_prev */
                        mm(g, 1, 0, GH, H, n, dgt, T * GH, hprev, T * HD, 1, gwhh, H);
                    /* the gradient into h_prev: dgh W_hh (added to GRU's direct path) */
                    mm(g, 0, 0, n, H, GH, dgt, T * GH, whh, H, g->kind == NN_GRU, dnext, H);
                }
            }
            if (gbih) {
                if (dghall == dpre) /* LSTM, RNN: one gradient, two biases */
                    bias_sum(gbih, gbhh, dpre, rows, GH, GH);
                else {
                    bias_sum(gbih, NULL, dpre, rows, GH, GH);
                    bias_sum(gbhh, NULL, dghall, rows, GH, GH);
                }
            }
            /* W_ih and the layer input over every step at once */
            if (gwih)
                mm(g, 1, 0, GH, IN, (int)rows, dpre, GH, xin, IN, 1, gwih, IN);
            if (gxl)
                mm(g, 0, 0, (int)rows, IN, GH, dpre, GH, wih, IN, 1, gxl, IN);
        }
        if (l > 0) {
            /* through the dropout before this layer, into the previous output */
            if (dropout_on(g, training)) {
                const float *noise = work + L.noise + (size_t)(l - 1) * L.out_per;
                for (size_t k = 0; k < outsz; k++)
                    gcur[k] = gin[k] * noise[k];
            } else {
                memcpy(gcur, gin, sizeof(float) * outsz);
            }
        }
    }
}
