#!/usr/bin/python3
"""Weights compiled in (nngen --weights) and variants in one program (meson
suite 'deploy').

usage: bake.py --nngen NNGEN --rt-lib LIBNNGEN-RT.a --include INCDIR --cc CC
               [--cflag F]... [--lib L]... SPEC...

For each SPEC (one with a train: section and float input): writes a weights
file W for it (the keys and shapes of `nngen --params`, values from a fixed
sequence; standard library only), generates six variants with --name,
--batch, --inference and --weights W (bake_driver.c lists them), compiles
them with -std=c99 -Wall -Wextra -Wpedantic -Werror into one program with
bake_driver.c and runs it: the compiled-in model computes exactly what the
loaded one does, is read-only (nn_load, init and training mode refused),
costs its weights less in P_BYTES; a batch-64 training variant and a batch-1
inference variant share one file.  Then checks the compiler's side: a
weights file with a wrong shape, a missing key, an unknown key, or a
torch.save file is refused with "W: error: ..." (exit 1) and no output
file; an unreadable one exits 3; two runs write the same bytes.
Exit 1 on any failure.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STRICT = ['-std=c99', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-O1']
failures = []


def report(ok, what):
    print('%s %s' % ('PASS' if ok else 'FAIL', what), flush=True)
    if not ok:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def params(nngen, spec):
    p = run([nngen, '--params', spec])
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    out = []
    for line in p.stdout.splitlines():
        if '(shared with' in line:
            continue
        key, rest = line.split(' ', 1)
        shape = json.loads(rest.split(']')[0] + ']')
        out.append((key, shape))
    return out


def write_st(path, entries):
    """safetensors, as nn_save lays it out closely enough for nn_load."""
    header, blobs, off = {}, [], 0
    for key, dt, shape, blob in entries:
        header[key] = {'dtype': dt, 'shape': shape, 'data_offsets': [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def weights(ps, skip=None, reshape=None, extra=False):
    s = 987654321
    entries = []
    for key, shape in ps:
        if key == skip:
            continue
        n = 1
        for d in shape:
            n *= d
        if key.endswith('num_batches_tracked'):
            entries.append((key, 'I64', shape, struct.pack('<q', 7)))
            continue
        fan = n // shape[0] if shape and shape[0] else 1
        vals = []
        for _ in range(n):
            s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
            u = ((s >> 40) & 0xffffff) / float(1 << 24) - 0.5
            vals.append(0.5 + abs(u) if key.endswith('running_var') else 2.0 * u / max(1, fan) ** 0.5)
        if key == reshape:
            shape = shape[::-1] if len(shape) > 1 and shape[0] != shape[-1] else shape + [1]
        entries.append((key, 'F32', shape, struct.pack('<%df' % n, *vals)))
    if extra:
        entries.append(('no.such.key', 'F32', [1], struct.pack('<f', 1.0)))
    return entries


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--rt-lib', required=True)
    ap.add_argument('--include', required=True)
    ap.add_argument('--cc', required=True)
    ap.add_argument('--cflag', action='append', default=[])
    ap.add_argument('--lib', action='append', default=[])
    ap.add_argument('specs', nargs='+')
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='nngen-bake-')
    for spec in a.specs:
        name = os.path.splitext(os.path.basename(spec))[0]
        d = os.path.join(tmp, name)
        os.makedirs(d)
        ps = params(a.nngen, spec)
        W = os.path.join(d, 'w.safetensors')
        write_st(W, weights(ps))
        text = open(spec).read()
        target_int = 'cross_entropy' in text
        variants = {'a': ['--inference', '--batch', '8'],
                    'b': ['--inference', '--batch', '8', '--weights', W],
                    'c': ['--batch', '8', '--weights', W],
                    'f': ['--batch', '8'],
                    'e': ['--batch', '64'],
                    'd': ['--inference', '--batch', '1']}
        srcs = []
        ok = True
        for v, opts in sorted(variants.items()):
            out = os.path.join(d, v + '.c')
            p = run([a.nngen, spec, '--name', v, '-o', out] + opts)
            if p.returncode != 0:
                report(False, '%s: nngen %s: %s' % (name, ' '.join(opts), p.stderr))
                ok = False
            srcs.append(out)
        if not ok:
            continue
        # the compiled-in file is the same from run to run
        os.makedirs(os.path.join(d, 'again'))
        again = os.path.join(d, 'again', 'b.c')
        run([a.nngen, spec, '--name', 'b', '-o', again] + variants['b'])
        report(open(again, 'rb').read() == open(os.path.join(d, 'b.c'), 'rb').read(),
               '%s: --weights output byte-identical from run to run' % name)
        exe = os.path.join(d, 'bake')
        cmd = ([a.cc] + STRICT + a.cflag + ['-I', d, '-I', a.include,
               '-DTARGET_INT=%d' % target_int, os.path.join(HERE, 'bake_driver.c')] + srcs +
               [a.rt_lib] + a.lib + ['-lm', '-o', exe])
        p = run(cmd)
        if p.returncode != 0:
            report(False, '%s: compile: %s\n%s' % (name, ' '.join(cmd), p.stderr))
            continue
        report(True, '%s: six variants compile into one program under %s' % (name, ' '.join(STRICT)))
        p = run([exe, W, os.path.join(d, 'w2.safetensors')])
        sys.stdout.write(''.join('  %s: %s\n' % (name, l) for l in p.stdout.splitlines()))
        report(p.returncode == 0 and 'FAIL' not in p.stdout,
               '%s: the driver\'s checks (exit %d)%s' % (name, p.returncode, p.stderr and ': ' + p.stderr))

        # the compiler refuses bad weight files, located at the file, and writes nothing
        keys = [k for k, _ in ps]
        floats = [k for k, sh in ps if not k.endswith('num_batches_tracked')]
        bad = {'missing': (weights(ps, skip=keys[-1]), 'missing'),
               'shape': (weights(ps, reshape=floats[0]), 'shape'),
               'unknown': (weights(ps, extra=True), 'unknown')}
        for what, (ents, word) in sorted(bad.items()):
            B = os.path.join(d, 'bad-%s.safetensors' % what)
            write_st(B, ents)
            out = os.path.join(d, 'bad.c')
            p = run([a.nngen, spec, '-o', out, '--weights', B])
            first = p.stderr.splitlines()[0] if p.stderr else ''
            report(p.returncode == 1 and first.startswith(B + ': error: ') and word in first
                   and not os.path.exists(out) and not os.path.exists(os.path.join(d, 'bad.h')),
                   '%s: a weights file with a %s key/shape is refused (%s)' % (name, what, first))
        T = os.path.join(d, 'torch.safetensors')
        with open(T, 'wb') as f:  # the first bytes of a torch.save zip
            f.write(b'PK\x03\x04' + b'\x00' * 26 + b'archive/data.pkl' + b'\x00' * 64)
        p = run([a.nngen, spec, '-o', os.path.join(d, 'bad.c'), '--weights', T])
        report(p.returncode == 1 and 'torch.save' in p.stderr,
               '%s: a torch.save file is named as such (%s)' % (name, p.stderr.splitlines()[:1]))
        p = run([a.nngen, spec, '-o', os.path.join(d, 'bad.c'), '--weights', os.path.join(d, 'nonexistent')])
        report(p.returncode == 3 and 'cannot read the weights file' in p.stderr,
               '%s: a missing weights file: exit 3 (%s)' % (name, p.stderr.strip()))
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print('files kept in %s' % tmp)
    print('%d failure(s)' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
