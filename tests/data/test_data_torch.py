#!/usr/bin/python3
"""The runtime's data functions against PyTorch 1.13 (suite 'data').

usage: test_data_torch.py DATA_TOOL

  order     for several seeds, example counts n, 3 epochs, with and without
            an evaluation loader between epochs: the orders of
            nn_epoch_order (data_tool order) are the orders in which torch's
            DataLoader(TensorDataset(arange(n)), batch_size=B,
            shuffle=True) yields the examples after torch.manual_seed(seed)
            (an unshuffled DataLoader iterated after each epoch for the
            evaluation variant), and afterwards both generators are at the
            same place (the next int64 random_() equals the next
            nn_rng_u64 mod 2^63).
  randperm  nn_randperm(seed, n) == torch.randperm(n, generator=g) with
            g = torch.Generator().manual_seed(seed), n up to 1000003.
  idx       IDX files written here (numpy, Python's gzip, plain and
            compressed, also two concatenated gzip members) read by
            nn_dataset_load: the floats bit for bit torch's
            ToTensor formula torch.from_numpy(u8).float().div(255), the
            labels, the shape, the limit.

Prints PASS/FAIL lines and "N passed, N failed"; exit 1 on any failure,
77 (skip) without torch unless NNGEN_REQUIRE_TORCH=1.
"""
import gzip
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'rt'))
import torch_models as tm  # noqa: E402

tm.require_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

TOOL = None
passed = failed = 0


def report(ok, what, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print('PASS ' + what)
    else:
        failed += 1
        print('FAIL ' + what + (': ' + detail if detail else ''))


def tool(*args):
    p = subprocess.run([TOOL] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def torch_orders(seed, n, epochs, batch, evaluate):
    torch.manual_seed(seed)
    ds = TensorDataset(torch.arange(n))
    train = DataLoader(ds, batch_size=batch, shuffle=True)
    test = DataLoader(ds, batch_size=batch, shuffle=False)
    orders = []
    for _ in range(epochs):
        orders.append(torch.cat([b[0] for b in train]).tolist())
        if evaluate:
            for _ in test:
                pass
    nxt = torch.empty((), dtype=torch.int64).random_().item()
    return orders, nxt


def check_orders():
    cases = []
    for seed in [0, 1, 42, 2 ** 40 + 3, 67280421310721]:
        for n in [1, 2, 3, 7, 255, 256, 257, 600, 2048]:
            cases.append((seed, n, 256))
    cases += [(0, 10, 1), (5, 10, 3), (5, 10, 64), (9, 1000, 7)]
    cases += [(0, 60000, 256), (3, 60000, 256), (2 ** 33 + 1, 60000, 256)]
    for seed, n, batch in cases:
        for evaluate in (0, 1):
            want, nxt = torch_orders(seed, n, 3, batch, evaluate)
            rc, out, err = tool('order', seed, n, 3, evaluate)
            what = 'order seed=%d n=%d batch=%d eval=%d' % (seed, n, batch, evaluate)
            if rc != 0:
                report(False, what, 'data_tool exited %d: %s%s' % (rc, out, err))
                continue
            lines = out.splitlines()
            got = [[int(v) for v in l.split()] for l in lines[:3]]
            ok = got == want
            detail = ''
            if not ok:
                e = next(i for i in range(3) if got[i] != want[i])
                k = next((i for i in range(n) if got[e][i] != want[e][i]), None)
                detail = 'epoch %d differs first at position %s' % (e, k)
            elif lines[3] != 'next %d' % 0 and int(lines[3].split()[1]) % 2 ** 63 != nxt:
                ok, detail = False, 'the streams part after the epochs: %s vs %d' % (lines[3], nxt)
            report(ok, what, detail)
    rc, out, err = tool('order', 0, 0, 1, 0)
    report(rc == 1 and 'n = 0' in out, 'order n=0 refused (torch: num_samples must be positive)',
           out + err)


def check_randperm():
    for seed, n in [(0, 1), (1, 2), (77, 5), (2 ** 32 + 77, 5), (123456789, 60000), (99, 1000003)]:
        g = torch.Generator()
        g.manual_seed(seed)
        want = torch.randperm(n, generator=g).tolist()
        rc, out, err = tool('randperm', seed, n)
        got = [int(v) for v in out.split()]
        report(rc == 0 and got == want, 'randperm seed=%d n=%d' % (seed, n), err)


def idx_bytes(arr):
    head = bytes([0, 0, 8, arr.ndim]) + b''.join(int(d).to_bytes(4, 'big') for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def check_idx(tmp):
    rng = np.random.RandomState(7)
    for shape, comp, limit in [((37, 28, 28), 'plain', 0), ((37, 28, 28), 'gzip', 0),
                               ((37, 28, 28), 'gzip', 5), ((9, 3), 'plain', 100),
                               ((6, 2, 3, 4), 'gzip2', 0), ((1, 1, 1), 'plain', 0)]:
        u8 = rng.randint(0, 256, size=shape).astype(np.uint8)
        u8.flat[0], u8.flat[-1] = 0, 255
        labels = rng.randint(0, 256, size=shape[0]).astype(np.uint8)
        raw_i, raw_l = idx_bytes(u8), idx_bytes(labels)
        ip, lp = os.path.join(tmp, 'images'), os.path.join(tmp, 'labels')
        if comp == 'plain':
            data_i, data_l = raw_i, raw_l
        elif comp == 'gzip':
            data_i, data_l = gzip.compress(raw_i, 6), gzip.compress(raw_l, 1)
        else:  # two gzip members, split inside the data
            k = len(raw_i) // 3
            data_i = gzip.compress(raw_i[:k]) + gzip.compress(raw_i[k:])
            data_l = gzip.compress(raw_l)
        with open(ip, 'wb') as f:
            f.write(data_i)
        with open(lp, 'wb') as f:
            f.write(data_l)
        rc, out, err = tool('idx', ip, lp, limit)
        what = 'idx %s %s limit=%d' % (comp, 'x'.join(map(str, shape)), limit)
        if rc != 0:
            report(False, what, out + err)
            continue
        lines = out.splitlines()
        keep = shape[0] if limit <= 0 else min(limit, shape[0])
        head = 'count %d file_count %d ndim %d shape %s size %d' % (
            keep, shape[0], len(shape) - 1, ' '.join(map(str, shape[1:])),
            int(np.prod(shape[1:])))
        want = torch.from_numpy(u8[:keep]).float().div(255)  # ToTensor
        want_bits = want.reshape(keep, -1).numpy().view(np.uint32)
        got_bits = np.array([[int(v, 16) for v in l.split()] for l in lines[1:1 + keep]],
                            dtype=np.uint32)
        ok = lines[0] == head and got_bits.shape == want_bits.shape and \
            (got_bits == want_bits).all() and \
            [int(v) for v in lines[1 + keep].split()] == labels[:keep].tolist()
        report(ok, what, lines[0] if lines[0] != head else 'values differ')
    # counts that disagree
    with open(os.path.join(tmp, 'labels'), 'wb') as f:
        f.write(idx_bytes(np.zeros(3, dtype=np.uint8)))
    rc, out, err = tool('idx', os.path.join(tmp, 'images'), os.path.join(tmp, 'labels'), 0)
    report(rc == 1 and '3 labels, but' in out, 'idx counts disagree', out)


def main():
    global TOOL
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    TOOL = os.path.abspath(sys.argv[1])
    check_orders()
    check_randperm()
    with tempfile.TemporaryDirectory(prefix='nngen-data-torch-') as tmp:
        check_idx(tmp)
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
