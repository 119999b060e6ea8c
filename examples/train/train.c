/* Training with generated code, then keeping the parameters.
 *
 * 1. Linear regression on the textbook's synthetic data (d2l 3.2/3.3):
 *    y = X w + b + noise with w = [2, -3.4], b = 4.2, noise N(0, 0.01^2);
 *    specs/train/linreg.yaml, minibatch SGD, mse.
 * 2. Two classes (two Gaussian blobs) with an MLP, cross_entropy and Adam
 *    (examples/train/twoclass.yaml).
 * Each prints its loss falling, saves the parameters as safetensors, loads
 * them into a fresh instance and checks that the predictions are identical.
 * Exits non-zero if the loss does not fall or a reload differs.
 *
 * usage: train [DIR]   (where the .safetensors files go; default ".")
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "linreg.h"
#include "twoclass.h"

#define N_LIN 1000
#define N_CLS 512

static float lin_x[N_LIN][2], lin_y[N_LIN];
static float cls_x[N_CLS][2];
static int32_t cls_y[N_CLS];

static int same_predictions(const float *a, const float *b, int n)
{
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

static int run_linreg(const char *dir, nn_rng *g)
{
    const float true_w[2] = {2.0f, -3.4f}, true_b = 4.2f;
    for (int i = 0; i < N_LIN; i++) {
        lin_x[i][0] = (float)nn_rng_normal(g, 0, 1);
        lin_x[i][1] = (float)nn_rng_normal(g, 0, 1);
        lin_y[i] = true_w[0] * lin_x[i][0] + true_w[1] * lin_x[i][1] + true_b +
                   (float)nn_rng_normal(g, 0, 0.01);
    }
    linreg *net = linreg_create();
    if (!net)
        return 1;
    linreg_init(net, linreg_SEED);
    printf("linear regression: y = Xw + b + noise, %d examples, batch %d, SGD lr 0.03\n", N_LIN,
           linreg_BATCH);
    float first = 0, last = 0;
    for (int epoch = 0; epoch <= 3; epoch++) {
        if (epoch > 0)
            for (int i = 0; i + linreg_BATCH <= N_LIN; i += linreg_BATCH)
                linreg_train_step(net, lin_x[i], &lin_y[i]);
        double total = 0;
        for (int i = 0; i + linreg_BATCH <= N_LIN; i += linreg_BATCH)
            total += linreg_loss(net, lin_x[i], &lin_y[i]);
        float loss = (float)(total / (N_LIN / linreg_BATCH));
        if (epoch == 0)
            printf("  before training, loss %f\n", loss);
        else
            printf("  epoch %d, loss %f\n", epoch, loss);
        if (epoch == 0)
            first = loss;
        last = loss;
    }
    nn_model *m = linreg_model(net);
    float w[2], b[1];
    memcpy(w, nn_find(m, "0.weight")->data, sizeof w);
    memcpy(b, nn_find(m, "0.bias")->data, sizeof b);
    printf("  learned w = [%.4f, %.4f] (true [2, -3.4]), b = %.4f (true 4.2)\n", w[0], w[1], b[0]);

    char path[1024];
    snprintf(path, sizeof path, "%s/linreg.safetensors", dir);
    if (nn_save(m, path) != 0) {
        fprintf(stderr, "save failed: %s\n", nn_error());
        return 1;
    }
    linreg *fresh = linreg_create();
    if (!fresh)
        return 1;
    linreg_init(fresh, 12345); /* different values, then replaced by the file */
    if (nn_load(linreg_model(fresh), path) != 0) {
        fprintf(stderr, "load failed: %s\n", nn_error());
        return 1;
    }
    float y1[linreg_BATCH], y2[linreg_BATCH];
    linreg_forward(net, lin_x[0], y1);
    linreg_forward(fresh, lin_x[0], y2);
    int same = same_predictions(y1, y2, linreg_BATCH);
    printf("  saved %s; a fresh instance loaded from it predicts %s\n", path,
           same ? "identically" : "DIFFERENTLY");
    linreg_destroy(net);
    linreg_destroy(fresh);
    if (!(last < first * 0.01f) || fabsf(w[0] - 2.0f) > 0.01f || fabsf(w[1] + 3.4f) > 0.01f ||
        fabsf(b[0] - 4.2f) > 0.01f) {
        fprintf(stderr, "linear regression did not converge\n");
        return 1;
    }
    return same ? 0 : 1;
}

static int run_twoclass(const char *dir, nn_rng *g)
{
    for (int i = 0; i < N_CLS; i++) {
        int c = i & 1;
        cls_y[i] = c;
        cls_x[i][0] = (float)nn_rng_normal(g, c ? 1.5 : -1.5, 1.0);
        cls_x[i][1] = (float)nn_rng_normal(g, c ? -1.0 : 1.0, 1.0);
    }
    twoclass *net = twoclass_create();
    if (!net)
        return 1;
    twoclass_init(net, twoclass_SEED);
    printf("two classes: %d examples, MLP 2-16-2, cross_entropy, Adam lr 0.01\n", N_CLS);
    float first = 0, last = 0;
    for (int epoch = 0; epoch < 10; epoch++) {
        double total = 0;
        int nb = 0;
        for (int i = 0; i + twoclass_BATCH <= N_CLS; i += twoclass_BATCH, nb++)
            total += twoclass_train_step(net, cls_x[i], &cls_y[i]);
        float loss = (float)(total / nb);
        if (epoch == 0)
            first = loss;
        last = loss;
        if (epoch % 3 == 0 || epoch == 9)
            printf("  epoch %d, mean train-step loss %f\n", epoch + 1, loss);
    }
    int correct = 0;
    float out[twoclass_BATCH * twoclass_OUT_SIZE];
    for (int i = 0; i + twoclass_BATCH <= N_CLS; i += twoclass_BATCH) {
        twoclass_forward(net, cls_x[i], out);
        for (int k = 0; k < twoclass_BATCH; k++)
            correct += (out[2 * k + 1] > out[2 * k]) == (cls_y[i + k] == 1);
    }
    printf("  accuracy %.1f%%\n", 100.0 * correct / N_CLS);

    char path[1024];
    snprintf(path, sizeof path, "%s/twoclass.safetensors", dir);
    if (nn_save(twoclass_model(net), path) != 0) {
        fprintf(stderr, "save failed: %s\n", nn_error());
        return 1;
    }
    twoclass *fresh = twoclass_create();
    if (!fresh)
        return 1;
    if (nn_load(twoclass_model(fresh), path) != 0) {
        fprintf(stderr, "load failed: %s\n", nn_error());
        return 1;
    }
    float o2[twoclass_BATCH * twoclass_OUT_SIZE];
    twoclass_forward(net, cls_x[0], out);
    twoclass_forward(fresh, cls_x[0], o2);
    int same = same_predictions(out, o2, twoclass_BATCH * twoclass_OUT_SIZE);
    printf("  saved %s; a fresh instance loaded from it predicts %s\n", path,
           same ? "identically" : "DIFFERENTLY");
    twoclass_destroy(net);
    twoclass_destroy(fresh);
    if (!(last < first * 0.5f) || correct < N_CLS * 9 / 10) {
        fprintf(stderr, "the classifier did not learn\n");
        return 1;
    }
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    nn_rng g;
    nn_rng_seed(&g, 42);
    int bad = run_linreg(dir, &g);
    bad |= run_twoclass(dir, &g);
    return bad;
}
