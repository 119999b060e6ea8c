/* Unit tests for the runtime's model view (runtime/model.c), using the
 * hand-written fixtures of fixtures.h. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"

START_TEST(test_mlp_params)
{
    fx_model *fx = fx_new(&fx_mlp_info);
    nn_model *m = &fx->model;
    ck_assert_ptr_nonnull(fx);
    ck_assert_uint_eq(nn_param_count(m), 4);
    ck_assert_uint_eq(nn_state_count(m), 4);
    ck_assert_str_eq(nn_param(m, 0)->name, "0.weight");
    ck_assert_str_eq(nn_param(m, 3)->name, "2.bias");
    ck_assert_int_eq(nn_param(m, 0)->ndim, 2);
    ck_assert_int_eq((int)nn_param(m, 0)->shape[0], 8);
    ck_assert_int_eq((int)nn_param(m, 0)->shape[1], 4);
    ck_assert_int_eq((int)nn_param(m, 0)->numel, 32);
    ck_assert_ptr_eq(nn_param(m, 0)->data, fx->data);
    ck_assert_ptr_eq(nn_param(m, 2)->data, fx->data + 40);
    ck_assert_ptr_null(nn_param(m, 4));
    ck_assert_ptr_null(nn_param(m, (size_t)-1));
    ck_assert_ptr_null(nn_state_key(m, 4));
    ck_assert_ptr_null(nn_state_tensor(m, 4));
    ck_assert_str_eq(nn_state_key(m, 2), "2.weight");
    ck_assert_ptr_eq(nn_state_tensor(m, 2), nn_param(m, 2));
    ck_assert_ptr_eq(nn_find(m, "2.bias"), nn_param(m, 3));
    ck_assert_ptr_null(nn_find(m, "1.weight"));
    ck_assert_ptr_null(nn_find(m, "2.bia"));
    ck_assert_ptr_null(nn_find(m, "2.bias.x"));
    ck_assert_ptr_null(nn_find(m, ""));
    ck_assert_ptr_null(nn_find(m, NULL));
    fx_free(fx);
}
END_TEST

START_TEST(test_mlp_modules)
{
    fx_model *fx = fx_new(&fx_mlp_info);
    nn_model *m = &fx->model;
    const nn_module *root = nn_model_root(m);
    const nn_module *l2;
    ck_assert_ptr_eq(root, &fx_mlp_root);
    ck_assert_ptr_eq(nn_module_find(m, ""), root);
    ck_assert_uint_eq(nn_module_child_count(root), 3);   /* len(net) */
    ck_assert_str_eq(nn_module_child(root, 1)->type, "ReLU");
    ck_assert_ptr_null(nn_module_child(root, 3));
    l2 = nn_module_find(m, "2");
    ck_assert_ptr_eq(l2, nn_module_child(root, 2));
    ck_assert_str_eq(l2->path, "2");
    ck_assert_str_eq(l2->type, "Linear");
    ck_assert_uint_eq(nn_module_param_count(l2), 2);
    ck_assert_ptr_eq(nn_module_param(m, l2, 1), nn_find(m, "2.bias"));
    ck_assert_ptr_null(nn_module_param(m, l2, 2));
    ck_assert_str_eq(l2->param_names[1], "bias");
    ck_assert_ptr_eq(nn_module_find_param(m, l2, "weight"), nn_find(m, "2.weight"));
    ck_assert_ptr_eq(nn_module_find_param(m, root, "2.weight"), nn_find(m, "2.weight"));
    ck_assert_ptr_null(nn_module_find_param(m, root, "weight"));
    ck_assert_ptr_null(nn_module_find_param(m, root, "1.weight"));
    ck_assert_ptr_null(nn_module_find_param(m, root, ".weight"));
    ck_assert_ptr_null(nn_module_find_param(m, root, "2."));
    ck_assert_uint_eq(nn_module_param_count(nn_module_find(m, "1")), 0);
    ck_assert_uint_eq(nn_module_child_count(l2), 0);
    ck_assert_ptr_null(nn_module_child(l2, 0));
    ck_assert_ptr_null(nn_module_find(m, "3"));
    ck_assert_ptr_null(nn_module_find(m, "2.0"));
    ck_assert_ptr_null(nn_module_find(m, "."));
    ck_assert_ptr_null(nn_module_find(m, "2."));
    ck_assert_ptr_null(nn_module_find(m, ".2"));
    ck_assert_ptr_null(nn_module_find(m, NULL));
    fx_free(fx);
}
END_TEST

