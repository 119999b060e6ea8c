/* nngen-rt: recurrent layers (nn.RNN, nn.LSTM, nn.GRU with batch_first),
 * forward and backward through time, for the generated code
 * (compiler/ops/rnn.c).  The caller owns every buffer: `work` keeps what
 * backward needs (each layer's output, gate activations, cell states,
 * dropout noise), `scratch` is backward's; nothing is allocated here.
 *
 * Layout.  x is n x T x in and y n x T x (hidden * dirs), batch first, as
 * the spec's values.  Inside, as torch holds them, a layer's output is time
 * major: out[t][r][d * H + j].  The cell equations are torch 1.13's
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
 * parameter: W_hh and the biases step by step, W_ih and the input gradient
 * in products over all steps at once.  Bias gradients are summed in double.
 */
#include <math.h>
#include <string.h>

#include <nngen/rt.h>

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

static float sigm(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

/* Where a layer's pieces of `work` are, for n rows. */
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

/* backward: the gradient of a layer's output and of its input (time
   major), the gates' gradients of all steps, dh, dc, the hidden part */
size_t nn_rnn_scratch_floats(const nn_rnn_geom *g)
{
    size_t T = (size_t)g->t, N = (size_t)g->batch, H = (size_t)g->hidden, D = (size_t)g->dirs;
    size_t G = (size_t)gates_of(g->kind);
    return 2 * T * N * H * D + T * N * G * H + 3 * N * H + N * G * H;
}

/* the parameters of (layer l, direction d): w_ih, w_hh, b_ih, b_hh */
static int pidx(const nn_rnn_geom *g, int l, int d)
{
    return (l * g->dirs + d) * (g->bias ? 4 : 2);
}

/* row r of step t of layer l's input: its pointer and the row stride */
static const float *layer_in(const nn_rnn_geom *g, const wlayout *L, int n, int l,
                             const float *x, const float *work, int training, int t,
                             int *ld)
{
    int HD = g->hidden * g->dirs;
    if (l == 0) {
        *ld = g->t * g->in;
        return x + (size_t)t * (size_t)g->in;
    }
    *ld = HD;
    const float *base = dropout_on(g, training)
                            ? work + L->dropped + (size_t)(l - 1) * L->out_per
                            : work + L->out + (size_t)(l - 1) * L->out_per;
    return base + (size_t)t * (size_t)n * (size_t)HD;
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
        float *out = work + L.out + (size_t)l * L.out_per;
        for (int d = 0; d < D; d++) {
            const float *wih = w[pidx(g, l, d)], *whh = w[pidx(g, l, d) + 1];
            const float *bih = g->bias ? w[pidx(g, l, d) + 2] : NULL;
            const float *bhh = g->bias ? w[pidx(g, l, d) + 3] : NULL;
            float *gates = work + L.gates + (size_t)(l * D + d) * L.gates_per;
            float *cell = work + L.cell + (size_t)(l * D + d) * L.cell_per;
            float *ghn = work + L.ghn + (size_t)(l * D + d) * L.cell_per;
            for (int s = 0; s < T; s++) {
                int t = d == 0 ? s : T - 1 - s, tp = d == 0 ? t - 1 : t + 1;
                int ld;
                const float *xin = layer_in(g, &L, n, l, x, work, training, t, &ld);
                float *gt = gates + (size_t)t * (size_t)n * (size_t)GH;
                /* the input part: b_ih + x W_ih^T */
                for (int r = 0; r < n && bih; r++)
                    memcpy(gt + (size_t)r * (size_t)GH, bih, sizeof(float) * (size_t)GH);
                mm(g, 0, 1, n, GH, IN, xin, ld, wih, IN, bih != NULL, gt, GH);
                /* the hidden part: b_hh + h W_hh^T (h = 0 at the first step) */
                for (int r = 0; r < n; r++) {
                    if (bhh)
                        memcpy(hh + (size_t)r * (size_t)GH, bhh, sizeof(float) * (size_t)GH);
                    else
                        memset(hh + (size_t)r * (size_t)GH, 0, sizeof(float) * (size_t)GH);
                }
                const float *hprev = s ? out + (size_t)tp * (size_t)n * (size_t)HD + (size_t)d * (size_t)H
                                       : NULL;
                if (hprev)
                    mm(g, 0, 1, n, GH, H, hprev, HD, whh, H, 1, hh, GH);
                for (int r = 0; r < n; r++) {
                    float *a = gt + (size_t)r * (size_t)GH;
                    const float *b = hh + (size_t)r * (size_t)GH;
                    float *h = out + ((size_t)t * (size_t)n + (size_t)r) * (size_t)HD + (size_t)d * (size_t)H;
                    const float *hp = hprev ? hprev + (size_t)r * (size_t)HD : NULL;
                    if (g->kind == NN_RNN_TANH || g->kind == NN_RNN_RELU) {
                        for (int j = 0; j < H; j++) {
                            float v = b[j] + a[j];
                            v = g->kind == NN_RNN_TANH ? tanhf(v) : v > 0.0f ? v : 0.0f;
                            a[j] = v;
                            h[j] = v;
                        }
                    } else if (g->kind == NN_LSTM) {
                        float *c = cell + ((size_t)t * (size_t)n + (size_t)r) * (size_t)H;
                        const float *cp = s ? cell + ((size_t)tp * (size_t)n + (size_t)r) * (size_t)H : NULL;
                        for (int j = 0; j < H; j++) {
                            float ig = sigm(b[j] + a[j]);
                            float fg = sigm(b[H + j] + a[H + j]);
                            float cg = tanhf(b[2 * H + j] + a[2 * H + j]);
                            float og = sigm(b[3 * H + j] + a[3 * H + j]);
                            float cv = (cp ? fg * cp[j] : fg * 0.0f) + ig * cg;
                            a[j] = ig;
                            a[H + j] = fg;
                            a[2 * H + j] = cg;
                            a[3 * H + j] = og;
                            c[j] = cv;
                            h[j] = og * tanhf(cv);
                        }
                    } else {
                        float *gn = ghn + ((size_t)t * (size_t)n + (size_t)r) * (size_t)H;
                        for (int j = 0; j < H; j++) {
                            float rg = sigm(b[j] + a[j]);
                            float zg = sigm(b[H + j] + a[H + j]);
                            float ng = tanhf(a[2 * H + j] + b[2 * H + j] * rg);
                            float hv = hp ? hp[j] : 0.0f;
                            a[j] = rg;
                            a[H + j] = zg;
                            a[2 * H + j] = ng;
                            gn[j] = b[2 * H + j];
                            h[j] = (hv - ng) * zg + ng;
                        }
                    }
                }
            }
        }
        if (l + 1 < g->layers && dropout_on(g, training)) {
            float *noise = work + L.noise + (size_t)l * L.out_per;
            float *dropped = work + L.dropped + (size_t)l * L.out_per;
            for (size_t k = 0; k < L.out_per; k++) {
                uint64_t rv = nn_rng_u64(rng);
                double u = (double)(rv & ((UINT64_C(1) << 53) - 1)) * 0x1p-53;
                float v = u < g->keep ? g->scale : 0.0f;
                noise[k] = v;
                dropped[k] = out[k] * v;
            }
        }
    }
    const float *last = work + L.out + (size_t)(g->layers - 1) * L.out_per;
    for (int r = 0; r < n; r++)
        for (int t = 0; t < T; t++)
            memcpy(y + ((size_t)r * (size_t)T + (size_t)t) * (size_t)HD,
                   last + ((size_t)t * (size_t)n + (size_t)r) * (size_t)HD, sizeof(float) * (size_t)HD);
}

