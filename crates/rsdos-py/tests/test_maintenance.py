"""Maintenance: pack_all_loose, clean_storage, repack, validate, delete, import, lock_pack,
progress callbacks."""

from __future__ import annotations

import os
import sqlite3

import pytest
from conftest import corrupt_file, random_objects, sha256

import rsdos
from rsdos import CompressMode, Container, ObjectType
from rsdos.exceptions import InconsistentContent, NotExistent


def add_loose(container, objects):
    return [container.add_object(o) for o in objects]


@pytest.mark.parametrize(
    'compress,expect_compressed',
    [(False, False), (True, True), (CompressMode.NO, False), (CompressMode.YES, True), (CompressMode.KEEP, False)],
)
def test_pack_all_loose(container, compress, expect_compressed):
    objects = random_objects(200)
    keys = add_loose(container, objects)
    container.pack_all_loose(compress=compress)
    count = container.count_objects()
    assert count.packed == 200 and count.loose == 200
    for k in keys:
        meta = container.get_object_meta(k)
        assert meta.type is ObjectType.PACKED
        assert meta.pack_compressed is expect_compressed
    container.clean_storage()
    assert container.count_objects().loose == 0
    assert container.get_objects_content(keys) == dict(zip(keys, objects))
    assert container.validate().is_valid()


def test_pack_all_loose_auto(container):
    text = b'very compressible ' * 1000
    noise = os.urandom(20000)
    keys = add_loose(container, [text, noise])
    container.pack_all_loose(compress=CompressMode.AUTO)
    assert container.get_object_meta(keys[0]).pack_compressed is True
    assert container.get_object_meta(keys[1]).pack_compressed is False


def test_pack_all_loose_clean_per_pack_and_callback(small_container, callback):
    objects = [bytes([i]) * 500 for i in range(20)]
    keys = add_loose(small_container, objects)
    small_container.pack_all_loose(clean_loose_per_pack=True, callback=callback)
    count = small_container.count_objects()
    assert (count.packed, count.loose) == (20, 0)
    assert count.pack_files >= 5
    assert len(callback.phases) == 1
    phase = callback.phases[0]
    assert phase['done'] == phase['total'] > 0
    assert small_container.get_objects_content(keys) == dict(zip(keys, objects))


def test_pack_all_loose_twice_and_nothing_to_do(container):
    add_loose(container, [b'a', b'b'])
    container.pack_all_loose()
    container.pack_all_loose()
    assert container.count_objects().packed == 2
    container.clean_storage()
    container.pack_all_loose()
    assert container.count_objects().packed == 2


def test_pack_all_loose_corrupt_loose(container):
    good = container.add_object(b'good')
    bad = container.add_object(b'bad')
    corrupt_file(container.get_folder() / 'loose' / bad[:2] / bad[2:])
    with pytest.raises(InconsistentContent, match=bad):
        container.pack_all_loose()
    assert container.get_object_meta(good).type is ObjectType.PACKED
    assert container.get_object_meta(bad).type is ObjectType.LOOSE
    container.pack_all_loose(validate_objects=False)  # reported only with validate_objects
    assert container.validate().invalid_hashes_loose == [bad]


def test_clean_storage_vacuum(container):
    keys = add_loose(container, random_objects(50))
    container.pack_all_loose()
    container.clean_storage(vacuum=True)
    assert container.count_objects().loose == 0
    assert all(container.has_objects(keys))


def test_clean_storage_duplicates(container):
    key = container.add_object(b'original')
    dups = container.get_folder() / 'duplicates'
    (dups / f'{key}.aaaa').write_bytes(b'original')
    (dups / f'{key}.bbbb').write_bytes(b'wrong')
    container.clean_storage()
    assert list(dups.iterdir()) == []
    assert container.get_object_content(key) == b'original'
    # the loose file is wrong: restored from a correct duplicate
    loose = container.get_folder() / 'loose' / key[:2] / key[2:]
    corrupt_file(loose)
    (dups / f'{key}.cccc').write_bytes(b'original')
    container.clean_storage()
    assert loose.read_bytes() == b'original'
    assert list(dups.iterdir()) == []


def test_delete_objects(container):
    loose = container.add_object(b'loose')
    packed, also = container.add_objects_to_pack([b'packed', b'also'])
    both = container.add_object(b'also')
    assert both == also
    (container.get_folder() / 'duplicates' / f'{loose}.1234').write_bytes(b'loose')
    deleted = container.delete_objects([loose, packed, also, 'f' * 64, 'nothex', loose])
    assert sorted(deleted) == sorted([loose, packed, also])
    assert container.has_objects([loose, packed, also]) == [False, False, False]
    assert list((container.get_folder() / 'duplicates').iterdir()) == []
    with pytest.raises(NotExistent):
        container.get_object_content(packed)
    assert container.delete_objects([]) == []
    assert container.delete_objects([packed]) == []
    assert container.validate().is_valid()


