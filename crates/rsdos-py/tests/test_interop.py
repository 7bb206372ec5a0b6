"""Interoperability with the real disk-objectstore 1.5.0 on the same folder, both ways."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest
from conftest import random_objects, sha256

import rsdos

dos = pytest.importorskip('disk_objectstore')


def objects_and_keys(n=300, seed=0):
    objects = random_objects(n, 3000, seed)
    return objects, [sha256(o) for o in objects]


@pytest.mark.parametrize('prefix', [0, 2])
@pytest.mark.parametrize('hash_type', ['sha256', 'sha1'])
def test_dos_writes_rsdos_reads(tmp_path, prefix, hash_type):
    folder = tmp_path / 'c'
    d = dos.Container(folder)
    d.init_container(loose_prefix_len=prefix, hash_type=hash_type, pack_size_target=20_000)
    objects, _ = objects_and_keys()
    packed = d.add_objects_to_pack(objects[:100], compress=False)
    packed_z = d.add_objects_to_pack(objects[100:200], compress=True)
    loose = [d.add_object(o) for o in objects[200:]]
    d.add_object(objects[0])  # loose copy of a packed object
    big = b'big object line\n' * 200_000
    big_key = d.add_streamed_object_to_pack(io.BytesIO(big), compress=True)
    d.close()

    # what disk-objectstore says, gathered before rsdos opens the folder (two SQLite copies
    # must not have the same database open in one process; see test_same_folder_used_by_both)
    keys = packed + packed_z + loose
    d = dos.Container(folder)
    dos_id = d.container_id
    count_d = d.count_objects()
    size_d = d.get_total_size()
    listed_d = sorted(d.list_all_objects())
    metas_d = {k: d.get_object_meta(k) for k in keys[::50]}
    d.close()
    del d

    r = rsdos.Container(folder)
    assert r.is_initialised
    assert (r.hash_type, r.loose_prefix_len, r.pack_size_target) == (hash_type, prefix, 20_000)
    assert r.container_id == dos_id
    assert r.get_objects_content(keys) == dict(zip(keys, objects))
    for k, o in zip(keys[::37], objects[::37]):
        assert r.get_object_content(k) == o
    with r.get_object_stream(big_key) as s:
        assert s.seek(-16, 2) == len(big) - 16
        assert s.read() == b'big object line\n'
        s.seek(1000)
        assert s.read(16) == big[1000:1016]
    count_r = r.count_objects()
    assert (count_r.packed, count_r.loose, count_r.pack_files) == (count_d.packed, count_d.loose, count_d.pack_files)
    size_r = r.get_total_size()
    assert (size_r.total_size_packed, size_r.total_size_packed_on_disk, size_r.total_size_loose) == (
        size_d.total_size_packed,
        size_d.total_size_packed_on_disk,
        size_d.total_size_loose,
    )
    assert sorted(r.list_all_objects()) == listed_d
    for k, md in metas_d.items():
        mr = r.get_object_meta(k)
        assert (mr.type.value, mr.size, mr.pack_id, mr.pack_compressed, mr.pack_offset, mr.pack_length) == (
            md.type.value,
            md.size,
            md.pack_id,
            md.pack_compressed,
            md.pack_offset,
            md.pack_length,
        )
    assert r.validate().is_valid()
    # rsdos maintenance on a dos container, then dos reads everything back
    r.pack_all_loose(compress=True)
    r.clean_storage(vacuum=True)
    r.delete_objects(keys[:10])
    r.repack()
    r.close()
    d = dos.Container(folder)
    assert d.get_objects_content(keys[10:]) == dict(zip(keys[10:], objects[10:]))
    assert not any(d.has_objects(keys[:10]))
    assert d.validate().is_valid()
    assert d.count_objects().loose == 0
    d.close()


@pytest.mark.parametrize('prefix', [0, 2])
def test_rsdos_writes_dos_reads(tmp_path, prefix):
    folder = tmp_path / 'c'
    r = rsdos.Container(folder)
    r.init_container(loose_prefix_len=prefix, pack_size_target=20_000)
    objects, keys = objects_and_keys(seed=1)
    assert r.add_objects_to_pack(objects[:100]) == keys[:100]
    assert r.add_objects_to_pack(objects[100:200], compress=True) == keys[100:200]
    assert [r.add_object(o) for o in objects[200:]] == keys[200:]
    rsdos_id = r.container_id
    r.close()
    config = json.loads((folder / 'config.json').read_text())
    assert config['compression_algorithm'] == 'zlib+1'

    d = dos.Container(folder)
    assert d.container_id == rsdos_id
    assert d.get_objects_content(keys) == dict(zip(keys, objects))
    with d.get_objects_stream_and_meta(keys[100:110]) as it:
        for k, s, m in it:
            assert m.pack_compressed
            assert sha256(s.read()) == k
    assert d.validate().is_valid()
    # dos maintenance on an rsdos container, then rsdos reads everything back
    d.pack_all_loose(compress=True)
    d.clean_storage(vacuum=True)
    d.delete_objects(keys[:5])
    d.repack(compress_mode=dos.CompressMode.AUTO)
    more = [d.add_object(b'written by dos %d' % i) for i in range(10)]
    d.close()
    r = rsdos.Container(folder)
    assert r.get_objects_content(keys[5:]) == dict(zip(keys[5:], objects[5:]))
    assert r.get_objects_content(more) == {k: b'written by dos %d' % i for i, k in enumerate(more)}
    assert not any(r.has_objects(keys[:5]))
    assert r.validate().is_valid()


def run_dos(code: str, folder) -> str:
    """Runs disk-objectstore code in another process (``d`` is the container)."""
    script = f'import disk_objectstore as dos\nd = dos.Container({str(folder)!r})\n' + textwrap.dedent(code)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_same_folder_used_by_both_at_once(tmp_path):
    """An rsdos container stays open while disk-objectstore, in another process, writes, packs
    and cleans the same folder, and the other way round.

    (Not in the same process: two copies of SQLite in one process, rsdos's and Python's
    ``sqlite3`` that disk-objectstore uses, do not see each other's POSIX locks, and closing
    one can delete the WAL the other still uses. See the README.)
    """
    folder = tmp_path / 'c'
    r = rsdos.Container(folder)
    r.init_container()
    k1 = r.add_object(b'from rsdos')
    k2 = run_dos(
        """
        k = d.add_object(b'from dos')
        d.pack_all_loose()
        d.clean_storage()
        print(k)
        """,
        folder,
    ).strip()
    assert r.get_object_meta(k1).type is rsdos.ObjectType.PACKED
    assert r.get_objects_content([k1, k2]) == {k1: b'from rsdos', k2: b'from dos'}
    k3 = r.add_objects_to_pack([b'packed by rsdos'])[0]
    r.delete_objects([k1])
    out = run_dos(
        f"""
        assert d.get_object_content({k3!r}) == b'packed by rsdos'
        assert not d.has_object({k1!r})
        print(d.count_objects().packed)
        d.repack()
        assert d.validate().is_valid()
        """,
        folder,
    )
    assert out.strip() == '2'
    assert r.get_objects_content([k2, k3]) == {k2: b'from dos', k3: b'packed by rsdos'}
    assert r.validate().is_valid()
    r.close()


def test_dos_compress_mode_is_accepted(tmp_path):
    r = rsdos.Container(tmp_path / 'c')
    r.init_container()
    keys = [r.add_object(b'auto ' * 1000)]
    r.pack_all_loose(compress=dos.CompressMode.AUTO)
    assert r.get_object_meta(keys[0]).pack_compressed
    r.repack(compress_mode=dos.CompressMode.NO)
    assert not r.get_object_meta(keys[0]).pack_compressed


def test_byte_identical_packs(tmp_path):
    """Same objects written to packs by both: same offsets, lengths and pack bytes (stock zlib
    at level 1, as CPython)."""
    objects, _ = objects_and_keys(200, seed=3)
    unique = list(dict.fromkeys(objects))
    a = rsdos.Container(tmp_path / 'a')
    a.init_container()
    b = dos.Container(tmp_path / 'b')
    b.init_container()
    for o in unique:
        ka = a.add_objects_to_pack([o], compress=True)[0]
        kb = b.add_objects_to_pack([o], compress=True)[0]
        assert ka == kb
        ma, mb = a.get_object_meta(ka), b.get_object_meta(kb)
        assert (ma.pack_offset, ma.pack_length, ma.size) == (mb.pack_offset, mb.pack_length, mb.size)
    b.close()
    assert (tmp_path / 'a' / 'packs' / '0').read_bytes() == (tmp_path / 'b' / 'packs' / '0').read_bytes()


def test_dos_lazy_opener_works_with_rsdos(tmp_path):
    p = tmp_path / 'f'
    p.write_bytes(b'lazy')
    r = rsdos.Container(tmp_path / 'c')
    r.init_container()
    assert r.add_streamed_objects_to_pack([dos.utils.LazyOpener(str(p))], open_streams=True) == [sha256(b'lazy')]
