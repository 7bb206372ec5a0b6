#!/usr/bin/env python3
"""W2 pack and clean, then W8 count and total size, each implementation in its own process.

Each process writes n small objects as plain loose files (no fsync; set-up, not timed), calls
`os.sync()`, then times `pack_all_loose(compress=False)`, `clean_storage()`, one
`count_objects()` and one `get_total_size()` right after it, as bench.py does, but on a
container that no earlier call of this process has seen. With `--wheel-dir DIR`, the `new`
implementation imports rsdos from DIR (a `pip install --target DIR` of another wheel), so two
builds of rsdos can alternate with disk-objectstore in one run.

    .venv/bin/python crates/rsdos-bench/w2_w8_fresh.py [--n 100000] [--rounds 3]
        [--impls dos,rsdos] [--wheel-dir DIR] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def one(impl: str, n: int, workdir: str, wheel_dir: str | None) -> str:
    if impl == 'new' and wheel_dir:
        sys.path.insert(0, wheel_dir)
    sys.path.insert(0, HERE)
    from w1b import gen_objects

    mod = importlib.import_module('disk_objectstore' if impl == 'dos' else 'rsdos')
    data = gen_objects(n, 12345)
    d = tempfile.mkdtemp(dir=workdir)
    c = mod.Container(os.path.join(d, 'c'))
    c.init_container()
    for o in data:
        k = hashlib.sha256(o).hexdigest()
        shard = os.path.join(d, 'c', 'loose', k[:2])
        os.makedirs(shard, exist_ok=True)
        with open(os.path.join(shard, k[2:]), 'wb') as f:
            f.write(o)
    os.sync()
    times = {}
    for name, call in (
        ('pack', lambda: c.pack_all_loose(compress=False)),
        ('clean', c.clean_storage),
        ('count', c.count_objects),
        ('total_size', c.get_total_size),
    ):
        t = time.perf_counter()
        call()
        times[name] = time.perf_counter() - t
    c.close()
    shutil.rmtree(d)
    return (f"{impl:6s} pack {times['pack']:.3f} s  clean {times['clean']:.2f} s  "
            f"count {times['count'] * 1000:.1f} ms  total_size {times['total_size'] * 1000:.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=100_000)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--impls', default='dos,rsdos', help='dos, rsdos, new (rsdos from --wheel-dir)')
    p.add_argument('--wheel-dir')
    p.add_argument('--workdir', default=tempfile.gettempdir())
    p.add_argument('--one', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(one(a.one, a.n, a.workdir, a.wheel_dir), flush=True)
        return
    for _ in range(a.rounds):
        for impl in a.impls.split(','):
            cmd = [sys.executable, __file__, '--one', impl, '--n', str(a.n), '--workdir', a.workdir]
            if a.wheel_dir:
                cmd += ['--wheel-dir', a.wheel_dir]
            subprocess.run(cmd, check=True)


if __name__ == '__main__':
    main()
