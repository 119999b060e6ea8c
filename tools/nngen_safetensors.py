#!/usr/bin/python3
"""safetensors for PyTorch without the safetensors package (Debian 12 has
none): read and write the files nngen's nn_load and nn_save use, with torch
and numpy only.  One file, no other dependency: copy it next to your
training script, or use the installed one (share/nngen/python/).

    import nngen_safetensors as st
    st.save_file(model.state_dict(), "w.safetensors")   # -> nn_load / nn_load_mem in C
    model.load_state_dict(st.load_file("w.safetensors"))  # <- nn_save / nn_save_mem in C
    st.save_model(model, "w.safetensors")  # the same, tied weights written once
    st.load_model(model, "w.safetensors")  # load_state_dict, tied weights filled in

Command line:

    python3 nngen_safetensors.py convert IN.pt OUT.safetensors
        a torch.save()d state_dict (or module, or a checkpoint dict with a
        'state_dict' / 'model_state_dict' / 'model' entry) to safetensors,
        the names as they are (the spec's state_dict keys, as
        `nngen --params SPEC` lists them); tensors that share storage are
        written once, under their first key (what nn_save writes);
    python3 nngen_safetensors.py list FILE.safetensors
        one line per tensor: name, dtype, shape.

dtypes: torch.float32 <-> "F32", torch.int64 <-> "I64" (batch norm's
num_batches_tracked), torch.int32 <-> "I32"; anything else is refused with
a message (convert with .float() first).

The bytes written are those of the safetensors library (and of nn_save):
an 8-byte little-endian header length, a JSON header with the entries
sorted by dtype (I64, then F32, then I32) and then by name, compact
separators, padded with spaces to a multiple of 8, then the tensors'
little-endian data in the same order, contiguous.  Reading is strict: a
header length that does not fit the file, JSON that is not an object of
entries, duplicate keys, an unknown dtype, a shape that does not match the
byte count, overlapping or missing bytes, trailing data are all errors
(ValueError), and a torch.save file is named as such.
"""
import json
import struct
import sys

import numpy as np

try:
    import torch
except ImportError:  # numpy arrays still work
    torch = None

__all__ = ["save_file", "load_file", "save_model", "load_model", "save", "load"]

# safetensors' dtype order (its Dtype enum, "increasing alignment"): the
# entries are sorted by it, larger first, then by name.
_RANK = {"BOOL": 0, "U8": 1, "I8": 2, "F8_E5M2": 3, "F8_E4M3": 4, "I16": 5, "U16": 6,
         "F16": 7, "BF16": 8, "I32": 9, "U32": 10, "F32": 11, "F64": 12, "I64": 13, "U64": 14}
_NUMPY = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4")}
_MAX_HEADER = 100000000
_FIX = ("write it with nngen_safetensors.save_file(model.state_dict(), PATH), or convert "
        "it: python3 nngen_safetensors.py convert FILE OUT.safetensors")


def _dtype_name(t):
    """"F32", "I64" or "I32" for a tensor or array; ValueError otherwise."""
    if torch is not None and isinstance(t, torch.Tensor):
        names = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32"}
        if t.dtype not in names:
            raise ValueError("dtype %s is not supported (F32, I64, I32): convert it with "
                             ".float() first" % t.dtype)
        return names[t.dtype]
    a = np.asarray(t)
    name = {("f", 4): "F32", ("i", 8): "I64", ("i", 4): "I32"}.get(
        (a.dtype.kind, a.dtype.itemsize))
    if name is None:
        raise ValueError("dtype %s is not supported (float32, int64, int32)" % a.dtype)
    return name


def _to_bytes(t, dtype):
    if torch is not None and isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(np.asarray(t), dtype=_NUMPY[dtype]).tobytes()


def _shape(t):
    return [int(d) for d in (t.shape if hasattr(t, "shape") else np.shape(t))]


def _dumps(v):
    """Compact JSON as nn_save writes it: strings escape only '"', '\\' and
    control characters (as \\u00XX, where json.dumps writes \\n)."""
    if isinstance(v, dict):
        return "{%s}" % ",".join("%s:%s" % (_dumps(k), _dumps(x)) for k, x in v.items())
    if isinstance(v, list):
        return "[%s]" % ",".join(_dumps(x) for x in v)
    if isinstance(v, str):
        return '"%s"' % "".join("\\" + c if c in '"\\' else "\\u%04x" % ord(c) if ord(c) < 0x20
                                else c for c in v)
    return str(int(v))


