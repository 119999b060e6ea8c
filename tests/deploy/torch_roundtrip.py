#!/usr/bin/python3
"""Weights between PyTorch and nngen through tools/nngen_safetensors.py, with
no safetensors package (meson suite 'deploy').

usage: torch_roundtrip.py --nngen NNGEN --module tools/nngen_safetensors.py
                          SPEC=WTOOL [SPEC=WTOOL ...]

For each spec (WTOOL: tests/deploy/wtool.c built on that spec's generated
C), with the torch model that `nngen --emit pytorch` writes for it:

  torch -> C    the model's state (parameters and buffers, random values,
                num_batches_tracked beyond 2^32) through save_model; wtool
                loads it with nn_load and nn_load_mem, runs the forward in
                eval mode and saves it back with nn_save (= nn_save_mem);
  bytes         nn_save's file is byte-identical to what save_model wrote;
  C -> torch    load_model into a fresh torch model: every tensor of the
                state dict bit-identical to the original (aliases of tied
                weights included), dtypes kept (int64 stays int64);
  forward       the C forward of the loaded weights (random, at a trained
                net's scale) against torch's, in eval mode: within 1e-6 times
                max(1, the largest output) (the bits of the weights are the
                same; only the order of the sums differs);
  specials      -0.0, NaN with a payload, infinities, subnormals and int64
                extremes go through torch -> C -> torch bit for bit;
  save_file     model.state_dict() with every key (tied weights repeated)
                loads in C too, and a file written with numpy arrays equals
                one written with tensors;
  convert       a torch.save()d state dict (zip, and the legacy pickle)
                through `nngen_safetensors.py convert` gives the same bytes
                as save_model; nn_load of the torch.save file itself says it
                is a torch.save file and how to convert it;
  reader        load_file rejects a truncated file, trailing data and a
                torch.save file with a message.

Needs /usr/bin/python3 with torch: exit 77 (skip) without, or 1 with
NNGEN_REQUIRE_TORCH=1.
"""
import argparse
import importlib.util
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    if os.environ.get("NNGEN_REQUIRE_TORCH") == "1":
        print("FAIL: torch is required (NNGEN_REQUIRE_TORCH=1): %s" % e)
        sys.exit(1)
    print("SKIP: %s cannot import torch/numpy: %s" % (sys.executable, e))
    sys.exit(77)

failures = 0


def check(ok, what):
    global failures
    print("%s: %s" % ("PASS" if ok else "FAIL", what), flush=True)
    if not ok:
        failures += 1
    return ok


