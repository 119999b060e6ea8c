#!/usr/bin/python3
"""The command line's --batch, --name and --weights (meson suite 'compiler').

usage: test_cli.py NNGEN SPEC

Each bad value is a usage error (exit 2, "nngen: error: ..." naming the
option and the value, no output file); good values change what the header
says and nothing else of the spec; --weights outside compiling is refused.
Exit 1 on any failure.
"""
import os
import re
import subprocess
import sys
import tempfile

failures = 0


def check(ok, what):
    global failures
    print('%s %s' % ('PASS' if ok else 'FAIL', what))
    if not ok:
        failures += 1


def run(args):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def main():
    nngen, spec = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix='nngen-cli-')
    out = os.path.join(tmp, 'o.c')
    bad = [(['--batch', '0'], "--batch must be a whole number from 1 to 2147483647, got '0'"),
           (['--batch', '-3'], "got '-3'"), (['--batch=abc'], "got 'abc'"),
           (['--batch', '2147483648'], "got '2147483648'"), (['--batch', '4x'], "got '4x'"),
           (['--batch='], "got ''"), (['--batch'], '--batch needs a value'),
           (['--name', '1net'], "--name '1net' must be a C identifier"),
           (['--name', 'a' * 65], 'at most 64 characters'),
           (['--name', 'int'], "--name 'int' cannot be used: it is a C or C++ keyword"),
           (['--name', 'nn_model'], "--name 'nn_model' cannot be used"),
           (['--name'], '--name needs a value'), (['--weights'], '--weights needs a value'),
           (['--bach', '3'], "unknown option '--bach' (did you mean '--batch'?)")]
    for opts, msg in bad:
        p = run([nngen, spec, '-o', out] + opts)
        check(p.returncode == 2 and p.stderr.startswith('nngen: error: ') and msg in p.stderr
              and not os.path.exists(out),
              'nngen %s: exit 2, "%s" (%d: %s)' % (' '.join(opts)[:40], msg, p.returncode,
                                                 p.stderr.strip().splitlines()[:1]))
    p = run([nngen, '--print', spec, '--weights', 'w.safetensors'])
    check(p.returncode == 2 and '--weights only applies when compiling' in p.stderr,
          '--weights with --print is a usage error')
    p = run([nngen, spec, '-o', out, '--batch', '7', '--name', 'other_net'])
    h = open(os.path.join(tmp, 'o.h')).read() if p.returncode == 0 else ''
    check(p.returncode == 0 and '#define other_net_BATCH 7\n' in h and
          'other_net *other_net_create(void);' in h and '#ifndef NNGEN_other_net_H' in h,
          '--batch 7 --name other_net: the header says other_net_BATCH 7')
    plain = run([nngen, '--params', spec]).stdout
    p = run([nngen, '--params', spec, '--batch=3', '--name=zz'])
    check(p.returncode == 0 and p.stdout == plain, '--params: the names do not depend on them')
    p = run([nngen, '--emit', 'pytorch', spec, '-o', os.path.join(tmp, 'n.py'), '--batch', '5'])
    py = open(os.path.join(tmp, 'n.py')).read() if p.returncode == 0 else ''
    check(p.returncode == 0 and re.search(r'^BATCH = 5$', py, re.M) is not None,
          '--emit pytorch --batch 5: BATCH = 5')
    print('%d failure(s)' % failures)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
