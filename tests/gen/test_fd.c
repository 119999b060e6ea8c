/* tests/gen: finite-difference gradient checks of the generated code for
 * every layer type (see fdcheck.h for the method and the tolerance).
 * Each network is a spec in tests/gen/specs/, compiled by nngen at build
 * time.  Prints one line per network and a total. */
#include "fdcheck.h"

#include "act_flatten.h"
#include "act_gelu.h"
#include "act_identity.h"
#include "act_leaky_def.h"
#include "act_leaky_neg.h"
#include "act_leaky_pos.h"
#include "act_leaky_zero.h"
#include "act_relu.h"
#include "act_sigmoid.h"
#include "act_tanh.h"
#include "chain_b.h"
#include "chain_s.h"
#include "flat_first.h"
#include "flat_mid.h"
#include "fuse_s_relu.h"
#include "fuse_s_leaky_pos.h"
#include "fuse_s_leaky_neg.h"
#include "fuse_s_leaky_zero.h"
#include "fuse_s_sigmoid.h"
#include "fuse_s_tanh.h"
#include "fuse_s_gelu.h"
#include "fuse_s_identity.h"
#include "fuse_b_relu.h"
#include "fuse_b_leaky_pos.h"
#include "fuse_b_leaky_neg.h"
#include "fuse_b_leaky_zero.h"
#include "fuse_b_sigmoid.h"
#include "fuse_b_tanh.h"
#include "fuse_b_gelu.h"
#include "fuse_b_identity.h"
#include "frozen.h"
#include "frozen_mid.h"
#include "frozen_shared.h"
#include "lin_b2.h"
#include "lin_b2_nb.h"
#include "lin_b3.h"
#include "lin_b3_nb.h"
#include "lin_s2.h"
#include "lin_s2_nb.h"
#include "lin_s3.h"
#include "lin_s3_nb.h"
#include "loss_ce.h"
#include "loss_ce_adam.h"
#include "loss_mse.h"
#include "lsm_d0.h"
#include "lsm_d1.h"
#include "lsm_d1_3d.h"
#include "lsm_dm1.h"
#include "lsm_lin.h"
#include "sm_d0.h"
#include "sm_d1.h"
#include "sm_d1_3d.h"
#include "sm_dm1.h"
#include "sm_lin.h"
#include "tied.h"
#include "tied_b.h"
#include "train_b.h"
#include "train_frozen.h"
#include "train_tied_b.h"

GNET(act_flatten);
GNET(act_gelu);
GNET(act_identity);
GNET(act_leaky_def);
GNET(act_leaky_neg);
GNET(act_leaky_pos);
GNET(act_leaky_zero);
GNET(act_relu);
GNET(act_sigmoid);
GNET(act_tanh);
GNET(chain_b);
GNET(chain_s);
GNET(flat_first);
GNET(flat_mid);
GNET(fuse_s_relu);
GNET(fuse_s_leaky_pos);
GNET(fuse_s_leaky_neg);
GNET(fuse_s_leaky_zero);
GNET(fuse_s_sigmoid);
GNET(fuse_s_tanh);
GNET(fuse_s_gelu);
GNET(fuse_s_identity);
GNET(fuse_b_relu);
GNET(fuse_b_leaky_pos);
GNET(fuse_b_leaky_neg);
GNET(fuse_b_leaky_zero);
GNET(fuse_b_sigmoid);
GNET(fuse_b_tanh);
GNET(fuse_b_gelu);
GNET(fuse_b_identity);
GNET(frozen);
GNET(frozen_mid);
GNET(frozen_shared);
GNET(lin_b2);
GNET(lin_b2_nb);
GNET(lin_b3);
GNET(lin_b3_nb);
GNET(lin_s2);
GNET(lin_s2_nb);
GNET(lin_s3);
GNET(lin_s3_nb);
GNET(lsm_d0);
GNET(lsm_d1);
GNET(lsm_d1_3d);
GNET(lsm_dm1);
GNET(lsm_lin);
GNET(sm_d0);
GNET(sm_d1);
GNET(sm_d1_3d);
GNET(sm_dm1);
GNET(sm_lin);
GNET(tied);
GNET(tied_b);
GTRAIN_CE(loss_ce);
GTRAIN_CE(loss_ce_adam);
GTRAIN_MSE(loss_mse);
GTRAIN_CE(train_b);
GTRAIN_CE(train_frozen);
GTRAIN_MSE(train_tied_b);

