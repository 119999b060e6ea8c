/* rules.c: the init rules phase: `init:` lists of a module or the spec,
 * each rule's `at:`, `layer:` and its initializers with their arguments
 * (§1.4), checked where they are written.  Which tensors a rule reaches is
 * decided later, in plan.c. */
#include <math.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#include "phases.h"

const char *const init_names[] = {
    "default", "zeros", "ones", "constant", "uniform", "normal", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal", "trunc_normal", "mixture", "custom"};
#define N_INIT_NAMES 13

const char *const nl_names[N_NL_NAMES] = {
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"};

/* Positional [a, b] or named {k1: a, k2: b} arguments with defaults;
 * locs[i] is where value i is written (v itself for a default). */
static void num_args(const ynode *v, const char *what, const char *const *names, double *vals,
                     loc *locs, int n)
{
    for (int i = 0; i < n; i++)
        locs[i] = v->loc;
    if (is_null(v) || (v->kind == Y_MAP && v->n == 0))
        return;
    if (v->kind == Y_SEQ) {
        if (v->n > n)
            error_at(v->items[n]->loc, "%s takes at most %d values, got %d", what, n, v->n);
        for (int i = 0; i < v->n; i++) {
            vals[i] = get_num(v->items[i], xfmt("%s '%s'", what, names[i]));
            locs[i] = v->items[i]->loc;
        }
        return;
    }
    if (v->kind == Y_MAP) {
        check_keys(v, names, n, xfmt("%s's arguments", what));
        for (int i = 0; i < n; i++) {
            const ynode *x = map_get(v, names[i]);
            if (x) {
                vals[i] = get_num(x, xfmt("%s '%s'", what, names[i]));
                locs[i] = x->loc;
            }
        }
        return;
    }
    if (n == 1) {
        vals[0] = get_num(v, what);
        return;
    }
    error_at(v->loc, "%s takes a list [%s, ...] or a mapping {%s: ...}, got %s", what, names[0],
             names[0], describe(v));
}

static void parse_kaiming(initializer *in, const ynode *v, const char *what)
{
    in->a = 0;
    in->mode = NN_FAN_IN;
    in->nonlinearity = NN_NL_LEAKY_RELU;
    if (is_null(v) || (v->kind == Y_MAP && v->n == 0))
        return;
    expect_kind(v, Y_MAP, what);
    static const char *const keys[] = {"a", "mode", "nonlinearity"};
    check_keys(v, keys, 3, xfmt("%s's arguments", what));
    const ynode *x;
    if ((x = map_get(v, "a")))
        in->a = get_num(x, xfmt("%s 'a'", what));
    if ((x = map_get(v, "mode"))) {
        const char *s = get_str(x, "mode");
        static const char *const modes[] = {"fan_in", "fan_out"};
        if (!strcmp(s, "fan_in"))
            in->mode = NN_FAN_IN;
        else if (!strcmp(s, "fan_out"))
            in->mode = NN_FAN_OUT;
        else
            error_at(x->loc, "mode must be 'fan_in' or 'fan_out', got '%s'%s", s,
                     did_you_mean(s, modes, 2));
    }
    if ((x = map_get(v, "nonlinearity"))) {
        const char *s = get_str(x, "nonlinearity");
        int k = -1;
        for (int i = 0; i < N_NL_NAMES; i++)
            if (!strcmp(s, nl_names[i]))
                k = i;
        if (k < 0)
            error_at(x->loc, "unknown nonlinearity '%s'%s", s,
                     did_you_mean(s, nl_names, N_NL_NAMES));
        in->nonlinearity = k;
    }
}

static int init_index(const char *s, loc l)
{
    for (int i = 0; i < N_INIT_NAMES; i++)
        if (!strcmp(s, init_names[i]))
            return i;
    error_at(l, "unknown initializer '%s'%s", s, did_you_mean(s, init_names, N_INIT_NAMES));
}

static void check_uniform(const initializer *in, loc l)
{
    if (in->a > in->b)
        error_at(l, "uniform needs a <= b, got [%g, %g]", in->a, in->b);
}

/* Fill in from kind (init_kind) and its argument node v. */
static void parse_init_args(initializer *in, const ynode *v, loc kl)
{
    switch (in->kind) {
    case I_DEFAULT:
    case I_ZEROS:
    case I_ONES:
        if (!is_null(v) && !(v->kind == Y_MAP && v->n == 0))
            error_at(v->loc, "%s takes no arguments", init_names[in->kind]);
        return;
    case I_CONSTANT:
        if (is_null(v))
            error_at(kl, "constant needs its value: {constant: 42}");
        in->a = get_num(v, "constant");
        return;
    case I_UNIFORM: {
        static const char *const k[] = {"a", "b"};
        double vals[2] = {0, 1};
        loc locs[2];
        num_args(v, "uniform", k, vals, locs, 2);
        in->a = vals[0];
        in->b = vals[1];
        check_uniform(in, v->loc);
        return;
    }
    case I_NORMAL: {
        static const char *const k[] = {"mean", "std"};
        double vals[2] = {0, 1};
        loc locs[2];
        num_args(v, "normal", k, vals, locs, 2);
        in->a = vals[0];
        in->b = vals[1];
        if (in->b < 0)
            error_at(locs[1], "normal needs std >= 0, got %g", in->b);
        return;
    }
    case I_XAVIER_UNIFORM:
    case I_XAVIER_NORMAL: {
        static const char *const k[] = {"gain"};
        double vals[1] = {1};
        loc locs[1];
        num_args(v, init_names[in->kind], k, vals, locs, 1);
        in->a = vals[0];
        return;
    }
    case I_KAIMING_UNIFORM:
    case I_KAIMING_NORMAL:
        parse_kaiming(in, v, init_names[in->kind]);
        return;
    case I_TRUNC_NORMAL: {
        static const char *const k[] = {"mean", "std", "a", "b"};
        double vals[4] = {0, 1, -2, 2};
        loc locs[4];
        num_args(v, "trunc_normal", k, vals, locs, 4);
        in->a = vals[0];
        in->b = vals[1];
        in->c = vals[2];
        in->d = vals[3];
        if (in->b < 0)
            error_at(locs[1], "trunc_normal needs std >= 0, got %g", in->b);
        if (in->c >= in->d)
            error_at(v->loc, "trunc_normal needs a < b, got a=%g, b=%g", in->c, in->d);
        return;
    }
    case I_MIXTURE: {
        expect_kind(v, Y_SEQ, "mixture");
        if (v->n == 0)
            error_at(v->loc, "mixture needs at least one component");
        in->nmix = v->n;
        in->mix = xalloc(sizeof *in->mix * (size_t)v->n);
        double sum = 0;
        for (int i = 0; i < v->n; i++) {
            const ynode *e = v->items[i];
            expect_kind(e, Y_MAP, "a mixture component");
            static const char *const keys[] = {"p", "constant", "uniform", "normal"};
            check_keys(e, keys, 4, "a mixture component");
            const ynode *p = map_get(e, "p");
            if (!p)
                error_at(e->loc, "a mixture component needs 'p' (its probability)");
            mix_part *mp = &in->mix[i];
            mp->p = get_num(p, "mixture 'p'");
            if (mp->p < 0 || mp->p > 1)
                error_at(p->loc, "mixture 'p' must be between 0 and 1, got %g", mp->p);
            sum += mp->p;
            int found = 0;
            for (int q = 0; q < e->n; q++) {
                int j = 1;
                while (j < 4 && strcmp(e->keys[q]->str, keys[j]) != 0)
                    j++;
                if (j == 4)
                    continue; /* 'p' */
                const ynode *x = e->items[q];
                if (found++)
                    error_at(e->keys[q]->loc, "a mixture component has one distribution, not "
                                              "several");
                initializer tmp = {0};
                tmp.kind = j == 1 ? I_CONSTANT : j == 2 ? I_UNIFORM : I_NORMAL;
                parse_init_args(&tmp, x, e->keys[q]->loc);
                mp->kind = tmp.kind;
                mp->a = tmp.a;
                mp->b = tmp.b;
            }
            if (!found)
                error_at(e->loc, "a mixture component needs a distribution: 'constant', "
                                 "'uniform' or 'normal'");
        }
        if (fabs(sum - 1) > 1e-6)
            error_at(v->loc, "mixture weights 'p' must sum to 1, they sum to %g", sum);
        return;
    }
    case I_CUSTOM: {
        const char *f = get_str(v, "custom");
        if (!is_identifier(f))
            error_at(v->loc, "custom needs a C function name, got '%s'", f);
        const char *why = reserved_name_reason(f);
        if (!strcmp(f, "net") || !strcmp(f, "rng"))
            why = "the generated init function calls it with its parameters net and rng";
        if (why)
            error_at(v->loc, "custom initializer '%s' cannot be used: %s; the generated header "
                             "declares it as void %s(nn_tensor *, nn_rng *): choose another "
                             "name, e.g. 'my_%s'", f, why, f, f[0] == '_' ? "init" : f);
        in->custom = f;
        return;
    }
    }
    unreachable();
}

static initializer *parse_init(const ynode *v)
{
    initializer *in = xalloc(sizeof *in);
    in->loc = v->loc;
    if (v->kind == Y_SCALAR) {
        in->kind = (init_kind)init_index(get_str(v, "an initializer"), v->loc);
        ynode none = {Y_SCALAR, v->loc, "", 0, 0, NULL, NULL};
        if (in->kind == I_CONSTANT || in->kind == I_MIXTURE || in->kind == I_CUSTOM)
            error_at(v->loc, "%s needs an argument: {%s: ...}", init_names[in->kind],
                     init_names[in->kind]);
        parse_init_args(in, &none, v->loc);
        return in;
    }
    if (v->kind != Y_MAP)
        error_at(v->loc, "an initializer is a name ('zeros', 'xavier_uniform', ...) or a "
                         "mapping ({normal: {std: 0.01}}), got %s", describe(v));
    int ki = -1;
    for (int i = 0; i < v->n; i++) {
        const char *k = v->keys[i]->str;
        if (!strcmp(k, "zero_abs_below")) {
            in->has_zero_abs_below = 1;
            in->zero_abs_below = get_num(v->items[i], "zero_abs_below");
            continue;
        }
        init_index(k, v->keys[i]->loc);
        if (ki >= 0)
            error_at(v->keys[i]->loc, "one initializer per parameter: got '%s' and '%s'",
                     v->keys[ki]->str, k);
        ki = i;
    }
    if (ki < 0)
        error_at(v->loc, "zero_abs_below modifies an initializer: write e.g. {uniform: [-10, "
                         "10], zero_abs_below: 5}");
    in->kind = (init_kind)init_index(v->keys[ki]->str, v->keys[ki]->loc);
    in->loc = v->keys[ki]->loc;
    parse_init_args(in, v->items[ki], v->keys[ki]->loc);
    return in;
}

/* Every tensor name a layer may declare (ops/), in registry order: the keys
   an init rule may name. */
static const char **tensor_names(int *n)
{
    static const char *names[64];
    static int count = -1;
    if (count < 0) {
        count = 0;
        for (int i = 0; i < op_count; i++)
            for (int k = 0; k < op_registry[i]->ntensor_names; k++) {
                const char *t = op_registry[i]->tensor_names[k];
                int seen = 0;
                for (int j = 0; j < count; j++)
                    seen |= !strcmp(names[j], t);
                if (!seen && count < 64)
                    names[count++] = t;
            }
    }
    *n = count;
    return names;
}

/* A recurrent layer's parameter: (weight|bias)_(ih|hh)_l<k>[_reverse] */
static int rnn_tensor_name(const char *k)
{
    if (!strncmp(k, "weight_", 7))
        k += 7;
    else if (!strncmp(k, "bias_", 5))
        k += 5;
    else
        return 0;
    if ((strncmp(k, "ih_l", 4) && strncmp(k, "hh_l", 4)) || !isdigit((unsigned char)k[4]))
        return 0;
    k += 4;
    if (k[0] == '0' && isdigit((unsigned char)k[1]))
        return 0;
    while (isdigit((unsigned char)*k))
        k++;
    return !*k || !strcmp(k, "_reverse");
}

rule *parse_rules(const ynode *n, int *count)
{
    expect_kind(n, Y_SEQ, "init");
    rule *rules = xalloc(sizeof *rules * (size_t)(n->n ? n->n : 1));
    for (int i = 0; i < n->n; i++) {
        const ynode *r = n->items[i];
        expect_kind(r, Y_MAP, "an init rule");
        rule *ru = &rules[i];
        ru->loc = r->loc;
        ru->params = xalloc(sizeof *ru->params * (size_t)(r->n ? r->n : 1));
        for (int j = 0; j < r->n; j++) {
            const char *k = r->keys[j]->str;
            const ynode *v = r->items[j];
            if (!strcmp(k, "at")) {
                if (v->kind != Y_SCALAR || is_null(v))
                    error_at(v->loc, "'at' must be a module path like \"0\" or \"0.block1\", "
                                     "got %s", describe(v));
                ru->at = v->str;
                ru->at_loc = v->loc;
            } else if (!strcmp(k, "layer")) {
                const char *ln = get_str(v, "layer");
                const op_desc *d = op_find(ln);
                if (!d) {
                    const char **names = xalloc(sizeof *names * (size_t)op_count);
                    for (int q = 0; q < op_count; q++)
                        names[q] = op_registry[q]->name;
                    const char *s = suggest(ln, names, op_count);
                    if (s)
                        error_at(v->loc, "unknown layer type '%s' (did you mean '%s'?)", ln, s);
                    error_at(v->loc, "unknown layer type '%s'; the layers are %s", ln,
                             op_name_list());
                }
                ru->layer = d;
            } else {
                int nt, known = rnn_tensor_name(k);
                const char **tn = tensor_names(&nt);
                for (int q = 0; q < nt; q++)
                    known |= !strcmp(k, tn[q]);
                if (!known) {
                    const char **cands = xalloc(sizeof *cands * (size_t)(nt + 2));
                    strbuf b = {0};
                    cands[0] = "at";
                    cands[1] = "layer";
                    for (int q = 0; q < nt; q++) {
                        cands[q + 2] = tn[q];
                        sb_printf(&b, "%s'%s'", q ? ", " : "", tn[q]);
                    }
                    const char *list = xstrdup(b.s ? b.s : "");
                    free(b.s);
                    error_at(r->keys[j]->loc, "unknown key '%s' in an init rule%s; expected "
                                              "'at', 'layer' or a parameter name (%s)", k,
                             did_you_mean(k, cands, nt + 2), list);
                }
                rule_param *rp = &ru->params[ru->nparams++];
                rp->name = k;
                rp->loc = r->keys[j]->loc;
                rp->init = parse_init(v);
            }
        }
        if (!ru->nparams)
            error_at(r->loc, "this init rule initializes nothing: name a parameter, e.g. "
                             "'weight: zeros'");
    }
    *count = n->n;
    return rules;
}