def load_py(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bits(t):
    """A tensor's bits, for exact comparison (NaN payloads included)."""
    t = t.detach().contiguous()
    if t.dtype == torch.float32:
        return t.view(torch.int32).flatten().tolist()
    return t.flatten().tolist()


def same_state(a, b):
    """The keys of a whose tensor differs from b's in dtype, shape or bits."""
    bad = []
    for k, t in a.items():
        u = b.get(k)
        if u is None or u.dtype != t.dtype or tuple(u.shape) != tuple(t.shape) or \
                bits(u) != bits(t):
            bad.append(k)
    return bad


def randomize(model, gen, specials=False):
    """Random values in every parameter and buffer (variances positive);
    with specials, bit patterns that must survive as they are."""
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.dtype == torch.int64:
                t.fill_(2 ** 40 + 3 if not specials else -2 ** 63)
                continue
            v = torch.randn(t.shape, generator=gen)
            if t.dim() >= 2:    # a trained net's scale: activations stay O(1)
                v /= float(t[0].numel()) ** 0.5
            if k.endswith("running_var"):
                v = v.abs() + 0.5
            t.copy_(v)
        if specials:
            t = next(p for p in model.parameters() if p.numel() >= 8)
            flat = t.data.view(-1)
            raw = torch.tensor([0x80000000, 0x7fc00123, 0x7f800000, 0xff800000, 0x00000001,
                                0x007fffff, 0xffc0abcd, 0x3f800000], dtype=torch.int64)
            flat[:8] = raw.to(torch.int32).view(torch.float32)


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


def one_spec(args, st, spec, tool, tmp):
    name = os.path.splitext(os.path.basename(spec))[0]
    d = os.path.join(tmp, name)
    os.mkdir(d)
    py = os.path.join(d, "net.py")
    p = run([args.nngen, "--emit", "pytorch", spec, "-o", py])
    if not check(p.returncode == 0, "%s: nngen --emit pytorch" % name):
        print(p.stdout)
        return
    net = load_py(py, "net_" + name)
    model = net.build(seed=0)
    hdr = open(spec).read()
    batch = int([l.split(":")[1] for l in hdr.splitlines() if l.startswith("batch:")][0])
    inp = [int(v) for v in [l for l in hdr.splitlines() if l.startswith("input:")][0]
           .split("[")[1].split("]")[0].split(",")]
    gen = torch.Generator().manual_seed(7)
    randomize(model, gen)
    orig = {k: v.clone() for k, v in model.state_dict().items()}
    has_i64 = any(v.dtype == torch.int64 for v in orig.values())
    has_alias = len(set(v.data_ptr() for v in model.state_dict().values())) < len(orig)

    # torch -> C -> torch
    w_in, w_out = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
    x_bin, y_bin = os.path.join(d, "x.bin"), os.path.join(d, "y.bin")
    st.save_model(model, w_in)
    x = torch.randn([batch] + inp, generator=gen)
    x.numpy().astype("<f4").tofile(x_bin)
    p = run([tool, w_in, w_out, x_bin, y_bin])
    if not check(p.returncode == 0, "%s: wtool (nn_load, nn_load_mem, forward, nn_save = "
                 "nn_save_mem)%s" % (name, "" if p.returncode == 0 else ": " + p.stdout)):
        return
    a, b = open(w_in, "rb").read(), open(w_out, "rb").read()
    check(a == b, "%s: nn_save's file is byte-identical to save_model's (%d bytes%s%s)" % (
        name, len(a), ", int64 buffers" if has_i64 else "", ", tied weights" if has_alias
        else ""))
    fresh = net.build(seed=3)
    fresh.load_state_dict({k: torch.zeros_like(v) for k, v in fresh.state_dict().items()})
    st.load_model(fresh, w_out)
    bad = same_state(orig, fresh.state_dict())
    check(not bad, "%s: nn_save -> load_model: all %d state_dict tensors bit-identical, "
          "dtypes kept%s" % (name, len(orig), " (differ: %s)" % bad if bad else ""))
    loaded = st.load_file(w_out)
    check(all(loaded[k].dtype == orig[k].dtype for k in loaded),
          "%s: load_file keeps F32 as float32 and I64 as int64" % name)

    # forward
    model.eval()
    with torch.no_grad():
        yt = model(x).reshape(-1).double()
    yc = torch.from_numpy(np.fromfile(y_bin, dtype="<f4").astype(np.float64))
    # the same weights, the sums in another order: relative to the size of
    # the outputs (an output near zero is a difference of large terms)
    scale = max(1.0, yt.abs().max().item())
    maxabs = (yc - yt).abs().max().item()
    check(maxabs <= 1e-6 * scale, "%s: C forward on the loaded weights = torch forward "
          "(eval, %d outputs up to %.3g): max difference %.3g (limit 1e-6 x %.3g)" % (
              name, yt.numel(), yt.abs().max().item(), maxabs, scale))

    # special values through both ways
    sp = net.build(seed=0)
    randomize(sp, gen, specials=True)
    sp_orig = {k: v.clone() for k, v in sp.state_dict().items()}
    st.save_model(sp, w_in)
    p = run([tool, w_in, w_out, x_bin, y_bin])
    if check(p.returncode == 0, "%s: wtool on special values" % name):
        back = net.build(seed=5)
        st.load_model(back, w_out)
        bad = same_state(sp_orig, back.state_dict())
        check(not bad and open(w_in, "rb").read() == open(w_out, "rb").read(),
              "%s: -0.0, NaN payloads, infinities, subnormals, int64 -2^63 bit for bit both "
              "ways%s" % (name, " (differ: %s)" % bad if bad else ""))

    # save_file with every key; numpy arrays give the same bytes
    w_all = os.path.join(d, "all.safetensors")
    st.save_file(model.state_dict(), w_all)
    p = run([tool, w_all, w_out, x_bin, y_bin])
    check(p.returncode == 0, "%s: save_file(state_dict) with every key%s loads in C" % (
        name, " (aliases repeated)" if has_alias else ""))
    check(st.save({k: v.numpy() for k, v in model.state_dict().items()}) ==
          open(w_all, "rb").read(), "%s: save() of numpy arrays = save_file of tensors" % name)

    # convert a torch.save file; nn_load of it names it
    ref = os.path.join(d, "ref.safetensors")
    st.save_model(model, ref)
    for zipped in (True, False):
        kind = "zip" if zipped else "legacy pickle"
        pt = os.path.join(d, "model_%s.pt" % ("zip" if zipped else "pickle"))
        torch.save(model.state_dict(), pt, _use_new_zipfile_serialization=zipped)
        conv = os.path.join(d, "conv.safetensors")
        p = run([sys.executable, args.module, "convert", pt, conv])
        check(p.returncode == 0 and open(conv, "rb").read() == open(ref, "rb").read(),
              "%s: nngen_safetensors.py convert of a torch.save file (%s) = save_model%s" % (
                  name, kind, "" if p.returncode == 0 else ": " + p.stdout))
        p = run([tool, "--load", pt])
        want = "this is a torch.save file (a %s" % ("zip archive holding" if zipped else
                                                   "pickle, protocol 2")
        check(p.returncode == 2 and want in p.stdout and "nngen_safetensors" in p.stdout,
              "%s: nn_load of the torch.save file (%s): %s" % (name, kind, p.stdout.strip()))
        try:
            st.load_file(pt)
            check(False, "%s: load_file refuses a torch.save file (%s)" % (name, kind))
        except ValueError as e:
            check("torch.save" in str(e), "%s: load_file refuses a torch.save file (%s): %s" % (
                name, kind, str(e)[:90]))


def reader_checks(st, tmp):
    good = st.save({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                    "n": torch.tensor(5, dtype=torch.int64)})
    cases = {"truncated": good[:-1], "trailing data": good + b"\0", "short": good[:5],
             "header length": struct.pack("<Q", 2 ** 40) + good[8:]}
    for what, data in cases.items():
        try:
            st.load(data)
            check(False, "load refuses %s" % what)
        except ValueError as e:
            check(True, "load refuses %s: %s" % (what, e))
    back = st.load(good)
    check(list(back) == ["n", "a"] and back["n"].dtype == torch.int64 and
          back["a"].tolist() == [[0, 1, 2], [3, 4, 5]],
          "load of save: I64 first (safetensors' order), values and dtypes")
    try:
        st.save({"h": torch.zeros(2, dtype=torch.float16)})
        check(False, "save refuses float16")
    except ValueError as e:
        check(".float()" in str(e), "save refuses float16: %s" % e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nngen", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("pairs", nargs="+")
    args = ap.parse_args()
    st = load_py(args.module, "nngen_safetensors")
    with tempfile.TemporaryDirectory(prefix="nngen-deploy-torch-") as tmp:
        for pair in args.pairs:
            spec, tool = pair.split("=", 1)
            one_spec(args, st, spec, tool, tmp)
        reader_checks(st, tmp)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
