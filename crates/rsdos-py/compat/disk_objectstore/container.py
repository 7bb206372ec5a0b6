"""``disk_objectstore.container``: the ``Container`` class (rsdos's)."""

from rsdos.container import CompressMode, Container, NotExistent, ObjectType

__all__ = ('CompressMode', 'Container', 'NotExistent', 'ObjectType')
