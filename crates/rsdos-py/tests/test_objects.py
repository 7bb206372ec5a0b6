"""Writing and reading objects: loose, packed, bulk, metadata, listing, counts."""

from __future__ import annotations

import io
import os
import random

import pytest
from conftest import random_objects, sha256

from rsdos import CompressMode, Container, ObjectType
from rsdos.dataclasses import ObjectCount, ObjectMeta
from rsdos.exceptions import NotExistent
from rsdos.utils import LazyOpener

MISSING = 'f' * 64


def test_add_object_loose(container):
    key = container.add_object(b'hello')
    assert key == sha256(b'hello')
    assert container.get_object_content(key) == b'hello'
    assert container.has_object(key)
    meta = container.get_object_meta(key)
    assert meta == ObjectMeta(ObjectType.LOOSE, 5, None, None, None, None)
    path = container.get_folder() / 'loose' / key[:2] / key[2:]
    assert path.read_bytes() == b'hello'
    assert container.count_objects() == ObjectCount(packed=0, loose=1, pack_files=0)


def test_add_object_bytes_like(container):
    assert container.add_object(bytearray(b'ab')) == sha256(b'ab')
    assert container.add_object(memoryview(b'abc')) == sha256(b'abc')
    for bad in ('text', 5, None, [1, 2]):
        with pytest.raises(TypeError):
            container.add_object(bad)


def test_empty_object(container):
    key = container.add_object(b'')
    assert key == sha256(b'')
    assert container.get_object_content(key) == b''
    with container.get_object_stream(key) as s:
        assert s.read() == b''
        assert s.read(10) == b''
    packed = container.add_objects_to_pack([b'', b''], compress=True)
    assert packed == [key, key]
    container.pack_all_loose()
    container.clean_storage()
    assert container.get_object_meta(key).type is ObjectType.PACKED
    assert container.get_object_content(key) == b''
    assert container.get_objects_content([key]) == {key: b''}


def test_add_same_object_twice(container):
    k1 = container.add_object(b'same')
    k2 = container.add_object(b'same')
    assert k1 == k2
    assert container.count_objects().loose == 1


def test_add_streamed_object(container):
    data = random_objects(1, 3_000_000)[0]
    key = container.add_streamed_object(io.BytesIO(data))
    assert key == sha256(data)
    assert container.get_object_content(key) == data
    # from the current position
    stream = io.BytesIO(b'skipthis')
    stream.seek(4)
    assert container.add_streamed_object(stream) == sha256(b'this')


def test_add_streamed_object_any_read(container, tmp_path):
    class Trickle:
        """read() returns fewer bytes than asked, and bytearrays."""

        def __init__(self, data):
            self.data = data
            self.pos = 0

        def read(self, n=-1):
            chunk = self.data[self.pos : self.pos + min(n, 7)]
            self.pos += len(chunk)
            return bytearray(chunk)

    data = b'0123456789' * 100
    assert container.add_streamed_object(Trickle(data)) == sha256(data)
    path = tmp_path / 'f.bin'
    path.write_bytes(data * 3)
    with open(path, 'rb') as fh:
        assert container.add_streamed_object(fh) == sha256(data * 3)


def test_add_streamed_object_errors_propagate(container):
    class Broken:
        def read(self, n=-1):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        container.add_streamed_object(Broken())
    with pytest.raises(AttributeError):
        container.add_streamed_object(object())
    # nothing left behind
    assert list((container.get_folder() / 'sandbox').iterdir()) == []


def test_missing_and_invalid_keys(container):
    for key in (MISSING, 'f' * 40, 'UNKNOWN', '', 'A' * 64, '../' * 20):
        with pytest.raises(NotExistent):
            container.get_object_content(key)
        with pytest.raises(NotExistent):
            with container.get_object_stream(key):
                pass
        with pytest.raises(NotExistent):
            with container.get_object_stream_and_meta(key):
                pass
        with pytest.raises(NotExistent):
            container.get_object_meta(key)
        assert container.has_object(key) is False
        with pytest.raises(NotExistent):
            container.loosen_object(key)
    assert container.has_objects(['', MISSING]) == [False, False]


