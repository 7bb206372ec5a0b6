"""Container lifecycle, configuration, exceptions and module surface."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from pathlib import Path

import pytest

import rsdos
from rsdos import CompressMode, Container, ObjectType
from rsdos.dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues
from rsdos.exceptions import (
    ClosingNotAllowed,
    InconsistentContent,
    ModificationNotAllowed,
    NotExistent,
    NotInitialised,
    NotInitialisedError,
)


def test_module_surface():
    assert rsdos.Container is Container
    assert {m.value for m in CompressMode} == {'no', 'yes', 'keep', 'auto'}
    assert {m.value for m in ObjectType} == {'loose', 'packed', 'missing'}
    for exc in (NotExistent, NotInitialised, ModificationNotAllowed, ClosingNotAllowed, InconsistentContent):
        assert exc.__bases__ == (Exception,)
    assert issubclass(NotInitialisedError, NotInitialised)
    assert issubclass(NotInitialisedError, FileNotFoundError)
    from rsdos.container import NotExistent as ne2

    assert ne2 is NotExistent
    assert isinstance(rsdos.__version__, str)
    assert rsdos.LOGGER.name == 'rsdos'


def test_signatures_match_disk_objectstore():
    """Every public method of disk-objectstore's Container exists with the same parameters
    and defaults; rsdos may only add keyword-only parameters with defaults after them (such
    as ``init_container(..., *, packs_url=None)``), which no call written for
    disk-objectstore can reach."""
    dos = pytest.importorskip('disk_objectstore')
    for name, member in inspect.getmembers(dos.Container):
        if name.startswith('_'):
            continue
        assert hasattr(Container, name), name
        if isinstance(member, property):
            assert isinstance(getattr(Container, name), property), name
            continue
        if not callable(member):
            continue
        theirs = inspect.signature(member)
        ours = inspect.signature(getattr(Container, name))
        ours_names = list(ours.parameters)
        assert ours_names[: len(theirs.parameters)] == list(theirs.parameters), name
        for extra in ours_names[len(theirs.parameters):]:
            param = ours.parameters[extra]
            assert param.kind is inspect.Parameter.KEYWORD_ONLY, (name, extra)
            assert param.default is not inspect.Parameter.empty, (name, extra)
        for p in theirs.parameters:
            their_default = theirs.parameters[p].default
            our_default = ours.parameters[p].default
            if isinstance(their_default, dos.CompressMode):
                assert our_default.value == their_default.value, (name, p)
            else:
                assert our_default == their_default, (name, p)


def test_dataclasses_frozen_and_getitem():
    for cls in (ObjectCount, ObjectMeta, TotalSize, ValidationIssues):
        assert dataclasses.is_dataclass(cls)
    count = ObjectCount(packed=1, loose=2, pack_files=3)
    assert count['loose'] == 2 and count.pack_files == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        count.loose = 5
    with pytest.raises(KeyError):
        count['nope']
    meta = ObjectMeta(ObjectType.LOOSE, 3, None, None, None, None)
    assert meta['type'] is ObjectType.LOOSE
    issues = ValidationIssues([], [], [], [])
    assert issues.is_valid()
    assert not ValidationIssues([], ['x'], [], []).is_valid()


def test_folder_untouched_until_init(tmp_path):
    folder = tmp_path / 'sub' / 'c'
    c = Container(folder)
    assert not folder.exists()
    assert c.get_folder() == folder.resolve()
    assert not c.is_initialised
    assert not folder.exists()
    c.close()


def test_relative_folder_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = Container('rel')
    assert c.get_folder() == (tmp_path / 'rel').resolve()
    assert c.get_folder().is_absolute()


def test_init_layout_and_config(tmp_path):
    c = Container(tmp_path / 'c')
    c.init_container()
    assert c.is_initialised
    for sub in ('loose', 'packs', 'sandbox', 'duplicates'):
        assert (tmp_path / 'c' / sub).is_dir()
    assert (tmp_path / 'c' / 'packs.idx').is_file()
    config = json.loads((tmp_path / 'c' / 'config.json').read_text())
    assert list(config) == [
        'container_version',
        'loose_prefix_len',
        'pack_size_target',
        'hash_type',
        'container_id',
        'compression_algorithm',
    ]
    assert config['container_version'] == 1
    assert c.loose_prefix_len == 2
    assert c.pack_size_target == 4 * 1024**3
    assert c.hash_type == 'sha256'
    assert c.compression_algorithm == 'zlib+1'
    assert len(c.container_id) == 32 and config['container_id'] == c.container_id


@pytest.mark.parametrize('hash_type,length', [('sha256', 64), ('sha1', 40)])
@pytest.mark.parametrize('prefix', [0, 2, 5])
def test_init_options(tmp_path, hash_type, length, prefix):
    c = Container(tmp_path / 'c')
    c.init_container(hash_type=hash_type, loose_prefix_len=prefix, pack_size_target=12345, compression_algorithm='zlib+9')
    assert (c.hash_type, c.loose_prefix_len, c.pack_size_target, c.compression_algorithm) == (
        hash_type,
        prefix,
        12345,
        'zlib+9',
    )
    key = c.add_object(b'x')
    assert len(key) == length
    path = c.loosen_object(key)
    if prefix:
        assert path == c.get_folder() / 'loose' / key[:prefix] / key[prefix:]
    else:
        assert path == c.get_folder() / 'loose' / key


def test_init_errors(tmp_path):
    c = Container(tmp_path / 'c')
    with pytest.raises(ValueError):
        c.init_container(loose_prefix_len=-1)
    with pytest.raises(ValueError):
        c.init_container(pack_size_target=0)
    with pytest.raises(ValueError):
        c.init_container(hash_type='md5')
    assert not (tmp_path / 'c').exists()
    for bad in ('zlib', 'zlib+0', 'zlib+10', 'gzip+1', 'zstd+0'):
        c2 = Container(tmp_path / f'bad-{bad}')
        with pytest.raises(ValueError):
            c2.init_container(compression_algorithm=bad)
    c.init_container()
    with pytest.raises(FileExistsError):
        c.init_container()
    other = tmp_path / 'nonempty'
    other.mkdir()
    (other / 'file').write_text('x')
    with pytest.raises(FileExistsError):
        Container(other).init_container()


def test_init_clear(tmp_path):
    c = Container(tmp_path / 'c')
    c.init_container()
    first_id = c.container_id
    key = c.add_object(b'data')
    c.add_objects_to_pack([b'packed'])
    c.init_container(clear=True)
    assert c.container_id != first_id
    assert not c.has_object(key)
    assert c.count_objects() == ObjectCount(0, 0, 0)
    # clear also works on a non-empty folder that is not a container
    d = tmp_path / 'junk'
    d.mkdir()
    (d / 'x').write_text('x')
    Container(d).init_container(clear=True)
    assert Container(d).is_initialised


def test_uninitialised_errors(tmp_path):
    c = Container(tmp_path / 'nothing')
    for prop in ('loose_prefix_len', 'pack_size_target', 'hash_type', 'container_id', 'compression_algorithm'):
        with pytest.raises(NotInitialised):
            getattr(c, prop)
    key = '0' * 64
    for call in (
        c.count_objects,
        c.get_total_size,
        lambda: c.get_object_content(key),
        lambda: c.has_object(key),
        lambda: c.list_all_objects(),
        lambda: c.add_object(b'x'),
        c.pack_all_loose,
    ):
        with pytest.raises(FileNotFoundError):
            call()
    with pytest.raises(ValueError):
        c.add_objects_to_pack([b'x'])
    with pytest.raises(ValueError):
        c.add_streamed_objects_to_pack([])


def test_context_manager_and_close(tmp_path):
    with Container(tmp_path / 'c') as c:
        c.init_container()
        key = c.add_object(b'abc')
    assert not c._rs.is_open()
    # usable again after close: reopens lazily
    assert c.get_object_content(key) == b'abc'
    assert c._rs.is_open()
    c.close()
    c.close()  # idempotent
    assert c.get_object_content(key) == b'abc'


def test_config_cached_like_disk_objectstore(tmp_path):
    c = Container(tmp_path / 'c')
    c.init_container()
    cid = c.container_id
    config = json.loads((tmp_path / 'c' / 'config.json').read_text())
    config['container_id'] = 'f' * 32
    (tmp_path / 'c' / 'config.json').write_text(json.dumps(config))
    assert c.container_id == cid  # cached
    assert Container(tmp_path / 'c').container_id == 'f' * 32


def test_invalid_config_is_not_initialised(tmp_path):
    c = Container(tmp_path / 'c')
    c.init_container()
    c.close()
    (tmp_path / 'c' / 'config.json').write_text('not json')
    c2 = Container(tmp_path / 'c')
    assert not c2.is_initialised
    with pytest.raises((ValueError, NotInitialised)):
        c2.count_objects()


def test_missing_index_is_recreated(tmp_path):
    c = Container(tmp_path / 'c')
    c.init_container()
    key = c.add_object(b'loose')
    c.close()
    os.unlink(tmp_path / 'c' / 'packs.idx')
    c2 = Container(tmp_path / 'c')
    assert c2.is_initialised
    assert c2.get_object_content(key) == b'loose'
    assert (tmp_path / 'c' / 'packs.idx').exists()


def test_repr(tmp_path):
    c = Container(tmp_path / 'c')
    assert str(Path(tmp_path / 'c').resolve()) in repr(c)
