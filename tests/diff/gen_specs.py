#!/usr/bin/python3
"""Random VALID nngen specs, from the grammar of docs/language.md.

Every spec this module makes is meant to be accepted by `nngen --check` and
by the oracle (tests/torch/nnspec.py); one that is refused is a generator
bug or an nngen bug (decide by docs/language.md).  What it generates:

  - input shapes of rank 1 to 3 (written `[a, b]` or, for rank 1, sometimes
    `input: 4`), batch 1 to 8 (sometimes left to its default 1), small sizes;
    about one network in five is "big": its linear layers cross the BLAS
    threshold of compiler/ops/linear.c (rows * in * out >= 1024
    multiply-adds) so that both code paths of a linear are exercised;
  - modules nested up to 4 levels: list sequentials, `{sequential: [..]}`,
    named sequentials `{sequential: {NAME: m}}` with random but legal child
    names (odd ones too: digits, `-`, `%s`, `{i}`, non-ASCII, quotes,
    backslashes, layer and keyword names), empty sequentials (`[]`,
    `{sequential: }`);
  - every layer of `nngen --list-layers` (read from the compiler, so new
    layers are picked up): linear (out, in, bias in every written form),
    leaky_relu (slope: ints, negatives, zero), softmax / log_softmax (dim
    anywhere in -rank .. rank-1, the batch dimension included), flatten, and
    the layers without arguments (taken to be shape-preserving); on
    [N, C, H, W] (image networks: input [C, H, W], C <= 8, H, W <= 12, batch
    <= 6, often with a flatten + linear classifier head) conv2d (padding
    ints, pairs, same, valid; dilation; groups), max_pool2d / avg_pool2d
    (padding <= kernel/2, ceil_mode, count_include_pad), adaptive_avg_pool2d,
    batch_norm2d; batch_norm1d on [N, C] and [N, C, L] (>= 3 values per
    channel on every checked batch); layer_norm over a suffix of the
    example shape; dropout with p in [0, 1).  Output shapes as torch
    computes them (layer_shape).  A layer with arguments that this file does
    not know is skipped with a note on stderr;
  - residuals, `{residual: [...]}` whose body keeps the shape and
    `{residual: {body:, shortcut:}}` with branches of one output shape (no
    flatten inside; a tail of adaptive pool, 1x1 conv or linear maps a body
    back), also as block, repeat and shared bodies;
  - `blocks:` (block factories used several times, wherever their shapes
    allow; blocks whose body is another block; blocks using blocks; now and
    then a block the model never uses), `repeat` with name templates
    (`{i}`, `b{i}`, `{i}{i}`, a plain name when times is 1), `shared:`
    modules used through `{ref: }` in several places, only where the
    incoming shape is the one of the first use (a shared module may ref the
    shared modules declared above it; shape-preserving shared modules are
    used back to back, the tied-weights pattern);
  - `init:` rules on module mappings, on `shared:` declarations and at the
    top level, with `at:` paths (through refs too), `layer: T` filters
    (conv2d, linear, the norms), several parameters per rule in either order, every
    initializer the oracle supports (default, zeros, ones, constant,
    uniform, normal, xavier_uniform / xavier_normal, kaiming_uniform /
    kaiming_normal with a / mode / nonlinearity, trunc_normal, each in its
    bare, list and mapping forms) and the zero_abs_below modifier; no
    mixture or custom (the oracle cannot draw them);
  - `frozen: true` (and now and then `frozen: false`) subtrees, also on
    shared declarations;
  - an optional `train:` (about 40 %): mse, or cross_entropy with a
    [batch, classes] output (a flatten is appended when needed); sgd with
    momentum / dampening / nesterov / weight_decay (nesterov only with
    momentum > 0 and dampening 0) or adam with betas / eps / weight_decay /
    amsgrad; always at least one trainable parameter.

About one network in ten also has child names with whitespace (`a b`,
` `, tabs, `\r`, `\v`, `\f`; newlines with known_bugs): the dump format of
tests/conform/driver.c ("NAME NUMEL", one space) cannot carry them, so
run_diff.py checks params and print on such a spec and the other checks on a
copy with those names replaced (has_ws_names, without_ws_names).  Not
generated: child names that are attributes of torch's nn.Module
(`forward`, `training`, ...: add_module refuses them, so the oracle cannot
build the network; nngen accepts them, as docs/language.md says it does).

Python API:  layers = list_layers(NNGEN)
             spec = generate(random.Random(seed), layers)   # a dict
             text = to_yaml(spec, random.Random(seed))        # YAML text
Command line:
    gen_specs.py --nngen NNGEN [--count N] [--seed S] [--out DIR] [--no-check]
                 [--known-bugs]
writes N specs (default 20) from seed S (default 1) into DIR (default: a
new temporary directory) and runs `nngen --check` on each; exit status 1
if nngen refuses any.
"""
import argparse
import copy
import json
import os
import random
import re
import subprocess
import sys
import tempfile

# layers whose arguments this generator knows how to make valid
KNOWN_ARGS = {
    'linear': ('out', 'in', 'bias', 'weight'),  # weight: ties are not generated
    'leaky_relu': ('negative_slope',),
    'softmax': ('dim',),
    'log_softmax': ('dim',),
    'batch_norm1d': ('eps', 'momentum', 'affine', 'track_running_stats', 'num_features'),
    'batch_norm2d': ('eps', 'momentum', 'affine', 'track_running_stats', 'num_features'),
    'layer_norm': ('shape', 'eps', 'elementwise_affine'),
    'dropout': ('p',),
    'conv2d': ('out', 'kernel', 'stride', 'padding', 'dilation', 'groups', 'bias', 'in'),
    'max_pool2d': ('kernel', 'stride', 'padding', 'dilation', 'ceil_mode'),
    'avg_pool2d': ('kernel', 'stride', 'padding', 'ceil_mode', 'count_include_pad'),
    'adaptive_avg_pool2d': ('out',),
    # recurrent layers on [N, T, F] (never 'in': inferred)
    'rnn': ('hidden', 'layers', 'bias', 'bidirectional', 'dropout', 'nonlinearity', 'in'),
    'lstm': ('hidden', 'layers', 'bias', 'bidirectional', 'dropout', 'in'),
    'gru': ('hidden', 'layers', 'bias', 'bidirectional', 'dropout', 'in'),
}
RECURRENT = ('rnn', 'lstm', 'gru')
# layers that take [N, C, H, W] only
IMAGE_LAYERS = ('conv2d', 'max_pool2d', 'avg_pool2d', 'adaptive_avg_pool2d', 'batch_norm2d')
BATCH_NORMS = ('batch_norm1d', 'batch_norm2d')
# sizes of image networks (kept small: each network compiles and runs in well
# under a second)
MAX_CHANNELS = 8
MAX_HW = 12
SHAPE_CHANGING_NOARG = ('flatten', 'last_step')
RESERVED = ('sequential', 'repeat', 'ref', 'residual', 'init', 'frozen')

# odd but legal child names: non-empty, no '.', none of them an attribute of
# torch.nn.Sequential (add_module would refuse it), no whitespace (the dump
# format of the conformance driver cannot carry it)
ODD_NAMES = ['0', '7', '12', '007', '-', '+', '_', '__x', 'a-b', 'x:y', 'x#y', 'q"q',
             "it's", 'back\\slash', '()', '[x]', '{i}', '{x}', '%s', '%d%n', 'ü', 'Σx',
             '\U0001f600', 'relu', 'linear', 'sequential', 'repeat', 'ref', 'init', 'frozen',
             'weight', 'bias', 'true', 'null', 'nngen', 'model', 'MODEL', 'Linear', '1e3',
             '-1', 'x' * 24, 'a,b', '&a', '*a', '!t', '|', '>', '@', '`', "'", '?']
# names the conformance driver's dump format cannot carry (see run_diff.py)
WS_NAMES = [' ', 'a b', ' lead', 'trail ', 'two  sp', 'x\ty', '\t', 'c\rr', 'v\x0bx',
            'f\x0cx']
NEWLINE_NAMES = ['nl\nx', '\n', 'a\nb\nc']
WS_CHARS = ' \t\r\n\x0b\x0c'
PLAIN_NAMES = ['a', 'b', 'c', 'body', 'head', 'fc', 'act', 'enc', 'dec', 'blk', 'x1',
               'l_0', 'L', 'mid', 'out', 'in', 'tail', 'z9']
