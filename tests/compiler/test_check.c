/* Unit tests for nngen's front end: yaml.c (YAML -> ynode tree with
 * locations) and check.c (the checked program: names, shapes, the init
 * plan, training settings), linked in directly.  Specs are given as
 * strings.  Error paths are exercised in-process through diag_jmp, with
 * stderr captured to check the reported place and message. */
#include <check.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nngen.h"
#include "ops/op.h"

#define FILE_NAME "t.yaml"

/* ---- helpers -------------------------------------------------------------- */

static const char *spec_text;

/* Fails the test (instead of unwinding into nowhere) if the spec is wrong. */
#define LOAD_AS(p, file, text)                                                   \
    do {                                                                         \
        spec_text = (text);                                                      \
        diag_set_source(file, spec_text, strlen(spec_text));                     \
        if (setjmp(diag_jmp) != 0) {                                             \
            yaml_release();                                                      \
            ck_abort_msg("unexpected error in spec:\n%s", spec_text);            \
        }                                                                        \
        (p) = check_program(file, yaml_load(file, spec_text, strlen(spec_text))); \
    } while (0)
#define LOAD(p, text) LOAD_AS(p, FILE_NAME, text)

#define YLOAD(n, text)                                                           \
    do {                                                                         \
        spec_text = (text);                                                      \
        if (setjmp(diag_jmp) != 0) {                                             \
            yaml_release();                                                      \
            ck_abort_msg("unexpected YAML error in:\n%s", spec_text);            \
        }                                                                        \
        (n) = yaml_load(FILE_NAME, spec_text, strlen(spec_text));                \
    } while (0)

/* stderr into a temporary file while an error is reported */
static int saved_fd = -1;
static FILE *cap;

static void capture_begin(void)
{
    fflush(stderr);
    cap = tmpfile();
    ck_assert_ptr_nonnull(cap);
    saved_fd = dup(2);
    dup2(fileno(cap), 2);
}

static char *capture_end(void)
{
    static char buf[8192];
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    rewind(cap);
    size_t n = fread(buf, 1, sizeof buf - 1, cap);
    buf[n] = 0;
    fclose(cap);
    return buf;
}

/* Runs the whole front end on text and requires an error at line:col whose
 * first line contains frag; returns the status error_at unwound with.  The
 * arena and the parser are released afterwards, as main does. */
static int expect_error(const char *text, int line, int col, const char *frag)
{
    static char head[4096];
    static volatile int status;
    spec_text = text;
    diag_set_source(FILE_NAME, text, strlen(text));
    capture_begin();
    status = setjmp(diag_jmp);
    if (status == 0) {
        check_program(FILE_NAME, yaml_load(FILE_NAME, text, strlen(text)));
        capture_end();
        yaml_release();
        arena_release();
        ck_abort_msg("no error for spec:\n%s", text);
    }
    const char *err = capture_end();
    yaml_release();
    arena_release();
    size_t n = strcspn(err, "\n");
    if (n >= sizeof head)
        n = sizeof head - 1;
    memcpy(head, err, n);
    head[n] = 0;
    char want[64];
    snprintf(want, sizeof want, FILE_NAME ":%d:%d: error: ", line, col);
    ck_assert_msg(strncmp(head, want, strlen(want)) == 0, "expected '%s...', got '%s'", want,
                  head);
    ck_assert_msg(strstr(head, frag) != NULL, "expected '%s' in '%s'", frag, head);
    return status;
}

static void teardown(void)
{
    yaml_release();
    arena_release();
}

static const tensor *T(const program *p, int i)
{
    ck_assert_int_lt(i, p->ntensors);
    return &p->tensors[i];
}

static int tensor_named(const program *p, const char *name)
{
    for (int i = 0; i < p->ntensors; i++)
        if (!strcmp(p->tensors[i].name, name))
            return i;
    ck_abort_msg("no tensor '%s'", name);
    return -1;
}

/* "0.weight,0.bias,..." for the parameter list; "k=canonical" for aliases
 * in the state dict. */
static const char *param_list(const program *p)
{
    strbuf b = {0};
    for (int i = 0; i < p->ntensors; i++)
        sb_printf(&b, "%s%s", i ? "," : "", p->tensors[i].name);
    char *s = xstrdup(b.s ? b.s : "");
    free(b.s);
    return s;
}

static const char *state_list(const program *p)
{
    strbuf b = {0};
    for (int i = 0; i < p->nstate; i++) {
        const char *k = p->state[i].key, *c = p->tensors[p->state[i].tensor].name;
        sb_printf(&b, "%s%s", i ? "," : "", k);
        if (strcmp(k, c) != 0)
            sb_printf(&b, "=%s", c);
    }
    char *s = xstrdup(b.s ? b.s : "");
    free(b.s);
    return s;
}

