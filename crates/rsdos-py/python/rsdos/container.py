"""``Container``: disk-objectstore's API over the rsdos engine.

Signatures, defaults, return types and exceptions are those of disk-objectstore 1.5, and a
container is a folder in disk-objectstore's format: both libraries can use the same folder.
Differences are listed in the docstrings (look for "rsdos:"); none changes what a correct
disk-objectstore program observes, except where disk-objectstore has a bug.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from . import _rsdos
from .dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues
from .exceptions import InconsistentContent, NotExistent
from .utils import CompressMode, LazyLooseStream, is_known_hash
from .write_batch import WriteBatch

__all__ = ('CompressMode', 'Container', 'NotExistent', 'ObjectType')

_MODES = {'no', 'yes', 'keep', 'auto'}


class ObjectType(Enum):
    """Where an object is stored."""

    LOOSE = 'loose'
    PACKED = 'packed'
    MISSING = 'missing'


def _compress_mode(compress: Any) -> str:
    """``compress`` (a bool, or a ``CompressMode`` of rsdos or of disk-objectstore) as the
    name the engine takes."""
    if compress is True:
        return 'yes'
    if compress is False:
        return 'no'
    value = getattr(compress, 'value', None)
    if isinstance(value, str) and value in _MODES:
        return value
    raise ValueError(f'Unknown compression mode {compress!r}: use a bool or a CompressMode')


def _pack_id(pack_id: Any, allow_repack_pack: bool = False) -> int:
    text = str(pack_id)
    if text == '-1':
        raise ValueError(
            'rsdos never uses the temporary pack -1 of disk-objectstore repacks'
            if allow_repack_pack
            else f'Invalid pack id {pack_id!r}'
        )
    if not text.isdigit() or not text.isascii() or (text != '0' and text.startswith('0')):
        raise ValueError(f'Invalid pack id {pack_id!r}')
    return int(text)


class Container:
    """A content-addressed object store in one folder (disk-objectstore's format).

    Objects are written loose (one file each) or straight into packs, read back as bytes or
    streams, and maintained (``pack_all_loose``, ``clean_storage``, ``repack``...). Creating a
    ``Container`` touches nothing on disk; ``init_container()`` creates one.

    rsdos: a ``Container`` may be used from many threads at once (the GIL is released during
    I/O, hashing and compression), and many processes may use the same folder: maintenance
    operations (packing, cleaning, repacking, deleting, direct writes to packs) take a lock
    file and wait for each other, instead of corrupting the container.
    """

    def __init__(self, folder: str | Path) -> None:
        self._folder = Path(folder).resolve()
        self._rs = _rsdos.RsContainer(str(self._folder))
        self._config: Optional[dict] = None
        self._packers: list = []

    def __repr__(self) -> str:
        return f'<rsdos.Container {self._folder}>'

    def get_folder(self) -> Path:
        """Return the (absolute, resolved) path of the container folder."""
        return self._folder

    def close(self) -> None:
        """Close the index connection and open pack files (the next call opens them again),
        and stop the automatic packers started with ``start_auto_pack``. Idempotent."""
        for packer in getattr(self, '_packers', []):
            packer.stop()
        self._packers = []
        self._rs.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, exc_type, value, traceback) -> None:
        self.close()

    def __del__(self) -> None:
        rs = getattr(self, '_rs', None)
        if rs is not None:
            rs.close()

    # ---- lifecycle and configuration -----------------------------------------------------

    @property
    def is_initialised(self) -> bool:
        """True if the folder holds a container (``config.json`` and the four subfolders)."""
        return self._rs.is_initialised()

    def init_container(
        self,
        clear: bool = False,
        pack_size_target: int = 4 * 1024 * 1024 * 1024,
        loose_prefix_len: int = 2,
        hash_type: str = 'sha256',
        compression_algorithm: str = 'zlib+1',
        *,
        packs_url: Optional[str] = None,
        packs_options: Optional[dict] = None,
        store_credentials: bool = False,
    ) -> None:
        """Create the container in its folder.

        :param clear: delete the folder and everything in it first.
        :param pack_size_target: bytes after which a new pack file is started.
        :param loose_prefix_len: hex characters of the hash key used as loose subfolder.
        :param hash_type: ``sha256`` or ``sha1``.
        :param compression_algorithm: ``zlib+1`` .. ``zlib+9`` (rsdos: also ``zstd+1`` ..
            ``zstd+22``, which disk-objectstore cannot read).
        :param packs_url: rsdos: keep sealed packs in remote storage (``s3://bucket/prefix``,
            ``gs://``, ``azblob://``, ``fs:///folder``, ``memory://``); recorded in
            ``rsdos-packs.json``. Loose objects, the pack being written and the index stay in
            the folder.
        :param packs_options: rsdos: service options of the remote (``endpoint``, ``region``,
            credentials...). Secret ones are not written to disk unless ``store_credentials``;
            later opens then take credentials from the service's environment variables.
        :param store_credentials: rsdos: also write secret options into ``rsdos-packs.json``.
        :raises FileExistsError: if the container exists (without ``clear``) or the folder is
            not empty.
        :raises ValueError: for an invalid parameter.
        """
        if loose_prefix_len < 0:
            raise ValueError('The loose prefix length can only be zero or a positive integer')
        if pack_size_target <= 0:
            raise ValueError('The pack size target can only be a non-zero positive integer')
        if not is_known_hash(hash_type):
            raise ValueError(f'Unknown hash type "{hash_type}"')
        if clear:
            self.close()
            if self._folder.exists():
                shutil.rmtree(self._folder)
        self._config = None
        if self.is_initialised:
            raise FileExistsError(
                'The container already exists, so you cannot initialise it - '
                'use the clear option if you want to overwrite with a clean one'
            )
        os.makedirs(self._folder, exist_ok=True)
        if os.listdir(self._folder):
            raise FileExistsError('There is already some file or folder in the Container folder, I cannot initialise it!')
        self._rs.init(
            pack_size_target,
            loose_prefix_len,
            hash_type,
            compression_algorithm,
            packs_url=packs_url,
            packs_options=packs_options,
            store_credentials=store_credentials,
        )

    # ---- packs in remote storage (rsdos) ---------------------------------------------------

    @classmethod
    def clone_from(
        cls,
        url: str,
        folder: str | Path,
        *,
        packs_options: Optional[dict] = None,
        store_credentials: bool = False,
    ) -> Container:
        """rsdos: make a container in ``folder`` (absent or empty) from the remote pack
        storage at ``url`` alone: its ``config.json``, the index snapshot uploaded after each
        seal and the sidecars of packs sealed later. The clone's packs stay remote. What was
        done is in the returned container's ``clone_report`` (a dict)."""
        report = _rsdos.clone_from(
            url, str(Path(folder).resolve()), packs_options, store_credentials
        )
        container = cls(folder)
        container.clone_report = report
        return container

    def remote_status(self) -> Optional[dict]:
        """rsdos: where the packs are (``url``, without credentials) and what waits for
        upload (``pending_upload``, ``staged``, ``last_error``); ``None`` if packs are local."""
        return _rsdos.remote_status(self._rs)

    def upload_pending(self, *, seal_open: bool = False) -> dict:
        """rsdos: upload the packs whose upload failed, then snapshot the index to the
        remote (packing and repacking also retry). With ``seal_open``, the packs still being
        filled are sealed and uploaded too, so that the remote holds every packed object."""
        return _rsdos.upload_pending(self._rs, seal_open)

    def _get_repository_config(self) -> dict:
        if self._config is None:
            self._config = self._rs.config()
        return self._config

    @property
    def loose_prefix_len(self) -> int:
        """Length of the loose prefix (``NotInitialised`` if not initialised)."""
        return self._get_repository_config()['loose_prefix_len']

    @property
    def pack_size_target(self) -> int:
        """Target size of pack files in bytes."""
        return self._get_repository_config()['pack_size_target']

    @property
    def hash_type(self) -> str:
        """Hash type (``sha256`` or ``sha1``)."""
        return self._get_repository_config()['hash_type']

    @property
    def container_id(self) -> str:
        """The container's UUID (32 hex characters)."""
        return self._get_repository_config()['container_id']

    @property
    def compression_algorithm(self) -> str:
        """Compression algorithm of compressed objects (e.g. ``zlib+1``)."""
        return self._get_repository_config()['compression_algorithm']

    # ---- reading -------------------------------------------------------------------------

    def get_object_content(self, hashkey: str) -> bytes:
        """Return the content of an object (``NotExistent`` if it does not exist)."""
        return self._rs.get_content(hashkey)

    @contextmanager
    def get_object_stream(self, hashkey: str) -> Iterator[Any]:
        """Context manager yielding a read-only binary stream over an object.

        :raises NotExistent: if the object does not exist.
        """
        stream, _ = self._rs.open(hashkey)
        try:
            yield stream
        finally:
            stream.close()

    @contextmanager
    def get_object_stream_and_meta(self, hashkey: str) -> Iterator[tuple[Any, ObjectMeta]]:
        """Context manager yielding ``(stream, ObjectMeta)`` of an object.

        :raises NotExistent: if the object does not exist.
        """
        stream, meta = self._rs.open(hashkey)
        try:
            yield stream, meta
        finally:
            stream.close()

    @contextmanager
    def get_objects_stream_and_meta(
        self, hashkeys: Iterable[str], skip_if_missing: bool = True
    ) -> Iterator[Iterator[tuple[str, Any, ObjectMeta]]]:
        """Context manager yielding an iterator of ``(hashkey, stream, ObjectMeta)``.

        Objects come in the order that is fastest to read (packed ones pack by pack, by
        offset; then loose ones), each once; missing ones come last with stream ``None`` and
        type ``MISSING`` unless ``skip_if_missing``. Each stream is valid until the iterator
        advances. rsdos: reading is done in large windows with the GIL released.
        """
        yield self._rs.open_many(list(hashkeys), skip_if_missing)

    def get_objects_meta(self, hashkeys: Iterable[str], skip_if_missing: bool = True) -> Iterator[tuple[str, ObjectMeta]]:
        """Return an iterator of ``(hashkey, ObjectMeta)`` for each distinct hash key (missing
        ones left out if ``skip_if_missing``). Opens no file."""
        return iter(self._rs.meta_many(list(hashkeys), skip_if_missing))

    def get_object_meta(self, hashkey: str) -> ObjectMeta:
        """Return the ``ObjectMeta`` of an object (``NotExistent`` if it does not exist)."""
        meta = self._rs.meta(hashkey)
        if meta.type is ObjectType.MISSING:
            raise NotExistent(f'No object with hash key {hashkey}')
        return meta

    def get_objects_content(self, hashkeys: list[str], skip_if_missing: bool = True) -> dict[str, Optional[bytes]]:
        """Return ``{hashkey: content}`` (``None`` for missing objects unless ``skip_if_missing``,
        in which case they are left out)."""
        return self._rs.get_many(list(hashkeys), skip_if_missing)

    def has_objects(self, hashkeys: list[str] | tuple[str, ...]) -> list[bool]:
        """Return whether each object exists, in input order.

        rsdos: a string that is not a hash key of the container's type is reported as missing
        (disk-objectstore reports ``''`` as existing).
        """
        return self._rs.has_many(list(hashkeys))

    def has_object(self, hashkey: str) -> bool:
        """Return whether the object exists."""
        return self._rs.has(hashkey)

    def get_lazy_loose_stream(self, hashkey: str) -> LazyLooseStream:
        """Return a stream over a loose copy of the object, made when the stream is opened."""
        return LazyLooseStream(self, hashkey)

    def list_all_objects(self) -> Iterator[str]:
        """Return an iterator over all hash keys, each once (packed ones first)."""
        return self._rs.list_all()

    def count_objects(self) -> ObjectCount:
        """Return the number of packed and loose objects, and of pack files."""
        return ObjectCount(*self._rs.count())

    def get_total_size(self) -> TotalSize:
        """Return the sizes of the container's objects and files."""
        return TotalSize(*self._rs.total_size())

    # ---- writing -------------------------------------------------------------------------

    def add_object(self, content: bytes) -> str:
        """Store ``content`` (bytes or a bytes-like object) as a loose object; return its hash
        key. Durable when it returns.

        rsdos: content that is already stored (loose or packed) is not written again.
        """
        return self._rs.add_object(content)

    def add_streamed_object(self, stream: Any) -> str:
        """Store what ``stream.read()`` returns (from the current position to the end) as a
        loose object, in bounded memory; return its hash key."""
        return self._rs.add_stream(stream)

    def write_batch(
        self, max_objects: Optional[int] = None, max_bytes: Optional[int] = None, use_syncfs: bool = True
    ) -> WriteBatch:
        """rsdos: start a batch of loose writes made durable together, one durability point per
        batch instead of two fsyncs per object (see ``rsdos.WriteBatch``)::

            with container.write_batch() as batch:
                key = batch.add_object(b'...')

        The batch flushes by itself after ``max_objects`` objects or ``max_bytes`` bytes
        (defaults 20,000 and 256 MiB). On Linux a flush is made durable with ``syncfs``, which
        also writes out other processes' dirty data on the same file system; with
        ``use_syncfs=False`` it fsyncs file by file instead (slower for many small objects).
        """
        return WriteBatch(self._rs.write_batch(max_objects, max_bytes, use_syncfs))

    def add_objects_loose(self, content_list: list[bytes] | tuple[bytes, ...]) -> list[str]:
        """rsdos: store each bytes object as a loose object, all made durable together (one
        write batch, in one call with the GIL released); return one hash key per input, in
        order. Durable when it returns, as ``add_object`` per object, but much faster for many
        small objects; content already stored is not written again."""
        return self._rs.add_objects_loose(content_list)

    def add_objects_to_pack(
        self,
        content_list: list[bytes] | tuple[bytes, ...],
        compress: bool = False,
        no_holes: bool = False,
        no_holes_read_twice: bool = True,
        callback: Optional[Callable] = None,
        do_fsync: bool = True,
        do_commit: bool = True,
    ) -> list[str]:
        """Write objects straight into packs; return one hash key per input, in order.

        A maintenance operation in disk-objectstore. rsdos: content already packed, or repeated
        in the input, is stored once whatever ``no_holes`` (so ``no_holes`` and
        ``no_holes_read_twice`` change nothing); each pack is committed when written, so
        ``do_commit`` is ignored; ``compress`` may also be a ``CompressMode``.
        """
        return self._rs.add_objects_to_pack(content_list, _compress_mode(compress), do_fsync, callback)

    def add_streamed_objects_to_pack(
        self,
        stream_list: list[Any],
        compress: bool = False,
        open_streams: bool = False,
        no_holes: bool = False,
        no_holes_read_twice: bool = True,
        callback: Optional[Callable] = None,
        do_fsync: bool = True,
        do_commit: bool = True,
    ) -> list[str]:
        """Write streams straight into packs; return one hash key per input, in order.

        With ``open_streams``, each element is a context manager (such as
        ``utils.LazyOpener``) that is entered only while it is copied. See
        ``add_objects_to_pack`` for the other parameters.
        """
        return self._rs.add_streams_to_pack(stream_list, _compress_mode(compress), do_fsync, open_streams, callback)

    def add_streamed_object_to_pack(
        self,
        stream: Any,
        compress: bool = False,
        open_streams: bool = False,
        no_holes: bool = False,
        no_holes_read_twice: bool = True,
        callback: Optional[Callable] = None,
        callback_size_hint: int = 0,
        do_fsync: bool = True,
        do_commit: bool = True,
    ) -> str:
        """Write one stream straight into a pack and return its hash key (progress is reported
        in bytes, with ``callback_size_hint`` as total)."""
        return self._rs.add_streams_to_pack(
            [stream],
            _compress_mode(compress),
            do_fsync,
            open_streams,
            callback,
            callback_size_hint if callback is not None else None,
        )[0]

    def loosen_object(self, hashkey: str) -> Path:
        """Make the object also available as a loose file and return its path (the loose copy
        may be removed again by ``clean_storage``)."""
        return Path(self._rs.loosen(hashkey))

    @contextmanager
    def lock_pack(self, pack_id: str, allow_repack_pack: bool = False) -> Iterator[Any]:
        """Context manager yielding pack ``pack_id`` opened for appending (``write``, ``tell``,
        ``flush``, ``fsync``), holding its lock.

        :raises FileExistsError: if the pack is locked by another appender.

        rsdos: the lock is an advisory lock released when the process dies, so a stale lock
        file never blocks packing; a failed attempt does not remove the holder's lock.
        """
        handle = self._rs.lock_pack(_pack_id(pack_id, allow_repack_pack))
        try:
            yield handle
        finally:
            handle.close()

    # ---- maintenance ---------------------------------------------------------------------

    def pack_all_loose(
        self,
        compress: bool | CompressMode = CompressMode.NO,
        validate_objects: bool = True,
        do_fsync: bool = True,
        callback: Optional[Callable] = None,
        clean_loose_per_pack: bool = False,
    ) -> None:
        """Move all loose objects into packs (loose copies stay until ``clean_storage``, or
        are removed after each pack with ``clean_loose_per_pack``).

        rsdos: objects are always re-hashed while packed; a loose file whose content does not
        match its name is not packed, and, with ``validate_objects``, reported by raising
        ``InconsistentContent`` after everything else is packed.
        """
        corrupt = self._rs.pack_loose(_compress_mode(compress), do_fsync, clean_loose_per_pack, callback)
        if corrupt and validate_objects:
            raise InconsistentContent(
                f'{len(corrupt)} loose object(s) do not match their hash key and were not packed: '
                + ', '.join(corrupt[:10])
                + (' ...' if len(corrupt) > 10 else '')
            )

    def clean_storage(self, vacuum: bool = False) -> None:
        """Delete loose copies of packed objects and resolve ``duplicates/``; with ``vacuum``,
        compact the index.

        rsdos: also removes sandbox files older than an hour (leftovers of killed writers).
        """
        inconsistent = self._rs.clean(vacuum)
        if inconsistent:
            raise InconsistentContent(
                'Duplicates with no valid copy and no valid object for hash key(s): ' + ', '.join(inconsistent)
            )

    def repack(self, compress_mode: CompressMode = CompressMode.KEEP, callback: Optional[Callable] = None) -> None:
        """Rewrite the packs without unreferenced bytes (holes), (re)compressing as
        ``compress_mode`` says, then compact the index.

        rsdos: with ``KEEP``, only packs that have holes are rewritten (the others are already
        as a rewrite would leave them); rewritten packs get new ids.
        """
        self._rs.repack(_compress_mode(compress_mode), False, True, callback)

    def repack_pack(
        self, pack_id: str, compress_mode: CompressMode = CompressMode.KEEP, callback: Optional[Callable] = None
    ) -> None:
        """Rewrite one pack without holes, (re)compressing as ``compress_mode`` says.

        rsdos: the engine repacks the whole container: with ``KEEP``, every pack with holes is
        rewritten (including ``pack_id``); with another mode every pack is recompressed. Packs
        no object refers to are deleted. Rewritten packs get new ids.
        """
        _pack_id(pack_id)
        self._rs.repack(_compress_mode(compress_mode), False, False, callback)

    def validate(self, callback: Optional[Callable] = None) -> ValidationIssues:
        """Re-hash every object and check the packs; return the problems found."""
        report = self._rs.validate(callback)
        issues = ValidationIssues(
            invalid_hashes_loose=sorted(
                set(report['invalid_hashes_loose']) | {k for k, _ in report['unreadable_loose']}
            ),
            invalid_hashes_packed=sorted(
                set(report['invalid_hashes_packed'])
                | {k for k, _ in report['unreadable_packed']}
                | set(report['rows_pointing_nowhere'])
            ),
            invalid_sizes_packed=list(report['invalid_sizes_packed']),
            overlapping_packed=list(report['overlapping_packed']),
        )
        object.__setattr__(issues, 'rsdos_report', report)
        return issues

    def delete_objects(self, hashkeys: list[str]) -> list[str]:
        """Delete objects; return the hash keys that existed (unknown ones are ignored).

        Packed objects leave holes in their pack until ``repack``.
        """
        return self._rs.delete(list(hashkeys))

    def import_objects(
        self,
        hashkeys: Iterable[str],
        source_container: Any,
        compress: bool = False,
        target_memory_bytes: int = 104857600,
        callback: Optional[Callable] = None,
        do_fsync: bool = True,
    ) -> dict[str, str]:
        """Copy objects from ``source_container`` straight into packs of this container.

        :return: ``{source hash key: hash key here}`` for the objects copied (with the same
            hash type, objects already here are not copied and not listed; missing source
            objects are skipped).

        rsdos: ``source_container`` may be an rsdos or a disk-objectstore container; objects
        are streamed, so ``target_memory_bytes`` is not needed; packs are always fsynced.
        """
        source = source_container._rs if isinstance(source_container, Container) else source_container
        return dict(self._rs.import_from(source, list(hashkeys), _compress_mode(compress), callback))

    # ---- rsdos additions -----------------------------------------------------------------

    def start_auto_pack(
        self,
        max_loose_objects: Optional[int] = None,
        max_loose_bytes: Optional[int] = None,
        max_age: Optional[float] = None,
        poll_interval: Optional[float] = None,
        compress: str = 'no',
    ):
        """rsdos: pack loose objects automatically in a background thread, in small batches,
        whenever their number, their total size or the age of the oldest (seconds) passes a
        threshold (``None``: the default). Returns the packer: ``packer.stop()`` returns its
        statistics; ``close()`` stops every packer of this container."""
        packer = self._rs.start_auto_pack(max_loose_objects, max_loose_bytes, max_age, poll_interval, compress)
        self._packers.append(packer)
        return packer

    def migrate_to_zstd(self, level: int = 3, callback: Optional[Callable] = None) -> dict:
        """rsdos: recompress every zlib object with zstd at ``level`` and make zstd the
        container's algorithm. disk-objectstore cannot read the result. Returns a report."""
        report = self._rs.migrate_to_zstd(level, callback)
        self._config = None
        self._rs.close()  # reopen with the new config; running packers keep going
        return report

    def backup(self, dest: str | Path, keep: int = 1, callback: Optional[Callable] = None) -> dict:
        """rsdos: incremental, live-safe backup into the local folder ``dest``
        (``dest/backup_<time>_<id>/container``, ``dest/last-backup``), keeping ``keep``
        previous backups. Returns a report."""
        return self._rs.backup(str(dest), keep, callback)

    def rebuild_index(self, callback: Optional[Callable] = None) -> dict:
        """rsdos: recreate ``packs.idx`` from the pack sidecars written by rsdos. Returns a
        report. No other process should use the container meanwhile."""
        return self._rs.rebuild_index(callback)
