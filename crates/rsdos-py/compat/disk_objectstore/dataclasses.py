"""``disk_objectstore.dataclasses``: the frozen dataclasses returned by ``Container``."""

from rsdos.dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues

__all__ = ('ObjectCount', 'ObjectMeta', 'TotalSize', 'ValidationIssues')
