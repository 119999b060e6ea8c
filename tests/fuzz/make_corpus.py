#!/usr/bin/python3
"""Regenerates the committed seed corpora of the fuzzers (standard library only).

usage: make_corpus.py NNGEN FUZZ_LOAD     (paths of the built nngen and fuzz-load)
       make_corpus.py NNGEN FUZZ_LOAD --only load_mem
       make_corpus.py --idx                (corpus/idx/ alone)

tests/fuzz/corpus/spec/   the tree's specs, named by origin:
    specs-*        specs/**/*.yaml
    bad-*          tests/bad/*.yaml (the bad-input corpus)
    warn-*         tests/bad/warn/*.yaml (valid specs that warn, and near misses)
    gen-*          tests/gen/specs/*.yaml
    emitpy-*       tests/emitpy/extra_specs/*.yaml
    examples-*     examples/**/*.yaml
    docs-*         the ```yaml blocks of README.md and docs/*.md
    grammar-*      40 specs from the grammar of tests/bad/fuzz_specs.py (seed 1)
  Inputs longer than 4096 bytes (the fuzzer's -max_len) are left out.

tests/fuzz/corpus/load/   files for the model of tests/fuzz/load_model.yaml:
    save-seed*     what nn_save writes (fuzz-load with NNGEN_FUZZ_LOAD_SEEDS)
    ok-*           other valid layouts: alias keys, __metadata__, data in
                   another order, whitespace, unpadded header, zero-size values
    bad-*          a few near misses (an alias with other data, a missing or
                   unknown tensor, a wrong shape)
  The malformed corpus of nn_load, tests/rt/bad_weights/, is not copied:
  tools/fuzz.sh and the smoke tests add it to the work corpus.

tests/fuzz/corpus/load_mem/   what fuzz-load-mem adds to corpus/load (which
  it is also given): the edges of telling safetensors from torch.save files
    ok-header-*    valid files whose header length starts like a pickle
                   (640 = 0x280: 0x80 0x02; 1408 = 0x580: 0x80 0x05)
    trunc-*        the same cut inside the header (truncated, not pickles)
    torch-*        torch.save's layouts: a zip holding archive/data.pkl, the
                   legacy pickles (protocols 2 and 4), another pickle, a zip
                   whose first bytes read as a 67 MB header length

usage: make_corpus.py NNGEN FUZZ_LOAD --only load_mem   (that directory only)

tests/fuzz/corpus/idx/    IDX files for fuzz-idx (nn_idx_read_images/labels):
    ok-*           images of 1 to 3 dimensions per example and labels, plain
                   and gzip (mtime 0)
    bad-*          near misses: truncated, one byte too many, wrong magic,
                   type or dimension count, a zero or overflowing dimension
  (only this part: make_corpus.py --idx)
"""
import io
import pickle
import zipfile
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MAX_LEN = 4096


def spec_corpus(nngen, out):
    files = {}

    def add(name, data):
        if len(data) <= MAX_LEN:
            files[name] = data

    def rel_name(prefix, path, base):
        r = os.path.relpath(path, base).replace(os.sep, '-')
        return prefix + '-' + r

    for p in sorted(glob.glob(os.path.join(ROOT, 'specs', '**', '*.yaml'), recursive=True)):
        add(rel_name('specs', p, os.path.join(ROOT, 'specs')), open(p, 'rb').read())
    for p in sorted(glob.glob(os.path.join(ROOT, 'tests', 'bad', '*.yaml'))):
        add('bad-' + os.path.basename(p), open(p, 'rb').read())
    for p in sorted(glob.glob(os.path.join(ROOT, 'tests', 'bad', 'warn', '*.yaml'))):
        add('warn-' + os.path.basename(p), open(p, 'rb').read())
    for p in sorted(glob.glob(os.path.join(ROOT, 'tests', 'gen', 'specs', '*.yaml'))):
        add('gen-' + os.path.basename(p), open(p, 'rb').read())
    for p in sorted(glob.glob(os.path.join(ROOT, 'tests', 'emitpy', 'extra_specs', '*.yaml'))):
        add('emitpy-' + os.path.basename(p), open(p, 'rb').read())
    for p in sorted(glob.glob(os.path.join(ROOT, 'examples', '**', '*.yaml'), recursive=True)):
        add(rel_name('examples', p, os.path.join(ROOT, 'examples')), open(p, 'rb').read())
    for p in [os.path.join(ROOT, 'README.md')] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md'))):
        text = open(p, encoding='utf-8').read()
        base = os.path.splitext(os.path.basename(p))[0].lower()
        for i, m in enumerate(re.finditer(r'^```yaml\n(.*?)^```', text, re.S | re.M)):
            add('docs-%s-%d.yaml' % (base, i + 1), m.group(1).encode())

    sys.path.insert(0, os.path.join(ROOT, 'tests', 'bad'))
    import fuzz_specs
    import random
    gen = fuzz_specs.Gen(random.Random(1), fuzz_specs.list_layers(nngen))
    n = 0
    while n < 40:
        data = gen.spec()
        if len(data) <= MAX_LEN:
            n += 1
            add('grammar-%02d.yaml' % n, data)

    write_dir(out, files)


