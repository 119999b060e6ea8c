#!/usr/bin/python3
"""Bad-input corpus for nngen (docs/language.md, Errors).

Every tests/bad/NAME.yaml starts with a line

    # expect: LINE:COL: FRAGMENT
    # expect exit N: LINE:COL: FRAGMENT     (when the exit status is not 1)

stating where the offending node is (the libyaml mark, 1-based) and a piece
of the message.  For each file this runs

    nngen --check FILE            and            nngen FILE -o TMP/out.c

and checks: the exit status; that the first line of stderr is exactly
`FILE:LINE:COL: error: ...` and contains FRAGMENT; no crash (signal), no
timeout, no 'internal error'; nothing on stdout; and in compile mode that
no output file and no temporary file is left behind.  Then a few I/O
cases: a missing spec, a directory as the spec, an unwritable output path,
and an existing output file that a failing run must not clobber.

Warnings (tests/bad/warn/NAME.yaml, valid specs) start with

    # warn: LINE:COL: FRAGMENT      one warning there, whose message holds FRAGMENT
    # warn: none ...                no warning at all (the negative cases)

and must, in --check, compile and --emit pytorch mode: exit 0; have
standard error exactly that one line `FILE:LINE:COL: warning: ...` (or
nothing), the same in every mode; write nothing on stdout; and write
their outputs.

Usage: run_bad.py NNGEN [DIR]      (DIR defaults to this script's directory)
Pure Python, no third-party modules.
"""
import concurrent.futures
import glob
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile

# A run may take 10 s of CPU (RLIMIT_CPU: a loop that never ends is killed
# there, whatever the machine's load) and 60 s of wall time (a run that
# blocks): the wall clock alone made a slow, correct run under ASan on a
# loaded machine look like a hang.
CPU_LIMIT, TIMEOUT = 10, 60
EXPECT = re.compile(r'^# expect(?: exit (\d+))?: (\d+):(\d+): (.+)$')
WARN = re.compile(r'^# warn: (?:(\d+):(\d+): (.+)|none\b.*)$')

GOOD_SPEC = """nngen: 1
name: good
input: [4]
model:
  - {linear: 8}
  - relu
  - {linear: 1}
"""


def limit_cpu():
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT + 5))


def run(argv, cwd=None):
    """(returncode, stdout, stderr) or (None, '', 'timeout')."""
    try:
        r = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, cwd=cwd,
                           preexec_fn=limit_cpu)
    except subprocess.TimeoutExpired:
        return None, '', 'timeout after %d s' % TIMEOUT
    if r.returncode == -signal.SIGXCPU or r.returncode == -signal.SIGKILL:
        return None, '', 'more than %d s of CPU time (killed)' % CPU_LIMIT
    return (r.returncode, r.stdout.decode('utf-8', 'replace'),
            r.stderr.decode('utf-8', 'replace'))


def common_problems(rc, out, err, want_rc):
    """Problems every failing run can have, whatever the spec."""
    if rc is None:
        return ['hangs: ' + err]
    probs = []
    if rc < 0:
        probs.append('crashed with signal %d' % -rc)
    elif rc != want_rc:
        probs.append('exit status %d, expected %d' % (rc, want_rc))
    if 'internal error' in err:
        probs.append('internal error: ' + err.strip().splitlines()[0])
    if 'AddressSanitizer' in err or 'LeakSanitizer' in err or 'runtime error:' in err:
        probs.append('sanitizer report')
    return probs