static const char *const kind_names[] = {
    "default", "zeros", "ones", "constant", "uniform", "normal", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal", "trunc_normal", "mixture", "custom"};

/* "0.weight:default,0.bias:default,..." for the init plan */
static const char *plan(const program *p)
{
    strbuf b = {0};
    for (int i = 0; i < p->nsteps; i++)
        sb_printf(&b, "%s%s:%s", i ? "," : "", p->tensors[p->steps[i].tensor].name,
                  kind_names[p->steps[i].init->kind]);
    char *s = xstrdup(b.s ? b.s : "");
    free(b.s);
    return s;
}

static const char *shape_of(const shape *s)
{
    char buf[128];
    shape_str(buf, sizeof buf, s, 1);
    return xstrdup(buf);
}

static const module *find_module(const program *p, const char *path)
{
    for (int i = 0; i < p->nmodules; i++)
        if (p->modules[i]->path && !strcmp(p->modules[i]->path, path))
            return p->modules[i];
    ck_abort_msg("no module '%s'", path);
    return NULL;
}

/* ---- yaml.c ------------------------------------------------------------------ */

START_TEST(test_yaml_locations)
{
    ynode *d;
    YLOAD(d, "nngen: 1\n"
             "input: [4, 'x']\n"
             "model:\n"
             "  - {linear: 8}\n"
             "  - relu\n");
    ck_assert_int_eq(d->kind, Y_MAP);
    ck_assert_int_eq(d->loc.line, 1);
    ck_assert_int_eq(d->loc.col, 1);
    ck_assert_str_eq(d->loc.file, FILE_NAME);
    ck_assert_int_eq(d->n, 3);
    ck_assert_str_eq(d->keys[0]->str, "nngen");
    ck_assert_int_eq(d->keys[0]->loc.line, 1);
    ck_assert_int_eq(d->keys[0]->loc.col, 1);
    ck_assert_str_eq(d->items[0]->str, "1");
    ck_assert_int_eq(d->items[0]->loc.col, 8);
    ck_assert_int_eq(d->items[0]->quoted, 0);

    ynode *in = d->items[1];
    ck_assert_int_eq(d->keys[1]->loc.line, 2);
    ck_assert_int_eq(in->kind, Y_SEQ);
    ck_assert_int_eq(in->loc.line, 2);
    ck_assert_int_eq(in->loc.col, 8);
    ck_assert_int_eq(in->n, 2);
    ck_assert_int_eq(in->items[0]->loc.col, 9);
    ck_assert_int_eq(in->items[0]->quoted, 0);
    ck_assert_str_eq(in->items[1]->str, "x");
    ck_assert_int_eq(in->items[1]->loc.col, 12);
    ck_assert_int_eq(in->items[1]->quoted, 1);

    ynode *m = d->items[2];
    ck_assert_int_eq(m->kind, Y_SEQ);
    ck_assert_int_eq(m->loc.line, 4); /* a block sequence starts at its first '-' */
    ck_assert_int_eq(m->loc.col, 3);
    ck_assert_int_eq(m->items[0]->kind, Y_MAP);
    ck_assert_int_eq(m->items[0]->loc.line, 4);
    ck_assert_int_eq(m->items[0]->loc.col, 5);
    ck_assert_str_eq(m->items[0]->keys[0]->str, "linear");
    ck_assert_int_eq(m->items[0]->keys[0]->loc.col, 6);
    ck_assert_int_eq(m->items[0]->items[0]->loc.col, 14);
    ck_assert_str_eq(m->items[1]->str, "relu");
    ck_assert_int_eq(m->items[1]->loc.line, 5);
    ck_assert_int_eq(m->items[1]->loc.col, 5);
}
END_TEST

START_TEST(test_yaml_scalar_styles)
{
    ynode *d;
    YLOAD(d, "a: plain\n"
             "b: \"double\"\n"
             "c: 'single'\n"
             "d: |\n"
             "  block\n"
             "e:\n"
             "f: ''\n"
             "g: true\n");
    ck_assert_int_eq(d->n, 7);
    ck_assert_int_eq(d->items[0]->quoted, 0);
    ck_assert_int_eq(d->items[1]->quoted, 1);
    ck_assert_str_eq(d->items[1]->str, "double");
    ck_assert_int_eq(d->items[1]->loc.col, 4); /* at the opening quote */
    ck_assert_int_eq(d->items[2]->quoted, 1);
    ck_assert_int_eq(d->items[3]->quoted, 1);
    ck_assert_str_eq(d->items[3]->str, "block\n");
    ck_assert_int_eq(d->items[4]->kind, Y_SCALAR); /* empty value: plain "" */
    ck_assert_str_eq(d->items[4]->str, "");
    ck_assert_int_eq(d->items[4]->quoted, 0);
    ck_assert_str_eq(d->items[5]->str, "");
    ck_assert_int_eq(d->items[5]->quoted, 1);
    ck_assert_int_eq(d->items[6]->quoted, 0);
}
END_TEST

START_TEST(test_yaml_utf8_columns)
{
    /* libyaml counts columns in characters: 'é' is one */
    ck_assert_int_eq(expect_error("x: [\xc3\xa9, *a]\n", 1, 8, "aliases ('*a')"), 1);
    /* reader errors carry a byte offset; it becomes line:col */
    expect_error("nngen: 1\nname: a\xff\n", 2, 8, "byte 0xFF");
}
END_TEST

START_TEST(test_yaml_errors)
{
    expect_error("# only a comment\n", 1, 1, "the spec is empty");
    expect_error("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a' (first given at line 1, column 1)");
    expect_error("a: &x 1\n", 1, 4, "anchors ('&x')");
    expect_error("a: !!str 1\n", 1, 4, "tags ('!!str')");
    expect_error("a: 1\n---\nb: 2\n", 2, 1, "more than one YAML document");
    expect_error("a:\n  <<: {b: 1}\n", 2, 3, "merge keys");
    expect_error("a: [1, 2\n", 1, 4, "'[' is never closed");
    expect_error("a:\n\t- 1\n", 2, 1, "tab character");
    expect_error("a: b: c\n", 1, 5, "mapping values are not allowed");
}
END_TEST

START_TEST(test_yaml_parser_reuse_after_error)
{
    /* an error unwinds through yaml_load; yaml_release() frees the parser
     * and the next load works */
    expect_error("a: [1,\n", 1, 4, "never closed");
    ynode *d;
    YLOAD(d, "a: [1, 2]\n");
    ck_assert_int_eq(d->items[0]->n, 2);
}
END_TEST

START_TEST(test_yaml_nesting_limit)
{
    /* the top mapping is level 1; 63 brackets make 64 levels */
    strbuf b = {0};
    sb_puts(&b, "a: ");
    for (int i = 0; i < 63; i++)
        sb_putc(&b, '[');
    sb_putc(&b, '1');
    for (int i = 0; i < 63; i++)
        sb_putc(&b, ']');
    sb_putc(&b, '\n');
    ynode *d;
    YLOAD(d, b.s);
    ck_assert_int_eq(d->items[0]->kind, Y_SEQ);
    arena_release();
    /* one more is too deep: the 64th bracket, at column 4 + 63 */
    char *deeper = malloc(b.len + 3);
    ck_assert_ptr_nonnull(deeper);
    snprintf(deeper, b.len + 3, "a: [%s]", b.s + 3);
    expect_error(deeper, 1, 67, "nesting deeper than 64 levels");
    free(deeper);
    free(b.s);
}
END_TEST

START_TEST(test_yaml_many_keys)
{
    /* duplicate detection is not quadratic: 50000 keys load at once */
    strbuf b = {0};
    for (int i = 0; i < 50000; i++)
        sb_printf(&b, "k%d: %d\n", i, i);
    ynode *d;
    YLOAD(d, b.s);
    ck_assert_int_eq(d->n, 50000);
    ck_assert_str_eq(d->keys[49999]->str, "k49999");
    ck_assert_int_eq(d->keys[49999]->loc.line, 50000);
    arena_release();
    sb_puts(&b, "k123: again\n");
    expect_error(b.s, 50001, 1, "duplicate key 'k123' (first given at line 124, column 1)");
    free(b.s);
}
END_TEST

/* ---- check.c: names ---------------------------------------------------------- */

static const char mlp[] = "nngen: 1\n"
                          "name: mlp\n"
                          "input: [4]\n"
                          "batch: 2\n"
                          "seed: 7\n"
                          "model:\n"
                          "  - {linear: 8}\n"
                          "  - relu\n"
                          "  - {linear: 1}\n";

START_TEST(test_mlp)
{
    program *p;
    LOAD(p, mlp);
    ck_assert_str_eq(p->name, "mlp");
    ck_assert_int_eq((int)p->batch, 2);
    ck_assert_int_eq(p->has_seed, 1);
    ck_assert_uint_eq(p->seed, 7);
    ck_assert_str_eq(shape_of(&p->input), "[2, 4]");
    ck_assert_str_eq(shape_of(&p->output), "[2, 1]");
    ck_assert_str_eq(param_list(p), "0.weight,0.bias,2.weight,2.bias");
    ck_assert_str_eq(state_list(p), "0.weight,0.bias,2.weight,2.bias");
    ck_assert_int_eq(T(p, 0)->ndim, 2);
    ck_assert_int_eq((int)T(p, 0)->shape[0], 8);
    ck_assert_int_eq((int)T(p, 0)->shape[1], 4);
    ck_assert_int_eq((int)T(p, 1)->numel, 8);
    ck_assert_int_eq((int)T(p, 2)->shape[1], 8);
    ck_assert_int_eq(T(p, 3)->requires_grad, 1);
    /* 64-byte aligned offsets */
    for (int i = 0; i < p->ntensors; i++)
        ck_assert_int_eq((int)(T(p, i)->offset % 16), 0);
    ck_assert_int_eq(p->nops, 3);
    ck_assert_str_eq(p->ops[1].use_path, "1");
    ck_assert_str_eq(find_module(p, "")->extra, "");
    ck_assert_str_eq(find_module(p, "0")->extra, "in_features=4, out_features=8, bias=True");
    ck_assert_int_eq(p->train.loss, LOSS_NONE);
    ck_assert_int_eq(p->train.opt, OPT_NONE);
}
END_TEST

START_TEST(test_print_view)
{
    program *p;
    LOAD(p, mlp);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    nn_print_model(f, build_view(p));
    rewind(f);
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    ck_assert_str_eq(buf, "Sequential(\n"
                          "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
                          "  (1): ReLU()\n"
                          "  (2): Linear(in_features=8, out_features=1, bias=True)\n"
                          ")\n");
}
END_TEST

START_TEST(test_default_name_and_batch)
{
    program *p;
    LOAD_AS(p, "dir/my_net.yaml", "nngen: 1\ninput: 3\nmodel: relu\n");
    ck_assert_str_eq(p->name, "my_net");
    ck_assert_int_eq((int)p->batch, 1);
    ck_assert_int_eq(p->has_seed, 0);
    ck_assert_str_eq(shape_of(&p->input), "[1, 3]"); /* input: 3 is input: [3] */
    ck_assert_int_eq(p->ntensors, 0);
}
END_TEST

START_TEST(test_nested_blocks)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "blocks:\n"
            "  block1: [{linear: 8}, relu, {linear: 4}, relu]\n"
            "  block2:\n"
            "    repeat: {times: 4, name: \"block{i}\", body: block1}\n"
            "model:\n"
            "  - block2\n"
            "  - {linear: 1}\n");
    ck_assert_int_eq(p->ntensors, 18);
    ck_assert_str_eq(T(p, 0)->name, "0.block0.0.weight");
    ck_assert_str_eq(T(p, 3)->name, "0.block0.2.bias");
    ck_assert_str_eq(T(p, 4)->name, "0.block1.0.weight");
    ck_assert_str_eq(T(p, 15)->name, "0.block3.2.bias");
    ck_assert_str_eq(T(p, 16)->name, "1.weight");
    ck_assert_int_eq((int)T(p, 16)->shape[1], 4);
    ck_assert_int_eq(p->nstate, 18);
    /* fresh parameters per instance */
    ck_assert_ptr_ne(find_module(p, "0.block0.0"), find_module(p, "0.block1.0"));
    ck_assert_str_eq(find_module(p, "0.block2")->origin, "block 'block1'");
}
END_TEST

