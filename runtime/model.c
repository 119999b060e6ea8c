/* nngen-rt: the model view (docs/language.md "Names", docs/api.md).
 *
 * Everything here reads the static nn_model_info emitted by nngen and the
 * per-instance nn_model; nothing allocates.
 *
 * Module parameter lists: nn_module.param_ids may also name buffers (tensor
 * info with is_buffer set) registered on that module, after its parameters;
 * they are found by nn_module_find_param and printed in state dicts, but
 * never counted as parameters by named_parameters()-style walks.
 *
 * The model's tensor table holds the parameters first (info->nparams of
 * them, named_parameters() order), then the buffers; nn_param_count and
 * nn_param see only the first part.  Buffers may have any nn_dtype; their
 * data pointer is their storage (an NN_I64 element takes two floats).
 */
#include <string.h>

#include <nngen/rt.h>

void nn_model_bind(nn_model *m, const nn_model_info *info, nn_tensor *tensors,
                   float *data, float *grad_block)
{
    int i, d;
    m->info = info;
    m->tensors = tensors;
    m->data = data;
    m->grad_block = grad_block;
    m->grads_attached = 0;
    m->weights_readonly = 0;
    m->hooks = NULL;
    for (i = 0; i < info->ntensors; i++) {
        const nn_tensor_info *ti = &info->tensors[i];
        nn_tensor *t = &tensors[i];
        t->name = ti->name;
        t->ndim = ti->ndim;
        for (d = 0; d < NN_MAX_DIM; d++)
            t->shape[d] = d < ti->ndim ? ti->shape[d] : 0;
        t->numel = ti->numel;
        t->data = data + ti->offset;
        t->grad = NULL;
        t->requires_grad = ti->is_buffer ? 0 : ti->requires_grad;
        t->dtype = ti->dtype;
        t->is_buffer = ti->is_buffer != 0;
    }
}

void nn_model_attach_grads(nn_model *m)
{
    const nn_model_info *info = m->info;
    int i;
    if (m->grads_attached)
        return;
    if (m->grad_block == NULL)
        return;
    if (info->grad_floats > 0)
        memset(m->grad_block, 0, info->grad_floats * sizeof(float));
    for (i = 0; i < info->ntensors; i++) {
        const nn_tensor_info *ti = &info->tensors[i];
        nn_tensor *t = &m->tensors[i];
        if (ti->is_buffer || !t->requires_grad)
            continue;
        /* Never point outside the gradient block, whatever the tables say. */
        if (ti->offset > info->grad_floats ||
            (size_t)ti->numel > info->grad_floats - ti->offset)
            continue;
        t->grad = m->grad_block + ti->offset;
    }
    m->grads_attached = 1;
}

size_t nn_param_count(const nn_model *m)
{
    int n = m->info->nparams < m->info->ntensors ? m->info->nparams : m->info->ntensors;
    return n > 0 ? (size_t)n : 0;
}

nn_tensor *nn_param(nn_model *m, size_t i)
{
    if (i >= nn_param_count(m))
        return NULL;
    return &m->tensors[i];
}

size_t nn_state_count(const nn_model *m)
{
    return m->info->nstate > 0 ? (size_t)m->info->nstate : 0;
}

const char *nn_state_key(const nn_model *m, size_t i)
{
    if (i >= nn_state_count(m))
        return NULL;
    return m->info->state_keys[i];
}

nn_tensor *nn_state_tensor(nn_model *m, size_t i)
{
    if (i >= nn_state_count(m))
        return NULL;
    return &m->tensors[m->info->state_ids[i]];
}

nn_tensor *nn_find(nn_model *m, const char *key)
{
    size_t i, n = nn_state_count(m);
    if (key == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        if (strcmp(m->info->state_keys[i], key) == 0)
            return &m->tensors[m->info->state_ids[i]];
    return NULL;
}

const nn_module *nn_model_root(const nn_model *m)
{
    return m->info->root;
}

/* Child of mod whose name is the len bytes at s; NULL if none. */
static const nn_module *child_named(const nn_module *mod, const char *s, size_t len)
{
    int i;
    for (i = 0; i < mod->nchildren; i++) {
        const char *cn = mod->child_names[i];
        if (strncmp(cn, s, len) == 0 && cn[len] == '\0')
            return mod->children[i];
    }
    return NULL;
}

/* Walk a '.'-separated relative path from mod; "" is mod itself. */
static const nn_module *walk(const nn_module *mod, const char *path, size_t len)
{
    size_t start = 0;
    if (mod == NULL)
        return NULL;
    if (len == 0)
        return mod;
    for (;;) {
        size_t end = start;
        while (end < len && path[end] != '.')
            end++;
        if (end == start)              /* empty component: "a..b", ".a", "a." */
            return NULL;
        mod = child_named(mod, path + start, end - start);
        if (mod == NULL)
            return NULL;
        if (end == len)
            return mod;
        start = end + 1;
    }
}

const nn_module *nn_module_find(const nn_model *m, const char *path)
{
    if (path == NULL)
        return NULL;
    return walk(m->info->root, path, strlen(path));
}

size_t nn_module_child_count(const nn_module *mod)
{
    return mod != NULL && mod->nchildren > 0 ? (size_t)mod->nchildren : 0;
}

const nn_module *nn_module_child(const nn_module *mod, size_t i)
{
    if (i >= nn_module_child_count(mod))
        return NULL;
    return mod->children[i];
}

size_t nn_module_param_count(const nn_module *mod)
{
    return mod != NULL && mod->nparams > 0 ? (size_t)mod->nparams : 0;
}

nn_tensor *nn_module_param(nn_model *m, const nn_module *mod, size_t i)
{
    if (i >= nn_module_param_count(mod))
        return NULL;
    return &m->tensors[mod->param_ids[i]];
}

nn_tensor *nn_module_find_param(nn_model *m, const nn_module *mod, const char *key)
{
    const char *dot;
    const char *local;
    const nn_module *owner;
    int i;
    if (mod == NULL || key == NULL)
        return NULL;
    dot = strrchr(key, '.');
    if (dot != NULL) {
        owner = walk(mod, key, (size_t)(dot - key));
        if (owner == NULL || dot == key)
            return NULL;
        local = dot + 1;
    } else {
        owner = mod;
        local = key;
    }
    for (i = 0; i < owner->nparams; i++)
        if (strcmp(owner->param_names[i], local) == 0)
            return &m->tensors[owner->param_ids[i]];
    return NULL;
}