REPEAT_TEMPLATES = ['{i}', 'block{i}', 'l{i}', '{i}_x', 'r-{i}', '{i}{i}', 'ü{i}', '%{i}',
                    '{i}a{i}b']
REPEAT_SINGLE = ['only', 'one', '0', 'x-y', 'block']
INIT_NAMES = ('default', 'zeros', 'ones', 'constant', 'uniform', 'normal', 'xavier_uniform',
              'xavier_normal', 'kaiming_uniform', 'kaiming_normal', 'trunc_normal')
NONLINEARITIES = ('linear', 'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d',
                  'conv_transpose2d', 'conv_transpose3d', 'sigmoid', 'tanh', 'relu',
                  'leaky_relu', 'selu')
BLAS_MIN_MACS = 1024   # compiler/ops/linear.c

# Constructs that expose a known, reported nngen bug: not generated unless
# asked for (generate(..., known_bugs=True), run_diff.py --known-bugs), so
# that a batch finds what is new.  Each has a spec under specs/regress/.
# None open.  Fixed: 'adaptive_pool_upsample': an adaptive_avg_pool2d whose
# output is larger than its input made a memset size GCC 12 warned about
# under -Werror (specs/regress/adaptive_pool_upsample_memset.yaml);
# `{default: {}, zero_abs_below: t}` dropped the modifier
# (specs/regress/default_zero_abs_below.yaml, name 'default_zero_abs_below');
# a child name with a newline printed unlike torch's _addindent and drew as a
# label line break in --dot (specs/regress/print_newline_name.yaml, name
# 'newline_in_name').
KNOWN_BUGS = set()

_noted = set()


def note(msg):
    if msg not in _noted:
        _noted.add(msg)
        sys.stderr.write('gen_specs: note: %s\n' % msg)


# --------------------------------------------------------------------------
# the compiler's layers

