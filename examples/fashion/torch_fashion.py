#!/usr/bin/python3
"""The same training run as examples/fashion/fashion.c, in PyTorch 1.13.

usage: torch_fashion.py [--net NAME] [--epochs N] [--seed S] [--data DIR]
                        [--limit N] [--csv FILE] [--steps-csv FILE]
                        [--save FILE] [--save-init FILE] [--order-file FILE]
                        [--quiet] [--nngen NNGEN] [--workers N]

The model is what `nngen --emit pytorch` writes for the same spec
(specs/fashion/*.yaml): build(seed) is torch.manual_seed(seed) and the
construction and init rules in nngen's order, so it starts from nngen's
initial parameters; loss_fn() and make_optimizer() are the spec's.  The
loop is D2L's train_ch6 (train_ch3 for the MLP is the same loop):

    for epoch in range(num_epochs):
        net.train()
        for X, y in train_iter:            # DataLoader(shuffle=True)
            optimizer.zero_grad(); y_hat = net(X); l = loss(y_hat, y)
            l.backward(); optimizer.step()
            metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
        test_acc = evaluate_accuracy(net, test_iter)   # net.eval(), DataLoader

with the images as ToTensor makes them (byte / 255, [1, 28, 28]) in a
TensorDataset, batch 256, and prints the same table as fashion.c.  The
epoch time includes the DataLoader's work (indexing, collating) and the
evaluation, as fashion.c's includes its shuffling, gathering and evaluation.

--nngen: the nngen binary (default: $NNGEN, else build/compiler/nngen of
this tree, else `nngen` on PATH).  --workers: the DataLoader's num_workers
(default 0; the draws from the generator do not depend on it).  Exit status
as fashion.c: 0 done, 1 failure, 2 usage, 3 the data set is not installed.

--float64: the same run in double precision (the model's parameters and
buffers converted with .double() after build(seed), the images as float64):
close to what exact arithmetic gives, the reference test_same_run.py
--float64 measures both float32 runs against.  Files saved with --save or
--save-init then hold the float64 values rounded to F32.
"""
import argparse
import gzip
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DATA = '/usr/share/datasets/fashion-mnist'
NETS = {
    'lenet': ('specs/fashion/lenet.yaml', 'D2L 6.6 LeNet: sigmoid, average pooling, xavier_uniform'),
    'lenet_bn': ('specs/fashion/lenet_bn.yaml', 'D2L 8.5 LeNet with batch normalization'),
    'mlp': ('specs/fashion/dropout_mlp.yaml', 'D2L 4.6 MLP 784-256-256-10 with dropout 0.2 and 0.5'),
}
FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
         't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']


def find_nngen(given):
    for c in [given, os.environ.get('NNGEN'), os.path.join(ROOT, 'build', 'compiler', 'nngen')]:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return shutil.which('nngen')


def load_module(nngen, spec, tmp):
    out = os.path.join(tmp, 'net_%d.py' % os.getpid())
    subprocess.run([nngen, '--emit', 'pytorch', spec, '-o', out], check=True)
    s = importlib.util.spec_from_file_location('fashion_net', out)
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    return mod


def read_idx(path, np):
    """An IDX file of unsigned bytes (plain or gzip) as a numpy array."""
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 8:
        raise ValueError('%s: not an IDX file of unsigned bytes' % path)
    nd = raw[3]
    dims = struct.unpack('>%dI' % nd, raw[4:4 + 4 * nd])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd)
    if data.size != int(np.prod(dims)):
        raise ValueError('%s: %d bytes of data for dimensions %s' % (path, data.size, dims))
    return data.reshape(dims)


def find_files(data):
    paths = []
    for name in FILES:
        for p in (os.path.join(data, name + '.gz'), os.path.join(data, name)):
            if os.path.exists(p):
                paths.append(p)
                break
        else:
            return None
    return paths


