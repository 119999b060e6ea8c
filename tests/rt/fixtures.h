/* Hand-written model tables for the runtime tests, standing in for what
 * nngen emits (nn_model_info and the nn_module tree as static const data).
 *
 *   mlp    the seed's net: Sequential(Linear(4,8), ReLU(), Linear(8,1))
 *   rgnet  Sequential(Sequential(block0..block3 = Sequential(Linear(4,8),
 *          ReLU(), Linear(8,4), ReLU())), Linear(4,1))
 *   tied   Sequential(Linear(4,8), ReLU(), shared, ReLU(), shared, ReLU(),
 *          Linear(8,1)) with shared = Linear(8,8): ONE nn_module object used
 *          as children 2 and 4; parameters 0.*, 2.*, 6.*; the state dict
 *          adds the aliases 4.weight, 4.bias.
 *   misc   Sequential(Linear(3,2) frozen, Scale(2) [parameter weight and
 *          buffer running_mean, extra_repr "num_features=2"],
 *          Wrap [extra_repr "tag=1\nmode=fast", children
 *          inner=Linear(2,2), empty=Sequential()])
 *   bn     Sequential(Linear(4,3), BatchNorm1d(3), ReLU(), Linear(3,2),
 *          BatchNorm1d(2)): buffers running_mean, running_var (float32) and
 *          num_batches_tracked (int64, 0-d) after each batch norm's weight
 *          and bias; the tensor table lists the 8 parameters, then the 6
 *          buffers; each int64 buffer takes 2 floats at an even offset (one
 *          float of padding before 1.num_batches_tracked, at 39)
 *   tiedbn Sequential(Linear(2,3), shared, ReLU(), shared) with shared =
 *          BatchNorm1d(3): ONE module as children 1 and 3; the state dict
 *          repeats its parameters and buffers under 3.* (aliases, the int64
 *          3.num_batches_tracked included)
 *   empty  Sequential()
 *
 * tests/rt/torch_models.py builds the same networks in PyTorch.
 */
#ifndef NNGEN_TESTS_RT_FIXTURES_H
#define NNGEN_TESTS_RT_FIXTURES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#define FX_LINEAR_EXTRA(i, o) "in_features=" #i ", out_features=" #o ", bias=True"

static const char *const fx_wb_names[] = {"weight", "bias"};

#define FX_LEAF(var, path_, name_, type_, extra_)                                     \
    static const nn_module var = {path_, name_, type_, extra_, 0, NULL, NULL, 0, NULL, NULL}