/* references of the relu / leaky_relu inputs (fdcheck.h), up to the last one */
static const rop ref_relu[] = {{'R', NULL, 0}, {0, NULL, 0}};
static const rop ref_leaky_pos[] = {{'K', NULL, 0.2}, {0, NULL, 0}};
static const rop ref_leaky_neg[] = {{'K', NULL, -0.5}, {0, NULL, 0}};
static const rop ref_leaky_zero[] = {{'K', NULL, 0.0}, {0, NULL, 0}};
static const rop ref_leaky_def[] = {{'K', NULL, 0.01}, {0, NULL, 0}};
static const rop ref_chain[] = {{'L', "0", 0},  {'R', NULL, 0},    {'L', "2", 0},
                                {'K', NULL, 0.2}, {'L', "4", 0},   {'S', NULL, 0},
                                {'L', "6", 0},  {'T', NULL, 0},    {'L', "8", 0},
                                {'K', NULL, -0.5}, {'L', "10", 0}, {'K', NULL, 0.0},
                                {0, NULL, 0}};
static const rop ref_tied[] = {{'L', "0", 0}, {'R', NULL, 0}, {'L', "2", 0}, {'R', NULL, 0},
                               {'L', "4", 0}, {'R', NULL, 0}, {0, NULL, 0}};
static const rop ref_frozen[] = {{'L', "0.0", 0}, {'R', NULL, 0}, {0, NULL, 0}};
static const rop ref_frozen_mid[] = {{'L', "0", 0}, {'T', NULL, 0}, {'L', "2.0", 0},
                                     {'K', NULL, 0.1}, {0, NULL, 0}};
static const rop ref_lin_relu[] = {{'L', "0", 0}, {'R', NULL, 0}, {0, NULL, 0}};
static const rop ref_lin_leaky_pos[] = {{'L', "0", 0}, {'K', NULL, 0.2}, {0, NULL, 0}};
static const rop ref_lin_leaky_neg[] = {{'L', "0", 0}, {'K', NULL, -0.5}, {0, NULL, 0}};
static const rop ref_lin_leaky_zero[] = {{'L', "0", 0}, {'K', NULL, 0.0}, {0, NULL, 0}};

typedef struct fdcase {
    const gnet *g;
    const rop *ref; /* NULL: no kinks */
} fdcase;

