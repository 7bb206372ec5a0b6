"""``disk_objectstore.utils``: the helpers that programs use (``LazyOpener``, ``CompressMode``...)."""

from rsdos.utils import CompressMode, LazyLooseStream, LazyOpener, get_hash_cls, is_known_hash, nullcontext

__all__ = ('CompressMode', 'LazyLooseStream', 'LazyOpener', 'get_hash_cls', 'is_known_hash', 'nullcontext')
