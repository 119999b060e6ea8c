/* cli.c: the command line and the pipeline (nngen_main; main.c calls it,
 * and so can a fuzzer, in process).
 *
 *   read file -> yaml_load -> check_program -> (print | params | emit | emit_pytorch | dot)
 *
 * Exit status: 0 success, 1 the spec is wrong, 2 usage error, 3 I/O error.
 * Outputs are written to a temporary file next to the target and renamed
 * into place, so a failing run never leaves a partial or clobbered file.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "ops/op.h"

static const char usage_text[] =
    "Usage:\n"
    "  nngen SPEC.yaml -o OUT.c [--header OUT.h] [--no-blas] [--inference]\n"
    "                  [--batch N] [--name P] [--weights FILE.safetensors]\n"
    "                             compile SPEC to C99 (OUT.c and OUT.h)\n"
    "  nngen --print SPEC.yaml    print the module tree as PyTorch's print(net) does\n"
    "  nngen --params SPEC.yaml   list every state_dict key with its shape\n"
    "  nngen --check SPEC.yaml    validate the spec only\n"
    "  nngen --emit pytorch SPEC.yaml -o NET.py\n"
    "                             write an equivalent torch.nn module (Python): build(),\n"
    "                             same names, print and initial parameters\n"
    "  nngen --dot SPEC.yaml      print a Graphviz (dot) picture of the network\n"
    "  nngen --list-layers        list the layer types: NAME, torch class, main argument,\n"
    "                             arguments (arg:type=default), tab-separated\n"
    "  nngen --help               show this help\n"
    "  nngen --version            show the version\n"
    "\n"
    "Options:\n"
    "  -o FILE           where to write the generated C (required to compile) or,\n"
    "                    with --emit pytorch, the Python file\n"
    "  --header FILE     where to write the generated header (default: OUT with .h)\n"
    "  --no-blas         emit pure C loops for every layer size (no BLAS, no threads)\n"
    "  --inference       emit forward only: no gradients or training, activation\n"
    "                    buffers reused between layers (smallest instance)\n"
    "  --batch N         use batch N instead of the spec's batch: (any mode)\n"
    "  --name P          use P instead of the spec's name: (the prefix of every\n"
    "                    generated symbol), so that variants link into one program\n"
    "  --weights FILE    compile the parameters and buffers of FILE (safetensors, as\n"
    "                    nn_save writes) into the C as static const data; with\n"
    "                    --inference they stay read-only (no init, no copy)\n"
    "\n"
    "Exit status: 0 success, 1 the spec is wrong, 2 usage error, 3 I/O error.\n";

enum mode { MODE_COMPILE, MODE_PRINT, MODE_PARAMS, MODE_CHECK, MODE_EMIT_PY, MODE_DOT };

static int usage_error(const char *fmt, const char *arg)
{
    fputs("nngen: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'nngen --help'.\n", stderr);
    return 2;
}

/* Reads the whole file; NULL with errno on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    strbuf b = {0};
    char chunk[65536];
    size_t n;
    errno = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > MAX_SPEC_BYTES) {
            fclose(f);
            free(b.s);
            errno = EFBIG;
            return NULL;
        }
        for (size_t i = 0; i < n; i++)
            sb_putc(&b, chunk[i]);
    }
    int bad = ferror(f), err = errno; /* EISDIR for a directory */
    fclose(f);
    if (bad) {
        free(b.s);
        errno = err ? err : EIO;
        return NULL;
    }
    if (!b.s)
        sb_puts(&b, "");
    *len = b.len;
    return b.s;
}

/* An output written to PATH.XXXXXX and renamed over PATH on success. */
typedef struct outfile {
    const char *path;
    char *tmp;
    FILE *f;
} outfile;

static outfile *live_outs[2];

static void out_open(outfile *o, const char *path, int slot)
{
    o->path = path;
    o->tmp = xfmt("%s.XXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0)
        io_error("cannot write '%s': %s", path, strerror(errno));
    /* mkstemp makes the file 0600; give it the mode any new file gets */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, (mode_t)0666 & ~mask) != 0) {
        int err = errno;
        close(fd);
        remove(o->tmp);
        io_error("cannot write '%s': %s", path, strerror(err));
    }
    o->f = fdopen(fd, "w");
    if (!o->f) {
        close(fd);
        remove(o->tmp);
        io_error("cannot write '%s': %s", path, strerror(errno));
    }
    live_outs[slot] = o;
}

static void out_abandon(void)
{
    for (int i = 0; i < 2; i++)
        if (live_outs[i]) {
            if (live_outs[i]->f)
                fclose(live_outs[i]->f);
            remove(live_outs[i]->tmp);
            live_outs[i] = NULL;
        }
}

static void out_finish(outfile *o)
{
    int bad = ferror(o->f);
    if (fflush(o->f) != 0)
        bad = 1;
    if (fclose(o->f) != 0)
        bad = 1;
    o->f = NULL;
    if (bad)
        io_error("cannot write '%s': %s", o->path, strerror(errno ? errno : EIO));
}

