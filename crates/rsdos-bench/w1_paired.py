#!/usr/bin/env python3
"""W1 (durable add_object, loose) of disk-objectstore 1.5.0 and rsdos, interleaved finely.

The fsync cost of this kind of shared disk varies 4x within minutes (see the W0 probe of
bench.py), so two W1 runs minutes apart compare the weather more than the code. Here both
containers receive the same objects in alternating slices of --slice calls (the order of the
two is swapped every slice), so both see the same disk; the script prints each one's total and
the ratio. Usage (the repository venv has both packages):

    .venv/bin/python crates/rsdos-bench/w1_paired.py --n 20000 --dir /some/scratch/folder
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from w1b import gen_objects  # noqa: E402  (bench.py's generator, one copy in this folder)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=20_000)
    p.add_argument('--slice', type=int, default=200)
    p.add_argument('--seed', type=int, default=12345)
    p.add_argument('--dir', default=None, help='scratch folder (default: the system temp)')
    a = p.parse_args()

    import disk_objectstore
    import rsdos

    data = gen_objects(a.n, a.seed)
    base = Path(tempfile.mkdtemp(prefix='w1-paired-', dir=a.dir))
    dos = disk_objectstore.Container(base / 'dos')
    dos.init_container()
    ours = rsdos.Container(base / 'rsdos')
    ours.init_container()
    spent = {'dos': 0.0, 'rsdos': 0.0}
    keys = {'dos': [], 'rsdos': []}
    for i, start in enumerate(range(0, a.n, a.slice)):
        part = data[start:start + a.slice]
        order = [('dos', dos), ('rsdos', ours)]
        if i % 2:
            order.reverse()
        for name, c in order:
            t = time.perf_counter()
            keys[name] += [c.add_object(d) for d in part]
            spent[name] += time.perf_counter() - t
    if keys['dos'] != keys['rsdos']:
        print('hashkeys differ', file=sys.stderr)
        return 1
    for name in ('dos', 'rsdos'):
        print(f'{name:6} W1 add_object x {a.n}: {spent[name]:8.2f} s  '
              f'({spent[name] / a.n * 1e6:7.1f} us per object)')
    print(f'ratio dos/rsdos: {spent["dos"] / spent["rsdos"]:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
