#!/usr/bin/env python3
"""W3 (bulk read of n packed objects in random order) of two or more builds of the rsdos
module, one process per build in turn, to tell a change of a few per cent from this machine's
noise.

Usage (each DIR holds an `rsdos` package, for example a copy of crates/rsdos-py/python/rsdos
made after `maturin develop --release`, one before a change and one after; the DIR `dos`
stands for disk-objectstore as installed):

    .venv/bin/python crates/rsdos-bench/w3_ab.py [--n 100000] [--rounds 10] [--reads 4] \\
        --workdir DIR  old=DIR1 new=DIR2 [dos=dos] ...

Every round starts one process per build, in turn; each process times `--reads` bulk reads
of the same container (the first in a fresh process, as bench.py times W3; the others
warm) exactly as bench.py's W3 does: `for k, stream, meta in triplets: got[k] =
stream.read()`. Besides the wall time it reports the CPU time of the calling thread
(`time.thread_time`), which moves far less with the machine's neighbours than wall time
does: a bulk read of 100,000 small objects is bound by that thread. Prints, per build, the
medians of the first reads and of the others.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Run in each child process: argv = n, container folder, reads, implementation.
CHILD = r'''
import hashlib, random, sys, time
from w1b import gen_objects
n, folder, reads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if sys.argv[4] == 'dos':
    import disk_objectstore as rsdos
else:
    import rsdos
objects = gen_objects(n, 12345)
keys = list(dict.fromkeys(hashlib.sha256(o).hexdigest() for o in objects))
del objects
random.Random(3).shuffle(keys)
c = rsdos.Container(folder)
for _ in range(reads):
    wall, cpu = time.perf_counter(), time.thread_time()
    got = {}
    with c.get_objects_stream_and_meta(keys) as triplets:
        for key, stream, _meta in triplets:
            got[key] = stream.read()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if len(got) != len(keys):
        raise SystemExit(f'read {len(got)} of {len(keys)} objects')
    del got
    print(f'{wall:.4f} {cpu:.4f}', flush=True)
'''


def make_container(folder: Path, n: int, module_dir: str) -> None:
    """A container of bench.py's objects, all packed (made once, by the first build or
    disk-objectstore)."""
    code = (
        'import sys\nfrom w1b import gen_objects\n'
        'from disk_objectstore import Container\n' if module_dir == 'dos' else
        'import sys\nfrom w1b import gen_objects\nfrom rsdos import Container\n'
    ) + (
        'c = Container(sys.argv[2]); c.init_container()\n'
        'c.add_objects_to_pack(gen_objects(int(sys.argv[1]), 12345)); c.close()\n'
    )
    run(code, module_dir, [str(n), str(folder)])


def run(code: str, module_dir: str, args: list[str]) -> str:
    paths = [str(HERE)] if module_dir == 'dos' else [module_dir, str(HERE)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    done = subprocess.run([sys.executable, '-c', code, *args], env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--n', type=int, default=100_000)
    p.add_argument('--rounds', type=int, default=10)
    p.add_argument('--reads', type=int, default=4)
    p.add_argument('--workdir', type=Path, required=True)
    p.add_argument('builds', nargs='+', help='NAME=DIR: a folder holding an rsdos package, or dos')
    a = p.parse_args()
    builds = [b.split('=', 1) for b in a.builds]
    if any(len(b) != 2 for b in builds):
        p.error('each build is NAME=DIR')
    folders = {'dos': a.workdir / f'w3-ab-dos-{a.n}', 'rsdos': a.workdir / f'w3-ab-{a.n}'}
    for _, module_dir in builds:
        folder = folders['dos' if module_dir == 'dos' else 'rsdos']
        if not (folder / 'packs.idx').exists():
            make_container(folder, a.n, module_dir)
    first: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in builds}
    later: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in builds}
    for _ in range(a.rounds):
        for name, module_dir in builds:
            folder = folders['dos' if module_dir == 'dos' else 'rsdos']
            lines = run(CHILD, module_dir, [str(a.n), str(folder), str(a.reads), module_dir]).split('\n')
            times = [tuple(float(x) for x in line.split()) for line in lines if line.strip()]
            first[name].append(times[0])
            later[name].extend(times[1:])
    med = statistics.median
    for name, _ in builds:
        f, w = first[name], later[name]
        line = f'{name:>12}: first read {med(x[0] for x in f):.3f} s (thread CPU {med(x[1] for x in f):.3f} s)'
        if w:
            line += f', later reads {med(x[0] for x in w):.3f} s (thread CPU {med(x[1] for x in w):.3f} s)'
        print(line + f'  [{len(f)} processes]')


if __name__ == '__main__':
    main()
