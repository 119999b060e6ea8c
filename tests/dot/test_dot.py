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
               node for the shared Linear(8, 8) with two incoming edges.
               Tie edges (SPEC 1.2.5: dashed, label "tied: PATH" or
               "tied: PATH.T") are not dataflow: they are left out of the
               checks above and checked instead: dashed exactly when the
               label says "tied: ", between two declared layer nodes, the
               user's box saying `weight = PATH` (and no `weight [shape]`)
               or, transposed, a TiedLinear print form ending in
               `weight=PATH.T`; exactly one tie edge per such box and no
               other; tie edges exactly when the spec ties something, a
               transposed one exactly when the spec has {transpose: true}
  vs torch     (when /usr/bin/python3 has torch) against the model built by
               tests/torch/nnspec.py: one node per distinct layer object and
               one cluster per distinct Sequential; the chain visits the
               layers in the order of their forward calls, the same node for
               the same object; each node shows the layer's torch print form
               and its parameter shapes; each edge carries the shape of the
               activation going into the next call (forward hooks), the last
               one the output's (an input_dtype: int32 model gets int64
               indices in [0, num) of its embedding); each layer whose weight
               is tied ({tied: PATH}, or a TiedLinear) has exactly one tie
               edge, from the node of the layer that declares the tensor (the
               one whose weight is not itself tied) to its own node,
               labelled "tied: NAME" (".T" when transposed), NAME the
               tensor's canonical name (SPEC 1.3: the first in
               named_parameters; PATH unless PATH is itself an alias), a
               {tied: PATH} box saying `weight = NAME`; no other tie edge

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
TIE_PREFIX = 'tied: '


def is_tie_edge(e):
    """A tie edge (SPEC 1.2.5): dashed, its label "tied: PATH[.T]"; not dataflow."""
    at = e[2]
    return at.get('style') == 'dashed' and at.get('label', '').startswith(TIE_PREFIX)


def flow_edges(g):
    return [e for e in g.edges if not is_tie_edge(e)]


def tie_edges(g):
    return [e for e in g.edges if is_tie_edge(e)]


def tie_of_label(label):
    """'tied: encoder.weight.T' -> ('encoder.weight', True)."""
    path = label[len(TIE_PREFIX):]
    if path.endswith('.T'):
        return path[:-2], True
    return path, False


def spec_ties(obj, acc):
    """Every {tied: PATH[, transpose: B]} weight the spec text names (model,
    shared and blocks): a set of (PATH, transpose)."""
    if isinstance(obj, dict):
        w = obj.get('weight')
        if isinstance(w, dict) and isinstance(w.get('tied'), str):
            acc.add((w['tied'], bool(w.get('transpose', False))))
        for v in obj.values():
            spec_ties(v, acc)
    elif isinstance(obj, list):
        for v in obj:
            spec_ties(v, acc)
    return acc


def node_ties(g, n):
    """What the box of layer node n says it borrows: a list of (PATH, transpose)
    from its `weight = PATH` lines and a TiedLinear print form's `weight=PATH.T`."""
    lines = label_lines(g.nodes[n].get('label', ''))
    out = []
    for l in lines[2:]:
        if l.startswith('weight = '):
            out.append((l[len('weight = '):], False))
    if len(lines) >= 2:
        m = re.match(r'^TiedLinear\(.*, weight=(.+)\.T\)$', lines[1])
        if m:
            out.append((m.group(1), True))
    return out


def layer_nodes(g):
    return [n for n in g.node_order if n not in ('input', 'output')
            and g.nodes[n].get('shape') not in ('plaintext', 'circle')]


def sum_nodes(g):
    """The "+" nodes of residual sums."""
    return [n for n in g.node_order if g.nodes[n].get('shape') == 'circle']


