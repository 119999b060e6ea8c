/* tests/gen: semantics of the generated API (docs/api.md), on specs from
 * tests/gen/specs/: tied (a shared layer), frozen (a frozen block),
 * loss_mse (mse + plain SGD), loss_ce (cross_entropy + SGD momentum),
 * lin_b3 (the cblas path), train_tied_b (a shared cblas layer in a train
 * step), train_frozen (a frozen block in a train step), drop_alone (dropout
 * p = 0.5 in training mode: the mask), bn_one / bn_one_nostats (a batch
 * norm with one value per channel from one row). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnet.h"

#include "frozen.h"
#include "lin_b3.h"
#include "loss_ce.h"
#include "loss_mse.h"
#include "tied.h"
#include "train_frozen.h"
#include "train_tied_b.h"
#include "drop_alone.h"
#include "bn_one.h"
#include "bn_one_nostats.h"

GNET(tied);
GNET(frozen);
GNET(lin_b3);
GTRAIN_MSE(loss_mse);
GTRAIN_CE(loss_ce);
GTRAIN_MSE(train_tied_b);
GTRAIN_CE(train_frozen);

/* ---- helpers ---- */

static float *randv(trng *r, int n, double a, double b)
{
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < n; i++)
        v[i] = (float)trng_uniform(r, a, b);
    return v;
}

static size_t param_floats(nn_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < nn_param_count(m); i++)
        n += (size_t)nn_param(m, i)->numel;
    return n;
}

/* all parameters (grad = 0) or all gradients (grad = 1, zeros for NULL) */
static float *snapshot(nn_model *m, int grad)
{
    float *s = malloc(sizeof(float) * (param_floats(m) + 1)), *p = s;
    for (size_t i = 0; i < nn_param_count(m); i++) {
        const nn_tensor *t = nn_param(m, i);
        const float *src = grad ? t->grad : t->data;
        for (int64_t j = 0; j < t->numel; j++)
            *p++ = src ? src[j] : 0.0f;
    }
    return s;
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, sizeof(float) * n) == 0;
}

static int32_t *labels(trng *r, int n, int classes)
{
    int32_t *l = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        l[i] = trng_below(r, classes);
    return l;
}

/* ---- backward adds; zero_grad; grad NULL before the first backward ---- */

START_TEST(backward_adds)
{
    const gnet *nets[] = {&tied_gnet, &frozen_gnet, &lin_b3_gnet};
    for (int k = 0; k < 3; k++) {
        const gnet *g = nets[k];
        trng r = {1};
        int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
        float *x = randv(&r, nx, -1, 1), *dy = randv(&r, ny, -1, 1);
        float *y = malloc(sizeof(float) * (size_t)ny), *dx1 = malloc(sizeof(float) * (size_t)nx),
              *dx2 = malloc(sizeof(float) * (size_t)nx);
        void *net = g->create();
        g->init(net, 5);
        nn_model *m = g->model(net);
        size_t n = param_floats(m);
        g->forward(net, x, y);
        g->backward(net, dy, dx1);
        float *g1 = snapshot(m, 1);
        g->backward(net, dy, dx2);
        float *g2 = snapshot(m, 1);
        ck_assert_msg(same(dx1, dx2, (size_t)nx), "%s: dx differs between two backward calls "
                      "(dx is written, not added)", g->name);
        double gmax = 0.0;
        for (size_t i = 0; i < n; i++)
            gmax = fmax(gmax, fabs(g1[i]));
        ck_assert(gmax > 0.0);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(fabsf(g2[i] - 2.0f * g1[i]) <= 1e-6f * fabsf(g1[i]) + 1e-7 * gmax,
                          "%s: grad[%zu] after two backward calls %.9g, after one %.9g", g->name,
                          i, g2[i], g1[i]);
        /* the same backward with dx == NULL gives the same parameter gradients */
        g->zero_grad(net);
        g->backward(net, dy, NULL);
        float *g3 = snapshot(m, 1);
        ck_assert_msg(same(g1, g3, n), "%s: backward with dx == NULL changes the gradients",
                      g->name);
        /* zero_grad zeroes every gradient, and keeps them attached */
        g->zero_grad(net);
        for (size_t i = 0; i < nn_param_count(m); i++) {
            const nn_tensor *t = nn_param(m, i);
            if (!t->requires_grad) {
                ck_assert_ptr_null(t->grad);
                continue;
            }
            ck_assert_ptr_nonnull(t->grad);
            for (int64_t j = 0; j < t->numel; j++)
                ck_assert_msg(t->grad[j] == 0.0f, "%s: %s.grad[%lld] = %g after zero_grad",
                              g->name, t->name, (long long)j, t->grad[j]);
        }
        g->destroy(net);
        free(x), free(dy), free(y), free(dx1), free(dx2), free(g1), free(g2), free(g3);
    }
}
END_TEST

