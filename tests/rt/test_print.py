#!/usr/bin/python3
"""Printing conformance: the runtime's printers against PyTorch itself.

usage: test_print.py PRINT_TOOL [--cases N] [--seed S] [-v]

Builds torch tensors (float32, and int64 / int32 as buffers such as batch
norm's num_batches_tracked hold them), parameters, buffers and the fixture
networks, feeds the same bit patterns to print_tool (the C runtime), and
compares the output byte for byte with what print() gives in PyTorch.  No
expected text is written by hand: torch is the oracle.
"""

import argparse
import io
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

tm.require_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def pyprint(obj):
    buf = io.StringIO()
    print(obj, file=buf)
    return buf.getvalue()


def pyprint_args(*objs):
    buf = io.StringIO()
    print(*objs, file=buf)
    return buf.getvalue()


class Cases:
    def __init__(self):
        self.cmds = []
        self.expected = []
        self.labels = []

    def add(self, label, cmd, expected):
        self.cmds.append(cmd)
        self.expected.append(expected)
        self.labels.append(label)

    def setup(self, cmd):
        self.cmds.append(cmd)        # produces no output

    @staticmethod
    def want(t, mode):
        """print(t) (0), print(Parameter(t)) (1), print(frozen Parameter(t))
        (2), repr(t) (3), print(t) of a buffer, a plain tensor (4)."""
        if mode in (0, 4):
            return pyprint(t)
        if mode == 1:
            return pyprint(nn.Parameter(t.clone()))
        if mode == 2:
            return pyprint(nn.Parameter(t.clone(), requires_grad=False))
        return repr(t) + "\n"

    def tensor(self, label, t, mode=0):
        t = t.detach().to(torch.float32).contiguous()
        shape = list(t.shape)
        cmd = "tensor %d %d %s %s" % (mode, len(shape), " ".join(map(str, shape)), tm.bits(t))
        self.add("%s %s mode=%d" % (label, tuple(shape), mode), cmd, self.want(t, mode))

    def itensor(self, label, t, mode=0):
        """An int64 or int32 tensor (no mode 1: integer tensors cannot
        require grad)."""
        t = t.detach().contiguous()
        bits = {torch.int64: 64, torch.int32: 32}[t.dtype]
        shape = list(t.shape)
        cmd = "itensor %d %d %d %s %s" % (bits, mode, len(shape), " ".join(map(str, shape)),
                                         " ".join(str(int(v)) for v in t.reshape(-1).tolist()))
        self.add("%s int%d %s mode=%d" % (label, bits, tuple(shape), mode), cmd,
                 self.want(t, mode))


# ---------------------------------------------------------------------------
# Tensor values

SPECIALS = [0.0, -0.0, float("nan"), float("inf"), float("-inf")]


