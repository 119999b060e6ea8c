/* check.c: from the YAML tree to a checked program, phase by phase:
 *
 *   build    build.c   module expressions -> module instances (blocks
 *                      copied, shared modules referenced), layer arguments
 *                      by their op's schema, meta keys
 *   rules    rules.c   init: rules and initializers
 *   shapes   shapes.c  the forward pass: shapes, values, one op per use
 *   names    names.c   canonical paths, tensors, parameter list, state dict
 *   plan     plan.c    the init sequence in PyTorch's construction order
 *   train    train.c   loss and optimizer settings
 *
 * This file reads the top-level keys and runs the phases in that order.
 * Every user error goes through error_at() with the node's location.
 */
#include <string.h>

#include "phases.h"

static const char *file_stem(const char *file)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    char *s = xstrdup(b);
    char *dot = strrchr(s, '.');
    if (dot && dot != s)
        *dot = 0;
    return s;
}

/* A softmax or log_softmax computing the model's output right before a
 * cross_entropy loss: valid, but cross_entropy applies log_softmax itself
 * (torch's nn.CrossEntropyLoss), so this is a warning, at the layer.  The
 * spec is valid by now: nothing after this can fail. */
static void warn_softmax_before_loss(const program *p)
{
    if (p->train.loss != LOSS_CROSS_ENTROPY || p->nops == 0)
        return;
    const op *last = &p->ops[p->nops - 1];
    if (!last->d)
        return;
    const char *n = last->d->name;
    if (!strcmp(n, "softmax"))
        warn_at(last->m->loc, "softmax is the last layer, right before the cross_entropy loss, "
                              "which applies log_softmax itself (as torch's "
                              "nn.CrossEntropyLoss does): the loss then applies softmax twice and "
                              "learns slowly; remove this layer so that the model outputs raw "
                              "scores (logits), and apply softmax only to read probabilities");
    else if (!strcmp(n, "log_softmax"))
        warn_at(last->m->loc, "log_softmax is the last layer, right before the cross_entropy "
                              "loss, which applies log_softmax itself (as torch's "
                              "nn.CrossEntropyLoss does): this layer is redundant (the loss is the "
                              "same without it); remove it so that the model outputs raw scores "
                              "(logits)");
}

program *check_program(const char *file, ynode *doc)
{
    return check_program_opts(file, doc, NULL);
}