START_TEST(test_rgnet_nested)
{
    fx_model *fx = fx_new(&fx_rgnet_info);
    nn_model *m = &fx->model;
    const nn_module *root = nn_model_root(m);
    const nn_module *l;
    size_t i;
    /* rgnet[0][1][0] */
    l = nn_module_child(nn_module_child(nn_module_child(root, 0), 1), 0);
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(l->path, "0.block1.0");
    ck_assert_str_eq(l->name, "0");
    ck_assert_ptr_eq(nn_module_find(m, "0.block1.0"), l);
    ck_assert_ptr_eq(nn_module_find_param(m, l, "bias"), nn_find(m, "0.block1.0.bias"));
    ck_assert_ptr_eq(nn_module_find_param(m, root, "0.block1.0.bias"),
                     nn_find(m, "0.block1.0.bias"));
    ck_assert_ptr_eq(nn_module_find_param(m, nn_module_find(m, "0"), "block3.2.weight"),
                     nn_find(m, "0.block3.2.weight"));
    ck_assert_ptr_eq(nn_module_find(m, "0.block1"), nn_module_child(nn_module_child(root, 0), 1));
    ck_assert_str_eq(nn_module_find(m, "0.block1")->name, "block1");
    ck_assert_ptr_null(nn_module_find(m, "0.1.0"));       /* children are named blockN */
    ck_assert_ptr_null(nn_module_find(m, "0.block4"));
    ck_assert_ptr_null(nn_module_find(m, "0.block"));
    ck_assert_ptr_null(nn_module_find(m, "0.block1.0.0"));
    ck_assert_uint_eq(nn_module_child_count(nn_module_find(m, "0")), 4);
    ck_assert_uint_eq(nn_module_child_count(nn_module_find(m, "0.block2")), 4);
    ck_assert_uint_eq(nn_param_count(m), 18);
    ck_assert_uint_eq(nn_state_count(m), 18);
    for (i = 0; i < nn_state_count(m); i++) {
        ck_assert_ptr_eq(nn_find(m, nn_state_key(m, i)), nn_state_tensor(m, i));
        ck_assert_str_eq(nn_state_tensor(m, i)->name, nn_state_key(m, i));
    }
    ck_assert_str_eq(nn_param(m, 17)->name, "1.bias");
    fx_free(fx);
}
END_TEST

START_TEST(test_tied_aliases)
{
    fx_model *fx = fx_new(&fx_tied_info);
    nn_model *m = &fx->model;
    const nn_module *s2, *s4;
    ck_assert_uint_eq(nn_param_count(m), 6);
    ck_assert_uint_eq(nn_state_count(m), 8);
    ck_assert_str_eq(nn_param(m, 4)->name, "6.weight");
    ck_assert_ptr_eq(nn_find(m, "4.weight"), nn_find(m, "2.weight"));
    ck_assert_ptr_eq(nn_find(m, "4.bias"), nn_find(m, "2.bias"));
    ck_assert_str_eq(nn_find(m, "4.weight")->name, "2.weight");   /* canonical */
    ck_assert_str_eq(nn_state_key(m, 4), "4.weight");
    ck_assert_ptr_eq(nn_state_tensor(m, 4), nn_param(m, 2));
    s2 = nn_module_find(m, "2");
    s4 = nn_module_find(m, "4");
    ck_assert_ptr_nonnull(s4);
    ck_assert_ptr_eq(s2, s4);                                     /* one module */
    ck_assert_str_eq(s4->path, "2");                              /* canonical path */
    ck_assert_ptr_eq(nn_module_child(nn_model_root(m), 4), s2);
    ck_assert_ptr_eq(nn_module_find_param(m, nn_model_root(m), "4.weight"),
                     nn_find(m, "2.weight"));
    ck_assert_ptr_eq(nn_module_param(m, s4, 0), nn_find(m, "2.weight"));
    /* net[2].weight.data[0, 0] = 100 changes net[4].weight */
    nn_find(m, "2.weight")->data[0] = 100.0f;
    ck_assert_float_eq(nn_find(m, "4.weight")->data[0], 100.0f);
    ck_assert_ptr_null(nn_find(m, "3.weight"));
    ck_assert_ptr_null(nn_module_find(m, "7"));
    fx_free(fx);
}
END_TEST

