"""Dataclasses returned by ``Container`` methods, as in disk-objectstore: frozen, and readable
both as attributes (``meta.size``) and as items (``meta['size']``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    from .container import ObjectType

__all__ = ('ObjectCount', 'ObjectMeta', 'TotalSize', 'ValidationIssues')


@dataclass(frozen=True)
class ObjectCount:
    """Number of objects in a container.

    :param packed: number of objects in pack files.
    :param loose: number of loose objects (including loose copies of packed objects not yet
        removed by ``clean_storage``).
    :param pack_files: number of pack files.
    """

    packed: int
    loose: int
    pack_files: int

    def __getitem__(self, item: str) -> int:
        """Return a field by name (``count['loose']``)."""
        return asdict(self)[item]


@dataclass(frozen=True)
class ObjectMeta:
    """Metadata of an object.

    :param type: an ``ObjectType`` (``LOOSE``, ``PACKED`` or ``MISSING``).
    :param size: the size of the object in bytes (``None`` if missing).
    :param pack_id: the id (an ``int``) of the pack holding the object, ``None`` if not packed.
    :param pack_compressed: whether the packed copy is compressed, ``None`` if not packed.
    :param pack_offset: the offset in the pack file, ``None`` if not packed.
    :param pack_length: the bytes the object occupies in the pack, ``None`` if not packed.
    """

    type: 'ObjectType'
    size: Optional[int]
    pack_id: Optional[int]
    pack_compressed: Optional[bool]
    pack_offset: Optional[int]
    pack_length: Optional[int]

    def __getitem__(self, item: str) -> Union[str, int, bool, None]:
        """Return a field by name (``meta['size']``)."""
        return asdict(self)[item]


@dataclass(frozen=True)
class TotalSize:
    """Sizes of a container, in bytes.

    :param total_size_packed: size of the packed objects (uncompressed).
    :param total_size_packed_on_disk: bytes the packed objects occupy in the packs.
    :param total_size_packfiles_on_disk: size of the pack files (including unreferenced bytes).
    :param total_size_packindexes_on_disk: size of the index ``packs.idx``.
    :param total_size_loose: size of the loose objects.
    """

    total_size_packed: int
    total_size_packed_on_disk: int
    total_size_packfiles_on_disk: int
    total_size_packindexes_on_disk: int
    total_size_loose: int

    def __getitem__(self, item: str) -> Union[str, int, bool, None]:
        """Return a field by name (``size['total_size_loose']``)."""
        return asdict(self)[item]


@dataclass(frozen=True)
class ValidationIssues:
    """Problems found by ``Container.validate``; every field is a list of hash keys.

    :param invalid_hashes_loose: loose objects whose content does not hash to their name
        (rsdos also lists here loose files that cannot be read).
    :param invalid_hashes_packed: packed objects whose content does not hash to their key
        (rsdos also lists here objects that cannot be read or decompressed, and objects whose
        pack file is missing, where disk-objectstore raises).
    :param invalid_sizes_packed: packed objects whose content has not the recorded size.
    :param overlapping_packed: packed objects whose bytes overlap an earlier object's.

    rsdos attaches its full report (more checks, with details) as the attribute
    ``rsdos_report`` (a dict); it is not a field, so ``asdict``, equality and ``is_valid`` are
    as in disk-objectstore.
    """

    invalid_hashes_loose: list[str]
    invalid_hashes_packed: list[str]
    invalid_sizes_packed: list[str]
    overlapping_packed: list[str]

    def __getitem__(self, item: str) -> Any:
        """Return a field by name (``issues['overlapping_packed']``)."""
        return asdict(self)[item]

    def is_valid(self) -> bool:
        """Return True if no list has an element."""
        return not any(asdict(self).values())