START_TEST(test_tied)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "shared:\n"
            "  shared: {linear: {out: 8, in: 8}}\n"
            "model:\n"
            "  - {linear: 8}\n"
            "  - relu\n"
            "  - {ref: shared}\n"
            "  - relu\n"
            "  - {ref: shared}\n"
            "  - relu\n"
            "  - {linear: 1}\n");
    ck_assert_str_eq(param_list(p), "0.weight,0.bias,2.weight,2.bias,6.weight,6.bias");
    ck_assert_str_eq(state_list(p), "0.weight,0.bias,2.weight,2.bias,4.weight=2.weight,"
                                    "4.bias=2.bias,6.weight,6.bias");
    ck_assert_int_eq(p->nshared, 1);
    ck_assert_str_eq(p->shared[0]->path, "2");
    ck_assert_int_eq(p->state[4].tensor, tensor_named(p, "2.weight"));
    ck_assert_int_eq(p->state[5].tensor, tensor_named(p, "2.bias"));
    /* one op per use */
    ck_assert_int_eq(p->nops, 7);
    ck_assert_ptr_eq(p->ops[2].m, p->ops[4].m);
    ck_assert_str_eq(p->ops[4].use_path, "4");
}
END_TEST

START_TEST(test_shared_canonical_name)
{
    /* the canonical name is the first in the model's pre-order walk, not
     * the declaration; nested first use wins over a later direct one */
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "shared:\n"
            "  s: {linear: 4}\n"
            "model:\n"
            "  sequential:\n"
            "    a: relu\n"
            "    b: [{linear: 4}, {ref: s}]\n"
            "    c: {ref: s}\n");
    ck_assert_str_eq(param_list(p), "b.0.weight,b.0.bias,b.1.weight,b.1.bias");
    ck_assert_str_eq(state_list(p), "b.0.weight,b.0.bias,b.1.weight,b.1.bias,"
                                    "c.weight=b.1.weight,c.bias=b.1.bias");
}
END_TEST

