/* init_dump: apply a recipe of nn_init_* calls with ONE generator and print
 * every value as a C99 hex float, for comparison with torch
 * (compare_torch.py implements the same recipe language in Python).
 *
 *   init_dump SEED STEP...
 *
 * SEED is a decimal unsigned 64-bit integer (torch.manual_seed(SEED)).
 * Each STEP is SHAPE:OP[:ARGS] and creates a new tensor, except the
 * modifier @zero_abs_below:T which applies to the most recent tensor.
 *   SHAPE  dimensions joined by 'x' ("8x4", "3x2x5x5", "17"), or "-" for
 *          a 0-dimensional tensor (one element)
 *   OP:ARGS (ARGS comma-separated, optional ones in brackets)
 *     uniform[:a,b]            normal[:mean,std]
 *     constant:v   zeros   ones
 *     xavier_uniform[:gain]    xavier_normal[:gain]
 *     kaiming_uniform[:a,mode,nonlinearity]   kaiming_normal[:...]
 *                              (mode fan_in|fan_out; nonlinearity a
 *                               calculate_gain name)
 *     trunc_normal[:mean,std,a,b]
 *     linear[:nobias]          SHAPE is OUTxIN; makes weight and bias [OUT]
 *     mixture:p/kind/a[/b],... kind constant|uniform|normal
 * Output: for each tensor, in creation order (weight before bias), a line
 * "tensor NUMEL" then NUMEL lines of "%a".  Exit 0, or 2 on a bad recipe
 * or when a nn_init call reported an error (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nngen/rt.h>

#define MAX_TENSORS 256
#define MAX_ARGS 8
#define MAX_MIX 16

static nn_tensor tensors[MAX_TENSORS];
static int ntensors;

static void die(const char *msg, const char *what)
{
    fprintf(stderr, "init_dump: %s: %s\n", msg, what);
    exit(2);
}

static nn_tensor *new_tensor(int ndim, const int64_t *shape)
{
    nn_tensor *t;
    int64_t numel = 1;
    int d;
    if (ntensors == MAX_TENSORS)
        die("too many tensors", "");
    t = &tensors[ntensors++];
    memset(t, 0, sizeof *t);
    t->name = "t";
    t->ndim = ndim;
    for (d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        numel *= shape[d];
    }
    t->numel = numel;
    /* calloc(0) may return NULL; always allocate one float */
    t->data = calloc((size_t)(numel > 0 ? numel : 1), sizeof(float));
    if (t->data == NULL)
        die("out of memory", "");
    return t;
}

static int parse_shape(const char *s, int64_t *shape)
{
    int ndim = 0;
    char *end;
    if (strcmp(s, "-") == 0)
        return 0;
    for (;;) {
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || ndim == NN_MAX_DIM)
            die("bad shape", s);
        shape[ndim++] = v;
        if (*end == '\0')
            break;
        if (*end != 'x')
            die("bad shape", s);
        s = end + 1;
    }
    return ndim;
}

static double num(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        die("bad number", s);
    return v;
}

/* Splits s (modified) at sep into at most max fields. */
static int split(char *s, char sep, char **out, int max)
{
    int n = 0;
    if (s == NULL || *s == '\0')
        return 0;
    for (;;) {
        char *p = strchr(s, sep);
        if (n == max)
            die("too many fields", s);
        out[n++] = s;
        if (p == NULL)
            break;
        *p = '\0';
        s = p + 1;
    }
    return n;
}

static nn_nonlinearity parse_nl(const char *s)
{
    static const struct { const char *name; nn_nonlinearity nl; } names[] = {
        {"linear", NN_NL_LINEAR}, {"conv1d", NN_NL_CONV1D}, {"conv2d", NN_NL_CONV2D},
        {"conv3d", NN_NL_CONV3D}, {"conv_transpose1d", NN_NL_CONV_TRANSPOSE1D},
        {"conv_transpose2d", NN_NL_CONV_TRANSPOSE2D},
        {"conv_transpose3d", NN_NL_CONV_TRANSPOSE3D}, {"sigmoid", NN_NL_SIGMOID},
        {"tanh", NN_NL_TANH}, {"relu", NN_NL_RELU}, {"leaky_relu", NN_NL_LEAKY_RELU},
        {"selu", NN_NL_SELU},
    };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].nl;
    die("unknown nonlinearity", s);
    return NN_NL_LINEAR;
}

static double arg_or(char **args, int nargs, int i, double dflt)
{
    return i < nargs ? num(args[i]) : dflt;
}

