"""Initialises a disk-objectstore container and prints its config.json verbatim.

Usage: dos_config.py OUTDIR PREFIX_LEN PACK_SIZE_TARGET HASH_TYPE COMPRESSION_ALGORITHM

Lets the Rust side compare the exact bytes rsdos writes (key order, separators) with
disk-objectstore's.
"""

import sys
from pathlib import Path

from disk_objectstore import Container


def main():
    outdir, prefix_len, target, hash_type, algorithm = sys.argv[1:6]
    with Container(outdir) as c:
        c.init_container(
            loose_prefix_len=int(prefix_len),
            pack_size_target=int(target),
            hash_type=hash_type,
            compression_algorithm=algorithm,
        )
    sys.stdout.write((Path(outdir) / 'config.json').read_text(encoding='utf-8'))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
