"""An `rsdos.Container` whose `init_container()` makes a zstd+1 container, for bench.py's W5
and W7 rows "with zstd" through the same Python API as the other rows.

    PYTHONPATH=crates/rsdos-bench .venv/bin/python ../shared/bench/bench.py \
        --impl dos@$P,rsdos-zstd=rsdos_zstd:Container@$P --workloads W5,W7 --repeat 3

(bench.py's workers inherit PYTHONPATH, so they import this module.)
"""

import rsdos


class Container(rsdos.Container):
    """`rsdos.Container` with zstd+1 as the default compression of new containers."""

    def init_container(self, *args, compression_algorithm: str = 'zstd+1', **kwargs):
        super().init_container(*args, compression_algorithm=compression_algorithm, **kwargs)
