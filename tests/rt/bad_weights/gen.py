#!/usr/bin/env python3
"""Generates the safetensors corpus for nn_load (standard library only).

usage: gen.py [DIR]           write the files and expected.txt into DIR
       gen.py --check [DIR]   verify that DIR holds exactly what gen.py makes

expected.txt has one line per file: FILE<TAB>FIXTURE<TAB>EXPECTATION, where
EXPECTATION is "OK" (nn_load must accept the file) or a fragment that the
error message of nn_load must contain.  The fixtures are those of
tests/rt/fixtures.h: mlp has 0.weight [8,4], 0.bias [8], 2.weight [1,8],
2.bias [1]; tied has 0.*, 2.* [8,8]/[8], 6.* and aliases 4.*; misc has a
buffer 1.running_mean; bn has two batch norms (1.*, 4.*) with float32
buffers running_mean, running_var and an int64 0-d num_batches_tracked;
empty has no tensors.
"""

import io
import json
import os
import pickle
import struct
import sys
import zipfile

MLP = [("0.weight", [8, 4]), ("0.bias", [8]), ("2.weight", [1, 8]), ("2.bias", [1])]
TIED = [("0.weight", [8, 4]), ("0.bias", [8]), ("2.weight", [8, 8]), ("2.bias", [8]),
        ("6.weight", [1, 8]), ("6.bias", [1])]
MISC = [("0.weight", [2, 3]), ("0.bias", [2]), ("1.weight", [2]),
        ("2.inner.weight", [2, 2]), ("2.inner.bias", [2]), ("1.running_mean", [2])]
BN = [("0.weight", [3, 4]), ("0.bias", [3]), ("1.weight", [3]), ("1.bias", [3]),
      ("3.weight", [2, 3]), ("3.bias", [2]), ("4.weight", [2]), ("4.bias", [2]),
      ("1.running_mean", [3]), ("1.running_var", [3]), ("1.num_batches_tracked", [], "I64"),
      ("4.running_mean", [2]), ("4.running_var", [2]), ("4.num_batches_tracked", [], "I64")]

# safetensors' Dtype enum order ("increasing alignment") and element sizes
DTYPES = [("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E5M2", 1), ("F8_E4M3", 1), ("I16", 2),
          ("U16", 2), ("F16", 2), ("BF16", 2), ("I32", 4), ("U32", 4), ("F32", 4), ("F64", 8),
          ("I64", 8), ("U64", 8)]
RANK = {name: i for i, (name, _) in enumerate(DTYPES)}
PACK = {"F32": "<f", "F64": "<d", "F16": "<e", "I64": "<q", "I32": "<i"}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def values(name, n, dtype="F32"):
    """Deterministic bytes for a tensor: small binary fractions for floats,
    wide values (beyond 2^53 for I64) for integers."""
    seed = sum(name.encode()) % 97
    if dtype in ("I64", "I32"):
        big = 2 ** 40 if dtype == "I64" else 2 ** 20
        return b"".join(struct.pack(PACK[dtype], ((i * 37 + seed) % 101 - 50) * big + seed + i)
                        for i in range(n))
    return b"".join(struct.pack(PACK[dtype], ((i * 37 + seed) % 101 - 50) / 16.0)
                    for i in range(n))


def entries(tensors):
    """{name: (shape, dtype)} for [(name, shape[, dtype])] (default F32)."""
    return {t[0]: (t[1], t[2] if len(t) > 2 else "F32") for t in tensors}


def st_order(tensors):
    """The order the safetensors library writes: dtype with the larger
    alignment first, then by name (all F32: by name)."""
    e = entries(tensors)
    return sorted(e, key=lambda n: (-RANK[e[n][1]], n))


def layout(tensors, data_order=None, blobs=None):
    """(header dict, data bytes) for [(name, shape[, dtype])] laid out
    contiguously, in data_order (default: safetensors' order); blobs
    replaces the data of some tensors (data_offsets follow the blob)."""
    e = entries(tensors)
    order = data_order or st_order(tensors)
    header, data = {}, b""
    for name in order:
        shape, dtype = e[name]
        blob = (blobs or {}).get(name)
        if blob is None:
            blob = values(name, numel(shape), dtype)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    return header, data