def save(tensors, metadata=None):
    """The safetensors file of tensors ({name: tensor or array}) as bytes.
    metadata: an optional {str: str}, written as __metadata__."""
    entries = []
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise ValueError("tensor names must be strings, not %r" % (name,))
        if name == "__metadata__":
            raise ValueError("'__metadata__' cannot be a tensor name")
        dtype = _dtype_name(t)
        entries.append((-_RANK[dtype], name, dtype, _shape(t), _to_bytes(t, dtype)))
    entries.sort(key=lambda e: (e[0], e[1]))
    header = {}
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for _, name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = _dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(e[4] for e in entries)


def save_file(tensors, path, metadata=None):
    """Writes tensors ({name: tensor}, e.g. model.state_dict()) to path as
    safetensors.  Every key is written; keys of one shared tensor (tied
    weights) repeat its data, which nn_load accepts (save_model writes it
    once).  The file is written to path + ".tmp" and renamed."""
    import os
    data = save(tensors, metadata)
    tmp = "%s.tmp" % path
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _not_safetensors(data, where):
    """The message for bytes that are not safetensors but something known."""
    if data[:4] == b"PK\x03\x04":
        return "%s is a torch.save file (zip archive), not safetensors: %s" % (where, _FIX)
    if len(data) >= 3 and data[0] == 0x80 and 2 <= data[1] <= 5 and data[2] != 0:
        what = "a torch.save file" if data[2] in (0x8a, 0x95) else "a Python pickle"
        return "%s is %s (pickle, protocol %d), not safetensors: %s" % (
            where, what, data[1], _FIX)
    return None


def _parse(data, where):
    """[(name, dtype, shape, begin, end)] in header order and the metadata,
    after every check."""
    if len(data) < 8:
        raise ValueError("%s: truncated: %d bytes is too short for the 8-byte header length"
                         % (where, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    plausible = 2 <= n <= min(_MAX_HEADER, len(data) - 8) and \
        data[8:8 + n].lstrip(b" \t\r\n")[:1] == b"{"
    if not plausible:
        other = _not_safetensors(data, where)
        if other:
            raise ValueError(other)
        if n > _MAX_HEADER:
            raise ValueError("%s: header length %d is absurd" % (where, n))
        if n > len(data) - 8:
            raise ValueError("%s: truncated: header length %d is longer than the %d bytes "
                             "after it" % (where, n, len(data) - 8))

    def pairs(items):
        d = {}
        for k, v in items:
            if k in d:
                raise ValueError("%s: duplicate key %r in the header" % (where, k))
            d[k] = v
        return d

    try:
        header = json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError("%s: invalid header: %s" % (where, e)) from None
    if not isinstance(header, dict):
        raise ValueError("%s: the header must be a JSON object" % where)
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and
                                 all(isinstance(v, str) for v in meta.values())):
        raise ValueError("%s: __metadata__ must be an object of strings" % where)
    size = len(data) - 8 - n
    out = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise ValueError("%s: tensor %r: expected exactly dtype, shape, data_offsets"
                             % (where, name))
        dtype, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in _RANK:
            raise ValueError("%s: tensor %r: unknown dtype %r" % (where, name, dtype))
        if dtype not in _NUMPY:
            raise ValueError("%s: tensor %r: dtype %s is not supported here (F32, I64, I32)"
                             % (where, name, dtype))

        def count(v):
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0
        if not (isinstance(shape, list) and all(count(d) for d in shape)):
            raise ValueError("%s: tensor %r: bad shape %r" % (where, name, shape))
        if not (isinstance(offs, list) and len(offs) == 2 and all(count(o) for o in offs)
                and offs[0] <= offs[1] <= size):
            raise ValueError("%s: tensor %r: bad data_offsets %r (data section of %d bytes)"
                             % (where, name, offs, size))
        numel = 1
        for d in shape:
            numel *= d
        if numel * _NUMPY[dtype].itemsize != offs[1] - offs[0]:
            raise ValueError("%s: tensor %r: shape %r needs %d bytes, data_offsets hold %d"
                             % (where, name, shape, numel * _NUMPY[dtype].itemsize,
                                offs[1] - offs[0]))
        out.append((name, dtype, shape, offs[0], offs[1]))
    pos = 0
    for name, _, _, b, e in sorted(out, key=lambda x: (x[3], x[4])):
        if b != pos:
            raise ValueError("%s: tensor %r: %s at byte %d of the data section" % (
                where, name, "overlap" if b < pos else "gap", pos))
        pos = e
    if pos != size:
        raise ValueError("%s: %d bytes of trailing data after the last tensor" % (
            where, size - pos))
    return out, meta


def load(data, where="<bytes>", numpy=False):
    """{name: tensor} from the bytes of a safetensors file, in header
    order (numpy arrays with numpy=True or without torch)."""
    data = bytes(data)
    entries, _ = _parse(data, where)
    base = 8 + struct.unpack("<Q", data[:8])[0]
    out = {}
    for name, dtype, shape, b, e in entries:
        a = np.frombuffer(data, dtype=_NUMPY[dtype], count=(e - b) // _NUMPY[dtype].itemsize,
                          offset=base + b).reshape(shape).astype(_NUMPY[dtype].newbyteorder("="))
        out[name] = a if numpy or torch is None else torch.from_numpy(a)
    return out


def load_file(path, numpy=False):
    """{name: tensor} read from a safetensors file (nn_save's, or any with
    F32, I64 and I32 tensors)."""
    with open(path, "rb") as f:
        return load(f.read(), path, numpy)


def _first_keys(state):
    """The keys of a state dict without the later keys of a shared tensor
    (same storage, offset, shape and strides): what nn_save writes."""
    seen, keep = set(), {}
    for k, t in state.items():
        ident = (t.data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()),
                 t.dtype) if t.numel() else None
        if ident is not None and ident in seen:
            continue
        if ident is not None:
            seen.add(ident)
        keep[k] = t
    return keep