def test_add_objects_to_pack(container):
    objects = [b'a', b'b', b'a', b'', b'c' * 10000]
    keys = container.add_objects_to_pack(objects)
    assert keys == [sha256(o) for o in objects]
    count = container.count_objects()
    assert (count.packed, count.loose, count.pack_files) == (4, 0, 1)
    for o, k in zip(objects, keys):
        assert container.get_object_content(k) == o
        meta = container.get_object_meta(k)
        assert meta.type is ObjectType.PACKED
        assert meta.pack_id == 0 and isinstance(meta.pack_id, int)
        assert meta.pack_compressed is False
        assert meta.pack_length == meta.size == len(o)
    # duplicates of packed content do not grow the pack
    size = container.get_total_size().total_size_packfiles_on_disk
    assert container.add_objects_to_pack([b'a', b'b']) == [sha256(b'a'), sha256(b'b')]
    assert container.get_total_size().total_size_packfiles_on_disk == size


@pytest.mark.parametrize('compress', [True, CompressMode.YES, CompressMode.AUTO])
def test_add_objects_to_pack_compressed(container, compress):
    text = b'compress me ' * 1000
    keys = container.add_objects_to_pack([text, b'x'], compress=compress)
    meta = container.get_object_meta(keys[0])
    assert meta.pack_compressed is True
    assert meta.pack_length < meta.size == len(text)
    assert container.get_object_content(keys[0]) == text
    assert container.get_object_content(keys[1]) == b'x'


def test_add_objects_to_pack_bad_compress(container):
    with pytest.raises(ValueError):
        container.add_objects_to_pack([b'x'], compress='maybe')


def test_pack_size_target(small_container):
    objects = [bytes([i]) * 300 for i in range(10)]
    small_container.add_objects_to_pack(objects)
    count = small_container.count_objects()
    assert count.packed == 10 and count.pack_files >= 3
    packs = sorted((small_container.get_folder() / 'packs').iterdir())
    sizes = [p.stat().st_size for p in packs if p.name.isdigit()]
    assert all(s >= 1000 for s in sizes[:-1])
    for o in objects:
        assert small_container.get_object_content(sha256(o)) == o


def test_add_streamed_objects_to_pack(container, tmp_path):
    datas = [b'one', b'two' * 1000, b'one', b'']
    keys = container.add_streamed_objects_to_pack([io.BytesIO(d) for d in datas])
    assert keys == [sha256(d) for d in datas]
    assert container.count_objects().packed == 3


def test_add_streamed_objects_to_pack_open_streams(container, tmp_path):
    paths = []
    for i in range(20):
        p = tmp_path / f'file{i}'
        p.write_bytes(b'content %d' % i * (i + 1))
        paths.append(p)

    entered = []

    class Tracking(LazyOpener):
        def __enter__(self):
            entered.append(self.path)
            fh = super().__enter__()
            open_now = [o for o in openers if o._fhandle is not None]
            assert len(open_now) == 1, 'only the stream being copied is open'
            return fh

    openers = [Tracking(str(p)) for p in paths]
    keys = container.add_streamed_objects_to_pack(openers, open_streams=True)
    assert keys == [sha256(p.read_bytes()) for p in paths]
    assert len(entered) == 20
    assert all(o._fhandle is None for o in openers)
    for p, k in zip(paths, keys):
        assert container.get_object_content(k) == p.read_bytes()


def test_add_streamed_objects_to_pack_error_in_stream(container):
    class Broken:
        def read(self, n=-1):
            raise OSError('disk on fire')

    with pytest.raises(OSError, match='disk on fire'):
        container.add_streamed_objects_to_pack([io.BytesIO(b'ok'), Broken()])
    # the object before the failure is committed
    assert container.has_object(sha256(b'ok'))
    assert container.validate().is_valid()


def test_add_streamed_object_to_pack(container, callback):
    data = b'streamed ' * 100_000
    key = container.add_streamed_object_to_pack(
        io.BytesIO(data), compress=True, callback=callback, callback_size_hint=len(data)
    )
    assert key == sha256(data)
    assert container.get_object_content(key) == data
    assert container.get_object_meta(key).pack_compressed
    assert callback.phases == [{'description': 'Streamed object', 'total': len(data), 'done': len(data)}]
    key2 = container.add_streamed_object_to_pack(LazyOpener(__file__), open_streams=True)
    with open(__file__, 'rb') as fh:
        assert key2 == sha256(fh.read())