START_TEST(test_alias_paths_nested)
{
    /* A shared module deeper down: the alias path "1.x" reaches the same
       object as the canonical "0.x", and so do paths through it. */
    static const char *const ln[] = {"weight"};
    static const int lid[] = {0};
    static const nn_module leaf = {"0.x", "x", "Identity", "", 0, NULL, NULL, 1, ln, lid};
    static const char *const in_names[] = {"x"};
    static const nn_module *const in_children[] = {&leaf};
    static const nn_module a = {"0", "0", "Sequential", "", 1, in_names, in_children, 0,
                                NULL, NULL};
    static const nn_module b = {"1", "1", "Sequential", "", 1, in_names, in_children, 0,
                                NULL, NULL};
    static const char *const rn[] = {"0", "1"};
    static const nn_module *const rc[] = {&a, &b};
    static const nn_module root = {"", "", "Sequential", "", 2, rn, rc, 0, NULL, NULL};
    static const nn_tensor_info ti[] = {{"0.x.weight", 1, {3, 0, 0, 0}, 3, 0, 1, 0, NN_F32}};
    static const char *const keys[] = {"0.x.weight", "1.x.weight"};
    static const int ids[] = {0, 0};
    static const nn_model_info info = {"deep", 1, 1, ti, 2, keys, ids, &root, 3, 3};
    fx_model *fx = fx_new(&info);
    nn_model *m = &fx->model;
    ck_assert_ptr_eq(nn_module_find(m, "1.x"), &leaf);
    ck_assert_ptr_eq(nn_module_find(m, "0.x"), &leaf);
    ck_assert_ptr_eq(nn_module_find(m, "1"), &b);
    ck_assert_ptr_eq(nn_find(m, "1.x.weight"), nn_param(m, 0));
    ck_assert_ptr_eq(nn_module_find_param(m, &b, "x.weight"), nn_param(m, 0));
    fx_free(fx);
}
END_TEST

START_TEST(test_grads)
{
    fx_model *fx = fx_new(&fx_tied_info);
    nn_model *m = &fx->model;
    size_t i, k;
    for (i = 0; i < nn_param_count(m); i++)
        ck_assert_ptr_null(nn_param(m, i)->grad);              /* grad is None */
    for (i = 0; i < nn_state_count(m); i++)
        ck_assert_ptr_null(nn_state_tensor(m, i)->grad);
    ck_assert_int_eq(m->grads_attached, 0);
    nn_model_attach_grads(m);
    ck_assert_int_eq(m->grads_attached, 1);
    for (i = 0; i < nn_param_count(m); i++) {
        nn_tensor *t = nn_param(m, i);
        ck_assert_ptr_eq(t->grad, fx->grad + fx_tied_info.tensors[i].offset);
        for (k = 0; k < (size_t)t->numel; k++)
            ck_assert_float_eq(t->grad[k], 0.0f);              /* zeroed on first attach */
    }
    ck_assert_ptr_eq(nn_find(m, "4.weight")->grad, nn_find(m, "2.weight")->grad);
    /* idempotent: a second attach neither moves nor re-zeroes */
    nn_find(m, "2.bias")->grad[3] = 5.0f;
    nn_model_attach_grads(m);
    ck_assert_ptr_eq(nn_find(m, "2.bias")->grad, fx->grad + 104);
    ck_assert_float_eq(nn_find(m, "2.bias")->grad[3], 5.0f);
    fx_free(fx);
}
END_TEST

