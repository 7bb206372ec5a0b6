"""Batched loose writes: ``Container.write_batch()`` and ``Container.add_objects_loose()``."""

from __future__ import annotations

import io
import os
import threading

import pytest

import rsdos

from conftest import sha256


def _contents(n: int, seed: int = 0) -> list[bytes]:
    rng = __import__('random').Random(seed)
    return [rng.randbytes(rng.randint(0, 1000)) for _ in range(n)]


def _sandbox(container: rsdos.Container) -> list[str]:
    return os.listdir(container.get_folder() / 'sandbox')


def test_names_do_not_clash_with_disk_objectstore():
    dos = pytest.importorskip('disk_objectstore')
    for name in ('write_batch', 'add_objects_loose'):
        assert not hasattr(dos.Container, name), name


def test_context_manager_commits_on_normal_exit(container):
    data = _contents(200)
    with container.write_batch() as batch:
        keys = []
        for i, d in enumerate(data):
            if i % 3 == 0:
                keys.append(batch.add_streamed_object(io.BytesIO(d)))
            else:
                keys.append(batch.add_object(d))
        assert keys == [sha256(d) for d in data]
        # Not visible before the batch is flushed.
        assert not any(container.has_objects(keys))
        assert container.count_objects().loose == 0
    assert batch.closed
    assert container.has_objects(keys) == [True] * len(keys)
    for key, d in zip(keys, data):
        assert container.get_object_content(key) == d
    assert container.count_objects().loose == len(set(keys))
    assert _sandbox(container) == []
    assert container.validate().is_valid()


def test_context_manager_discards_on_exception(container):
    with pytest.raises(RuntimeError, match='boom'):
        with container.write_batch() as batch:
            key = batch.add_object(b'never stored')
            assert _sandbox(container) != []
            raise RuntimeError('boom')
    assert batch.closed
    assert not container.has_object(key)
    assert _sandbox(container) == []
    with pytest.raises(ValueError, match='closed'):
        batch.add_object(b'x')


def test_flush_commit_and_report(container):
    batch = container.write_batch()
    a = batch.add_object(b'a')
    batch.add_object(bytearray(b'a'))  # bytes-like, a repeat
    assert batch.pending == 1
    batch.flush()
    assert batch.pending == 0
    assert container.get_object_content(a) == b'a'
    b = batch.add_object(memoryview(b'b'))
    assert not container.has_object(b)
    assert batch.commit() == {'added': 3, 'written': 2, 'flushes': 2}
    assert container.get_object_content(b) == b'b'
    with pytest.raises(ValueError, match='closed'):
        batch.commit()
    batch.discard()  # idempotent on a closed batch


def test_dropping_an_uncommitted_batch_leaves_nothing(container):
    batch = container.write_batch()
    keys = [batch.add_object(d) for d in _contents(20, seed=1)]
    del batch
    import gc

    gc.collect()
    assert not any(container.has_objects(keys))
    assert _sandbox(container) == []


def test_per_file_fsync_path(container):
    data = _contents(30, seed=5)
    with container.write_batch(max_objects=7, use_syncfs=False) as batch:
        keys = [batch.add_object(d) for d in data]
    assert [container.get_object_content(k) for k in keys] == data
    assert _sandbox(container) == []


def test_bounds_flush_by_themselves(container):
    with pytest.raises(ValueError):
        container.write_batch(max_objects=0)
    batch = container.write_batch(max_objects=4)
    keys = [batch.add_object(d) for d in _contents(10, seed=2)]
    assert batch.pending == 2
    assert container.has_objects(keys[:8]) == [True] * 8
    assert not any(container.has_objects(keys[8:]))
    assert batch.commit()['flushes'] == 3
    batch = container.write_batch(max_bytes=100)
    batch.add_object(b'x' * 150)
    assert batch.pending == 0
    batch.commit()


def test_duplicates_against_loose_and_packed(container):
    loose = container.add_object(b'loose')
    (packed,) = container.add_objects_to_pack([b'packed'])
    keys = container.add_objects_loose([b'loose', b'packed', b'new', b'new'])
    assert keys == [loose, packed, sha256(b'new'), sha256(b'new')]
    counts = container.count_objects()
    assert (counts.loose, counts.packed) == (2, 1)
    assert container.get_object_meta(packed).type is rsdos.ObjectType.PACKED


def test_add_objects_loose_then_pack(container):
    data = _contents(500, seed=3)
    keys = container.add_objects_loose(data)
    assert keys == [sha256(d) for d in data]
    assert container.add_objects_loose([]) == []
    container.pack_all_loose()
    container.clean_storage()
    counts = container.count_objects()
    assert (counts.loose, counts.packed) == (0, len(set(keys)))
    assert container.get_objects_content(keys) == dict(zip(keys, data))
    assert container.validate().is_valid()


def test_add_objects_loose_rejects_non_bytes_before_writing(container):
    with pytest.raises(TypeError):
        container.add_objects_loose([b'ok', 42])
    assert container.count_objects().loose == 0
    assert _sandbox(container) == []


def test_a_failing_stream_leaves_the_batch_usable(container):
    class Broken:
        def read(self, size=-1):
            raise OSError('broken stream')

    with container.write_batch() as batch:
        key = batch.add_object(b'kept')
        with pytest.raises(OSError, match='broken stream'):
            batch.add_streamed_object(Broken())
    assert container.get_object_content(key) == b'kept'
    assert _sandbox(container) == []


def test_batches_from_several_threads(container):
    data = _contents(400, seed=4)
    keys: list[list[str]] = [[] for _ in range(4)]

    def work(t: int) -> None:
        with container.write_batch(max_objects=37) as batch:
            keys[t] = [batch.add_object(d) for d in data[t::4]]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = {k for ks in keys for k in ks}
    assert stored == {sha256(d) for d in data}
    assert all(container.has_objects(sorted(stored)))
    assert _sandbox(container) == []