def write_dir(out, files):
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for name, data in sorted(files.items()):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    print('%s: %d files, %d bytes' % (out, len(files), sum(len(d) for d in files.values())))


# ---- load ---------------------------------------------------------------

def model_tensors(nngen):
    """[(key, shape, canonical)] of load_model.yaml, state-dict order."""
    out = subprocess.run([nngen, '--params', os.path.join(HERE, 'load_model.yaml')],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    res = []
    for line in out.splitlines():
        m = re.match(r'(\S+) \[([0-9, ]*)\](?: \(shared with (\S+)\))?$', line)
        shape = [int(x) for x in m.group(2).split(',')] if m.group(2).strip() else []
        res.append((m.group(1), shape, m.group(3)))
    return res


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def values(name, n, special=False):
    if special:
        pool = [0.0, -0.0, float('inf'), float('-inf'), 1e-45, 3.4028235e38]
        blob = b''.join(struct.pack('<f', pool[i % len(pool)]) for i in range(n))
        # and a NaN with a payload
        return blob[:-4] + b'\x01\x00\xc0\x7f' if n else blob
    seed = sum(name.encode()) % 97
    return b''.join(struct.pack('<f', ((i * 37 + seed) % 101 - 50) / 16.0) for i in range(n))


def pack(entries, order=None, metadata=None, sep=(',', ':'), pad=True):
    """entries: [(key, shape, data bytes)]; order: keys in data order."""
    byname = {k: (s, d) for k, s, d in entries}
    order = order or sorted(byname)
    header, data = {}, b''
    if metadata is not None:
        header['__metadata__'] = metadata
    for k in order:
        s, d = byname[k]
        header[k] = {'dtype': 'F32', 'shape': s, 'data_offsets': [len(data), len(data) + len(d)]}
        data += d
    h = json.dumps(header, separators=sep).encode()
    if pad:
        h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


def load_corpus(nngen, fuzz_load, out):
    files = {}
    tmp = tempfile.mkdtemp()
    try:
        env = dict(os.environ, NNGEN_FUZZ_LOAD_SEEDS=tmp)
        subprocess.run([fuzz_load], env=env, check=True, stderr=subprocess.DEVNULL)
        for p in sorted(glob.glob(os.path.join(tmp, '*.safetensors'))):
            files[os.path.basename(p)] = open(p, 'rb').read()
    finally:
        shutil.rmtree(tmp)

    ts = model_tensors(nngen)
    canon = [(k, s, values(k, numel(s))) for k, s, c in ts if c is None]
    data_of = {k: d for k, s, d in canon}
    aliases = [(k, s, data_of[c]) for k, s, c in ts if c is not None]
    names = [k for k, s, d in canon]

    files['ok-canonical.safetensors'] = pack(canon)
    files['ok-aliases.safetensors'] = pack(canon + aliases)
    files['ok-one-alias.safetensors'] = pack(canon + aliases[:1])
    files['ok-metadata.safetensors'] = pack(canon, metadata={'format': 'pt', 'x': '\u00e9\\"'})
    files['ok-reversed-data.safetensors'] = pack(canon, order=list(reversed(names)))
    files['ok-whitespace.safetensors'] = pack(canon, sep=(' ,\n ', ' :\t'))
    files['ok-unpadded.safetensors'] = pack(canon, pad=False)
    files['ok-special-values.safetensors'] = pack(
        [(k, s, values(k, numel(s), special=True)) for k, s, d in canon])
    other = [(k, s, values(k + 'x', numel(s))) for k, s, c in ts if c is not None]
    files['bad-alias-other-data.safetensors'] = pack(canon + other[:1])
    files['bad-alias-only.safetensors'] = pack(
        [e for e in canon if e[0] != '0.weight'] + aliases[:1])
    files['bad-missing.safetensors'] = pack(canon[1:])
    files['bad-unknown.safetensors'] = pack(canon + [('9.weight', [1], values('9', 1))])
    k, s, d = canon[0]
    files['bad-shape.safetensors'] = pack([(k, list(reversed(s)) + [1], d)] + canon[1:])
    write_dir(out, files)


def load_mem_corpus(nngen, out):
    ts = model_tensors(nngen)
    canon = [(k, s, values(k, numel(s))) for k, s, c in ts if c is None]
    good = pack(canon, pad=False)
    hlen = struct.unpack('<Q', good[:8])[0]
    files = {}
    for n in (0x280, 0x580):
        assert hlen <= n
        f = struct.pack('<Q', n) + good[8:8 + hlen] + b' ' * (n - hlen) + good[8 + hlen:]
        files['ok-header-%#x.safetensors' % n] = f
        files['trunc-header-%#x.safetensors' % n] = f[:n // 2]
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, 'w', zipfile.ZIP_STORED) as z:
        for member, blob in (('archive/data.pkl', pickle.dumps({'0.bias': 0}, protocol=2)),
                             ('archive/data/0', values('0.bias', 3)),
                             ('archive/version', b'3\n')):
            z.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), blob)
    files['torch-zip.safetensors'] = zbuf.getvalue()
    magic = 0x1950a86a20f9469cfc6c
    files['torch-pickle-2.safetensors'] = pickle.dumps(magic, protocol=2) + pickle.dumps(
        {'0.weight': 1}, protocol=2)
    files['torch-pickle-4.safetensors'] = pickle.dumps(magic, protocol=4)
    files['torch-pickle-other.safetensors'] = pickle.dumps([1.5, 'x'], protocol=3)
    files['torch-zip-67mb.safetensors'] = b'PK\x03\x04\0\0\0\0' + good[8:]
    write_dir(out, files)


