"""Containers whose packs live in remote storage (the OpenDAL ``fs`` service, a folder standing
in for a bucket): ``init_container(packs_url=...)``, ``remote_status``, ``Container.clone_from``."""

import json
import os

import pytest

import rsdos


def _objects(n):
    return [(f'object {i} '.encode() * 150)[:1000 + i] for i in range(n)]


def _remote_packs(bucket):
    return sorted(int(n) for n in os.listdir(bucket) if n.isdigit())


def test_init_with_packs_url_then_clone(tmp_path):
    bucket = tmp_path / 'bucket'
    bucket.mkdir()
    url = f'fs://{bucket}'
    secret = 'py-S3CR3T-never-written'
    c = rsdos.Container(tmp_path / 'store')
    c.init_container(
        pack_size_target=4096,
        packs_url=url,
        packs_options={'region': 'eu-west-1', 'secret_access_key': secret},
    )
    data = _objects(20)
    keys = c.add_objects_to_pack(data)
    assert len(_remote_packs(bucket)) >= 4
    assert (bucket / 'index' / 'packs.idx').is_file()
    status = c.remote_status()
    assert status['url'] == url
    assert status['pending_upload'] == []
    assert secret not in repr(status)
    setting = json.loads((tmp_path / 'store' / 'rsdos-packs.json').read_text())
    assert setting['options'] == {'region': 'eu-west-1'}
    # config.json keeps disk-objectstore's keys only.
    config = json.loads((tmp_path / 'store' / 'config.json').read_text())
    assert 'packs' not in json.dumps(config)
    assert c.upload_pending()['failed'] == []

    staged = set(status['staged'])
    uploaded_keys = [
        k for k in keys if c.get_object_meta(k)['pack_id'] not in staged
    ]
    assert len(uploaded_keys) >= 16
    c.close()

    clone = rsdos.Container.clone_from(url, tmp_path / 'clone')
    assert clone.clone_report['from_snapshot'] is True
    assert clone.clone_report['objects'] == len(uploaded_keys)
    by_key = dict(zip(keys, data))
    for k in uploaded_keys:
        assert clone.get_object_content(k) == by_key[k]
    assert clone.remote_status()['url'] == url
    clone.close()


def test_clone_without_snapshot_and_errors(tmp_path):
    bucket = tmp_path / 'bucket'
    bucket.mkdir()
    url = f'fs://{bucket}'
    c = rsdos.Container(tmp_path / 'store')
    c.init_container(pack_size_target=4096, packs_url=url)
    c.add_objects_to_pack(_objects(12))
    c.close()
    for name in os.listdir(bucket / 'index'):
        os.remove(bucket / 'index' / name)
    clone = rsdos.Container.clone_from(url, tmp_path / 'clone')
    assert clone.clone_report['from_snapshot'] is False
    assert clone.clone_report['packs_from_sidecars'] == clone.clone_report['packs']
    assert clone.count_objects().packed == clone.clone_report['objects'] > 0
    clone.close()

    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(Exception) as info:
        rsdos.Container.clone_from(f'fs://{empty}', tmp_path / 'clone2')
    assert 'config.json' in str(info.value)
    with pytest.raises(ValueError):
        rsdos.Container(tmp_path / 'x').init_container(packs_options={'region': 'r'})


def test_local_container_has_no_remote(tmp_path):
    c = rsdos.Container(tmp_path / 'store')
    c.init_container()
    assert c.remote_status() is None
    assert c.upload_pending()['uploaded'] == []
    c.close()


def test_upload_pending_seal_open_puts_every_packed_object_on_the_remote(tmp_path):
    bucket = tmp_path / 'bucket'
    bucket.mkdir()
    url = f'fs://{bucket}'
    c = rsdos.Container(tmp_path / 'store')
    c.init_container(pack_size_target=1 << 20, packs_url=url)
    data = _objects(7)
    keys = c.add_objects_to_pack(data)
    assert _remote_packs(bucket) == []  # one pack, still being filled, stays local
    assert c.upload_pending()['uploaded'] == []
    report = c.upload_pending(seal_open=True)
    assert report['failed'] == [] and report['uploaded'] == [0]
    assert c.remote_status()['staged'] == []
    c.close()
    clone = rsdos.Container.clone_from(url, tmp_path / 'clone')
    assert clone.clone_report['objects'] == len(keys)
    assert [clone.get_object_content(k) for k in keys] == data
    clone.close()