START_TEST(test_repeat_names_and_frozen)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "model:\n"
            "  - repeat: {times: 3, name: \"layer{i}\", body: {linear: 4}}\n"
            "  - {linear: {out: 2, bias: false}, frozen: true}\n"
            "  - {repeat: {times: 2, body: [{linear: 2}]}, frozen: true}\n");
    ck_assert_str_eq(param_list(p), "0.layer0.weight,0.layer0.bias,0.layer1.weight,"
                                    "0.layer1.bias,0.layer2.weight,0.layer2.bias,1.weight,"
                                    "2.0.0.weight,2.0.0.bias,2.1.0.weight,2.1.0.bias");
    ck_assert_int_eq(T(p, 5)->requires_grad, 1);
    ck_assert_int_eq(T(p, 6)->requires_grad, 0);
    for (int i = 7; i < 11; i++)
        ck_assert_int_eq(T(p, i)->requires_grad, 0);
    ck_assert_str_eq(find_module(p, "1")->extra, "in_features=4, out_features=2, bias=False");
}
END_TEST

START_TEST(test_shapes_3d)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [3, 5]\n"
            "batch: 2\n"
            "model:\n"
            "  - {linear: 4}\n"    /* applies to the last dimension */
            "  - tanh\n"
            "  - flatten\n"
            "  - {linear: 6}\n"
            "  - {log_softmax: {dim: -1}}\n");
    ck_assert_str_eq(shape_of(&p->input), "[2, 3, 5]");
    ck_assert_int_eq(p->nops, 5);
    ck_assert_str_eq(shape_of(&p->values[p->ops[0].out].shape), "[2, 3, 4]");
    ck_assert_int_eq((int)T(p, 0)->shape[0], 4);
    ck_assert_int_eq((int)T(p, 0)->shape[1], 5);
    ck_assert_str_eq(shape_of(&p->values[p->ops[2].in[0]].shape), "[2, 3, 4]");
    ck_assert_str_eq(shape_of(&p->values[p->ops[2].out].shape), "[2, 12]");
    ck_assert_int_eq((int)T(p, 2)->shape[1], 12);
    ck_assert_str_eq(shape_of(&p->output), "[2, 6]");
    ck_assert_str_eq(find_module(p, "4")->extra, "dim=-1");
    /* flatten aliases its input buffer */
    ck_assert_int_eq(p->values[p->ops[2].out].buf, p->values[p->ops[2].in[0]].buf);
    ck_assert_int_eq((int)p->buf_numel[0], 30);
    ck_assert_int_eq((int)p->buf_numel[p->values[p->ops[0].out].buf], 24);
}
END_TEST