START_TEST(grad_null_until_backward)
{
    const gnet *nets[] = {&tied_gnet, &frozen_gnet};
    for (int k = 0; k < 2; k++) {
        const gnet *g = nets[k];
        trng r = {2};
        int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
        float *x = randv(&r, nx, -1, 1), *dy = randv(&r, ny, -1, 1);
        float *y = malloc(sizeof(float) * (size_t)ny);
        void *net = g->create();
        g->init(net, 1);
        nn_model *m = g->model(net);
        int nfrozen = 0;
        g->zero_grad(net); /* before any backward: nothing to zero, grads stay NULL */
        g->forward(net, x, y);
        for (size_t i = 0; i < nn_param_count(m); i++)
            ck_assert_msg(nn_param(m, i)->grad == NULL, "%s: %s.grad before backward",
                          g->name, nn_param(m, i)->name);
        g->backward(net, dy, NULL);
        for (size_t i = 0; i < nn_param_count(m); i++) {
            const nn_tensor *t = nn_param(m, i);
            if (t->requires_grad) {
                ck_assert_msg(t->grad != NULL, "%s: %s.grad NULL after backward", g->name,
                              t->name);
            } else {
                nfrozen++;
                ck_assert_msg(t->grad == NULL, "%s: frozen %s has a gradient", g->name, t->name);
            }
        }
        g->zero_grad(net);
        for (size_t i = 0; i < nn_param_count(m); i++)
            if (!nn_param(m, i)->requires_grad)
                ck_assert_ptr_null(nn_param(m, i)->grad);
        if (g == &frozen_gnet) {
            /* the frozen block is 0.0.weight / 0.0.bias */
            ck_assert_int_eq(nfrozen, 2);
            ck_assert_int_eq(nn_find(m, "0.0.weight")->requires_grad, 0);
            ck_assert_int_eq(nn_find(m, "0.0.bias")->requires_grad, 0);
            ck_assert_int_eq(nn_find(m, "1.weight")->requires_grad, 1);
        }
        g->destroy(net);
        free(x), free(dy), free(y);
    }
}
END_TEST

/* backward uses the x of the last forward (a copy), and P_loss's x too */
START_TEST(backward_uses_saved_input)
{
    trng r = {3};
    const gnet *g = &loss_mse_gnet;
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
    float *x = randv(&r, nx, -1, 1), *x2 = malloc(sizeof(float) * (size_t)nx);
    float *dy = randv(&r, ny, -1, 1), *t = randv(&r, ny, -1, 1);
    float *y = malloc(sizeof(float) * (size_t)ny);
    loss_mse *net = loss_mse_create();
    loss_mse_init(net, 3);
    nn_model *m = loss_mse_model(net);
    size_t n = param_floats(m);
    loss_mse_forward(net, x, y);
    loss_mse_backward(net, dy, NULL);
    float *ref = snapshot(m, 1);
    /* the caller's buffer changes between forward and backward */
    memcpy(x2, x, sizeof(float) * (size_t)nx);
    loss_mse_zero_grad(net);
    loss_mse_forward(net, x2, y);
    for (int i = 0; i < nx; i++)
        x2[i] = 100.0f;
    loss_mse_backward(net, dy, NULL);
    float *a = snapshot(m, 1);
    ck_assert_msg(same(ref, a, n), "backward read the caller's x instead of its copy");
    /* P_loss is a forward: a backward after it sees its x */
    loss_mse_zero_grad(net);
    loss_mse_forward(net, x2, y); /* something else first */
    (void)loss_mse_loss(net, x, t);
    loss_mse_backward(net, dy, NULL);
    float *b = snapshot(m, 1);
    ck_assert_msg(same(ref, b, n), "backward after P_loss does not use P_loss's x");
    loss_mse_destroy(net);
    free(x), free(x2), free(dy), free(t), free(y), free(ref), free(a), free(b);
}
END_TEST

/* ---- P_train_step replaces stale gradients ---- */

static void train_step_stale(const gtrain *tr, int steps)
{
    const gnet *g = tr->g;
    trng r = {4};
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
    float *x = randv(&r, nx, -1, 1), *junk = randv(&r, ny, -5, 5);
    float *tf = randv(&r, ny, -1, 1);
    int32_t *tl = labels(&r, g->batch, g->out_size);
    const void *target = tr->ce ? (const void *)tl : (const void *)tf;
    float *y = malloc(sizeof(float) * (size_t)ny);
    void *a = g->create(), *b = g->create();
    g->init(a, 7);
    g->init(b, 7);
    nn_model *ma = g->model(a), *mb = g->model(b);
    size_t n = param_floats(ma);
    /* a: gradients left over from two unrelated backward calls */
    g->forward(a, x, y);
    g->backward(a, junk, NULL);
    g->backward(a, junk, NULL);
    for (int s = 0; s < steps; s++) {
        float la = tr->train_step(a, x, target);
        float lb = tr->train_step(b, x, target);
        ck_assert_msg(la == lb, "%s step %d: loss %.9g with stale gradients, %.9g without",
                      g->name, s, la, lb);
        float *pa = snapshot(ma, 0), *pb = snapshot(mb, 0);
        float *ga = snapshot(ma, 1), *gb = snapshot(mb, 1);
        ck_assert_msg(same(pa, pb, n), "%s step %d: parameters depend on stale gradients",
                      g->name, s);
        ck_assert_msg(same(ga, gb, n), "%s step %d: gradients depend on stale gradients",
                      g->name, s);
        free(pa), free(pb), free(ga), free(gb);
        /* more junk between steps */
        g->forward(a, x, y);
        g->backward(a, junk, NULL);
    }
    g->destroy(a);
    g->destroy(b);
    free(x), free(junk), free(tf), free(tl), free(y);
}