START_TEST(test_frozen_and_buffers)
{
    fx_model *fx = fx_new(&fx_misc_info);
    nn_model *m = &fx->model;
    const nn_module *scale;
    ck_assert_uint_eq(nn_param_count(m), 5);
    ck_assert_uint_eq(nn_state_count(m), 6);
    ck_assert_int_eq(nn_find(m, "0.weight")->requires_grad, 0);
    ck_assert_int_eq(nn_find(m, "1.weight")->requires_grad, 1);
    ck_assert_int_eq(nn_find(m, "1.running_mean")->requires_grad, 0);
    ck_assert_ptr_null(nn_param(m, 5));                           /* buffers are not params */
    ck_assert_str_eq(nn_state_key(m, 3), "1.running_mean");
    scale = nn_module_find(m, "1");
    ck_assert_str_eq(scale->type, "Scale");
    ck_assert_ptr_eq(nn_module_find_param(m, scale, "running_mean"),
                     nn_find(m, "1.running_mean"));
    ck_assert_ptr_eq(nn_module_find_param(m, nn_model_root(m), "2.inner.bias"),
                     nn_find(m, "2.inner.bias"));
    ck_assert_ptr_eq(nn_module_find(m, "2.empty"), nn_module_child(nn_module_find(m, "2"), 1));
    nn_model_attach_grads(m);
    ck_assert_ptr_null(nn_find(m, "0.weight")->grad);             /* frozen */
    ck_assert_ptr_null(nn_find(m, "0.bias")->grad);
    ck_assert_ptr_null(nn_find(m, "1.running_mean")->grad);       /* buffer */
    ck_assert_ptr_nonnull(nn_find(m, "1.weight")->grad);
    ck_assert_ptr_nonnull(nn_find(m, "2.inner.weight")->grad);
    fx_free(fx);
}
END_TEST

/* Batch norm buffers: float32 running stats and an int64 0-d
   num_batches_tracked, in the state dict after each module's parameters,
   never in the parameter list, never with a gradient. */
