#!/usr/bin/python3
"""torch.nn.init parity: nngen-rt's nn_init_* against PyTorch itself.

usage: compare_torch.py INIT_DUMP [--quick] [-v]

Runs many recipes (sequences of initializers sharing ONE generator, see
init_dump.c for the recipe language) through init_dump and through torch
(torch.manual_seed, then torch.nn.init / nn.Linear in the same order), and
compares every value:
  - uniform family (uniform, xavier_uniform, kaiming_uniform, nn.Linear's
    default, constant/zeros/ones, zero_abs_below over them, the uniform and
    constant parts of mixture): bit-identical float32 (so -0.0 != 0.0);
  - normal family (normal, xavier_normal, kaiming_normal, trunc_normal and
    any tensor drawn after or with a normal one): |c - t| <= 1e-6 * |t|.
Recipes that torch rejects must make init_dump fail (exit 2) as well.

Exit 0 when everything agrees, 1 otherwise, 77 (meson: skip) when
/usr/bin/python3 cannot import torch, unless NNGEN_REQUIRE_TORCH=1.
"""

import argparse
import math
import os
import struct
import subprocess
import sys
import warnings

try:
    import torch
    from torch import nn
except Exception as exc:  # pragma: no cover - depends on the machine
    if os.environ.get("NNGEN_REQUIRE_TORCH") == "1":
        print("compare_torch: torch is required (NNGEN_REQUIRE_TORCH=1) but cannot be "
              "imported: %s" % exc)
        sys.exit(1)
    print("compare_torch: skipped: torch cannot be imported by %s (%s)" % (sys.executable, exc))
    sys.exit(77)

warnings.simplefilter("ignore")  # torch warns on zero-element tensors; irrelevant here

REL_TOL = 1e-6
NORMAL_OPS = {"normal", "xavier_normal", "kaiming_normal", "trunc_normal"}

SEEDS = [0, 1, 42, 2**32 + 5, 18446744073709551557]
SIZES = [1, 3, 15, 16, 17, 31, 32, 100, 1000, 4096]


# ---------------------------------------------------------------------------
# The recipe language, executed in torch

