#!/usr/bin/env python3
"""W1 and W1b: n small loose objects, one durable add_object per object (W1) or through the
batched write API (W1b, one durability point per batch), disk-objectstore 1.5.0 and rsdos in
the same run, through their Python APIs.

Usage (after scripts/setup-venv.sh and `maturin develop --release` of crates/rsdos-py into
.venv, see scripts/test-python.sh):

    .venv/bin/python crates/rsdos-bench/w1b.py [--n 100000] [--n-w1 N] [--repeat 3]
        [--workloads dos-w1,rsdos-w1,rsdos-w1b,rsdos-w1b-list] [--workdir DIR]

Workloads, each on a fresh container (init not timed), interleaved per repeat:

    dos-w1          disk-objectstore: add_object per object (--n-w1 objects)
    rsdos-w1        rsdos: add_object per object (--n-w1 objects)
    rsdos-w1b       rsdos: `with container.write_batch() as b: b.add_object(...)` (--n objects)
    rsdos-w1b-list  rsdos: container.add_objects_loose(list) (--n objects, one call)

Data: sizes uniform in 0..1000 bytes, half random half text, from `gen_objects` of the shared
bench harness (bench/bench.py), copied below. The page cache is flushed (`os.sync()`) before
each timed run, so that no run pays for the previous one's dirty data. The containers are
deleted only at the end of the run: on ext4 without a journal the inode allocator skips inodes
freed in the last 60 s (`recently_deleted`), so creating files right after deleting 100,000
costs several times more CPU, and a run would pay for the deletion of the one before it. The
table shows the median seconds, objects per second, and the speed-up over disk-objectstore's
W1 rate.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ALL = ['dos-w1', 'rsdos-w1', 'rsdos-w1b', 'rsdos-w1b-list']


def gen_objects(n: int, seed: int, max_size: int = 1000) -> list[bytes]:
    """Copied from bench/bench.py (same data for the same (n, seed))."""
    rng = random.Random(seed)
    filler = b''.join(b'line %06d: the quick brown fox jumps over the lazy dog\n' % i for i in range(64))
    out = []
    for i in range(n):
        size = rng.randint(0, max_size)
        rnd = size // 2
        start = (i * 7) % 256
        out.append(rng.randbytes(rnd) + filler[start:start + size - rnd])
    return out


def run_one(workload: str, folder: Path, objects: list[bytes]) -> float:
    """Times one workload on a fresh container in `folder`; returns seconds."""
    if workload == 'dos-w1':
        from disk_objectstore import Container
    else:
        from rsdos import Container
    container = Container(folder)
    container.init_container(clear=True)
    os.sync()
    start = time.perf_counter()
    if workload in ('dos-w1', 'rsdos-w1'):
        add = container.add_object
        for data in objects:
            add(data)
    elif workload == 'rsdos-w1b':
        with container.write_batch() as batch:
            add = batch.add_object
            for data in objects:
                add(data)
    elif workload == 'rsdos-w1b-list':
        container.add_objects_loose(objects)
    else:
        raise ValueError(workload)
    elapsed = time.perf_counter() - start
    count = container.count_objects()
    expected = len(set(objects))
    if count.loose != expected:
        raise RuntimeError(f'{workload}: {count.loose} loose objects, expected {expected}')
    container.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--n', type=int, default=100_000, help='objects of the batched workloads')
    parser.add_argument('--n-w1', type=int, default=None, help='objects of the per-object workloads (default --n)')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--workloads', default=','.join(ALL))
    parser.add_argument('--workdir', default=None, help='scratch folder (default: a new temporary folder)')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(',') if w]
    for w in workloads:
        if w not in ALL:
            parser.error(f'unknown workload {w}; known: {", ".join(ALL)}')
    n_w1 = args.n_w1 or args.n
    objects = gen_objects(max(args.n, n_w1), args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix='rsdos-w1b-'))
    workdir.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {w: [] for w in workloads}
    try:
        for r in range(args.repeat):
            # Alternate the order between repeats, so that drift in the machine's load is shared.
            order = workloads if r % 2 == 0 else list(reversed(workloads))
            for w in order:
                n = n_w1 if w in ('dos-w1', 'rsdos-w1') else args.n
                folder = workdir / f'{w}-{r}'
                t = run_one(w, folder, objects[:n])
                times[w].append(t)
                print(f'repeat {r + 1}/{args.repeat} {w:15} n={n:7} {t:8.2f} s', flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for w in workloads:
                for r in range(args.repeat):
                    shutil.rmtree(workdir / f'{w}-{r}', ignore_errors=True)

    def rate(w: str) -> float:
        n = n_w1 if w in ('dos-w1', 'rsdos-w1') else args.n
        return n / statistics.median(times[w])

    print()
    print(f'{"workload":15} {"n":>7} {"median s":>9} {"objects/s":>10} {"vs dos W1":>9}')
    for w in workloads:
        n = n_w1 if w in ('dos-w1', 'rsdos-w1') else args.n
        ratio = f'{rate(w) / rate("dos-w1"):8.1f}x' if 'dos-w1' in times else '        -'
        runs = ' '.join(f'{t:.2f}' for t in times[w])
        print(f'{w:15} {n:7} {statistics.median(times[w]):9.2f} {rate(w):10.0f} {ratio}   ({runs})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