START_TEST(test_layer_args)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "model:\n"
            "  - {leaky_relu: 0.2}\n"
            "  - {leaky_relu: {negative_slope: 1}}\n"
            "  - leaky_relu\n"
            "  - gelu\n"
            "  - {softmax: 1}\n"
            "  - identity\n"
            "  - sigmoid\n");
    ck_assert_str_eq(find_module(p, "0")->extra, "negative_slope=0.2");
    ck_assert_str_eq(find_module(p, "1")->extra, "negative_slope=1");
    ck_assert_str_eq(find_module(p, "2")->extra, "negative_slope=0.01");
    ck_assert_str_eq(find_module(p, "3")->extra, "approximate='none'");
    ck_assert_str_eq(find_module(p, "4")->extra, "dim=1");
    ck_assert_int_eq(p->ntensors, 0);
    ck_assert_str_eq(shape_of(&p->output), "[1, 4]");
}
END_TEST

START_TEST(test_unused_block_checked_not_built)
{
    program *p, *q;
    LOAD(p, "nngen: 1\ninput: [4]\nmodel: [{linear: 2}]\n");
    int n = p->nmodules;
    LOAD(q, "nngen: 1\ninput: [4]\n"
            "blocks:\n  spare: [{linear: 3}, relu, {repeat: {times: 5, body: relu}}]\n"
            "model: [{linear: 2}]\n");
    ck_assert_int_eq(q->nmodules, n);
    ck_assert_int_eq(q->ntensors, 2);
    expect_error("nngen: 1\ninput: [4]\nblocks:\n  spare: [{linear: {out: 3, in: x}}]\n"
                 "model: [{linear: 2}]\n",
                 4, 33, "linear 'in' must be an integer");
}
END_TEST

/* ---- check.c: the init plan ----------------------------------------------------- */

START_TEST(test_plan_order)
{
    /* shared first (with its own rules), then the model post-order with
     * each module's own rules after its children, the top level last;
     * Module.apply visits a shared child once per parent */
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "shared:\n"
            "  s: {linear: 4, init: [{weight: ones}]}\n"
            "model:\n"
            "  sequential:\n"
            "    - {linear: 4}\n"
            "    - {ref: s}\n"
            "    - sequential: [{linear: 4}, {ref: s}]\n"
            "      init: [{weight: zeros, bias: {constant: 2}}]\n"
            "  init: [{layer: linear, bias: ones}]\n"
            "init:\n"
            "  - weight: {normal: [0, 1]}\n");
    ck_assert_str_eq(param_list(p), "0.weight,0.bias,1.weight,1.bias,2.0.weight,2.0.bias");
    ck_assert_str_eq(plan(p),
                     "1.weight:default,1.bias:default,1.weight:ones,"
                     "0.weight:default,0.bias:default,"
                     "2.0.weight:default,2.0.bias:default,"
                     "2.0.weight:zeros,2.0.bias:constant,1.weight:zeros,1.bias:constant,"
                     "0.bias:ones,1.bias:ones,2.0.bias:ones,1.bias:ones,"
                     "0.weight:normal,1.weight:normal,2.0.weight:normal,1.weight:normal");
    /* the layer default knows fan_in: 0.bias is U(-1/sqrt(4), 1/sqrt(4)) */
    {
        initializer d;
        ck_assert_int_eq(p->steps[4].init->kind, I_DEFAULT);
        op_default_init(p->steps[4].m, &p->tensors[p->steps[4].tensor], &d);
        ck_assert_int_eq(d.kind, I_UNIFORM);
        ck_assert(d.a == -0.5 && d.b == 0.5);
    }
    ck_assert_ptr_eq(p->steps[0].m, p->shared[0]);
}
END_TEST

