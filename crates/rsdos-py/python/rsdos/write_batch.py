"""``WriteBatch``: many loose writes made durable together (an rsdos addition).

``Container.add_object`` is durable when it returns, which costs two fsyncs per object. A write
batch writes its objects without any fsync and makes them durable together, at one durability
point per batch (on Linux one ``syncfs`` for the contents, the renames into ``loose/``, one more
``syncfs`` for the names). After ``commit()`` every object of the batch has the guarantee one
``add_object`` gives when it returns.
"""

from __future__ import annotations

from typing import Any, Optional


class WriteBatch:
    """A batch of loose writes; made by ``Container.write_batch()``.

    Objects are neither durable nor visible (``has_object`` is False) until the batch is
    flushed: by ``flush()``, ``commit()``, or by itself when ``max_objects`` objects or
    ``max_bytes`` bytes are pending (defaults 20,000 and 256 MiB, so that the space a batch
    occupies in ``sandbox/`` stays bounded). Used as a context manager, the batch commits on a
    normal exit and discards what is pending when an exception leaves the block::

        with container.write_batch() as batch:
            keys = [batch.add_object(data) for data in contents]
        # every object of ``contents`` is stored and durable here

    Discarding (or dropping an uncommitted batch) removes its pending files. If a flush fails,
    the objects that were pending may or may not have been stored: add them again.
    """

    def __init__(self, rs: Any) -> None:
        self._rs = rs

    def add_object(self, content: bytes) -> str:
        """Add ``content`` (bytes or a bytes-like object); return its hash key."""
        return self._rs.add_object(content)

    def add_streamed_object(self, stream: Any) -> str:
        """Add what ``stream.read()`` returns until the end (in bounded memory); return its
        hash key."""
        return self._rs.add_stream(stream)

    def flush(self) -> None:
        """Make every object added so far durable and visible; the batch stays open."""
        self._rs.flush()

    def commit(self) -> dict:
        """Flush and close the batch. Returns ``{'added': n, 'written': n, 'flushes': n}``:
        objects added (repeats included), new loose files, durability points."""
        added, written, flushes = self._rs.commit()
        return {'added': added, 'written': written, 'flushes': flushes}

    def discard(self) -> None:
        """Close the batch without storing what is pending (idempotent)."""
        self._rs.discard()

    @property
    def pending(self) -> int:
        """Objects added since the last flush (repeated content counted once)."""
        return self._rs.pending

    @property
    def closed(self) -> bool:
        """True once committed or discarded."""
        return self._rs.closed

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(self, exc_type: Optional[type], value: Any, traceback: Any) -> None:
        if exc_type is None:
            if not self.closed:
                self.commit()
        else:
            self.discard()
