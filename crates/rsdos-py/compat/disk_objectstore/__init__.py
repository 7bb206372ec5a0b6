"""disk_objectstore, backed by rsdos.

This package replaces the disk-objectstore distribution with rsdos: ``disk_objectstore.Container``
is ``rsdos.Container`` (same API, same folders), and the modules that programs such as aiida-core
import (``container``, ``utils``, ``dataclasses``, ``exceptions``, ``backup_utils``) are here.
Install it with ``pip install ./crates/rsdos-py ./crates/rsdos-py/compat``; uninstall it (or
reinstall ``disk-objectstore`` from PyPI) to go back.
"""

import logging

try:
    import rsdos as _rsdos
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        'This disk_objectstore package is the rsdos compatibility package and needs the rsdos '
        'module: pip install ./crates/rsdos-py ./crates/rsdos-py/compat (from the rsdos repository)'
    ) from exc

from .container import CompressMode, Container, ObjectType

LOGGER = logging.getLogger(__name__)

__all__ = ('CompressMode', 'Container', 'ObjectType')

#: The disk-objectstore API version this package provides.
__version__ = '1.5.0'
#: The rsdos version behind it.
__rsdos_version__ = _rsdos.__version__
