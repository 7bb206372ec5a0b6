"""Helpers of the disk-objectstore API: ``CompressMode``, ``LazyOpener``, ``LazyLooseStream``."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, Literal

if TYPE_CHECKING:
    from .container import Container

__all__ = (
    'CompressMode',
    'LazyLooseStream',
    'LazyOpener',
    'get_hash_cls',
    'is_known_hash',
    'nullcontext',
)


class CompressMode(Enum):
    """How to compress objects when packing or repacking."""

    #: Never compress.
    NO = 'no'
    #: Always compress.
    YES = 'yes'
    #: Keep the current compression (when repacking; new data is not compressed).
    KEEP = 'keep'
    #: Compress when it saves at least 10 % (estimated on a sample of the object).
    AUTO = 'auto'


class LazyOpener:
    """A file that is opened only when entering the context manager (for
    ``Container.add_streamed_objects_to_pack(..., open_streams=True)``), so that many files can
    be handed over without holding them all open."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._fhandle: BinaryIO | None = None

    @property
    def path(self) -> str | Path:
        """The file path."""
        return self._path

    @property
    def mode(self) -> Literal['rb']:
        """The file open mode."""
        return 'rb'

    def tell(self) -> int:
        """Return the position in the open file (``ValueError`` if not open)."""
        if self._fhandle is None:
            raise ValueError('I/O operation on closed file.')
        return self._fhandle.tell()

    def __enter__(self) -> BinaryIO:
        """Open the file (``OSError`` if it is already open)."""
        if self._fhandle is not None:
            raise OSError(f'File {self.path} already open')
        self._fhandle = open(self.path, mode=self.mode)  # noqa: SIM115
        return self._fhandle

    def __exit__(self, exc_type, value, traceback) -> None:
        """Close the file."""
        if self._fhandle is not None and not self._fhandle.closed:
            self._fhandle.close()
        self._fhandle = None


class LazyLooseStream:
    """A stream over the loose copy of an object, made (decompressing a packed object if
    needed) only when the stream is opened (``with`` or ``open_stream()``)."""

    _MAX_RETRIES = 3

    def __init__(self, container: Container, hashkey: str) -> None:
        self._container = container
        self._hashkey = hashkey
        self._stream: BinaryIO | None = None

    @property
    def mode(self) -> str:
        """Always ``'rb'``."""
        return 'rb'

    @staticmethod
    def seekable() -> bool:
        """Always True."""
        return True

    @staticmethod
    def readable() -> bool:
        """Always True."""
        return True

    @staticmethod
    def writable() -> bool:
        """Always False."""
        return False

    def _open(self) -> BinaryIO:
        if self._stream is None or self._stream.closed:
            raise ValueError('I/O operation on closed file.')
        return self._stream

    def seek(self, target: int, whence: int = 0) -> int:
        """Change the position; return the new absolute position."""
        return self._open().seek(target, whence)

    def tell(self) -> int:
        """Return the current position."""
        return self._open().tell()

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all if negative)."""
        return self._open().read(size)

    def __enter__(self) -> LazyLooseStream:
        self.open_stream()
        return self

    def __exit__(self, exc_type, value, traceback) -> None:
        self.close_stream()

    def open_stream(self) -> None:
        """Open the loose copy, creating it if needed (retried if a concurrent clean removes it)."""
        if not self.closed:
            return
        attempts = 0
        while True:
            loose_path = self._container.loosen_object(self._hashkey)
            try:
                self._stream = open(loose_path, mode='rb')  # noqa: SIM115
                return
            except FileNotFoundError as exc:
                attempts += 1
                if attempts > self._MAX_RETRIES:
                    raise RuntimeError(
                        'Unable to open the loose object! I tried multiple times but I never find the file. '
                        'Ensure that you are not running many concurrent cleaning of the container storage.'
                    ) from exc

    def close_stream(self) -> None:
        """Close the stream, if open."""
        if self._stream is not None and not self._stream.closed:
            self._stream.close()
        self._stream = None

    close = close_stream

    @property
    def closed(self) -> bool:
        """True if the stream is not open."""
        return self._stream is None or self._stream.closed


@contextmanager
def nullcontext(enter_result: Any) -> Iterator[Any]:
    """A context manager that does nothing and yields ``enter_result``."""
    yield enter_result


_HASHES = {'sha1': hashlib.sha1, 'sha256': hashlib.sha256}


def is_known_hash(hash_type: str) -> bool:
    """Return True if ``hash_type`` is supported (``sha1``, ``sha256``)."""
    return hash_type in _HASHES


def get_hash_cls(hash_type: str) -> Callable:
    """Return the ``hashlib`` constructor of ``hash_type`` (``ValueError`` if unknown)."""
    try:
        return _HASHES[hash_type]
    except KeyError:
        raise ValueError(f'Unknown or unsupported hash type specified ("{hash_type}").') from None