static void step(char *spec, nn_rng *r)
{
    char *fields[3], *args[MAX_ARGS];
    int nf, nargs, ndim;
    int64_t shape[NN_MAX_DIM];
    nn_tensor *t;
    const char *op;
    char copy[512];

    if (strlen(spec) >= sizeof copy)
        die("step too long", spec);
    strcpy(copy, spec);
    nf = split(copy, ':', fields, 3);
    if (nf < 2)
        die("bad step", spec);
    op = fields[1];
    nargs = nf == 3 ? split(fields[2], ',', args, MAX_ARGS) : 0;

    if (strcmp(fields[0], "@zero_abs_below") == 0) {
        /* the modifier: "@zero_abs_below:T" */
        if (ntensors == 0)
            die("nothing to modify", spec);
        nn_init_zero_abs_below(&tensors[ntensors - 1], (float)num(op));
        return;
    }

    ndim = parse_shape(fields[0], shape);
    if (strcmp(op, "linear") == 0) {
        nn_tensor *w;
        int with_bias = !(nargs == 1 && strcmp(args[0], "nobias") == 0);
        if (ndim != 2)
            die("linear needs OUTxIN", spec);
        w = new_tensor(2, shape);
        if (with_bias) {
            nn_tensor *b = new_tensor(1, shape);
            nn_init_linear_default(w, b, r);
        } else {
            nn_init_linear_default(w, NULL, r);
        }
        return;
    }

    t = new_tensor(ndim, shape);
    if (strcmp(op, "uniform") == 0) {
        nn_init_uniform(t, r, (float)arg_or(args, nargs, 0, 0.0), (float)arg_or(args, nargs, 1, 1.0));
    } else if (strcmp(op, "normal") == 0) {
        nn_init_normal_d(t, r, arg_or(args, nargs, 0, 0.0), arg_or(args, nargs, 1, 1.0));
    } else if (strcmp(op, "constant") == 0) {
        nn_init_constant(t, (float)arg_or(args, nargs, 0, 0.0));
    } else if (strcmp(op, "zeros") == 0) {
        nn_init_zeros(t);
    } else if (strcmp(op, "ones") == 0) {
        nn_init_ones(t);
    } else if (strcmp(op, "xavier_uniform") == 0) {
        nn_init_xavier_uniform_d(t, r, arg_or(args, nargs, 0, 1.0));
    } else if (strcmp(op, "xavier_normal") == 0) {
        nn_init_xavier_normal_d(t, r, arg_or(args, nargs, 0, 1.0));
    } else if (strcmp(op, "kaiming_uniform") == 0 || strcmp(op, "kaiming_normal") == 0) {
        double a = arg_or(args, nargs, 0, 0.0);
        nn_fan_mode mode = NN_FAN_IN;
        nn_nonlinearity nl = NN_NL_LEAKY_RELU;
        if (nargs > 1) {
            if (strcmp(args[1], "fan_in") == 0)
                mode = NN_FAN_IN;
            else if (strcmp(args[1], "fan_out") == 0)
                mode = NN_FAN_OUT;
            else
                die("bad mode", args[1]);
        }
        if (nargs > 2)
            nl = parse_nl(args[2]);
        if (op[8] == 'u')
            nn_init_kaiming_uniform(t, r, a, mode, nl);
        else
            nn_init_kaiming_normal(t, r, a, mode, nl);
    } else if (strcmp(op, "trunc_normal") == 0) {
        nn_init_trunc_normal_d(t, r, arg_or(args, nargs, 0, 0.0), arg_or(args, nargs, 1, 1.0),
                               arg_or(args, nargs, 2, -2.0), arg_or(args, nargs, 3, 2.0));
    } else if (strcmp(op, "mixture") == 0) {
        nn_mix_component c[MAX_MIX];
        int k;
        if (nargs < 1)
            die("mixture needs components", spec);
        for (k = 0; k < nargs; k++) {
            char *parts[4];
            int np = split(args[k], '/', parts, 4);
            if (np < 3)
                die("bad mixture component", spec);
            c[k].p = num(parts[0]);
            c[k].a = (float)num(parts[2]);
            c[k].b = np > 3 ? (float)num(parts[3]) : 0.0f;
            if (strcmp(parts[1], "constant") == 0)
                c[k].kind = NN_MIX_CONSTANT;
            else if (strcmp(parts[1], "uniform") == 0)
                c[k].kind = NN_MIX_UNIFORM;
            else if (strcmp(parts[1], "normal") == 0)
                c[k].kind = NN_MIX_NORMAL;
            else
                die("bad mixture kind", parts[1]);
        }
        nn_init_mixture(t, r, c, nargs);
    } else {
        die("unknown op", op);
    }
}

int main(int argc, char **argv)
{
    nn_rng r;
    char *end;
    unsigned long long seed;
    int i;
    int64_t k;

    if (argc < 2) {
        fprintf(stderr, "usage: init_dump SEED STEP...\n");
        return 2;
    }
    seed = strtoull(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0')
        die("bad seed", argv[1]);
    nn_rng_seed(&r, (uint64_t)seed);
    nn_set_error("%s", "");
    for (i = 2; i < argc; i++)
        step(argv[i], &r);
    if (nn_error() != NULL && nn_error()[0] != '\0') {
        fprintf(stderr, "init_dump: %s\n", nn_error());
        return 2;
    }
    for (i = 0; i < ntensors; i++) {
        printf("tensor %lld\n", (long long)tensors[i].numel);
        for (k = 0; k < tensors[i].numel; k++)
            printf("%a\n", (double)tensors[i].data[k]);
        free(tensors[i].data);
    }
    return 0;
}