def values(rng, n, kind):
    if kind == "uniform":
        v = rng.uniform(-1, 1, n)
    elif kind == "positive":
        v = rng.uniform(0, 1, n)
    elif kind == "normal_scaled":
        v = rng.normal(0, 1, n) * 10.0 ** rng.uniform(-9, 9)
    elif kind == "wide":
        lo = rng.uniform(-9, 9)
        hi = min(9.0, lo + rng.uniform(0, 6))
        v = 10.0 ** rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n)
    elif kind == "magnitude":          # one decade, any of 1e-9 .. 1e9
        e = rng.integers(-9, 10)
        v = rng.uniform(1, 10, n) * 10.0 ** e * rng.choice([-1.0, 1.0], n)
    elif kind == "int_small":
        v = rng.integers(-100, 101, n).astype(np.float64)
    elif kind == "int_positive":
        v = rng.integers(0, 10, n).astype(np.float64)
    elif kind == "int_large":
        v = rng.integers(-2_000_000_000, 2_000_000_000, n).astype(np.float64)
    elif kind == "int_wide":
        v = rng.choice([1.0, 2.0, -3.0, 1000.0, 1001.0, 2000.0, -5000.0, 12345.0], n)
    elif kind == "int_1e8":
        v = rng.choice([1.0e8, 99999992.0, 100000008.0, 1.0e5, -1.0e8], n)
    elif kind == "zeros":
        v = np.zeros(n)
    elif kind == "const":
        v = np.full(n, rng.choice([1.0, 42.0, -7.0, 0.5, 1e-5, 3e10]))
    elif kind == "ties":               # exact binary fractions: rounding ties
        v = rng.integers(-4000, 4000, n) / 2.0 ** rng.integers(1, 16, n)
    elif kind == "tiny":               # subnormal and near-subnormal floats
        v = 10.0 ** rng.uniform(-44, -36, n) * rng.choice([-1.0, 1.0], n)
    elif kind == "huge":
        v = 10.0 ** rng.uniform(30, 38.5, n) * rng.choice([-1.0, 1.0], n)
    elif kind == "boundary":           # the mode switches: 1e-4, 1e8, ratio 1000
        v = rng.choice([1e-4, 1.0001e-4, 9.999e-5, 0.001, 1.0, 1000.0, 999.9, 1000.1,
                        0.5, 1e8, 9.9999e7, 1.00001e8, 0.1, 100.0, 99.99995, 9.99995,
                        0.99995, 0.00015, 0.12345], n)
    elif kind == "neg_zero":
        v = rng.choice([-0.0, 0.0, -0.00001, 0.00003, 1.0, -2.5], n)
    elif kind == "nonfinite":
        v = rng.choice([float("nan"), float("inf"), float("-inf"), 0.0, -0.0], n)
    else:
        raise KeyError(kind)
    v = np.asarray(v, dtype=np.float64).astype(np.float32)
    if n and kind not in ("zeros", "nonfinite") and rng.random() < 0.25:
        k = int(rng.integers(1, max(2, n // 4) + 1))
        idx = rng.integers(0, n, k)
        v[idx] = np.array(rng.choice(SPECIALS, k), dtype=np.float32)
    if n and rng.random() < 0.05:      # a negative NaN
        v[int(rng.integers(0, n))] = np.array([0xFFC00000], dtype=np.uint32).view(np.float32)[0]
    return v


KINDS = ["uniform", "positive", "normal_scaled", "wide", "magnitude", "int_small",
         "int_positive", "int_large", "int_wide", "int_1e8", "zeros", "const", "ties",
         "tiny", "huge", "boundary", "neg_zero", "nonfinite"]


def random_shape(rng):
    r = rng.random()
    if r < 0.08:
        return []
    if r < 0.40:
        return [int(rng.integers(1, 41))]
    if r < 0.62:
        return [int(rng.integers(1, 9)), int(rng.integers(1, 13))]
    if r < 0.72:
        return [int(rng.integers(1, 5)) for _ in range(3)]
    if r < 0.78:
        return [int(rng.integers(1, 4)) for _ in range(4)]
    if r < 0.83:                       # no summarization: exactly 1000 or fewer
        return pick(rng, [[1000], [10, 100], [100, 10], [8, 125], [10, 10, 10],
                          [5, 5, 5, 8], [7, 7], [999]])
    if r < 0.97:                       # summarized (> 1000 elements)
        return pick(rng, [[1001], [1500], [3000], [40, 30], [1001, 1], [1, 1001],
                          [2, 600], [10, 101], [3, 20, 20], [7, 7, 7, 7],
                          [2, 3, 13, 13], [8, 1, 1, 130], [6, 6, 6, 6], [501, 2],
                          [2, 501], [1, 2, 3, 200], [7, 150], [13, 7, 12]])
    return pick(rng, [[0], [2, 0], [0, 3, 4], [1, 0, 1, 1], [0, 0]])


def pick(rng, options):
    return list(options[int(rng.integers(0, len(options)))])


def tensor_cases(cases, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = random_shape(rng)
        kind = KINDS[i % len(KINDS)]
        numel = int(np.prod(shape)) if shape else 1
        v = values(rng, numel, kind)
        t = torch.from_numpy(v.reshape(shape))
        mode = int(rng.choice([0, 0, 0, 1, 2, 3, 4]))
        cases.tensor("random#%d %s" % (i, kind), t, mode)


# ---------------------------------------------------------------------------
# Integer tensors

I64_MIN, I64_MAX = -2 ** 63, 2 ** 63 - 1


def int_values(rng, n, kind, bits):
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    if kind == "small":
        v = rng.integers(-100, 101, n)
    elif kind == "counts":             # what num_batches_tracked holds
        v = rng.integers(0, 10 ** int(rng.integers(1, 8)), n)
    elif kind == "digits":             # one width, any of 1 .. 19 digits
        d = int(rng.integers(1, 19 if bits == 64 else 10))
        v = rng.integers(10 ** (d - 1), 10 ** d, n) * rng.choice([-1, 1], n)
    elif kind == "wide":               # many widths in one tensor
        e = rng.integers(0, 18 if bits == 64 else 9, n)
        v = np.array([int(rng.integers(0, 10 ** int(k) + 1)) for k in e], dtype=np.int64)
        v = v * rng.choice([-1, 1], n)
    elif kind == "extremes":
        v = rng.choice([lo, hi, lo + 1, hi - 1, -1, 0, 1, 9, 10, -9, -10, 99, 100, -100], n)
    elif kind == "negative":
        v = -rng.integers(1, 1000, n)
    elif kind == "zeros":
        v = np.zeros(n, dtype=np.int64)
    elif kind == "const":
        v = np.full(n, int(rng.choice([0, 1, -1, 7, 1000, -123456, lo, hi])))
    elif kind == "full":               # uniform over the whole range
        v = rng.integers(lo, hi, n, endpoint=True, dtype=np.int64)
    else:
        raise KeyError(kind)
    return np.asarray(v, dtype=np.int64).clip(lo, hi)


INT_KINDS = ["small", "counts", "digits", "wide", "extremes", "negative", "zeros", "const",
             "full"]


def int_cases(cases, n, seed):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = random_shape(rng)
        kind = INT_KINDS[i % len(INT_KINDS)]
        bits = 64 if rng.random() < 0.85 else 32
        numel = int(np.prod(shape)) if shape else 1
        v = int_values(rng, numel, kind, bits)
        t = torch.from_numpy(v.reshape(shape)).to(torch.int64 if bits == 64 else torch.int32)
        mode = int(rng.choice([0, 0, 0, 2, 3, 4]))
        cases.itensor("random#%d %s" % (i, kind), t, mode)
    L = torch.tensor
    for label, t in [
        ("zero", L(0)), ("one", L(1)), ("minus", L(-7)), ("min", L(I64_MIN)), ("max", L(I64_MAX)),
        ("counts", L([1, 2, 3])), ("wide", L([-5, 10 ** 12, 3])),
        ("extremes", L([I64_MIN, I64_MAX])),
        ("arange2000", torch.arange(2000)), ("arange1000", torch.arange(1000)),
        ("arange1001", torch.arange(1001)), ("grid", torch.arange(-600, 600).reshape(40, 30)),
        ("cube", torch.arange(3000).reshape(10, 15, 20) * 997 - 10 ** 6),
        ("row80", torch.full((80,), -1)), ("col", torch.arange(12).reshape(12, 1)),
        ("empty", L([], dtype=torch.int64)), ("empty2", torch.zeros(2, 0, dtype=torch.int64)),
        ("empty4", torch.zeros(1, 0, 1, 1, dtype=torch.int64)),
        ("i32", L([1, 2], dtype=torch.int32)), ("i32 0d", L(3, dtype=torch.int32)),
        ("i32 empty", L([], dtype=torch.int32)),
        ("i32 empty2", torch.zeros(0, 3, dtype=torch.int32)),
        ("i32 extremes", L([-2 ** 31, 2 ** 31 - 1], dtype=torch.int32)),
        ("i32 long", torch.arange(1500, dtype=torch.int32)),
    ]:
        for mode in (0, 2, 3, 4):
            cases.itensor("edge " + label, t, mode)
    # suffix placement: dtype=torch.int32 after a row ending near column 80
    for n in range(1, 30):
        for bits in (32, 64):
            v = int_values(np.random.default_rng(n), n, "wide", bits)
            t = torch.from_numpy(v).to(torch.int64 if bits == 64 else torch.int32)
            cases.itensor("suffix n=%d" % n, t, 2)


def edge_cases(cases):
    f = float
    nan, inf = f("nan"), f("inf")
    lists = [
        [], [0.0], [-0.0], [nan], [inf], [-inf], [nan, inf, -inf], [0.0, nan],
        [1.0, nan], [1.5, nan, -inf], [1e-9, nan], [1e9], [1e9, 1.0], [1e8], [1e8 + 8],
        [123456789.0], [0.1, 1e8], [1e-4], [9.9e-5], [1.0, 1000.0], [1.0, 1001.0],
        [0.001, 1.0], [0.5, 1000.0], [2.5, 0.5, 1.5], [0.03125, 0.15625], [-0.0, 0.0, 1.0],
        [-0.0, 1.5], [-1e-5, 1.0], [3.4028234663852886e38, -3.4028234663852886e38],
        [1.401298464324817e-45], [1e-40, 1.0], [float(x) for x in range(-5, 6)],
        [100.0, 0.25], [99999.0, 0.5], [1.0] * 73, [0.5] * 12, [-0.5] * 12,
    ]
    for i, l in enumerate(lists):
        t = torch.tensor(l, dtype=torch.float32)
        for mode in (0, 1, 2):
            cases.tensor("edge#%d" % i, t, mode)
    for v in [0.0, -0.0, 1.0, -1.5, 1e-9, 1e9, nan, inf, -inf, 7.0961e-05, 42.0, 100.0]:
        for mode in (0, 1, 3):
            cases.tensor("scalar %r" % v, torch.tensor(v, dtype=torch.float32), mode)
    # suffix placement: a 1-D row whose last line ends near column 80
    rng = np.random.default_rng(7)
    for n in range(1, 30):
        for kind in ("uniform", "magnitude", "int_small"):
            v = values(np.random.default_rng(n), n, kind)
            cases.tensor("suffix n=%d %s" % (n, kind), torch.from_numpy(v), 1)
    for shape in ([9, 8], [3, 4, 9], [2, 2, 2, 9], [1, 80], [80, 1], [2000], [40, 40]):
        v = values(rng, int(np.prod(shape)), "uniform")
        cases.tensor("suffix %s" % shape, torch.from_numpy(v.reshape(shape)), 1)
    for shape in ([0], [2, 0], [0, 3, 4], [1, 0, 1, 1]):
        for mode in (0, 1, 2, 3):
            cases.tensor("empty", torch.zeros(shape), mode)


def seed_cases(cases):
    """Values printed in the seed chapter (d2l 5.2)."""
    T = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    xavier = [[-8.6754e-02, 4.3311e-01, 3.2202e-01, -3.5308e-01],
              [3.2252e-04, -1.1910e-01, -3.2251e-02, 6.6349e-01],
              [5.3471e-01, 4.4536e-01, 6.0705e-01, 5.0049e-01],
              [-5.9215e-01, -2.4174e-01, 1.7424e-01, 6.6311e-01],
              [-3.9770e-01, -5.0385e-01, -2.8655e-01, 2.4050e-02],
              [2.3104e-01, -6.1362e-01, 5.8659e-01, 2.2526e-01],
              [5.4193e-01, -6.4703e-02, 4.0796e-01, -2.6305e-01],
              [3.9223e-01, -7.9630e-02, -8.7609e-02, -3.2984e-01]]
    for label, t in [
        ("net(X)", T([[-0.2090], [-0.0857]])),
        ("normal row", T([7.0961e-05, -5.8193e-03, -7.9188e-04, 1.5709e-02])),
        ("ones", T([1.0, 1.0, 1.0, 1.0])),
        ("zero scalar", T(0.0)),
        ("xavier", T(xavier)),
        ("42", T([[42.0] * 8])),
        ("my_init", T([[-5.3401, -0.0, 8.9276, -0.0], [0.0, -0.0, -0.0, -8.8434]])),
        ("tied row", T([100.0, -0.1363, -0.2953, 0.3320, 0.1017, 0.3108, 0.1400, 0.2068])),
        ("rgnet bias", T([-0.4859, -0.0395, -0.0913, -0.2113, -0.4229, -0.4322, -0.4595,
                          -0.3923])),
        ("bias", T([-0.1626])),
    ]:
        for mode in (0, 1):
            cases.tensor("seed " + label, t, mode)

    # The seed's mlp with those values, printed as in the chapter.
    net = tm.build("mlp", 0)
    with torch.no_grad():
        net[0].weight.copy_(T(xavier))
        net[2].weight.copy_(T([[-0.1913, 0.0583, -0.1535, -0.0276, 0.0600, 0.0309,
                                -0.2213, 0.3255]]))
        net[2].bias.copy_(T([-0.1626]))
    model_cases(cases, "mlp", net, "seed mlp")

    tied = tm.build("tied", 0)
    with torch.no_grad():
        tied[2].weight[0].copy_(T([100.0, -0.1363, -0.2953, 0.3320, 0.1017, 0.3108,
                                   0.1400, 0.2068]))
    model_cases(cases, "tied", tied, "seed tied")


# ---------------------------------------------------------------------------
# Fixture networks

def model_cases(cases, fix, net, label):
    words = " ".join(tm.bits(t) for _, t in tm.c_order(net))
    cases.setup("load %s %s" % (fix, words))
    cases.add("%s: print(net)" % label, "model %s" % fix, pyprint(net))
    cases.add("%s: print(net.state_dict())" % label, "state %s" % fix,
              pyprint(net.state_dict()))
    for path in tm.module_paths(net):
        mod = net.get_submodule(path) if path else net
        p = path or "-"
        cases.add("%s: print(net[%r])" % (label, path), "module %s %s" % (fix, p),
                  pyprint(mod))
        cases.add("%s: net[%r].state_dict()" % (label, path), "mstate %s %s" % (fix, p),
                  pyprint(mod.state_dict()))
        cases.add("%s: net[%r] named shapes" % (label, path), "shapes %s %s" % (fix, p),
                  pyprint_args(*[(n, q.shape) for n, q in mod.named_parameters()]))
    sd = net.state_dict(keep_vars=True)
    for key, t in sd.items():
        # nn_print_param is print(param), and print(buffer) for a buffer
        cases.add("%s: print(%s)" % (label, key), "param %s %s" % (fix, key), pyprint(t))
        cases.add("%s: print(%s.data)" % (label, key), "data %s %s" % (fix, key),
                  pyprint(t.data))


def fixture_cases(cases):
    for fix in tm.FIXTURES:
        for seed in (0, 1):
            model_cases(cases, fix, tm.build(fix, seed), "%s seed=%d" % (fix, seed))
        # other print modes for the same trees: integer-valued, scientific
        # (and wide or negative num_batches_tracked)
        net = tm.build(fix, 2)
        with torch.no_grad():
            for i, (_, t) in enumerate(tm.c_order(net)):
                if t.is_floating_point():
                    t.copy_(torch.round(t * 10))
                else:
                    t.fill_(10 ** 12 + i)
        model_cases(cases, fix, net, "%s ints" % fix)
        net = tm.build(fix, 3)
        with torch.no_grad():
            for i, (_, t) in enumerate(tm.c_order(net)):
                if t.is_floating_point():
                    t.mul_(10.0 ** (i % 7 - 3) * 1e-3)
                else:
                    t.fill_(-(i + 1) * 12345 if i % 2 else I64_MIN)
        model_cases(cases, fix, net, "%s sci" % fix)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("--cases", type=int, default=800)
    ap.add_argument("--int-cases", type=int, default=600)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()

    cases = Cases()
    seed_cases(cases)
    edge_cases(cases)
    tensor_cases(cases, args.cases, args.seed)
    int_cases(cases, args.int_cases, args.seed + 1)
    fixture_cases(cases)

    stdin = "\n".join(cases.cmds) + "\n"
    proc = subprocess.run([args.tool], input=stdin.encode(), capture_output=True)
    if proc.returncode != 0:
        print("print_tool failed with status %d:\n%s" % (proc.returncode,
                                                          proc.stderr.decode(errors="replace")))
        return 1
    out = proc.stdout.decode("utf-8")
    got = out.split("@@\n")
    if got and got[-1] == "":
        got.pop()
    if len(got) != len(cases.expected):
        print("print_tool produced %d outputs for %d cases" % (len(got), len(cases.expected)))
        return 1
    bad = 0
    for label, exp, g in zip(cases.labels, cases.expected, got):
        if exp != g:
            bad += 1
            if bad <= 10:
                print("MISMATCH %s\n--- torch:\n%s--- nngen-rt:\n%s" % (label, exp, g))
    ntensor = sum(1 for c in cases.cmds if c.startswith("tensor "))
    nint = sum(1 for c in cases.cmds if c.startswith("itensor "))
    print("%d cases (%d float32 tensors, %d integer tensors, %d model prints) compared with "
          "torch %s: %d mismatches" % (len(cases.expected), ntensor, nint,
                                       len(cases.expected) - ntensor - nint,
                                       torch.__version__, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