START_TEST(test_plan_shared_once_per_parent)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "shared:\n"
            "  s: {linear: 4}\n"
            "model: [{ref: s}, relu, {ref: s}]\n"
            "init: [{weight: zeros}]\n");
    ck_assert_str_eq(plan(p), "0.weight:default,0.bias:default,0.weight:zeros");
}
END_TEST

START_TEST(test_plan_filters)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "model:\n"
            "  - {linear: 4}\n"
            "  - relu\n"
            "  - sequential: {a: {linear: 4}, b: {linear: 2}}\n"
            "init:\n"
            "  - at: \"2.b\"\n"
            "    weight: ones\n"
            "  - at: \"2\"\n"
            "    layer: linear\n"
            "    bias: zeros\n"
            "    weight: {constant: 3}\n"
            "  - layer: linear\n"
            "    weight: {mixture: [{p: 0.5, constant: 0}, {p: 0.5, uniform: [-1, 1]}]}\n"
            "  - at: \"0\"\n"
            "    weight: {custom: my_init}\n"
            "    bias: {custom: other_init}\n"
            "  - weight: {custom: my_init, zero_abs_below: 0.5}\n");
    ck_assert_str_eq(plan(p),
                     "0.weight:default,0.bias:default,2.a.weight:default,2.a.bias:default,"
                     "2.b.weight:default,2.b.bias:default,"
                     "2.b.weight:ones,"
                     "2.a.bias:zeros,2.a.weight:constant,2.b.bias:zeros,2.b.weight:constant,"
                     "0.weight:mixture,2.a.weight:mixture,2.b.weight:mixture,"
                     "0.weight:custom,0.bias:custom,"
                     "0.weight:custom,2.a.weight:custom,2.b.weight:custom");
    ck_assert_int_eq(p->ncustom, 2);
    ck_assert_str_eq(p->custom[0], "my_init");
    ck_assert_str_eq(p->custom[1], "other_init");
    const initializer *c = p->steps[8].init;
    ck_assert_int_eq(c->kind, I_CONSTANT);
    ck_assert(c->a == 3);
    const initializer *mx = p->steps[11].init;
    ck_assert_int_eq(mx->nmix, 2);
    ck_assert_int_eq(mx->mix[1].kind, I_UNIFORM);
    ck_assert(mx->mix[1].a == -1 && mx->mix[1].b == 1 && mx->mix[1].p == 0.5);
    const initializer *z = p->steps[p->nsteps - 1].init;
    ck_assert_int_eq(z->has_zero_abs_below, 1);
    ck_assert(z->zero_abs_below == 0.5);
}
END_TEST

START_TEST(test_initializer_args)
{
    program *p;
    LOAD(p, "nngen: 1\n"
            "input: [4]\n"
            "model: [{linear: 4}]\n"
            "init:\n"
            "  - weight: {normal: {std: 0.01}}\n"
            "  - weight: {uniform: {b: 3}}\n"
            "  - weight: {xavier_normal: {gain: 2}}\n"
            "  - weight: {kaiming_normal: {a: 1, mode: fan_out, nonlinearity: relu}}\n"
            "  - weight: kaiming_uniform\n"
            "  - weight: {trunc_normal: [1, 2, -3, 4]}\n");
    const initializer *n = p->steps[2].init, *u = p->steps[3].init, *x = p->steps[4].init,
                      *k = p->steps[5].init, *ku = p->steps[6].init, *t = p->steps[7].init;
    ck_assert(n->kind == I_NORMAL && n->a == 0 && n->b == 0.01);
    ck_assert(u->kind == I_UNIFORM && u->a == 0 && u->b == 3);
    ck_assert(x->kind == I_XAVIER_NORMAL && x->a == 2);
    ck_assert(k->kind == I_KAIMING_NORMAL && k->a == 1);
    ck_assert_int_eq(k->mode, NN_FAN_OUT);
    ck_assert_int_eq(k->nonlinearity, 9); /* index of "relu" in check.c's table */
    ck_assert(ku->a == 0);
    ck_assert_int_eq(ku->mode, NN_FAN_IN);
    ck_assert_int_eq(ku->nonlinearity, NN_NL_LEAKY_RELU);
    ck_assert(t->a == 1 && t->b == 2 && t->c == -3 && t->d == 4);
}
END_TEST

