/* bake_driver.c: compiled-in weights (nngen --weights) against loaded ones,
 * and variants of one spec in one program (bake.py builds and runs it).
 *
 *   a  --inference --batch 8                  nn_load(W)
 *   b  --inference --batch 8 --weights W      nothing loaded: read-only
 *   c  --batch 8 --weights W                  starts from a copy of W
 *   f  --batch 8                              nn_load(W)
 *   e  --batch 64 (training)                  nn_load(W), 3 steps, nn_save(W2)
 *   d  --inference --batch 1                  nn_load(W2)
 *
 * usage: bake_driver W W2        prints PASS/FAIL lines; exit 1 on a failure
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a.h"
#include "b.h"
#include "c.h"
#include "d.h"
#include "e.h"
#include "f.h"

#define IN a_IN_SIZE
#define OUT a_OUT_SIZE
#define N 64

static int failed;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "PASS" : "FAIL", what);
    if (!ok)
        failed = 1;
}

static float X[N * IN], Y8a[8 * OUT], Y8b[8 * OUT], Y8c[8 * OUT], Y8f[8 * OUT];
static float Y64[N * OUT], Y1[OUT];
#if TARGET_INT
static int32_t T[N];
#else
static float T[N * OUT];
#endif

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bake_driver W W2\n");
        return 2;
    }
    unsigned s = 12345u;
    for (int i = 0; i < N * IN; i++) {
        s = s * 1103515245u + 12345u;
        X[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    }
    for (int i = 0; i < N; i++)
#if TARGET_INT
        T[i] = (int32_t)(i % OUT);
#else
        for (int k = 0; k < OUT; k++)
            T[i * OUT + k] = (float)((i + k) % 3) - 1.0f;
#endif

    a *na = a_create();
    b *nb = b_create();
    c *nc = c_create();
    f *nf = f_create();
    e *ne = e_create();
    d *nd = d_create();
    if (!na || !nb || !nc || !nf || !ne || !nd) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* a (loaded) and b (compiled in), both --inference: the same bits */
    check(nn_load(a_model(na), argv[1]) == 0, "a: nn_load of the weights file");
    a_set_training(na, 0);
    b_set_training(nb, 0);
    a_forward(na, X, Y8a);
    b_forward(nb, X, Y8b);
    check(!memcmp(Y8a, Y8b, sizeof Y8a), "b (compiled in) computes exactly what a (loaded) does");
    check(b_training(nb) == 0, "b: a new instance is in eval mode");
    nn_set_error("%s", "");
    b_set_training(nb, 1);
    check(b_training(nb) == 0 && strstr(nn_error(), "read-only") != NULL,
          "b: set_training(1) refused with a message, still eval");
    nn_set_error("%s", "");
    b_init(nb, 1);
    check(strstr(nn_error(), "b_init:") != NULL, "b: init refused with a message");
    check(nn_load(b_model(nb), argv[1]) == -1 && strstr(nn_error(), "read-only") != NULL,
          "b: nn_load refused (read-only weights)");
    b_forward(nb, X, Y8b);
    check(!memcmp(Y8a, Y8b, sizeof Y8a), "b: still the same outputs after the refusals");
    check((size_t)a_BYTES - (size_t)b_BYTES == 4 * a_model(na)->info->data_floats,
          "b_BYTES is a_BYTES less the weights");
    check(nn_find(b_model(nb), a_model(na)->info->state_keys[0]) != NULL,
          "b: the state dict is there (names, shapes, data in rodata)");

    /* c (a copy of the compiled-in weights) and f (loaded): the same */
    c_set_training(nc, 0);
    f_set_training(nf, 0);
    check(nn_load(f_model(nf), argv[1]) == 0, "f: nn_load of the weights file");
    c_forward(nc, X, Y8c);
    f_forward(nf, X, Y8f);
    check(!memcmp(Y8c, Y8f, sizeof Y8c), "c (starts from the compiled-in copy) computes exactly "
                                         "what f (loaded) does");
    c_set_training(nc, 1);
    float lc = c_train_step(nc, X, T);
    check(isfinite(lc), "c: its copy trains (a finite loss)");

    /* e (batch 64, training) and d (batch 1, inference) share one file */
    check(nn_load(e_model(ne), argv[1]) == 0, "e: nn_load of the weights file");
    for (int k = 0; k < 3; k++)
        e_train_step(ne, X, T);
    check(nn_save(e_model(ne), argv[2]) == 0, "e: nn_save after 3 steps");
    check(nn_load(d_model(nd), argv[2]) == 0, "d (batch 1, --inference): nn_load of e's file");
    e_set_training(ne, 0);
    d_set_training(nd, 0);
    e_forward(ne, X, Y64);
    double worst = 0.0;
    for (int i = 0; i < N; i++) {
        d_forward(nd, X + i * IN, Y1);
        for (int k = 0; k < OUT; k++) {
            double r = fabs((double)Y1[k] - Y64[i * OUT + k]) / (1.0 + fabs(Y64[i * OUT + k]));
            if (!(r <= worst))
                worst = r != r ? INFINITY : r;
        }
    }
    printf("    d against e: largest relative difference %.3g over %d examples\n", worst, N);
    check(worst <= 1e-5, "d predicts one example at a time what e does for 64 (1e-5)");

    /* so that the exact comparisons can fail: other weights give other bits */
    check(nn_load(a_model(na), argv[2]) == 0, "a: nn_load of e's file");
    a_forward(na, X, Y8a);
    check(memcmp(Y8a, Y8b, sizeof Y8a) != 0, "control: a with e's weights differs from b");

    a_destroy(na);
    b_destroy(nb);
    c_destroy(nc);
    f_destroy(nf);
    e_destroy(ne);
    d_destroy(nd);
    return failed;
}