static const fdcase cases[] = {
    /* linear: {2-D, 3-D input} x {bias, no bias} x {loop, cblas} */
    {&lin_s2_gnet, NULL},
    {&lin_s2_nb_gnet, NULL},
    {&lin_s3_gnet, NULL},
    {&lin_s3_nb_gnet, NULL},
    {&lin_b2_gnet, NULL},
    {&lin_b2_nb_gnet, NULL},
    {&lin_b3_gnet, NULL},
    {&lin_b3_nb_gnet, NULL},
    /* each activation alone (op 0: writes dx directly) */
    {&act_relu_gnet, ref_relu},
    {&act_leaky_pos_gnet, ref_leaky_pos},
    {&act_leaky_neg_gnet, ref_leaky_neg},
    {&act_leaky_zero_gnet, ref_leaky_zero},
    {&act_leaky_def_gnet, ref_leaky_def},
    {&act_sigmoid_gnet, NULL},
    {&act_tanh_gnet, NULL},
    {&act_gelu_gnet, NULL},
    {&act_identity_gnet, NULL},
    {&act_flatten_gnet, NULL},
    {&flat_first_gnet, NULL},
    {&flat_mid_gnet, NULL},
    /* each activation between two linear layers (fused or not), loop and cblas */
    {&fuse_s_relu_gnet, ref_lin_relu},
    {&fuse_s_leaky_pos_gnet, ref_lin_leaky_pos},
    {&fuse_s_leaky_neg_gnet, ref_lin_leaky_neg},
    {&fuse_s_leaky_zero_gnet, ref_lin_leaky_zero},
    {&fuse_s_sigmoid_gnet, NULL},
    {&fuse_s_tanh_gnet, NULL},
    {&fuse_s_gelu_gnet, NULL},
    {&fuse_s_identity_gnet, NULL},
    {&fuse_b_relu_gnet, ref_lin_relu},
    {&fuse_b_leaky_pos_gnet, ref_lin_leaky_pos},
    {&fuse_b_leaky_neg_gnet, ref_lin_leaky_neg},
    {&fuse_b_leaky_zero_gnet, ref_lin_leaky_zero},
    {&fuse_b_sigmoid_gnet, NULL},
    {&fuse_b_tanh_gnet, NULL},
    {&fuse_b_gelu_gnet, NULL},
    {&fuse_b_identity_gnet, NULL},
    /* all of them in one deep chain, loop and cblas */
    {&chain_s_gnet, ref_chain},
    {&chain_b_gnet, ref_chain},
    /* softmax / log_softmax over dim 1, -1 (3-D), 1 of 3-D (strided), 0 */
    {&sm_d1_gnet, NULL},
    {&sm_dm1_gnet, NULL},
    {&sm_d1_3d_gnet, NULL},
    {&sm_d0_gnet, NULL},
    {&sm_lin_gnet, NULL},
    {&lsm_d1_gnet, NULL},
    {&lsm_dm1_gnet, NULL},
    {&lsm_d1_3d_gnet, NULL},
    {&lsm_d0_gnet, NULL},
    {&lsm_lin_gnet, NULL},
    /* a shared layer used twice: loop path with relu, cblas path */
    {&tied_gnet, ref_tied},
    {&tied_b_gnet, NULL},
    /* frozen blocks: grads stay NULL, dx flows through them */
    {&frozen_gnet, ref_frozen},
    {&frozen_mid_gnet, ref_frozen_mid},
    {&frozen_shared_gnet, NULL},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

typedef struct traincase {
    const gtrain *t;
    const rop *ref;
} traincase;

static const traincase tcases[] = {
    {&loss_mse_gtrain, NULL},
    {&loss_ce_gtrain, ref_lin_relu},
    {&loss_ce_adam_gtrain, NULL},
    {&train_b_gtrain, ref_lin_relu},
    {&train_tied_b_gtrain, NULL},
    {&train_frozen_gtrain, ref_frozen},
};
#define NTCASES ((int)(sizeof tcases / sizeof tcases[0]))

START_TEST(fd_net)
{
    fd_check_net(cases[_i].g, cases[_i].ref, 100 + (uint64_t)_i);
}
END_TEST

START_TEST(fd_train)
{
    fd_check_train(tcases[_i].t, tcases[_i].ref, 200 + (uint64_t)_i);
}
END_TEST

/* the totals are kept in this process (CK_NOFORK) */
START_TEST(fd_summary)
{
    printf("fd total: %ld coordinates checked, %ld skipped (kink), %ld with a smaller step; "
           "max rel err %.2e (%s), %.2e with the full step; max err %.1f noise units; "
           "noise floor <= %.1e of a tensor's rms gradient\n",
           fd_total.checked, fd_total.skipped, fd_total.shrunk, fd_total.max_rel, fd_total.worst,
           fd_total.max_rel_full, fd_total.max_noise, fd_total.max_floor);
    ck_assert_int_gt(fd_total.checked, 1000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen-fd");
    TCase *tc = tcase_create("fd");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, fd_net, 0, NCASES);
    tcase_add_loop_test(tc, fd_train, 0, NTCASES);
    tcase_add_test(tc, fd_summary);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
