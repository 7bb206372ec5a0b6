#!/usr/bin/env python3
"""Times maintenance operations of rsdos and disk-objectstore 1.5.0 on the same containers.

Usage (after `cargo build --release -p rsdos-bench` and scripts/setup-venv.sh; `rsync` must be
installed for disk-objectstore's backup):

    .venv/bin/python crates/rsdos-bench/compare_maintenance.py [--n 100000] [--big-mib 1024]
        [--repeat 3] [--workdir /tmp/rsdos-compare]

A container with n loose objects (0-1000 bytes, half random, half text, as bench/bench.py) and
one with a single big object are written once (loose files placed directly, both
implementations share the layout); each repeat copies them and runs, for each implementation in
turn (order alternating between repeats): pack (no compression; the big object with
compression: zlib+1 for both, and zstd+1 for rsdos), validate, delete every 10th object,
repack (all packs; the big object is not deleted first), backup. Prints the median seconds per
phase and the ratio.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from disk_objectstore import Container
from disk_objectstore import backup_utils

ROOT = Path(__file__).resolve().parents[2]
RSDOS_BENCH = ROOT / "target" / "release" / "rsdos-bench"


def write_loose(folder, contents, algorithm="zlib+1"):
    c = Container(folder)
    c.init_container(clear=True, compression_algorithm="zlib+1")
    c.close()
    if algorithm != "zlib+1":
        cfg = json.loads((Path(folder) / "config.json").read_text())
        cfg["compression_algorithm"] = algorithm
        (Path(folder) / "config.json").write_text(json.dumps(cfg))
    loose = Path(folder) / "loose"
    for data in contents:
        key = hashlib.sha256(data).hexdigest()
        d = loose / key[:2]
        d.mkdir(exist_ok=True)
        (d / key[2:]).write_bytes(data)


def small_objects(n, seed=1):
    rng = random.Random(seed)
    words = [b"energy", b"forces", b"cell", b"kpoints", b"atoms", b"step"]
    out = []
    for i in range(n):
        size = rng.randint(0, 1000)
        if i < n // 2:
            out.append(rng.randbytes(size))
        else:
            buf = b""
            while len(buf) < size:
                buf += rng.choice(words) + b" = %.6f\n" % rng.random()
            out.append(buf[:size])
    return out


def big_object(mib, seed=2):
    rng = random.Random(seed)
    text = b"".join(b"step %d energy = %.8f\n" % (i, rng.random()) for i in range(20000))
    chunks = []
    for _ in range(mib):
        chunks.append(rng.randbytes(512 * 1024))
        chunks.append((text * (1 + (512 * 1024) // len(text)))[: 512 * 1024])
    return b"".join(chunks)


def rsdos_op(op, path, arg=None):
    cmd = [str(RSDOS_BENCH), "op", op, str(path)] + ([arg] if arg else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def dos_backup(path, dest):
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    manager = backup_utils.BackupManager(str(dest), keep=1)
    with Container(path) as c:
        manager.backup_auto_folders(lambda p, prev: backup_utils.backup_container(manager, c, p, prev))


def run_dos(path, compress, work):
    r = {}
    with Container(path) as c:
        r["pack"] = timed(lambda: c.pack_all_loose(compress=compress))
        c.clean_storage()
    with Container(path) as c:
        r["validate"] = timed(lambda: c.validate())
        keys = sorted(c.list_all_objects())
        if len(keys) > 1:
            c.delete_objects(keys[::10])
        r["repack"] = timed(lambda: c.repack())
    r["backup"] = timed(lambda: dos_backup(path, work / "dos-backup"))
    return r


def run_rsdos(path, compress, work):
    r = {"pack": rsdos_op("pack", path, "yes" if compress else "no")}
    rsdos_op("clean", path)
    r["validate"] = rsdos_op("validate", path)
    if not compress:  # the big-object container holds one object: keep it
        rsdos_op("delete-every-10th", path)
    r["repack"] = rsdos_op("repack", path)
    try:
        dest = work / "rsdos-backup"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        r["backup"] = rsdos_op("backup", path, str(dest))
    except subprocess.CalledProcessError:
        pass
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/rsdos-compare")
    a = ap.parse_args()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"writing {a.n} small loose objects and one {a.big_mib} MiB object ...", flush=True)
    write_loose(work / "small.base", small_objects(a.n))
    big = big_object(a.big_mib)
    write_loose(work / "big.base", [big])
    write_loose(work / "big-zstd.base", [big], "zstd+1")
    del big
    cases = [
        ("small", "dos", work / "small.base", False),
        ("small", "rsdos", work / "small.base", False),
        ("big", "dos", work / "big.base", True),
        ("big", "rsdos zlib+1", work / "big.base", True),
        ("big", "rsdos zstd+1", work / "big-zstd.base", True),
    ]
    results = {}
    for rep in range(a.repeat):
        order = cases if rep % 2 == 0 else list(reversed(cases))
        for workload, impl, base, compress in order:
            path = work / "run"
            shutil.rmtree(path, ignore_errors=True)
            shutil.copytree(base, path)
            subprocess.run(["sync"], check=True)
            r = (run_dos if impl == "dos" else run_rsdos)(path, compress, work)
            print(f"repeat {rep} {workload:5} {impl:13} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
            for k, v in r.items():
                results.setdefault((workload, impl, k), []).append(v)
    print()
    print(f"| workload | phase | disk-objectstore 1.5.0 (s) | rsdos (s) | ratio |")
    print(f"|---|---|---:|---:|---:|")
    for workload in ["small", "big"]:
        for phase in ["pack", "validate", "repack", "backup"]:
            dos = results.get((workload, "dos", phase))
            for impl in ["rsdos", "rsdos zlib+1", "rsdos zstd+1"]:
                ours = results.get((workload, impl, phase))
                if not dos or not ours:
                    continue
                d, o = statistics.median(dos), statistics.median(ours)
                print(f"| {workload} ({impl}) | {phase} | {d:.3f} | {o:.3f} | {d / o:.1f}x |")


if __name__ == "__main__":
    sys.exit(main())