static void out_commit(outfile *o, int slot)
{
    if (rename(o->tmp, o->path) != 0)
        io_error("cannot write '%s': %s", o->path, strerror(errno));
    live_outs[slot] = NULL;
}

static const char *default_header(const char *out)
{
    size_t n = strlen(out);
    if (n > 2 && strcmp(out + n - 2, ".c") == 0)
        return xfmt("%.*s.h", (int)(n - 2), out);
    return xfmt("%s.h", out);
}

static void print_params(const program *p)
{
    for (int i = 0; i < p->nstate; i++) {
        const state_entry *s = &p->state[i];
        const tensor *t = &p->tensors[s->tensor];
        printf("%s [", s->key);
        for (int d = 0; d < t->ndim; d++)
            printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf("]");
        if (strcmp(t->name, s->key) != 0)
            printf(" (shared with %s)", t->name);
        /* weights used transposed are no key of their users (TiedLinear) */
        int users = 0;
        for (int k = 0; !strcmp(t->name, s->key) && k < p->nmodules; k++) {
            const module *m = p->modules[k];
            if (m->has_borrow && m->borrow == s->tensor)
                printf("%s%s", users++ ? ", " : " (used transposed by ",
                       m->path[0] ? m->path : "(the model)");
        }
        if (users)
            printf(")");
        printf("\n");
    }
}

static int run(enum mode mode, const char *spec, const char *out, const char *header,
               int no_blas, int inference, const check_opts *copts, const char *weights)
{
    size_t len = 0;
    char *text = read_file(spec, &len);
    if (!text) {
        if (errno == EFBIG)
            fprintf(stderr, "%s: error: the file is larger than %d bytes (nngen's limit)\n",
                    spec, MAX_SPEC_BYTES);
        else
            fprintf(stderr, "%s: error: cannot read the spec: %s\n", spec, strerror(errno));
        return 3;
    }
    diag_set_source(spec, text, len);
    int status = setjmp(diag_jmp);
    if (status) {
        yaml_release();
        out_abandon();
        free(text);
        arena_release();
        return status;
    }
    ynode *doc = yaml_load(spec, text, len);
    program *p = check_program_opts(spec, doc, copts);
    switch (mode) {
    case MODE_CHECK:
        break;
    case MODE_PRINT:
        nn_print_model(stdout, build_view(p));
        break;
    case MODE_PARAMS:
        print_params(p);
        break;
    case MODE_DOT:
        emit_dot(stdout, p);
        break;
    case MODE_EMIT_PY: {
        static outfile op;
        out_open(&op, out, 0);
        emit_pytorch(op.f, p);
        out_finish(&op);
        out_commit(&op, 0);
        break;
    }
    case MODE_COMPILE: {
        const char *hpath = header ? header : default_header(out);
        const char *slash = strrchr(hpath, '/');
        emit_opts o;
        memset(&o, 0, sizeof o);
        o.no_blas = no_blas;
        o.inference = inference;
        o.header_name = slash ? slash + 1 : hpath;
        if (weights) {
            o.baked = load_baked_weights(p, weights);
            o.baked_file = weights;
        }
        static outfile oc, oh;
        out_open(&oc, out, 0);
        out_open(&oh, hpath, 1);
        emit_c(oc.f, oh.f, p, &o);
        out_finish(&oc);
        out_finish(&oh);
        out_commit(&oh, 1);
        out_commit(&oc, 0);
        break;
    }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nngen: error: cannot write to standard output\n");
        status = 3;
    }
    free(text);
    arena_release();
    return status;
}

/* One line per layer type: NAME TAB TorchClass TAB MAIN TAB ARGS, MAIN the
   main argument or "-", ARGS space-separated "arg:type=default" ("arg:type"
   without a default: required, or inferred from the input). */
static int list_layers(void)
{
    static const char *const types[] = {"int", "num", "bool", "pair", "shape", "word", "tied"};
    for (int i = 0; i < op_count; i++) {
        const op_desc *d = op_registry[i];
        printf("%s\t%s\t%s\t", d->name, d->cls, d->main_arg >= 0 ? d->args[d->main_arg].name
                                                                  : "-");
        for (int k = 0; k < d->nargs; k++) {
            const arg_spec *a = &d->args[k];
            printf("%s%s:%s", k ? " " : "", a->name, types[a->type]);
            for (int w = 0; a->words && a->words[w]; w++)
                printf("|%s", a->words[w]);
            if (a->def)
                printf("=%s", a->def);
        }
        printf("\n");
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nngen: error: cannot write to standard output\n");
        return 3;
    }
    return 0;
}

