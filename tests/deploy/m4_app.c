/* The smallest program around a generated --no-blas --inference network,
 * as on a microcontroller (tests/deploy/cross_build.py): the instance in a
 * static buffer (P_place, no malloc), P_init, one forward.  With
 * -DWITH_WEIGHTS=1 the weights also go out and back through memory:
 * nn_save_to (to a writer, as a UART or flash driver would take them) and
 * nn_load_mem (from the bytes kept), which is what a board that receives or
 * stores its weights adds.  With -DBAKED=1 (a network compiled with
 * --weights): no init, the weights being const data in flash.  Compiled
 * with -DNET_H='"net.h"' -DNET=name. */
#include <stddef.h>
#include <string.h>

#include NET_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define P(s) CAT(NET, s)

#if defined(__GNUC__)
#define ALIGN64 __attribute__((aligned(64)))
#else
#define ALIGN64
#endif

static unsigned char mem[P(_BYTES)] ALIGN64;
static float x[P(_BATCH) * P(_IN_SIZE)], y[P(_BATCH) * P(_OUT_SIZE)];
volatile float sink;

#if WITH_WEIGHTS
static unsigned char file[65536];
static size_t file_len;

static int keep(void *ctx, const void *data, size_t n)
{
    (void)ctx;
    if (n > sizeof file - file_len)
        return -1;
    memcpy(file + file_len, data, n);
    file_len += n;
    return 0;
}
#endif

int main(void)
{
    P() *net = P(_place)(mem);
    int i;
#if !BAKED /* nngen --weights: the weights are in flash, nothing to construct */
    P(_init)(net, 0);
#endif
    for (i = 0; i < P(_BATCH) * P(_IN_SIZE); i++)
        x[i] = (float)(i % 17) / 8.0f - 1.0f;
#if WITH_WEIGHTS
    if (nn_save_to(P(_model)(net), keep, NULL) != 0 ||
        nn_load_mem(P(_model)(net), file, file_len) != 0)
        return 1;
#endif
    P(_forward)(net, x, y);
    for (i = 0; i < P(_BATCH) * P(_OUT_SIZE); i++)
        sink = y[i];
    return 0;
}