START_TEST(train_step_replaces_stale_grads)
{
    train_step_stale(&loss_mse_gtrain, 3);
    train_step_stale(&loss_ce_gtrain, 3);
    train_step_stale(&train_tied_b_gtrain, 3);
    train_step_stale(&train_frozen_gtrain, 3);
}
END_TEST

/* plain SGD (loss_mse.yaml: lr 0.05): after the step, p = p0 - lr * grad,
   and grad is the gradient of the loss at p0 */
START_TEST(train_step_is_sgd)
{
    trng r = {5};
    const gnet *g = &loss_mse_gnet;
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
    float *x = randv(&r, nx, -1, 1), *t = randv(&r, ny, -1, 1);
    loss_mse *net = loss_mse_create();
    loss_mse_init(net, 9);
    nn_model *m = loss_mse_model(net);
    size_t n = param_floats(m);
    float *p0 = snapshot(m, 0);
    float L = loss_mse_train_step(net, x, t);
    float *p1 = snapshot(m, 0), *gr = snapshot(m, 1);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(p1[i] - (p0[i] + -0.05f * gr[i])) <= 1e-7f * fabsf(p0[i]),
                      "param %zu: %.9g -> %.9g, grad %.9g", i, p0[i], p1[i], gr[i]);
    /* the returned loss is the loss before the step */
    loss_mse *ref = loss_mse_create();
    loss_mse_init(ref, 9);
    ck_assert_float_eq(loss_mse_loss(ref, x, t), L);
    loss_mse_destroy(ref);
    loss_mse_destroy(net);
    free(x), free(t), free(p0), free(p1), free(gr);
}
END_TEST

/* ---- P_place ---- */

static void place_one(const gnet *g, const gtrain *tr)
{
    trng r = {6};
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
    float *x = randv(&r, nx, -1, 1), *dy = randv(&r, ny, -1, 1), *tf = randv(&r, ny, -1, 1);
    int32_t *tl = labels(&r, g->batch, g->out_size);
    float *y1 = malloc(sizeof(float) * (size_t)ny), *y2 = malloc(sizeof(float) * (size_t)ny);
    /* P_BYTES exactly, plus a guard zone that must stay untouched */
    const size_t guard = 256;
    unsigned char *mem = NULL;
    ck_assert_int_eq(posix_memalign((void **)&mem, 64, g->bytes + guard), 0);
    memset(mem, 0xA5, g->bytes + guard); /* garbage: place must not rely on zeroed memory */
    ck_assert_ptr_null(g->place(NULL));
    ck_assert_ptr_null(g->place(mem + 4));
    ck_assert_ptr_null(g->place(mem + 32));
    ck_assert_ptr_null(g->place(mem + 1));
    void *p = g->place(mem);
    ck_assert_ptr_eq(p, mem);
    void *c = g->create();
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq((int)((uintptr_t)c & 63u), 0);
    g->init(p, 11);
    g->init(c, 11);
    nn_model *mp = g->model(p), *mc = g->model(c);
    size_t n = param_floats(mp);
    float *sp = snapshot(mp, 0), *sc = snapshot(mc, 0);
    ck_assert(same(sp, sc, n));
    for (size_t i = 0; i < nn_param_count(mp); i++) {
        const nn_tensor *t = nn_param(mp, i);
        ck_assert_ptr_nonnull(t->data);
        ck_assert((unsigned char *)t->data >= mem &&
                  (unsigned char *)(t->data + t->numel) <= mem + g->bytes);
    }
    g->forward(p, x, y1);
    g->forward(c, x, y2);
    ck_assert(same(y1, y2, (size_t)ny));
    g->backward(p, dy, NULL);
    g->backward(c, dy, NULL);
    free(sp), free(sc);
    sp = snapshot(mp, 1);
    sc = snapshot(mc, 1);
    ck_assert(same(sp, sc, n));
    for (size_t i = 0; i < nn_param_count(mp); i++) {
        const nn_tensor *t = nn_param(mp, i);
        if (t->grad)
            ck_assert((unsigned char *)t->grad >= mem &&
                      (unsigned char *)(t->grad + t->numel) <= mem + g->bytes);
    }
    if (tr) {
        const void *target = tr->ce ? (const void *)tl : (const void *)tf;
        for (int s = 0; s < 3; s++)
            ck_assert_float_eq(tr->train_step(p, x, target), tr->train_step(c, x, target));
        ck_assert_float_eq(tr->loss(p, x, target), tr->loss(c, x, target));
        free(sp), free(sc);
        sp = snapshot(mp, 0);
        sc = snapshot(mc, 0);
        ck_assert(same(sp, sc, n));
    }
    for (size_t i = 0; i < guard; i++)
        ck_assert_msg(mem[g->bytes + i] == 0xA5, "%s: byte %zu past P_BYTES written", g->name,
                      i);
    g->destroy(p); /* a no-op for a placed instance */
    g->destroy(c);
    free(mem);
    free(x), free(dy), free(tf), free(tl), free(y1), free(y2), free(sp), free(sc);
}

