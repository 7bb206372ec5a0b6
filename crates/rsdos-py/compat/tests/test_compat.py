"""`import disk_objectstore` gives rsdos, with every module and name aiida-core uses."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import os
from pathlib import Path

import pytest

import rsdos


def test_package_is_rsdos():
    import disk_objectstore

    assert disk_objectstore.Container is rsdos.Container
    assert disk_objectstore.CompressMode is rsdos.CompressMode
    assert disk_objectstore.ObjectType is rsdos.ObjectType
    assert disk_objectstore.__version__ == '1.5.0'
    assert disk_objectstore.__rsdos_version__ == rsdos.__version__
    assert disk_objectstore.LOGGER.name == 'disk_objectstore'
    version = importlib.metadata.version('disk-objectstore')
    assert version.startswith('1.5.0+rsdos')


def test_names_used_by_aiida_core():
    from disk_objectstore import CompressMode, Container, backup_utils  # noqa: F401
    from disk_objectstore.backup_utils import BackupError, BackupManager, backup_container  # noqa: F401
    from disk_objectstore.container import NotExistent, ObjectType  # noqa: F401
    from disk_objectstore.dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues  # noqa: F401
    from disk_objectstore.exceptions import (  # noqa: F401
        ClosingNotAllowed,
        InconsistentContent,
        ModificationNotAllowed,
        NotInitialised,
    )
    from disk_objectstore.utils import LazyOpener, nullcontext  # noqa: F401

    assert NotExistent is rsdos.NotExistent
    assert issubclass(BackupError, Exception)


def test_aiida_style_usage(tmp_path):
    """What aiida-core's DiskObjectStoreRepositoryBackend does, through disk_objectstore."""
    from disk_objectstore import CompressMode, Container
    from disk_objectstore.utils import LazyOpener

    container = Container(tmp_path / 'container')
    assert isinstance(container, Container)
    with container as c:
        c.init_container(clear=True, pack_size_target=4 * 1024**3, loose_prefix_len=2, hash_type='sha256', compression_algorithm='zlib+1')
    with container as c:
        assert c.is_initialised
        keys = [c.add_streamed_object(io.BytesIO(b'content %d' % i)) for i in range(10)]
        assert c.has_objects(keys) == [True] * 10
    with container as c:
        with c.get_object_stream(keys[0]) as handle:
            assert handle.read() == b'content 0'
        with c.get_objects_stream_and_meta(keys) as triplets:
            assert {k: s.read() for k, s, _ in triplets} == {k: b'content %d' % i for i, k in enumerate(keys)}
        count = c.count_objects()
        assert dataclasses.asdict(count) == {'packed': 0, 'loose': 10, 'pack_files': 0}
        assert dataclasses.asdict(c.get_total_size())['total_size_loose'] > 0
        c.pack_all_loose(compress=CompressMode.AUTO, callback=lambda action, value: None, clean_loose_per_pack=True)
        c.repack(callback=lambda action, value: None)
        c.clean_storage(vacuum=True)
        assert c.delete_objects(keys[:2])
        assert len(list(c.list_all_objects())) == 8
        path = tmp_path / 'legacy.txt'
        path.write_bytes(b'legacy repository file')
        (key,) = c.add_streamed_objects_to_pack([LazyOpener(str(path))], compress=False, open_streams=True)
        assert c.get_object_content(key) == b'legacy repository file'
        assert c.hash_type == 'sha256' and c.compression_algorithm == 'zlib+1'
        assert len(c.container_id) == 32


def test_backup_manager_validation(tmp_path):
    from disk_objectstore.backup_utils import BackupManager, split_remote_and_path

    with pytest.raises(ValueError):
        BackupManager(str(tmp_path / 'b'), keep=-1)
    with pytest.raises(ValueError):
        BackupManager(str(tmp_path / 'b'), rsync_exe='no-such-rsync-exe')
    with pytest.raises(ValueError):
        split_remote_and_path('a:b:c')
    assert split_remote_and_path('host:/p') == ('host', Path('/p'))
    assert split_remote_and_path('/p') == (None, Path('/p'))
    with pytest.raises(ValueError):
        BackupManager(str(tmp_path / 'missing' / 'deeper'))
    m = BackupManager(str(tmp_path / 'b'))
    assert m.path.is_dir()
    assert m.check_path_exists(m.path)
    assert m.run_cmd(['ls', str(m.path)]) == (True, '')


def test_backup_container_incremental(tmp_path):
    from disk_objectstore import Container
    from disk_objectstore.backup_utils import BackupManager, backup_container

    c = Container(tmp_path / 'c')
    c.init_container()
    packed = c.add_objects_to_pack([b'packed %d' % i for i in range(50)])
    loose = [c.add_object(b'loose %d' % i) for i in range(20)]
    manager = BackupManager(str(tmp_path / 'backups'), keep=1)
    manager.backup_auto_folders(lambda path, prev: backup_container(manager, c, path, prev))
    more = [c.add_object(b'more %d' % i) for i in range(5)]
    manager.backup_auto_folders(lambda path, prev: backup_container(manager, c, path, prev))
    folders = manager.get_existing_backup_folders()
    assert len(folders) == 2
    last = tmp_path / 'backups' / 'last-backup'
    assert last.is_symlink() and last.resolve() == folders[-1]
    first, second = folders
    # unchanged loose objects and packs are hard links to the previous backup
    k = loose[0]
    assert os.stat(first / 'loose' / k[:2] / k[2:]).st_ino == os.stat(second / 'loose' / k[:2] / k[2:]).st_ino
    assert os.stat(first / 'packs' / '0').st_ino == os.stat(second / 'packs' / '0').st_ino
    restored = Container(second)
    assert restored.get_objects_content(packed + loose + more) == c.get_objects_content(packed + loose + more)
    assert restored.validate().is_valid()
    assert restored.container_id == c.container_id
    assert not list((second / 'packs').glob('*.lock'))
    # keep=1: a third backup removes the first
    manager.backup_auto_folders(lambda path, prev: backup_container(manager, c, path, prev))
    assert first not in manager.get_existing_backup_folders()
    assert len(manager.get_existing_backup_folders()) == 2
