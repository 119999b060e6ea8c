/* tests/gen: the generated code allocates nothing except in P_create
 * (docs/api.md).  Linked with
 *     -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free
 * so every call to these from the objects of this link (this test, the
 * generated files, the static nngen-rt, libcheck) goes through the counting
 * wrappers below, which forward to __real_* (libc's allocator, or the
 * sanitizer's under -Db_sanitize).  Shared libraries are not affected: what
 * OpenBLAS allocates inside cblas_sgemm (buffers and threads at first use)
 * is not seen, and is none of the generated code's doing; each operation
 * is also run once before counting, as a warm-up.
 *
 * Counted: P_forward, P_backward, P_zero_grad, P_loss, P_train_step (and
 * P_init, P_place, which allocate nothing either); P_create makes exactly
 * one allocation and P_destroy frees it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnet.h"

#include "chain_b.h"
#include "frozen.h"
#include "loss_mse.h"
#include "tied.h"
#include "train_b.h"

GNET(chain_b);
GNET(tied);
GNET(frozen);
GTRAIN_CE(train_b);
GTRAIN_MSE(loss_mse);

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static volatile int counting;
static volatile long n_malloc, n_calloc, n_realloc, n_free;

void *__wrap_malloc(size_t n)
{
    if (counting)
        n_malloc++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (counting)
        n_calloc++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (counting)
        n_realloc++;
    return __real_realloc(p, n);
}

void __wrap_free(void *p)
{
    if (counting)
        n_free++;
    __real_free(p);
}

static void count_start(void)
{
    n_malloc = n_calloc = n_realloc = n_free = 0;
    counting = 1;
}

static long count_stop(void)
{
    counting = 0;
    return n_malloc + n_calloc + n_realloc + n_free;
}

#define NO_ALLOC(what, reps, stmt)                                                       \
    do {                                                                                 \
        count_start();                                                                   \
        for (int rep_ = 0; rep_ < (reps); rep_++) {                                      \
            stmt;                                                                        \
        }                                                                                \
        long n_ = count_stop();                                                          \
        ck_assert_msg(n_ == 0, "%s: %s made %ld allocator calls (malloc %ld, calloc %ld, " \
                      "realloc %ld, free %ld)", g->name, what, n_, n_malloc, n_calloc,   \
                      n_realloc, n_free);                                                \
    } while (0)

/* the wrappers are in effect (else the test would prove nothing) */
START_TEST(wrap_works)
{
    /* through volatile pointers, so that the compiler cannot elide the pair */
    void *(*volatile m)(size_t) = malloc;
    void *(*volatile c)(size_t, size_t) = calloc;
    void *(*volatile re)(void *, size_t) = realloc;
    void (*volatile f)(void *) = free;
    count_start();
    void *p = m(16);
    p = re(p, 32);
    f(p);
    f(c(2, 8));
    count_stop();
    ck_assert_int_eq(n_malloc, 1);
    ck_assert_int_eq(n_realloc, 1);
    ck_assert_int_eq(n_calloc, 1);
    ck_assert_int_eq(n_free, 2);
}
END_TEST

static void check_net(const gnet *g, const gtrain *tr)
{
    trng r = {1};
    int nx = g->batch * g->in_size, ny = g->batch * g->out_size;
    float *x = malloc(sizeof(float) * (size_t)nx), *y = malloc(sizeof(float) * (size_t)ny);
    float *dy = malloc(sizeof(float) * (size_t)ny), *dx = malloc(sizeof(float) * (size_t)nx);
    float *tf = malloc(sizeof(float) * (size_t)ny);
    int32_t *tl = malloc(sizeof(int32_t) * (size_t)g->batch);
    for (int i = 0; i < nx; i++)
        x[i] = (float)trng_uniform(&r, -1, 1);
    for (int i = 0; i < ny; i++)
        dy[i] = (float)trng_uniform(&r, -1, 1), tf[i] = (float)trng_uniform(&r, -1, 1);
    for (int b = 0; b < g->batch; b++)
        tl[b] = trng_below(&r, g->out_size);
    const void *target = tr && tr->ce ? (const void *)tl : (const void *)tf;

    /* P_create: one allocation */
    count_start();
    void *net = g->create();
    count_stop();
    ck_assert_ptr_nonnull(net);
    ck_assert_msg(n_malloc + n_calloc + n_realloc == 1, "%s: P_create made %ld allocations",
                  g->name, n_malloc + n_calloc + n_realloc);

    NO_ALLOC("P_init", 2, g->init(net, 1));
    /* warm-up (OpenBLAS' first use), then count; the first backward also
       attaches the gradients, which allocates nothing either */
    NO_ALLOC("first P_forward", 1, g->forward(net, x, y));
    NO_ALLOC("first P_backward", 1, g->backward(net, dy, dx));
    NO_ALLOC("P_forward", 5, g->forward(net, x, y));
    NO_ALLOC("P_backward", 5, g->backward(net, dy, dx));
    NO_ALLOC("P_backward (dx NULL)", 5, g->backward(net, dy, NULL));
    NO_ALLOC("P_zero_grad", 5, g->zero_grad(net));
    NO_ALLOC("forward + backward", 5, (g->forward(net, x, y), g->backward(net, dy, dx)));
    if (tr) {
        void *fresh = g->create();
        g->init(fresh, 2);
        /* a train step on an instance that never ran backward attaches the grads */
        NO_ALLOC("first P_train_step", 1, (void)tr->train_step(fresh, x, target));
        g->destroy(fresh);
        NO_ALLOC("P_loss", 5, (void)tr->loss(net, x, target));
        NO_ALLOC("P_train_step", 5, (void)tr->train_step(net, x, target));
        if (tr->ce) {
            tl[0] = -1; /* the error path (nn_set_error) allocates nothing either */
            NO_ALLOC("P_train_step (bad label)", 2, (void)tr->train_step(net, x, target));
            NO_ALLOC("P_loss (bad label)", 2, (void)tr->loss(net, x, target));
        }
    }

    /* P_place: nothing */
    void *mem = NULL;
    ck_assert_int_eq(posix_memalign(&mem, 64, g->bytes), 0);
    void *placed = NULL;
    NO_ALLOC("P_place", 1, placed = g->place(mem));
    ck_assert_ptr_eq(placed, mem);
    NO_ALLOC("P_destroy (placed)", 1, g->destroy(placed));
    free(mem);

    /* P_destroy: frees the one allocation */
    count_start();
    g->destroy(net);
    count_stop();
    ck_assert_int_eq(n_free, 1);
    printf("%s: no allocation in forward, backward, zero_grad%s\n", g->name,
           tr ? ", loss, train_step" : "");
    free(x), free(y), free(dy), free(dx), free(tf), free(tl);
}

START_TEST(no_alloc)
{
    check_net(&train_b_gnet, &train_b_gtrain);
    check_net(&loss_mse_gnet, &loss_mse_gtrain);
    check_net(&chain_b_gnet, NULL);
    check_net(&tied_gnet, NULL);
    check_net(&frozen_gnet, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen-noalloc");
    TCase *tc = tcase_create("noalloc");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, wrap_works);
    tcase_add_test(tc, no_alloc);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    /* in this process: no fork, no pipe messages between the counted calls */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