START_TEST(test_bn_buffers)
{
    fx_model *fx = fx_new(&fx_bn_info);
    nn_model *m = &fx->model;
    const nn_module *bn1, *bn4;
    nn_tensor *nbt;
    size_t i;
    static const char *const keys[] = {
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked", "3.weight", "3.bias", "4.weight", "4.bias",
        "4.running_mean", "4.running_var", "4.num_batches_tracked"};
    static const char *const params[] = {"0.weight", "0.bias", "1.weight", "1.bias",
                                         "3.weight", "3.bias", "4.weight", "4.bias"};
    ck_assert_uint_eq(nn_param_count(m), 8);
    ck_assert_uint_eq(nn_state_count(m), 14);
    for (i = 0; i < 8; i++) {
        ck_assert_str_eq(nn_param(m, i)->name, params[i]);
        ck_assert_int_eq(nn_param(m, i)->is_buffer, 0);
        ck_assert_int_eq(nn_param(m, i)->dtype, NN_F32);
        ck_assert_int_eq(nn_param(m, i)->requires_grad, 1);
    }
    ck_assert_ptr_null(nn_param(m, 8));                     /* buffers are not params */
    for (i = 0; i < 14; i++) {
        ck_assert_str_eq(nn_state_key(m, i), keys[i]);
        ck_assert_ptr_eq(nn_find(m, keys[i]), nn_state_tensor(m, i));
        ck_assert_str_eq(nn_state_tensor(m, i)->name, keys[i]);
    }
    ck_assert_ptr_null(nn_state_key(m, 14));
    nbt = nn_find(m, "1.num_batches_tracked");
    ck_assert_ptr_nonnull(nbt);
    ck_assert_int_eq(nbt->dtype, NN_I64);
    ck_assert_int_eq(nbt->ndim, 0);
    ck_assert_int_eq((int)nbt->numel, 1);
    ck_assert_int_eq(nbt->is_buffer, 1);
    ck_assert_int_eq(nbt->requires_grad, 0);
    ck_assert_ptr_eq(nbt->data, fx->data + 40);
    ck_assert_uint_eq((uintptr_t)nbt->data % 8, 0);
    ck_assert_ptr_eq(nn_find(m, "4.num_batches_tracked")->data, fx->data + 46);
    ck_assert_int_eq(nn_find(m, "1.running_var")->dtype, NN_F32);
    ck_assert_int_eq(nn_find(m, "1.running_var")->is_buffer, 1);
    ck_assert_ptr_eq(nn_find(m, "1.running_var")->data, fx->data + 36);
    /* int64 storage: two floats per element, read as int64_t */
    *(int64_t *)nbt->data = INT64_C(-9000000000000000001);
    ck_assert(fx_get_i64(nbt, 0) == INT64_C(-9000000000000000001));
    ck_assert(fx->data[39] == 0.0f && fx->data[42] == 0.0f);  /* neighbours untouched */

    bn1 = nn_module_find(m, "1");
    bn4 = nn_module_find(m, "4");
    ck_assert_str_eq(bn1->type, "BatchNorm1d");
    ck_assert_uint_eq(nn_module_param_count(bn1), 5);          /* own tensors */
    ck_assert_ptr_eq(nn_module_param(m, bn1, 0), nn_find(m, "1.weight"));
    ck_assert_ptr_eq(nn_module_param(m, bn1, 4), nbt);
    ck_assert_str_eq(bn1->param_names[4], "num_batches_tracked");
    ck_assert_ptr_null(nn_module_param(m, bn1, 5));
    ck_assert_ptr_eq(nn_module_find_param(m, bn1, "num_batches_tracked"), nbt);
    ck_assert_ptr_eq(nn_module_find_param(m, bn4, "running_mean"),
                     nn_find(m, "4.running_mean"));
    ck_assert_ptr_eq(nn_module_find_param(m, nn_model_root(m), "4.num_batches_tracked"),
                     nn_find(m, "4.num_batches_tracked"));
    ck_assert_ptr_null(nn_module_find_param(m, nn_model_root(m), "2.running_mean"));
    ck_assert_ptr_null(nn_module_find_param(m, bn1, "num_batches"));

    nn_model_attach_grads(m);
    for (i = 0; i < 8; i++)
        ck_assert_ptr_eq(nn_param(m, i)->grad, fx->grad + fx_bn_info.tensors[i].offset);
    for (i = 0; i < 14; i++)
        if (nn_state_tensor(m, i)->is_buffer)
            ck_assert_ptr_null(nn_state_tensor(m, i)->grad);
    ck_assert_float_eq(fx->grad[32], 0.0f);                    /* the block: 33 floats */
    fx_free(fx);
}
END_TEST

/* A shared batch norm: its buffers have aliases like its parameters. */
START_TEST(test_tiedbn_aliases)
{
    fx_model *fx = fx_new(&fx_tiedbn_info);
    nn_model *m = &fx->model;
    ck_assert_uint_eq(nn_param_count(m), 4);
    ck_assert_uint_eq(nn_state_count(m), 12);
    ck_assert_ptr_eq(nn_find(m, "3.num_batches_tracked"), nn_find(m, "1.num_batches_tracked"));
    ck_assert_str_eq(nn_find(m, "3.num_batches_tracked")->name, "1.num_batches_tracked");
    ck_assert_ptr_eq(nn_find(m, "3.running_var"), nn_find(m, "1.running_var"));
    ck_assert_str_eq(nn_state_key(m, 11), "3.num_batches_tracked");
    ck_assert_ptr_eq(nn_module_find(m, "3"), nn_module_find(m, "1"));
    ck_assert_ptr_eq(nn_module_find_param(m, nn_model_root(m), "3.num_batches_tracked"),
                     nn_find(m, "1.num_batches_tracked"));
    ck_assert_uint_eq((uintptr_t)nn_find(m, "1.num_batches_tracked")->data % 8, 0);
    fx_free(fx);
}
END_TEST