START_TEST(place)
{
    place_one(&tied_gnet, NULL);
    place_one(&frozen_gnet, NULL);
    place_one(&lin_b3_gnet, NULL);
    place_one(&loss_mse_gnet, &loss_mse_gtrain);
    place_one(&loss_ce_gnet, &loss_ce_gtrain);
}
END_TEST

/* ---- two instances are independent ---- */

START_TEST(instances_independent)
{
    trng r = {7};
    const gnet *g = &tied_gnet;
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
    float *x = randv(&r, nx, -1, 1), *x2 = randv(&r, nx, -1, 1), *dy = randv(&r, ny, -1, 1);
    float *y = malloc(sizeof(float) * (size_t)ny), *yb = malloc(sizeof(float) * (size_t)ny),
          *yb2 = malloc(sizeof(float) * (size_t)ny);
    tied *a = tied_create(), *b = tied_create();
    tied_init(a, 1);
    tied_init(b, 2);
    nn_model *ma = tied_model(a), *mb = tied_model(b);
    size_t n = param_floats(ma);
    ck_assert_ptr_ne(nn_param(ma, 0)->data, nn_param(mb, 0)->data);
    tied_forward(b, x, yb);
    float *pb = snapshot(mb, 0);
    /* everything on a */
    tied_forward(a, x2, y);
    tied_backward(a, dy, NULL);
    tied_init(a, 3);
    nn_find(ma, "2.weight")->data[0] += 1.0f;
    tied_zero_grad(a);
    tied_forward(a, x, y);
    tied_backward(a, dy, NULL);
    /* b: parameters unchanged, no gradients, same forward */
    float *pb2 = snapshot(mb, 0);
    ck_assert(same(pb, pb2, n));
    for (size_t i = 0; i < nn_param_count(mb); i++)
        ck_assert_ptr_null(nn_param(mb, i)->grad);
    tied_forward(b, x, yb2);
    ck_assert(same(yb, yb2, (size_t)ny));
    /* and b's backward leaves a's gradients alone */
    float *ga = snapshot(ma, 1);
    tied_backward(b, dy, NULL);
    float *ga2 = snapshot(ma, 1);
    ck_assert(same(ga, ga2, n));
    tied_destroy(a);
    tied_destroy(b);
    free(x), free(x2), free(dy), free(y), free(yb), free(yb2), free(pb), free(pb2), free(ga),
        free(ga2);
}
END_TEST

/* ---- P_init ---- */

START_TEST(init_seeds)
{
    const gnet *nets[] = {&tied_gnet, &frozen_gnet, &lin_b3_gnet, &loss_ce_gnet};
    for (int k = 0; k < 4; k++) {
        const gnet *g = nets[k];
        void *a = g->create(), *b = g->create();
        nn_model *ma = g->model(a), *mb = g->model(b);
        size_t n = param_floats(ma);
        g->init(a, 42);
        g->init(b, 42);
        float *pa = snapshot(ma, 0), *pb = snapshot(mb, 0);
        ck_assert_msg(same(pa, pb, n), "%s: same seed, different parameters", g->name);
        /* init is a full reset: after changes, the same seed gives the same again */
        for (size_t i = 0; i < nn_param_count(ma); i++)
            nn_param(ma, i)->data[0] = 123.0f;
        g->init(a, 42);
        free(pa);
        pa = snapshot(ma, 0);
        ck_assert_msg(same(pa, pb, n), "%s: init after changes differs", g->name);
        g->init(b, 43);
        free(pb);
        pb = snapshot(mb, 0);
        /* every tensor drawn at random differs (all of these use default init) */
        size_t off = 0;
        for (size_t i = 0; i < nn_param_count(ma); i++) {
            size_t ne = (size_t)nn_param(ma, i)->numel;
            ck_assert_msg(!same(pa + off, pb + off, ne), "%s: seeds 42 and 43 give the same %s",
                          g->name, nn_param(ma, i)->name);
            off += ne;
        }
        g->destroy(b);
        free(pa), free(pb);
        g->destroy(a);
    }
    /* P_init(seed) is P_init_rng with a generator seeded the same;
       P_init_rng continues the caller's generator */
    tied *t = tied_create();
    nn_rng rng;
    nn_rng_seed(&rng, 42);
    tied_init_rng(t, &rng);
    tied *u = tied_create();
    tied_init(u, 42);
    float *st = snapshot(tied_model(t), 0), *su = snapshot(tied_model(u), 0);
    ck_assert(same(st, su, param_floats(tied_model(t))));
    tied_init_rng(t, &rng); /* the generator moved on: different values */
    free(st);
    st = snapshot(tied_model(t), 0);
    ck_assert(!same(st, su, param_floats(tied_model(t))));
    tied_destroy(t);
    tied_destroy(u);
    free(st), free(su);
}
END_TEST

/* ---- forward is deterministic ---- */