def list_layers(nngen):
    """{name: (torch class, main or None, {arg: (type, default or None)})}
    from `nngen --list-layers`, in its order (dicts keep it)."""
    r = subprocess.run([nngen, '--list-layers'], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError('`%s --list-layers` failed (exit %d): %s'
                           % (nngen, r.returncode, r.stderr.decode('utf-8', 'replace')))
    layers = {}
    for line in r.stdout.decode('utf-8').splitlines():
        f = line.split('\t')
        if len(f) == 3:
            f.append('')
        if len(f) != 4 or not f[0]:
            raise RuntimeError('`%s --list-layers`: bad line %r' % (nngen, line))
        args = {}
        for a in f[3].split():
            m = re.match(r'^([a-z_][a-z0-9_]*):([a-z|]+)(?:=(\S+))?$', a)
            if not m:
                raise RuntimeError('`%s --list-layers`: bad argument %r' % (nngen, a))
            args[m.group(1)] = (m.group(2), m.group(3))
        layers[f[0]] = (f[1], None if f[2] == '-' else f[2], args)
    return layers


def usable_layers(layers):
    """The layers this generator can write: no arguments, or arguments it knows."""
    out = []
    for name, (_, _, args) in layers.items():
        if not args:
            out.append(name)
        elif name in KNOWN_ARGS and set(args) <= set(KNOWN_ARGS[name]):
            out.append(name)
        else:
            note('layer %s (arguments %s) is not generated: gen_specs.py does not know '
                 'how to make its arguments valid' % (name, ', '.join(sorted(args))))
    return out


# --------------------------------------------------------------------------
# a model of the spec's module tree: shapes (full, batch first), the module
# tree (for at: paths and for what an init rule matches), frozen flags

class Invalid(Exception):
    pass


class Node(object):
    __slots__ = ('kind', 'tname', 'children', 'params', 'ranks', 'frozen', 'in_shape', 'macs')

    def __init__(self, kind, tname=None):
        self.kind = kind          # 'seq' or 'layer'
        self.tname = tname
        self.children = []        # [(name, Node)]; a ref's Node is the shared one
        self.params = []          # a layer's parameters ('weight', 'bias')
        self.ranks = {}           # their ranks (xavier and kaiming need >= 2)
        self.frozen = False       # frozen: true written on this module
        self.in_shape = None
        self.macs = 0             # a linear's multiply-adds for the full batch


class Ctx(object):
    def __init__(self, layers):
        self.layers = layers
        self.blocks = {}          # name -> expr
        self.shared = {}          # name -> expr (declaration order)
        self.shared_in = {}
        self.shared_out = {}
        self.shared_node = {}


def type_key(expr, ctx):
    """(kind, key, value, meta) of a module expression."""
    if isinstance(expr, list):
        return 'seq', 'sequential', expr, {}
    if isinstance(expr, str):
        if expr in ctx.layers:
            return 'layer', expr, None, {}
        if expr in ctx.blocks:
            return 'block', expr, None, {}
        raise Invalid('unknown name %r' % expr)
    if isinstance(expr, dict):
        keys = [k for k in expr if k not in ('init', 'frozen')]
        if len(keys) != 1:
            raise Invalid('module mapping with type keys %r' % keys)
        k = keys[0]
        meta = {m: expr[m] for m in ('init', 'frozen') if m in expr}
        v = expr[k]
        if k == 'sequential':
            return 'seq', k, ([] if v is None else v), meta
        if k in ('repeat', 'ref'):
            return k, k, v, meta
        if k == 'residual':
            return ('res' if isinstance(v, list) else 'res2'), k, v, meta
        if k in ctx.layers:
            return 'layer', k, v, meta
        if k in ctx.blocks:
            return 'block', k, v, meta
        raise Invalid('unknown module type %r' % k)
    raise Invalid('not a module: %r' % (expr,))


def layer_args(tname, v, ctx):
    main = ctx.layers[tname][1]
    a = {}
    if isinstance(v, dict):
        a.update(v)
    elif v is not None:
        a[main] = v
    return a


def pair(v):
    """(a, b) of a pair argument: an int k is (k, k)"""
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def conv_size(size, k, s, p, d):
    """torch's conv output size along one dimension; p the total padding"""
    eff = d * (k - 1) + 1
    if eff > size + p:
        return 0
    return (size + p - eff) // s + 1


def pool_size(size, k, s, p, d, ceil):
    """torch 1.13's pooling_output_shape (aten/src/ATen/native/Pool.h): floor,
    or ceil whose last window must start inside the input or the left padding"""
    o = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= size + p:
        o -= 1
    return o


def layer_shape(tname, a, shape):
    if tname == 'linear':
        if 'in' in a and a['in'] != shape[-1]:
            raise Invalid('linear in %d, input %s' % (a['in'], shape))
        return shape[:-1] + [a['out']]
    if tname == 'flatten':
        n = 1
        for s in shape[1:]:
            n *= s
        return [shape[0], n]
    if tname == 'last_step':
        if len(shape) != 3:
            raise Invalid('last_step on %s' % (shape,))
        return [shape[0], shape[2]]
    if tname in RECURRENT:
        if len(shape) != 3:
            raise Invalid('%s on %s' % (tname, shape))
        a = a if isinstance(a, dict) else {'hidden': a}
        return [shape[0], shape[1], a['hidden'] * (2 if a.get('bidirectional') else 1)]
    if tname in ('softmax', 'log_softmax'):
        d = a.get('dim', 1)
        if not -len(shape) <= d < len(shape):
            raise Invalid('dim %d for %s' % (d, shape))
    if tname in IMAGE_LAYERS and len(shape) != 4:
        raise Invalid('%s on %s' % (tname, shape))
    if tname == 'conv2d':
        n, c, h, w = shape
        g = a.get('groups', 1)
        if a.get('in', c) != c or c % g or a['out'] % g:
            raise Invalid('conv2d %r on %s' % (a, shape))
        pad = a.get('padding', 0)
        out = [n, a['out']]
        for i, size in enumerate((h, w)):
            k, s, d = pair(a['kernel'])[i], pair(a.get('stride', 1))[i], \
                pair(a.get('dilation', 1))[i]
            if pad == 'same':
                if pair(a.get('stride', 1)) != (1, 1):
                    raise Invalid('padding same with a stride')
                p = d * (k - 1)
            else:
                p = 0 if pad == 'valid' else 2 * pair(pad)[i]
            o = conv_size(size, k, s, p, d)
            if o < 1:
                raise Invalid('conv2d %r on %s' % (a, shape))
            out.append(o)
        return out
    if tname in ('max_pool2d', 'avg_pool2d'):
        n, c, h, w = shape
        out = [n, c]
        for i, size in enumerate((h, w)):
            k = pair(a['kernel'])[i]
            s = pair(a['stride'])[i] if 'stride' in a else k
            p = pair(a.get('padding', 0))[i]
            d = pair(a.get('dilation', 1))[i]
            if 2 * p > k:
                raise Invalid('pool padding %d, kernel %d' % (p, k))
            o = pool_size(size, k, s, p, d, a.get('ceil_mode', False))
            if o < 1:
                raise Invalid('%s %r on %s' % (tname, a, shape))
            out.append(o)
        return out
    if tname == 'adaptive_avg_pool2d':
        return shape[:2] + list(pair(a['out']))
    if tname == 'batch_norm1d' and len(shape) not in (2, 3):
        raise Invalid('batch_norm1d on %s' % shape)
    if tname in BATCH_NORMS and a.get('num_features', shape[1]) != shape[1]:
        raise Invalid('num_features %r on %s' % (a, shape))
    if tname == 'layer_norm':
        ls = a['shape'] if isinstance(a['shape'], list) else [a['shape']]
        if len(ls) > len(shape) - 1 or shape[len(shape) - len(ls):] != ls:
            raise Invalid('layer_norm %r on %s' % (ls, shape))
    return list(shape)


def layer_params(tname, a):
    """[(parameter, rank)] of a layer, in registration order"""
    if tname == 'linear':
        return [('weight', 2)] + ([('bias', 1)] if a.get('bias', True) else [])
    if tname == 'conv2d':
        return [('weight', 4)] + ([('bias', 1)] if a.get('bias', True) else [])
    if tname in BATCH_NORMS:
        return [('weight', 1), ('bias', 1)] if a.get('affine', True) else []
    if tname == 'layer_norm':
        return [('weight', 1), ('bias', 1)] if a.get('elementwise_affine', True) else []
    if tname in RECURRENT:
        a = a if isinstance(a, dict) else {'hidden': a}
        out = []
        for k in range(a.get('layers', 1)):
            for suf in ([''] + (['_reverse'] if a.get('bidirectional') else [])):
                out += [('weight_ih_l%d%s' % (k, suf), 2), ('weight_hh_l%d%s' % (k, suf), 2)]
                if a.get('bias', True):
                    out += [('bias_ih_l%d%s' % (k, suf), 1), ('bias_hh_l%d%s' % (k, suf), 1)]
        return out
    return []


def bn_batch_ok(shape):
    """whether a batch norm at shape has at least 3 values per channel on
    every batch the checks run (the full batch B and, when B > 1, the first
    ceil(B / 2) rows): torch refuses one value per channel in training mode,
    and with two the normalized values are +-1 whatever the input, so that
    dx is an eps-sized residue of a cancellation (s3/n249: nngen's and
    torch's float32 roundings of it differ by 1e-3 of it, far more than
    torch's own rounding noise measures)"""
    b = shape[0]
    rows = b if b == 1 else (b + 1) // 2
    n = rows
    for d in shape[2:]:
        n *= d
    return n >= 3


def windows_hit_input(a, shape):
    """whether every window of a pool at shape holds an input element"""
    for i, size in enumerate(shape[2:]):
        k = pair(a['kernel'])[i]
        s = pair(a['stride'])[i] if 'stride' in a else k
        p = pair(a.get('padding', 0))[i]
        d = pair(a.get('dilation', 1))[i]
        for o in range(pool_size(size, k, s, p, d, a.get('ceil_mode', False))):
            if not any(0 <= o * s - p + j * d < size for j in range(k)):
                return False
    return True


def count_key(e, key):
    """how many mappings in expression e have the key"""
    if isinstance(e, list):
        return sum(count_key(x, key) for x in e)
    if isinstance(e, dict):
        return (key in e) + sum(count_key(x, key) for x in e.values())
    return 0


def repeat_names(v):
    tmpl = v.get('name', '{i}')
    return [tmpl.replace('{i}', str(i)) for i in range(v['times'])]


def plan(expr, shape, ctx, stack=()):
    """(Node, output shape) of expr at incoming full shape; Invalid if it does
    not fit (the rules of docs/language.md that this generator relies on)."""
    kind, key, v, meta = type_key(expr, ctx)
    if kind == 'seq':
        node = Node('seq')
        items = list(enumerate(v)) if isinstance(v, list) else list(v.items())
        for name, e in items:
            child, shape = plan(e, shape, ctx, stack)
            node.children.append((str(name), child))
    elif kind == 'res':
        node = Node('seq')
        out = shape
        for name, e in enumerate(v):
            child, out = plan(e, out, ctx, stack)
            node.children.append((str(name), child))
        if out != shape:
            raise Invalid('residual body gives %s for %s' % (out, shape))
    elif kind == 'res2':
        node = Node('seq')
        body, out = plan(v['body'], shape, ctx, stack)
        short, out2 = plan(v['shortcut'], shape, ctx, stack)
        if out != out2:
            raise Invalid('residual body %s, shortcut %s' % (out, out2))
        node.children = [('body', body), ('shortcut', short)]
        shape = out
    elif kind == 'repeat':
        node = Node('seq')
        for name in repeat_names(v):
            child, shape = plan(v['body'], shape, ctx, stack)
            node.children.append((name, child))
    elif kind == 'layer':
        a = layer_args(key, v, ctx)
        node = Node('layer', key)
        node.in_shape = list(shape)
        shape = layer_shape(key, a, shape)
        node.params = [p for p, _ in layer_params(key, a)]
        node.ranks = dict(layer_params(key, a))
        if key == 'linear':
            node.macs = node.in_shape[-1]       # rows * in * out
            for d in shape:
                node.macs *= d
    elif kind == 'block':
        if key in stack:
            raise Invalid('block cycle')
        node, shape = plan(ctx.blocks[key], shape, ctx, stack + (key,))
        if meta:   # the instance's own meta keys: a node of its own
            node = copy_node(node)
    else:  # ref
        if ctx.shared_in.get(v) != shape:
            raise Invalid('shared %s at %s, first used at %s' % (v, shape, ctx.shared_in.get(v)))
        return ctx.shared_node[v], list(ctx.shared_out[v])
    if meta.get('frozen') is True:
        node.frozen = True
    return node, shape


def is_ref(expr, ctx):
    """whether expr is a shared module itself: a ref, or a block whose body is
    one (it then takes no meta keys, and cannot be the model)"""
    for _ in range(len(ctx.blocks) + 1):
        if isinstance(expr, dict) and 'ref' in expr:
            return True
        if isinstance(expr, str) and expr in ctx.blocks:
            expr = ctx.blocks[expr]
        elif isinstance(expr, dict) and len(expr) == 1 and list(expr)[0] in ctx.blocks:
            expr = ctx.blocks[list(expr)[0]]
        else:
            return False
    return False


def copy_node(n):
    c = Node(n.kind, n.tname)
    c.children = list(n.children)
    c.params = n.params
    c.ranks = n.ranks
    c.frozen = n.frozen
    c.in_shape = n.in_shape
    c.macs = n.macs
    return c


def walk(node, path=''):
    """(path, node) of node and every module below it, pre-order, through refs."""
    yield path, node
    for name, c in node.children:
        for x in walk(c, name if path == '' else path + '.' + name):
            yield x


def params_under(node, tname=None):
    """{'weight', 'bias'} present in the subtree (in its layers of type tname)."""
    out = set()
    for _, n in walk(node):
        if tname is None or n.tname == tname:
            out.update(n.params)
    return out


def min_rank(node, param, tname=None):
    """the smallest rank of `param` over the subtree's layers (of type tname)"""
    r = [n.ranks[param] for _, n in walk(node)
         if param in n.ranks and (tname is None or n.tname == tname)]
    return min(r) if r else 0


def layer_types(node):
    """the layer types with parameters in the subtree, in walk order"""
    out = []
    for _, n in walk(node):
        if n.params and n.tname not in out:
            out.append(n.tname)
    return out


def trainable(node, frozen=False):
    """Number of layers with a parameter that is not frozen (a shared tensor
    is frozen if any of its uses is in a frozen subtree)."""
    frozen_ids = set()

    def mark(n, f):
        f = f or n.frozen
        if f and n.params:
            frozen_ids.add(id(n))
        for _, c in n.children:
            mark(c, f)
    mark(node, frozen)
    return sum(1 for _, n in walk(node) if n.params and id(n) not in frozen_ids)


# --------------------------------------------------------------------------
# the generator

class Gen(object):
    def __init__(self, rng, layers, known_bugs=False):
        self.r = rng
        self.avoid = set() if known_bugs else set(KNOWN_BUGS)
        self.all_layers = layers
        self.layers = usable_layers(layers)
        self.ctx = Ctx(layers)
        self.big = rng.random() < 0.2
        self.max_depth = rng.choice([1, 2, 2, 3, 3, 4])
        self.budget = rng.randint(3, 14)      # layer instances to write, roughly
        self.nblock = self.nshared = 0
        self.ws = rng.random() < 0.1          # child names with whitespace too
        self.ws_pool = WS_NAMES + ([] if 'newline_in_name' in self.avoid else NEWLINE_NAMES)
        # an image network: input [C, H, W], conv2d and pools and batch_norm2d
        self.image = not self.big and rng.random() < 0.4
        self.keep_rank = 0        # > 0 inside a residual: no flatten

    # ---- small values
    def chance(self, p):
        return self.r.random() < p

    def size(self):
        if self.big:
            return self.r.randint(12, 40)
        return self.r.choice([1, 2, 2, 3, 3, 4, 4, 5, 6, 8, 11])

    def num(self, lo, hi, digits=3):
        return round(self.r.uniform(lo, hi), digits)

    def ident(self, prefix, taken):
        while True:
            if self.chance(0.7):
                n = '%s%d' % (prefix, len(taken))
            else:
                n = self.r.choice(['Blk', '_b', 'x9', 'ReLU_', 'Linear', 'seq_', 'Ref', 'B_1',
                                   'initb', 'frozen_', 'sh']) + str(self.r.randint(0, 99))
            if n not in taken and n not in self.all_layers and n not in RESERVED:
                return n

    def child_names(self, k):
        pool = ODD_NAMES if self.chance(0.5) else PLAIN_NAMES
        names = []
        while len(names) < k:
            if self.ws and self.chance(0.35):
                n = self.r.choice(self.ws_pool)
            else:
                n = self.r.choice(pool if self.chance(0.7) else ODD_NAMES + PLAIN_NAMES)
            if n not in names:
                names.append(n)
        return names

    # ---- layers
    def applicable(self, t, shape):
        rank = len(shape)
        if t in IMAGE_LAYERS and rank != 4:
            return False
        if t == 'batch_norm1d' and rank not in (2, 3):
            return False
        if t in BATCH_NORMS and not bn_batch_ok(shape):
            return False
        if t == 'flatten' and self.keep_rank:
            return False
        if t == 'last_step' and (rank != 3 or self.keep_rank):
            return False
        if t in RECURRENT and rank != 3:
            return False
        return True

    def layer_weight(self, t, shape):
        if len(shape) == 4:
            return {'conv2d': 5, 'max_pool2d': 1.5, 'avg_pool2d': 1.5,
                    'adaptive_avg_pool2d': 0.8, 'batch_norm2d': 2, 'dropout': 1,
                    'layer_norm': 0.6, 'linear': 0.6, 'flatten': 0.7, 'softmax': 0.4,
                    'log_softmax': 0.4, 'relu': 1.5}.get(t, 0.6)
        return {'linear': 6, 'softmax': 1.5, 'log_softmax': 1.5, 'batch_norm1d': 1.2}.get(t, 1)

    def layer(self, shape):
        names = [n for n in self.layers if self.applicable(n, shape)]
        weights = [self.layer_weight(n, shape) for n in names]
        t = self.r.choices(names, weights)[0]
        rank = len(shape)
        if t == 'conv2d':
            self.budget -= 1
            return {t: self.conv2d(shape)}
        if t in ('max_pool2d', 'avg_pool2d'):
            return {t: self.pool2d(t, shape)}
        if t == 'adaptive_avg_pool2d':
            h, w = shape[2:]
            if 'adaptive_pool_upsample' in self.avoid:
                oh = self.r.randint(1, h) if self.chance(0.8) else 1
                ow = oh if oh <= w and self.chance(0.5) else self.r.randint(1, w)
            else:
                oh = self.r.randint(1, min(h + 1, MAX_HW)) if self.chance(0.8) else 1
                ow = oh if self.chance(0.5) else self.r.randint(1, min(w + 1, MAX_HW))
            out = oh if oh == ow and self.chance(0.6) else [oh, ow]
            return {t: out if self.chance(0.6) else {'out': out}}
        if t in BATCH_NORMS:
            self.budget -= 0.5
            return self.batch_norm(t, shape)
        if t == 'layer_norm':
            self.budget -= 0.5
            k = self.r.choice([1, 1, 1, 2, 3])
            k = min(k, rank - 1)
            ls = list(shape[rank - k:])
            v = ls[0] if k == 1 and self.chance(0.5) else ls
            if self.chance(0.4):
                return {t: v}
            a = {'shape': v}
            if self.chance(0.4):
                a['eps'] = self.r.choice([1e-5, 0.001, 0.1, 1e-06])
            if self.chance(0.4):
                a['elementwise_affine'] = self.chance(0.5)
            return {t: self.shuffled(a)}
        if t == 'linear':
            self.budget -= 1
            out = self.size()
            form = self.r.random()
            if form < 0.45:
                return {'linear': out}
            a = {'out': out}
            if self.chance(0.3):
                a['in'] = shape[-1]
            if self.chance(0.35):
                a['bias'] = self.chance(0.3)
            return {'linear': self.shuffled(a)}
        if t in RECURRENT:
            self.budget -= 1
            h = self.r.randint(1, 6)
            if self.chance(0.3):
                return {t: h}
            a = {'hidden': h}
            if self.chance(0.4):
                a['layers'] = self.r.choice([1, 2, 2, 3])
            if self.chance(0.3):
                a['bias'] = self.chance(0.3)
            if self.chance(0.35):
                a['bidirectional'] = self.chance(0.7)
            if self.chance(0.25):
                a['dropout'] = self.r.choice([0, 0.25, 0.5, 1])
            if t == 'rnn' and self.chance(0.4):
                a['nonlinearity'] = self.r.choice(['tanh', 'relu'])
            if self.keep_rank:  # inside a residual the body must keep the shape
                a = {'hidden': shape[-1]}
            return {t: self.shuffled(a)}
        if t == 'dropout':
            p = self.r.choice([0, 0.0, 0.1, 0.2, 0.5, 0.5, 0.3, 0.75, 0.9, 0.05])
            f = self.r.random()
            if f < 0.15:
                return t
            if f < 0.55:
                return {t: p}
            if f < 0.9:
                return {t: {'p': p}}
            return {t: {}}
        if t == 'leaky_relu':
            v = self.r.choice([0.01, 0.2, 0.1, 0.5, 1, 0, -0.3, 2, 3.5, 1e-05, 0.25])
            f = self.r.random()
            if f < 0.25:
                return 'leaky_relu'
            if f < 0.6:
                return {'leaky_relu': v}
            if f < 0.8:
                return {'leaky_relu': {'negative_slope': v}}
            return {'leaky_relu': {}}
        if t in ('softmax', 'log_softmax'):
            d = self.r.randint(-rank, rank - 1)
            f = self.r.random()
            if f < 0.2:
                return t
            if f < 0.7:
                return {t: d}
            return {t: {'dim': d}}
        return t if self.chance(0.8) else {t: {}}

    def shuffled(self, a):
        keys = list(a)
        self.r.shuffle(keys)
        return {k: a[k] for k in keys}

    def pair_value(self, v, default=None):
        """a pair (a, b) as it may be written: an int when a == b (mostly), a list"""
        if v[0] == v[1] and self.chance(0.75):
            return v[0]
        return list(v)

    def conv2d(self, shape):
        """conv2d arguments valid at [N, C, H, W]: groups dividing C and out,
        padding `same` only with stride 1, an output of 1 to MAX_HW (or the
        input's size) per dimension"""
        n, c, h, w = shape
        g = 1
        if self.chance(0.3):
            g = self.r.choice([d for d in range(1, c + 1) if c % d == 0])
        out = g * self.r.randint(1, max(1, MAX_CHANNELS // g))
        same = self.keep_rank and self.chance(0.5)   # a body that keeps the shape
        if same:
            out = c if c % g == 0 else out
        limit = (max(MAX_HW, h), max(MAX_HW, w))
        for attempt in range(30):
            k = (self.r.randint(1, 5),) * 2 if self.chance(0.7) else \
                (self.r.randint(1, 5), self.r.randint(1, 5))
            if attempt > 20:
                k = (1, 1)
            d = (1, 1) if self.chance(0.8) else self.r.choice([(2, 2), (1, 2), (2, 1), (3, 3)])
            st = (1, 1) if same or self.chance(0.6) else \
                self.r.choice([(2, 2), (2, 2), (3, 3), (1, 2), (2, 1)])
            f = self.r.random()
            if same or (f < 0.15 and st == (1, 1)):
                pad = 'same'
            elif f < 0.3:
                pad = 'valid'
            elif f < 0.55:
                pad = (0, 0)
            else:
                pad = (self.r.randint(0, 2),) * 2 if self.chance(0.7) else \
                    (self.r.randint(0, 2), self.r.randint(0, 2))
            a = {'out': out, 'kernel': self.pair_value(k)}
            if st != (1, 1) or self.chance(0.2):
                a['stride'] = self.pair_value(st)
            if pad != (0, 0) or self.chance(0.2):
                a['padding'] = pad if isinstance(pad, str) else self.pair_value(pad)
            if d != (1, 1) or self.chance(0.15):
                a['dilation'] = self.pair_value(d)
            if g != 1 or self.chance(0.15):
                a['groups'] = g
            try:
                o = layer_shape('conv2d', a, shape)
            except Invalid:
                continue
            if o[2] <= limit[0] and o[3] <= limit[1]:
                break
        else:
            a = {'out': out, 'kernel': 1}
            if g != 1:
                a['groups'] = g
        if self.chance(0.3):
            a['bias'] = self.chance(0.4)
        if self.chance(0.2):
            a['in'] = c
        return self.shuffled(a) if self.chance(0.4) else a

    def pool2d(self, t, shape):
        """max_pool2d / avg_pool2d arguments valid at [N, C, H, W]: padding at
        most half the kernel, an output of at least 1, every window holding an
        input element (a max_pool2d window of dilated positions in the padding
        only is not generated)"""
        n, c, h, w = shape
        for attempt in range(30):
            k = (self.r.randint(1, 4),) * 2 if self.chance(0.7) else \
                (self.r.randint(1, 4), self.r.randint(1, 4))
            if attempt > 20:
                k = (1, 1)
            a = {'kernel': self.pair_value(k)}
            if self.chance(0.55):
                st = (self.r.randint(1, 3),) * 2 if self.chance(0.7) else \
                    (self.r.randint(1, 3), self.r.randint(1, 3))
                a['stride'] = self.pair_value(st)
            if self.chance(0.4):
                pad = tuple(self.r.randint(0, x // 2) for x in k)
                a['padding'] = self.pair_value(pad)
            if t == 'max_pool2d' and self.chance(0.2):
                a['dilation'] = self.pair_value(self.r.choice([(1, 1), (2, 2), (1, 2), (2, 1)]))
            if self.chance(0.35):
                a['ceil_mode'] = self.chance(0.7)
            if t == 'avg_pool2d' and self.chance(0.35):
                a['count_include_pad'] = self.chance(0.5)
            try:
                layer_shape(t, a, shape)
            except Invalid:
                continue
            if windows_hit_input(a, shape):
                break
        else:
            a = {'kernel': 1}
        if len(a) == 1 and self.chance(0.5):
            return a['kernel']
        return self.shuffled(a) if self.chance(0.4) else a

    def batch_norm(self, t, shape):
        a = {}
        if self.chance(0.4):
            a['eps'] = self.r.choice([1e-5, 0.001, 0.01, 0.1, 1e-05, 1])
        if self.chance(0.4):
            a['momentum'] = self.r.choice([0.1, 0, 1, 0.5, 0.01, 0.9, 0.0, 1.0])
        if self.chance(0.3):
            a['affine'] = self.chance(0.4)
        if self.chance(0.25):
            a['track_running_stats'] = self.chance(0.4)
        if self.chance(0.3):
            a['num_features'] = shape[1]
        f = self.r.random()
        if not a:
            e = t if f < 0.7 else {t: {}}
        elif list(a) == ['eps'] and f < 0.5:
            e = {t: a['eps']}
        else:
            e = {t: self.shuffled(a)}
        if self.chance(0.15):     # frozen: the running statistics still update
            e = self.as_mapping(e)
            e['frozen'] = True
        return e

    # ---- modules
    def module(self, shape, depth, in_shared=False):
        """(expr, output shape)"""
        deep = depth >= self.max_depth or self.budget <= 0
        if depth == 0:     # the model: mostly a sequential
            kinds = [('layer', 0.4), ('list', 4), ('named', 3), ('block', 0.8),
                     ('repeat', 0.8), ('empty', 0.05), ('residual', 0.6)]
        else:
            kinds = [('layer', 6)]
            if not deep:
                kinds += [('list', 3), ('named', 2), ('block', 1.6), ('repeat', 1),
                          ('ref', 1.3), ('residual', 1.5 if len(shape) == 4 else 1)]
            kinds.append(('empty', 0.25))
        kind = self.r.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        if kind == 'layer':
            e = self.layer(shape)
        elif kind == 'empty':
            e = self.r.choice([[], {'sequential': None}, {'sequential': []},
                               {'sequential': {}}])
        elif kind in ('list', 'named'):
            k = self.r.choice([2, 3, 3, 4, 5, 6] if depth == 0 else [1, 2, 2, 3, 3, 4, 5])
            items = []
            s = shape
            while len(items) < k:
                c, s = self.module(s, depth + 1, in_shared)
                items.append(c)
                tied = self.tied_pattern(s)
                if tied and len(items) < k + 2:
                    items += tied
            if kind == 'list':
                e = items if self.chance(0.75) else {'sequential': items}
            else:
                e = {'sequential': dict(zip(self.child_names(len(items)), items))}
        elif kind == 'block':
            e = self.block_use(shape, depth)
        elif kind == 'repeat':
            e = self.repeat(shape, depth, in_shared)
        elif kind == 'residual':
            e = self.residual(shape, depth, in_shared)
        else:
            e = self.ref(shape, depth)
        node, out = plan(e, shape, self.ctx)
        if not is_ref(e, self.ctx):
            e = self.meta(e, node)
            node, out = plan(e, shape, self.ctx)
        return e, out

    def tied_pattern(self, shape):
        """now and then, a shape-preserving shared module used back to back"""
        if not self.chance(0.25):
            return None
        fit = [n for n in self.ctx.shared if self.ctx.shared_in[n] == shape
               and self.ctx.shared_out[n] == shape]
        if not fit:
            return None
        n = self.r.choice(fit)
        mid = self.r.choice([[], ['relu'], ['tanh'], [{'leaky_relu': 0.2}]])
        return mid + [{'ref': n}]

    def as_mapping(self, e):
        if isinstance(e, list):
            return {'sequential': e}
        if isinstance(e, str):
            return {e: {}}
        return dict(e)

    def meta(self, e, node):
        has = params_under(node)
        want_init = has and self.chance(0.14)
        want_frozen = self.chance(0.08)
        if not (want_init or want_frozen):
            return e
        m = self.as_mapping(e)
        items = list(m.items())
        if want_init:
            items.append(('init', self.rules(node)))
        if want_frozen:
            items.append(('frozen', self.chance(0.85)))
        if self.chance(0.3):
            self.r.shuffle(items)
        return dict(items)

    def fit_tail(self, s, target):
        """layers that take shape s to target (the same rank): an adaptive
        pool for H and W, a 1x1 conv for the channels, a linear for the last
        dimension of a rank 2 or 3 shape"""
        tail = []
        if len(s) == 4 and 'adaptive_pool_upsample' in self.avoid and \
                any(t > x for t, x in zip(target[2:], s[2:])):
            # grow with a padded conv (KNOWN_BUGS), then shrink what is left
            k, p = [], []
            for t, x in zip(target[2:], s[2:]):
                d = max(t - x, 0)
                p.append((d + 1) // 2)
                k.append(1 + 2 * p[-1] - d)
            tail.append({'conv2d': {'out': target[1], 'kernel': self.pair_value(k),
                                    'padding': self.pair_value(p)}})
            self.budget -= 1
            s = [s[0], target[1]] + [x + 2 * q - j + 1 for x, q, j in zip(s[2:], p, k)]
        if len(s) == 4:
            if s[2:] != target[2:]:
                tail.append({'adaptive_avg_pool2d': self.pair_value(target[2:])})
            if s[1] != target[1]:
                tail.append({'conv2d': {'out': target[1], 'kernel': 1}})
                self.budget -= 1
        elif s[-1] != target[-1]:
            tail.append({'linear': target[-1]})
            self.budget -= 1
        return tail

    def same_layer(self, shape):
        """a layer that keeps the shape (or an empty sequential)"""
        for _ in range(10):
            e = self.layer(shape)
            node, out = plan(e, shape, self.ctx)
            if out == shape:
                return e
        return []

    def shortcut(self, shape, out, depth, in_shared):
        """a module from shape to out (the residual's body output)"""
        if len(shape) == 4 and shape[2:] != out[2:] and self.chance(0.6):
            # the classic strided 1x1 conv
            st = []
            for i in (2, 3):
                fit = [s for s in range(1, 5) if conv_size(shape[i], 1, s, 0, 1) == out[i]]
                if not fit:
                    break
                st.append(fit[0])
            if len(st) == 2:
                a = {'out': out[1], 'kernel': 1, 'stride': self.pair_value(st)}
                if self.chance(0.4):
                    a['bias'] = False
                self.budget -= 1
                return {'conv2d': a}
        if shape == out:
            f = self.r.random()
            if f < 0.25:
                return self.r.choice([[], 'identity', {'sequential': None}])
        if self.chance(0.5):
            tail = self.fit_tail(shape, out)
            if tail:
                return tail[0] if len(tail) == 1 and self.chance(0.6) else tail
            return self.same_layer(shape) if self.chance(0.5) else []
        m, s = self.module(shape, depth + 1, in_shared)
        tail = self.fit_tail(s, out)
        return [m] + tail if tail else m

    def residual(self, shape, depth, in_shared):
        """{residual: [...]} whose body keeps the shape, or {residual: {body:,
        shortcut:}} with branches of the same output shape"""
        self.keep_rank += 1
        try:
            if self.chance(0.55):
                items, s = [], shape
                for _ in range(self.r.choice([1, 2, 2, 3])):
                    c, s = self.module(s, depth + 1, in_shared)
                    items.append(c)
                items += self.fit_tail(s, shape)
                return {'residual': items}
            body, out = self.module(shape, depth + 1, in_shared)
            if self.chance(0.3) and is_ref(body, self.ctx) is False and \
                    not isinstance(body, list):
                body = [body]
            short = self.shortcut(shape, out, depth, in_shared)
            v = {'body': body, 'shortcut': short}
            if self.chance(0.2):
                v = {'shortcut': short, 'body': body}
            return {'residual': v}
        finally:
            self.keep_rank -= 1

    def fitting_blocks(self, shape):
        fit = []
        for b in self.ctx.blocks:
            try:
                _, out = plan(b, shape, self.ctx)
                if self.keep_rank and len(out) != len(shape):
                    continue
                fit.append(b)
            except Invalid:
                pass
        return fit

    def block_use(self, shape, depth):
        fit = self.fitting_blocks(shape)
        if fit and self.chance(0.6):
            b = self.r.choice(fit)
        else:
            if fit and self.chance(0.3):
                body = self.r.choice(fit)        # a block that is another block
            elif self.chance(0.2):
                body = self.residual(shape, depth, False)
            else:
                body, _ = self.module(shape, depth + 1)
            b = self.ident('b', self.ctx.blocks.keys() | self.ctx.shared.keys())
            self.ctx.blocks[b] = body
        return b if self.chance(0.7) else {b: {}}

    def repeat(self, shape, depth, in_shared):
        times = self.r.choice([1, 2, 2, 3])
        fit = self.fitting_blocks(shape)
        if fit and self.chance(0.3):
            body = self.r.choice(fit)
        elif self.chance(0.15):
            body = self.ref(shape, depth)
        elif self.chance(0.3):
            body = self.residual(shape, depth, in_shared)    # keeps the shape
        else:
            body, _ = self.module(shape, depth + 1, in_shared)
        v = {'times': times, 'body': body}
        try:
            plan({'repeat': v}, shape, self.ctx)
        except Invalid:       # the body does not map its output shape to itself
            v['times'] = times = 1
        if times == 1 and self.chance(0.4):
            v['name'] = self.r.choice(REPEAT_SINGLE + REPEAT_TEMPLATES)
        elif self.chance(0.7):
            v['name'] = self.r.choice(REPEAT_TEMPLATES)
        keys = list(v)
        self.r.shuffle(keys)
        return {'repeat': {k: v[k] for k in keys}}

    def ref(self, shape, depth):
        fit = [n for n in self.ctx.shared if self.ctx.shared_in[n] == shape and
               (not self.keep_rank or len(self.ctx.shared_out[n]) == len(shape))]
        if not fit or self.chance(0.4):
            if self.chance(0.4):
                # shape-preserving: usable back to back (tied weights)
                body = {'linear': {'out': shape[-1], 'in': shape[-1]}
                        if self.chance(0.5) else shape[-1]}
                self.budget -= 1
            elif self.chance(0.15):
                body = self.residual(shape, depth, True)
            else:
                body, _ = self.module(shape, depth + 1, True)
            if is_ref(body, self.ctx):
                return {'ref': body['ref']} if isinstance(body, dict) and 'ref' in body \
                    else body
            node, out = plan(body, shape, self.ctx)
            if not (isinstance(body, dict) and ('init' in body or 'frozen' in body)):
                body = self.meta(body, node)
                node, out = plan(body, shape, self.ctx)
            n = self.ident('s', self.ctx.blocks.keys() | self.ctx.shared.keys())
            self.ctx.shared[n] = body
            self.ctx.shared_in[n] = list(shape)
            self.ctx.shared_out[n] = out
            self.ctx.shared_node[n] = node
            fit = [n]
        return {'ref': self.r.choice(fit)}

    # ---- init rules
    def initializer(self, param, rank=2):
        names = list(INIT_NAMES)
        if param != 'weight' or rank < 2:   # Xavier and Kaiming need >= 2 dimensions
            names = [n for n in names if not n.startswith(('xavier', 'kaiming'))]
        n = self.r.choice(names)
        f = self.r.random()
        if n in ('default', 'zeros', 'ones'):
            v = n
        elif n == 'constant':
            v = {n: self.r.choice([0, 1, -2, 0.5, self.num(-2, 2)])}
        elif n == 'uniform':
            a = self.num(-2, 1)
            b = a if self.chance(0.05) else round(a + self.num(0, 2), 3)
            v = (n if f < 0.2 else {n: [a, b]} if f < 0.6 else
                 {n: self.subset({'a': a, 'b': b})})
            if isinstance(v, dict) and isinstance(v[n], dict) and \
                    v[n].get('a', 0) > v[n].get('b', 1):
                v = {n: [a, b]}
        elif n == 'normal':
            mean, std = self.num(-1, 1), self.r.choice([0, 0.01, 0.1, 1, self.num(0, 2)])
            v = (n if f < 0.2 else {n: [mean, std]} if f < 0.6 else
                 {n: self.subset({'mean': mean, 'std': std})})
        elif n.startswith('xavier'):
            g = self.r.choice([1, 2, 0.5, self.num(0.1, 3)])
            v = n if f < 0.25 else {n: g} if f < 0.5 else {n: {'gain': g}} if f < 0.9 \
                else {n: {}}
        elif n.startswith('kaiming'):
            a = {'a': self.r.choice([0, 1, 2.236, self.num(0, 1)]),
                 'mode': self.r.choice(['fan_in', 'fan_out']),
                 'nonlinearity': self.r.choice(NONLINEARITIES)}
            v = n if f < 0.2 else {n: self.subset(a)}
        else:  # trunc_normal
            mean, std = self.num(-1, 1), self.r.choice([1, 0.5, self.num(0.05, 2)])
            lo = round(mean - self.num(0.1, 3), 3)
            hi = round(mean + self.num(0.1, 3), 3)
            v = (n if f < 0.2 else {n: [mean, std, lo, hi]} if f < 0.5 else
                 {n: self.subset({'mean': mean, 'std': std, 'a': lo, 'b': hi})})
            if isinstance(v, dict) and isinstance(v[n], dict):
                d = v[n]
                if not d.get('a', -2.0) < d.get('b', 2.0):
                    v = {n: [mean, std, lo, hi]}
        if self.chance(0.15) and not (n == 'default' and
                                      'default_zero_abs_below' in self.avoid):
            if isinstance(v, str):
                v = {v: {}}
            v = dict(v)
            v['zero_abs_below'] = self.r.choice([0, 0.05, 0.1, 0.3, 1, self.num(0, 0.5)])
            if self.chance(0.3):
                v = dict(reversed(list(v.items())))
        return v

    def subset(self, d):
        keys = [k for k in d if self.chance(0.7)]
        self.r.shuffle(keys)
        return {k: d[k] for k in keys}

    def rules(self, node):
        targets = [(p, n) for p, n in walk(node) if params_under(n)]
        out = []
        for _ in range(self.r.choice([1, 1, 1, 2, 2, 3])):
            path, n = targets[0] if self.chance(0.5) else self.r.choice(targets)
            tname = None
            types = layer_types(n)
            if self.chance(0.3):     # `layer: T`, conv2d more often
                tname = 'conv2d' if 'conv2d' in types and self.chance(0.5) else \
                    self.r.choice(types)
            have = params_under(n, tname)
            keys = [k for k in ('weight', 'bias') if k in have and self.chance(0.7)]
            if not keys:
                keys = [self.r.choice(sorted(have))]
            if len(keys) == 1 and self.chance(0.05):
                keys.append('bias' if keys[0] == 'weight' else 'weight')
            self.r.shuffle(keys)
            items = [(k, self.initializer(k, min_rank(n, k, tname))) for k in keys]
            if path != '' or self.chance(0.1):
                items.insert(0, ('at', path))
            if tname is not None:
                items.insert(0, ('layer', tname))
            if self.chance(0.2):
                self.r.shuffle(items)
            out.append(dict(items))
        return out

    # ---- a whole spec
    def spec(self, name=None):
        if self.image:
            rank = 3
            h = self.r.choice([1, 2, 3, 4, 5, 6, 6, 7, 8, 8, 9, 10, 11, 12])
            w = h if self.chance(0.6) else self.r.randint(1, MAX_HW)
            inp = [self.r.choice([1, 1, 2, 3, 3, 4, 5, 6, 8]), h, w]
            batch = self.r.choice([1, 2, 2, 3, 3, 4, 5, 6])
        else:
            rank = self.r.choice([1, 1, 1, 2, 2, 3])
            inp = [self.r.choice([1, 2, 3, 4, 5]) for _ in range(rank - 1)]
            inp.append(self.size() if self.big or self.chance(0.8) else self.r.randint(1, 6))
            batch = self.r.choice([1, 1, 2, 2, 3, 4, 5, 8]) if not self.big else \
                self.r.choice([2, 4, 8])
        shape = [batch] + inp
        model, out = self.module(shape, 0)
        if is_ref(model, self.ctx):
            model = [model]
        if self.image and len(out) > 2 and self.chance(0.6):
            # a classifier head
            head = ['flatten', {'linear': self.r.randint(2, 10)}]
            if self.chance(0.3):
                head[1:1] = [{'linear': self.r.randint(2, 16)},
                             self.r.choice(['relu', 'tanh', {'dropout': 0.5}])]
            model = (model if isinstance(model, list) else [model]) + head
        train = None
        if self.chance(0.4):
            loss = 'cross_entropy' if self.chance(0.45) else 'mse'
            node, out = plan(model, shape, self.ctx)
            tail = []
            if loss == 'cross_entropy' and len(out) != 2:
                tail.append('flatten')
            if trainable(node) == 0:
                tail.append({'linear': self.r.randint(1, 5)})
            if tail:
                model = (model if isinstance(model, list) else [model]) + tail
            train = {'loss': loss, 'optimizer': self.optimizer()}
        node, out = plan(model, shape, self.ctx)
        lin = [n for _, n in walk(node) if n.tname == 'linear']
        self.stats = {'linears': len(lin),
                      'blas': sum(1 for n in lin if n.macs >= BLAS_MIN_MACS),
                      'image': self.image,
                      'layers': sorted({n.tname for _, n in walk(node) if n.tname}),
                      'residuals': count_key(model, 'residual') + sum(
                          count_key(x, 'residual') for x in list(self.ctx.blocks.values())
                          + list(self.ctx.shared.values()))}
        spec = {'nngen': 1}
        if name is not None and self.chance(0.85):
            spec['name'] = name
        spec['input'] = inp[0] if rank == 1 and self.chance(0.25) else inp
        if batch != 1 or self.chance(0.5):
            spec['batch'] = batch
        if self.chance(0.3):
            spec['seed'] = self.r.choice([0, 1, 42, 2 ** 64 - 1, self.r.randint(0, 10 ** 6)])
        if self.chance(0.07):
            b = self.ident('unused', self.ctx.blocks.keys() | self.ctx.shared.keys())
            self.ctx.blocks[b] = [{'linear': {'out': 3, 'in': 2}}, 'relu']
        if self.ctx.blocks:
            items = list(self.ctx.blocks.items())
            if self.chance(0.3):
                self.r.shuffle(items)       # blocks may use blocks declared below
            spec['blocks'] = dict(items)
        if self.ctx.shared:
            spec['shared'] = dict(self.ctx.shared)
        spec['model'] = model
        if params_under(node) and self.chance(0.3):
            spec['init'] = self.rules(node)
        if train:
            spec['train'] = train
        return spec

    def optimizer(self):
        if self.chance(0.5):
            a = {'lr': self.r.choice([0.005, 0.01, 0.02, 0.05, 0.1, self.num(0.001, 0.05)])}
            if self.chance(0.5):
                a['momentum'] = self.r.choice([0, 0.5, 0.9, self.num(0, 0.99)])
            nesterov = a.get('momentum', 0) > 0 and self.chance(0.4)
            if nesterov:
                if self.chance(0.3):
                    a['dampening'] = 0
                a['nesterov'] = True
            else:
                if self.chance(0.4):
                    a['dampening'] = self.r.choice([0, 0.1, 0.5, self.num(0, 0.9)])
                if self.chance(0.15):
                    a['nesterov'] = False
            if self.chance(0.35):
                a['weight_decay'] = self.r.choice([0, 0.0001, 0.01, self.num(0, 0.1)])
            return {'sgd': self.subset_keep(a, 'lr')}
        a = {}
        if self.chance(0.6):
            a['lr'] = self.r.choice([0.001, 0.01, 0.05, self.num(0.0005, 0.05, 4)])
        if self.chance(0.3):
            a['betas'] = [self.r.choice([0.9, 0.8, 0, 0.5]),
                          self.r.choice([0.999, 0.99, 0.9, 0])]
        if self.chance(0.3):
            a['eps'] = self.r.choice([1e-8, 1e-6, 0.001, 1e-07])
        if self.chance(0.3):
            a['weight_decay'] = self.r.choice([0, 0.0001, 0.01])
        if self.chance(0.4):
            a['amsgrad'] = self.chance(0.7)
        return {'adam': a if a or self.chance(0.5) else None}

    def subset_keep(self, d, keep):
        keys = list(d)
        rest = keys[1:]
        self.r.shuffle(rest)
        return {k: d[k] for k in [keep] + rest}


def generate(rng, layers, name=None, stats=None, known_bugs=False):
    """One random valid spec (a dict in the order it is written); stats, a
    dict, receives 'linears' and 'blas' (linears of >= BLAS_MIN_MACS
    multiply-adds, the runtime's path).  known_bugs: also the constructs
    of KNOWN_BUGS."""
    g = Gen(rng, layers, known_bugs)
    spec = g.spec(name)
    if stats is not None:
        stats.update(g.stats)
    return spec


def _named_seqs(spec):
    """every {sequential: {...}} mapping of the spec (model, blocks, shared)"""
    out = []

    def rec(e):
        if isinstance(e, list):
            for x in e:
                rec(x)
        elif isinstance(e, dict):
            v = e.get('sequential')
            if isinstance(v, dict):
                out.append(e)
                for x in v.values():
                    rec(x)
            elif isinstance(v, list):
                rec(v)
            if isinstance(e.get('repeat'), dict):
                rec(e['repeat'].get('body'))
            r = e.get('residual')
            rec(list(r.values()) if isinstance(r, dict) else r)
    rec(spec.get('model'))
    for sect in ('blocks', 'shared'):
        for x in (spec.get(sect) or {}).values():
            rec(x)
    return out


def has_ws_names(spec):
    return any(any(c in WS_CHARS for c in str(k))
               for m in _named_seqs(spec) for k in m['sequential'])


def without_ws_names(spec):
    """a copy of spec whose child names with whitespace are replaced by
    ws_0, ws_1, ... (the same name the same everywhere, at: paths included)"""
    spec = copy.deepcopy(spec)
    names = {}
    for m in _named_seqs(spec):
        for k in m['sequential']:
            if any(c in WS_CHARS for c in str(k)) and k not in names:
                names[k] = 'ws_%d' % len(names)
    for m in _named_seqs(spec):
        m['sequential'] = {names.get(k, k): v for k, v in m['sequential'].items()}

    def fix_rules(rules):
        for r in rules if isinstance(rules, list) else []:
            if isinstance(r, dict) and isinstance(r.get('at'), str):
                r['at'] = '.'.join(names.get(c, c) for c in r['at'].split('.'))

    def rec(e):
        if isinstance(e, list):
            for x in e:
                rec(x)
        elif isinstance(e, dict):
            fix_rules(e.get('init'))
            for k, v in e.items():
                if k == 'sequential':
                    rec(list(v.values()) if isinstance(v, dict) else v)
                elif k == 'repeat' and isinstance(v, dict):
                    rec(v.get('body'))
                elif k == 'residual':
                    rec(list(v.values()) if isinstance(v, dict) else v)
    fix_rules(spec.get('init'))
    rec(spec.get('model'))
    for sect in ('blocks', 'shared'):
        for x in (spec.get(sect) or {}).values():
            rec(x)
    return spec


# --------------------------------------------------------------------------
# YAML text, in varied but plain styles (block and flow, quoted and plain)

_PLAIN_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_NOT_PLAIN = {'true', 'false', 'True', 'False', 'TRUE', 'FALSE', 'null', 'Null', 'NULL',
              'yes', 'no', 'Yes', 'No', 'YES', 'NO', 'on', 'off', 'On', 'Off', 'ON', 'OFF',
              'y', 'n', 'Y', 'N', '_'}


def _p(rng, p):
    """a style decision: random with rng, never (the plain style) without"""
    return rng is not None and rng.random() < p


def yaml_str(s, rng=None):
    plain = bool(_PLAIN_RE.match(s)) and s not in _NOT_PLAIN
    if not plain and re.match(r'^[1-9][0-9]{0,5}$', s) and _p(rng, 0.5):
        plain = True       # a child name `7:` is the integer 7, i.e. the name "7"
    if plain and not _p(rng, 0.1):
        return s
    if s.isprintable() and "'" not in s and '\\' not in s and _p(rng, 0.2):
        return "'" + s + "'"
    return json.dumps(s, ensure_ascii=False)


def yaml_scalar(v, rng):
    if v is None:
        return ''
    if isinstance(v, bool):
        t = 'true' if v else 'false'
        if _p(rng, 0.1):
            t = t.capitalize() if _p(rng, 0.5) else t.upper()
        return t
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        t = repr(v)
        if 'e' not in t and '.' in t and _p(rng, 0.1):
            t += '0'                      # 0.50: the same number
        return t
    return yaml_str(v, rng)


def flow(v, rng):
    if isinstance(v, dict):
        return '{' + ', '.join('%s: %s' % (yaml_str(str(k), rng), flow(x, rng))
                               for k, x in v.items()) + '}'
    if isinstance(v, list):
        return '[' + ', '.join(flow(x, rng) for x in v) + ']'
    return yaml_scalar(v, rng)


def _size(v):
    if isinstance(v, dict):
        return 1 + sum(_size(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(_size(x) for x in v)
    return 1


def block(v, rng, indent):
    """lines of v in block style at the given indent (small collections in
    flow style; with rng, random choices between the two)"""
    pad = ' ' * indent
    lines = []
    if isinstance(v, dict):
        for k, x in v.items():
            key = yaml_str(str(k), rng)
            if isinstance(x, (dict, list)) and x and (_size(x) > 4 or _p(rng, 0.35)):
                lines.append('%s%s:' % (pad, key))
                # "key:\n- item" (a block sequence at the key's indent) is valid too
                lines += block(x, rng, indent if isinstance(x, list) and _p(rng, 0.5)
                               else indent + 2)
            else:
                lines.append(('%s%s: %s' % (pad, key, flow(x, rng))).rstrip())
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)) and x and (_size(x) > 4 or _p(rng, 0.3)):
                sub = block(x, rng, indent + 2)
                sub[0] = pad + '- ' + sub[0][indent + 2:]
                lines += sub
            else:
                lines.append(('%s- %s' % (pad, flow(x, rng))).rstrip())
    else:
        lines.append(pad + yaml_scalar(v, rng))
    return lines


def to_yaml(spec, rng=None, comment=None):
    """spec as YAML text; rng varies the style (rng None: one plain style)"""
    out = []
    if comment:
        out += ['# ' + l for l in comment.splitlines()]
    out += block(spec, rng, 0)
    return '\n'.join(out) + '\n'


# --------------------------------------------------------------------------

def net_rng(seed, i):
    """the generator of network i of a batch made from seed"""
    return random.Random(seed * 1000003 + i)


def spec_features(spec, st):
    """the features of one spec, for --stats"""
    f = set('layer ' + l for l in st['layers'])
    text = json.dumps(spec)
    if st['image']:
        f.add('image input [C, H, W]')
    if st['blas']:
        f.add('a linear on the BLAS path')
    if any(l in st['layers'] for l in ('dropout',) + BATCH_NORMS):
        f.add('modal (batch_norm or dropout)')
    if 'train' in spec:
        f.add('train')
        if 'cross_entropy' in text:
            f.add('train cross_entropy')
    if '"residual": [' in text:
        f.add('residual [...]')
    if '"residual": {' in text:
        f.add('residual {body, shortcut}')
    for k in ('blocks', 'shared'):
        if k in spec and '"residual"' in json.dumps(spec[k]):
            f.add('residual inside %s' % k)
    if re.search(r'"body": \{"residual"', text):
        f.add('residual as a repeat body')
    if '"layer": "conv2d"' in text:
        f.add('init rule layer: conv2d')
    if re.search(r'"layer": "(batch_norm|layer_norm)', text):
        f.add('init rule layer: a norm')
    if re.search(r'"(batch_norm[12]d)": [^{]*\{[^{}]*\}?, "frozen": true', text) or \
            re.search(r'"batch_norm[12]d"[^}]*\}?, "frozen": true', text):
        f.add('frozen batch_norm')
    if '"same"' in text:
        f.add('conv2d padding same')
    if '"valid"' in text:
        f.add('conv2d padding valid')
    if '"groups": ' in text and re.search(r'"groups": [2-8]', text):
        f.add('conv2d groups > 1')
    if '"dilation": ' in text:
        f.add('dilation written')
    if '"ceil_mode": true' in text:
        f.add('ceil_mode true')
    return f


def print_stats(layers, args):
    import collections
    c = collections.Counter()
    for i in range(args.count):
        rng = net_rng(args.seed, i)
        st = {}
        spec = generate(rng, layers, 'n%d' % i, stats=st, known_bugs=args.known_bugs)
        c.update(spec_features(spec, st))
    print('%d specs of seed %d:' % (args.count, args.seed))
    for k, v in sorted(c.items()):
        print('  %5.1f %%  %s' % (100.0 * v / args.count, k))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--nngen', required=True)
    ap.add_argument('--count', type=int, default=20)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--out', default=None)
    ap.add_argument('--no-check', action='store_true', help='do not run nngen --check')
    ap.add_argument('--known-bugs', action='store_true',
                    help='also the constructs of KNOWN_BUGS')
    ap.add_argument('--stats', action='store_true',
                    help='only print what the specs contain (no files, no check)')
    args = ap.parse_args()
    layers = list_layers(args.nngen)
    if args.stats:
        print_stats(layers, args)
        return 0
    out = args.out or tempfile.mkdtemp(prefix='gen-specs-')
    os.makedirs(out, exist_ok=True)
    bad = 0
    for i in range(args.count):
        rng = net_rng(args.seed, i)
        name = 'n%d' % i
        spec = generate(rng, layers, name, known_bugs=args.known_bugs)
        path = os.path.join(out, '%s.yaml' % name)
        with open(path, 'w') as f:
            f.write(to_yaml(spec, rng, 'gen_specs.py --seed %d%s, network %d'
                            % (args.seed, ' --known-bugs' if args.known_bugs else '', i)))
        if not args.no_check:
            r = subprocess.run([args.nngen, '--check', path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            if r.returncode != 0:
                bad += 1
                print('REJECTED %s: %s' % (path, r.stderr.decode('utf-8', 'replace').strip()))
    print('%d specs in %s, %d rejected by nngen --check' % (args.count, out, bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