def save_model(model, path, metadata=None):
    """save_file(model.state_dict()) with each shared (tied) tensor written
    once, under its first key: the same bytes as nn_save of the nngen
    model with the same values."""
    save_file(_first_keys(model.state_dict()), path, metadata)


def load_model(model, path, strict=True):
    """model.load_state_dict from a file nn_save wrote: keys that the file
    lacks but that share their tensor with a key it has (tied weights) get
    that tensor.  Returns load_state_dict's result."""
    tensors = load_file(path)
    state = model.state_dict()
    by_id = {}
    for k, t in state.items():
        if t.numel():
            by_id.setdefault((t.data_ptr(), t.storage_offset(), tuple(t.shape)), []).append(k)
    for keys in by_id.values():
        have = [k for k in keys if k in tensors]
        if have:
            for k in keys:
                tensors.setdefault(k, tensors[have[0]])
    return model.load_state_dict(tensors, strict=strict)


def _state_dict_of(obj, where):
    if torch is not None and isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for k in ("state_dict", "model_state_dict", "model"):
            if k in obj and not (torch is not None and isinstance(obj[k], torch.Tensor)):
                return _state_dict_of(obj[k], where)
        if obj and all(torch is not None and isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ValueError("%s: not a state_dict (a dict of tensors), a module, or a checkpoint "
                     "holding one under 'state_dict', 'model_state_dict' or 'model'" % where)


def main(argv):
    usage = ("usage: nngen_safetensors.py convert IN.pt OUT.safetensors\n"
             "       nngen_safetensors.py list FILE.safetensors")
    if len(argv) == 3 and argv[0] == "convert":
        if torch is None:
            print("nngen_safetensors: convert needs torch", file=sys.stderr)
            return 1
        try:
            try:
                obj = torch.load(argv[1], map_location="cpu", weights_only=True)
            except TypeError:  # torch < 1.13 has no weights_only
                obj = torch.load(argv[1], map_location="cpu")
            state = _first_keys(_state_dict_of(obj, argv[1]))
            save_file(state, argv[2])
        except (OSError, ValueError, RuntimeError) as e:
            print("nngen_safetensors: %s" % e, file=sys.stderr)
            return 1
        print("%s: %d tensors" % (argv[2], len(state)))
        return 0
    if len(argv) == 2 and argv[0] == "list":
        try:
            with open(argv[1], "rb") as f:
                entries, _ = _parse(f.read(), argv[1])
        except (OSError, ValueError) as e:
            print("nngen_safetensors: %s" % e, file=sys.stderr)
            return 1
        for name, dtype, shape, _, _ in entries:
            print("%s\t%s\t%s" % (name, dtype, shape))
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