START_TEST(forward_deterministic)
{
    const gnet *nets[] = {&tied_gnet, &lin_b3_gnet, &loss_ce_gnet};
    for (int k = 0; k < 3; k++) {
        const gnet *g = nets[k];
        trng r = {8};
        int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
        float *x = randv(&r, nx, -1, 1), *x2 = randv(&r, nx, -1, 1), *dy = randv(&r, ny, -1, 1);
        float *y1 = malloc(sizeof(float) * (size_t)ny), *y2 = malloc(sizeof(float) * (size_t)ny);
        float *dx1 = malloc(sizeof(float) * (size_t)nx), *dx2 = malloc(sizeof(float) * (size_t)nx);
        void *net = g->create();
        g->init(net, 3);
        g->forward(net, x, y1);
        g->backward(net, dy, dx1);
        float *g1 = snapshot(g->model(net), 1);
        g->forward(net, x2, y2); /* something else in between */
        g->backward(net, dy, dx2);
        g->zero_grad(net);
        g->forward(net, x, y2);
        g->backward(net, dy, dx2);
        float *g2 = snapshot(g->model(net), 1);
        ck_assert_msg(same(y1, y2, (size_t)ny), "%s: forward not deterministic", g->name);
        ck_assert_msg(same(dx1, dx2, (size_t)nx), "%s: dx not deterministic", g->name);
        ck_assert_msg(same(g1, g2, param_floats(g->model(net))), "%s: grads not deterministic",
                      g->name);
        /* another instance gives the same bits */
        void *o = g->create();
        g->init(o, 3);
        g->forward(o, x, y2);
        ck_assert(same(y1, y2, (size_t)ny));
        g->destroy(o);
        g->destroy(net);
        free(x), free(x2), free(dy), free(y1), free(y2), free(dx1), free(dx2), free(g1),
            free(g2);
    }
}
END_TEST

/* ---- P_loss against the loss computed here ---- */

START_TEST(loss_by_hand)
{
    trng r = {9};
    {
        const gnet *g = &loss_mse_gnet;
        int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
        float *x = randv(&r, nx, -2, 2), *t = randv(&r, ny, -2, 2);
        float *y = malloc(sizeof(float) * (size_t)ny);
        loss_mse *net = loss_mse_create();
        loss_mse_init(net, 1);
        loss_mse_forward(net, x, y);
        double s = 0.0;
        for (int i = 0; i < ny; i++)
            s += ((double)y[i] - t[i]) * ((double)y[i] - t[i]);
        s /= ny; /* mean over every element, as nn.MSELoss() */
        float L = loss_mse_loss(net, x, t);
        ck_assert_msg(fabs(L - s) <= 1e-6 * s, "mse: P_loss %.9g, by hand %.9g", L, s);
        loss_mse_destroy(net);
        free(x), free(t), free(y);
    }
    {
        const gnet *g = &loss_ce_gnet;
        int nx = g->batch * g->in_size, ny = g->batch * g->out_size, C = g->out_size;
        float *x = randv(&r, nx, -2, 2);
        int32_t *t = labels(&r, g->batch, C);
        float *y = malloc(sizeof(float) * (size_t)ny);
        loss_ce *net = loss_ce_create();
        loss_ce_init(net, 1);
        loss_ce_forward(net, x, y);
        double s = 0.0;
        for (int b = 0; b < g->batch; b++) {
            double z = 0.0;
            for (int c = 0; c < C; c++)
                z += exp((double)y[b * C + c]);
            s += log(z) - y[b * C + t[b]];
        }
        s /= g->batch; /* mean over the batch, as nn.CrossEntropyLoss() */
        float L = loss_ce_loss(net, x, t);
        ck_assert_msg(fabs(L - s) <= 1e-6 * s, "cross_entropy: P_loss %.9g, by hand %.9g", L, s);
        /* confident, correct logits give a small loss; labels matter */
        int32_t *t2 = malloc(sizeof(int32_t) * (size_t)g->batch);
        for (int b = 0; b < g->batch; b++)
            t2[b] = (t[b] + 1) % C;
        ck_assert(loss_ce_loss(net, x, t2) != L);
        loss_ce_destroy(net);
        free(x), free(t), free(t2), free(y);
    }
}
END_TEST

/* ---- cross_entropy with a label out of range ---- */

