/* fuzz_spec.c: libFuzzer target for nngen's front end, in process.
 *
 * Each input is written to spec.yaml in a per-process temporary directory,
 * and nngen's own entry point (nngen_main, compiler/cli.c) runs twice in
 * that directory:
 *
 *   nngen --check spec.yaml
 *   nngen spec.yaml -o out.c
 *
 * with standard output and standard error captured (dup2 onto unlinked
 * temporary files).  The contract of docs/cli.md is checked, not only the
 * absence of crashes; a violation prints what broke and abort()s, so that
 * libFuzzer reports it and saves the input:
 *
 *   - the exit status is 0 or 1 (2 is a usage error and 3 an I/O error:
 *     neither may happen for a readable spec file and a writable directory);
 *   - both runs agree: --check "checks everything compiling checks", so
 *     they give the same status and, on 1, the same messages;
 *   - neither run writes to standard output;
 *   - on 1: standard error's first line is `spec.yaml:LINE:COL: error: ...`,
 *     and no out.c, out.h or temporary file (out.c.XXXXXX) is left;
 *   - on 0: standard error holds only warnings, whole lines
 *     `spec.yaml:LINE:COL: warning: ...` (docs/language.md, Warnings: e.g. a
 *     softmax right before a cross_entropy loss), usually none; exactly
 *     out.c and out.h are new in the directory (--check writes nothing at
 *     all);
 *   - for a sample of the specs that compile (1 in NNGEN_FUZZ_CC_EVERY, by
 *     a hash of the input; default 64; 1 = every one, 0 = none), the
 *     compile run is repeated to check that nngen_main keeps no state
 *     between runs (same out.c and out.h), out.c is compiled by
 *     `cc -std=c99 -Wall -Wextra -Wpedantic -Werror -I<include> -c` in a
 *     child process (time-limited), and so is one other flavour of the
 *     generated code, chosen by the hash: --no-blas, --inference or both
 *     (which must succeed too, writing out.c and out.h);
 *   - for another sample of them (1 in NNGEN_FUZZ_OTHER_EVERY, default 8),
 *     the other modes accept the spec: --print, --params and --dot exit
 *     with 0, standard error the same warnings as compiling (usually
 *     none), no file written; --emit pytorch -o out.py exits with 0,
 *     the same warnings, and writes exactly out.py.
 *
 * The compiler allocates from an arena released at the end of every run,
 * also when an error longjmps out (util.c, cli.c), so LeakSanitizer checks
 * every input.  nngen exits the process with status 3 when memory runs out:
 * run with -rss_limit_mb and a moderate -max_len (tools/fuzz.sh does).
 *
 * Because nngen's standard error is redirected during a run, and the run
 * happens in the temporary directory, LLVMFuzzerInitialize adds two flags
 * unless given: -close_fd_mask=3 (libFuzzer and the sanitizers report on a
 * duplicate of the original standard error, which stays put) and an
 * absolute -artifact_prefix (crash files land where libFuzzer was started,
 * not in the temporary directory); a relative -artifact_prefix or
 * -exact_artifact_path is made absolute.
 *
 * Environment: NNGEN_FUZZ_CC (default: cc),
 * NNGEN_FUZZ_CC_EVERY (default 64), NNGEN_FUZZ_OTHER_EVERY (default 8),
 * NNGEN_FUZZ_INCLUDE (default: the tree's
 * include/ directory, fixed at build time), NNGEN_FUZZ_CC_TIMEOUT seconds
 * (default 60).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nngen.h"

#ifndef NNGEN_FUZZ_INCLUDE
#define NNGEN_FUZZ_INCLUDE "include"
#endif
#ifndef NNGEN_FUZZ_CC
#define NNGEN_FUZZ_CC "cc"
#endif

static char tmpdir[4096];      /* the per-process directory nngen runs in */
static int home_fd = -1;       /* where libFuzzer was started */
static int report_fd = 2;      /* the original standard error */
static FILE *cap_out, *cap_err;
static const char *cc_prog = NNGEN_FUZZ_CC;
static const char *inc_dir = NNGEN_FUZZ_INCLUDE;
static unsigned cc_every = 64;
static unsigned other_every = 8;
static unsigned cc_timeout = 60;