def check_case(nngen, path):
    """A list of problems with one bad spec (empty when it passes)."""
    with open(path, 'rb') as f:
        first = f.readline().decode('utf-8', 'replace').rstrip('\r\n')
    m = EXPECT.match(first)
    if not m:
        return ['first line is not "# expect: LINE:COL: FRAGMENT"']
    want_rc = int(m.group(1) or 1)
    line, col, frag = int(m.group(2)), int(m.group(3)), m.group(4)
    want_head = '%s:%d:%d: error: ' % (path, line, col)
    shape = re.compile(r'^%s:\d+:\d+: error: \S' % re.escape(path))

    probs = []
    rc, out, err = run([nngen, '--check', path])
    probs += common_problems(rc, out, err, want_rc)
    if rc is not None:
        head = err.splitlines()[0] if err else ''
        if not shape.match(head):
            probs.append('first stderr line is not "PATH:LINE:COL: error: ...": %r' % head)
        elif not head.startswith(want_head):
            got = head[len(path) + 1:].split(': error:')[0]
            probs.append('reported at %s, expected %d:%d: %s' % (got, line, col, head))
        elif frag not in head:
            probs.append('message lacks %r: %s' % (frag, head))
        if out:
            probs.append('wrote to stdout in --check mode')

    # compile mode: same error, nothing left in the output directory
    with tempfile.TemporaryDirectory(prefix='nngen-bad-') as tmp:
        rc2, out2, err2 = run([nngen, path, '-o', os.path.join(tmp, 'out.c')])
        probs += ['compile mode: ' + p for p in common_problems(rc2, out2, err2, want_rc)]
        if rc2 is not None and rc is not None:
            h1 = err.splitlines()[0] if err else ''
            h2 = err2.splitlines()[0] if err2 else ''
            if h1 != h2:
                probs.append('compile mode reports differently: %r' % h2)
        left = os.listdir(tmp)
        if left:
            probs.append('compile mode left files behind: %s' % ', '.join(sorted(left)))
    return probs


def check_warning(nngen, path):
    """A list of problems with one spec of warn/ (empty when it passes)."""
    with open(path, 'rb') as f:
        first = f.readline().decode('utf-8', 'replace').rstrip('\r\n')
    m = WARN.match(first)
    if not m:
        return ['first line is not "# warn: LINE:COL: FRAGMENT" or "# warn: none"']
    probs = []
    with tempfile.TemporaryDirectory(prefix='nngen-warn-') as tmp:
        runs = [('--check', [nngen, '--check', path], []),
                ('compile', [nngen, path, '-o', os.path.join(tmp, 'out.c')], ['out.c', 'out.h']),
                ('--emit pytorch', [nngen, '--emit', 'pytorch', path, '-o',
                                    os.path.join(tmp, 'out.py')], ['out.py'])]
        errs = []
        for mode, argv, made in runs:
            rc, out, err = run(argv)
            probs += ['%s: %s' % (mode, p) for p in common_problems(rc, out, err, 0)]
            if rc is None:
                continue
            errs.append(err)
            if out:
                probs.append('%s: wrote to stdout' % mode)
            have = sorted(os.listdir(tmp))
            if have != made:
                probs.append('%s: files %s, expected %s' % (mode, have, made))
            for f in have:
                os.unlink(os.path.join(tmp, f))
        if len(set(errs)) > 1:
            probs.append('the modes warn differently: %r' % errs)
        err = errs[0] if errs else ''
        if m.group(1) is None:
            if err:
                probs.append('expected no warning, got %r' % err)
            return probs
        want = '%s:%s:%s: warning: ' % (path, m.group(1), m.group(2))
        lines = err.splitlines()
        if len(lines) != 1 or not err.endswith('\n'):
            probs.append('expected one warning line on stderr, got %r' % err)
        elif not lines[0].startswith(want):
            probs.append('expected %r..., got %r' % (want, lines[0]))
        elif m.group(3) not in lines[0]:
            probs.append('warning lacks %r: %s' % (m.group(3), lines[0]))
    return probs


