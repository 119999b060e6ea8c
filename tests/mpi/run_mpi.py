#!/usr/bin/python3
"""Data parallel over MPI (suite 'mpi'; SPEC 1.9; runtime/mpi.c).

usage: run_mpi.py --mpirun MPIRUN --mlp D --tied D --cnn D --bn D [--fashion F]
                  --case CASE [--sanitized]

The D are dist_check.c built for tests/mpi/{mlp,tied,cnn,bn}.yaml.  Cases:

  sampler-torch   nn_dist_sampler_indices == torch 1.13's DistributedSampler
                  (shuffle=True, seed, drop_last=False, set_epoch) for data
                  sets smaller than, equal to and larger than W, W 1..5,
                  every rank, several seeds and epochs
  equal-mlp, equal-tied, equal-cnn
                  W = 2, 3, 4 ranks of B = 3 rows, 20 steps over 37 examples
                  (epochs of 13, 10 and 10 samples a rank: partial last
                  batches, padding) equal one process of W·B rows: losses
                  and final parameters to 1e-5, parameters bit-identical
                  across ranks after every step (dist_check.c); each rank's
                  examples are torch's DistributedSampler's.  W = 3 with
                  256-byte buckets (many buckets, several in flight)
  buffers-bn      batch norm: buffers follow rank 0 (W = 2, 3; 36 examples)
  persistent-off  NNGEN_MPI_PERSISTENT=0: MPI_Iallreduce instead of the
                  persistent requests (W = 3)
  repeat          the same W twice gives bit-identical final parameters
                  (CNN, W = 2 and 3), and the non-persistent path the same
                  bits as the persistent one
  mismatch        rank 0 runs the MLP, rank 1 the tied spec: both refuse
                  at start-up with a message, non-zero exit
  mutations       the checks can fail: hooks removed after attach (every
                  rank trains alone) fails the bit-identity check;
                  broadcast_buffers off fails the buffer check; ranks
                  taking each other's examples fail the torch check
  fault-kill      rank 1 of 3 SIGKILLs itself at step 5: the job exits
                  non-zero within 60 s, a message names rank 1
  fault-stop      rank 1 of 3 SIGSTOPs itself at step 5 (hangs): with
                  NNGEN_MPI_TIMEOUT=4 the others give up, name rank 1, and
                  the job exits non-zero within 60 s
  fashion-dist    mpirun -np 3 examples/fashion/fashion --dist (the MLP, 1500
                  images, 2 epochs): one model over 3 processes, printed
                  once (needs dataset-fashion-mnist: skip without it,
                  fail without it under NNGEN_REQUIRE_TORCH=1)
  netns           two network namespaces joined by a veth pair: rank 0 in
                  one, rank 1 in the other (Open MPI's TCP transport only,
                  on the veth addresses), so the gradients cross an
                  interface; exit 77 (skip), saying so, where namespaces
                  cannot be made (no CAP_SYS_ADMIN, no ip(8))

Exit 0 pass, 1 fail, 77 skip (torch missing unless NNGEN_REQUIRE_TORCH=1;
namespaces not allowed).  --sanitized (build-asan): the MPI runs with
AddressSanitizer and UBSan but without LeakSanitizer (meson.build).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N, B, STEPS, SEED = 37, 3, 20, 7

ENV = dict(os.environ)
ENV.update({'OMPI_ALLOW_RUN_AS_ROOT': '1', 'OMPI_ALLOW_RUN_AS_ROOT_CONFIRM': '1',
            # one machine: shared memory and loopback, no probing of other NICs
            'OMPI_MCA_btl': 'self,vader,tcp', 'OMPI_MCA_btl_vader_single_copy_mechanism': 'none',
            'OMPI_MCA_rmaps_base_oversubscribe': '1',
            # the same product kernel in every process and run (in "auto" mode
            # each process measures and may choose otherwise: mpi-repeat's bits)
            'NNGEN_GEMM': 'nngen'})
for k in ('NNGEN_MPI_BUCKET_BYTES', 'NNGEN_MPI_TIMEOUT', 'NNGEN_MPI_PERSISTENT',
          'NNGEN_TEST_FAULT', 'NNGEN_TEST_FAULT_RANK', 'NNGEN_TEST_FAULT_STEP'):
    ENV.pop(k, None)

failures = []


def check(cond, what):
    print(('PASS: ' if cond else 'FAIL: ') + what)
    sys.stdout.flush()
    if not cond:
        failures.append(what)
    return cond


def run(cmd, env=None, timeout=120):
    """Runs cmd in its own process group; returns (rc, output, seconds).
    rc None: still running after timeout (then killed)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env or ENV,
                         start_new_session=True, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = None
    return rc, out, time.monotonic() - t0