void nn_rnn_backward(const nn_rnn_geom *g, int n, const float *gy, const float *x,
                     const float *const *w, float *gx, float *const *gw, int set,
                     const float *work, float *scratch, int training)
{
    const int T = g->t, H = g->hidden, D = g->dirs, HD = H * D, G = gates_of(g->kind);
    const int GH = G * H;
    wlayout L = layout(g, n);
    size_t outsz = (size_t)T * (size_t)n * (size_t)HD;
    float *gcur = scratch, *gin = scratch + outsz;
    float *dpre = gin + outsz;                          /* [T][n][GH] */
    float *dh = dpre + (size_t)T * (size_t)n * (size_t)GH;  /* [n][H] */
    float *dnext = dh + (size_t)n * (size_t)H;          /* [n][H] */
    float *dcn = dnext + (size_t)n * (size_t)H;         /* [n][H] */
    float *dgh = dcn + (size_t)n * (size_t)H;           /* [n][GH] */
    int np = g->layers * g->dirs * (g->bias ? 4 : 2);
    if (set)
        for (int k = 0; k < np; k++) {
            if (!gw[k])
                continue;
            int l = k / (D * (g->bias ? 4 : 2)), which = k % (g->bias ? 4 : 2);
            size_t cnt = which == 0 ? (size_t)GH * (size_t)(l == 0 ? g->in : HD)
                         : which == 1 ? (size_t)GH * (size_t)H : (size_t)GH;
            memset(gw[k], 0, sizeof(float) * cnt);
        }
    /* the output gradient, time major */
    for (int r = 0; r < n; r++)
        for (int t = 0; t < T; t++)
            memcpy(gcur + ((size_t)t * (size_t)n + (size_t)r) * (size_t)HD,
                   gy + ((size_t)r * (size_t)T + (size_t)t) * (size_t)HD, sizeof(float) * (size_t)HD);
    if (gx)
        memset(gx, 0, sizeof(float) * (size_t)n * (size_t)T * (size_t)g->in);
    for (int l = g->layers - 1; l >= 0; l--) {
        int IN = l == 0 ? g->in : HD;
        const float *out = work + L.out + (size_t)l * L.out_per;
        int want_in = l > 0 || gx != NULL;
        if (l > 0)
            memset(gin, 0, sizeof(float) * outsz);
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
                const float *gt = gates + (size_t)t * (size_t)n * (size_t)GH;
                float *dp = dpre + (size_t)t * (size_t)n * (size_t)GH;
                const float *hprev = s ? out + (size_t)tp * (size_t)n * (size_t)HD + (size_t)d * (size_t)H
                                       : NULL;
                for (int r = 0; r < n; r++) {
                    const float *a = gt + (size_t)r * (size_t)GH;
                    float *dpr = dp + (size_t)r * (size_t)GH;
                    float *dgr = dgh + (size_t)r * (size_t)GH;
                    const float *go = gcur + ((size_t)t * (size_t)n + (size_t)r) * (size_t)HD + (size_t)d * (size_t)H;
                    float *dhr = dh + (size_t)r * (size_t)H, *dnr = dnext + (size_t)r * (size_t)H;
                    float *dcr = dcn + (size_t)r * (size_t)H;
                    for (int j = 0; j < H; j++)
                        dhr[j] = go[j] + dnr[j];
                    if (g->kind == NN_RNN_TANH || g->kind == NN_RNN_RELU) {
                        for (int j = 0; j < H; j++) {
                            float hv = a[j];
                            float v = g->kind == NN_RNN_TANH ? dhr[j] * (1.0f - hv * hv)
                                                             : hv > 0.0f ? dhr[j] : 0.0f;
                            dpr[j] = v;
                            dgr[j] = v;
                        }
                    } else if (g->kind == NN_LSTM) {
                        const float *c = cell + ((size_t)t * (size_t)n + (size_t)r) * (size_t)H;
                        const float *cp = s ? cell + ((size_t)tp * (size_t)n + (size_t)r) * (size_t)H : NULL;
                        for (int j = 0; j < H; j++) {
                            float ig = a[j], fg = a[H + j], cg = a[2 * H + j], og = a[3 * H + j];
                            float tc = tanhf(c[j]);
                            float dc = dhr[j] * og * (1.0f - tc * tc) + dcr[j];
                            float cpv = cp ? cp[j] : 0.0f;
                            dpr[j] = dc * cg * ig * (1.0f - ig);
                            dpr[H + j] = dc * cpv * fg * (1.0f - fg);
                            dpr[2 * H + j] = dc * ig * (1.0f - cg * cg);
                            dpr[3 * H + j] = dhr[j] * tc * og * (1.0f - og);
                            dcr[j] = dc * fg;
                        }
                        memcpy(dgr, dpr, sizeof(float) * (size_t)GH);
                    } else {
                        const float *gn = ghn + ((size_t)t * (size_t)n + (size_t)r) * (size_t)H;
                        const float *hp = hprev ? hprev + (size_t)r * (size_t)HD : NULL;
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
                if (gbhh) {
                    for (int j = 0; j < GH; j++) {
                        double sh = 0.0, si = 0.0;
                        for (int r = 0; r < n; r++) {
                            sh += (double)dgh[(size_t)r * (size_t)GH + (size_t)j];
                            si += (double)dp[(size_t)r * (size_t)GH + (size_t)j];
                        }
                        gbhh[j] += (float)sh;
                        gbih[j] += (float)si;
                    }
                }
                if (hprev) {
                    if (gwhh) /* W_hh += dgh^T h_prev */
                        mm(g, 1, 0, GH, H, n, dgh, GH, hprev, HD, 1, gwhh, H);
                    /* the gradient into h_prev: dgh W_hh (added to GRU's direct path) */
                    mm(g, 0, 0, n, H, GH, dgh, GH, whh, H, g->kind == NN_GRU, dnext, H);
                }
            }
            /* W_ih and the layer input over every step */
            for (int t = 0; t < T; t++) {
                int ld;
                const float *xin = layer_in(g, &L, n, l, x, work, training, t, &ld);
                const float *dp = dpre + (size_t)t * (size_t)n * (size_t)GH;
                if (gwih)
                    mm(g, 1, 0, GH, IN, n, dp, GH, xin, ld, 1, gwih, IN);
                if (!want_in)
                    continue;
                if (l > 0)
                    mm(g, 0, 0, n, IN, GH, dp, GH, wih, IN, 1, gin + (size_t)t * (size_t)n * (size_t)HD,
                       HD);
                else
                    mm(g, 0, 0, n, IN, GH, dp, GH, wih, IN, 1, gx + (size_t)t * (size_t)g->in,
                       T * g->in);
            }
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