def check_tie_edges(g, path):
    """Messages for the tie edges of g (SPEC 1.2.5), checked against the
    boxes they join and the spec at `path` (does it tie anything).  The
    owner and the tensor's name are checked against torch (check_vs_torch):
    a tie edge names the tensor by its canonical name (SPEC 1.3), which for a
    tie to a tied weight (tied: 2.weight, 2 itself tied to 0.weight) is not
    the PATH the spec wrote."""
    msgs = []
    for a, b, at in g.edges:
        lab = at.get('label', '')
        if lab.startswith(TIE_PREFIX) != (at.get('style') == 'dashed'):
            msgs.append('edge %s -> %s [label=%r, style=%r]: a tie edge is dashed and its '
                        'label starts with %r, a dataflow edge neither'
                        % (a, b, lab, at.get('style'), TIE_PREFIX))
    layers = set(layer_nodes(g))
    per_user = {}
    for a, b, at in tie_edges(g):
        tie = tie_of_label(at['label'])
        for n in (a, b):
            if n not in layers:
                msgs.append('tie edge %s -> %s (%s): %s is not a layer node'
                            % (a, b, at['label'], n))
        if a == b:
            msgs.append('tie edge %s -> %s (%s): a loop' % (a, b, at['label']))
        per_user.setdefault(b, []).append(tie)
    for n in layer_nodes(g):
        want = node_ties(g, n)
        have = per_user.get(n, [])
        # `weight = PATH` names the tensor as the edge does; a TiedLinear's
        # print form shows the spec's PATH (torch's print), so only .T is compared
        key = lambda ts: sorted((p if not t else '', t) for p, t in ts)
        if key(want) != key(have):
            msgs.append('node %s borrows %s (its box), but its tie edges say %s'
                        % (n, want or 'nothing', have or 'nothing'))
        lines = label_lines(g.nodes[n].get('label', ''))
        for t in want:
            if not t[1] and any(l.startswith('weight [') for l in lines[2:]):
                msgs.append('node %s: `weight = %s` and also its own `weight [shape]` (%r)'
                            % (n, t[0], lines))
    try:
        import yaml
    except ImportError:
        return msgs + ['cannot compare the tie edges with the spec: no yaml module in %s'
                       % sys.executable]
    with open(path) as f:
        spec = yaml.safe_load(f)
    named = spec_ties(spec, set())
    drawn = tie_edges(g)
    if drawn and not named:
        msgs.append('%d tie edges, but the spec ties nothing' % len(drawn))
    # a tie inside a block that is never used draws nothing
    if named and not drawn and not (isinstance(spec, dict) and spec.get('blocks')):
        msgs.append('the spec ties %s, but there is no tie edge' % sorted(named))
    if any(t for _, t in named) != any(tie_of_label(at['label'])[1] for _, _, at in drawn) \
            and not (isinstance(spec, dict) and spec.get('blocks')):
        msgs.append('the spec %s a transposed tie, the tie edges %s'
                    % ('has' if any(t for _, t in named) else 'has no',
                       'too' if not any(t for _, t in named) else 'do not draw one'))
    return msgs


def check_structure(g, label, path):
    """Messages for what is wrong with the graph g (empty if nothing)."""
    msgs = []
    for a, b, _ in g.edges:
        for n in (a, b):
            if n not in g.nodes:
                msgs.append('edge %s -> %s: %s is not declared' % (a, b, n))
    msgs += check_tie_edges(g, path)
    edges = flow_edges(g)
    if not edges:
        return msgs + ['no edges']
    if edges[0][0] != 'input' or edges[-1][1] != 'output':
        msgs.append('the edges do not run from input to output')
    # a dataflow graph: every edge leaves the input or a node that an earlier
    # edge reached; every layer and sum node is reached
    reached = {'input'}
    for a, b, _ in edges:
        if a not in reached:
            msgs.append('edge %s -> %s leaves a node no earlier edge reached' % (a, b))
            break
        reached.add(b)
    for n in layer_nodes(g) + sum_nodes(g):
        if n not in reached:
            msgs.append('node %s is never reached by an edge' % n)
    for n in sum_nodes(g):
        if sum(1 for _, b, _ in edges if b == n) % 2:
            msgs.append('sum node %s: not two incoming edges per use' % n)
    for a, b, at in edges:
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
            inc = [a for a, b, _ in edges if b == lin[0]]
            if len(inc) != 2:
                msgs.append('tied: the shared Linear has %d incoming edges, want 2 (one per '
                            'use)' % len(inc))
    return msgs


def check_vs_torch(g, built):
    """Messages comparing g with the torch model of the spec (nnspec.build's)."""
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
        y = model(model_input(built))
    for h in hooks:
        h.remove()
    nodes = layer_nodes(g)
    if len(nodes) != len(leaves):
        msgs.append('%d layer nodes, torch has %d distinct layers' % (len(nodes), len(leaves)))
    if len(g.clusters) != len(seqs):
        msgs.append('%d clusters, torch has %d distinct Sequentials and Residuals'
                    % (len(g.clusters), len(seqs)))
    edges = flow_edges(g)
    if len(edges) != len(calls) + 2 * len(sums) + 1:
        return msgs + ['%d dataflow edges, torch makes %d layer calls and %d residual sums (two '
                       'inputs each; +1 to the output)' % (len(edges), len(calls), len(sums))]
    circles = set(sum_nodes(g))
    layer_edges = [e for e in edges[:-1] if e[1] not in circles]
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
            if pn == 'weight' and getattr(m, 'nnspec_tied', None) is not None:
                # {tied: PATH}: the box names the tensor it borrows, not a
                # shape (`weight = NAME`: check_ties_vs_torch)
                if want in lines:
                    msgs.append('node %s: %r, but this weight is %s\'s (%r)'
                                % (head, want, m.nnspec_tied, lines))
                continue
            if want not in lines:
                msgs.append('node %s: no %r in %r' % (head, want, lines))
        first = label_lines(at.get('label', ''))[0]
        if first != str(shape):
            msgs.append('edge %d (%s -> %s): shape %s, torch %s' % (k, tail, head, first, shape))
    if len(set(node_of.values())) != len(node_of):
        msgs.append('two torch modules share one node')
    last = label_lines(edges[-1][2].get('label', ''))[0]
    if last != str(list(y.shape)):
        msgs.append('output edge: %s, torch %s' % (last, list(y.shape)))
    msgs += check_ties_vs_torch(g, model, leaves, node_of)
    return msgs


