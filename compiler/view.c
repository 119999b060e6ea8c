/* view.c: the checked program as the runtime's nn_model, so that
 * `nngen --print` uses the very printer the generated code links with
 * (one implementation of PyTorch's print format, not two). */
#include <errno.h>
#include <string.h>

#include "nngen.h"

static nn_module *view_module(const program *p, const module *m, nn_module **made)
{
    if (made[m->id])
        return made[m->id];
    nn_module *v = xalloc(sizeof *v);
    made[m->id] = v;
    v->path = m->path;
    const char *dot = strrchr(m->path, '.');
    v->name = dot ? dot + 1 : m->path;
    v->type = module_class(m);
    v->extra = m->extra;
    v->nchildren = m->nchildren;
    const char **names = xalloc(sizeof *names * (size_t)(m->nchildren + 1));
    const nn_module **kids = xalloc(sizeof *kids * (size_t)(m->nchildren + 1));
    for (int i = 0; i < m->nchildren; i++) {
        names[i] = m->children[i].name;
        kids[i] = view_module(p, m->children[i].m, made);
    }
    v->child_names = names;
    v->children = kids;
    v->nparams = m->nparams + m->nbuffers; /* the runtime lists buffers there too */
    v->param_names = m->tens_local;
    v->param_ids = m->tens_ids;
    return v;
}

nn_model *build_view(const program *p)
{
    nn_module **made = xalloc(sizeof *made * (size_t)(p->nmodules + 1));
    nn_tensor_info *ti = xalloc(sizeof *ti * (size_t)(p->ntensors + 1));
    nn_tensor *tt = xalloc(sizeof *tt * (size_t)(p->ntensors + 1));
    for (int i = 0; i < p->ntensors; i++) {
        const tensor *t = &p->tensors[i];
        ti[i].name = t->name;
        ti[i].ndim = t->ndim;
        memcpy(ti[i].shape, t->shape, sizeof t->shape);
        ti[i].numel = t->numel;
        ti[i].offset = (size_t)t->offset;
        ti[i].requires_grad = t->requires_grad;
        ti[i].is_buffer = t->is_buffer;
        ti[i].dtype = t->dtype == DT_I64 ? NN_I64 : t->dtype == DT_I32 ? NN_I32 : NN_F32;
        tt[i].dtype = ti[i].dtype;
        tt[i].name = t->name;
        tt[i].ndim = t->ndim;
        memcpy(tt[i].shape, t->shape, sizeof t->shape);
        tt[i].numel = t->numel;
        tt[i].requires_grad = t->requires_grad;
    }
    const char **keys = xalloc(sizeof *keys * (size_t)(p->nstate + 1));
    int *ids = xalloc(sizeof *ids * (size_t)(p->nstate + 1));
    for (int i = 0; i < p->nstate; i++) {
        keys[i] = p->state[i].key;
        ids[i] = p->state[i].tensor;
    }
    nn_model_info *info = xalloc(sizeof *info);
    info->name = p->name;
    info->ntensors = p->ntensors;
    info->nparams = p->nparam_tensors;
    info->tensors = ti;
    info->nstate = p->nstate;
    info->state_keys = keys;
    info->state_ids = ids;
    info->root = view_module(p, p->root, made);
    info->data_floats = (size_t)p->param_floats;
    info->grad_floats = (size_t)p->grad_floats;
    nn_model *m = xalloc(sizeof *m);
    m->info = info;
    m->tensors = tt; /* names and shapes only: --print/--params need no data */
    return m;
}

const uint32_t *load_baked_weights(const program *p, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        io_error("cannot read the weights file '%s': %s", path, strerror(errno));
    fclose(f);
    nn_model *m = build_view(p);
    size_t n = (size_t)p->param_floats;
    float *data = xalloc(sizeof *data * (n ? n : 1));
    nn_tensor *tt = m->tensors;
    nn_model_bind(m, m->info, tt, data, NULL);
    if (nn_load(m, path) != 0) {
        /* nn_load's own message, "PATH: why", as the compiler's "PATH: error: why" */
        const char *msg = nn_error();
        size_t pl = strlen(path);
        if (!strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2))
            msg += pl + 2;
        loc l = {path, 0, 0};
        error_at(l, "%s%s", msg, strstr(msg, "tensor '") ? " (--weights takes what nn_save writes "
                 "for this spec: every state_dict key with its shape, as nngen --params lists "
                 "them)" : "");
    }
    uint32_t *bits = xalloc(sizeof *bits * (n ? n : 1));
    memcpy(bits, data, sizeof *bits * n);
    return bits;
}