def pack(header_text, data, hlen=None, pad=True):
    h = header_text.encode("utf-8") if isinstance(header_text, str) else header_text
    if pad:
        h += b" " * (-len(h) % 8)
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


def cases():
    out = []

    def add(name, fixture, expect, blob):
        out.append((name + ".safetensors", fixture, expect, blob))

    # --- files that must load ----------------------------------------
    h, d = layout(MLP)
    add("ok-mlp", "mlp", "OK", pack(js(h), d))
    add("ok-metadata", "mlp", "OK",
        pack(js(dict([("__metadata__", {"format": "pt", "note": "x\u00e9"})] +
                     list(h.items()))), d))
    h2, d2 = layout(MLP, ["2.bias", "0.weight", "2.weight", "0.bias"])
    keys = ["0.bias", "2.weight", "2.bias", "0.weight"]
    add("ok-any-order", "mlp", "OK", pack(js({k: h2[k] for k in keys}), d2))
    add("ok-whitespace", "mlp", "OK",
        pack(json.dumps(h, indent="\t").replace("\n", "\r\n"), d))
    esc = js(h).replace('"0.weight"', '"0.w\\u0065ight"').replace('"0.bias"', '"0\\/bias"')
    # "0\/bias" decodes to "0/bias": unknown, so only the \u escape is in ok-escapes
    add("ok-escapes", "mlp", "OK", pack(js(h).replace('"0.weight"', '"0.w\\u0065ight"'), d))
    add("unknown-escaped", "mlp", "unknown tensor '0/bias'", pack(esc, d))
    add("ok-unpadded", "mlp", "OK", pack(js(h), d, pad=False))
    h, d = layout(TIED)
    add("ok-tied", "tied", "OK", pack(js(h), d))
    h, d = layout(TIED + [("4.weight", [8, 8]), ("4.bias", [8])])
    h_alias = dict(h)
    # aliases must hold the canonical tensor's bytes: rebuild with copies
    order = sorted(h_alias)
    data, hdr = b"", {}
    shapes = dict(TIED + [("4.weight", [8, 8]), ("4.bias", [8])])
    for name in order:
        src = {"4.weight": "2.weight", "4.bias": "2.bias"}.get(name, name)
        blob = values(src, numel(shapes[name]))
        hdr[name] = {"dtype": "F32", "shape": shapes[name],
                     "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    add("ok-tied-aliases", "tied", "OK", pack(js(hdr), data))
    add("tied-alias-differs", "tied",
        "tensor '4.bias' is an alias of '2.bias' but holds different data",
        pack(js(h), d))
    hdr2 = dict(hdr)
    del hdr2["2.weight"]
    data2, hdr3 = b"", {}
    for name in sorted(hdr2):
        src = {"4.weight": "2.weight", "4.bias": "2.bias"}.get(name, name)
        blob = values(src, numel(shapes[name]))
        hdr3[name] = {"dtype": "F32", "shape": shapes[name],
                      "data_offsets": [len(data2), len(data2) + len(blob)]}
        data2 += blob
    add("tied-alias-only", "tied", "missing tensor '2.weight'", pack(js(hdr3), data2))
    h, d = layout(TIED + [("4.bias", [2, 4])])
    add("tied-alias-shape", "tied", "tensor '4.bias': shape [2, 4] does not match the model's [8]",
        pack(js(h), d))
    h, d = layout(MISC)
    add("ok-misc", "misc", "OK", pack(js(h), d))
    h, d = layout([x for x in MISC if x[0] != "1.running_mean"])
    add("misc-missing-buffer", "misc", "missing tensor '1.running_mean'", pack(js(h), d))
    add("ok-empty", "empty", "OK", pack("{}", b""))
    add("ok-empty-metadata", "empty", "OK", pack('{"__metadata__":{}}', b""))

    # --- sizes ---------------------------------------------------------
    h, d = layout(MLP)
    good = pack(js(h), d)
    add("empty-file", "mlp", "file is empty", b"")
    add("truncated-length", "mlp", "too short for the 8-byte header length", good[:5])
    add("truncated-header", "mlp", "is longer than the", good[:40])
    add("truncated-data", "mlp", "out of range of the data section", good[:-4])
    add("header-longer-than-file", "mlp", "header length 4096 is longer than the",
        pack(js(h), d, hlen=4096))
    add("absurd-header-length", "mlp", "is absurd",
        struct.pack("<Q", 2 ** 63 + 5) + good[8:])
    add("absurd-header-length-2", "mlp", "header length 100000001 is absurd",
        struct.pack("<Q", 100000001) + good[8:])
    add("max-header-length", "mlp", "header length 18446744073709551615 is absurd",
        b"\xff" * 8 + good[8:])
    add("header-too-small", "mlp", "too small for a JSON object", pack(b"{", b"", pad=False))
    add("trailing-data", "mlp", "4 bytes of trailing data after the last tensor",
        good + b"\0\0\0\0")
    add("empty-trailing-data", "empty", "8 bytes of trailing data", pack("{}", b"\0" * 8))

    # --- JSON ------------------------------------------------------------
    def bad_json(name, text, frag):
        add(name, "mlp", frag, pack(text, d))
    bad_json("json-unclosed", js(h)[:-1], "invalid JSON header at byte")
    bad_json("json-not-object", "[1, 2]", "the header must be a JSON object")
    bad_json("json-unquoted-key", js(h).replace('"0.bias"', "bias", 1), "expected a string")
    bad_json("json-single-quotes", js(h).replace('"0.bias"', "'0.bias'", 1),
             "expected a string")
    bad_json("json-trailing-comma", js(h)[:-1] + ",}", "expected a string")
    bad_json("json-missing-colon", js(h).replace('"0.bias":', '"0.bias"', 1), "expected ':'")
    bad_json("json-bad-escape", js(h).replace('"0.bias"', '"0.b\\xias"', 1), "bad escape")
    bad_json("json-control-char", js(h).replace('"0.bias"', '"0.b\tias"', 1),
             "control character in a string")
    bad_json("json-lone-surrogate", js(h).replace('"0.bias"', '"0.b\\ud800ias"', 1),
             "lone surrogate")
    bad_json("json-bad-unicode-escape", js(h).replace('"0.bias"', '"0.b\\u12G4"', 1),
             "bad \\u escape")
    bad_json("json-nul-escape", js(h).replace('"0.bias"', '"0.b\\u0000"', 1), "\\u0000")
    bad_json("json-leading-zero", js(h).replace('"shape":[8]', '"shape":[08]', 1),
             "leading zero")
    bad_json("shape-exponent", js(h).replace('"shape":[8]', '"shape":[8e0]', 1),
             "tensor '0.bias': shape dimensions must be integers, got 8e0")
    bad_json("json-nan-literal", js(h).replace('"shape":[8]', '"shape":[NaN]', 1),
             "must be an array of non-negative integers")
    bad_json("json-garbage-after", js(h) + "xyz", "unexpected characters after the object")
    bad_json("json-second-object", js(h) + "{}", "unexpected characters after the object")
    bad_json("json-unterminated-string", '{"0.bias', "unterminated string")
    add("json-invalid-utf8", "mlp", "header is not valid UTF-8",
        pack(js(h).encode().replace(b"0.bias", b"0.b\xffas", 1), d))
    add("json-overlong-utf8", "mlp", "header is not valid UTF-8",
        pack(js(h).encode().replace(b"0.bias", b"0.\xc0\xafias", 1), d))

    # --- schema ------------------------------------------------------------
    def edit(name, frag, key, field, value, tensors=MLP):
        hh, dd = layout(tensors)
        hh[key] = dict(hh[key])
        if value is None:
            del hh[key][field]
        else:
            hh[key][field] = value
        add(name, "mlp", frag, pack(js(hh), dd))

    # a dtype changed without its data: the sizes use the dtype's element size
    edit("dtype-f16-f32-payload",
         "tensor '0.bias': shape [8] needs 16 bytes but data_offsets [0, 32] hold 32",
         "0.bias", "dtype", "F16")
    edit("dtype-f64-f32-payload", "tensor '0.weight': shape [8, 4] needs 256 bytes",
         "0.weight", "dtype", "F64")
    edit("dtype-lowercase", "tensor '0.weight': unknown dtype 'f32'", "0.weight", "dtype",
         "f32")
    edit("dtype-unknown", "tensor '0.bias': unknown dtype 'Q8'", "0.bias", "dtype", "Q8")
    edit("dtype-empty", "tensor '0.bias': unknown dtype ''", "0.bias", "dtype", "")
    edit("dtype-number", "tensor '0.bias': dtype must be a string", "0.bias", "dtype", 32)
    edit("missing-dtype", "tensor '0.bias': missing 'dtype'", "0.bias", "dtype", None)
    edit("missing-shape", "tensor '0.bias': missing 'shape'", "0.bias", "shape", None)
    edit("missing-offsets", "tensor '0.bias': missing 'data_offsets'", "0.bias",
         "data_offsets", None)
    edit("unexpected-field", "tensor '0.bias': unexpected key 'offsets'", "0.bias",
         "offsets", [0, 32])
    edit("shape-not-array", "expected '[' for the shape", "0.bias", "shape", 8)
    edit("shape-negative", "tensor '0.bias': shape dimensions must be non-negative integers",
         "0.bias", "shape", [-8])
    edit("shape-float", "tensor '0.bias': shape dimensions must be integers, got 8.0",
         "0.bias", "shape", [8.0])
    edit("shape-string", "shape dimensions must be an array of non-negative integers",
         "0.bias", "shape", ["8"])
    edit("shape-huge-dim", "shape dimensions value 18446744073709551616 is too large",
         "0.bias", "shape", [2 ** 64])
    edit("shape-overflow", "tensor '0.bias': shape [4294967296, 4294967296, 16] overflows",
         "0.bias", "shape", [2 ** 32, 2 ** 32, 16])
    edit("shape-overflow-bytes", "overflows", "0.bias", "shape", [2 ** 62 + 1])
    edit("offsets-three", "expected ']' after the two data_offsets", "0.bias",
         "data_offsets", [0, 32, 64])
    edit("offsets-one", "expected ',' in data_offsets", "0.bias", "data_offsets", [32])
    edit("offsets-negative", "data_offsets must be non-negative integers", "0.bias",
         "data_offsets", [-32, 0])
    edit("offsets-huge", "data_offsets value 18446744073709551615 is too large", "0.bias",
         "data_offsets", [0, 2 ** 64 - 1])
    edit("offsets-int64-max", "out of range of the data section", "0.bias",
         "data_offsets", [0, 2 ** 63 - 1])
    edit("offsets-reversed", "tensor '0.bias': data_offsets [32, 0] are reversed", "0.bias",
         "data_offsets", [32, 0])
    hh, dd = layout(MLP)
    end = hh["2.weight"]["data_offsets"][1]
    edit("offsets-out-of-range",
         "tensor '2.weight': data_offsets [%d, %d] are out of range of the data section (%d bytes)"
         % (end, end + 32, len(dd)), "2.weight", "data_offsets", [end, end + 32])
    add("entry-not-object", "mlp", "expected an object for a tensor",
        pack(js(h).replace(js(h["0.bias"]), "[1]", 1), d))
    add("entry-empty-object", "mlp", "tensor '0.bias': missing 'dtype'",
        pack(js(h).replace(js(h["0.bias"]), "{}", 1), d))
    add("metadata-not-object", "mlp", "__metadata__ must be an object of strings",
        pack(js(dict([("__metadata__", ["a"])] + list(h.items()))), d))
    add("metadata-not-string", "mlp", "__metadata__ values must be strings ('epoch' is not)",
        pack(js(dict([("__metadata__", {"epoch": 3})] + list(h.items()))), d))
    add("metadata-duplicate-key", "mlp", "__metadata__: duplicate key 'a'",
        pack('{"__metadata__":{"a":"1","a":"2"},' + js(h)[1:], d))
    add("metadata-twice", "mlp", "duplicate key '__metadata__'",
        pack('{"__metadata__":{},"__metadata__":{},' + js(h)[1:], d))
    add("duplicate-field", "mlp", "tensor '0.bias': duplicate key 'dtype'",
        pack(js(h).replace('"0.bias":{"dtype":"F32"', '"0.bias":{"dtype":"F32","dtype":"F32"', 1), d))
    add("duplicate-key", "mlp", "duplicate key '0.bias' in the header",
        pack(js(h)[:-1] + ',"0.bias":' + js(h["0.bias"]) + "}", d))

    # --- layout --------------------------------------------------------------
    hh, dd = layout(MLP)   # order: 0.bias 0.weight 2.bias 2.weight
    hh["0.weight"] = dict(hh["0.weight"], data_offsets=[16, 144])
    add("overlap", "mlp", "tensors '0.bias' and '0.weight' overlap", pack(js(hh), dd))
    hh, dd = layout(MLP)
    b0 = hh["0.weight"]["data_offsets"][0]
    for k in ("0.weight", "2.bias", "2.weight"):
        o = hh[k]["data_offsets"]
        hh[k] = dict(hh[k], data_offsets=[o[0] + 4, o[1] + 4])
    add("gap", "mlp", "gap in the data section: bytes [%d, %d) before tensor '0.weight'"
        % (b0, b0 + 4), pack(js(hh), dd[:b0] + b"\0\0\0\0" + dd[b0:]))
    hh, dd = layout(MLP)
    hh["0.bias"] = dict(hh["0.bias"], data_offsets=[0, 28])
    add("size-mismatch", "mlp",
        "tensor '0.bias': shape [8] needs 32 bytes but data_offsets [0, 28] hold 28",
        pack(js(hh), dd))
    hh, dd = layout(MLP)
    hh["2.bias"] = dict(hh["2.bias"], data_offsets=[0, 4])
    add("same-offsets", "mlp", "overlap", pack(js(hh), dd))

    # --- names and shapes --------------------------------------------------
    h, d = layout([("0.weight", [8, 3])] + MLP[1:])
    add("wrong-shape", "mlp", "tensor '0.weight': shape [8, 3] does not match the model's [8, 4]",
        pack(js(h), d))
    h, d = layout([("0.weight", [4, 8])] + MLP[1:])
    add("transposed-shape", "mlp", "shape [4, 8] does not match the model's [8, 4]",
        pack(js(h), d))
    h, d = layout(MLP[:1] + [("0.bias", [8, 1])] + MLP[2:])
    add("wrong-rank", "mlp", "tensor '0.bias': shape [8, 1] does not match the model's [8]",
        pack(js(h), d))
    h, d = layout(MLP[:3] + [("2.bias", [])])
    add("scalar-for-vector", "mlp", "tensor '2.bias': shape [] does not match the model's [1]",
        pack(js(h), d))
    h, d = layout(MLP + [("3.weight", [2])])
    add("unknown-name", "mlp", "unknown tensor '3.weight'", pack(js(h), d))
    h, d = layout(MLP + [("module.0.weight", [8, 4])])
    add("unknown-prefixed", "mlp", "unknown tensor 'module.0.weight'", pack(js(h), d))
    h, d = layout(MLP[:3])
    add("missing-name", "mlp", "missing tensor '2.bias'", pack(js(h), d))
    add("missing-all", "mlp", "missing tensor '0.weight'", pack("{}", b""))
    h, d = layout(MLP)
    add("tensors-for-empty-model", "empty", "unknown tensor", pack(js(h), d))

    # --- dtypes: each tensor in its model dtype, nothing converted -----------
    def retype(tensors, name, dtype, shape=None):
        return [(t[0], t[1] if shape is None or t[0] != name else shape, dtype)
                if t[0] == name else t for t in tensors]

    for dt, frag in [("F16", "tensor '0.bias': dtype F16 does not match the model's F32"),
                     ("F64", "tensor '0.bias': dtype F64 does not match the model's F32"),
                     ("I32", "tensor '0.bias': dtype I32 does not match the model's F32"),
                     ("BF16", "tensor '0.bias': dtype BF16 does not match the model's F32"),
                     ("U8", "tensor '0.bias': dtype U8 does not match the model's F32")]:
        tl = retype(MLP, "0.bias", dt)
        blobs = {"0.bias": b"\x01" * (8 * dict(DTYPES)[dt])}
        h, d = layout(tl, blobs=blobs)
        add("dtype-%s" % dt.lower(), "mlp", frag, pack(js(h), d))
    h, d = layout(BN)
    add("ok-bn", "bn", "OK", pack(js(h), d))
    h, d = layout(BN, data_order=sorted(entries(BN)))
    add("ok-bn-name-order", "bn", "OK", pack(js(h), d))
    h, d = layout(BN, data_order=[t[0] for t in BN])
    keys = sorted(h, reverse=True)
    add("ok-bn-any-order", "bn", "OK", pack(js({k: h[k] for k in keys}), d))
    h, d = layout(retype(BN, "1.num_batches_tracked", "F32"))
    add("bn-f32-for-i64", "bn",
        "tensor '1.num_batches_tracked': dtype F32 does not match the model's I64",
        pack(js(h), d))
    h, d = layout(retype(BN, "4.running_mean", "I64"))
    add("bn-i64-for-f32", "bn", "tensor '4.running_mean': dtype I64 does not match the model's F32",
        pack(js(h), d))
    h, d = layout(retype(BN, "4.num_batches_tracked", "F64"))
    add("bn-f64-for-i64", "bn",
        "tensor '4.num_batches_tracked': dtype F64 does not match the model's I64",
        pack(js(h), d))
    h, d = layout(retype(BN, "4.num_batches_tracked", "I32"))
    add("bn-i32-for-i64", "bn",
        "tensor '4.num_batches_tracked': dtype I32 does not match the model's I64",
        pack(js(h), d))
    h, d = layout(retype(BN, "1.num_batches_tracked", "U64"),
                  blobs={"1.num_batches_tracked": b"\0" * 8})
    add("bn-u64-for-i64", "bn",
        "tensor '1.num_batches_tracked': dtype U64 does not match the model's I64",
        pack(js(h), d))
    h, d = layout(BN, blobs={"1.num_batches_tracked": struct.pack("<i", 7)})
    add("bn-i64-truncated-payload", "bn",
        "tensor '1.num_batches_tracked': shape [] needs 8 bytes but data_offsets [0, 4] hold 4 "
        "(size mismatch)", pack(js(h), d))
    h, d = layout(BN)
    good = pack(js(h), d)
    # the file ends inside the last tensor, an F32 one; and inside an I64
    add("bn-truncated-file", "bn", "out of range of the data section", good[:-6])
    h, d = layout(BN, data_order=[t[0] for t in BN])
    add("bn-truncated-in-i64", "bn",
        "tensor '4.num_batches_tracked': data_offsets [%d, %d] are out of range of the data "
        "section (%d bytes)" % (len(d) - 8, len(d), len(d) - 3), pack(js(h), d)[:-3])
    h, d = layout(retype(BN, "1.num_batches_tracked", "I64", shape=[1]))
    add("bn-i64-shape", "bn",
        "tensor '1.num_batches_tracked': shape [1] does not match the model's []",
        pack(js(h), d))
    h, d = layout(retype(BN, "1.num_batches_tracked", "I64", shape=[2 ** 61 + 1]),
                  blobs={"1.num_batches_tracked": b"\0" * 8})
    add("bn-i64-overflow", "bn", "tensor '1.num_batches_tracked': shape [2305843009213693953] "
        "overflows", pack(js(h), d))
    h, d = layout([t for t in BN if t[0] != "4.num_batches_tracked"])
    add("bn-missing-i64", "bn", "missing tensor '4.num_batches_tracked'", pack(js(h), d))
    h, d = layout([t for t in BN if t[0] != "1.running_var"])
    add("bn-missing-buffer", "bn", "missing tensor '1.running_var'", pack(js(h), d))
    h, d = layout(BN + [("1.num_batches", [], "I64")])
    add("bn-unknown-i64", "bn", "unknown tensor '1.num_batches'", pack(js(h), d))
    h, d = layout(BN + [("2.num_batches_tracked", [], "I64")])
    add("bn-unknown-buffer", "bn", "unknown tensor '2.num_batches_tracked'", pack(js(h), d))

    # --- not safetensors: what torch.save writes ----------------------
    # (made here with zipfile and pickle as torch 1.13 lays them out:
    # a zip archive of NAME/data.pkl, NAME/data/0, ..., stored; or, with
    # _use_new_zipfile_serialization=False, pickles starting with torch's
    # magic number 0x1950a86a20f9469cfc6c)
    fix = "write safetensors from torch with nngen_safetensors.save_file(model.state_dict(), PATH)"
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_STORED) as z:
        for member, blob in (("archive/data.pkl", pickle.dumps({"0.bias": 0}, protocol=2)),
                             ("archive/data/0", values("0.bias", 8)),
                             ("archive/version", b"3\n")):
            z.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), blob)
    add("torch-save-zip", "mlp", "is a torch.save file (a zip archive holding archive/data.pkl), "
        "not safetensors: " + fix, zbuf.getvalue())
    # a zip that is not torch's, whose 8 first bytes read as a header length
    # the file could almost hold (0x04034b50 = 67 MB): still not safetensors
    add("zip-other", "mlp", "is a zip archive (as torch.save writes), not safetensors: " + fix,
        b"PK\x03\x04\0\0\0\0" + b"\0" * 40)
    magic = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
    add("torch-save-pickle", "mlp", "is a torch.save file (a pickle, protocol 2), not "
        "safetensors: " + fix, magic + pickle.dumps({"0.bias": 0}, protocol=2))
    add("torch-save-pickle-4", "mlp", "is a torch.save file (a pickle, protocol 4)",
        pickle.dumps(0x1950a86a20f9469cfc6c, protocol=4))
    add("pickle-other", "mlp", "is a Python pickle (protocol 3), not safetensors: " + fix,
        pickle.dumps({"0.bias": [0.5] * 8}, protocol=3))
    # a real safetensors file whose header length, 640 = 0x280, starts
    # like a pickle (0x80 0x02): it loads; cut short, it is truncated, not
    # a pickle
    h, d = layout(MLP)
    text = js(h)
    add("ok-header-0x280", "mlp", "OK", pack(text + " " * (640 - len(text)), d))
    add("truncated-header-0x280", "mlp", "truncated: header length 640 is longer than the",
        pack(text + " " * (640 - len(text)), d)[:600])
    return out