/* ---- reporting ------------------------------------------------------- */

static void say(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(report_fd, buf + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* Prints a captured stream, cut at 2000 bytes. */
static void say_capture(const char *what, const char *text, size_t len)
{
    say("--- %s (%zu bytes) ---\n%.*s%s\n", what, len, (int)(len > 2000 ? 2000 : len), text,
        len > 2000 ? "\n[...]" : "");
}

static void remove_tmpdir(void);

#define VIOLATION(...)                                                                       \
    do {                                                                                     \
        if (home_fd >= 0)                                                                    \
            (void)fchdir(home_fd);                                                           \
        say("\n==== fuzz_spec: CONTRACT VIOLATION: ");                                        \
        say(__VA_ARGS__);                                                                    \
        say("\n");                                                                           \
        remove_tmpdir();                                                                     \
        abort();                                                                             \
    } while (0)

static void die(const char *what)
{
    say("fuzz_spec: %s: %s\n", what, strerror(errno));
    abort();
}

/* ---- the temporary directory ----------------------------------------- */

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char path[8192];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    tmpdir[0] = 0;
}

/* The names in the current directory other than spec.yaml, sorted, joined
   by spaces (at most cap bytes). */
static void list_new(char *out, size_t cap)
{
    DIR *d = opendir(".");
    if (!d)
        die("opendir");
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, "spec.yaml"))
            continue;
        if (n < 64)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    out[0] = 0;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? " " : "", names[i]);
        if (w > 0 && (size_t)w < cap - len)
            len += (size_t)w;
        free(names[i]);
    }
}

static void remove_outputs(void)
{
    unlink("out.c");
    unlink("out.h");
}

/* ---- running nngen ----------------------------------------------------- */

typedef struct result {
    int status;
    char *out, *err;            /* captured, NUL-terminated (malloc) */
    size_t nout, nerr;
} result;

static char *slurp(FILE *f, size_t *len)
{
    fflush(f);
    off_t n = lseek(fileno(f), 0, SEEK_END);
    if (n < 0)
        die("lseek");
    char *s = malloc((size_t)n + 1);
    if (!s)
        die("malloc");
    size_t got = 0;
    while (got < (size_t)n) {
        ssize_t r = pread(fileno(f), s + got, (size_t)n - got, (off_t)got);
        if (r <= 0)
            die("pread");
        got += (size_t)r;
    }
    s[n] = 0;
    *len = (size_t)n;
    return s;
}

static void run_nngen(int argc, char **argv, result *r)
{
    /* empty the capture files; the offset of the shared descriptions too */
    if (ftruncate(fileno(cap_out), 0) != 0 || ftruncate(fileno(cap_err), 0) != 0 ||
        lseek(fileno(cap_out), 0, SEEK_SET) != 0 || lseek(fileno(cap_err), 0, SEEK_SET) != 0)
        die("ftruncate");
    fflush(stdout);
    fflush(stderr);
    int save1 = dup(1), save2 = dup(2);
    if (save1 < 0 || save2 < 0)
        die("dup");
    if (dup2(fileno(cap_out), 1) < 0 || dup2(fileno(cap_err), 2) < 0)
        die("dup2");
    r->status = nngen_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    if (dup2(save1, 1) < 0 || dup2(save2, 2) < 0)
        die("dup2");
    close(save1);
    close(save2);
    clearerr(stdout);
    clearerr(stderr);
    r->out = slurp(cap_out, &r->nout);
    r->err = slurp(cap_err, &r->nerr);
}

static void free_result(result *r)
{
    free(r->out);
    free(r->err);
}

/* `spec.yaml:LINE:COL: error: ` at the start of s? */
static int good_error_line(const char *s)
{
    static const char head[] = "spec.yaml:";
    if (strncmp(s, head, sizeof head - 1) != 0)
        return 0;
    s += sizeof head - 1;
    for (int field = 0; field < 2; field++) {
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
        if (*s++ != ':')
            return 0;
    }
    return strncmp(s, " error: ", 8) == 0;
}

