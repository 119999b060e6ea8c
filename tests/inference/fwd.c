/* Prints P_BYTES and the forward output (hex floats) of a generated network
 * after P_init(SEED) on an input drawn from a fixed generator.  Compiled
 * with -DNET_H='"x.h"' -DNET=name. */
#include <stdio.h>
#include <stdlib.h>

#include NET_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define P(s) CAT(NET, s)

int main(int argc, char **argv)
{
    static float x[P(_BATCH) * P(_IN_SIZE)], y[P(_BATCH) * P(_OUT_SIZE)];
    nn_rng g;
    nn_tensor t = {0};
    P() *net = P(_create)();
    if (!net)
        return 1;
    P(_init)(net, argc > 1 ? strtoull(argv[1], NULL, 10) : 0);
    nn_rng_seed(&g, 99);
    t.ndim = 1;
    t.shape[0] = t.numel = P(_BATCH) * P(_IN_SIZE);
    t.data = x;
    nn_init_uniform(&t, &g, -2.0f, 2.0f);
    printf("bytes %lu\n", (unsigned long)P(_BYTES));
    for (int rep = 0; rep < 2; rep++) { /* twice: buffers reused must not leak state */
        P(_forward)(net, x, y);
        for (int i = 0; i < P(_BATCH) * P(_OUT_SIZE); i++)
            printf("%a\n", (double)y[i]);
    }
    P(_destroy)(net);
    return 0;
}