def f32(x):
    """x rounded to float32, as init_dump's (float) casts do."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def parse_shape(s):
    if s == "-":
        return []
    return [int(v) for v in s.split("x")]


def numarg(args, i, dflt):
    return float(args[i]) if i < len(args) else dflt


def mixture(t, comps):
    """The documented mixture order (runtime/init.c), written with torch ops:
    per element a float64 uniform [0, 1) picks the component (first k with
    u < p_0 + ... + p_k), then the component draws its value."""
    flat = t.view(-1)
    last = max(k for k, c in enumerate(comps) if c[0] > 0)
    for i in range(flat.numel()):
        u = torch.empty((), dtype=torch.float64).uniform_().item()
        cum = 0.0
        pick = last
        for k, c in enumerate(comps):
            cum += c[0]
            if u < cum:
                pick = k
                break
        p, kind, a, b = comps[pick]
        if kind == "constant":
            flat[i] = a
        elif kind == "uniform":
            flat[i] = torch.empty(()).uniform_(a, b)
        else:
            flat[i] = torch.empty(()).normal_(a, b)


def torch_step(step, tensors):
    """Applies one recipe step in torch; returns True if it draws normals."""
    fields = step.split(":", 2)
    op = fields[1]
    args = fields[2].split(",") if len(fields) == 3 and fields[2] else []
    if fields[0] == "@zero_abs_below":
        w = tensors[-1]
        with torch.no_grad():
            w *= w.abs() >= float(op)
        return False
    shape = parse_shape(fields[0])
    if op == "linear":
        bias = not (args == ["nobias"])
        lin = nn.Linear(shape[1], shape[0], bias=bias)
        tensors.append(lin.weight.data)
        if bias:
            tensors.append(lin.bias.data)
        return False
    t = torch.empty(shape, dtype=torch.float32)
    tensors.append(t)
    init = nn.init
    if op == "uniform":
        init.uniform_(t, f32(numarg(args, 0, 0.0)), f32(numarg(args, 1, 1.0)))
    elif op == "normal":
        init.normal_(t, numarg(args, 0, 0.0), numarg(args, 1, 1.0))
    elif op == "constant":
        init.constant_(t, f32(numarg(args, 0, 0.0)))
    elif op == "zeros":
        init.zeros_(t)
    elif op == "ones":
        init.ones_(t)
    elif op == "xavier_uniform":
        init.xavier_uniform_(t, gain=numarg(args, 0, 1.0))
    elif op == "xavier_normal":
        init.xavier_normal_(t, gain=numarg(args, 0, 1.0))
    elif op in ("kaiming_uniform", "kaiming_normal"):
        a = numarg(args, 0, 0.0)
        mode = args[1] if len(args) > 1 else "fan_in"
        nl = args[2] if len(args) > 2 else "leaky_relu"
        fn = init.kaiming_uniform_ if op == "kaiming_uniform" else init.kaiming_normal_
        fn(t, a=a, mode=mode, nonlinearity=nl)
    elif op == "trunc_normal":
        init.trunc_normal_(t, numarg(args, 0, 0.0), numarg(args, 1, 1.0),
                        numarg(args, 2, -2.0), numarg(args, 3, 2.0))
    elif op == "mixture":
        comps = []
        for c in args:
            parts = c.split("/")
            comps.append((float(parts[0]), parts[1], f32(float(parts[2])),
                          f32(float(parts[3])) if len(parts) > 3 else 0.0))
        mixture(t, comps)
        return any(c[1] == "normal" for c in comps)
    else:
        raise ValueError("unknown op " + op)
    return op in NORMAL_OPS


def run_torch(seed, steps):
    """(list of tensors as float lists, per-tensor 'normal' flags) or None
    if torch raises."""
    torch.manual_seed(seed)
    tensors, normal = [], []
    try:
        with torch.no_grad():
            for s in steps:
                before = len(tensors)
                drew_normal = torch_step(s, tensors)
                for _ in range(before, len(tensors)):
                    normal.append(drew_normal)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None
    return [t.reshape(-1).tolist() for t in tensors], normal


def run_c(exe, seed, steps):
    p = subprocess.run([exe, str(seed)] + steps, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        return p.returncode, p.stderr.strip()
    lines = p.stdout.split("\n")
    out, i = [], 0
    while i < len(lines) and lines[i]:
        n = int(lines[i].split()[1])
        out.append([float.fromhex(x) for x in lines[i + 1:i + 1 + n]])
        i += 1 + n
    return 0, out


def bits(x):
    return struct.pack("<f", x)


# ---------------------------------------------------------------------------
# Recipes

NONLIN = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
          "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]

# shapes for the fan-based initializers, numel from the SIZES list and more
FAN_SHAPES = ["1x1", "3x1", "1x3", "5x3", "3x5", "4x4", "17x1", "1x17", "31x1", "8x4", "4x8",
              "10x10", "40x25", "64x64", "2x3x4", "6x3x5x5", "16x8x3x3", "2x2x2x2", "3x2x5"]


def recipes(quick):
    R = []  # (seed, steps, expect_error)
    seeds = SEEDS[:2] + SEEDS[3:4] if quick else SEEDS
    for seed in seeds:
        for n in SIZES:
            # plain distributions, default and custom arguments
            R.append((seed, ["%d:uniform" % n, "%d:uniform:-3.7,2.1" % n], False))
            R.append((seed, ["%d:normal" % n, "%d:normal:0.5,0.01" % n], False))
            R.append((seed, ["%d:trunc_normal" % n, "%d:trunc_normal:0.1,0.02,-0.05,0.3" % n],
                      False))
            # stream position: small normals (scalar path; cached second
            # sample) interleaved with uniforms and vectorized normals
            R.append((seed, ["1:normal", "%d:uniform:-1,1" % n, "-:normal:2,3",
                             "%d:normal:1,2" % n, "3:normal", "2:uniform", "1:normal:0,0.5",
                             "%d:uniform:5,10" % n], False))
            R.append((seed, ["%d:normal" % n, "1:normal", "%d:normal:0,2" % n, "5:uniform",
                              "1:normal"], False))
            # the seed chapter's my_init: uniform(-10, 10), |w| < 5 -> 0
            R.append((seed, ["%d:uniform:-10,10" % n, "@zero_abs_below:5",
                             "%d:uniform:-1,1" % n, "@zero_abs_below:0.3"], False))
            R.append((seed, ["%d:constant:0.42" % n, "%d:zeros" % n, "%d:ones" % n,
                             "%d:uniform:-2,2" % n], False))
            R.append((seed, ["%d:mixture:0.25/uniform/5/10,0.5/constant/0,0.25/uniform/-10/-5"
                             % n, "%d:uniform" % n], False))
            R.append((seed, ["%d:mixture:0.3/normal/0/1,0.7/uniform/-1/1" % n,
                             "%d:normal" % n, "%d:mixture:1/normal/3/0.5" % n], False))
        for shp in FAN_SHAPES:
            R.append((seed, [shp + ":xavier_uniform", shp + ":xavier_uniform:%r" % (5.0 / 3),
                             shp + ":xavier_normal", shp + ":xavier_normal:1.4142135623730951"],
                      False))
            R.append((seed, [shp + ":kaiming_uniform", shp + ":kaiming_normal",
                             shp + ":kaiming_uniform:%r,fan_out,leaky_relu" % math.sqrt(5),
                             shp + ":kaiming_normal:0.2,fan_out,relu"], False))
            if len(shp.split("x")) == 2:
                R.append((seed, [shp + ":linear", shp + ":linear:nobias", shp + ":linear"],
                          False))
        for i, nl in enumerate(NONLIN):
            shp = FAN_SHAPES[(i * 5) % len(FAN_SHAPES)]
            for mode in ("fan_in", "fan_out"):
                for a in (0.0, 0.01, math.sqrt(5)):
                    R.append((seed, [shp + ":kaiming_uniform:%r,%s,%s" % (a, mode, nl),
                                     shp + ":kaiming_normal:%r,%s,%s" % (a, mode, nl)], False))
        # a model-like sequence: Linear layers, re-inits, modifiers
        R.append((seed, ["8x4:linear", "1x8:linear", "8x4:normal:0,0.01", "8:zeros",
                         "8x4:xavier_uniform", "1x8:constant:42", "8x4:uniform:-10,10",
                         "@zero_abs_below:5", "256x784:linear", "10x256:linear"], False))
    # degenerate shapes (no draws, or draws of zero-width ranges)
    for seed in (0, 7):
        R.append((seed, ["0:uniform", "3x0:linear", "0x3:linear", "0x4:xavier_uniform",
                         "2x0x3:kaiming_uniform", "0:normal", "0:trunc_normal", "5:uniform"],
                  False))
        R.append((seed, ["4:uniform:2,2", "4:normal:1,0", "17:normal:1,0", "3:uniform"], False))
    # torch raises: init_dump must refuse too
    for steps in (["5:xavier_uniform"], ["-:kaiming_normal"], ["4:uniform:1,0"],
                  ["4:normal:0,-1"], ["20:normal:0,-1"], ["3x3:kaiming_uniform:0,fan_avg"]):
        R.append((0, steps, True))
    return R


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("init_dump")
    ap.add_argument("--quick", action="store_true", help="fewer seeds")
    ap.add_argument("-v", "--verbose", action="store_true")
    opt = ap.parse_args()

    cfg = torch.__config__.show()
    cap = [l.strip(" -") for l in cfg.split("\n") if "CPU capability" in l]
    cap = cap[0] if cap else "CPU capability unknown"
    print("torch %s, %s" % (torch.__version__, cap))
    if "AVX2" not in cap and "AVX512" not in cap:
        # torch's own results depend on the kernels it picked: the parity
        # target is the AVX2 (FMA) build every x86-64 with AVX2 runs.
        msg = ("torch runs its %r kernels (no AVX2/FMA; CPU or ATEN_CPU_CAPABILITY): "
               "nngen matches the AVX2 kernels" % cap)
        if os.environ.get("NNGEN_REQUIRE_TORCH") == "1":
            print("compare_torch: " + msg)
            return 1
        print("compare_torch: skipped: " + msg)
        return 77

    failures = 0
    nvalues = {"exact": 0, "normal": 0}
    max_rel = 0.0
    max_where = ""
    R = recipes(opt.quick)
    for seed, steps, expect_error in R:
        label = "seed %d: %s" % (seed, " ".join(steps))
        ref = run_torch(seed, steps)
        rc, got = run_c(opt.init_dump, seed, steps)
        if ref is None or expect_error:
            if ref is not None:
                print("FAIL %s: torch accepted a recipe expected to fail" % label)
                failures += 1
            elif rc != 2:
                print("FAIL %s: torch raised, init_dump exit %d" % (label, rc))
                failures += 1
            elif opt.verbose:
                print("ok (both refuse) %s: %s" % (label, got))
            continue
        if rc != 0:
            print("FAIL %s: init_dump exit %d: %s" % (label, rc, got))
            failures += 1
            continue
        tensors, normal = ref
        if len(got) != len(tensors):
            print("FAIL %s: %d tensors, torch %d" % (label, len(got), len(tensors)))
            failures += 1
            continue
        # tensors made by a normal-family op get the tolerance; everything
        # else (also what is drawn after normals) must be bit-identical.
        bad = 0
        for ti, (c, t) in enumerate(zip(got, tensors)):
            if len(c) != len(t):
                print("FAIL %s: tensor %d has %d values, torch %d" % (label, ti, len(c), len(t)))
                bad += 1
                continue
            for k, (x, y) in enumerate(zip(c, t)):
                if normal[ti]:
                    nvalues["normal"] += 1
                    if bits(x) == bits(y):
                        continue
                    err = abs(x - y) / abs(y) if y != 0 else math.inf
                    if err > max_rel:
                        max_rel, max_where = err, "%s, tensor %d [%d]" % (label, ti, k)
                    if not err <= REL_TOL:
                        if bad < 5:
                            print("FAIL %s: tensor %d [%d]: %r (%s), torch %r (%s), rel %.3g"
                                  % (label, ti, k, x, x.hex(), y, y.hex(), err))
                        bad += 1
                else:
                    nvalues["exact"] += 1
                    if bits(x) != bits(y):
                        if bad < 5:
                            print("FAIL %s: tensor %d [%d]: %s, torch %s (must be bit-identical)"
                                  % (label, ti, k, x.hex(), y.hex()))
                        bad += 1
        if bad:
            failures += 1
        elif opt.verbose:
            print("ok %s" % label)
    print("%d recipes, %d values bit-identical required, %d values within %g relative; "
          "max relative error of the normal family %.3g%s"
          % (len(R), nvalues["exact"], nvalues["normal"], REL_TOL, max_rel,
             (" (" + max_where + ")") if max_rel > 0 else ""))
    if failures:
        print("%d recipe(s) FAILED" % failures)
        return 1
    print("all recipes agree with torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