/* Tables whose buffer flags and dtypes reach the tensors; nn_param_count
   never exceeds the table. */
START_TEST(test_bind_flags)
{
    static const char *const fixtures[] = {"mlp", "rgnet", "tied", "misc", "bn", "tiedbn",
                                           "empty"};
    size_t f;
    int i;
    for (f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        fx_model *fx = fx_new_named(fixtures[f]);
        const nn_model_info *info = fx->model.info;
        ck_assert_ptr_nonnull(fx);
        for (i = 0; i < info->ntensors; i++) {
            ck_assert_int_eq(fx->tensors[i].is_buffer, info->tensors[i].is_buffer);
            ck_assert_int_eq(fx->tensors[i].dtype, info->tensors[i].dtype);
            ck_assert_int_eq(fx->tensors[i].is_buffer, i >= info->nparams);
        }
        fx_free(fx);
    }
    {
        nn_model_info bad = fx_bn_info;
        fx_model *fx;
        bad.nparams = 99;
        fx = fx_new(&bad);
        ck_assert_uint_eq(nn_param_count(&fx->model), 14);
        ck_assert_ptr_null(nn_param(&fx->model, 14));
        fx_free(fx);
    }
}
END_TEST

/* Integer tensors print through torch's integer formatter (test_print.py
   compares thousands of them with torch; these are the landmarks). */
START_TEST(test_format_int_tensors)
{
    int64_t v[4] = {1, 2, 3, -40};
    int32_t w[2] = {7, -2147483647 - 1};
    nn_tensor t;
    char buf[128];
    memset(&t, 0, sizeof t);
    t.dtype = NN_I64;
    t.ndim = 0;
    t.numel = 1;
    t.data = (float *)(void *)v;
    v[0] = 0;
    nn_format_tensor(buf, sizeof buf, &t);
    ck_assert_str_eq(buf, "tensor(0)");
    v[0] = 1;
    t.ndim = 1;
    t.shape[0] = 3;
    t.numel = 3;
    nn_format_tensor(buf, sizeof buf, &t);
    ck_assert_str_eq(buf, "tensor([1, 2, 3])");
    t.ndim = 2;
    t.shape[0] = 2;
    t.shape[1] = 2;
    t.numel = 4;
    nn_format_tensor(buf, sizeof buf, &t);
    ck_assert_str_eq(buf, "tensor([[  1,   2],\n        [  3, -40]])");
    t.shape[0] = 0;
    t.numel = 0;
    nn_format_tensor(buf, sizeof buf, &t);
    ck_assert_str_eq(buf, "tensor([], size=(0, 2), dtype=torch.int64)");
    t.dtype = NN_I32;
    t.data = (float *)(void *)w;
    t.ndim = 1;
    t.shape[0] = 2;
    t.numel = 2;
    nn_format_tensor(buf, sizeof buf, &t);
    ck_assert_str_eq(buf, "tensor([          7, -2147483648], dtype=torch.int32)");
    t.dtype = 7;
    nn_format_tensor(buf, sizeof buf, &t);
    ck_assert_str_eq(buf, "tensor(<invalid tensor>)");
}
END_TEST

/* print(buffer) is a plain tensor, print(param) a Parameter. */
START_TEST(test_print_param_buffer)
{
    fx_model *fx = fx_new(&fx_bn_info);
    nn_model *m = &fx->model;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    fx_set_i64(nn_find(m, "1.num_batches_tracked"), 0, 12);
    nn_print_param(f, nn_find(m, "1.num_batches_tracked"));
    nn_print_param(f, nn_find(m, "1.running_mean"));
    nn_print_param(f, nn_find(m, "1.bias"));
    fclose(f);
    ck_assert_str_eq(text, "tensor(12)\n"
                           "tensor([0., 0., 0.])\n"
                           "Parameter containing:\n"
                           "tensor([0., 0., 0.], requires_grad=True)\n");
    free(text);
    fx_free(fx);
}
END_TEST