START_TEST(ce_bad_label)
{
    trng r = {10};
    const gnet *g = &loss_ce_gnet;
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size, C = g->out_size;
    float *x = randv(&r, nx, -2, 2), *dy = randv(&r, ny, -1, 1);
    float *y = malloc(sizeof(float) * (size_t)ny);
    int32_t *good = labels(&r, g->batch, C);
    int32_t *bad = malloc(sizeof(int32_t) * (size_t)g->batch);
    const int32_t wrong[] = {C, -1, 1000000, INT32_MIN, INT32_MAX};
    loss_ce *a = loss_ce_create(), *b = loss_ce_create();
    loss_ce_init(a, 2);
    loss_ce_init(b, 2);
    nn_model *ma = loss_ce_model(a), *mb = loss_ce_model(b);
    size_t n = param_floats(ma);
    /* give a gradients, so that "untouched" covers them too */
    loss_ce_forward(a, x, y);
    loss_ce_backward(a, dy, NULL);
    loss_ce_forward(b, x, y);
    loss_ce_backward(b, dy, NULL);
    for (size_t w = 0; w < sizeof wrong / sizeof wrong[0]; w++)
        for (int where = 0; where < g->batch; where += g->batch - 1) {
            memcpy(bad, good, sizeof(int32_t) * (size_t)g->batch);
            bad[where] = wrong[w];
            float *p0 = snapshot(ma, 0), *g0 = snapshot(ma, 1);
            nn_set_error("sentinel");
            float L = loss_ce_train_step(a, x, bad);
            ck_assert_msg(isnan(L), "train step with label %ld: loss %g, expected NAN",
                          (long)wrong[w], L);
            ck_assert_str_ne(nn_error(), "sentinel");
            ck_assert_int_gt((int)strlen(nn_error()), 0);
            float *p1 = snapshot(ma, 0), *g1 = snapshot(ma, 1);
            ck_assert_msg(same(p0, p1, n), "label %ld: parameters changed", (long)wrong[w]);
            ck_assert_msg(same(g0, g1, n), "label %ld: gradients changed", (long)wrong[w]);
            nn_set_error("sentinel");
            L = loss_ce_loss(a, x, bad);
            ck_assert_msg(isnan(L), "P_loss with label %ld: %g, expected NAN", (long)wrong[w], L);
            ck_assert_str_ne(nn_error(), "sentinel");
            free(p1), free(g1);
            p1 = snapshot(ma, 0);
            ck_assert(same(p0, p1, n));
            free(p0), free(g0), free(p1);
        }
    printf("cross_entropy, bad label: nn_error() = \"%s\"\n", nn_error());
    /* the failed steps left no trace: the optimizer state (momentum, step
       count) too, so the next good steps match a fresh instance */
    for (int s = 0; s < 3; s++)
        ck_assert_float_eq(loss_ce_train_step(a, x, good), loss_ce_train_step(b, x, good));
    float *pa = snapshot(ma, 0), *pb = snapshot(mb, 0);
    ck_assert_msg(same(pa, pb, n), "failed steps changed the optimizer state");
    loss_ce_destroy(a);
    loss_ce_destroy(b);
    free(x), free(dy), free(y), free(good), free(bad), free(pa), free(pb);
}
END_TEST

/* ---- modes and the instance's generator (docs/language.md, Modes and randomness) ---- */

START_TEST(modes_and_rng)
{
    loss_ce *a = loss_ce_create(), *b = loss_ce_create();
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    /* a new instance trains, as a new nn.Module does */
    ck_assert_int_eq(loss_ce_training(a), 1);
    loss_ce_set_training(a, 0);
    ck_assert_int_eq(loss_ce_training(a), 0);
    ck_assert_int_eq(loss_ce_training(b), 1);
    loss_ce_set_training(a, 7);
    ck_assert_int_eq(loss_ce_training(a), 1);
    /* each instance owns its generator, starting at torch's default seed */
    ck_assert_ptr_nonnull(loss_ce_rng(a));
    ck_assert_ptr_ne(loss_ce_rng(a), loss_ce_rng(b));
    nn_rng ref;
    nn_rng_seed(&ref, 67280421310721u);
    ck_assert_uint_eq(nn_rng_u32(loss_ce_rng(a)), nn_rng_u32(&ref));
    /* P_init seeds it and leaves it where construction left it: the same
       state as the caller's generator after P_init_rng */
    loss_ce_init(a, 7);
    nn_rng_seed(&ref, 7);
    loss_ce_init_rng(b, &ref);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(nn_rng_u32(loss_ce_rng(a)), nn_rng_u32(&ref));
    /* and P_init_rng leaves the instance's own generator alone */
    nn_rng mine = *loss_ce_rng(b);
    loss_ce_init_rng(b, &ref);
    ck_assert(memcmp(&mine, loss_ce_rng(b), sizeof mine) == 0);
    loss_ce_destroy(a);
    loss_ce_destroy(b);
}
END_TEST

/* ---- row counts (docs/language.md, Batches smaller than batch): the range, and n == BATCH is the plain call ---- */

/* ---- one value per channel (torch: "Expected more than 1 value per channel
   when training"): refused with nn_error(), y NaN / NaN returned, nothing
   changed; eval mode with running statistics is fine ---- */

static float *state_copy(nn_model *m)
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i < nn_state_count(m); i++)
        n += (size_t)nn_find(m, nn_state_key(m, i))->numel * 2;
    float *v = malloc(sizeof(float) * (n + 1));
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < nn_state_count(m); i++) {
        const nn_tensor *t = nn_find(m, nn_state_key(m, i));
        size_t bytes = (size_t)t->numel * (t->dtype == NN_I64 ? 8 : 4);
        memcpy(v + k, t->data, bytes);
        k += bytes / 4;
    }
    return v;
}

