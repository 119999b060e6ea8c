/* tests/gen: finite-difference gradient checks of the generated code for
 * every layer type (see fdcheck.h for the method and the tolerance).
 * The networks are the rows of tests/gen/cases.py (fd_cases.h), each
 * compiled by nngen at build time.  Prints one line per network and a
 * total. */
#include "fdcheck.h"

typedef struct fdcase {
    const gnet *g;
    const rop *ref; /* NULL: no kinks */
} fdcase;

typedef struct traincase {
    const gtrain *t;
    const rop *ref;
} traincase;

/* generated from cases.py by gen_cases.py: the networks' headers, their
   GNET / GTRAIN_* wrappers, the rop references and the tables
   cases[NCASES] (plain networks) and tcases[NTCASES] (training specs) */
#include "fd_cases.h"

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
