#!/usr/bin/python3
"""Keeps docs/ true to the tools it documents.

usage: check_docs.py --nngen NNGEN [--spec SPEC] SOURCE_ROOT

Checks, each printing PASS or FAIL lines (exit status 1 on any FAIL):
  help     every option that `nngen --help` prints appears in docs/cli.md
  layers   `nngen --list-layers` succeeds and prints at least one line
           NAME<TAB>TorchClass<TAB>MAIN<TAB>ARGS; every NAME is documented in
           docs/language.md (a table row whose first cell has `NAME`, or a
           heading with `NAME` and the text under it) together with each of
           its argument names (ARGS entries "arg:type[=default]"), as `arg...`
  header   every function and macro the generated header declares for SPEC
           (default specs/train/classifier.yaml, a spec with train:), with
           the spec's name replaced by P_, appears in docs/api.md (functions
           without the prefix, the user's {custom: NAME} initializers, are
           not the API and are skipped)
  rt       every function declared in include/nngen/rt.h (and rt-mpi.h) appears in
           docs/api.md
  examples every ```yaml block of docs/language.md (and of cli.md, api.md)
           whose first line is `nngen: 1` passes `nngen --check`, and
           language.md has at least one
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

failures = 0


def report(ok, check, what):
    global failures
    print('%s: %s: %s' % ('PASS' if ok else 'FAIL', check, what))
    if not ok:
        failures += 1


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def run(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120)
    except OSError as e:
        return 127, '', str(e)
    return p.returncode, p.stdout, p.stderr


def word_in(word, text):
    """word as a whole token (letters, digits, '_' and '-' delimit it)."""
    return re.search(r'(?<![\w-])' + re.escape(word) + r'(?![\w-])', text) is not None


# ---- help ------------------------------------------------------------------

def check_help(nngen, cli):
    rc, out, err = run([nngen, '--help'])
    if rc != 0 or not out.strip():
        report(False, 'help', '`nngen --help` exited %d: %s' % (rc, err.strip()))
        return
    opts = []
    for m in re.finditer(r'(?<![\w-])(--?[A-Za-z][\w-]*)', out):
        if m.group(1) not in opts:
            opts.append(m.group(1))
    if not opts:
        report(False, 'help', '`nngen --help` prints no option')
        return
    for o in opts:
        report(word_in(o, cli), 'help', 'option %s in docs/cli.md' % o)


# ---- layers ----------------------------------------------------------------

def layer_sections(lang, name):
    """The texts that document layer `name`: table rows whose first cell
    names it in backquotes, and headings that do, with their section."""
    tick = '`%s`' % name
    found = []
    lines = lang.split('\n')
    in_code = False
    for i, line in enumerate(lines):
        if line.startswith('```'):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.startswith('|'):
            cells = line.strip().strip('|').split('|')
            if cells and tick in cells[0]:
                found.append(line)
        elif re.match(r'#+ ', line) and tick in line:
            level = len(line) - len(line.lstrip('#'))
            body = [line]
            for nxt in lines[i + 1:]:
                m = re.match(r'(#+) ', nxt)
                if m and len(m.group(1)) <= level:
                    break
                body.append(nxt)
            found.append('\n'.join(body))
    return found


def check_layers(nngen, lang):
    rc, out, err = run([nngen, '--list-layers'])
    if rc != 0:
        report(False, 'layers', '`nngen --list-layers` exited %d: %s' % (rc, err.strip()))
        return
    lines = [l for l in out.split('\n') if l != '']
    if not lines:
        report(False, 'layers', '`nngen --list-layers` printed nothing')
        return
    for line in lines:
        fields = line.split('\t')
        if len(fields) != 4 or not fields[0] or not fields[1] or not fields[2]:
            report(False, 'layers', 'malformed --list-layers line %r (want '
                   'NAME<TAB>TorchClass<TAB>MAIN<TAB>ARGS)' % line)
            continue
        name, _cls, main, args = fields
        argnames = [a.split(':', 1)[0] for a in args.split()]
        bad = [a for a in args.split() if ':' not in a or not a.split(':', 1)[0]]
        if bad:
            report(False, 'layers', '%s: malformed ARGS entries %s' % (name, ' '.join(bad)))
        if main != '-' and main not in argnames:
            report(False, 'layers', '%s: MAIN %r is not one of ARGS %r' % (name, main, args))
        sections = layer_sections(lang, name)
        if not sections:
            report(False, 'layers', 'layer `%s` has no table row or heading in '
                   'docs/language.md' % name)
            continue
        spans = [c for s in sections for c in re.findall(r'`([^`\n]+)`', s)]
        missing = [a for a in argnames
                   if not any(re.match(re.escape(a) + r'(?!\w)', c) for c in spans)]
        report(not missing, 'layers', 'layer `%s` documented with its arguments%s' %
               (name, ' (missing: %s)' % ', '.join(missing) if missing else
                (' ' + ', '.join(argnames) if argnames else '')))


# ---- header and rt.h ----------------------------------------------------------

def c_declarations(text):
    """Names of the functions and macros declared in C header text."""
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = text.replace('\\\n', ' ')
    macros = []
    code = []
    for line in text.split('\n'):
        s = line.strip()
        if s.startswith('#'):
            m = re.match(r'#\s*define\s+([A-Za-z_]\w*)', s)
            if m:
                macros.append(m.group(1))
            continue
        code.append(line)
    code = re.sub(r'extern\s*"C"\s*\{', ' ', '\n'.join(code))
    funcs = []
    depth = 0
    decl = []
    for ch in code:
        if ch == '{':
            depth += 1
        elif ch == '}':
            depth = max(depth - 1, 0)
            if depth == 0:
                decl = []
        elif ch == ';' and depth == 0:
            d = ''.join(decl).strip()
            decl = []
            if not d or re.match(r'typedef\b', d):
                continue
            m = re.match(r'[^(]*?\b([A-Za-z_]\w*)\s*\(', d)
            if m and m.group(1) not in funcs:
                funcs.append(m.group(1))
        elif depth == 0:
            decl.append(ch)
    return funcs, macros


def check_header(nngen, root, spec, api):
    spec_path = spec if os.path.isabs(spec) else os.path.join(root, spec)
    m = None
    try:
        m = re.search(r'^name:\s*([A-Za-z_]\w*)\s*$', read(spec_path), re.M)
    except OSError as e:
        report(False, 'header', 'cannot read %s: %s' % (spec_path, e))
        return
    prefix = m.group(1) if m else os.path.splitext(os.path.basename(spec_path))[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'x.c')
        rc, _o, err = run([nngen, spec_path, '-o', out])
        if rc != 0:
            report(False, 'header', '`nngen %s -o x.c` exited %d: %s' % (spec, rc, err.strip()))
            return
        funcs, macros = c_declarations(read(os.path.join(tmp, 'x.h')))
    own = [f for f in funcs if f.startswith(prefix + '_')]
    if not own:
        report(False, 'header', 'no %s_* function found in the header of %s' % (prefix, spec))
        return
    for f in own:
        p = 'P_' + f[len(prefix) + 1:]
        report(word_in(p, api), 'header', 'function %s (%s) in docs/api.md' % (p, f))
    for mac in macros:
        if mac.startswith(prefix + '_'):
            p = 'P_' + mac[len(prefix) + 1:]
            report(word_in(p, api), 'header', 'macro %s (%s) in docs/api.md' % (p, mac))


def check_rt(root, api):
    path = os.path.join(root, 'include', 'nngen', 'rt.h')
    try:
        funcs, _macros = c_declarations(read(path))
    except OSError as e:
        report(False, 'rt', 'cannot read %s: %s' % (path, e))
        return
    if not funcs:
        report(False, 'rt', 'no function found in include/nngen/rt.h')
        return
    for f in funcs:
        report(word_in(f, api), 'rt', 'function %s in docs/api.md' % f)
    # the MPI part (nngen-rt-mpi) likewise
    path = os.path.join(root, 'include', 'nngen', 'rt-mpi.h')
    funcs, _macros = c_declarations(read(path))
    report(len(funcs) > 0, 'rt', 'functions found in include/nngen/rt-mpi.h')
    for f in funcs:
        report(word_in(f, api), 'rt', 'function %s (rt-mpi.h) in docs/api.md' % f)


# ---- examples ----------------------------------------------------------------

def yaml_blocks(text):
    blocks, cur, lang = [], None, None
    for line in text.split('\n'):
        if cur is None:
            m = re.match(r'```(\w*)\s*$', line)
            if m:
                cur, lang = [], m.group(1)
        elif line.startswith('```'):
            if lang == 'yaml':
                blocks.append('\n'.join(cur) + '\n')
            cur = None
        else:
            cur.append(line)
    return blocks


def complete_specs(text):
    return [b for b in yaml_blocks(text) if re.match(r'nngen:\s*1\s*(#.*)?$', b.split('\n', 1)[0])]


def check_examples(nngen, texts):
    if not complete_specs(texts['language.md']):
        report(False, 'examples', 'docs/language.md has no ```yaml block starting with `nngen: 1`')
    full = [(doc, b) for doc in ('language.md', 'cli.md', 'api.md')
            for b in complete_specs(texts[doc])]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (doc, b) in enumerate(full):
            path = os.path.join(tmp, 'docs_example_%d.yaml' % (i + 1))
            with open(path, 'w', encoding='utf-8') as f:
                f.write(b)
            rc, _o, err = run([nngen, '--check', path])
            first = [l for l in b.split('\n') if l.startswith('name:')]
            what = 'docs/%s example %d (%s) passes nngen --check' % (
                doc, i + 1, first[0] if first else 'no name')
            if rc != 0:
                what += ': exit %d: %s' % (rc, err.strip().split('\n')[0])
            report(rc == 0, 'examples', what)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--spec', default=os.path.join('specs', 'train', 'classifier.yaml'))
    ap.add_argument('root')
    a = ap.parse_args()
    docs = os.path.join(a.root, 'docs')
    texts = {}
    for name in ('cli.md', 'language.md', 'api.md', 'README.md'):
        try:
            texts[name] = read(os.path.join(docs, name))
        except OSError as e:
            report(False, 'files', 'docs/%s: %s' % (name, e))
            texts[name] = ''
    check_help(a.nngen, texts['cli.md'])
    check_layers(a.nngen, texts['language.md'])
    check_header(a.nngen, a.root, a.spec, texts['api.md'])
    check_rt(a.root, texts['api.md'])
    check_examples(a.nngen, texts)
    print('%d failure(s)' % failures if failures else 'all checks passed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