START_TEST(bn_one_value)
{
    bn_one *a = bn_one_create();
    ck_assert_ptr_nonnull(a);
    bn_one_init(a, 1);
    nn_model *m = bn_one_model(a);
    float x[3 * 4] = {0.5f, -1, 2, 0.25f, 1, 1, -1, 0, 3, -2, 0.5f, 1}, y[3 * 2], t[3 * 2] = {0};
    size_t ns = 0;
    for (size_t i = 0; i < nn_state_count(m); i++)
        ns += (size_t)nn_find(m, nn_state_key(m, i))->numel * 2;
    float *s0 = state_copy(m);
    y[0] = y[1] = 7.0f;
    nn_set_error("sentinel");
    bn_one_forward_n(a, 1, x, y);
    ck_assert_msg(strstr(nn_error(), "bn_one_forward: batch_norm1d '1' gets 1 value per channel") != NULL,
                  "nn_error() = %s", nn_error());
    ck_assert(isnan(y[0]) && isnan(y[1]));
    nn_set_error("sentinel");
    ck_assert(isnan(bn_one_loss_n(a, 1, x, t)));
    ck_assert_ptr_nonnull(strstr(nn_error(), "bn_one_loss"));
    nn_set_error("sentinel");
    ck_assert(isnan(bn_one_train_step_n(a, 1, x, t)));
    ck_assert_ptr_nonnull(strstr(nn_error(), "bn_one_train_step"));
    float *s1 = state_copy(m);
    ck_assert_msg(memcmp(s0, s1, sizeof(float) * ns) == 0, "a refused call changed the state");
    /* two rows are fine, and so is one row in eval mode */
    nn_set_error("sentinel");
    bn_one_forward_n(a, 2, x, y);
    ck_assert_str_eq(nn_error(), "sentinel");
    ck_assert(isfinite(y[0]) && isfinite(y[3]));
    bn_one_set_training(a, 0);
    bn_one_forward_n(a, 1, x, y);
    ck_assert_str_eq(nn_error(), "sentinel");
    ck_assert(isfinite(y[0]) && isfinite(y[1]));
    free(s0), free(s1);
    bn_one_destroy(a);

    /* without running statistics eval mode uses the batch's too: refused */
    bn_one_nostats *b = bn_one_nostats_create();
    ck_assert_ptr_nonnull(b);
    bn_one_nostats_init(b, 1);
    bn_one_nostats_set_training(b, 0);
    bn_one_nostats_forward_n(b, 1, x, y);
    ck_assert_msg(strstr(nn_error(), "it has no running statistics") != NULL, "nn_error() = %s",
                  nn_error());
    ck_assert(isnan(y[0]));
    bn_one_nostats_destroy(b);
}
END_TEST

START_TEST(rows_checked)
{
    trng r = {21};
    const gnet *g = &loss_ce_gnet;
    int B = g->batch, nx = B * g->in_size, ny = B * g->out_size;
    float *x = randv(&r, nx, -2, 2), *dy = randv(&r, ny, -1, 1);
    float *y = malloc(sizeof(float) * (size_t)ny), *y2 = malloc(sizeof(float) * (size_t)ny);
    float *dx = malloc(sizeof(float) * (size_t)nx);
    int32_t *t = labels(&r, B, g->out_size);
    loss_ce *a = loss_ce_create(), *b = loss_ce_create();
    loss_ce_init(a, 3);
    loss_ce_init(b, 3);
    nn_model *ma = loss_ce_model(a);
    size_t n = param_floats(ma);
    loss_ce_forward(a, x, y);
    loss_ce_backward(a, dy, NULL);
    const int bad_rows[] = {0, -1, B + 1, 1 << 30};
    for (size_t k = 0; k < sizeof bad_rows / sizeof bad_rows[0]; k++) {
        int rows = bad_rows[k];
        float *p0 = snapshot(ma, 0), *g0 = snapshot(ma, 1);
        nn_rng r0 = *loss_ce_rng(a);
        for (int i = 0; i < ny; i++)
            y2[i] = 12345.0f;
        nn_set_error("sentinel");
        loss_ce_forward_n(a, rows, x, y2);
        ck_assert_str_ne(nn_error(), "sentinel");
        for (int i = 0; i < ny; i++)
            ck_assert_float_eq(y2[i], 12345.0f);
        nn_set_error("sentinel");
        loss_ce_backward_n(a, rows, dy, dx);
        ck_assert_str_ne(nn_error(), "sentinel");
        nn_set_error("sentinel");
        ck_assert(isnan(loss_ce_loss_n(a, rows, x, t)));
        ck_assert_str_ne(nn_error(), "sentinel");
        nn_set_error("sentinel");
        ck_assert(isnan(loss_ce_train_step_n(a, rows, x, t)));
        ck_assert_str_ne(nn_error(), "sentinel");
        float *p1 = snapshot(ma, 0), *g1 = snapshot(ma, 1);
        ck_assert_msg(same(p0, p1, n), "rows=%d: parameters changed", rows);
        ck_assert_msg(same(g0, g1, n), "rows=%d: gradients changed", rows);
        ck_assert(memcmp(&r0, loss_ce_rng(a), sizeof r0) == 0);
        free(p0), free(g0), free(p1), free(g1);
    }
    printf("rows out of range: nn_error() = \"%s\"\n", nn_error());
    /* backward of another row count than the last forward's is refused */
    loss_ce_forward_n(a, 2, x, y2);
    {
        float *g0 = snapshot(ma, 1);
        nn_set_error("sentinel");
        loss_ce_backward(a, dy, NULL);
        ck_assert_str_ne(nn_error(), "sentinel");
        float *g1 = snapshot(ma, 1);
        ck_assert(same(g0, g1, n));
        free(g0), free(g1);
    }
    /* n == BATCH gives the plain call's results, bit for bit */
    loss_ce_forward(a, x, y);
    loss_ce_forward_n(b, B, x, y2);
    ck_assert(same(y, y2, (size_t)ny));
    loss_ce_zero_grad(a);
    loss_ce_zero_grad(b);
    loss_ce_backward(a, dy, NULL);
    loss_ce_backward_n(b, B, dy, NULL);
    {
        float *ga = snapshot(ma, 1), *gb = snapshot(loss_ce_model(b), 1);
        ck_assert(same(ga, gb, n));
        free(ga), free(gb);
    }
    for (int s = 0; s < 3; s++)
        ck_assert_float_eq(loss_ce_train_step(a, x, t), loss_ce_train_step_n(b, B, x, t));
    {
        float *pa = snapshot(ma, 0), *pb = snapshot(loss_ce_model(b), 0);
        ck_assert(same(pa, pb, n));
        free(pa), free(pb);
    }
    loss_ce_destroy(a);
    loss_ce_destroy(b);
    free(x), free(dy), free(y), free(y2), free(dx), free(t);
}
END_TEST