def test_repack_removes_holes(small_container, callback):
    c = small_container
    objects = [bytes([i]) * 300 for i in range(12)]
    keys = c.add_objects_to_pack(objects)
    c.delete_objects(keys[::2])
    before = c.get_total_size()
    assert before.total_size_packfiles_on_disk > before.total_size_packed_on_disk
    c.repack(callback=callback)
    after = c.get_total_size()
    assert after.total_size_packfiles_on_disk == after.total_size_packed_on_disk == 300 * 6
    assert c.get_objects_content(keys[1::2]) == dict(zip(keys[1::2], objects[1::2]))
    assert c.validate().is_valid()
    assert all(p['done'] == p['total'] for p in callback.phases)


@pytest.mark.parametrize('mode', [CompressMode.YES, CompressMode.NO, CompressMode.AUTO, CompressMode.KEEP])
def test_repack_compress_modes(container, mode):
    text = b'compressible text ' * 500
    noise = os.urandom(5000)
    keys = container.add_objects_to_pack([text, noise], compress=False)
    container.repack(compress_mode=mode)
    metas = [container.get_object_meta(k) for k in keys]
    expected = {
        CompressMode.YES: [True, True],
        CompressMode.NO: [False, False],
        CompressMode.AUTO: [True, False],
        CompressMode.KEEP: [False, False],
    }[mode]
    assert [m.pack_compressed for m in metas] == expected
    assert container.get_object_content(keys[0]) == text
    assert container.get_object_content(keys[1]) == noise
    # and back
    container.repack(compress_mode=CompressMode.NO)
    assert [container.get_object_meta(k).pack_compressed for k in keys] == [False, False]
    assert container.validate().is_valid()


def test_repack_pack(small_container):
    c = small_container
    keys = c.add_objects_to_pack([bytes([i]) * 600 for i in range(4)])
    pack_of = c.get_object_meta(keys[1]).pack_id
    c.delete_objects([keys[0]])
    c.repack_pack(str(pack_of))
    assert c.get_object_content(keys[1]) == bytes([1]) * 600
    size = c.get_total_size()
    assert size.total_size_packfiles_on_disk == size.total_size_packed_on_disk
    with pytest.raises(ValueError):
        c.repack_pack('01')
    with pytest.raises(ValueError):
        c.repack_pack('abc')


def test_validate_detects_problems(container, callback):
    loose = container.add_object(b'loose content')
    packed = container.add_objects_to_pack([b'packed content', b'second'])
    compressed = container.add_objects_to_pack([b'compressed ' * 100], compress=True)[0]
    issues = container.validate(callback=callback)
    assert issues.is_valid()
    assert [p['description'] for p in callback.phases]
    assert all(p['done'] == p['total'] for p in callback.phases)

    corrupt_file(container.get_folder() / 'loose' / loose[:2] / loose[2:], b'other content')
    with open(container.get_folder() / 'packs' / '0', 'r+b') as fh:
        fh.seek(container.get_object_meta(packed[0]).pack_offset)
        fh.write(b'X')
    issues = container.validate()
    assert not issues.is_valid()
    assert issues.invalid_hashes_loose == [loose]
    assert issues['invalid_hashes_packed'] == [packed[0]]
    assert issues.rsdos_report['invalid_hashes_packed'] == [packed[0]]
    assert container.get_object_content(compressed) == b'compressed ' * 100


def test_validate_overlapping_and_sizes(container):
    keys = container.add_objects_to_pack([b'aaaa', b'bbbb'])
    container.close()
    db = sqlite3.connect(container.get_folder() / 'packs.idx')
    db.execute('UPDATE db_object SET "offset" = 2 WHERE hashkey = ?', (keys[1],))
    db.commit()
    db.close()
    issues = container.validate()
    assert keys[1] in issues.overlapping_packed
    assert not issues.is_valid()


def test_validate_missing_pack(container):
    keys = container.add_objects_to_pack([b'lost'])
    container.close()
    os.unlink(container.get_folder() / 'packs' / '0')
    issues = container.validate()
    assert issues.invalid_hashes_packed == keys
    assert issues.rsdos_report['missing_packs'] == [0]
    # the row points to a pack that is gone: the content is lost
    with pytest.raises((NotExistent, FileNotFoundError)):
        container.get_object_content(keys[0])


