"""Streams returned by the container are real binary file objects."""

from __future__ import annotations

import io
import shutil

import pytest
from conftest import sha256

from rsdos import Container

KINDS = ['loose', 'packed', 'packed_compressed', 'big_packed', 'big_packed_compressed']


def make_object(container: Container, kind: str, data: bytes) -> str:
    if kind == 'loose':
        return container.add_object(data)
    compress = kind.endswith('compressed')
    return container.add_objects_to_pack([data], compress=compress)[0]


def data_for(kind: str) -> bytes:
    line = b''.join(b'line %06d: the quick brown fox\n' % i for i in range(200))
    if kind.startswith('big'):
        return line * 300  # about 1.8 MB: read from the pack file, not from memory
    return line


@pytest.mark.parametrize('kind', KINDS)
def test_read_and_seek(container, kind):
    data = data_for(kind)
    key = make_object(container, kind, data)
    with container.get_object_stream(key) as s:
        assert s.mode == 'rb'
        assert s.readable() and s.seekable() and not s.writable()
        assert not s.closed
        assert s.tell() == 0
        assert s.read(10) == data[:10]
        assert s.tell() == 10
        assert s.seek(5) == 5
        assert s.read(5) == data[5:10]
        assert s.seek(100, 1) == 110
        assert s.read(3) == data[110:113]
        assert s.seek(-3, 1) == 110
        assert s.read(3) == data[110:113]
        assert s.seek(0, 2) == len(data)
        assert s.read() == b''
        assert s.seek(-10, 2) == len(data) - 10
        assert s.read() == data[-10:]
        assert s.seek(len(data) // 2) == len(data) // 2
        assert s.read() == data[len(data) // 2 :]
        # backwards after the end, including on compressed objects
        assert s.seek(1) == 1
        assert s.read(4) == data[1:5]
        # past the end
        assert s.seek(len(data) + 100) == len(data) + 100
        assert s.tell() == len(data) + 100
        assert s.read() == b''
        assert s.seek(0) == 0
        assert s.read() == data
        with pytest.raises(ValueError):
            s.seek(-1)
        with pytest.raises(ValueError):
            s.seek(-len(data) - 1, 2)
        with pytest.raises(ValueError):
            s.seek(0, 3)
        assert s.tell() == len(data)
    assert s.closed
    with pytest.raises(ValueError):
        s.read()
    with pytest.raises(ValueError):
        s.tell()
    with pytest.raises(ValueError):
        s.seek(0)


@pytest.mark.parametrize('kind', KINDS)
def test_readinto_readline_iteration(container, kind):
    data = data_for(kind)
    key = make_object(container, kind, data)
    with container.get_object_stream(key) as s:
        buf = bytearray(7)
        assert s.readinto(buf) == 7 and bytes(buf) == data[:7]
        view = memoryview(bytearray(1000))
        assert s.readinto(view) == 1000 and bytes(view) == data[7:1007]
        s.seek(0)
        lines = data.splitlines(keepends=True)
        assert s.readline() == lines[0]
        assert s.readline(5) == lines[1][:5]
        assert s.tell() == len(lines[0]) + 5
        assert s.readline() == lines[1][5:]
        assert list(s) == lines[2:]
        s.seek(0)
        assert s.readlines() == lines
        s.seek(len(data) - 1)
        big = bytearray(100)
        assert s.readinto(big) == 1
        assert s.readinto(big) == 0


@pytest.mark.parametrize('kind', KINDS)
def test_text_io_wrapper_and_copyfileobj(container, kind, tmp_path):
    data = data_for(kind)
    key = make_object(container, kind, data)
    with container.get_object_stream(key) as s:
        text = io.TextIOWrapper(s, encoding='utf8')
        first = text.readline()
        assert first == data.decode().splitlines(keepends=True)[0]
        assert text.read() == data.decode()[len(first) :]
        text.detach()
    with container.get_object_stream(key) as s:
        with io.TextIOWrapper(s, encoding='utf8') as text:
            assert list(text) == data.decode().splitlines(keepends=True)
        assert s.closed
    with container.get_object_stream(key) as s:
        out = io.BytesIO()
        shutil.copyfileobj(s, out)
        assert out.getvalue() == data
    with container.get_object_stream(key) as s, open(tmp_path / 'copy', 'wb') as fh:
        shutil.copyfileobj(s, fh, length=1000)
    assert (tmp_path / 'copy').read_bytes() == data
    with container.get_object_stream(key) as s:
        assert io.BufferedReader(s).read() == data  # type: ignore[arg-type]


def test_stream_misc(container):
    key = container.add_object(b'abc')
    with container.get_object_stream_and_meta(key) as (s, meta):
        assert meta.size == 3
        assert s.size == 3 and s.hashkey == key
        assert not s.isatty()
        s.flush()
        with pytest.raises(io.UnsupportedOperation):
            s.fileno()
        with pytest.raises(io.UnsupportedOperation):
            s.write(b'x')
        with pytest.raises(io.UnsupportedOperation):
            s.truncate()
        assert s.read1(2) == b'ab'
        assert s.read(None) == b'c'
        assert key in repr(s)
    with container.get_object_stream(key) as s:
        with s as inner:
            assert inner is s
        assert s.closed
        s.close()  # idempotent


def test_numpy_roundtrip(container):
    np = pytest.importorskip('numpy')
    arr = np.arange(100_000, dtype=np.float64).reshape(1000, 100)
    buf = io.BytesIO()
    np.save(buf, arr)
    for compress in (False, True):
        key = container.add_objects_to_pack([buf.getvalue()], compress=compress)[0]
        with container.get_object_stream(key) as s:
            assert (np.load(s) == arr).all()


def test_h5py_roundtrip(container, tmp_path):
    h5py = pytest.importorskip('h5py')
    path = tmp_path / 'f.h5'
    with h5py.File(path, 'w') as f:
        f['data'] = list(range(10000))
    content = path.read_bytes()
    keys = [container.add_object(content)]
    keys += container.add_objects_to_pack([content + b''], compress=True)
    for key in keys:
        with container.get_object_stream(key) as s, h5py.File(s, 'r') as f:
            assert list(f['data'][:5]) == [0, 1, 2, 3, 4]


def test_stream_survives_clean_and_pack(container):
    """A loose stream stays readable after its object is packed and the loose file deleted."""
    data = b'x' * 100_000
    key = container.add_object(data)
    with container.get_object_stream(key) as s:
        assert s.read(10) == data[:10]
        container.pack_all_loose()
        container.clean_storage()
        assert s.read() == data[10:]
    assert container.get_object_content(key) == data
    assert sha256(data) == key
