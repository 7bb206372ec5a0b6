#!/usr/bin/env python3
"""Streams one large object out of a container whose packs are on S3 (the local moto server of
the tests), to measure how a stream's reads map to ranged GETs.

Usage (after `scripts/test-servers.sh start`, with the rsdos module installed in .venv):

    .venv/bin/python crates/rsdos-bench/remote_stream.py [--mib 64] [--rounds 3]

Reads `.test-servers/env` for the server's URL and credentials, packs one object of random
bytes into a fresh prefix, uploads it (`upload_pending(seal_open=True)`), and reads it back
through `get_object_stream` in 64 KiB `read()` calls, checking the length; prints the seconds
of each round.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mib', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()

    env = dict(
        line.strip().split('=', 1)
        for line in (REPO / '.test-servers' / 'env').read_text().splitlines()
        if '=' in line
    )
    os.environ['AWS_ACCESS_KEY_ID'] = env['RSDOS_TEST_S3_ACCESS_KEY_ID']
    os.environ['AWS_SECRET_ACCESS_KEY'] = env['RSDOS_TEST_S3_SECRET_ACCESS_KEY']
    import rsdos

    bucket_url = env['RSDOS_TEST_S3_URL']
    scheme_and_bucket, _, query = bucket_url.partition('?')
    url = f'{scheme_and_bucket}/stream-{uuid.uuid4().hex[:8]}?{query}'
    with tempfile.TemporaryDirectory() as tmp:
        container = rsdos.Container(Path(tmp) / 'c')
        container.init_container(packs_url=url, pack_size_target=(args.mib + 1) << 20)
        data = os.urandom(args.mib << 20)
        key = container.add_objects_to_pack([data])[0]
        container.upload_pending(seal_open=True)
        for _ in range(args.rounds):
            start = time.perf_counter()
            total = 0
            with container.get_object_stream(key) as stream:
                while True:
                    chunk = stream.read(65536)
                    if not chunk:
                        break
                    total += len(chunk)
            seconds = time.perf_counter() - start
            if total != len(data):
                raise SystemExit(f'read {total} of {len(data)} bytes')
            print(f'{args.mib} MiB streamed from {scheme_and_bucket}: {seconds:.3f} s')
        container.close()


if __name__ == '__main__':
    main()
