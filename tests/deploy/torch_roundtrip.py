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

The same both ways with the helpers of the emitted module itself
(save_safetensors, load_safetensors: no nngen_safetensors.py), on a model
trained one step with the module's train_step (random values first) when
the spec has train:, else on random values:

  emitted       save_safetensors' file is byte-identical to what nn_save
                writes after nn_load of it, and to save_model's; the C
                forward on it = torch's to 1e-6; load_safetensors of nn_save's
                file gives bit-identical tensors (tied ones included);
  mutations     the comparisons fail when they should: one weight changed by
                1e-3 changes the C forward by more than the limit and the
                bytes; one value changed by one ulp is found by the bit
                comparison;
  strictness    load_safetensors rejects a misspelt name (suggesting the
                right one), a wrong shape, a wrong dtype, a missing tensor,
                an alias holding other data, a torch.save file and a
                truncated file, each with its message, and leaves the model
                untouched; strict=False returns the missing and unknown
                names; save_safetensors refuses a model whose tie was broken;
  determinism   two runs of nngen --emit pytorch write the same bytes.

tests/deploy/odd_names.yaml has names JSON must escape (a newline, a quote,
a backslash) and one that is not ASCII: every file above must still be
byte-identical to nn_save's.

Needs /usr/bin/python3 with torch: exit 77 (skip) without, or 1 with
NNGEN_REQUIRE_TORCH=1.
"""
import argparse
import copy
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

    emitted_checks(args, st, net, name, spec, py, tool, d, x, x_bin, y_bin, gen)

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


def c_forward(tool, w, w_out, x_bin, y_bin):
    """nn_load of w, the C forward (eval) and nn_save: (y, nn_save's bytes) or None."""
    p = run([tool, w, w_out, x_bin, y_bin])
    if p.returncode != 0:
        print(p.stdout)
        return None
    y = torch.from_numpy(np.fromfile(y_bin, dtype="<f4").astype(np.float64))
    return y, open(w_out, "rb").read()


def refuses(net, model, path, want, what, strict=True):
    """load_safetensors(model, path) must raise ValueError containing every
    piece of want and leave the model as it was."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        net.load_safetensors(model, path, strict=strict)
        check(False, "load_safetensors refuses %s" % what)
        return
    except ValueError as e:
        msg = str(e)
    untouched = not same_state(before, model.state_dict())
    ok = all(w in msg for w in want) and msg.startswith("load_safetensors: %s: " % path)
    check(ok and untouched, "load_safetensors refuses %s%s: %s" % (
        what, "" if untouched else " (BUT CHANGED THE MODEL)", msg[:300]))


def emitted_checks(args, st, net, name, spec, py, tool, d, x, x_bin, y_bin, gen):
    model = net.build(seed=1)
    randomize(model, gen)
    how = "random values"
    if net.train_step is not None:
        if net.LOSS == "mse":
            target = torch.randn(net.OUTPUT_SHAPE, generator=gen)
        else:
            target = torch.randint(0, net.OUTPUT_SHAPE[-1], (net.BATCH,), generator=gen)
        opt = net.make_optimizer(model.parameters())
        net.train_step(model, opt, x, target)
        how = "trained one step"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    w = os.path.join(d, "emitted.safetensors")
    w_out = os.path.join(d, "emitted_out.safetensors")
    net.save_safetensors(model, w)
    mine = open(w, "rb").read()
    check(mine == net.safetensors_bytes(model) and
          mine == st.save(st._first_keys(model.state_dict())),
          "%s: save_safetensors (%s) = safetensors_bytes = nngen_safetensors.save_model" % (
              name, how))
    got = c_forward(tool, w, w_out, x_bin, y_bin)
    if not check(got is not None, "%s: nn_load of save_safetensors' file" % name):
        return
    yc, saved = got
    check(saved == mine, "%s: nn_save after nn_load of save_safetensors' file writes the same "
          "%d bytes" % (name, len(mine)))
    model.eval()
    with torch.no_grad():
        yt = model(x).reshape(-1).double()
    model.train()
    scale = max(1.0, yt.abs().max().item())
    diff = (yc - yt).abs().max().item()
    check(diff <= 1e-6 * scale, "%s: C forward on save_safetensors' weights = torch forward "
          "(eval): max difference %.3g (limit 1e-6 x %.3g)" % (name, diff, scale))

    # the comparisons can fail: one value moved by 1e-3 (the last parameter,
    # the output layer's bias: it reaches the output whatever the inputs)
    bumped = net.build(seed=1)
    bumped.load_state_dict(state)
    with torch.no_grad():
        list(bumped.parameters())[-1].view(-1)[0] += 1e-3
    wb = os.path.join(d, "bumped.safetensors")
    net.save_safetensors(bumped, wb)
    got = c_forward(tool, wb, w_out, x_bin, y_bin)
    if check(got is not None, "%s: nn_load of a file with one value moved" % name):
        bdiff = (got[0] - yt).abs().max().item()
        check(bdiff > 1e-6 * scale and got[1] != mine,
              "%s: mutation: one value + 1e-3 changes the C forward by %.3g (> limit %.3g) "
              "and nn_save's bytes" % (name, bdiff, 1e-6 * scale))

    # C -> torch: nn_save's file into a fresh model, bit for bit
    fresh = net.build(seed=9)
    c_file = os.path.join(d, "c.safetensors")
    with open(c_file, "wb") as f:
        f.write(saved)
    res = net.load_safetensors(fresh, c_file)
    bad = same_state(state, fresh.state_dict())
    check(not bad and list(res.missing_keys) == [] and list(res.unexpected_keys) == [],
          "%s: load_safetensors of nn_save's file: all %d state_dict tensors bit-identical%s" % (
              name, len(state), " (differ: %s)" % bad if bad else ""))
    ties = [(a, c) for a, c in net.ALIASES.items()]
    check(all(fresh.state_dict()[a].data_ptr() == fresh.state_dict()[c].data_ptr()
              for a, c in ties), "%s: the %d tied keys still share their tensor after loading" % (
                  name, len(ties)))
    with torch.no_grad():
        t = next(v for v in fresh.state_dict().values() if v.dtype == torch.float32)
        flat = t.view(-1)
        flat[0] = float(np.nextafter(np.float32(flat[0].item()), np.float32(np.inf)))
    check(same_state(state, fresh.state_dict()) != [],
          "%s: mutation: one value moved by one ulp is found by the bit comparison" % name)

    # strictness, each time with the model untouched
    canon = [k for k, _, _ in net.TENSORS]
    sd = st._first_keys(model.state_dict())
    key = next(k for k in canon if k.endswith("weight"))
    typo = key[:-6] + "wieght"
    f = os.path.join(d, "bad.safetensors")
    st.save_file({(typo if k == key else k): v for k, v in sd.items()}, f)
    refuses(net, fresh, f, ["unknown tensor %r" % typo, "did you mean %r" % key],
            "%s: a misspelt name" % name)
    wshape = [k for k, _, s in net.TENSORS if len(s) >= 1 and (len(s) > 1 or s[0] > 1)][0]
    st.save_file({k: (v.reshape(-1, 1) if k == wshape else v) for k, v in sd.items()}, f)
    refuses(net, fresh, f, ["tensor %r: shape" % wshape, "does not match the model's"],
            "%s: a wrong shape" % name)
    st.save_file({k: (v.to(torch.int32) if k == key else v) for k, v in sd.items()}, f)
    refuses(net, fresh, f, ["tensor %r: dtype I32 does not match the model's F32" % key],
            "%s: a wrong dtype" % name)
    i64 = [k for k, dt, _ in net.TENSORS if dt == "I64"]
    if i64:
        st.save_file({k: (v.float() if k == i64[0] else v) for k, v in sd.items()}, f)
        refuses(net, fresh, f, ["tensor %r: dtype F32 does not match the model's I64" % i64[0]],
                "%s: num_batches_tracked as F32" % name)
    st.save_file({k: v for k, v in sd.items() if k != key}, f)
    refuses(net, fresh, f, ["missing tensor %r" % key], "%s: a missing tensor" % name)
    res = net.load_safetensors(fresh, f, strict=False)
    check(key in res.missing_keys and res.unexpected_keys == [],
          "%s: strict=False: missing_keys %s" % (name, res.missing_keys))
    st.save_file(dict(sd, extra=torch.zeros(2)), f)
    res = net.load_safetensors(fresh, f, strict=False)
    check(res.unexpected_keys == ["extra"] and not same_state(state, fresh.state_dict()),
          "%s: strict=False: unexpected_keys %s, the rest loaded" % (name, res.unexpected_keys))
    if ties:
        alias, canon_key = ties[0]
        full = {k: v.clone() for k, v in model.state_dict().items()}
        full[alias] = full[alias] + 1
        st.save_file(full, f)
        refuses(net, fresh, f, ["tensor %r is an alias of %r but holds different data" % (
            alias, canon_key)], "%s: an alias holding other data" % name)
        # break the tie: the alias's module becomes a copy of its own
        broken = net.build(seed=1)
        mod_path, attr = alias.rsplit(".", 1)
        parent_path, _, child = mod_path.rpartition(".")
        parent = broken.get_submodule(parent_path)
        parent._modules[child] = copy.deepcopy(parent._modules[child])
        owner = parent._modules[child]
        setattr(owner, attr, torch.nn.Parameter(getattr(owner, attr).detach().clone() + 1))
        try:
            net.save_safetensors(broken, f)
            check(False, "%s: save_safetensors refuses a broken tie" % name)
        except ValueError as e:
            check("tie was broken" in str(e), "%s: save_safetensors refuses a broken tie: %s" % (
                name, e))
    pt = os.path.join(d, "emitted.pt")
    torch.save(model.state_dict(), pt)
    refuses(net, fresh, pt, ["this is a torch.save file", "save_safetensors",
                             "nngen_safetensors.py convert"], "%s: a torch.save file" % name)
    with open(f, "wb") as g:
        g.write(mine[:40])
    refuses(net, fresh, f, ["truncated: header length", "is longer than the 32 bytes after it"],
            "%s: a truncated file" % name)
    with open(f, "wb") as g:
        g.write(mine[:-1])
    refuses(net, fresh, f, ["bad data_offsets"], "%s: a file one byte short" % name)

    # the emitted file is the same from run to run
    again = os.path.join(d, "again.py")
    p = run([args.nngen, "--emit", "pytorch", spec, "-o", again])
    check(p.returncode == 0 and open(again, "rb").read() == open(py, "rb").read(),
          "%s: nngen --emit pytorch writes the same bytes twice" % name)


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
