#!/usr/bin/python3
"""`nngen --dot` (Graphviz picture of a network).

usage: test_dot.py --nngen NNGEN [--dot DOT] SPEC|DIR ...

For every spec (a directory means all of its **/*.yaml), one line per check
(PASS|FAIL|SKIP SPEC: CHECK[: why]):

  dot          `nngen --dot SPEC` exits 0, writes nothing to stderr, and a
               second run prints the same bytes
  render       `dot -Tpng` (Graphviz) renders it without a message on stderr
               (except the note that a huge graph is scaled down) into a
               non-empty PNG
  structure    the text parses (a small DOT reader below): one declaration
               per node, every edge between declared nodes, the edges form
               one chain input -> ... -> output (the forward order), every
               edge is labelled with a shape [b, ...], every cluster is a
               subgraph cluster_... with a label; for tied.yaml: exactly one
               node for the shared Linear(8, 8) with two incoming edges
  vs torch     (when /usr/bin/python3 has torch) against the model built by
               tests/torch/nnspec.py: one node per distinct layer object and
               one cluster per distinct Sequential; the chain visits the
               layers in the order of their forward calls, the same node for
               the same object; each node shows the layer's torch print form
               and its parameter shapes; each edge carries the shape of the
               activation going into the next call (forward hooks), the last
               one the output's

Final line "N passed, N failed[, N skipped]"; exit 1 if anything failed.
Without Graphviz's dot: one line and exit 77 (meson: skipped), or exit 1
when NNGEN_REQUIRE_GRAPHVIZ=1.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'torch'))
from harness import Result  # noqa: E402  (plain Python: no torch needed)

try:
    import torch
    import nnspec
except ImportError:
    torch = None
    nnspec = None




class DotError(Exception):
    pass


# --------------------------------------------------------------------------
# A reader for the DOT that nngen writes (a subset of the language: quoted
# strings and plain ids, attribute lists, node/edge/attribute statements,
# nested subgraphs; // comments).

_TOKEN = re.compile(r'\s+|//[^\n]*|"(?:[^"\\]|\\.)*"|->|[{}\[\]=;,]|[A-Za-z0-9_.#]+', re.S)


def tokenize(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise DotError('cannot read the DOT text at %r' % text[pos:pos + 30])
        t = m.group(0)
        pos = m.end()
        if t.isspace() or t.startswith('//'):
            continue
        if t.startswith('"'):
            out.append(('str', t[1:-1].replace('\\"', '"')))
        elif t in ('->', '{', '}', '[', ']', '=', ';', ','):
            out.append(('op', t))
        else:
            out.append(('id', t))
    return out


class Graph(object):
    def __init__(self):
        self.name = None
        self.nodes = {}       # id -> attrs
        self.node_order = []
        self.node_cluster = {}  # id -> innermost cluster id or None
        self.edges = []       # (tail, head, attrs)
        self.clusters = {}    # id -> {'label': ..., 'parent': ..., 'attrs': {...}}


def parse_dot(text):
    toks = tokenize(text)
    g = Graph()
    i = [0]

    def peek(k=0):
        return toks[i[0] + k] if i[0] + k < len(toks) else ('eof', None)

    def take(kind=None, value=None):
        t = peek()
        if (kind and t[0] != kind) or (value and t[1] != value):
            raise DotError('expected %s, got %r' % (value or kind, t))
        i[0] += 1
        return t

    def attrs():
        a = {}
        take('op', '[')
        while peek() != ('op', ']'):
            k = take()[1]
            take('op', '=')
            a[k] = take()[1]
            if peek() == ('op', ','):
                take()
        take('op', ']')
        return a

    def body(cluster):
        take('op', '{')
        while peek() != ('op', '}'):
            t = peek()
            if t == ('id', 'subgraph'):
                take()
                cid = take()[1]
                if not cid.startswith('cluster_'):
                    raise DotError('subgraph %s is not a cluster' % cid)
                if cid in g.clusters:
                    raise DotError('cluster %s declared twice' % cid)
                g.clusters[cid] = {'label': None, 'parent': cluster, 'attrs': {}}
                body(cid)
            elif t[1] in ('graph', 'node', 'edge') and peek(1) == ('op', '['):
                take()
                attrs()
            elif peek(1) == ('op', '='):
                k = take()[1]
                take()
                v = take()[1]
                if cluster is not None:
                    g.clusters[cluster]['attrs'][k] = v
                    if k == 'label':
                        g.clusters[cluster]['label'] = v
            elif peek(1) == ('op', '->'):
                a = take()[1]
                take()
                b = take()[1]
                g.edges.append((a, b, attrs() if peek() == ('op', '[') else {}))
            else:
                n = take()[1]
                if n in g.nodes:
                    raise DotError('node %s declared twice' % n)
                g.nodes[n] = attrs() if peek() == ('op', '[') else {}
                g.node_order.append(n)
                g.node_cluster[n] = cluster
            if peek() == ('op', ';'):
                take()
        take('op', '}')

    take('id', 'digraph')
    g.name = take()[1]
    body(None)
    if peek()[0] != 'eof':
        raise DotError('text after the graph: %r' % (peek(),))
    return g


def label_lines(s):
    """The lines of a DOT label: \\n, \\l, \\r end a line, \\\\ is a backslash."""
    lines, cur, k = [], [], 0
    while k < len(s):
        c = s[k]
        if c == '\\' and k + 1 < len(s):
            d = s[k + 1]
            k += 2
            if d in 'nlr':
                lines.append(''.join(cur))
                cur = []
            elif d == '\\':
                cur.append('\\')
            else:
                cur.append(c + d)
            continue
        cur.append(c)
        k += 1
    if cur or not lines:
        lines.append(''.join(cur))
    return lines


SHAPE_RE = re.compile(r'^\[\d+(, \d+)*\]$')


def layer_nodes(g):
    return [n for n in g.node_order if n not in ('input', 'output')
            and g.nodes[n].get('shape') not in ('plaintext', 'circle')]


def sum_nodes(g):
    """The "+" nodes of residual sums."""
    return [n for n in g.node_order if g.nodes[n].get('shape') == 'circle']


def check_structure(g, label):
    """Messages for what is wrong with the graph g (empty if nothing)."""
    msgs = []
    for a, b, _ in g.edges:
        for n in (a, b):
            if n not in g.nodes:
                msgs.append('edge %s -> %s: %s is not declared' % (a, b, n))
    if not g.edges:
        return msgs + ['no edges']
    if g.edges[0][0] != 'input' or g.edges[-1][1] != 'output':
        msgs.append('the edges do not run from input to output')
    # a dataflow graph: every edge leaves the input or a node that an earlier
    # edge reached; every layer and sum node is reached
    reached = {'input'}
    for a, b, _ in g.edges:
        if a not in reached:
            msgs.append('edge %s -> %s leaves a node no earlier edge reached' % (a, b))
            break
        reached.add(b)
    for n in layer_nodes(g) + sum_nodes(g):
        if n not in reached:
            msgs.append('node %s is never reached by an edge' % n)
    for n in sum_nodes(g):
        if sum(1 for _, b, _ in g.edges if b == n) % 2:
            msgs.append('sum node %s: not two incoming edges per use' % n)
    for a, b, at in g.edges:
        first = label_lines(at.get('label', ''))[0]
        if not SHAPE_RE.match(first):
            msgs.append('edge %s -> %s: label %r does not start with a shape' % (a, b, first))
    for cid, c in g.clusters.items():
        if not c['label']:
            msgs.append('cluster %s has no label' % cid)
    for n in layer_nodes(g):
        lines = label_lines(g.nodes[n].get('label', ''))
        if len(lines) < 2 or not re.match(r'^[A-Za-z][A-Za-z0-9]*\(.*\)$', lines[1]):
            msgs.append('node %s: label %r has no print form on its second line' % (n, lines))
    if os.path.basename(label) == 'tied.yaml':
        lin = [n for n in layer_nodes(g) if 'Linear(in_features=8, out_features=8, bias=True)'
               in label_lines(g.nodes[n]['label'])]
        if len(lin) != 1:
            msgs.append('tied: %d nodes for the shared Linear(8, 8), want exactly 1' % len(lin))
        else:
            inc = [a for a, b, _ in g.edges if b == lin[0]]
            if len(inc) != 2:
                msgs.append('tied: the shared Linear has %d incoming edges, want 2 (one per '
                            'use)' % len(inc))
    return msgs


def check_vs_torch(g, path):
    """Messages comparing g with the torch model of the spec."""
    built = nnspec.build(path, seed=0, allow_unsupported_init=True)
    model = built.model
    msgs = []
    calls = []          # (module, input shape) in forward order
    hooks = []
    leaves = []
    seen = set()
    for _, m in model.named_modules():     # distinct objects, canonical order
        if id(m) in seen:
            continue
        seen.add(id(m))
        if len(m._modules) == 0 and not isinstance(m, torch.nn.Sequential):
            leaves.append(m)
            hooks.append(m.register_forward_pre_hook(
                lambda mod, inp: calls.append((mod, list(inp[0].shape)))))
    seqs = set(id(m) for _, m in model.named_modules()
               if isinstance(m, torch.nn.Sequential) or m._get_name() == 'Residual')
    sums = []           # residual calls: each is a sum with two inputs
    for _, m in model.named_modules():
        if m._get_name() == 'Residual':
            hooks.append(m.register_forward_hook(lambda mod, inp, out: sums.append(mod)))
    with torch.no_grad():
        y = model(torch.zeros(built.input_shape))
    for h in hooks:
        h.remove()
    nodes = layer_nodes(g)
    if len(nodes) != len(leaves):
        msgs.append('%d layer nodes, torch has %d distinct layers' % (len(nodes), len(leaves)))
    if len(g.clusters) != len(seqs):
        msgs.append('%d clusters, torch has %d distinct Sequentials and Residuals'
                    % (len(g.clusters), len(seqs)))
    if len(g.edges) != len(calls) + 2 * len(sums) + 1:
        return msgs + ['%d edges, torch makes %d layer calls and %d residual sums (two '
                       'inputs each; +1 to the output)' % (len(g.edges), len(calls), len(sums))]
    circles = set(sum_nodes(g))
    layer_edges = [e for e in g.edges[:-1] if e[1] not in circles]
    node_of = {}
    for k, (m, shape) in enumerate(calls):
        tail, head, at = layer_edges[k]
        if node_of.setdefault(id(m), head) != head:
            msgs.append('call %d (%s) goes to node %s, an earlier call of the same module to %s'
                        % (k, m, head, node_of[id(m)]))
        lines = label_lines(g.nodes[head].get('label', ''))
        if repr(m) not in lines:
            msgs.append('node %s: %r lacks the print form %r' % (head, lines, repr(m)))
        for pn, p in m.named_parameters(recurse=False):
            want = '%s [%s]' % (pn, ', '.join(str(s) for s in p.shape))
            if want not in lines:
                msgs.append('node %s: no %r in %r' % (head, want, lines))
        first = label_lines(at.get('label', ''))[0]
        if first != str(shape):
            msgs.append('edge %d (%s -> %s): shape %s, torch %s' % (k, tail, head, first, shape))
    if len(set(node_of.values())) != len(node_of):
        msgs.append('two torch modules share one node')
    last = label_lines(g.edges[-1][2].get('label', ''))[0]
    if last != str(list(y.shape)):
        msgs.append('output edge: %s, torch %s' % (last, list(y.shape)))
    return msgs


def run(cmd, stdin=None, timeout=120):
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def check_spec(args, path, label, res):
    outs = []
    for _ in range(2):
        rc, out, err = run([args.nngen, '--dot', path])
        if rc != 0 or err:
            res.fail(label, 'dot', 'nngen --dot exit %d: %s' % (rc, err.decode('utf-8',
                                                                               'replace')))
            return
        outs.append(out)
    if outs[0] != outs[1]:
        res.fail(label, 'dot', 'two runs differ')
    elif not outs[0]:
        res.fail(label, 'dot', 'empty output')
    else:
        res.ok(label, 'dot')
    text = outs[0]

    rc, png, err = run([args.dot, '-Tpng'], stdin=text)
    # a huge network is scaled down, with a note: not a problem of the text
    err = b''.join(l for l in err.splitlines(True) if b'too large for cairo' not in l)
    if rc != 0 or err:
        res.fail(label, 'render', 'dot -Tpng exit %d: %s' % (rc, err.decode('utf-8', 'replace')))
    elif not png.startswith(b'\x89PNG\r\n\x1a\n') or len(png) < 100:
        res.fail(label, 'render', 'not a PNG (%d bytes)' % len(png))
    else:
        res.ok(label, 'render', '%d bytes' % len(png))

    try:
        g = parse_dot(text.decode('utf-8'))
    except (DotError, UnicodeDecodeError) as e:
        res.fail(label, 'structure', e)
        return
    msgs = check_structure(g, label)
    if msgs:
        res.fail(label, 'structure', '\n'.join(msgs[:6]))
    else:
        res.ok(label, 'structure', '%d nodes, %d clusters, %d edges'
               % (len(layer_nodes(g)), len(g.clusters), len(g.edges)))

    if torch is None:
        res.skip(label, 'vs torch', 'torch is not importable by %s' % sys.executable)
        return
    try:
        msgs = check_vs_torch(g, path)
    except nnspec.NNSpecError as e:
        res.skip(label, 'vs torch', 'nnspec cannot build it: %s' % e)
        return
    except Exception as e:  # noqa: nnspec may not take every valid spec
        res.skip(label, 'vs torch', 'nnspec cannot build it: %s: %s' % (type(e).__name__, e))
        return
    if msgs:
        res.fail(label, 'vs torch', '\n'.join(msgs[:6]))
    else:
        res.ok(label, 'vs torch')


def collect(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, f) for f in sorted(files) if f.endswith('.yaml')]
            base = os.path.basename(os.path.normpath(p))
            out += [(f, os.path.join(base, os.path.relpath(f, p))) for f in sorted(found)]
        else:
            out.append((p, os.path.basename(p)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--dot', default=None, help="Graphviz's dot (default: from PATH)")
    ap.add_argument('specs', nargs='+')
    args = ap.parse_args()
    args.dot = args.dot or shutil.which('dot')
    if not args.dot or not os.path.exists(args.dot):
        req = os.environ.get('NNGEN_REQUIRE_GRAPHVIZ') == '1'
        print("dot: %s: Graphviz's dot is not installed (Debian: apt-get install graphviz)"
              % ('FAIL (NNGEN_REQUIRE_GRAPHVIZ=1)' if req else 'skipped'))
        return 1 if req else 77
    if torch is not None:
        torch.set_num_threads(1)
    res = Result()
    specs = collect(args.specs)
    if not specs:
        res.fail('-', 'specs', 'no spec found in %s' % ' '.join(args.specs))
    for path, label in specs:
        check_spec(args, path, label, res)
    status = res.summary()
    sys.stdout.flush()
    return status


if __name__ == '__main__':
    sys.exit(main())