program *check_program_opts(const char *file, ynode *doc, const check_opts *o)
{
    program *p = xalloc(sizeof *p);
    p->file = file;
    ctx c = {0};
    c.p = p;
    if (doc->kind != Y_MAP)
        error_at(doc->loc, "a spec is a mapping with 'nngen: 1', 'input:' and 'model:', got %s",
                 describe(doc));
    static const char *const top[] = {"nngen",  "name",  "input", "input_dtype",
                                      "batch",  "seed",  "blocks", "shared",
                                      "model", "init",  "train"};
    check_keys(doc, top, 11, "the spec");

    const ynode *v = map_get(doc, "nngen");
    loc start = doc->loc; /* the top-level mapping: where a missing key belongs */
    if (!v)
        error_at(start, "missing 'nngen: 1' (the spec format version) at the top level");
    if (get_int(v, "nngen (the format version)", 0, 1000000) != 1)
        error_at(v->loc, "unsupported spec format version %s: this nngen reads version 1",
                 v->str);

    if (o && o->name) {
        p->name = o->name; /* checked by the command line (cli.c) */
    } else if ((v = map_get(doc, "name"))) {
        p->name = get_str(v, "name");
        if (!is_identifier(p->name) || strlen(p->name) > 64)
            error_at(v->loc, "name '%s' must be a C identifier of at most 64 characters (it "
                             "prefixes every generated symbol)", p->name);
        const char *why = reserved_name_reason(p->name);
        if (why)
            error_at(v->loc, "name '%s' cannot be used: %s; the name is the generated type "
                             "and the prefix of every generated symbol (%s_create, ...): "
                             "choose another, e.g. '%s_net'", p->name, why, p->name,
                     p->name[0] == '_' ? "my" : p->name);
    } else {
        p->name = file_stem(file);
        if (!is_identifier(p->name) || strlen(p->name) > 64)
            error_at(start, "the file name '%s' is not a C identifier: add 'name: NAME' to "
                            "the spec", p->name);
        const char *why = reserved_name_reason(p->name);
        if (why)
            error_at(start, "the file name '%s' cannot be the generated name: %s; add "
                            "'name: NAME' to the spec", p->name, why);
    }

    p->batch = 1;
    if ((v = map_get(doc, "batch")))
        p->batch = get_int(v, "batch", 1, MAX_DIM_SIZE);
    if (o && o->batch > 0)
        p->batch = o->batch;
    if ((v = map_get(doc, "seed"))) {
        p->has_seed = 1;
        p->seed = get_u64(v, "seed");
    }

    v = map_get(doc, "input");
    if (!v)
        error_at(start, "missing 'input:' (the shape of one example, e.g. input: [4])");
    if (v->kind == Y_SCALAR && !is_null(v)) {
        p->input.ndim = 2;
        p->input.d[1] = get_int(v, "input size", 1, MAX_DIM_SIZE);
    } else {
        expect_kind(v, Y_SEQ, "input (the shape of one example, e.g. [4])");
        if (v->n < 1 || v->n > NN_MAX_DIM - 1)
            error_at(v->loc, "input must have 1 to %d dimensions (the batch adds one), got %d",
                     NN_MAX_DIM - 1, v->n);
        p->input.ndim = v->n + 1;
        for (int i = 0; i < v->n; i++)
            p->input.d[i + 1] = get_int(v->items[i], "an input dimension", 1, MAX_DIM_SIZE);
    }
    p->input.d[0] = p->batch;

    if (shape_numel(&p->input) > MAX_TENSOR_ELEMS)
        error_at(v->loc, "the input batch %s has more than %lld elements (nngen's limit)",
                 shape_text(&p->input), MAX_TENSOR_ELEMS);
    p->input_dtype = DT_F32;
    const ynode *dv;
    if ((dv = map_get(doc, "input_dtype"))) {
        static const char *const dts[] = {"float32", "int32"};
        const char *dt = get_str(dv, "input_dtype");
        if (!strcmp(dt, "int32"))
            p->input_dtype = DT_I32;
        else if (strcmp(dt, "float32"))
            error_at(dv->loc, "input_dtype must be float32 (the default) or int32 (indices for an "
                             "embedding as the first layer), got '%s'%s", dt,
                     did_you_mean(dt, dts, 2));
        p->input_dtype_loc = dv->loc;
    }

    if ((c.blocks = map_get(doc, "blocks"))) {
        if (is_null(c.blocks))
            c.blocks = NULL;
        else
            expect_kind(c.blocks, Y_MAP, "blocks (a mapping from block names to modules)");
    }
    if ((c.shared = map_get(doc, "shared"))) {
        if (is_null(c.shared))
            c.shared = NULL;
        else
            expect_kind(c.shared, Y_MAP, "shared (a mapping from names to modules)");
    }
    namemap_init(&c.block_ix, c.blocks);
    namemap_init(&c.shared_ix, c.shared);
    c.block_uses = xalloc(sizeof *c.block_uses * (size_t)(c.blocks ? c.blocks->n + 1 : 1));
    c.shared_height = xalloc(sizeof *c.shared_height * (size_t)(c.shared ? c.shared->n + 1 : 1));
    if (c.blocks)
        check_names(&c, c.blocks, "block");
    if (c.shared)
        check_names(&c, c.shared, "shared");

    /* shared modules first, in declaration order */
    int nsh = c.shared ? c.shared->n : 0;
    p->shared = xalloc(sizeof *p->shared * (size_t)(nsh ? nsh : 1));
    for (int i = 0; i < nsh; i++) {
        c.depth = c.maxdepth = 0;
        module *m = build(&c, c.shared->items[i]);
        c.shared_height[i] = c.maxdepth;
        if (m->shared_name)
            error_at(c.shared->items[i]->loc, "shared module '%s' is just a ref to '%s': "
                                              "use {ref: %s} directly",
                     c.shared->keys[i]->str, m->shared_name, m->shared_name);
        m->shared_name = c.shared->keys[i]->str;
        m->origin = xfmt("shared '%s'", m->shared_name);
        p->shared[p->nshared++] = m;
        c.nshared_built++;
    }

    const ynode *model = map_get(doc, "model");
    if (!model)
        error_at(start, "missing 'model:' (the network)");
    c.depth = c.maxdepth = 0;
    p->root = build(&c, model);
    if (p->root->shared_name)
        error_at(model->loc, "the model cannot be a shared module itself; write the module "
                             "directly under 'model:'");
    /* A block the model never uses is still checked (names, arguments,
     * cycles); its modules are then dropped. */
    for (int i = 0; c.blocks && i < c.blocks->n; i++)
        if (!c.block_uses[i]) {
            int keep = p->nmodules;
            c.depth = c.maxdepth = 0;
            instantiate_block(&c, i, c.blocks->keys[i]->loc);
            p->nmodules = keep;
        }

    /* shapes */
    check_shapes(p, c.shared, model);
    for (int i = 0; i < p->nshared; i++)
        if (!p->shared[i]->used)
            error_at(c.shared->keys[i]->loc, "shared module '%s' is declared but never used "
                                             "(write {ref: %s} in the model)",
                     p->shared[i]->shared_name, p->shared[i]->shared_name);

    /* names */
    name_program(p);

    /* memory: parameters, gradients, activations must fit */
    int64_t floats = p->param_floats * 2;
    for (int i = 0; i < p->nbufs; i++) {
        floats += p->buf_numel[i] * 2;
        if (floats > MAX_TOTAL_BYTES / 4)
            break;
    }
    if (floats > MAX_TOTAL_BYTES / 4)
        error_at(model->loc, "this network needs more than %lld bytes (nngen's limit for one "
                             "instance)", (long long)MAX_TOTAL_BYTES);

    /* the init plan: shared modules, the model, then top-level rules */
    plan_init(p, map_get(doc, "init"));

    if ((v = map_get(doc, "train")))
        parse_train(p, v);
    warn_softmax_before_loss(p);
    return p;
}