def io_cases(nngen):
    """(name, problems) for the I/O cases of SPEC section 5."""
    results = []
    with tempfile.TemporaryDirectory(prefix='nngen-io-') as tmp:
        good = os.path.join(tmp, 'good.yaml')
        with open(good, 'w') as f:
            f.write(GOOD_SPEC)
        bad = os.path.join(tmp, 'bad.yaml')
        with open(bad, 'w') as f:
            f.write('nngen: 1\ninput: [4]\nmodel:\n  - {lienar: 8}\n')

        # a missing spec
        missing = os.path.join(tmp, 'no-such-spec.yaml')
        rc, out, err = run([nngen, '--check', missing])
        p = common_problems(rc, out, err, 3)
        if rc is not None and not err.startswith(missing + ': error: '):
            p.append('message does not start with the path: %r' % err.splitlines()[:1])
        results.append(('io: missing spec file (exit 3)', p))

        # a directory as the spec
        rc, out, err = run([nngen, '--check', tmp])
        p = common_problems(rc, out, err, 3)
        if rc is not None and not err.startswith(tmp + ': error: '):
            p.append('message does not start with the path: %r' % err.splitlines()[:1])
        results.append(('io: a directory as the spec (exit 3)', p))

        # a spec that is not readable is the same as a missing one for
        # root; skip the permission case and use an unreadable path instead
        rc, out, err = run([nngen, '--check', os.path.join(good, 'x.yaml')])
        results.append(('io: a path through a file (exit 3)', common_problems(rc, out, err, 3)))

        # an unwritable output path
        rc, out, err = run([nngen, good, '-o', '/nonexistent/dir/x.c'])
        p = common_problems(rc, out, err, 3)
        if os.path.exists('/nonexistent'):
            p.append('/nonexistent was created')
        results.append(('io: -o /nonexistent/dir/x.c (exit 3)', p))

        # an output directory that is a file
        rc, out, err = run([nngen, good, '-o', os.path.join(good, 'x.c')])
        results.append(('io: -o through a file (exit 3)', common_problems(rc, out, err, 3)))

        # a good spec compiles and leaves exactly out.c and out.h
        outdir = os.path.join(tmp, 'ok')
        os.mkdir(outdir)
        rc, out, err = run([nngen, good, '-o', os.path.join(outdir, 'out.c')])
        p = common_problems(rc, out, err, 0)
        if sorted(os.listdir(outdir)) != ['out.c', 'out.h']:
            p.append('files after a good run: %s' % sorted(os.listdir(outdir)))
        results.append(('io: a good spec writes out.c and out.h only', p))

        # a failing run does not clobber existing outputs nor leave temporaries
        keep = os.path.join(tmp, 'keep')
        os.mkdir(keep)
        outc, outh = os.path.join(keep, 'out.c'), os.path.join(keep, 'out.h')
        with open(outc, 'w') as f:
            f.write('/* precious c */\n')
        with open(outh, 'w') as f:
            f.write('/* precious h */\n')
        rc, out, err = run([nngen, bad, '-o', outc])
        p = common_problems(rc, out, err, 1)
        with open(outc) as f:
            if f.read() != '/* precious c */\n':
                p.append('out.c was clobbered')
        with open(outh) as f:
            if f.read() != '/* precious h */\n':
                p.append('out.h was clobbered')
        left = sorted(set(os.listdir(keep)) - {'out.c', 'out.h'})
        if left:
            p.append('temporary files left: %s' % ', '.join(left))
        results.append(('io: a bad spec leaves an existing out.c/out.h untouched', p))

        # the same when the output cannot be written: the .c exists, the
        # header goes to a missing directory
        rc, out, err = run([nngen, good, '-o', outc, '--header', '/nonexistent/dir/x.h'])
        p = common_problems(rc, out, err, 3)
        with open(outc) as f:
            if f.read() != '/* precious c */\n':
                p.append('out.c was replaced although the header could not be written')
        left = sorted(set(os.listdir(keep)) - {'out.c', 'out.h'})
        if left:
            p.append('temporary files left: %s' % ', '.join(left))
        results.append(('io: unwritable --header leaves out.c untouched (exit 3)', p))
    return results


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: run_bad.py NNGEN [DIR]')
    nngen = os.path.abspath(sys.argv[1])
    d = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
    # paths relative to the corpus directory keep messages short and exact
    os.chdir(d)
    files = sorted(glob.glob('*.yaml'))
    if not files:
        sys.exit('no *.yaml in %s' % d)
    jobs = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        results = list(zip(files, ex.map(lambda f: check_case(nngen, f), files)))
    warns = sorted(glob.glob(os.path.join('warn', '*.yaml')))
    if not warns:
        sys.exit('no warn/*.yaml in %s' % d)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        results += list(zip(warns, ex.map(lambda f: check_warning(nngen, f), warns)))
    results += io_cases(nngen)
    passed = failed = 0
    for name, probs in results:
        if probs:
            failed += 1
            print('FAIL %s' % name)
            for p in probs:
                print('     %s' % p)
        else:
            passed += 1
            print('ok   %s' % name)
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