def test_corrupt_compressed_object_raises(container):
    data = b'zlib data ' * 1000
    key = container.add_objects_to_pack([data], compress=True)[0]
    meta = container.get_object_meta(key)
    with open(container.get_folder() / 'packs' / '0', 'r+b') as fh:
        fh.seek(meta.pack_offset + meta.pack_length // 2)
        fh.write(b'\xff' * 8)
    with pytest.raises(InconsistentContent):
        container.get_object_content(key)
    with pytest.raises(InconsistentContent):
        with container.get_object_stream(key) as s:
            s.read()
    assert key in container.validate().invalid_hashes_packed


@pytest.mark.parametrize('same_hash', [True, False])
def test_import_objects(tmp_path, same_hash, callback):
    src = Container(tmp_path / 'src')
    src.init_container(hash_type='sha256')
    dst = Container(tmp_path / 'dst')
    dst.init_container(hash_type='sha256' if same_hash else 'sha1')
    objects = random_objects(300)
    src_keys = src.add_objects_to_pack(objects[:200]) + add_loose(src, objects[200:])
    already = dst.add_object(objects[0])
    mapping = dst.import_objects(src_keys + ['f' * 64, 'bad'], src, callback=callback)
    if same_hash:
        assert set(mapping) == set(src_keys[1:])
        assert all(k == v for k, v in mapping.items())
    else:
        assert set(mapping) == set(src_keys)
        assert mapping[src_keys[0]] == already
    for k, o in zip(src_keys, objects):
        new = k if same_hash else mapping[k]
        assert dst.get_object_content(new) == o
    assert dst.count_objects().packed == (299 if same_hash else 300)
    assert callback.phases


def test_import_from_disk_objectstore_container(tmp_path):
    dos = pytest.importorskip('disk_objectstore')
    src = dos.Container(tmp_path / 'src')
    src.init_container()
    keys = src.add_objects_to_pack([b'one', b'two'], compress=True) + [src.add_object(b'three')]
    src.close()
    dst = Container(tmp_path / 'dst')
    dst.init_container()
    mapping = dst.import_objects(keys, src)
    assert set(mapping) == set(keys)
    assert dst.get_objects_content(keys) == {keys[0]: b'one', keys[1]: b'two', keys[2]: b'three'}


def test_lock_pack(container):
    with container.lock_pack('0') as pack:
        assert pack.mode == 'ab'
        assert pack.tell() == 0
        assert pack.write(b'raw bytes') == 9
        pack.flush()
        pack.fsync()
        assert pack.tell() == 9
        with pytest.raises(FileExistsError):
            with container.lock_pack('0'):
                pass
        with pytest.raises(FileExistsError):
            with Container(container.get_folder()).lock_pack(0):
                pass
    assert pack.closed
    # released: can lock again; the unreferenced bytes are a hole, removed by repack
    with container.lock_pack('0') as pack:
        assert pack.tell() == 9
    with pytest.raises(ValueError):
        with container.lock_pack('-1', allow_repack_pack=True):
            pass
    with pytest.raises(ValueError):
        with container.lock_pack('x'):
            pass
    container.repack()
    assert container.count_objects().pack_files == 0


def test_callback_exception_stops_operation(container):
    add_loose(container, random_objects(100))

    def bad(*, action, value):
        if action == 'update':
            raise KeyError('stop here')

    with pytest.raises(KeyError, match='stop here'):
        container.pack_all_loose(callback=bad)
    # the container stays consistent; packing again finishes the job
    container.pack_all_loose()
    container.clean_storage()
    assert container.count_objects().packed == 100
    assert container.validate().is_valid()


def test_callbacks_of_bulk_writes(container, callback):
    container.add_objects_to_pack([b'%d' % i for i in range(1000)], callback=callback)
    import io

    container.add_streamed_objects_to_pack([io.BytesIO(b'x%d' % i) for i in range(10)], callback=callback)
    assert [(p['description'], p['total'], p['done']) for p in callback.phases] == [
        ('Bulk storing', 1000, 1000),
        ('Bulk storing', 10, 10),
    ]


def test_rsdos_extras(tmp_path):
    c = Container(tmp_path / 'c')
    c.init_container(compression_algorithm='zstd+3')
    assert c.compression_algorithm == 'zstd+3'
    text = b'zstd text ' * 1000
    key = c.add_objects_to_pack([text], compress=True)[0]
    assert c.get_object_content(key) == text
    with c.get_object_stream(key) as s:
        assert s.seek(-4, 2) == len(text) - 4
        assert s.read() == text[-4:]
    z = Container(tmp_path / 'z')
    z.init_container()
    zkey = z.add_objects_to_pack([text], compress=True)[0]
    report = z.migrate_to_zstd(level=5)
    assert report['objects_recompressed'] == 1
    assert z.compression_algorithm == 'zstd+5'
    assert z.get_object_content(zkey) == text
    backup = c.backup(tmp_path / 'backups')
    copy = Container(backup['container_path'])
    assert copy.get_object_content(key) == text
    report = c.rebuild_index()
    assert isinstance(report, dict)
    assert c.get_object_content(key) == text


def test_locked_error_is_timeout():
    assert issubclass(rsdos.LockedError, TimeoutError)