/* constant / zeros / ones fill an int64 buffer; other initializers refuse it. */
START_TEST(test_init_buffers)
{
    fx_model *fx = fx_new(&fx_bn_info);
    nn_model *m = &fx->model;
    nn_tensor *nbt = nn_find(m, "4.num_batches_tracked");
    nn_rng r;
    float before[48];
    nn_rng_seed(&r, 1);
    nn_init_constant(nbt, 7.9f);
    ck_assert(fx_get_i64(nbt, 0) == 7);
    nn_init_ones(nbt);
    ck_assert(fx_get_i64(nbt, 0) == 1);
    nn_init_zeros(nbt);
    ck_assert(fx_get_i64(nbt, 0) == 0);
    ck_assert(fx->data[45] == 0.0f && fx->data[47] == 0.0f);   /* 0 in both halves */
    nn_init_ones(nn_find(m, "4.running_var"));
    ck_assert_float_eq(nn_find(m, "4.running_var")->data[1], 1.0f);
    fx_set_i64(nbt, 0, 5);
    memcpy(before, fx->data, sizeof before);
    nn_set_error(NULL);
    nn_init_uniform(nbt, &r, 0, 1);
    ck_assert_ptr_nonnull(strstr(nn_error(), "dtype int64"));
    nn_set_error(NULL);
    nn_init_normal(nbt, &r, 0, 1);
    ck_assert_ptr_nonnull(strstr(nn_error(), "not float32"));
    nn_set_error(NULL);
    nn_init_zero_abs_below(nbt, 1.0f);
    ck_assert_ptr_nonnull(strstr(nn_error(), "4.num_batches_tracked"));
    ck_assert_int_eq(memcmp(before, fx->data, sizeof before), 0);
    fx_free(fx);
}
END_TEST

START_TEST(test_grad_block_absent)
{
    nn_model m;
    nn_tensor t[4];
    float data[49];
    nn_model_bind(&m, &fx_mlp_info, t, data, NULL);
    nn_model_attach_grads(&m);
    ck_assert_ptr_null(t[0].grad);
}
END_TEST

START_TEST(test_empty_model)
{
    fx_model *fx = fx_new(&fx_empty_info);
    nn_model *m = &fx->model;
    ck_assert_uint_eq(nn_param_count(m), 0);
    ck_assert_uint_eq(nn_state_count(m), 0);
    ck_assert_ptr_null(nn_param(m, 0));
    ck_assert_ptr_null(nn_state_key(m, 0));
    ck_assert_ptr_null(nn_find(m, "0.weight"));
    ck_assert_ptr_eq(nn_module_find(m, ""), &fx_empty_root);
    ck_assert_ptr_null(nn_module_find(m, "0"));
    ck_assert_uint_eq(nn_module_child_count(nn_model_root(m)), 0);
    nn_model_attach_grads(m);
    fx_free(fx);
}
END_TEST

START_TEST(test_format_tensor_buffer)
{
    /* nn_format_tensor has snprintf semantics */
    float v[3] = {1.0f, 2.5f, -3.0f};
    nn_tensor t;
    char full[64], small[8];
    size_t n;
    memset(&t, 0, sizeof t);
    t.ndim = 1;
    t.shape[0] = 3;
    t.numel = 3;
    t.data = v;
    n = nn_format_tensor(NULL, 0, &t);
    ck_assert_uint_eq(n, strlen("tensor([ 1.0000,  2.5000, -3.0000])"));
    ck_assert_uint_eq(nn_format_tensor(full, sizeof full, &t), n);
    ck_assert_str_eq(full, "tensor([ 1.0000,  2.5000, -3.0000])");
    ck_assert_uint_eq(nn_format_tensor(small, sizeof small, &t), n);
    ck_assert_str_eq(small, "tensor(");
    small[0] = 'x';
    ck_assert_uint_eq(nn_format_tensor(small, 1, &t), n);
    ck_assert_str_eq(small, "");
    small[0] = 'x';
    ck_assert_uint_eq(nn_format_tensor(small, 0, &t), n);
    ck_assert_int_eq(small[0], 'x');
}
END_TEST

