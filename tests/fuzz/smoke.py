#!/usr/bin/python3
"""Smoke test of a libFuzzer target (meson suite 'fuzz').

usage: smoke.py TARGET SECONDS DICT CORPUS...

Copies each CORPUS (a directory, or a glob such as DIR/*.safetensors) into a
fresh temporary directory (files of the second and later ones are prefixed
with their directory's name, so that names do not clash), never touching the
committed corpus, and runs

  TARGET -seed=1 -max_total_time=SECONDS -max_len=4096 -rss_limit_mb=2560
         -timeout=120 -dict=DICT -artifact_prefix=TMP/ -print_final_stats=1 TMP/corpus

in the foreground: any crash, leak, timeout, out-of-memory or contract
violation (the targets abort()) makes libFuzzer exit non-zero, and so this
test.  On failure the temporary directory, with the input that failed, is
kept and printed; the reproducer is `TARGET FILE`.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    target, seconds, dict_path = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    tmp = tempfile.mkdtemp(prefix='nngen-fuzz-smoke-')
    corpus = os.path.join(tmp, 'corpus')
    os.mkdir(corpus)
    n = 0
    for i, arg in enumerate(sys.argv[4:]):
        paths = sorted(glob.glob(arg)) if '*' in arg else sorted(
            os.path.join(arg, f) for f in os.listdir(arg))
        for p in paths:
            if not os.path.isfile(p):
                continue
            name = os.path.basename(p)
            if i:
                name = os.path.basename(os.path.dirname(p)) + '-' + name
            shutil.copyfile(p, os.path.join(corpus, name))
            n += 1
    argv = [target, '-seed=1', '-max_total_time=' + seconds, '-max_len=4096',
            '-rss_limit_mb=2560', '-timeout=120', '-dict=' + dict_path,
            '-artifact_prefix=' + tmp + '/', '-print_final_stats=1', corpus]
    print('%d seed files; running: %s' % (n, ' '.join(argv)), flush=True)
    rc = subprocess.call(argv, cwd=tmp)
    if rc != 0:
        found = [f for f in os.listdir(tmp) if f != 'corpus']
        print('FAIL: %s exited with %d; kept %s (%s)' % (
            os.path.basename(target), rc, tmp, ', '.join(found) or 'no artifact'))
        sys.exit(1)
    shutil.rmtree(tmp)
    print('%s: no crash, leak, timeout (120 s an input) or contract violation in %s s' % (
        os.path.basename(target), seconds))


if __name__ == '__main__':
    main()