/* Only whole lines `spec.yaml:LINE:COL: warning: ...` (or nothing)? */
static int only_warnings(const char *s, size_t n)
{
    static const char head[] = "spec.yaml:";
    const char *end = s + n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (nl == NULL || (size_t)(end - s) < sizeof head ||
            strncmp(s, head, sizeof head - 1) != 0)
            return 0;
        const char *p = s + sizeof head - 1;
        for (int field = 0; field < 2; field++) {
            if (p >= nl || *p < '0' || *p > '9')
                return 0;
            while (p < nl && *p >= '0' && *p <= '9')
                p++;
            if (p >= nl || *p++ != ':')
                return 0;
        }
        if ((size_t)(nl - p) < 10 || strncmp(p, " warning: ", 10) != 0)
            return 0;
        s = nl + 1;
    }
    return 1;
}

static void check_status(const char *mode, const result *r)
{
    if (r->status != 0 && r->status != 1) {
        say_capture("stderr", r->err, r->nerr);
        VIOLATION("%s: exit status %d (0 or 1 expected for a readable spec)", mode, r->status);
    }
    if (r->nout != 0) {
        say_capture("stdout", r->out, r->nout);
        VIOLATION("%s: wrote to standard output", mode);
    }
    if (r->status == 1 && !good_error_line(r->err)) {
        say_capture("stderr", r->err, r->nerr);
        VIOLATION("%s: exit status 1 but standard error does not start with "
                  "'spec.yaml:LINE:COL: error: '", mode);
    }
    if (r->status == 0 && !only_warnings(r->err, r->nerr)) {
        say_capture("stderr", r->err, r->nerr);
        VIOLATION("%s: exit status 0 but standard error holds more than "
                  "'spec.yaml:LINE:COL: warning: ' lines", mode);
    }
}

/* ---- compiling the generated C --------------------------------------- */

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    if (fseek(f, 0, SEEK_END) != 0)
        die("fseek");
    long n = ftell(f);
    if (n < 0)
        die("ftell");
    rewind(f);
    char *s = malloc((size_t)n + 1);
    if (!s)
        die("malloc");
    if (fread(s, 1, (size_t)n, f) != (size_t)n)
        die("fread");
    fclose(f);
    s[n] = 0;
    *len = (size_t)n;
    return s;
}

/* cc ... -c out.c -o /dev/null in a child, output into cc.log; the exit
   status, or -1 for a signal or timeout. */
