/* The chapter "Parameter management" (Dive into Deep Learning, 5.2), run
 * with nngen: every network comes from specs/d2l/, compiled by nngen at
 * build time; this program prints, section by section, what the chapter's
 * Python prints.
 *
 * One generator plays the role of torch's global one: seeded with 0 (like
 * torch.manual_seed(0)), each network is constructed from it (P_init_rng)
 * and the input X is drawn from it (torch.rand), in the chapter's order.
 * tests/demo/d2l_reference.py runs the chapter's code in PyTorch in the
 * same order and the test suite checks that both print the same text.
 *
 * Differences from the notebook, by design: C tensors carry no autograd
 * history, so outputs print without ", grad_fn=<...>"; and where the
 * chapter re-initializes one net several times, each initialization here is
 * its own spec whose instance is constructed fresh before its init rules run.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "init_constant.h"
#include "init_normal.h"
#include "init_xavier42.h"
#include "mlp.h"
#include "my_init_net.h"
#include "rgnet.h"
#include "tied.h"
#include "untied.h"

static void section(const char *title)
{
    printf("\n### %s\n", title);
}

/* A view of row i of a 2-D tensor (t[i]). */
static nn_tensor row(const nn_tensor *t, int64_t i)
{
    nn_tensor v = *t;
    v.ndim = t->ndim - 1;
    memmove(v.shape, t->shape + 1, sizeof(int64_t) * (NN_MAX_DIM - 1));
    v.shape[NN_MAX_DIM - 1] = 0;
    v.numel = t->numel / t->shape[0];
    v.data = t->data + i * v.numel;
    v.grad = t->grad ? t->grad + i * v.numel : NULL;
    return v;
}

/* The first n rows of a 2-D tensor (t[:n]). */
static nn_tensor rows(const nn_tensor *t, int64_t n)
{
    nn_tensor v = *t;
    v.shape[0] = n;
    v.numel = n * (t->numel / t->shape[0]);
    return v;
}

/* element i as a 0-dim tensor (t[i]) */
static nn_tensor elem(const nn_tensor *t, int64_t i)
{
    nn_tensor v = *t;
    v.ndim = 0;
    memset(v.shape, 0, sizeof v.shape);
    v.numel = 1;
    v.data = t->data + i;
    return v;
}

static nn_tensor wrap(float *data, int ndim, int64_t d0, int64_t d1)
{
    nn_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = ndim;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.numel = ndim == 1 ? d0 : d0 * d1;
    t.data = data;
    return t;
}

/* print((a == b)) for two 1-D tensors: a bool tensor */
static void print_equal(const nn_tensor *a, const nn_tensor *b)
{
    printf("tensor([");
    for (int64_t i = 0; i < a->numel; i++)
        printf("%s%s", i ? ", " : "", a->data[i] == b->data[i] ? "True" : "False");
    printf("])\n");
}

/* print((t1, t2)): a tuple shows the repr of each element */
static void print_pair(const nn_tensor *a, const nn_tensor *b)
{
    char sa[1024], sb[1024];
    nn_format_tensor(sa, sizeof sa, a);
    nn_format_tensor(sb, sizeof sb, b);
    printf("(%s, %s)\n", sa, sb);
}

/* print(t); the runtime's printers end their text with a newline, as print() does */
static void print_tensor(const nn_tensor *t)
{
    nn_print_tensor(stdout, t);
}

/* The chapter's my_init, called by the generated init of specs/d2l/my_init.yaml
 * for each Linear weight (custom: my_init). */
void my_init(nn_tensor *param, nn_rng *rng)
{
    const char *local = strrchr(param->name, '.');
    printf("Init  %s torch.Size([%lld, %lld])\n", local ? local + 1 : param->name,
           (long long)param->shape[0], (long long)param->shape[1]);
    nn_init_uniform(param, rng, -10.0f, 10.0f);
    nn_init_zero_abs_below(param, 5.0f);
}