def torch_sampler():
    sys.path.insert(0, os.path.join(HERE, '..', 'rt'))
    import torch_models as tm
    tm.require_torch()
    from torch.utils.data.distributed import DistributedSampler

    def indices(n, w, r, seed, epoch):
        s = DistributedSampler(range(n), num_replicas=w, rank=r, shuffle=True, seed=seed,
                               drop_last=False)
        s.set_epoch(epoch)
        return list(s)
    return indices


def check_idx_files(out_dir, w, what, torch_idx, n=N):
    ok = True
    for r in range(w):
        with open(os.path.join(out_dir, 'idx.%d.%d' % (w, r))) as f:
            for line in f:
                v = [int(t) for t in line.split()]
                want = torch_idx(n, w, r, SEED, v[0])
                if v[1:] != want:
                    print('  rank %d epoch %d: nngen %s\n  torch %s' % (r, v[0], v[1:], want))
                    ok = False
    return check(ok, '%s: every rank\'s examples are torch\'s DistributedSampler(num_replicas=%d, '
                 'rank=r, shuffle=True, seed=%d) after set_epoch(e)' % (what, w, SEED))


def mpirun(a, w, driver, extra=(), env=None, timeout=120, n=N):
    return run([a.mpirun, '--oversubscribe', '-np', str(w), driver, '--n', str(n), '--batch',
                str(B), '--steps', str(STEPS), '--seed', str(SEED)] + list(extra), env, timeout)


def equal(a, name, driver, ws, torch_idx, env_for=None, n=N):
    for w in ws:
        env = dict(ENV)
        env.update((env_for or {}).get(w, {}))
        with tempfile.TemporaryDirectory() as tmp:
            rc, out, secs = mpirun(a, w, driver, ['--out', tmp], env, n=n)
            tag = '%s W=%d%s' % (name, w, ''.join(' %s=%s' % kv for kv in
                                                  sorted((env_for or {}).get(w, {}).items())))
            print(out.strip())
            what = ('buffers after every step are rank 0\'s of before it updated with the '
                    'rank\'s batch' if name == 'bn' else
                    '%d steps of %d ranks x %d rows equal one process of %d rows (1e-5)'
                    % (STEPS, w, B, w * B))
            check(rc == 0 and re.search(r'^dist_check .*: ok;', out, re.M) is not None,
                  '%s: %s, parameters bit-identical on every rank after every step (exit %s, '
                  '%.1f s)' % (tag, what, rc, secs))
            check_idx_files(tmp, w, tag, torch_idx, n)