static int compile_out_c(void)
{
    char incflag[4200];
    snprintf(incflag, sizeof incflag, "-I%s", inc_dir);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        int fd = open("cc.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        struct rlimit cpu = {cc_timeout, cc_timeout + 5};
        setrlimit(RLIMIT_CPU, &cpu);
        alarm(cc_timeout * 2);   /* wall clock; survives exec */
        execlp(cc_prog, cc_prog, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
               incflag, "-c", "out.c", "-o", "/dev/null", (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return -1;
}

/* Compiles out.c; a violation if it does not. */
static void cc_check(const char *what)
{
    int st = compile_out_c();
    if (st != 0) {
        size_t nl;
        char *log = read_whole("cc.log", &nl);
        say_capture("cc output", log, nl);
        free(log);
        VIOLATION("the generated %s does not compile with %s -std=c99 -Wall -Wextra "
                  "-Wpedantic -Werror (%s %d)", what, cc_prog,
                  st < 0 ? "killed or timed out, status" : "exit status", st);
    }
    unlink("cc.log");
}

/* ---- libFuzzer --------------------------------------------------------- */

static char *absolute(const char *flag, const char *value, const char *cwd)
{
    size_t n = strlen(flag) + strlen(cwd) + strlen(value) + 3;
    char *s = malloc(n);
    if (!s)
        die("malloc");
    snprintf(s, n, "%s%s/%s", flag, cwd, value);
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* our own messages go to the original standard error */
    report_fd = dup(2);
    if (report_fd < 0)
        report_fd = 2;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        die("getcwd");
    home_fd = open(".", O_RDONLY | O_DIRECTORY);
    if (home_fd < 0)
        die("open .");

    /* -close_fd_mask=3 and an absolute -artifact_prefix first, so that the
       user's own flags, later, win; relative artifact paths made absolute */
    int n = *argc;
    char **nv = calloc((size_t)n + 3, sizeof *nv);
    if (!nv)
        die("calloc");
    int k = 0;
    nv[k++] = (*argv)[0];
    nv[k++] = "-close_fd_mask=3";
    nv[k++] = absolute("-artifact_prefix=", "", cwd);
    for (int i = 1; i < n; i++) {
        char *a = (*argv)[i];
        static const char *const flags[] = {"-artifact_prefix=", "-exact_artifact_path="};
        for (int f = 0; f < 2; f++) {
            size_t fl = strlen(flags[f]);
            if (!strncmp(a, flags[f], fl) && a[fl] && a[fl] != '/')
                a = absolute(flags[f], a + fl, cwd);
        }
        nv[k++] = a;
    }
    nv[k] = NULL;
    *argc = k;
    *argv = nv;

    const char *e;
    if ((e = getenv("NNGEN_FUZZ_CC")) && *e)
        cc_prog = e;
    if ((e = getenv("NNGEN_FUZZ_INCLUDE")) && *e)
        inc_dir = e;
    if ((e = getenv("NNGEN_FUZZ_CC_EVERY")) && *e)
        cc_every = (unsigned)strtoul(e, NULL, 10);
    if ((e = getenv("NNGEN_FUZZ_OTHER_EVERY")) && *e)
        other_every = (unsigned)strtoul(e, NULL, 10);
    if ((e = getenv("NNGEN_FUZZ_CC_TIMEOUT")) && *e)
        cc_timeout = (unsigned)strtoul(e, NULL, 10);
    if (cc_timeout == 0)
        cc_timeout = 60;

    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nngen-fuzz-spec.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    atexit(remove_tmpdir);
    cap_out = tmpfile();
    cap_err = tmpfile();
    if (!cap_out || !cap_err)
        die("tmpfile");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char a0[] = "nngen", a_check[] = "--check", a_spec[] = "spec.yaml", a_o[] = "-o",
         a_out[] = "out.c";
    char *check_argv[] = {a0, a_check, a_spec, NULL};
    char *compile_argv[] = {a0, a_spec, a_o, a_out, NULL};
    char names[2048];

    if (chdir(tmpdir) != 0)
        die("chdir");
    remove_outputs();
    unlink("cc.log");
    int fd = open("spec.yaml", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open spec.yaml");
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            die("write spec.yaml");
        off += (size_t)w;
    }
    close(fd);

    result chk, cmp;
    run_nngen(3, check_argv, &chk);
    check_status("--check", &chk);
    list_new(names, sizeof names);
    if (names[0])
        VIOLATION("--check: left files in the directory: %s", names);

    run_nngen(4, compile_argv, &cmp);
    check_status("compile", &cmp);
    list_new(names, sizeof names);
    if (cmp.status == 1 && names[0])
        VIOLATION("compile: exit status 1 but files were left in the directory: %s", names);
    if (cmp.status == 0 && strcmp(names, "out.c out.h") != 0)
        VIOLATION("compile: exit status 0 but the new files are '%s', not 'out.c out.h'",
                  names);

    if (chk.status != cmp.status) {
        say_capture("--check stderr", chk.err, chk.nerr);
        say_capture("compile stderr", cmp.err, cmp.nerr);
        VIOLATION("--check exits with %d but compiling with %d", chk.status, cmp.status);
    }
    if (chk.nerr != cmp.nerr || memcmp(chk.err, cmp.err, chk.nerr) != 0) {
        say_capture("--check stderr", chk.err, chk.nerr);
        say_capture("compile stderr", cmp.err, cmp.nerr);
        VIOLATION("--check and compiling report different errors");
    }

    uint64_t h = fnv1a(data, size);
    if (cmp.status == 0 && cc_every && h % cc_every == 0) {
        /* nngen_main keeps no state: a second run writes the same files */
        size_t nc1, nh1, nc2, nh2;
        char *c1 = read_whole("out.c", &nc1), *h1 = read_whole("out.h", &nh1);
        remove_outputs();
        result again;
        run_nngen(4, compile_argv, &again);
        check_status("compile (again)", &again);
        if (again.status != 0)
            VIOLATION("compile: a second run of the same spec exits with %d", again.status);
        char *c2 = read_whole("out.c", &nc2), *h2 = read_whole("out.h", &nh2);
        if (nc1 != nc2 || memcmp(c1, c2, nc1) != 0 || nh1 != nh2 || memcmp(h1, h2, nh1) != 0)
            VIOLATION("compile: a second run of the same spec writes different output "
                      "(state kept between runs)");
        free(c1);
        free(h1);
        free(c2);
        free(h2);
        free_result(&again);
        cc_check("out.c");

        /* and one of the other flavours of the generated code, by the hash */
        static const char *const flavours[][2] = {
            {"--no-blas", NULL}, {"--inference", NULL}, {"--no-blas", "--inference"}};
        const char *const *fl = flavours[(h / cc_every) % 3];
        char f0[16], f1[16];
        char *var_argv[] = {a0, a_spec, a_o, a_out, f0, NULL, NULL};
        snprintf(f0, sizeof f0, "%s", fl[0]);
        snprintf(f1, sizeof f1, "%s", fl[1] ? fl[1] : "");
        if (fl[1])
            var_argv[5] = f1;
        int var_argc = fl[1] ? 6 : 5;
        remove_outputs();
        run_nngen(var_argc, var_argv, &again);
        check_status(fl[1] ? "compile --no-blas --inference" : fl[0], &again);
        if (again.status != 0)
            VIOLATION("compile %s %s: exit status %d, but 0 without", fl[0], fl[1] ? fl[1] : "",
                      again.status);
        list_new(names, sizeof names);
        if (strcmp(names, "out.c out.h") != 0)
            VIOLATION("compile %s %s: the new files are '%s', not 'out.c out.h'", fl[0],
                      fl[1] ? fl[1] : "", names);
        free_result(&again);
        cc_check(fl[1] ? "out.c (--no-blas --inference)" : fl[0]);
    }

    if (cmp.status == 0 && other_every && (h >> 32) % other_every == 0) {
        /* the other modes accept what compiles: --print, --params, --dot
           (standard output), --emit pytorch (out.py) */
        remove_outputs();
        static const char *const modes[] = {"--print", "--params", "--dot"};
        for (int i = 0; i < 3; i++) {
            char mode[16];
            snprintf(mode, sizeof mode, "%s", modes[i]);
            char *mode_argv[] = {a0, mode, a_spec, NULL};
            result r;
            run_nngen(3, mode_argv, &r);
            if (r.status != 0 || r.nerr != cmp.nerr || memcmp(r.err, cmp.err, r.nerr) != 0) {
                say_capture("stderr", r.err, r.nerr);
                VIOLATION("%s: exit status %d (and %zu bytes on standard error, not the "
                          "compile run's %zu bytes of warnings) for a spec that compiles",
                          mode, r.status, r.nerr, cmp.nerr);
            }
            list_new(names, sizeof names);
            if (names[0])
                VIOLATION("%s: left files in the directory: %s", mode, names);
            free_result(&r);
        }
        char a_emit[] = "--emit", a_py[] = "pytorch", a_outpy[] = "out.py";
        char *py_argv[] = {a0, a_emit, a_py, a_spec, a_o, a_outpy, NULL};
        result r;
        run_nngen(6, py_argv, &r);
        if (r.status != 0 || r.nerr != cmp.nerr || memcmp(r.err, cmp.err, r.nerr) != 0 ||
            r.nout != 0) {
            say_capture("stderr", r.err, r.nerr);
            VIOLATION("--emit pytorch: exit status %d (%zu bytes on standard error, the "
                      "compile run's warnings being %zu; %zu on standard output) for a spec "
                      "that compiles", r.status, r.nerr, cmp.nerr, r.nout);
        }
        list_new(names, sizeof names);
        if (strcmp(names, "out.py") != 0)
            VIOLATION("--emit pytorch: the new files are '%s', not 'out.py'", names);
        unlink("out.py");
        free_result(&r);
    }

    free_result(&chk);
    free_result(&cmp);
    remove_outputs();
    if (fchdir(home_fd) != 0)
        die("fchdir");
    return 0;
}