START_TEST(test_plan_errors)
{
    static const char head[] = "nngen: 1\ninput: [4]\nmodel: [{linear: 4}, relu]\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%sinit:\n  - at: \"1.x\"\n    weight: zeros\n", head);
    expect_error(buf, 5, 9, "no child 'x' in module '1' (it has no children)");
    snprintf(buf, sizeof buf, "%sinit:\n  - layer: tanh\n    weight: zeros\n", head);
    expect_error(buf, 5, 5, "matches no parameter");
    snprintf(buf, sizeof buf, "%sinit:\n  - bias: kaiming_normal\n", head);
    expect_error(buf, 5, 11, "kaiming_normal needs a tensor with at least 2 dimensions");
    snprintf(buf, sizeof buf, "%sinit:\n  - weight: {uniform: [2, 1]}\n", head);
    expect_error(buf, 5, 23, "uniform needs a <= b");
    snprintf(buf, sizeof buf, "%sinit:\n  - weight: {mixture: [{p: 0.3, constant: 1}]}\n", head);
    expect_error(buf, 5, 23, "must sum to 1, they sum to 0.3");
}
END_TEST

/* ---- check.c: train -------------------------------------------------------------------- */

START_TEST(test_train_sgd)
{
    program *p;
    LOAD(p, "nngen: 1\ninput: [4]\nmodel: [{linear: 3}]\n"
            "train:\n"
            "  loss: cross_entropy\n"
            "  optimizer: {sgd: {lr: 0.03, momentum: 0.9, nesterov: true, weight_decay: 1e-4}}\n");
    ck_assert_int_eq(p->train.loss, LOSS_CROSS_ENTROPY);
    ck_assert_int_eq(p->train.opt, OPT_SGD);
    ck_assert(p->train.lr == 0.03);
    ck_assert(p->train.momentum == 0.9);
    ck_assert(p->train.dampening == 0);
    ck_assert_int_eq(p->train.nesterov, 1);
    ck_assert(p->train.weight_decay == 1e-4);
}
END_TEST

START_TEST(test_train_adam_defaults)
{
    program *p;
    LOAD(p, "nngen: 1\ninput: [4]\nmodel: [{linear: 3}]\n"
            "train: {loss: mse, optimizer: {adam: {}}}\n");
    ck_assert_int_eq(p->train.loss, LOSS_MSE);
    ck_assert_int_eq(p->train.opt, OPT_ADAM);
    ck_assert(p->train.lr == 0.001);
    ck_assert(p->train.beta1 == 0.9);
    ck_assert(p->train.beta2 == 0.999);
    ck_assert(p->train.eps == 1e-8);
    ck_assert(p->train.weight_decay == 0);
    ck_assert_int_eq(p->train.amsgrad, 0);
    program *q;
    LOAD(q, "nngen: 1\ninput: [4]\nmodel: [{linear: 3}]\n"
            "train:\n  loss: mse\n  optimizer:\n    adam:\n");
    ck_assert_int_eq(q->train.opt, OPT_ADAM);
    ck_assert(q->train.lr == 0.001);
    program *r;
    LOAD(r, "nngen: 1\ninput: [4]\nmodel: [{linear: 3}]\n"
            "train: {loss: mse, optimizer: {adam: {lr: 0.01, betas: [0.5, 0.6], eps: 0.1, "
            "amsgrad: true}}}\n");
    ck_assert(r->train.lr == 0.01 && r->train.beta1 == 0.5 && r->train.beta2 == 0.6);
    ck_assert(r->train.eps == 0.1);
    ck_assert_int_eq(r->train.amsgrad, 1);
}
END_TEST

START_TEST(test_train_errors)
{
    static const char head[] = "nngen: 1\ninput: [4]\nmodel: [{linear: 3}]\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%strain: {loss: mse}\n", head);
    expect_error(buf, 4, 8, "train needs 'optimizer'");
    snprintf(buf, sizeof buf, "%strain: {optimizer: {sgd: {lr: 1}}}\n", head);
    expect_error(buf, 4, 8, "train needs 'loss'");
    snprintf(buf, sizeof buf, "%strain: {loss: mse, optimizer: {adam: {betas: [0.9, 1]}}}\n",
             head);
    expect_error(buf, 4, 52, "beta2 must be in [0, 1)");
    snprintf(buf, sizeof buf, "%strain: {loss: mse, optimizer: {sgd: {lr: 1, momentum: 0.5, "
                              "dampening: 0.1, nesterov: true}}}\n", head);
    expect_error(buf, 4, 86, "nesterov momentum requires a momentum > 0 and zero dampening");
    snprintf(buf, sizeof buf, "%strain: {loss: mse, optimizer: {sgd: {lr: 1, momentum: -1}}}\n",
             head);
    expect_error(buf, 4, 55, "momentum must be >= 0");
}
END_TEST

/* ---- check.c: errors in-process ------------------------------------------------------ */

