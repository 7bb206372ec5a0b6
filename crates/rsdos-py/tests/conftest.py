"""Fixtures of the rsdos Python test suite."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

import rsdos


@pytest.fixture
def temp_dir(tmp_path):
    """An empty folder."""
    return tmp_path


@pytest.fixture
def container(tmp_path):
    """An initialised rsdos container with the default settings, closed at the end."""
    c = rsdos.Container(tmp_path / 'container')
    c.init_container()
    yield c
    c.close()


@pytest.fixture
def small_container(tmp_path):
    """A container whose packs are closed after 1 kB, to get several packs."""
    c = rsdos.Container(tmp_path / 'small')
    c.init_container(pack_size_target=1000)
    yield c
    c.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_objects(n: int, max_size: int = 1000, seed: int = 0) -> list[bytes]:
    """n distinct objects, half random bytes, half compressible text."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        size = rng.randint(0, max_size)
        if i % 2:
            data = (b'line %d of some text\n' % i) * (size // 20 + 1)
        else:
            data = rng.randbytes(size)
        out.append(data + str(i).encode())
    return out


class CallbackRecorder:
    """A progress callback that checks disk-objectstore's protocol (keywords ``action`` and
    ``value``; ``init`` with ``total`` and ``description``, then ``update``s, then ``close``)
    and records the phases."""

    def __init__(self) -> None:
        self.phases: list[dict] = []
        self.current: dict | None = None

    def __call__(self, *, action, value):
        if action == 'init':
            assert self.current is None, 'init inside an open phase'
            assert set(value) == {'total', 'description'}
            assert isinstance(value['total'], int)
            assert isinstance(value['description'], str)
            self.current = {'description': value['description'], 'total': value['total'], 'done': 0}
        elif action == 'update':
            assert self.current is not None, 'update outside a phase'
            assert isinstance(value, int) and value > 0
            self.current['done'] += value
        elif action == 'close':
            assert self.current is not None, 'close outside a phase'
            assert value is None
            self.phases.append(self.current)
            self.current = None
        else:
            raise AssertionError(f'unknown action {action!r}')


@pytest.fixture
def callback():
    return CallbackRecorder()


def corrupt_file(path: os.PathLike, data: bytes = b'corrupted!') -> None:
    """Overwrite a (possibly read-only) file."""
    os.chmod(path, 0o644)
    with open(path, 'wb') as fh:
        fh.write(data)
