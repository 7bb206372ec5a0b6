"""Container.start_auto_pack: the in-process automatic packer."""
import time

import rsdos


def test_auto_pack_packs_loose_objects_and_stops_on_close(tmp_path):
    c = rsdos.Container(tmp_path / 'c')
    c.init_container()
    packer = c.start_auto_pack(max_loose_objects=1, poll_interval=0.05)
    assert packer.is_running()
    keys = [c.add_object(f'object {i}'.encode()) for i in range(50)]
    deadline = time.monotonic() + 60
    while c.count_objects().loose > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    count = c.count_objects()
    assert count.packed == 50 and count.loose == 0
    assert c.get_objects_content(keys) == {k: f'object {i}'.encode() for i, k in enumerate(keys)}
    assert c.validate().is_valid()
    c.close()
    assert not packer.is_running()
    assert packer.stop() is None  # already stopped by close()


def test_auto_pack_stop_returns_statistics(tmp_path):
    c = rsdos.Container(tmp_path / 'c')
    c.init_container()
    packer = c.start_auto_pack(max_loose_objects=1, poll_interval=0.05)
    c.add_object(b'x')
    deadline = time.monotonic() + 60
    while c.count_objects().loose > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = packer.stop()
    assert stats['objects_packed'] == 1
    assert not packer.is_running()
    c.close()
