#!/usr/bin/env python3
"""W3 (bulk read of n packed objects in random order) of disk-objectstore 1.5.0 and rsdos,
interleaved round by round in one process, so that both see the same machine.

Usage (after scripts/setup-venv.sh and `maturin develop --release` of crates/rsdos-py into
.venv, see scripts/test-python.sh):

    .venv/bin/python crates/rsdos-bench/w3_interleaved.py [--n 100000] [--rounds 7] [--workdir DIR]

Both containers get the same objects (`gen_objects` of the shared bench harness, via w1b.py)
with `add_objects_to_pack` (not timed). Each round reads every distinct key in one shuffled
order, exactly as bench.py's W3 does: `for k, stream, meta in triplets: got[k] = stream.read()`,
and checks the count. Also timed for rsdos alone: planning the read (`open_many` of the Rust
engine: the index scan and the sort by pack and offset, no object handed over). Prints the
medians and the ratio.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from w1b import gen_objects


def bulk_read(container, keys: list[str]) -> int:
    got = {}
    with container.get_objects_stream_and_meta(keys) as triplets:
        for key, stream, _meta in triplets:
            got[key] = stream.read()
    return len(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--n', type=int, default=100_000)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--seed', type=int, default=12345)
    parser.add_argument('--workdir', default=None)
    args = parser.parse_args()

    import disk_objectstore
    import rsdos

    objects = gen_objects(args.n, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix='w3-', dir=args.workdir))
    try:
        containers = {}
        keys: list[str] = []
        for name, module in (('dos', disk_objectstore), ('rsdos', rsdos)):
            container = module.Container(str(workdir / name))
            container.init_container()
            keys = container.add_objects_to_pack(objects)
            containers[name] = container
        unique = list(dict.fromkeys(keys))
        random.Random(args.seed + 3).shuffle(unique)
        times: dict[str, list[float]] = {'dos': [], 'rsdos': [], 'rsdos planning': []}
        for _ in range(args.rounds):
            for name, container in containers.items():
                start = time.perf_counter()
                count = bulk_read(container, unique)
                times[name].append(time.perf_counter() - start)
                if count != len(unique):
                    raise SystemExit(f'{name}: read {count} of {len(unique)} objects')
            start = time.perf_counter()
            containers['rsdos']._rs.open_many(unique, True)
            times['rsdos planning'].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, median in medians.items():
            print(f'{name:16} median {median:.4f} s  ({", ".join(f"{t:.3f}" for t in times[name])})')
        print(f'ratio dos / rsdos: {medians["dos"] / medians["rsdos"]:.2f}x')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
