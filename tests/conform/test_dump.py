#!/usr/bin/python3
"""Unit test of the dump format on both sides: the C parser of the
conformance driver (dump.h, through the dumpcat helper) and nnspec's Python
writer/parser.  Needs no torch.

usage: test_dump.py PATH/TO/dumpcat
"""
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
import nnspec  # noqa: E402

failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print('FAIL: ' + what)


def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]


def run(dumpcat, text, *extra):
    with tempfile.NamedTemporaryFile('wb', suffix='.dump', delete=False) as f:
        f.write(text if isinstance(text, bytes) else text.encode())
        path = f.name
    try:
        r = subprocess.run([dumpcat, path] + list(extra), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        return r.returncode, r.stdout, r.stderr.replace(path, 'FILE')
    finally:
        os.unlink(path)


def main():
    if len(sys.argv) != 2:
        print('usage: test_dump.py DUMPCAT')
        return 2
    dumpcat = sys.argv[1]
    rnd = random.Random(7)

    # 1. round trip: Python writer -> C parser -> C printf("%a") == Python text
    vals = [0.0, -0.0, 1.0, -1.5, 0.1, 3.4028234663852886e38, 1.401298464324817e-45,
            1.1754943508222875e-38, -2.5e-40, float('inf'), float('-inf')]
    for _ in range(3000):
        e = rnd.randint(-150, 128)
        vals.append(f32(rnd.uniform(-1, 1) * 2.0 ** e))
    vals = [f32(v) for v in vals]
    text = nnspec.dump_text([('0.block1.2.weight', vals), ('grad.x', None), ('empty', []),
                             ('b', [0.5])])
    rc, out, err = run(dumpcat, text)
    check(rc == 0 and out == text, 'round trip through the C parser (rc=%d %s)' % (rc, err))
    back = nnspec.parse_dump(out)
    check([struct.pack('<f', v) for v in back[0][1]] == [struct.pack('<f', v) for v in vals],
          'Python parse of C output is bit-identical')
    check(back[1] == ('grad.x', None) and back[2] == ('empty', []), 'none and empty tensors')

    # NaN survives (sign may vary, the value must stay NaN)
    rc, out, err = run(dumpcat, 'n 2\nnan\n-nan\n')
    check(rc == 0 and all(v != v for v in nnspec.parse_dump(out)[0][1]), 'nan parses')

    # decimal input is accepted and printed as hex
    rc, out, _ = run(dumpcat, 'x 2\n1.5\n-2e-3\n')
    check(rc == 0 and out == 'x 2\n0x1.8p+0\n%s\n' % nnspec.format_float(f32(-2e-3)),
          'decimal floats accepted: %r' % out)
    check(run(dumpcat, '')[0] == 0, 'empty file = no tensors')

    # 2. malformed inputs: the C parser and the Python parser both reject them
    bad = [
        ('x 2\n0x1p+0\n', 'file ends'),
        ('x 1\n0x1p+0', 'final newline'),
        ('x 1\n0x1p+0 \n', 'expected one float'),
        ('x 1\n 0x1p+0\n', 'expected one float'),
        ('x 1\nhello\n', 'expected one float'),
        ('x 1\n0x1p+0x\n', 'expected one float'),
        ('x 1\n\n', 'expected one float'),
        ('x 1\n1e999\n', 'expected one float'),
        ('x\n0x1p+0\n', 'NAME NUMEL'),
        ('x -1\n', 'element count'),
        ('x 01\n0x1p+0\n', 'element count'),
        ('x 99999999999999999999999\n', 'element count'),
        ('x 1 2\n0x1p+0\n', 'exactly one space'),
        (' x 1\n0x1p+0\n', 'NAME NUMEL'),
        ('x  1\n0x1p+0\n', 'exactly one space'),
        ('x\t1\n0x1p+0\n', 'NAME NUMEL'),
        ('x 1\r\n0x1p+0\n', 'exactly one space'),
        ('x 1\n0x1p+0\nx 1\n0x1p+0\n', 'duplicate'),
        (b'x 1\n0x1p+0\x00\n', 'NUL'),
    ]
    for t, msg in bad:
        rc, out, err = run(dumpcat, t)
        check(rc == 1 and msg in err and err.startswith('dumpcat: FILE:'),
              'C rejects %r with %r (rc=%d, stderr=%r)' % (t, msg, rc, err))
        try:
            nnspec.parse_dump(t.decode('latin-1') if isinstance(t, bytes) else t)
            ok = '\x00' in str(t)   # Python does not look for NUL bytes
        except nnspec.DumpError:
            ok = True
        check(ok, 'Python rejects %r' % (t,))

    # 3. the single-tensor loader (x, dy, target files)
    good = 'x 2\n0x1p+0\n0x1p+1\n'
    check(run(dumpcat, good, 'x', '2')[0] == 0, 'single tensor ok')
    for t, name, n, msg in [(good, 'dy', '2', 'exactly one tensor named "dy"'),
                            (good, 'x', '3', 'expected 3'),
                            (good + 'y 0\n', 'x', '2', 'exactly one tensor'),
                            ('x none\n', 'x', '0', 'exactly one tensor'),
                            ('', 'x', '0', 'exactly one tensor')]:
        rc, out, err = run(dumpcat, t, name, n)
        check(rc == 1 and msg in err, 'single: %r %s %s -> %r' % (t, name, n, err))

    print('%d passed, %d failed' % (checks - failures, failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