def save_safetensors(state, path, np):
    """The state dict as safetensors (F32, I64), the layout nn_save writes."""
    order = {'I64': 0, 'F32': 1, 'I32': 2}
    entries = []
    for k, v in state.items():
        a = v.detach().cpu().numpy()
        if str(a.dtype) == 'float64':
            a = a.astype('float32')
        dt = {'float32': 'F32', 'int64': 'I64', 'int32': 'I32'}[str(a.dtype)]
        entries.append((order[dt], k, dt, a))
    entries.sort(key=lambda e: (e[0], e[1]))
    header, blobs, off = {}, [], 0
    for _, k, dt, a in entries:
        b = a.astype(a.dtype.newbyteorder('<')).tobytes()
        header[k] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--net', default='lenet', choices=sorted(NETS))
    ap.add_argument('--epochs', type=int, default=10)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--data', default=DEFAULT_DATA)
    ap.add_argument('--limit', type=int, default=0)
    ap.add_argument('--csv')
    ap.add_argument('--steps-csv')
    ap.add_argument('--save')
    ap.add_argument('--save-init')
    ap.add_argument('--order-file')
    ap.add_argument('--quiet', action='store_true')
    ap.add_argument('--nngen')
    ap.add_argument('--workers', type=int, default=0)
    ap.add_argument('--float64', action='store_true')
    args = ap.parse_args()
    if args.epochs < 1 or args.limit < 0 or args.seed < 0:
        ap.error('--epochs must be >= 1, --limit and --seed >= 0')

    paths = find_files(args.data)
    if paths is None:
        sys.stderr.write(
            'torch_fashion: the Fashion-MNIST data set is not in %s (%s.gz and the three other '
            'IDX files).\n  On Debian: apt-get install dataset-fashion-mnist (installs them under '
            '%s),\n  or give the directory that holds them with --data DIR.\n'
            % (args.data, FILES[0], DEFAULT_DATA))
        return 3
    nngen = find_nngen(args.nngen)
    if nngen is None:
        sys.stderr.write('torch_fashion: no nngen binary (build the tree, or give --nngen)\n')
        return 1

    import numpy as np
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    spec_rel, what = NETS[args.net]
    with tempfile.TemporaryDirectory(prefix='torch-fashion-') as tmp:
        mod = load_module(nngen, os.path.join(ROOT, spec_rel), tmp)

    t_start = time.perf_counter()
    arrays = [read_idx(p, np) for p in paths]
    limit = args.limit if args.limit > 0 else None
    test_limit = max(1, args.limit // 6) if args.limit > 0 else None

    def dataset(images, labels, n, with_index):
        if len(images) != len(labels):
            raise ValueError('%d images, %d labels' % (len(images), len(labels)))
        x = torch.from_numpy(images[:n].copy()).float().div(255)  # ToTensor
        if args.float64:
            x = x.double()
        x = x.reshape((x.shape[0],) + tuple(mod.INPUT_SHAPE[1:]))
        y = torch.from_numpy(labels[:n].astype(np.int64))
        return TensorDataset(x, y, torch.arange(len(y))) if with_index else TensorDataset(x, y)

    train_ds = dataset(arrays[0], arrays[1], limit, args.order_file is not None)
    test_ds = dataset(arrays[2], arrays[3], test_limit, False)
    t_load = time.perf_counter() - t_start
    batch = mod.BATCH
    train_iter = DataLoader(train_ds, batch_size=batch, shuffle=True, num_workers=args.workers)
    test_iter = DataLoader(test_ds, batch_size=batch, shuffle=False, num_workers=args.workers)

    net = mod.build(args.seed)
    if args.float64:
        net = net.double()
    loss = mod.loss_fn()
    optimizer = mod.make_optimizer(net.parameters())
    lr = optimizer.param_groups[0]['lr']
    if args.save_init:
        save_safetensors(net.state_dict(), args.save_init, np)

    csv = open(args.csv, 'w') if args.csv else None
    steps_csv = open(args.steps_csv, 'w') if args.steps_csv else None
    order_f = open(args.order_file, 'w') if args.order_file else None
    if csv:
        csv.write('epoch,loss,train_acc,test_acc,seconds\n')
    if steps_csv:
        steps_csv.write('step,loss\n')
    tty = not args.quiet and sys.stdout.isatty()
    n_train, n_test = len(train_ds), len(test_ds)
    steps_per_epoch = (n_train + batch - 1) // batch
    print('torch: %s (%s, %s), SGD lr %g, batch %d, %d epochs, seed %d'
          % (args.net, spec_rel, what, lr, batch, args.epochs, args.seed))
    print('data: %s: %d training and %d test images of %s (read in %.2f s)'
          % (args.data, n_train, n_test, 'x'.join(map(str, arrays[0].shape[1:])), t_load))
    print('epoch    loss  train acc  test acc  examples/s    time   elapsed')
    sys.stdout.flush()
    total, step = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        loss_sum, correct, seen, next_bar, order = 0.0, 0, 0, 0.0, []
        for s, b in enumerate(train_iter):
            X, y = b[0], b[1]
            if order_f:
                order += b[2].tolist()
            optimizer.zero_grad()
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                lv = l.item()
                loss_sum += lv * X.shape[0]
                correct += int((y_hat.argmax(axis=1) == y).sum())
                seen += X.shape[0]
            step += 1
            if steps_csv:
                steps_csv.write('%d,%.9g\n' % (step, lv))
            if tty and (time.perf_counter() >= next_bar or s + 1 == steps_per_epoch):
                fill = (s + 1) * 30 // steps_per_epoch
                bar = ''.join('=' if k < fill else ('>' if k == fill else ' ') for k in range(30))
                sys.stdout.write('\r epoch %*d/%d [%s] %*d/%d  loss %.4f' % (
                    2 if args.epochs > 9 else 1, epoch, args.epochs, bar,
                    3 if steps_per_epoch > 99 else 2, s + 1, steps_per_epoch, loss_sum / seen))
                sys.stdout.flush()
                next_bar = time.perf_counter() + 0.1
        t_train = time.perf_counter() - t0
        net.eval()
        test_correct = 0
        with torch.no_grad():
            for X, y in test_iter:
                test_correct += int((net(X).argmax(axis=1) == y).sum())
        t_end = time.perf_counter() - t0
        total += t_end
        if order_f:
            order_f.write(' '.join(map(str, order)) + '\n')
        last = (loss_sum / n_train, correct / n_train, test_correct / n_test)
        if tty:
            sys.stdout.write('\r\033[K')
        print('%5d  %6.4f     %6.4f    %6.4f  %10.1f  %5.2f s  %6.1f s'
              % (epoch, last[0], last[1], last[2], n_train / t_train, t_end, total))
        sys.stdout.flush()
        if csv:
            csv.write('%d,%.9g,%.9g,%.9g,%.6f\n' % (epoch, last[0], last[1], last[2], t_end))
    print('loss %.3f, train acc %.3f, test acc %.3f' % last)
    print('%.1f examples/sec, %.2f s an epoch (training and test), %.1f s in all'
          % (n_train * args.epochs / total, total / args.epochs, total))
    for f in (csv, steps_csv, order_f):
        if f:
            f.close()
    if args.save:
        save_safetensors(net.state_dict(), args.save, np)
        print('saved %s' % args.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