START_TEST(test_check_errors)
{
    expect_error("nngen: 1\ninput: [4]\nmodel: [lienar]\n", 3, 9,
                 "unknown layer or block 'lienar' (did you mean 'linear'?)");
    expect_error("nngen: 1\ninput: [4]\nblocks:\n  a: [relu, b]\n  b: [a]\nmodel: a\n", 5, 7,
                 "block cycle: a -> b -> a");
    expect_error("nngen: 1\ninput: [4]\nshared:\n  t: {linear: 2}\n"
                 "model: [{ref: t}, {ref: t}]\n",
                 5, 19, "shape mismatch in shared module 't' (declared at line 4), used here: "
                        "linear '1' takes 4 input features (fixed by its first use at line 5) "
                        "but gets input [1, 2]");
    expect_error("nngen: 1\ninput: [4]\n", 1, 1, "missing 'model:'");
    expect_error("nngen: 1\ninput: [4]\nmodel: {repeat: {times: 2, name: x, body: relu}}\n", 3,
                 34, "duplicate child name 'x'");
    expect_error("nngen: 1\ninput: [4]\nmodel: [{linear: 0}]\n", 3, 18,
                 "must be at least 1, got 0");
}
END_TEST

START_TEST(test_nesting_limit_modules)
{
    /* blocks b1..b64, each the only child of the one before: with the model
     * b1 (level 1) the relu in b64 is level 64, the limit */
    strbuf chain = {0};
    for (int i = 1; i < 64; i++)
        sb_printf(&chain, "  b%d: [b%d]\n", i, i + 1);
    sb_puts(&chain, "  b64: relu\n");
    strbuf ok = {0};
    sb_printf(&ok, "nngen: 1\ninput: [4]\nblocks:\n%smodel: b1\n", chain.s);
    program *p;
    LOAD(p, ok.s);
    strbuf path = {0};
    for (int i = 0; i < 63; i++)
        sb_puts(&path, i ? ".0" : "0");
    ck_assert_str_eq(find_module(p, path.s)->extra, "");
    ck_assert(find_module(p, path.s)->op != NULL);
    arena_release();
    /* one block more in front: b0 is not used by the model, but it is
     * checked as a model of its own, and there the relu (line 4 + 64) is
     * level 65 */
    strbuf bad = {0};
    sb_printf(&bad, "nngen: 1\ninput: [4]\nblocks:\n  b0: [b1]\n%smodel: relu\n", chain.s);
    expect_error(bad.s, 4 + 64, 8, "modules nested deeper than 64 levels (nngen's limit), here "
                                   "inside block 'b64'");
    free(chain.s);
    free(ok.s);
    free(path.s);
    free(bad.s);
}
END_TEST

START_TEST(test_module_limit)
{
    expect_error("nngen: 1\ninput: [4]\n"
                 "blocks:\n  w: {repeat: {times: 100000, body: relu}}\n"
                 "model: {repeat: {times: 11, body: w}}\n",
                 4, 37, "more than 1048576 modules");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("compiler");
    TCase *y = tcase_create("yaml");
    tcase_add_checked_fixture(y, NULL, teardown);
    tcase_add_test(y, test_yaml_locations);
    tcase_add_test(y, test_yaml_scalar_styles);
    tcase_add_test(y, test_yaml_utf8_columns);
    tcase_add_test(y, test_yaml_errors);
    tcase_add_test(y, test_yaml_parser_reuse_after_error);
    tcase_add_test(y, test_yaml_nesting_limit);
    tcase_add_test(y, test_yaml_many_keys);
    suite_add_tcase(s, y);

    TCase *n = tcase_create("names");
    tcase_add_checked_fixture(n, NULL, teardown);
    tcase_add_test(n, test_mlp);
    tcase_add_test(n, test_print_view);
    tcase_add_test(n, test_default_name_and_batch);
    tcase_add_test(n, test_nested_blocks);
    tcase_add_test(n, test_tied);
    tcase_add_test(n, test_shared_canonical_name);
    tcase_add_test(n, test_repeat_names_and_frozen);
    tcase_add_test(n, test_shapes_3d);
    tcase_add_test(n, test_layer_args);
    tcase_add_test(n, test_unused_block_checked_not_built);
    suite_add_tcase(s, n);

    TCase *i = tcase_create("init");
    tcase_add_checked_fixture(i, NULL, teardown);
    tcase_add_test(i, test_plan_order);
    tcase_add_test(i, test_plan_shared_once_per_parent);
    tcase_add_test(i, test_plan_filters);
    tcase_add_test(i, test_initializer_args);
    tcase_add_test(i, test_plan_errors);
    suite_add_tcase(s, i);

    TCase *t = tcase_create("train");
    tcase_add_checked_fixture(t, NULL, teardown);
    tcase_add_test(t, test_train_sgd);
    tcase_add_test(t, test_train_adam_defaults);
    tcase_add_test(t, test_train_errors);
    suite_add_tcase(s, t);

    TCase *e = tcase_create("errors");
    tcase_add_checked_fixture(e, NULL, teardown);
    tcase_set_timeout(e, 60);
    tcase_add_test(e, test_check_errors);
    tcase_add_test(e, test_nesting_limit_modules);
    tcase_add_test(e, test_module_limit);
    suite_add_tcase(s, e);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