#define FX_LINEAR(var, path_, name_, i, o, id0)                                       \
    static const int var##_ids[] = {(id0), (id0) + 1};                                \
    static const nn_module var = {path_, name_, "Linear", FX_LINEAR_EXTRA(i, o), 0,    \
                                  NULL, NULL, 2, fx_wb_names, var##_ids}

/* ------------------------------------------------------------------ */
/* mlp                                                                 */

static const nn_tensor_info fx_mlp_tensors[] = {
    {"0.weight", 2, {8, 4, 0, 0}, 32, 0, 1, 0, NN_F32},
    {"0.bias", 1, {8, 0, 0, 0}, 8, 32, 1, 0, NN_F32},
    {"2.weight", 2, {1, 8, 0, 0}, 8, 40, 1, 0, NN_F32},
    {"2.bias", 1, {1, 0, 0, 0}, 1, 48, 1, 0, NN_F32},
};
FX_LINEAR(fx_mlp_0, "0", "0", 4, 8, 0);
FX_LEAF(fx_mlp_1, "1", "1", "ReLU", "");
FX_LINEAR(fx_mlp_2, "2", "2", 8, 1, 2);
static const char *const fx_mlp_root_names[] = {"0", "1", "2"};
static const nn_module *const fx_mlp_root_children[] = {&fx_mlp_0, &fx_mlp_1, &fx_mlp_2};
static const nn_module fx_mlp_root = {"", "", "Sequential", "", 3, fx_mlp_root_names,
                                      fx_mlp_root_children, 0, NULL, NULL};
static const char *const fx_mlp_keys[] = {"0.weight", "0.bias", "2.weight", "2.bias"};
static const int fx_mlp_key_ids[] = {0, 1, 2, 3};
static const nn_model_info fx_mlp_info = {
    "mlp", 4, 4, fx_mlp_tensors, 4, fx_mlp_keys, fx_mlp_key_ids, &fx_mlp_root, 49, 49};

/* ------------------------------------------------------------------ */
/* rgnet                                                               */

#define FX_RG_TENSORS(b)                                                              \
    {"0.block" #b ".0.weight", 2, {8, 4, 0, 0}, 32, (b) * 76 + 0, 1, 0, NN_F32},              \
    {"0.block" #b ".0.bias", 1, {8, 0, 0, 0}, 8, (b) * 76 + 32, 1, 0, NN_F32},                \
    {"0.block" #b ".2.weight", 2, {4, 8, 0, 0}, 32, (b) * 76 + 40, 1, 0, NN_F32},             \
    {"0.block" #b ".2.bias", 1, {4, 0, 0, 0}, 4, (b) * 76 + 72, 1, 0, NN_F32}
static const nn_tensor_info fx_rg_tensors[] = {
    FX_RG_TENSORS(0), FX_RG_TENSORS(1), FX_RG_TENSORS(2), FX_RG_TENSORS(3),
    {"1.weight", 2, {1, 4, 0, 0}, 4, 304, 1, 0, NN_F32},
    {"1.bias", 1, {1, 0, 0, 0}, 1, 308, 1, 0, NN_F32},
};
static const char *const fx_rg_block_names[] = {"0", "1", "2", "3"};
#define FX_RG_BLOCK(b)                                                                \
    FX_LINEAR(fx_rg_b##b##_0, "0.block" #b ".0", "0", 4, 8, (b) * 4);                 \
    FX_LEAF(fx_rg_b##b##_1, "0.block" #b ".1", "1", "ReLU", "");                      \
    FX_LINEAR(fx_rg_b##b##_2, "0.block" #b ".2", "2", 8, 4, (b) * 4 + 2);             \
    FX_LEAF(fx_rg_b##b##_3, "0.block" #b ".3", "3", "ReLU", "");                      \
    static const nn_module *const fx_rg_b##b##_children[] = {                         \
        &fx_rg_b##b##_0, &fx_rg_b##b##_1, &fx_rg_b##b##_2, &fx_rg_b##b##_3};          \
    static const nn_module fx_rg_b##b = {"0.block" #b, "block" #b, "Sequential", "",  \
                                         4, fx_rg_block_names, fx_rg_b##b##_children, \
                                         0, NULL, NULL}
FX_RG_BLOCK(0);
FX_RG_BLOCK(1);
FX_RG_BLOCK(2);
FX_RG_BLOCK(3);
static const char *const fx_rg_0_names[] = {"block0", "block1", "block2", "block3"};
static const nn_module *const fx_rg_0_children[] = {&fx_rg_b0, &fx_rg_b1, &fx_rg_b2,
                                                    &fx_rg_b3};
static const nn_module fx_rg_0 = {"0", "0", "Sequential", "", 4, fx_rg_0_names,
                                  fx_rg_0_children, 0, NULL, NULL};
FX_LINEAR(fx_rg_1, "1", "1", 4, 1, 16);
static const char *const fx_rg_root_names[] = {"0", "1"};
static const nn_module *const fx_rg_root_children[] = {&fx_rg_0, &fx_rg_1};
static const nn_module fx_rg_root = {"", "", "Sequential", "", 2, fx_rg_root_names,
                                     fx_rg_root_children, 0, NULL, NULL};
#define FX_RG_KEYS(b)                                                                 \
    "0.block" #b ".0.weight", "0.block" #b ".0.bias", "0.block" #b ".2.weight",       \
        "0.block" #b ".2.bias"
static const char *const fx_rg_keys[] = {FX_RG_KEYS(0), FX_RG_KEYS(1), FX_RG_KEYS(2),
                                         FX_RG_KEYS(3), "1.weight", "1.bias"};
static const int fx_rg_key_ids[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                    16, 17};
static const nn_model_info fx_rgnet_info = {
    "rgnet", 18, 18, fx_rg_tensors, 18, fx_rg_keys, fx_rg_key_ids, &fx_rg_root, 309, 309};

/* ------------------------------------------------------------------ */
/* tied                                                                */

static const nn_tensor_info fx_tied_tensors[] = {
    {"0.weight", 2, {8, 4, 0, 0}, 32, 0, 1, 0, NN_F32},
    {"0.bias", 1, {8, 0, 0, 0}, 8, 32, 1, 0, NN_F32},
    {"2.weight", 2, {8, 8, 0, 0}, 64, 40, 1, 0, NN_F32},
    {"2.bias", 1, {8, 0, 0, 0}, 8, 104, 1, 0, NN_F32},
    {"6.weight", 2, {1, 8, 0, 0}, 8, 112, 1, 0, NN_F32},
    {"6.bias", 1, {1, 0, 0, 0}, 1, 120, 1, 0, NN_F32},
};
FX_LINEAR(fx_tied_0, "0", "0", 4, 8, 0);
FX_LEAF(fx_tied_1, "1", "1", "ReLU", "");
FX_LINEAR(fx_tied_shared, "2", "2", 8, 8, 2);
FX_LEAF(fx_tied_3, "3", "3", "ReLU", "");
FX_LEAF(fx_tied_5, "5", "5", "ReLU", "");
FX_LINEAR(fx_tied_6, "6", "6", 8, 1, 4);
static const char *const fx_tied_root_names[] = {"0", "1", "2", "3", "4", "5", "6"};
static const nn_module *const fx_tied_root_children[] = {
    &fx_tied_0, &fx_tied_1, &fx_tied_shared, &fx_tied_3, &fx_tied_shared, &fx_tied_5,
    &fx_tied_6};
static const nn_module fx_tied_root = {"", "", "Sequential", "", 7, fx_tied_root_names,
                                       fx_tied_root_children, 0, NULL, NULL};
static const char *const fx_tied_keys[] = {"0.weight", "0.bias", "2.weight", "2.bias",
                                           "4.weight", "4.bias", "6.weight", "6.bias"};
static const int fx_tied_key_ids[] = {0, 1, 2, 3, 2, 3, 4, 5};
static const nn_model_info fx_tied_info = {
    "tied", 6, 6, fx_tied_tensors, 8, fx_tied_keys, fx_tied_key_ids, &fx_tied_root, 121, 121};

/* ------------------------------------------------------------------ */
/* misc: frozen parameters, a buffer, extra_repr with children         */

static const nn_tensor_info fx_misc_tensors[] = {
    {"0.weight", 2, {2, 3, 0, 0}, 6, 0, 0, 0, NN_F32},
    {"0.bias", 1, {2, 0, 0, 0}, 2, 6, 0, 0, NN_F32},
    {"1.weight", 1, {2, 0, 0, 0}, 2, 8, 1, 0, NN_F32},
    {"2.inner.weight", 2, {2, 2, 0, 0}, 4, 10, 1, 0, NN_F32},
    {"2.inner.bias", 1, {2, 0, 0, 0}, 2, 14, 1, 0, NN_F32},
    {"1.running_mean", 1, {2, 0, 0, 0}, 2, 16, 0, 1, NN_F32},
};
FX_LINEAR(fx_misc_0, "0", "0", 3, 2, 0);
static const char *const fx_misc_scale_names[] = {"weight", "running_mean"};
static const int fx_misc_scale_ids[] = {2, 5};
static const nn_module fx_misc_1 = {"1", "1", "Scale", "num_features=2", 0, NULL, NULL,
                                    2, fx_misc_scale_names, fx_misc_scale_ids};
FX_LINEAR(fx_misc_inner, "2.inner", "inner", 2, 2, 3);
FX_LEAF(fx_misc_empty, "2.empty", "empty", "Sequential", "");
static const char *const fx_misc_2_names[] = {"inner", "empty"};
static const nn_module *const fx_misc_2_children[] = {&fx_misc_inner, &fx_misc_empty};
static const nn_module fx_misc_2 = {"2", "2", "Wrap", "tag=1\nmode=fast", 2,
                                    fx_misc_2_names, fx_misc_2_children, 0, NULL, NULL};
static const char *const fx_misc_root_names[] = {"0", "1", "2"};
static const nn_module *const fx_misc_root_children[] = {&fx_misc_0, &fx_misc_1,
                                                         &fx_misc_2};
static const nn_module fx_misc_root = {"", "", "Sequential", "", 3, fx_misc_root_names,
                                       fx_misc_root_children, 0, NULL, NULL};
static const char *const fx_misc_keys[] = {"0.weight", "0.bias", "1.weight",
                                           "1.running_mean", "2.inner.weight",
                                           "2.inner.bias"};
static const int fx_misc_key_ids[] = {0, 1, 2, 5, 3, 4};
static const nn_model_info fx_misc_info = {
    "misc", 6, 5, fx_misc_tensors, 6, fx_misc_keys, fx_misc_key_ids, &fx_misc_root, 18, 18};

/* ------------------------------------------------------------------ */
/* bn: batch norm buffers, int64 num_batches_tracked                   */

#define FX_BN_EXTRA(c) #c ", eps=1e-05, momentum=0.1, affine=True, track_running_stats=True"

static const nn_tensor_info fx_bn_tensors[] = {
    {"0.weight", 2, {3, 4, 0, 0}, 12, 0, 1, 0, NN_F32},
    {"0.bias", 1, {3, 0, 0, 0}, 3, 12, 1, 0, NN_F32},
    {"1.weight", 1, {3, 0, 0, 0}, 3, 15, 1, 0, NN_F32},
    {"1.bias", 1, {3, 0, 0, 0}, 3, 18, 1, 0, NN_F32},
    {"3.weight", 2, {2, 3, 0, 0}, 6, 21, 1, 0, NN_F32},
    {"3.bias", 1, {2, 0, 0, 0}, 2, 27, 1, 0, NN_F32},
    {"4.weight", 1, {2, 0, 0, 0}, 2, 29, 1, 0, NN_F32},
    {"4.bias", 1, {2, 0, 0, 0}, 2, 31, 1, 0, NN_F32},
    {"1.running_mean", 1, {3, 0, 0, 0}, 3, 33, 0, 1, NN_F32},
    {"1.running_var", 1, {3, 0, 0, 0}, 3, 36, 0, 1, NN_F32},
    {"1.num_batches_tracked", 0, {0, 0, 0, 0}, 1, 40, 0, 1, NN_I64},
    {"4.running_mean", 1, {2, 0, 0, 0}, 2, 42, 0, 1, NN_F32},
    {"4.running_var", 1, {2, 0, 0, 0}, 2, 44, 0, 1, NN_F32},
    {"4.num_batches_tracked", 0, {0, 0, 0, 0}, 1, 46, 0, 1, NN_I64},
};
static const char *const fx_bn_names[] = {"weight", "bias", "running_mean", "running_var",
                                          "num_batches_tracked"};
FX_LINEAR(fx_bn_0, "0", "0", 4, 3, 0);
static const int fx_bn_1_ids[] = {2, 3, 8, 9, 10};
static const nn_module fx_bn_1 = {"1", "1", "BatchNorm1d", FX_BN_EXTRA(3), 0, NULL, NULL,
                                  5, fx_bn_names, fx_bn_1_ids};
FX_LEAF(fx_bn_2, "2", "2", "ReLU", "");
FX_LINEAR(fx_bn_3, "3", "3", 3, 2, 4);
static const int fx_bn_4_ids[] = {6, 7, 11, 12, 13};
static const nn_module fx_bn_4 = {"4", "4", "BatchNorm1d", FX_BN_EXTRA(2), 0, NULL, NULL,
                                  5, fx_bn_names, fx_bn_4_ids};
static const char *const fx_bn_root_names[] = {"0", "1", "2", "3", "4"};
static const nn_module *const fx_bn_root_children[] = {&fx_bn_0, &fx_bn_1, &fx_bn_2,
                                                       &fx_bn_3, &fx_bn_4};
static const nn_module fx_bn_root = {"", "", "Sequential", "", 5, fx_bn_root_names,
                                     fx_bn_root_children, 0, NULL, NULL};
static const char *const fx_bn_keys[] = {
    "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
    "1.num_batches_tracked", "3.weight", "3.bias", "4.weight", "4.bias", "4.running_mean",
    "4.running_var", "4.num_batches_tracked"};
static const int fx_bn_key_ids[] = {0, 1, 2, 3, 8, 9, 10, 4, 5, 6, 7, 11, 12, 13};
static const nn_model_info fx_bn_info = {
    "bn", 14, 8, fx_bn_tensors, 14, fx_bn_keys, fx_bn_key_ids, &fx_bn_root, 48, 33};

/* ------------------------------------------------------------------ */
/* tiedbn: a shared batch norm, aliases of buffers                     */

static const nn_tensor_info fx_tiedbn_tensors[] = {
    {"0.weight", 2, {3, 2, 0, 0}, 6, 0, 1, 0, NN_F32},
    {"0.bias", 1, {3, 0, 0, 0}, 3, 6, 1, 0, NN_F32},
    {"1.weight", 1, {3, 0, 0, 0}, 3, 9, 1, 0, NN_F32},
    {"1.bias", 1, {3, 0, 0, 0}, 3, 12, 1, 0, NN_F32},
    {"1.running_mean", 1, {3, 0, 0, 0}, 3, 15, 0, 1, NN_F32},
    {"1.running_var", 1, {3, 0, 0, 0}, 3, 18, 0, 1, NN_F32},
    {"1.num_batches_tracked", 0, {0, 0, 0, 0}, 1, 22, 0, 1, NN_I64},
};
FX_LINEAR(fx_tiedbn_0, "0", "0", 2, 3, 0);
static const int fx_tiedbn_1_ids[] = {2, 3, 4, 5, 6};
static const nn_module fx_tiedbn_1 = {"1", "1", "BatchNorm1d", FX_BN_EXTRA(3), 0, NULL, NULL,
                                      5, fx_bn_names, fx_tiedbn_1_ids};
FX_LEAF(fx_tiedbn_2, "2", "2", "ReLU", "");
static const char *const fx_tiedbn_root_names[] = {"0", "1", "2", "3"};
static const nn_module *const fx_tiedbn_root_children[] = {&fx_tiedbn_0, &fx_tiedbn_1,
                                                           &fx_tiedbn_2, &fx_tiedbn_1};
static const nn_module fx_tiedbn_root = {"", "", "Sequential", "", 4, fx_tiedbn_root_names,
                                         fx_tiedbn_root_children, 0, NULL, NULL};
static const char *const fx_tiedbn_keys[] = {
    "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
    "1.num_batches_tracked", "3.weight", "3.bias", "3.running_mean", "3.running_var",
    "3.num_batches_tracked"};
static const int fx_tiedbn_key_ids[] = {0, 1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 6};
static const nn_model_info fx_tiedbn_info = {
    "tiedbn", 7, 4, fx_tiedbn_tensors, 12, fx_tiedbn_keys, fx_tiedbn_key_ids, &fx_tiedbn_root,
    24, 15};

/* ------------------------------------------------------------------ */
/* empty                                                               */

static const nn_module fx_empty_root = {"", "", "Sequential", "", 0, NULL, NULL, 0, NULL,
                                        NULL};
static const nn_model_info fx_empty_info = {
    "empty", 0, 0, NULL, 0, NULL, NULL, &fx_empty_root, 0, 0};

/* ------------------------------------------------------------------ */
/* Instances                                                           */

typedef struct fx_model {
    nn_model model;
    nn_tensor *tensors;
    float *data;
    float *grad;
} fx_model;

static inline const nn_model_info *fx_lookup(const char *name)
{
    static const nn_model_info *const all[] = {&fx_mlp_info, &fx_rgnet_info, &fx_tied_info,
                                               &fx_misc_info, &fx_bn_info, &fx_tiedbn_info,
                                               &fx_empty_info};
    size_t i;
    for (i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

/* Grad block filled with garbage so tests see that attach zeroes it. */
static inline fx_model *fx_new(const nn_model_info *info)
{
    fx_model *fx = (fx_model *)calloc(1, sizeof *fx);
    size_t i;
    if (fx == NULL)
        return NULL;
    fx->tensors = (nn_tensor *)calloc((size_t)info->ntensors + 1, sizeof(nn_tensor));
    fx->data = (float *)calloc(info->data_floats + 1, sizeof(float));
    fx->grad = (float *)calloc(info->grad_floats + 1, sizeof(float));
    if (fx->tensors == NULL || fx->data == NULL || fx->grad == NULL) {
        free(fx->tensors);
        free(fx->data);
        free(fx->grad);
        free(fx);
        return NULL;
    }
    for (i = 0; i < info->grad_floats; i++)
        fx->grad[i] = 123.0f;
    nn_model_bind(&fx->model, info, fx->tensors, fx->data, fx->grad);
    return fx;
}

static inline fx_model *fx_new_named(const char *name)
{
    const nn_model_info *info = fx_lookup(name);
    return info != NULL ? fx_new(info) : NULL;
}

static inline void fx_free(fx_model *fx)
{
    if (fx == NULL)
        return;
    free(fx->tensors);
    free(fx->data);
    free(fx->grad);
    free(fx);
}

/* An int64 element of t's storage (t->data read as int64_t *). */
static inline int64_t fx_get_i64(const nn_tensor *t, int64_t i)
{
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, sizeof v);
    return v;
}

static inline void fx_set_i64(nn_tensor *t, int64_t i, int64_t v)
{
    memcpy((char *)t->data + 8 * i, &v, sizeof v);
}

/* Deterministic, distinct values in (-1, 1): data[i] depends on seed and i
   (so an int64 tensor holds whatever those floats' bits make). */
static inline void fx_fill(fx_model *fx, uint32_t seed)
{
    size_t i;
    uint32_t x = seed * 2654435761u + 12345u;
    for (i = 0; i < fx->model.info->data_floats; i++) {
        x = x * 1664525u + 1013904223u;
        fx->data[i] = (float)((double)(x >> 8) / 8388608.0 - 1.0);
    }
}

#endif