int main(void)
{
    nn_rng g;
    nn_rng_seed(&g, 0); /* torch.manual_seed(0) */

    section("5.2 net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)); "
            "X = torch.rand(size=(2, 4)); net(X)");
    mlp *net = mlp_create();
    if (!net)
        return 1;
    mlp_init_rng(net, &g);
    float x[mlp_BATCH * mlp_IN_SIZE], y[mlp_BATCH * mlp_OUT_SIZE];
    nn_tensor X = wrap(x, 2, mlp_BATCH, mlp_IN_SIZE);
    nn_init_uniform(&X, &g, 0.0f, 1.0f);
    mlp_forward(net, x, y);
    nn_tensor Y = wrap(y, 2, mlp_BATCH, mlp_OUT_SIZE);
    print_tensor(&Y);

    nn_model *m = mlp_model(net);
    const nn_module *root = nn_model_root(m);
    section("5.2.1 print(len(net))");
    printf("%zu\n", nn_module_child_count(root));

    section("5.2.1 print(net[1]); print(net[1].state_dict())");
    nn_print_module(stdout, nn_module_child(root, 1));
    nn_print_module_state_dict(stdout, m, nn_module_child(root, 1));

    section("5.2.1 print(net[2].state_dict())");
    nn_print_module_state_dict(stdout, m, nn_module_child(root, 2));

    section("5.2.1.1 print(net[2].bias); print(net[2].bias.data)");
    nn_tensor *bias = nn_module_find_param(m, nn_module_child(root, 2), "bias");
    nn_print_param(stdout, bias);
    print_tensor(bias);

    section("5.2.1.1 net[2].weight.grad == None");
    printf("%s\n", nn_find(m, "2.weight")->grad == NULL ? "True" : "False");

    section("5.2.1.2 named_parameters() of net[0], then of net");
    nn_print_named_shapes(stdout, m, nn_module_child(root, 0));
    nn_print_named_shapes(stdout, m, root);

    section("5.2.1.2 net.state_dict()['2.bias'].data");
    print_tensor(nn_find(m, "2.bias"));

    section("5.2.1.3 rgnet = nn.Sequential(block2(), nn.Linear(4, 1)); rgnet(X)");
    rgnet *rg = rgnet_create();
    if (!rg)
        return 1;
    rgnet_init_rng(rg, &g);
    float ry[rgnet_BATCH * rgnet_OUT_SIZE];
    rgnet_forward(rg, x, ry);
    nn_tensor RY = wrap(ry, 2, rgnet_BATCH, rgnet_OUT_SIZE);
    print_tensor(&RY);

    section("5.2.1.3 print(rgnet)");
    nn_model *rm = rgnet_model(rg);
    nn_print_model(stdout, rm);

    section("5.2.1.3 rgnet[0][1][0].bias.data");
    const nn_module *r010 =
        nn_module_child(nn_module_child(nn_module_child(nn_model_root(rm), 0), 1), 0);
    print_tensor(nn_module_find_param(rm, r010, "bias"));

    section("5.2.2.1 net.apply(init_normal); net[0].weight.data[0], net[0].bias.data[0]");
    init_normal *n1 = init_normal_create();
    if (!n1)
        return 1;
    init_normal_init_rng(n1, &g);
    {
        nn_model *mm = init_normal_model(n1);
        nn_tensor w0 = row(nn_find(mm, "0.weight"), 0), b0 = elem(nn_find(mm, "0.bias"), 0);
        print_pair(&w0, &b0);
    }

    section("5.2.2.1 net.apply(init_constant); net[0].weight.data[0], net[0].bias.data[0]");
    init_constant *n2 = init_constant_create();
    if (!n2)
        return 1;
    init_constant_init_rng(n2, &g);
    {
        nn_model *mm = init_constant_model(n2);
        nn_tensor w0 = row(nn_find(mm, "0.weight"), 0), b0 = elem(nn_find(mm, "0.bias"), 0);
        print_pair(&w0, &b0);
    }

    section("5.2.2.1 net[0].apply(xavier); net[2].apply(init_42); print(net[0].weight.data); "
            "print(net[2].weight.data)");
    init_xavier42 *n3 = init_xavier42_create();
    if (!n3)
        return 1;
    init_xavier42_init_rng(n3, &g);
    print_tensor(nn_find(init_xavier42_model(n3), "0.weight"));
    print_tensor(nn_find(init_xavier42_model(n3), "2.weight"));

    section("5.2.2.2 net.apply(my_init); net[0].weight[:2]");
    my_init_net *n4 = my_init_net_create();
    if (!n4)
        return 1;
    my_init_net_init_rng(n4, &g);
    {
        nn_tensor top = rows(nn_find(my_init_net_model(n4), "0.weight"), 2);
        print_tensor(&top);
    }

    section("5.2.3 shared = nn.Linear(8, 8); net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), "
            "shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1)); net(X)");
    tied *tn = tied_create();
    if (!tn)
        return 1;
    tied_init_rng(tn, &g);
    float ty[tied_BATCH * tied_OUT_SIZE];
    tied_forward(tn, x, ty);
    nn_tensor TY = wrap(ty, 2, tied_BATCH, tied_OUT_SIZE);
    print_tensor(&TY);

    section("5.2.3 net[2].weight.data[0] == net[4].weight.data[0], before and after "
            "net[2].weight.data[0, 0] = 100; print(net[2].weight.data[0])");
    nn_model *tm = tied_model(tn);
    nn_tensor *w2 = nn_find(tm, "2.weight"), *w4 = nn_find(tm, "4.weight");
    nn_tensor w2r = row(w2, 0), w4r = row(w4, 0);
    print_equal(&w2r, &w4r);
    w2->data[0] = 100.0f;
    w4r = row(w4, 0);
    print_equal(&w2r, &w4r);
    print_tensor(&w2r);

    section("5.2.3 the gradients of the two uses add up: net(X).sum().backward()");
    /* an untied twin with the same values: layers 2 and 4 are separate */
    untied *un = untied_create();
    if (!un)
        return 1;
    nn_model *um = untied_model(un);
    static const char *const keys[] = {"0.weight", "0.bias", "2.weight", "2.bias",
                                       "6.weight", "6.bias"};
    for (int i = 0; i < 6; i++) {
        nn_tensor *src = nn_find(tm, keys[i]);
        memcpy(nn_find(um, keys[i])->data, src->data, sizeof(float) * (size_t)src->numel);
    }
    memcpy(nn_find(um, "4.weight")->data, w2->data, sizeof(float) * (size_t)w2->numel);
    memcpy(nn_find(um, "4.bias")->data, nn_find(tm, "2.bias")->data, sizeof(float) * 8);
    float ones[tied_BATCH * tied_OUT_SIZE], uy[untied_BATCH * untied_OUT_SIZE];
    for (int i = 0; i < tied_BATCH * tied_OUT_SIZE; i++)
        ones[i] = 1.0f;
    tied_forward(tn, x, ty);
    tied_backward(tn, ones, NULL);
    untied_forward(un, x, uy);
    untied_backward(un, ones, NULL);
    printf("net[2].weight.grad is net[4].weight.grad: %s\n",
           nn_find(tm, "2.weight")->grad == nn_find(tm, "4.weight")->grad ? "True" : "False");
    printf("tied net[2].weight.grad[0]:\n");
    nn_tensor g2 = row(nn_find(tm, "2.weight"), 0);
    g2.data = g2.grad;
    print_tensor(&g2);
    printf("untied net[2].weight.grad[0] + net[4].weight.grad[0]:\n");
    float sum[8];
    const nn_tensor *u2 = nn_find(um, "2.weight"), *u4 = nn_find(um, "4.weight");
    float maxdiff = 0.0f;
    for (int i = 0; i < 8; i++) {
        sum[i] = u2->grad[i] + u4->grad[i];
        float d = fabsf(sum[i] - g2.data[i]);
        if (d > maxdiff)
            maxdiff = d;
    }
    nn_tensor S = wrap(sum, 1, 8, 0);
    print_tensor(&S);
    printf("equal (to 1e-6): %s\n", maxdiff <= 1e-6f ? "True" : "False");

    mlp_destroy(net);
    rgnet_destroy(rg);
    init_normal_destroy(n1);
    init_constant_destroy(n2);
    init_xavier42_destroy(n3);
    my_init_net_destroy(n4);
    tied_destroy(tn);
    untied_destroy(un);
    return 0;
}