START_TEST(test_error_text)
{
    nn_set_error("%s: %d", "abc", 42);
    ck_assert_str_eq(nn_error(), "abc: 42");
    {
        char big[3000];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        nn_set_error("%s", big);
        ck_assert_uint_lt(strlen(nn_error()), sizeof big - 1);   /* truncated, no overflow */
        ck_assert_uint_gt(strlen(nn_error()), 100);
    }
}
END_TEST

/* Walk every fixture's tree without de-duplication (as state_dict() does):
   each path resolves to its module, each path.param to the module's tensor,
   and the keys come out exactly in the table's state-dict order. */
typedef struct walk_state {
    nn_model *m;
    size_t next_key;
} walk_state;

static void walk_tree(walk_state *w, const nn_module *mod, const char *path)
{
    char key[256];
    int i, pass;
    ck_assert_ptr_eq(nn_module_find(w->m, path), mod);
    for (pass = 0; pass < 2; pass++)          /* parameters, then buffers */
        for (i = 0; i < mod->nparams; i++) {
            nn_tensor *t = nn_module_param(w->m, mod, (size_t)i);
            if (w->m->info->tensors[mod->param_ids[i]].is_buffer != pass)
                continue;
            snprintf(key, sizeof key, "%s%s%s", path, path[0] ? "." : "", mod->param_names[i]);
            ck_assert_ptr_nonnull(t);
            ck_assert_ptr_eq(nn_find(w->m, key), t);
            ck_assert_ptr_eq(nn_module_find_param(w->m, nn_model_root(w->m), key), t);
            ck_assert_ptr_eq(nn_module_find_param(w->m, mod, mod->param_names[i]), t);
            ck_assert_str_eq(nn_state_key(w->m, w->next_key), key);
            ck_assert_ptr_eq(nn_state_tensor(w->m, w->next_key), t);
            w->next_key++;
        }
    for (i = 0; i < mod->nchildren; i++) {
        snprintf(key, sizeof key, "%s%s%s", path, path[0] ? "." : "", mod->child_names[i]);
        ck_assert_ptr_eq(nn_module_child(mod, (size_t)i), mod->children[i]);
        walk_tree(w, mod->children[i], key);
    }
}

START_TEST(test_all_fixtures_walk)
{
    static const char *const names[] = {"mlp", "rgnet", "tied", "misc", "bn", "tiedbn",
                                        "empty"};
    size_t f, i;
    for (f = 0; f < sizeof names / sizeof names[0]; f++) {
        fx_model *fx = fx_new_named(names[f]);
        walk_state w;
        ck_assert_ptr_nonnull(fx);
        w.m = &fx->model;
        w.next_key = 0;
        walk_tree(&w, nn_model_root(w.m), "");
        ck_assert_uint_eq(w.next_key, nn_state_count(w.m));
        /* canonical names: each parameter's own name finds it */
        for (i = 0; i < nn_param_count(w.m); i++)
            ck_assert_ptr_eq(nn_find(w.m, nn_param(w.m, i)->name), nn_param(w.m, i));
        fx_free(fx);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, test_mlp_params);
    tcase_add_test(tc, test_mlp_modules);
    tcase_add_test(tc, test_rgnet_nested);
    tcase_add_test(tc, test_tied_aliases);
    tcase_add_test(tc, test_alias_paths_nested);
    tcase_add_test(tc, test_grads);
    tcase_add_test(tc, test_frozen_and_buffers);
    tcase_add_test(tc, test_bn_buffers);
    tcase_add_test(tc, test_tiedbn_aliases);
    tcase_add_test(tc, test_bind_flags);
    tcase_add_test(tc, test_format_int_tensors);
    tcase_add_test(tc, test_print_param_buffer);
    tcase_add_test(tc, test_init_buffers);
    tcase_add_test(tc, test_grad_block_absent);
    tcase_add_test(tc, test_empty_model);
    tcase_add_test(tc, test_format_tensor_buffer);
    tcase_add_test(tc, test_error_text);
    tcase_add_test(tc, test_all_fixtures_walk);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
