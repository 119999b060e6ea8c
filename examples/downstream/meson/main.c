/* Uses the network that nngen generated from net.yaml: trains it for a few
 * steps on synthetic data and checks that the loss went down and that the
 * forward output is finite.  Exit status 0 when all is well. */
#include <math.h>
#include <stdio.h>

#include "net.h"

#define STEPS 30

static float x[clf_BATCH * clf_IN_SIZE];
static int32_t label[clf_BATCH];
static float out[clf_BATCH * clf_OUT_SIZE];

/* A small deterministic generator, so the data are the same everywhere. */
static uint32_t lcg_state = 12345u;
static float uniform01(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)(lcg_state >> 8) / 16777216.0f;
}

/* Example i belongs to class i % OUT_SIZE: a bump on that class's slice of
 * the input, plus noise. */
static void make_data(void)
{
    const int per_class = clf_IN_SIZE / clf_OUT_SIZE;
    for (int i = 0; i < clf_BATCH; i++) {
        label[i] = i % clf_OUT_SIZE;
        for (int j = 0; j < clf_IN_SIZE; j++) {
            float v = uniform01() - 0.5f;
            if (j / per_class == label[i])
                v += 1.0f;
            x[i * clf_IN_SIZE + j] = v;
        }
    }
}

int main(void)
{
    clf *net = clf_create();
    if (!net) {
        fprintf(stderr, "clf_create: out of memory\n");
        return 1;
    }
    clf_init(net, clf_SEED);
    nn_model *model = clf_model(net);
    nn_print_model(stdout, model);
    printf("%zu parameter tensors\n", nn_param_count(model));

    make_data();
    float first = clf_loss(net, x, label);
    float last = first;
    for (int step = 0; step < STEPS; step++)
        last = clf_train_step(net, x, label);
    last = clf_loss(net, x, label);
    printf("loss before %.6f, after %d steps %.6f\n", first, STEPS, last);

    int ok = 1;
    if (!isfinite(first) || !isfinite(last) || !(last < first)) {
        fprintf(stderr, "FAIL: the loss did not decrease\n");
        ok = 0;
    }

    clf_forward(net, x, out);
    int correct = 0;
    for (int i = 0; i < clf_BATCH; i++) {
        int best = 0;
        for (int k = 0; k < clf_OUT_SIZE; k++) {
            float v = out[i * clf_OUT_SIZE + k];
            if (!isfinite(v)) {
                fprintf(stderr, "FAIL: forward output [%d][%d] is %f\n", i, k, v);
                ok = 0;
            }
            if (v > out[i * clf_OUT_SIZE + best])
                best = k;
        }
        correct += best == label[i];
    }
    printf("training accuracy %d/%d\n", correct, clf_BATCH);

    clf_destroy(net);
    puts(ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