/* ---- names: aliases of a shared tensor ---- */

START_TEST(find_alias)
{
    tied *t = tied_create();
    tied_init(t, 0);
    nn_model *m = tied_model(t);
    nn_tensor *w2 = nn_find(m, "2.weight"), *w4 = nn_find(m, "4.weight");
    nn_tensor *b2 = nn_find(m, "2.bias"), *b4 = nn_find(m, "4.bias");
    ck_assert_ptr_nonnull(w2);
    ck_assert_ptr_nonnull(b2);
    ck_assert_ptr_eq(w2, w4);
    ck_assert_ptr_eq(b2, b4);
    ck_assert_str_eq(w4->name, "2.weight"); /* the canonical name */
    ck_assert_ptr_null(nn_find(m, "3.weight"));
    ck_assert_ptr_null(nn_find(m, "4.weigh"));
    ck_assert_int_eq((int)nn_param_count(m), 6);
    ck_assert_int_eq((int)nn_state_count(m), 8);
    /* d2l's check: changing 2.weight[0][0] changes 4.weight[0][0] */
    w2->data[0] = 100.0f;
    ck_assert_float_eq(w4->data[0], 100.0f);
    /* one gradient for both uses */
    trng r = {11};
    float *x = randv(&r, tied_BATCH * tied_IN_SIZE, -1, 1),
          *dy = randv(&r, tied_BATCH * tied_OUT_SIZE, -1, 1);
    float y[tied_BATCH * tied_OUT_SIZE];
    tied_forward(t, x, y);
    tied_backward(t, dy, NULL);
    ck_assert_ptr_nonnull(w4->grad);
    ck_assert_ptr_eq(nn_find(m, "4.weight")->grad, nn_find(m, "2.weight")->grad);
    tied_destroy(t);
    free(x), free(dy);
}
END_TEST

/* dropout in training mode: y is x * 2 or x * 0 by a mask drawn per forward
   from the instance's generator; backward applies that forward's mask; the
   same seed gives the same masks; eval mode is the identity */
START_TEST(dropout_mask)
{
    enum { N = drop_alone_BATCH * drop_alone_IN_SIZE };
    drop_alone *a = drop_alone_create(), *b = drop_alone_create();
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    trng r = {5};
    float *x = randv(&r, N, 0.5, 1.5), *dy = randv(&r, N, -1, 1);
    float y[N], y2[N], yb[N], dx[N];
    drop_alone_init(a, 3);
    drop_alone_init(b, 3);
    int zeros = 0, differ = 0;
    for (int call = 0; call < 3; call++) {
        drop_alone_forward(a, x, y);
        drop_alone_backward(a, dy, dx);
        drop_alone_forward(b, x, yb);
        for (int k = 0; k < N; k++) {
            ck_assert(y[k] == 0.0f || y[k] == 2.0f * x[k]);
            ck_assert(dx[k] == (y[k] == 0.0f ? 0.0f : 2.0f * dy[k]));
            ck_assert(y[k] == yb[k]); /* same seed, same calls: same masks */
            zeros += y[k] == 0.0f;
        }
        if (call == 0)
            memcpy(y2, y, sizeof y);
        else
            differ += memcmp(y, y2, sizeof y) != 0;
    }
    ck_assert_int_gt(zeros, 3 * N / 4);
    ck_assert_int_lt(zeros, 3 * N * 3 / 4);
    ck_assert_int_gt(differ, 0); /* a new mask per forward */
    drop_alone_set_training(a, 0);
    drop_alone_forward(a, x, y);
    drop_alone_backward(a, dy, dx);
    ck_assert(memcmp(y, x, sizeof y) == 0);
    ck_assert(memcmp(dx, dy, sizeof dx) == 0);
    free(x);
    free(dy);
    drop_alone_destroy(a);
    drop_alone_destroy(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen-api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, backward_adds);
    tcase_add_test(tc, grad_null_until_backward);
    tcase_add_test(tc, backward_uses_saved_input);
    tcase_add_test(tc, train_step_replaces_stale_grads);
    tcase_add_test(tc, train_step_is_sgd);
    tcase_add_test(tc, place);
    tcase_add_test(tc, instances_independent);
    tcase_add_test(tc, init_seeds);
    tcase_add_test(tc, forward_deterministic);
    tcase_add_test(tc, loss_by_hand);
    tcase_add_test(tc, ce_bad_label);
    tcase_add_test(tc, find_alias);
    tcase_add_test(tc, modes_and_rng);
    tcase_add_test(tc, rows_checked);
    tcase_add_test(tc, bn_one_value);
    tcase_add_test(tc, dropout_mask);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