def render(out):
    lines = ["# FILE\tFIXTURE\tEXPECTATION (OK, or a fragment of nn_error())"]
    for name, fixture, expect, _ in out:
        lines.append("%s\t%s\t%s" % (name, fixture, expect))
    return "\n".join(lines) + "\n"


def main(argv):
    check = "--check" in argv
    args = [a for a in argv[1:] if a != "--check"]
    here = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    out = cases()
    names = [o[0] for o in out]
    assert len(set(names)) == len(names), "duplicate case names"
    files = {name: blob for name, _, _, blob in out}
    files["expected.txt"] = render(out).encode()
    if check:
        bad = 0
        for name, blob in files.items():
            p = os.path.join(here, name)
            try:
                with open(p, "rb") as f:
                    have = f.read()
            except OSError as e:
                print("missing %s: %s" % (p, e))
                bad += 1
                continue
            if have != blob:
                print("stale %s (run gen.py to regenerate)" % p)
                bad += 1
        extra = sorted(set(n for n in os.listdir(here) if n.endswith(".safetensors")) -
                       set(files))
        for n in extra:
            print("unexpected file %s" % n)
            bad += 1
        print("%d corpus files checked, %d problems" % (len(files), bad))
        return 1 if bad else 0
    for name, blob in files.items():
        with open(os.path.join(here, name), "wb") as f:
            f.write(blob)
    print("wrote %d files to %s" % (len(files), here))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