def case_sampler(a):
    torch_idx = torch_sampler()
    cases = [(n, w, r, seed, epoch) for n in (1, 2, 3, 5, 7, 37, 100, 1001)
             for w in (1, 2, 3, 4, 5) for seed in (0, 7, 123456789) for epoch in (0, 1, 5)
             for r in range(w)]
    out = subprocess.run([a.mlp, '--sampler'], input=''.join('%d %d %d %d %d\n' % c
                                                              for c in cases),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    bad = 0
    for c, line in zip(cases, out):
        got = [int(t) for t in line.split()]
        want = torch_idx(*c)
        if got != want:
            bad += 1
            if bad < 5:
                print('  n=%d W=%d r=%d seed=%d epoch=%d: %s vs torch %s' % (c + (got, want)))
    check(len(out) == len(cases) and bad == 0,
          'nn_dist_sampler_indices equals torch DistributedSampler in %d cases (n 1..1001, '
          'W 1..5, every rank, seeds 0, 7, 123456789, epochs 0, 1, 5)' % len(cases))


def case_repeat(a):
    """The same W, the same buckets: the same bits, run after run."""
    hashes = {}
    for w, env_extra in ((2, {}), (2, {}), (3, {}), (3, {}), (3, {'NNGEN_MPI_PERSISTENT': '0'})):
        env = dict(ENV)
        env.update(env_extra)
        with tempfile.TemporaryDirectory() as tmp:
            rc, out, _ = mpirun(a, w, a.cnn, ['--out', tmp], env)
        m = re.search(r": ok;.*hash ([0-9a-f]{16})", out)
        check(rc == 0 and m is not None, 'cnn W=%d%s ran (exit %s)' % (
            w, ' NNGEN_MPI_PERSISTENT=0' if env_extra else '', rc))
        hashes.setdefault((w, bool(env_extra)), []).append(m.group(1) if m else None)
    print('  final parameters\' hashes: %s' % hashes)
    check(len(set(hashes[(2, False)])) == 1 and len(set(hashes[(3, False)])) == 1,
          'the same W gives bit-identical parameters run after run (W = 2 twice, W = 3 twice)')
    check(hashes[(3, True)][0] == hashes[(3, False)][0],
          'W = 3: MPI_Iallreduce gives the bits of the persistent requests')


def case_fashion(a):
    data = '/usr/share/datasets/fashion-mnist'
    if not a.fashion:
        print('SKIP: fashion-dist: examples/fashion is not built (-Ddata disabled)')
        return 77
    if not os.path.exists(os.path.join(data, 'train-images-idx3-ubyte.gz')):
        if os.environ.get('NNGEN_REQUIRE_TORCH') == '1':
            return int(not check(False, 'fashion-dist: the data set (dataset-fashion-mnist) '
                                 'is installed (NNGEN_REQUIRE_TORCH=1)'))
        print('SKIP: fashion-dist: dataset-fashion-mnist is not installed')
        return 77
    rc, out, secs = run([a.mpirun, '--oversubscribe', '-np', '3', a.fashion, '--dist', '--net',
                         'mlp', '--limit', '1500', '--epochs', '2', '--quiet'], timeout=200)
    print(out.strip())
    check(rc == 0 and out.count('nngen: mlp') == 1 and out.count('data parallel: 3 ranks') == 1
          and re.search(r'^\s+2\s+[0-9.]+\s+-\s+0\.[0-9]+', out, re.M) is not None,
          'mpirun -np 3 fashion --dist trains one model over 3 processes and prints once, '
          'from rank 0 (exit %s, %.1f s)' % (rc, secs))
    return 0


def case_mismatch(a):
    rc, out, secs = run([a.mpirun, '--oversubscribe', '-np', '1', a.mlp, ':', '-np', '1', a.tied])
    print(out.strip())
    check(rc not in (0, None) and "rank 1's model is not rank 0's" in out,
          'different specs on rank 0 and rank 1 are refused at start-up with a message '
          '(exit %s, %.1f s)' % (rc, secs))


def case_mutations(a, torch_idx):
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, _ = mpirun(a, 2, a.mlp, ['--out', tmp, '--mutate', 'nohooks'])
        print('\n'.join(out.strip().splitlines()[:6]))
        check(rc not in (0, None) and 'the parameters differ from rank 0' in out,
              'mutation: hooks removed after attach (no gradient average) is caught (exit %s)'
              % rc)
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, _ = mpirun(a, 2, a.bn, ['--out', tmp, '--mutate', 'nobuffers'], n=36)
        print('\n'.join(out.strip().splitlines()[:4]))
        check(rc not in (0, None) and 'the buffers are not rank 0' in out,
              'mutation: broadcast_buffers off (each rank keeps its statistics) is caught '
              '(exit %s)' % rc)
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, _ = mpirun(a, 3, a.mlp, ['--out', tmp, '--mutate', 'sampler'])
        print(out.strip())
        print('  (expected: the torch check below FAILS for this mutation)')
        saved = list(failures)
        ok = check_idx_files(tmp, 3, 'mutation sampler', torch_idx)
        failures[:] = saved
        check(not ok, 'mutation: ranks taking each other\'s examples is caught by the torch check')


def case_fault(a, how):
    env = dict(ENV)
    env.update({'NNGEN_TEST_FAULT': how, 'NNGEN_TEST_FAULT_RANK': '1',
                'NNGEN_TEST_FAULT_STEP': '5', 'NNGEN_MPI_TIMEOUT': '4'})
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, secs = run([a.mpirun, '--oversubscribe', '-np', '3', a.mlp, '--out', tmp,
                             '--steps', '40'], env, timeout=90)
    print(out.strip())
    names = re.search(r'rank 1\b', out.split('raising SIG', 1)[-1]) is not None
    if how == 'stop':
        names = names and 'rank 1 did not answer' in out
    check(rc not in (0, None) and secs < 60 and names,
          'rank 1 %s at step 5: the others stop, exit %s after %.1f s (< 60), a message names '
          'rank 1%s' % ('killed (SIGKILL)' if how == 'kill' else 'hung (SIGSTOP)', rc, secs,
                        '' if how == 'kill' else ' (NNGEN_MPI_TIMEOUT=4 s)'))


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True)


