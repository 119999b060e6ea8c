#!/usr/bin/python3
"""safetensors interoperability between nngen-rt and PyTorch.

usage: test_safetensors_torch.py ST_TOOL

The `safetensors` package is not installed, so files are written and read
here with json + struct + numpy, following the format and the layout the
safetensors library uses (entries sorted by dtype, larger alignment first
-- I64 before F32 before I32 -- then by name; data contiguous in that
order, little-endian; header padded with spaces to a multiple of 8).
Batch norm buffers go through as torch holds them: running_mean and
running_var F32, num_batches_tracked I64 (0-d), bit-exact both ways.

  torch -> C   a torch model's tensors are written to a file, st_tool loads
               it with nn_load, and every value must come back bit-exact;
               also with aliases, __metadata__, and another key/data order.
  C -> torch   st_tool saves values with nn_save; the file is parsed here,
               must list each canonical tensor once (no aliases), and
               load_state_dict(strict=True) on the equivalent torch model
               must accept it (aliases filled from their canonical tensor)
               with identical values and dtypes.  The bytes must also equal
               what the safetensors layout gives for the same tensors.
  refusals     nn_load takes no dtype but the model's: a torch state dict
               with num_batches_tracked as float32, or running_mean as
               int64, is rejected with both dtypes named.
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


# torch dtype: (safetensors dtype, numpy little-endian type)
ST_DTYPES = {torch.float32: ("F32", "<f4"), torch.int64: ("I64", "<i8"),
             torch.int32: ("I32", "<i4"), torch.float64: ("F64", "<f8")}
NP_OF = {"F32": "<f4", "I64": "<i8", "I32": "<i4", "F64": "<f8"}
# safetensors' Dtype enum order ("increasing alignment"), for the ones here
RANK = {"I32": 9, "F32": 11, "F64": 12, "I64": 13}


def st_order(tensors):
    """The order the safetensors library writes {name: tensor} in."""
    return sorted(tensors, key=lambda n: (-RANK[ST_DTYPES[tensors[n].dtype][0]], n))


def st_bytes(tensors, key_order=None, data_order=None, metadata=None):
    """safetensors bytes for {name: tensor} (float32, int64, int32)."""
    data_order = data_order or st_order(tensors)
    key_order = key_order or data_order
    entries, data = {}, b""
    for name in data_order:
        t = tensors[name].detach().contiguous()
        dtype, np_type = ST_DTYPES[t.dtype]
        a = t.numpy().astype(np_type)
        blob = a.tobytes()
        entries[name] = {"dtype": dtype, "shape": list(a.shape),
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
    order = sorted(names, key=lambda k: (-RANK[header[k]["dtype"]], k))
    assert names == order, "keys not in safetensors' order: %s" % names
    data = blob[8 + n:]
    pos, out = 0, {}
    for name in names:
        e = header[name]
        np_type = NP_OF[e["dtype"]]
        b, end = e["data_offsets"]
        assert b == pos, "%s: data not contiguous" % name
        shape = e["shape"]
        count = int(np.prod(shape)) if shape else 1
        assert end - b == np.dtype(np_type).itemsize * count
        a = np.frombuffer(data[b:end], dtype=np_type).reshape(shape)
        out[name] = torch.from_numpy(a.astype(a.dtype.newbyteorder("=")).copy())
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


def wide_ints(net, seed):
    """Integer buffers beyond float precision (2^53 + 1, -2^62, ...)."""
    with torch.no_grad():
        for i, (_, t) in enumerate(tm.c_order(net)):
            if not t.is_floating_point():
                t.fill_([2 ** 53 + 1 + i, -2 ** 62 - i, 2 ** 63 - 1 - i][seed % 3])


def torch_to_c(tool, tmp, fix, seed):
    net = tm.build(fix, seed)
    if seed == 2:
        wide_ints(net, seed)
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
    # a changed alias must be refused (each alias: buffers' too)
    for key in aliases(net):
        bad = dict(full)
        bad[key] = bad[key].clone() + 1
        with open(path, "wb") as f:
            f.write(st_bytes(bad))
        p = run(tool, "load", fix, path)
        assert p.returncode == 1 and b"is an alias of" in p.stdout, (key, p.stdout)
        n += 1
    # no conversion: each tensor only in its own dtype
    for key, t in canon.items():
        if t.dtype == torch.int64:
            other, want = t.to(torch.float32), b"dtype F32 does not match the model's I64"
        elif t.dim() > 0 and key.endswith("running_mean"):
            other, want = t.round().to(torch.int64), b"dtype I64 does not match the model's F32"
        else:
            continue
        bad = dict(canon)
        bad[key] = other
        with open(path, "wb") as f:
            f.write(st_bytes(bad))
        p = run(tool, "load", fix, path)
        assert p.returncode == 1 and (b"tensor '%s': " % key.encode() + want) in p.stdout, \
            (key, p.stdout)
        n += 1
    return n


def c_to_torch(tool, tmp, fix, seed):
    src = tm.build(fix, seed)
    with torch.no_grad():            # make every value distinct from a fresh build
        for i, (_, t) in enumerate(tm.c_order(src)):
            t.add_(0.001 * (i + 1) if t.is_floating_point() else 1000 * (i + 1))
    if seed == 1:
        wide_ints(src, seed)
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
        assert t.dtype == src.state_dict()[key].dtype, "%s: %s dtype" % (fix, key)
        assert tensor_bits(t) == tensor_bits(src.state_dict()[key]), \
            "%s: %s differs after load_state_dict" % (fix, key)
    for key, t in tensors.items():       # the file holds torch's dtypes
        assert t.dtype == canon[key].dtype, "%s: %s is %s in the file" % (fix, key, t.dtype)
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