def model_input(built):
    """An input for the torch model: zeros, or (input_dtype: int32) int64
    indices in [0, num) of the embedding(s), drawn from a fixed generator."""
    if built.input_dtype != 'int32':
        return torch.zeros(built.input_shape)
    nums = [m.num_embeddings for m in built.model.modules()
            if isinstance(m, torch.nn.Embedding)]
    if not nums:
        raise ValueError('input_dtype: int32 but the torch model has no embedding')
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, min(nums), tuple(built.input_shape), generator=gen,
                         dtype=torch.int64)


def check_ties_vs_torch(g, model, leaves, node_of):
    """The tie edges against nnspec's model: one per layer object whose weight
    is tied ({tied: PATH} or a TiedLinear), from the node of the layer that
    declares the tensor (the one whose weight is not itself tied) to the
    user's node, labelled with the tensor's canonical name (the first in
    named_parameters, SPEC 1.3), ".T" when transposed; the box of a
    {tied: PATH} user says `weight = that name`."""
    msgs = []
    canon = {}
    for n, p in model.named_parameters():
        canon.setdefault(id(p), n)
    want = []
    for m in leaves:
        tied = getattr(m, 'nnspec_tied', None)
        if tied is None:
            continue
        if isinstance(m, nnspec.TiedLinear):
            t, suffix = m.tied_weight, '.T'
        else:
            t, suffix = m.weight, ''
        decl = [l for l in leaves if getattr(l, 'nnspec_tied', None) is None
                and isinstance(getattr(l, 'weight', None), torch.Tensor) and l.weight is t]
        if len(decl) != 1:
            msgs.append('torch: %d layers declare the weight %s uses, want 1' % (len(decl), tied))
            continue
        label = TIE_PREFIX + canon.get(id(t), '?') + suffix
        if id(decl[0]) not in node_of or id(m) not in node_of:
            msgs.append('%s: the owner %s or the user %s has no node (never called)'
                        % (label, decl[0], m))
            continue
        want.append((node_of[id(decl[0])], node_of[id(m)], label))
        if not suffix:
            lines = label_lines(g.nodes[node_of[id(m)]].get('label', ''))
            if 'weight = ' + canon.get(id(t), '?') not in lines:
                msgs.append('node %s: no %r in %r' % (node_of[id(m)], 'weight = '
                                                      + canon.get(id(t), '?'), lines))
    have = [(a, b, at['label']) for a, b, at in tie_edges(g)]
    if sorted(want) != sorted(have):
        msgs.append('tie edges %s, torch ties %s (declaring layer -> user)'
                    % (sorted(have) or 'none', sorted(want) or 'none'))
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
    msgs = check_structure(g, label, path)
    if msgs:
        res.fail(label, 'structure', '\n'.join(msgs[:6]))
    else:
        res.ok(label, 'structure', '%d nodes, %d clusters, %d edges'
               % (len(layer_nodes(g)), len(g.clusters), len(g.edges)))

    if torch is None:
        res.skip(label, 'vs torch', 'torch is not importable by %s' % sys.executable)
        return
    try:
        built = nnspec.build(path, seed=0, allow_unsupported_init=True)
    except nnspec.NNSpecError as e:
        res.skip(label, 'vs torch', 'nnspec cannot build it: %s' % e)
        return
    except Exception as e:  # noqa: nnspec may not take every valid spec
        res.skip(label, 'vs torch', 'nnspec cannot build it: %s: %s' % (type(e).__name__, e))
        return
    try:
        msgs = check_vs_torch(g, built)
    except Exception as e:  # noqa: the model nnspec built must run: a failure here is ours
        res.fail(label, 'vs torch', 'running the torch model: %s: %s' % (type(e).__name__, e))
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
