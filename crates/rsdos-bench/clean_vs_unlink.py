#!/usr/bin/env python3
"""W2 clean beside the plain unlink of as many files, in the same run.

The issue's goal for `clean_storage` is "within 1.5x of the plain unlink time measured in the
same run": deleting 100,000 small files costs seconds to minutes on a disk mounted with
`discard`, whatever does it. This script makes two copies of the same n loose objects in the
loose layout (256 shard folders): one a packed rsdos container whose loose copies are to be
cleaned, one a plain folder tree; then it times, alternately and twice over half of the files
each, `os.unlink` of plain files in shard order (one thread, as `rm -r` does) and rsdos'
`clean_storage()`. Usage:

    .venv/bin/python crates/rsdos-bench/clean_vs_unlink.py --n 100000 --dir /some/scratch
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=100_000)
    p.add_argument('--dir', default=None)
    a = p.parse_args()
    import rsdos

    rng = random.Random(7)
    base = Path(tempfile.mkdtemp(prefix='clean-vs-unlink-', dir=a.dir))
    half = a.n // 2
    results = {'unlink': 0.0, 'clean': 0.0}
    for round_ in range(2):
        data = [rng.randbytes(rng.randint(1, 1000)) for _ in range(half)]
        c = rsdos.Container(base / f'c{round_}')
        c.init_container()
        keys = c.add_objects_loose(data)
        c.pack_all_loose()
        plain = base / f'plain{round_}'
        for k, d in zip(keys, data):
            shard = plain / k[:2]
            shard.mkdir(parents=True, exist_ok=True)
            (shard / k[2:]).write_bytes(d)
        os.sync()
        files = sorted(str(plain / k[:2] / k[2:]) for k in set(keys))
        order = ['unlink', 'clean'] if round_ == 0 else ['clean', 'unlink']
        for what in order:
            t = time.perf_counter()
            if what == 'unlink':
                for f in files:
                    os.unlink(f)
            else:
                c.clean_storage()
            results[what] += time.perf_counter() - t
        if c.count_objects().loose != 0:
            print('clean left loose objects', file=sys.stderr)
            return 1
        c.close()
    n = 2 * half
    for what in ('unlink', 'clean'):
        print(f'{what:7} {n} files: {results[what]:7.2f} s ({results[what] / n * 1e6:6.1f} us per file)')
    print(f'clean / plain unlink: {results["clean"] / results["unlink"]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