def case_netns(a):
    ip = shutil.which('ip') or '/usr/sbin/ip'
    if not os.path.exists(ip):
        print('SKIP: netns: ip(8) not found (iproute2): the two-namespace test cannot run')
        return 77
    ns, va, vb = 'nngenmpi%d' % os.getpid(), 'nnmpa%d' % (os.getpid() % 10000), \
        'nnmpb%d' % (os.getpid() % 10000)
    tmp = tempfile.mkdtemp()
    try:
        r = sh('%s netns add %s' % (ip, ns))
        if r.returncode != 0:
            print('SKIP: netns: cannot create a network namespace here (%s): the test across '
                  'two namespaces joined by a veth pair did not run' % r.stderr.strip())
            return 77
        steps = ['link add %s type veth peer name %s' % (va, vb),
                 'link set %s netns %s' % (vb, ns),
                 'addr add 10.217.0.1/24 dev %s' % va, 'link set %s up' % va,
                 '-n %s addr add 10.217.0.2/24 dev %s' % (ns, vb),
                 '-n %s link set %s up' % (ns, vb), '-n %s link set lo up' % ns]
        for s in steps:
            r = sh('%s %s' % (ip, s))
            if r.returncode != 0:
                print('SKIP: netns: "ip %s" failed (%s): the test across two namespaces did '
                      'not run' % (s, r.stderr.strip()))
                return 77
        # mpirun's launcher for the "remote host": ip netns exec instead of ssh
        agent = os.path.join(tmp, 'nsexec')
        with open(agent, 'w') as f:
            f.write('#!/bin/sh\n# called as: nsexec [options] HOST COMMAND...\n'
                    'while [ "${1#-}" != "$1" ]; do shift; done\nshift\n'
                    'exec %s netns exec %s /bin/sh -c "$*"\n' % (ip, ns))
        os.chmod(agent, 0o755)
        hostfile = os.path.join(tmp, 'hosts')
        with open(hostfile, 'w') as f:
            f.write('10.217.0.1 slots=1\n10.217.0.2 slots=1\n')
        # count the bytes that cross the veth
        def rx():
            r = sh('%s -n %s -s link show %s' % (ip, ns, vb))
            m = re.search(r'RX:.*\n\s*(\d+)', r.stdout)
            return int(m.group(1)) if m else -1
        before = rx()
        env = dict(ENV)
        env.pop('OMPI_MCA_btl', None)
        cmd = [a.mpirun, '--hostfile', hostfile, '-np', '2', '--map-by', 'node',
               '--mca', 'plm_rsh_agent', agent, '--mca', 'btl', 'tcp,self',
               '--mca', 'btl_tcp_if_include', '10.217.0.0/24',
               '--mca', 'oob_tcp_if_include', '10.217.0.0/24',
               '--mca', 'pml', 'ob1', '-x', 'PATH', '-x', 'NNGEN_TEST_PRINT_NETNS=1'] + \
            (['-x', 'LD_LIBRARY_PATH'] if 'LD_LIBRARY_PATH' in env else []) + [
               a.mlp, '--n', str(N), '--batch', str(B), '--steps', str(STEPS), '--seed',
               str(SEED), '--out', tmp]
        rc, out, secs = run(cmd, env, timeout=100)
        print(out.strip())
        after = rx()
        print('  bytes received by %s (in the namespace) during the run: %d' % (vb, after - before))
        check(rc == 0 and re.search(r'^dist_check .*: ok;', out, re.M) is not None,
              'netns: 2 ranks in two network namespaces over a veth pair (TCP only) equal one '
              'process, parameters bit-identical (exit %s, %.1f s)' % (rc, secs))
        ns_of = dict(re.findall(r'^dist_check: rank (\d) network namespace (\S+)', out, re.M))
        check(len(ns_of) == 2 and ns_of['0'] != ns_of['1'],
              'netns: rank 0 and rank 1 ran in different network namespaces (%s)' % ns_of)
        check(after - before > 20 * 1000,
              'netns: the run\'s traffic crossed the veth pair (%d bytes into the namespace)'
              % (after - before))
        return 0
    finally:
        sh('%s link del %s' % (ip, va))
        sh('%s netns del %s' % (ip, ns))
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mpirun', required=True)
    for k in ('mlp', 'tied', 'cnn', 'bn'):
        ap.add_argument('--' + k, required=True)
    ap.add_argument('--fashion', default=None)
    ap.add_argument('--case', required=True)
    ap.add_argument('--sanitized', action='store_true')
    a = ap.parse_args()
    if a.sanitized and a.case != 'sampler-torch':
        # AddressSanitizer and UBSan stay on; LeakSanitizer off for the MPI
        # runs: Open MPI leaks at exit from its unloaded plugins, which no
        # suppression can name (tests/mpi/meson.build)
        opts = [o for o in ENV.get('ASAN_OPTIONS', '').split(':')
                if o and not o.startswith('detect_leaks=')]
        ENV['ASAN_OPTIONS'] = ':'.join(opts + ['detect_leaks=0'])
        print('(sanitizer build: ASAN_OPTIONS=%s for the MPI runs)' % ENV['ASAN_OPTIONS'])
    c = a.case
    if c == 'sampler-torch':
        case_sampler(a)
    elif c.startswith('equal-'):
        name = c[len('equal-'):]
        small = {3: {'NNGEN_MPI_BUCKET_BYTES': '256'}}
        equal(a, name, getattr(a, name), (2, 3, 4), torch_sampler(), small)
    elif c == 'buffers-bn':
        # 36 examples: no rank gets a batch of one row, which batch norm
        # refuses in training (as torch does)
        equal(a, 'bn', a.bn, (2, 3), torch_sampler(), n=36)
    elif c == 'persistent-off':
        equal(a, 'mlp', a.mlp, (3,), torch_sampler(), {3: {'NNGEN_MPI_PERSISTENT': '0'}})
    elif c == 'repeat':
        case_repeat(a)
    elif c == 'fashion-dist':
        if case_fashion(a) == 77:
            return 77
    elif c == 'mismatch':
        case_mismatch(a)
    elif c == 'mutations':
        case_mutations(a, torch_sampler())
    elif c in ('fault-kill', 'fault-stop'):
        case_fault(a, c[len('fault-'):])
    elif c == 'netns':
        rc = case_netns(a)
        if rc == 77:
            return 77
    else:
        print('run_mpi.py: unknown case %s' % c)
        return 2
    print('%d failed' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
