"""Many threads on one Container, many processes on one folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import random_objects, sha256

from rsdos import Container


def run_threads(n, target, *args):
    errors = []

    def wrapped(i):
        try:
            target(i, *args)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_threads_write_and_read_one_container(container):
    objects = random_objects(800, 2000)

    def work(i):
        mine = objects[i::8]
        keys = [container.add_object(o) for o in mine]
        assert keys == [sha256(o) for o in mine]
        for k, o in zip(keys, mine):
            assert container.get_object_content(k) == o
        with container.get_objects_stream_and_meta(keys) as it:
            for k, s, _ in it:
                assert sha256(s.read()) == k

    run_threads(8, work)
    assert container.count_objects().loose == 800


def test_threads_read_while_packing(container):
    objects = random_objects(600)
    keys = [container.add_object(o) for o in objects]
    want = dict(zip(keys, objects))
    stop = threading.Event()

    def reader(i):
        while not stop.is_set():
            got = container.get_objects_content(keys[i::4])
            assert got == {k: want[k] for k in keys[i::4]}
            assert container.get_object_content(keys[i]) == objects[i]

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    errors = []
    for t in threads:
        t.run = (lambda f: (lambda: _catch(f, errors)))(t.run)
        t.start()
    try:
        container.pack_all_loose(compress=True)
        container.clean_storage()
        container.repack()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert container.count_objects().loose == 0
    assert container.get_objects_content(keys) == want


def _catch(f, errors):
    try:
        f()
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)


def test_shared_stream_between_threads(container):
    data = bytes(range(256)) * 4000
    key = container.add_objects_to_pack([data], compress=True)[0]
    with container.get_object_stream(key) as s:
        chunks = []
        lock = threading.Lock()

        def read(i):
            while True:
                c = s.read(1000)
                if not c:
                    return
                with lock:
                    chunks.append(c)

        run_threads(4, read)
        assert sum(map(len, chunks)) == len(data)


def test_gil_released_during_io(container):
    """A Python thread keeps running while another thread hashes and writes a large object."""
    data = b'x' * (64 * 1024 * 1024)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        start = time.perf_counter()
        container.add_objects_to_pack([data], compress=True)
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        t.join()
    during = [x for x in ticks if start <= x <= start + elapsed]
    # with the GIL held for the whole call, the ticker could not run at all
    assert elapsed < 0.05 or len(during) >= 5


WORKER = textwrap.dedent(
    """
    import sys, hashlib, random
    from rsdos import Container
    folder, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    c = Container(folder)
    rng = random.Random(seed)
    keys = []
    for i in range(n):
        data = rng.randbytes(rng.randint(0, 2000))
        k = c.add_object(data)
        assert k == hashlib.sha256(data).hexdigest()
        keys.append((k, data))
        if i % 10 == 0:
            for k2, d2 in keys[-10:]:
                assert c.get_object_content(k2) == d2
    got = c.get_objects_content([k for k, _ in keys])
    assert all(got[k] == d for k, d in keys), 'bulk read mismatch'
    print('ok', len(keys))
    """
)

PACKER = textwrap.dedent(
    """
    import sys, time
    from rsdos import Container
    c = Container(sys.argv[1])
    for i in range(int(sys.argv[2])):
        c.pack_all_loose(compress=bool(i % 2), clean_loose_per_pack=bool(i % 3 == 0))
        c.clean_storage()
        time.sleep(0.05)
    print('ok packer')
    """
)


@pytest.mark.parametrize('with_packer', [False, True])
def test_two_processes_on_one_container(container, with_packer):
    folder = str(container.get_folder())
    procs = [
        subprocess.Popen([sys.executable, '-c', WORKER, folder, str(seed), '300'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    if with_packer:
        procs.append(
            subprocess.Popen([sys.executable, '-c', PACKER, folder, '8'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.startswith('ok'), (out, err)
    c = Container(folder)
    c.pack_all_loose()
    c.clean_storage()
    assert c.validate().is_valid()
    assert c.count_objects().loose == 0
    assert c.count_objects().packed == len(set(c.list_all_objects()))


def _fork_child(folder, key, queue):
    try:
        c = FORKED['container']
        # the inherited container reopens its own connections in the child
        assert c.get_object_content(key) == b'before fork'
        new = c.add_object(b'from the child')
        c.add_objects_to_pack([b'packed by the child'])
        c.close()
        queue.put(new)
    except BaseException as exc:  # noqa: BLE001
        queue.put(repr(exc))


FORKED: dict = {}


def test_fork_child_uses_inherited_container(container):
    """A container open in a process that forks works in the child, and the parent's
    connections are neither used nor closed by the child."""
    import multiprocessing

    key = container.add_object(b'before fork')
    container.add_objects_to_pack([b'parent packed'])
    FORKED['container'] = container
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    p = ctx.Process(target=_fork_child, args=(str(container.get_folder()), key, queue))
    p.start()
    result = queue.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0
    assert result == sha256(b'from the child'), result
    # the parent's connection still works and sees the child's writes
    assert container.get_object_content(result) == b'from the child'
    assert container.has_object(sha256(b'packed by the child'))
    more = container.add_objects_to_pack([b'parent after fork'])[0]
    check = subprocess.run(
        [sys.executable, '-c', f'import rsdos; print(rsdos.Container({str(container.get_folder())!r}).has_object({more!r}))'],
        capture_output=True,
        text=True,
    )
    assert check.stdout.strip() == 'True', check.stderr
    assert container.validate().is_valid()
