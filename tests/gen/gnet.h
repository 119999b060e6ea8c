/* tests/gen: a type-erased view of one generated network, so the same test
 * code runs over every network of tests/gen/cases.py.  GNET(P) defines the
 * thin wrappers and a `static const gnet P_gnet`; GTRAIN_MSE(P) / GTRAIN_CE(P)
 * also wrap P_loss and P_train_step (targets float / int32_t labels) as
 * `static const gtrain P_gtrain`.
 */
#ifndef GEN_GNET_H
#define GEN_GNET_H

#include <stddef.h>
#include <stdint.h>

#include <nngen/rt.h>

typedef struct gnet {
    const char *name;
    size_t bytes;                 /* P_BYTES */
    int batch, in_size, out_size; /* P_BATCH, P_IN_SIZE, P_OUT_SIZE */
    void *(*create)(void);
    void *(*place)(void *mem);
    void (*destroy)(void *net);
    void (*init)(void *net, uint64_t seed);
    void (*forward)(void *net, const float *x, float *y);
    void (*backward)(void *net, const float *dy, float *dx);
    void (*zero_grad)(void *net);
    nn_model *(*model)(void *net);
} gnet;

typedef struct gtrain {
    const gnet *g;
    int ce;                       /* 1: cross_entropy (int32_t labels); 0: mse (float) */
    float (*loss)(void *net, const float *x, const void *target);
    float (*train_step)(void *net, const float *x, const void *target);
} gtrain;

#define GNET_WITH_INIT(P, INIT)                                                                  \
    static void *P##_g_create(void) { return P##_create(); }                             \
    static void *P##_g_place(void *mem) { return P##_place(mem); }                       \
    static void P##_g_destroy(void *n) { P##_destroy((P *)n); }                          \
    static void P##_g_forward(void *n, const float *x, float *y)                         \
    {                                                                                    \
        P##_forward((P *)n, x, y);                                                       \
    }                                                                                    \
    static void P##_g_backward(void *n, const float *dy, float *dx)                      \
    {                                                                                    \
        P##_backward((P *)n, dy, dx);                                                    \
    }                                                                                    \
    static void P##_g_zero_grad(void *n) { P##_zero_grad((P *)n); }                      \
    static nn_model *P##_g_model(void *n) { return P##_model((P *)n); }                  \
    static const gnet P##_gnet = {#P, P##_BYTES, P##_BATCH, P##_IN_SIZE, P##_OUT_SIZE,   \
                                  P##_g_create, P##_g_place, P##_g_destroy, INIT,        \
                                  P##_g_forward, P##_g_backward, P##_g_zero_grad,        \
                                  P##_g_model}

#define GNET(P)                                                                          \
    static void P##_g_init(void *n, uint64_t s) { P##_init((P *)n, s); }                 \
    GNET_WITH_INIT(P, P##_g_init)

/* GNET_EVAL(P): the same, in eval mode: init also calls P_set_training(net, 0) */
#define GNET_EVAL(P)                                                                     \
    static void P##_g_init_eval(void *n, uint64_t s)                                     \
    {                                                                                    \
        P##_init((P *)n, s);                                                             \
        P##_set_training((P *)n, 0);                                                     \
    }                                                                                    \
    GNET_WITH_INIT(P, P##_g_init_eval)

#define GTRAIN(P, T, CE)                                                                 \
    GNET(P);                                                                             \
    static float P##_g_loss(void *n, const float *x, const void *t)                      \
    {                                                                                    \
        return P##_loss((P *)n, x, (const T *)t);                                        \
    }                                                                                    \
    static float P##_g_train_step(void *n, const float *x, const void *t)                \
    {                                                                                    \
        return P##_train_step((P *)n, x, (const T *)t);                                  \
    }                                                                                    \
    static const gtrain P##_gtrain = {&P##_gnet, CE, P##_g_loss, P##_g_train_step}
#define GTRAIN_MSE(P) GTRAIN(P, float, 0)
#define GTRAIN_CE(P) GTRAIN(P, int32_t, 1)

/* ---- test random numbers (independent of the runtime's generator) ---- */
typedef struct trng {
    uint64_t s;
} trng;

static inline uint64_t trng_next(trng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [a, b) */
static inline double trng_uniform(trng *r, double a, double b)
{
    return a + (b - a) * (double)(trng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline int trng_below(trng *r, int n)
{
    return (int)(trng_next(r) % (uint64_t)n);
}

#endif
