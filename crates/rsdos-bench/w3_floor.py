#!/usr/bin/env python3
"""What W3's loop costs in Python alone, without any object store: the floor under any
implementation of `get_objects_stream_and_meta` that hands out Python objects one by one.

Two loops over the same 100,000 keys (bench.py's objects) in random order, each the median
of 9 runs:

- the benchmark's own loop, `for key, stream, meta in items: got[key] = stream.read()`, over
  items made beforehand (the dictionary insert and the `read()` call);
- the same loop making each item as it goes, in Python: the tuple, a minimal stream object
  and the `ObjectMeta` dataclass instance (through its constructor, as disk-objectstore
  does).

Usage (the repository venv, with rsdos installed):

    .venv/bin/python crates/rsdos-bench/w3_floor.py [--n 100000]
"""
from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time

from w1b import gen_objects


class Stream:
    """The least a stream can be: `read()` returns the content."""

    __slots__ = ('content',)

    def __init__(self, content: bytes) -> None:
        self.content = content

    def read(self) -> bytes:
        return self.content


def median_seconds(f, runs: int = 9) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--n', type=int, default=100_000)
    a = p.parse_args()
    from rsdos.container import ObjectType
    from rsdos.dataclasses import ObjectMeta

    by_key = {hashlib.sha256(o).hexdigest(): o for o in gen_objects(a.n, 12345)}
    keys = list(by_key)
    random.Random(3).shuffle(keys)
    items = [(k, Stream(by_key[k]), ObjectMeta(ObjectType.PACKED, len(by_key[k]), 0, False, 0, len(by_key[k])))
             for k in keys]

    def loop_only() -> None:
        got = {}
        for key, stream, _meta in items:
            got[key] = stream.read()

    def loop_making() -> None:
        got = {}
        for k in keys:
            content = by_key[k]
            item = (k, Stream(content), ObjectMeta(ObjectType.PACKED, len(content), 0, False, 0, len(content)))
            key, stream, _meta = item
            got[key] = stream.read()

    print(f'{len(keys)} objects')
    print(f'the loop over ready-made items:            {median_seconds(loop_only):.4f} s')
    print(f'the loop making each item in Python:       {median_seconds(loop_making):.4f} s')


if __name__ == '__main__':
    main()
