/* ops/registry.c: every layer type, from ops/ops.def, and the generic
 * accessors of op.h that do not belong to one phase. */
#include <stdlib.h>
#include <string.h>

#include "op.h"

#define OP(file, sym) extern const op_desc sym;
#include "ops.def"
#undef OP

const op_desc *const op_registry[] = {
#define OP(file, sym) &sym,
#include "ops.def"
#undef OP
};
const int op_count = (int)(sizeof op_registry / sizeof op_registry[0]);

const char *op_name_list(void)
{
    strbuf b = {0};
    for (int i = 0; i < op_count; i++)
        sb_printf(&b, "%s%s", i ? ", " : "", op_registry[i]->name);
    const char *r = xstrdup(b.s ? b.s : "");
    free(b.s);
    return r;
}

const op_desc *op_find(const char *name)
{
    for (int i = 0; i < op_count; i++)
        if (!strcmp(op_registry[i]->name, name))
            return op_registry[i];
    return NULL;
}

int op_reads_input(const module *m)
{
    if (m->op->backward_reads_input_of)
        return m->op->backward_reads_input_of(m);
    return m->op->backward_reads_input;
}

const char *op_extra_repr(const module *m)
{
    if (m->op->extra_repr)
        return m->op->extra_repr(m);
    return m->op->extra_fixed ? m->op->extra_fixed : "";
}

const char *op_torch_ctor(const module *m)
{
    if (m->op->torch_ctor)
        return m->op->torch_ctor(m);
    return m->op->torch_ctor_fixed;
}

void op_default_init(const module *m, const tensor *t, initializer *out)
{
    memset(out, 0, sizeof *out);
    out->kind = I_ZEROS;
    if (m->op->default_init)
        m->op->default_init(m, t, out);
}

const char *module_class(const module *m)
{
    if (m->op && m->op->cls_of)
        return m->op->cls_of(m);
    return m->op ? m->op->cls : m->kind == MOD_SEQUENTIAL ? "Sequential" : "Residual";
}

int64_t arg_int(const module *m, int k)
{
    return m->args[k].i;
}

double arg_num(const module *m, int k)
{
    return m->args[k].d;
}

/* Python prints an int argument as an int, every digit as written; a
   float as repr() of its double. */
const char *arg_py(const module *m, int k)
{
    const argval *a = &m->args[k];
    char num[64];
    if (a->is_int) {
        const char *t = a->text;
        int neg = *t == '-';
        t += *t == '-' || *t == '+';
        while (t[0] == '0' && t[1])
            t++;
        return xfmt("%s%s", neg && strcmp(t, "0") ? "-" : "", t);
    }
    py_float_repr(num, sizeof num, a->d);
    return xstrdup(num);
}

int64_t arg_pair(const module *m, int k, int which)
{
    return which ? m->args[k].i2 : m->args[k].i;
}

const char *arg_word(const module *m, int k)
{
    return m->args[k].word;
}

const char *arg_pair_py(const module *m, int k)
{
    const argval *a = &m->args[k];
    if (a->word)
        return xfmt("'%s'", a->word);
    if (a->is_list)
        return xfmt("(%lld, %lld)", (long long)a->i, (long long)a->i2);
    return xfmt("%lld", (long long)a->i);
}