int nngen_main(int argc, char **argv)
{
    enum mode mode = MODE_COMPILE;
    int mode_set = 0, no_blas = 0, inference = 0;
    const char *spec = NULL, *out = NULL, *header = NULL, *weights = NULL;
    check_opts copts = {NULL, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("nngen %s\n", NNGEN_VERSION);
            return 0;
        } else if (!strcmp(a, "--list-layers")) {
            return list_layers();
        } else if (!strcmp(a, "--print") || !strcmp(a, "--params") || !strcmp(a, "--check") ||
                   !strcmp(a, "--dot")) {
            if (mode_set)
                return usage_error("more than one mode given (%s)", a);
            mode_set = 1;
            mode = a[2] == 'c' ? MODE_CHECK : !strcmp(a, "--print") ? MODE_PRINT
                                          : !strcmp(a, "--dot")     ? MODE_DOT
                                                                    : MODE_PARAMS;
        } else if (!strcmp(a, "--emit") || !strncmp(a, "--emit=", 7)) {
            if (mode_set)
                return usage_error("more than one mode given (%s)", a);
            const char *fmt = a[6] == '=' ? a + 7 : NULL;
            if (!fmt) {
                if (i + 1 >= argc)
                    return usage_error("%s", "--emit needs a format: --emit pytorch");
                fmt = argv[++i];
            }
            if (strcmp(fmt, "pytorch") != 0)
                return usage_error("unknown --emit format '%s' (the one format is 'pytorch')",
                                   fmt);
            mode_set = 1;
            mode = MODE_EMIT_PY;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--header")) {
            if (i + 1 >= argc)
                return usage_error("%s needs a file name", a);
            if (a[1] == 'o')
                out = argv[++i];
            else
                header = argv[++i];
        } else if (!strcmp(a, "--batch") || !strncmp(a, "--batch=", 8) ||
                   !strcmp(a, "--name") || !strncmp(a, "--name=", 7) ||
                   !strcmp(a, "--weights") || !strncmp(a, "--weights=", 10)) {
            size_t kl = strcspn(a, "=");
            const char *val = a[kl] == '=' ? a + kl + 1 : NULL;
            char key[16];
            snprintf(key, sizeof key, "%.*s", (int)kl, a);
            if (!val) {
                if (i + 1 >= argc)
                    return usage_error("%s needs a value", key);
                val = argv[++i];
            }
            if (key[2] == 'b') {
                char *end;
                errno = 0;
                long long b = strtoll(val, &end, 10);
                if (!*val || *end || errno || b < 1 || b > MAX_DIM_SIZE || val[0] == '+' ||
                    val[0] == ' ')
                    return usage_error("--batch must be a whole number from 1 to 2147483647, "
                                       "got '%s'", val);
                copts.batch = b;
            } else if (key[2] == 'n') {
                const char *why = reserved_name_reason(val);
                if (!is_identifier(val) || strlen(val) > 64)
                    return usage_error("--name '%s' must be a C identifier of at most 64 "
                                       "characters (it prefixes every generated symbol)", val);
                if (why) {
                    fprintf(stderr, "nngen: error: --name '%s' cannot be used: %s; choose "
                                    "another, e.g. '%s_net'\nTry 'nngen --help'.\n",
                            val, why, val[0] == '_' ? "my" : val);
                    return 2;
                }
                copts.name = val;
            } else {
                weights = val;
            }
        } else if (!strcmp(a, "--no-blas")) {
            no_blas = 1;
        } else if (!strcmp(a, "--inference")) {
            inference = 1;
        } else if (a[0] == '-' && a[1]) {
            static const char *const opts[] = {"--help",   "--version", "--print",
                                               "--params", "--check",   "--header",
                                               "--no-blas", "-o",       "--emit",
                                               "--dot",    "--inference",
                                               "--list-layers", "--batch", "--name",
                                               "--weights"};
            const char *s = suggest(a, opts, 15);
            if (s) {
                fprintf(stderr, "nngen: error: unknown option '%s' (did you mean '%s'?)\n"
                                "Try 'nngen --help'.\n", a, s);
                return 2;
            }
            return usage_error("unknown option '%s'", a);
        } else {
            if (spec)
                return usage_error("more than one spec file given ('%s')", a);
            spec = a;
        }
    }
    if (!spec)
        return usage_error("%s", "no spec file given");
    if (mode == MODE_COMPILE && !out)
        return usage_error("%s", "no output file: use -o OUT.c (or --print, --params, --check)");
    if (mode == MODE_EMIT_PY && !out)
        return usage_error("%s", "no output file: --emit pytorch needs -o NET.py");
    if (mode == MODE_EMIT_PY && (header || no_blas || inference))
        return usage_error("%s", "--header, --no-blas and --inference only apply when compiling "
                                 "to C");
    if (mode != MODE_COMPILE && mode != MODE_EMIT_PY && (out || header || no_blas || inference))
        return usage_error("%s", "-o, --header, --no-blas and --inference only apply when "
                                 "compiling (--dot, --print and --params write to standard "
                                 "output)");
    if (weights && mode != MODE_COMPILE)
        return usage_error("%s", "--weights only applies when compiling to C");
    return run(mode, spec, out, header, no_blas, inference, &copts, weights);
}