def test_get_objects_content(container):
    loose = [container.add_object(b'loose %d' % i) for i in range(5)]
    packed = container.add_objects_to_pack([b'packed %d' % i for i in range(5)])
    keys = loose + packed + [MISSING, 'bad']
    got = container.get_objects_content(keys)
    assert set(got) == set(loose + packed)
    assert all(got[k] is not None for k in got)
    assert got[loose[0]] == b'loose 0' and got[packed[4]] == b'packed 4'
    got = container.get_objects_content(keys, skip_if_missing=False)
    assert got[MISSING] is None and got['bad'] is None
    assert len(got) == 12
    assert container.get_objects_content([]) == {}


def test_get_objects_stream_and_meta_order_and_missing(small_container):
    c = small_container
    packed = c.add_objects_to_pack([bytes([i]) * 400 for i in range(8)])
    loose = [c.add_object(b'loose %d' % i) for i in range(3)]
    both = c.add_object(bytes([0]) * 400)  # also packed: served from the pack
    assert both == packed[0]
    request = loose + packed[::-1] + [MISSING, MISSING, 'nothex'] + loose
    random.Random(1).shuffle(request)
    with c.get_objects_stream_and_meta(request, skip_if_missing=False) as triplets:
        seen = []
        for key, stream, meta in triplets:
            seen.append((key, meta))
            if meta.type is ObjectType.MISSING:
                assert stream is None and meta.size is None
            else:
                data = stream.read()
                assert sha256(data) == key and len(data) == meta.size
    keys = [k for k, _ in seen]
    assert len(keys) == len(set(keys)) == len(set(request))
    types = [m.type for _, m in seen]
    # packed, then loose, then missing
    assert types == sorted(types, key=[ObjectType.PACKED, ObjectType.LOOSE, ObjectType.MISSING].index)
    packed_meta = [m for _, m in seen if m.type is ObjectType.PACKED]
    assert packed_meta == sorted(packed_meta, key=lambda m: (m.pack_id, m.pack_offset))
    with c.get_objects_stream_and_meta(request) as triplets:
        assert {k for k, _, _ in triplets} == set(loose + packed)


def test_get_objects_stream_valid_until_next(container):
    keys = container.add_objects_to_pack([b'a', b'b'])
    with container.get_objects_stream_and_meta(keys) as triplets:
        first = next(triplets)[1]
        assert not first.closed
        second = next(triplets)[1]
        assert first.closed
        with pytest.raises(ValueError):
            first.read()
        assert second.read() in (b'a', b'b')
    # can be consumed after the with block, as with disk-objectstore
    with container.get_objects_stream_and_meta(keys) as triplets:
        pass
    assert sorted(s.read() for _, s, _ in triplets) == [b'a', b'b']


def test_get_objects_stream_and_meta_many_keys(container):
    objects = random_objects(3000, 200)
    keys = container.add_objects_to_pack(objects[:2000])
    keys += [container.add_object(o) for o in objects[2000:2100]]
    want = dict(zip(keys, objects))
    with container.get_objects_stream_and_meta(keys) as triplets:
        got = {k: s.read() for k, s, _ in triplets}
    assert got == want
    assert container.get_objects_content(keys) == want


def test_bulk_reads_of_many_keys_with_odd_ones(container):
    # A request of 1,024 keys or more reaches Rust as one joined text: keys that are no
    # hashkey, that hold a newline, repeated or missing answer as in a short request, and an
    # item that is not a str is a TypeError.
    objects = random_objects(1500, 100)
    keys = container.add_objects_to_pack(objects)
    want = dict(zip(keys, objects))
    for extra in ([], ['nothex'], [keys[0] + '\n' + keys[1]], [MISSING], [''], [keys[5].upper()]):
        request = keys + keys[:10] + extra
        with container.get_objects_stream_and_meta(request, skip_if_missing=False) as triplets:
            got = {k: (s.read() if s is not None else None) for k, s, _ in triplets}
        assert got == {**want, **dict.fromkeys(extra)}
        assert container.get_objects_content(request, skip_if_missing=False) == {**want, **dict.fromkeys(extra)}
        with container.get_objects_stream_and_meta(request) as triplets:
            assert {k for k, _, _ in triplets} == set(keys)
    for bad in (42, b'bytes', None):
        with pytest.raises(TypeError):
            with container.get_objects_stream_and_meta(keys + [bad]) as triplets:
                list(triplets)
        with pytest.raises(TypeError):
            container.get_objects_content(keys + [bad])


