/* Unit test of the runtime's recurrent layers (runtime/rnn.c): the thread
 * count changes no bit of the forward's output, the input gradient or any
 * parameter gradient.  rnn.c splits each step's elementwise work by rows
 * over the pool's threads (from 8192 gate floats per step) and the bias
 * gradients' column blocks (from 2^18 floats); each row and each column is
 * computed by one thread, so 1, 2 and 3 threads must agree bit for bit.
 * Values against PyTorch are the conformance suite's
 * (specs/seq/rnn_big.yaml runs the same paths); here, for LSTM, GRU and the
 * tanh RNN, one and two directions, two layers with dropout between them,
 * in training mode, at sizes above both thresholds and at a partial batch
 * below the rows' one.  The products are rnn.c's loops (geom blas 0):
 * nn_sgemm's own bits can depend on the thread count (its k blocks follow
 * each thread's share of columns), which is not what is tested here.  The
 * activations are the vector kernel set's: run with NNGEN_GEMM=nngen, as is
 * and with NNGEN_ISA=avx2 (tests/gemm/meson.build). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#define MAXP 16 /* parameters: 2 layers x 2 directions x 4 */

typedef struct {
    int kind, dirs, n;
} rnn_case;

static const rnn_case cases[] = {
    {NN_LSTM, 1, 24}, {NN_LSTM, 2, 24}, {NN_LSTM, 1, 13},
    {NN_GRU, 1, 32},  {NN_GRU, 2, 24},  {NN_RNN_TANH, 1, 80},
};

typedef struct {
    float *y, *gx, *gw[MAXP];
} rnn_out;

static float urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
}

static int gates(int kind)
{
    return kind == NN_LSTM ? 4 : kind == NN_GRU ? 3 : 1;
}

static void geom(const rnn_case *k, nn_rnn_geom *g)
{
    memset(g, 0, sizeof *g);
    g->kind = k->kind;
    g->layers = 2;
    g->dirs = k->dirs;
    g->bias = 1;
    g->t = 24; /* LSTM 24 x 24 and GRU 32 x 24 rows: bias sums from 2^18 */
    g->in = 16;
    g->hidden = 128;
    g->batch = 32 > k->n ? 32 : k->n;
    g->blas = 0;
    g->keep = 0.75;
    g->scale = 1.0f / (float)g->keep;
}

/* parameter p's element count: weight_ih, weight_hh, bias_ih, bias_hh */
static size_t pcount(const nn_rnn_geom *g, int p)
{
    int l = p / (g->dirs * 4), which = p % 4;
    size_t gh = (size_t)gates(g->kind) * (size_t)g->hidden;
    size_t in = l == 0 ? (size_t)g->in : (size_t)g->hidden * (size_t)g->dirs;
    return which == 0 ? gh * in : which == 1 ? gh * (size_t)g->hidden : gh;
}

static void run_rnn(const rnn_case *k, int threads, rnn_out *o)
{
    nn_rnn_geom g;
    geom(k, &g);
    int np = g.layers * g.dirs * 4;
    size_t nx = (size_t)k->n * (size_t)g.t * (size_t)g.in;
    size_t ny = (size_t)k->n * (size_t)g.t * (size_t)g.hidden * (size_t)g.dirs;
    uint64_t s = 12345u + (uint64_t)k->kind * 7u + (uint64_t)k->dirs;
    float *x = malloc(sizeof(float) * nx), *gy = malloc(sizeof(float) * ny);
    float *work = malloc(sizeof(float) * nn_rnn_work_floats(&g));
    float *scratch = malloc(sizeof(float) * nn_rnn_scratch_floats(&g));
    const float *w[MAXP];
    float *wv[MAXP];
    ck_assert(x && gy && work && scratch);
    for (size_t i = 0; i < nx; i++)
        x[i] = urand(&s);
    for (size_t i = 0; i < ny; i++)
        gy[i] = urand(&s);
    for (int p = 0; p < np; p++) {
        size_t c = pcount(&g, p);
        wv[p] = malloc(sizeof(float) * c);
        o->gw[p] = malloc(sizeof(float) * c);
        ck_assert(wv[p] && o->gw[p]);
        for (size_t i = 0; i < c; i++)
            wv[p][i] = 0.2f * urand(&s);
        w[p] = wv[p];
    }
    o->y = malloc(sizeof(float) * ny);
    o->gx = malloc(sizeof(float) * nx);
    ck_assert(o->y && o->gx);
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_set_num_threads(threads);
    nn_rnn_forward(&g, k->n, x, o->y, w, work, 1, &rng);
    nn_rnn_backward(&g, k->n, gy, x, w, o->gx, o->gw, 1, work, scratch, 1);
    nn_set_num_threads(0);
    for (int p = 0; p < np; p++)
        free(wv[p]);
    free(x);
    free(gy);
    free(work);
    free(scratch);
}

static void free_out(const rnn_case *k, rnn_out *o)
{
    nn_rnn_geom g;
    geom(k, &g);
    for (int p = 0; p < g.layers * g.dirs * 4; p++)
        free(o->gw[p]);
    free(o->y);
    free(o->gx);
}

START_TEST(test_rnn_threads)
{
    const rnn_case *k = &cases[_i];
    nn_rnn_geom g;
    geom(k, &g);
    size_t nx = (size_t)k->n * (size_t)g.t * (size_t)g.in;
    size_t ny = (size_t)k->n * (size_t)g.t * (size_t)g.hidden * (size_t)g.dirs;
    rnn_out ref, o;
    run_rnn(k, 1, &ref);
    for (int threads = 2; threads <= 3; threads++) {
        run_rnn(k, threads, &o);
        ck_assert_msg(!memcmp(ref.y, o.y, sizeof(float) * ny), "kind %d dirs %d n %d: y differs on %d threads",
                      k->kind, k->dirs, k->n, threads);
        ck_assert_msg(!memcmp(ref.gx, o.gx, sizeof(float) * nx), "kind %d dirs %d n %d: gx differs on %d threads",
                      k->kind, k->dirs, k->n, threads);
        for (int p = 0; p < g.layers * g.dirs * 4; p++)
            ck_assert_msg(!memcmp(ref.gw[p], o.gw[p], sizeof(float) * pcount(&g, p)),
                          "kind %d dirs %d n %d: gradient %d differs on %d threads", k->kind, k->dirs,
                          k->n, p, threads);
        free_out(k, &o);
    }
    free_out(k, &ref);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rnn");
    TCase *tc = tcase_create("rnn");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_rnn_threads, 0, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
