/* Uses the network that nngen generated from net.yaml: fits y = sin(sum of
 * the inputs) for a few Adam steps, checks that the loss went down and that
 * the forward output is finite, then saves the weights and loads them back.
 * Exit status 0 when all is well. */
#include <math.h>
#include <stdio.h>

#include "net.h"

#define STEPS 50

static float x[reg_BATCH * reg_IN_SIZE];
static float target[reg_BATCH * reg_OUT_SIZE];
static float out[reg_BATCH * reg_OUT_SIZE];

/* A small deterministic generator, so the data are the same everywhere. */
static uint32_t lcg_state = 2024u;
static float uniform01(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)(lcg_state >> 8) / 16777216.0f;
}

static void make_data(void)
{
    for (int i = 0; i < reg_BATCH; i++) {
        float s = 0.0f;
        for (int j = 0; j < reg_IN_SIZE; j++) {
            float v = uniform01() - 0.5f;
            x[i * reg_IN_SIZE + j] = v;
            s += v;
        }
        target[i] = sinf(s);
    }
}

int main(int argc, char **argv)
{
    const char *weights = argc > 1 ? argv[1] : "reg.safetensors";
    reg *net = reg_create();
    if (!net) {
        fprintf(stderr, "reg_create: out of memory\n");
        return 1;
    }
    reg_init(net, reg_SEED);
    nn_model *model = reg_model(net);
    nn_print_model(stdout, model);

    make_data();
    float first = reg_loss(net, x, target);
    for (int step = 0; step < STEPS; step++)
        reg_train_step(net, x, target);
    float last = reg_loss(net, x, target);
    printf("loss before %.6f, after %d steps %.6f\n", first, STEPS, last);

    int ok = 1;
    if (!isfinite(first) || !isfinite(last) || !(last < first)) {
        fprintf(stderr, "FAIL: the loss did not decrease\n");
        ok = 0;
    }

    reg_forward(net, x, out);
    for (int i = 0; i < reg_BATCH * reg_OUT_SIZE; i++)
        if (!isfinite(out[i])) {
            fprintf(stderr, "FAIL: forward output [%d] is %f\n", i, out[i]);
            ok = 0;
        }

    /* The trained weights survive a save and a load into a fresh instance. */
    reg *copy = reg_create();
    if (!copy || nn_save(model, weights) != 0 || nn_load(reg_model(copy), weights) != 0) {
        fprintf(stderr, "FAIL: save/load: %s\n", copy ? nn_error() : "out of memory");
        ok = 0;
    } else {
        float again = reg_loss(copy, x, target);
        printf("loss of the reloaded copy %.6f\n", again);
        if (again != last) {
            fprintf(stderr, "FAIL: the reloaded copy gives a different loss\n");
            ok = 0;
        }
    }
    remove(weights);

    reg_destroy(copy);
    reg_destroy(net);
    puts(ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