@pytest.mark.parametrize('compress', [False, True])
def test_get_objects_stream_reads_in_pieces(container, compress):
    # Small objects are read from the bulk read's window with the GIL held, large ones (and
    # partial reads of them) released: both give the same bytes, compressed or not.
    objects = random_objects(300, 3000) + [os.urandom(70_000), b'z' * 200_000, b'']
    keys = container.add_objects_to_pack(objects, compress=compress)
    want = dict(zip(keys, objects))
    got = {}
    with container.get_objects_stream_and_meta(keys) as triplets:
        for key, stream, meta in triplets:
            assert stream.hashkey == key
            assert meta.pack_compressed is compress
            head = stream.read(7)
            got[key] = head + stream.read(70_001) + stream.read()
            assert stream.read() == b''
    assert got == want


def test_get_objects_stream_error_after_the_readable_objects(container):
    # 3000 keys: read on a helper thread a batch ahead. A pack cut in half: the objects of the
    # first half come out, then the error is raised (not a hang), then the iteration is over.
    objects = random_objects(3000, 4000)
    keys = container.add_objects_to_pack(objects)
    pack = container.get_folder() / 'packs' / '0'
    size = pack.stat().st_size
    with open(pack, 'r+b') as fh:
        fh.truncate(size // 2)
    want = dict(zip(keys, objects))
    got = {}
    with container.get_objects_stream_and_meta(keys) as triplets:
        with pytest.raises(Exception) as err:
            for key, stream, meta in triplets:
                got[key] = stream.read()
        assert 'pack 0' in str(err.value) and 'truncated' in str(err.value)
        with pytest.raises(StopIteration):
            next(triplets)
    assert len(got) > 100
    assert all(got[k] == want[k] for k in got)


def test_get_objects_stream_iterator_refuses_a_forked_child(container):
    keys = container.add_objects_to_pack(random_objects(2000, 100))
    with container.get_objects_stream_and_meta(keys) as triplets:
        first = next(triplets)
        assert first[1].read() is not None
        pid = os.fork()
        if pid == 0:
            # The child may get what the parent had already read, then only RuntimeError:
            # never a quiet end of the iteration.
            code = 1
            try:
                for _ in range(1000):
                    try:
                        next(triplets)
                    except RuntimeError:
                        code = 0 if code in (0, 1) else code
                        break
                    except StopIteration:
                        code = 3
                        break
                if code == 0:
                    for _ in range(3):
                        try:
                            next(triplets)
                            code = 4
                        except RuntimeError:
                            pass
                        except StopIteration:
                            code = 5
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent goes on as if nothing happened.
        assert len(list(triplets)) == len(set(keys)) - 1


def test_get_objects_meta(container):
    loose = container.add_object(b'l')
    packed = container.add_objects_to_pack([b'p'], compress=True)[0]
    result = list(container.get_objects_meta([loose, packed, MISSING, loose]))
    assert [k for k, _ in result] == [loose, packed]
    assert result[0][1].type is ObjectType.LOOSE and result[0][1].size == 1
    assert result[1][1].type is ObjectType.PACKED and result[1][1].pack_compressed
    result = dict(container.get_objects_meta([loose, MISSING, 'xyz'], skip_if_missing=False))
    assert result[MISSING].type is ObjectType.MISSING
    assert result['xyz'] == ObjectMeta(ObjectType.MISSING, None, None, None, None, None)


def test_object_meta_is_a_complete_frozen_dataclass(container):
    """The module fills ObjectMeta without calling its constructor: it must still compare,
    hash, print and refuse changes exactly as one made by the constructor."""
    import dataclasses

    [key] = container.add_objects_to_pack([b'packed content'])
    meta = container.get_object_meta(key)
    with container.get_objects_stream_and_meta([key]) as triplets:
        [(_, _, streamed_meta)] = list(triplets)
    made = ObjectMeta(ObjectType.PACKED, 14, meta.pack_id, False, meta.pack_offset, 14)
    for m in (meta, streamed_meta):
        assert m == made
        assert hash(m) == hash(made)
        assert repr(m) == repr(made)
        assert dataclasses.asdict(m) == dataclasses.asdict(made)
        assert m['pack_length'] == 14
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.size = 1


def test_has_objects(container):
    loose = container.add_object(b'1')
    packed = container.add_objects_to_pack([b'2'])[0]
    assert container.has_objects([loose, MISSING, packed, loose, '']) == [True, False, True, True, False]
    assert container.has_objects((packed,)) == [True]
    assert container.has_objects([]) == []


def test_list_all_objects(container):
    packed = container.add_objects_to_pack([b'p%d' % i for i in range(5000)])
    loose = [container.add_object(b'l%d' % i) for i in range(50)]
    also_loose = container.add_object(b'p0')
    assert also_loose == packed[0]
    listed = list(container.list_all_objects())
    assert len(listed) == len(set(listed)) == 5050
    assert set(listed) == set(packed) | set(loose)
    # junk in loose/ is ignored
    (container.get_folder() / 'loose' / '.DS_Store').write_text('x')
    (container.get_folder() / 'loose' / 'zz').mkdir()
    assert len(list(container.list_all_objects())) == 5050


def test_count_and_total_size(container):
    assert container.count_objects() == ObjectCount(0, 0, 0)
    container.add_object(b'12345')
    keys = container.add_objects_to_pack([b'abc', b'defgh' * 100], compress=True)
    count = container.count_objects()
    assert count['packed'] == 2 and count['loose'] == 1 and count['pack_files'] == 1
    size = container.get_total_size()
    assert size.total_size_loose == 5
    assert size.total_size_packed == 503
    assert size.total_size_packed_on_disk == sum(container.get_object_meta(k).pack_length for k in keys)
    assert size.total_size_packfiles_on_disk == (container.get_folder() / 'packs' / '0').stat().st_size
    assert size.total_size_packindexes_on_disk == (container.get_folder() / 'packs.idx').stat().st_size


def test_loosen_object(container):
    data = b'packed and compressed ' * 1000
    key = container.add_objects_to_pack([data], compress=True)[0]
    path = container.loosen_object(key)
    assert path.read_bytes() == data
    assert path == container.get_folder() / 'loose' / key[:2] / key[2:]
    assert container.loosen_object(key) == path
    assert container.count_objects().loose == 1
    container.clean_storage()
    assert not path.exists()
    assert container.get_object_content(key) == data


def test_lazy_loose_stream(container):
    data = b'lazy' * 5000
    key = container.add_objects_to_pack([data], compress=True)[0]
    lazy = container.get_lazy_loose_stream(key)
    assert lazy.closed
    with lazy as s:
        assert s.read(4) == b'lazy'
        assert s.seek(-4, 2) == len(data) - 4
        assert s.read() == b'lazy'
        assert s.tell() == len(data)
    assert lazy.closed
    with pytest.raises(ValueError):
        lazy.read()


def test_add_streamed_object_from_files(container, tmp_path):
    """Regular files are read directly from their current position; the position ends at the
    end, as after a Python read()."""
    data = random_objects(1, 2_000_000, seed=5)[0]
    path = tmp_path / 'data.bin'
    path.write_bytes(data)
    with open(path, 'rb') as fh:
        fh.read(10)  # leaves data in the buffer
        assert container.add_streamed_object(fh) == sha256(data[10:])
        assert fh.tell() == len(data)
        assert fh.read() == b''
    with open(path, 'rb', buffering=0) as fh:
        fh.seek(1000)
        assert container.add_streamed_object(fh) == sha256(data[1000:])
        assert fh.tell() == len(data)
    with open(path, 'r+b') as fh:
        assert container.add_streamed_object(fh) == sha256(data)
    with open(path, 'rb') as fh:
        fh.seek(0, 2)
        assert container.add_streamed_object(fh) == sha256(b'')

    class Upper(io.BufferedReader):
        def read(self, n=-1):
            return super().read(n).upper()

    with Upper(io.FileIO(path, 'rb')) as fh:
        assert container.add_streamed_object(fh) == sha256(data.upper())
    with open(path, encoding='latin-1') as fh, pytest.raises(TypeError):
        container.add_streamed_object(fh)
    keys = container.add_streamed_objects_to_pack([open(path, 'rb'), io.BytesIO(data)])
    assert keys == [sha256(data)] * 2
    assert container.get_object_content(keys[0]) == data
