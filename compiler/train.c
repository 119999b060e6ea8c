/* train.c: the training phase (§1.5): `train:`, its loss and optimizer
 * with torch.optim's defaults and argument checks. */
#include <stdlib.h>
#include <string.h>

#include "phases.h"


void parse_train(program *p, const ynode *n)
{
    expect_kind(n, Y_MAP, "train");
    static const char *const keys[] = {"loss", "optimizer"};
    check_keys(n, keys, 2, "train");
    train_cfg *t = &p->train;
    const ynode *l = map_get(n, "loss");
    if (!l)
        error_at(n->loc, "train needs 'loss' (mse or cross_entropy)");
    const char *ls = get_str(l, "loss");
    static const char *const losses[] = {"mse", "cross_entropy"};
    if (!strcmp(ls, "mse"))
        t->loss = LOSS_MSE;
    else if (!strcmp(ls, "cross_entropy"))
        t->loss = LOSS_CROSS_ENTROPY;
    else
        error_at(l->loc, "unknown loss '%s'%s; expected 'mse' or 'cross_entropy'", ls,
                 did_you_mean(ls, losses, 2));
    if (t->loss == LOSS_CROSS_ENTROPY && p->output.ndim < 2)
        error_at(l->loc, "cross_entropy needs the model's output to be [batch, classes] (or "
                         "[batch, ..., classes]), but it is %s", shape_text(&p->output));
    const ynode *o = map_get(n, "optimizer");
    if (!o)
        error_at(n->loc, "train needs 'optimizer' ({sgd: {lr: 0.1}} or {adam: {}})");
    static const char *const opts[] = {"sgd", "adam"};
    if (o->kind == Y_SCALAR && !is_null(o) && !strcmp(o->str, "sgd"))
        error_at(o->loc, "optimizer must be a mapping like {sgd: {lr: 0.1}} (the optimizer, "
                         "then its settings), got 'sgd': write optimizer: {sgd: {lr: 0.1}} (sgd "
                         "needs lr, the learning rate)");
    if (o->kind == Y_SCALAR && !is_null(o) && !strcmp(o->str, "adam"))
        error_at(o->loc, "optimizer must be a mapping like {adam: {lr: 0.01}} (the optimizer, "
                         "then its settings), got 'adam': write optimizer: {adam: {}} for "
                         "torch's defaults, or optimizer: {adam: {lr: 0.01}}");
    if (o->kind != Y_MAP)
        error_at(o->loc, "optimizer must be a mapping like {sgd: {lr: 0.1}} or {adam: {lr: "
                         "0.01}} (exactly one of 'sgd' or 'adam'), got %s%s", describe(o),
                 o->kind == Y_SCALAR && !is_null(o) ? did_you_mean(o->str, opts, 2) : "");
    if (o->n != 1)
        error_at(o->loc, "optimizer holds exactly one of 'sgd' or 'adam'");
    check_keys(o, opts, 2, "optimizer");
    const ynode *a = o->items[0];
    if (!is_null(a) && a->kind != Y_MAP) {
        int sgd = !strcmp(o->keys[0]->str, "sgd");
        char *end = NULL;
        int num = a->kind == Y_SCALAR && a->str[0] && (strtod(a->str, &end), *end == 0);
        error_at(a->loc, "the settings of %s must be a mapping, got %s: write %s%s",
                 o->keys[0]->str, describe(a),
                 xfmt("{%s: {lr: %s}}", sgd ? "sgd" : "adam", num ? a->str : sgd ? "0.1" : "0.01"),
                 sgd ? "" : " or {adam: {}}");
    }
    const ynode *x;
    if (!strcmp(o->keys[0]->str, "sgd")) {
        static const char *const k[] = {"lr", "momentum", "dampening", "nesterov",
                                        "weight_decay"};
        t->opt = OPT_SGD;
        if (!is_null(a))
            check_keys(a, k, 5, "sgd");
        if (!(x = map_get(a, "lr")))
            error_at(o->keys[0]->loc, "sgd needs 'lr' (the learning rate)");
        t->lr = get_num(x, "lr");
        if ((x = map_get(a, "momentum")))
            t->momentum = get_num(x, "momentum");
        if ((x = map_get(a, "dampening")))
            t->dampening = get_num(x, "dampening");
        if ((x = map_get(a, "nesterov")))
            t->nesterov = get_bool(x, "nesterov");
        if ((x = map_get(a, "weight_decay")))
            t->weight_decay = get_num(x, "weight_decay");
        if (t->momentum < 0)
            error_at(map_get(a, "momentum")->loc, "momentum must be >= 0");
        if (t->nesterov && (t->momentum <= 0 || t->dampening != 0))
            error_at(map_get(a, "nesterov")->loc,
                     "nesterov momentum requires a momentum > 0 and zero dampening");
    } else {
        static const char *const k[] = {"lr", "betas", "eps", "weight_decay", "amsgrad"};
        t->opt = OPT_ADAM;
        t->lr = 0.001;
        t->beta1 = 0.9;
        t->beta2 = 0.999;
        t->eps = 1e-8;
        if (!is_null(a))
            check_keys(a, k, 5, "adam");
        if ((x = map_get(a, "lr")))
            t->lr = get_num(x, "lr");
        if ((x = map_get(a, "betas"))) {
            expect_kind(x, Y_SEQ, "betas");
            if (x->n != 2)
                error_at(x->loc, "betas takes two values [beta1, beta2], got %d", x->n);
            t->beta1 = get_num(x->items[0], "beta1");
            t->beta2 = get_num(x->items[1], "beta2");
            if (t->beta1 < 0 || t->beta1 >= 1)
                error_at(x->items[0]->loc, "beta1 must be in [0, 1), got %g", t->beta1);
            if (t->beta2 < 0 || t->beta2 >= 1)
                error_at(x->items[1]->loc, "beta2 must be in [0, 1), got %g", t->beta2);
        }
        if ((x = map_get(a, "eps"))) {
            t->eps = get_num(x, "eps");
            if (t->eps < 0)
                error_at(x->loc, "eps must be >= 0, got %g", t->eps);
        }
        if ((x = map_get(a, "weight_decay")))
            t->weight_decay = get_num(x, "weight_decay");
        if ((x = map_get(a, "amsgrad")))
            t->amsgrad = get_bool(x, "amsgrad");
    }
    if (t->lr < 0)
        error_at(map_get(a, "lr") ? map_get(a, "lr")->loc : o->loc, "lr must be >= 0, got %g",
                 t->lr);
    if (t->weight_decay < 0)
        error_at(map_get(a, "weight_decay")->loc, "weight_decay must be >= 0, got %g",
                 t->weight_decay);
}

