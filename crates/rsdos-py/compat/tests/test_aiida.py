"""aiida-core, installed from PyPI next to the compatibility package, runs a real profile on the
SQLite storage backend (``core.sqlite_dos``) with rsdos as its object store: store nodes with
files, ``verdi storage maintain --full``, ``verdi storage backup``, read every file back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip('aiida')

STORE = textwrap.dedent(
    """
    import hashlib, io, json, sys
    from aiida import load_profile, orm
    load_profile('rsdos-test')
    start = int(sys.argv[2])
    out = {}
    for i in range(start, start + 60):
        content = (b'file content %d\\n' % i) * (i * 37 + 1)
        node = orm.SinglefileData(io.BytesIO(content), filename=f'f{i}.txt').store()
        out[node.uuid] = {node.filename: hashlib.sha256(content).hexdigest()}
    folder = orm.FolderData()
    files = {}
    for i in range(25):
        content = bytes([start % 251, i]) * (i * 500)
        folder.base.repository.put_object_from_filelike(io.BytesIO(content), f'sub/{i}.bin')
        files[f'sub/{i}.bin'] = hashlib.sha256(content).hexdigest()
    folder.store()
    out[folder.uuid] = files
    json.dump(out, open(sys.argv[1], 'w'))
    """
)

READ_BACK = textwrap.dedent(
    """
    import hashlib, json, sys
    from aiida import load_profile, orm
    load_profile('rsdos-test')
    expected = {}
    for path in sys.argv[1:]:
        expected.update(json.load(open(path)))
    for uuid, files in expected.items():
        node = orm.load_node(uuid)
        for name, digest in files.items():
            with node.base.repository.open(name, mode='rb') as handle:
                assert hashlib.sha256(handle.read()).hexdigest() == digest, (uuid, name)
    print('read', sum(len(f) for f in expected.values()))
    """
)


def run(args, env, **kwargs):
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, f'{args}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}'
    return out.stdout


def test_aiida_profile_on_rsdos(tmp_path):
    bindir = Path(sys.executable).parent
    verdi = str(bindir / 'verdi')
    env = dict(os.environ, AIIDA_PATH=str(tmp_path / 'config'), PYTHONWARNINGS='ignore')
    storage = tmp_path / 'storage'
    run(
        [verdi, 'profile', 'setup', 'core.sqlite_dos', '-n', '-p', 'rsdos-test', '--email', 'test@example.com',
         '--first-name', 'Test', '--last-name', 'User', '--institution', 'rsdos', '--broker', 'none',
         '--filepath', str(storage)],
        env,
    )  # fmt: skip
    container_path = storage / 'container'
    assert (container_path / 'packs.idx').is_file()

    first, second = tmp_path / 'first.json', tmp_path / 'second.json'
    run([sys.executable, '-c', STORE, str(first), '0'], env)
    info = run([verdi, 'storage', 'info', '--detailed'], env)
    assert 'loose: 85' in info  # 60 files + 25 in the folder, all distinct
    run([verdi, 'storage', 'maintain', '--full', '--force'], env)

    import disk_objectstore

    assert disk_objectstore.__rsdos_version__
    with disk_objectstore.Container(container_path) as c:
        count = c.count_objects()
        assert count.loose == 0 and count.packed > 0 and count.pack_files >= 1
        assert c.validate().is_valid()

    backups = tmp_path / 'backups'
    run([verdi, 'storage', 'backup', str(backups)], env)
    run([sys.executable, '-c', STORE, str(second), '1000'], env)
    run([verdi, 'storage', 'maintain', '--force'], env)  # live maintenance: pack, incremental clean
    run([verdi, 'storage', 'backup', str(backups)], env)

    out = run([sys.executable, '-c', READ_BACK, str(first), str(second)], env)
    expected = {**json.load(open(first)), **json.load(open(second))}
    assert out.strip() == f'read {sum(len(f) for f in expected.values())}'

    # both backups hold a complete, valid container
    folders = sorted(backups.glob('backup_*_*'))
    assert len(folders) == 2
    with disk_objectstore.Container(container_path) as live:
        live_keys = set(live.list_all_objects())
    for folder, must_have in ((folders[0], None), (folders[1], live_keys)):
        assert (folder / 'database.sqlite').is_file()
        with disk_objectstore.Container(folder / 'container') as c:
            assert c.validate().is_valid()
            keys = set(c.list_all_objects())
            if must_have is not None:
                assert keys == must_have
                with disk_objectstore.Container(container_path) as live:
                    assert c.get_objects_content(sorted(keys)) == live.get_objects_content(sorted(keys))
