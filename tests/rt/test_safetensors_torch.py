#!/usr/bin/python3
"""safetensors interoperability between nngen-rt and PyTorch.

usage: test_safetensors_torch.py ST_TOOL

The `safetensors` package is not installed, so files are written and read
here with json + struct + numpy, following the format and the layout the
safetensors library uses (entries sorted by name, data contiguous in that
order, header padded with spaces to a multiple of 8).

  torch -> C   a torch model's tensors are written to a file, st_tool loads
               it with nn_load, and every value must come back bit-exact;
               also with aliases, __metadata__, and another key/data order.
  C -> torch   st_tool saves values with nn_save; the file is parsed here,
               must list each canonical tensor once (no aliases), and
               load_state_dict(strict=True) on the equivalent torch model
               must accept it (aliases filled from their canonical tensor)
               with identical values.  The bytes must also equal what the
               safetensors layout gives for the same tensors.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

tm.require_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def st_bytes(tensors, key_order=None, data_order=None, metadata=None):
    """safetensors bytes for {name: float32 tensor}."""
    data_order = data_order or sorted(tensors)
    key_order = key_order or data_order
    entries, data = {}, b""
    for name in data_order:
        a = tensors[name].detach().contiguous().numpy().astype("<f4")
        blob = a.tobytes()
        entries[name] = {"dtype": "F32", "shape": list(a.shape),
                         "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in key_order:
        header[name] = entries[name]
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_read(blob):
    """{name: tensor} from safetensors bytes, checking the layout."""
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0, "header length %d not a multiple of 8" % n
    text = blob[8:8 + n].decode("utf-8")
    assert text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" ")))
    header = json.loads(text)
    names = [k for k in header if k != "__metadata__"]
    assert "__metadata__" not in header, "nn_save writes no __metadata__"
    assert names == sorted(names), "keys not sorted: %s" % names
    data = blob[8 + n:]
    pos, out = 0, {}
    for name in names:
        e = header[name]
        assert e["dtype"] == "F32"
        b, end = e["data_offsets"]
        assert b == pos, "%s: data not contiguous" % name
        shape = e["shape"]
        count = int(np.prod(shape)) if shape else 1
        assert end - b == 4 * count
        a = np.frombuffer(data[b:end], dtype="<f4").astype(np.float32).reshape(shape)
        out[name] = torch.from_numpy(a.copy())
        pos = end
    assert pos == len(data), "trailing data"
    return out


def tensor_bits(t):
    return tm.bits(t).split()


def run(tool, *args, stdin=None):
    return subprocess.run([tool] + list(args), input=stdin, capture_output=True)


def aliases(net):
    """{alias key: canonical key} for the state dict of net."""
    canonical = {}
    for name, t in tm.c_order(net):
        canonical.setdefault(id(t), name)
    out = {}
    for key, t in net.state_dict(keep_vars=True).items():
        if canonical[id(t)] != key:
            out[key] = canonical[id(t)]
    return out


def check_c_values(out, net, label):
    """st_tool load output against the torch model's values."""
    lines = out.decode().splitlines()
    want = tm.c_order(net)
    assert len(lines) == len(want), "%s: %d tensors back, %d expected" % (
        label, len(lines), len(want))
    for line, (name, t) in zip(lines, want):
        words = line.split()
        assert words[0] == name, "%s: got %s, expected %s" % (label, words[0], name)
        assert words[1:] == tensor_bits(t), "%s: values of %s differ" % (label, name)


def torch_to_c(tool, tmp, fix, seed):
    net = tm.build(fix, seed)
    canon = dict(tm.c_order(net))
    full = net.state_dict()
    path = os.path.join(tmp, "from_torch.safetensors")
    variants = [
        ("canonical", st_bytes(canon)),
        ("state_dict with aliases", st_bytes(full)),
        ("metadata", st_bytes(canon, metadata={"format": "pt"})),
        ("reversed order", st_bytes(canon, key_order=sorted(canon, reverse=True),
                                    data_order=list(reversed(list(canon))))),
    ]
    n = 0
    for label, blob in variants:
        with open(path, "wb") as f:
            f.write(blob)
        p = run(tool, "load", fix, path)
        lab = "%s seed=%d %s" % (fix, seed, label)
        assert p.returncode == 0, "%s: nn_load rejected: %s" % (lab, p.stdout.decode())
        check_c_values(p.stdout, net, lab)
        n += 1
    # a changed alias must be refused
    if aliases(net):
        bad = dict(full)
        key = next(iter(aliases(net)))
        bad[key] = bad[key].clone() + 1
        with open(path, "wb") as f:
            f.write(st_bytes(bad))
        p = run(tool, "load", fix, path)
        assert p.returncode == 1 and b"is an alias of" in p.stdout, p.stdout
        n += 1
    return n


def c_to_torch(tool, tmp, fix, seed):
    src = tm.build(fix, seed)
    with torch.no_grad():            # make every value distinct from a fresh build
        for i, (_, t) in enumerate(tm.c_order(src)):
            t.add_(0.001 * (i + 1))
    words = " ".join(tm.bits(t) for _, t in tm.c_order(src))
    path = os.path.join(tmp, "from_c.safetensors")
    p = run(tool, "save", fix, path, stdin=words.encode())
    assert p.returncode == 0, "%s: nn_save failed: %s" % (fix, p.stdout.decode())
    with open(path, "rb") as f:
        blob = f.read()
    tensors = st_read(blob)
    canon = dict(tm.c_order(src))
    assert sorted(tensors) == sorted(canon), "%s: file keys %s, canonical %s" % (
        fix, sorted(tensors), sorted(canon))
    assert blob == st_bytes(canon), "%s: bytes differ from the safetensors layout" % fix
    # what safetensors.torch.load_model does: fill aliases from canonical keys
    sd = dict(tensors)
    for alias, canonical in aliases(src).items():
        sd[alias] = sd[canonical]
    dst = tm.build(fix, seed + 100)
    result = dst.load_state_dict(sd, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    for key, t in dst.state_dict().items():
        assert tensor_bits(t) == tensor_bits(src.state_dict()[key]), \
            "%s: %s differs after load_state_dict" % (fix, key)
    # tied tensors are still tied in torch, as in the C model
    return 1


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tool = sys.argv[1]
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fix in tm.FIXTURES:
            for seed in (0, 1, 2):
                n += torch_to_c(tool, tmp, fix, seed)
                n += c_to_torch(tool, tmp, fix, seed)
    print("%d safetensors interop checks against torch %s: all passed" % (n, torch.__version__))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL: %s" % e)
        sys.exit(1)
