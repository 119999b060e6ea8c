/* Prints P_BYTES and the forward output (hex floats) of a generated network
 * after P_init(SEED) on an input drawn from a fixed generator.  Compiled
 * with -DNET_H='"x.h"' -DNET=name, and for a spec with input_dtype: int32
 * (SPEC 1.2.4: P_forward takes const int32_t *x) also -DNET_INPUT_INT32
 * -DNET_NUM_EMBEDDINGS=N: x then holds indices in [0, N), N the first
 * embedding's num.  A P_init or forward that sets nn_error(), or a forward
 * that writes a NaN (the bad-index answer, or a broken kernel: the inputs
 * are all valid), is a failure: exit status 2, the reason on stderr. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include NET_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define P(s) CAT(NET, s)

#ifdef NET_INPUT_INT32
#ifndef NET_NUM_EMBEDDINGS
#error "NET_INPUT_INT32 needs NET_NUM_EMBEDDINGS (the first embedding's num)"
#endif
typedef int32_t in_t;
#else
typedef float in_t;
#endif

int main(int argc, char **argv)
{
    static in_t x[P(_BATCH) * P(_IN_SIZE)];
    static float y[P(_BATCH) * P(_OUT_SIZE)];
    nn_rng g;
    P() *net = P(_create)();
    if (!net)
        return 1;
    P(_init)(net, argc > 1 ? strtoull(argv[1], NULL, 10) : 0);
    if (nn_error()[0]) {
        fprintf(stderr, "P_init set nn_error(): %s\n", nn_error());
        return 2;
    }
    nn_rng_seed(&g, 99);
#ifdef NET_INPUT_INT32
    for (int i = 0; i < P(_BATCH) * P(_IN_SIZE); i++)
        x[i] = (int32_t)(nn_rng_u32(&g) % (uint32_t)(NET_NUM_EMBEDDINGS));
#else
    {
        nn_tensor t = {0};
        t.ndim = 1;
        t.shape[0] = t.numel = P(_BATCH) * P(_IN_SIZE);
        t.data = x;
        nn_init_uniform(&t, &g, -2.0f, 2.0f);
    }
#endif
    printf("bytes %lu\n", (unsigned long)P(_BYTES));
    for (int rep = 0; rep < 2; rep++) { /* twice: buffers reused must not leak state */
        P(_forward)(net, x, y);
        if (nn_error()[0]) {
            fprintf(stderr, "forward %d set nn_error(): %s\n", rep, nn_error());
            return 2;
        }
        for (int i = 0; i < P(_BATCH) * P(_OUT_SIZE); i++) {
            if (isnan(y[i])) {
                fprintf(stderr, "forward %d: y[%d] is NaN (valid input)\n", rep, i);
                return 2;
            }
            printf("%a\n", (double)y[i]);
        }
    }
    P(_destroy)(net);
    return 0;
}