# ---- idx ----------------------------------------------------------------

def idx_file(dims, data=None, typ=8):
    head = bytes([0, 0, typ, len(dims)]) + b''.join(struct.pack('>I', d) for d in dims)
    if data is None:
        n = 1
        for d in dims:
            n *= d
        data = bytes((i * 37 + 11) % 256 for i in range(n))
    return head + data


def idx_corpus(out):
    import gzip
    files = {}
    ok = {'ok-images-3x4x4': idx_file([3, 4, 4]), 'ok-images-2x7': idx_file([2, 7]),
          'ok-images-2x2x3x2': idx_file([2, 2, 3, 2]), 'ok-labels-5': idx_file([5]),
          'ok-images-1x28x28': idx_file([1, 28, 28])}
    for name, data in ok.items():
        files[name + '.idx'] = data
        files[name + '.idx.gz'] = gzip.compress(data, 9, mtime=0)
    good = ok['ok-images-3x4x4']
    files['bad-truncated.idx'] = good[:-1]
    files['bad-truncated.idx.gz'] = gzip.compress(good, 9, mtime=0)[:-5]
    files['bad-trailing.idx'] = good + b'\x00'
    files['bad-magic.idx'] = b'\x01' + good[1:]
    files['bad-type-float.idx'] = idx_file([3, 4], bytes(48), typ=0x0D)
    files['bad-ndim5.idx'] = bytes([0, 0, 8, 5]) + good[4:]
    files['bad-zero.idx'] = idx_file([0, 4, 4], b'')
    files['bad-overflow.idx'] = idx_file([0xffffffff, 0xffffffff, 0xffffffff], b'')
    files['bad-huge-claim.idx.gz'] = gzip.compress(idx_file([1000000, 28, 28], b''), 9, mtime=0)
    write_dir(out, files)


def main():
    argv = sys.argv[1:]
    if argv == ['--idx']:
        idx_corpus(os.path.join(HERE, 'corpus', 'idx'))
        return
    only = None
    if len(argv) == 4 and argv[2] == '--only':
        only = argv[3]
        argv = argv[:2]
    if len(argv) != 2 or only not in (None, 'load_mem'):
        sys.exit(__doc__)
    nngen, fuzz_load = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    if only is None:
        spec_corpus(nngen, os.path.join(HERE, 'corpus', 'spec'))
        load_corpus(nngen, fuzz_load, os.path.join(HERE, 'corpus', 'load'))
        idx_corpus(os.path.join(HERE, 'corpus', 'idx'))
    load_mem_corpus(nngen, os.path.join(HERE, 'corpus', 'load_mem'))


if __name__ == '__main__':
    main()
