"""rsdos: a fast content-addressed object store, a drop-in for AiiDA's disk-objectstore.

``rsdos.Container`` has disk-objectstore 1.5's API and works on the same folders; the engine is
written in Rust and releases the GIL while it works.
"""

import logging

from .container import CompressMode, Container, ObjectType
from .dataclasses import ObjectCount, ObjectMeta, TotalSize, ValidationIssues
from .exceptions import (
    ClosingNotAllowed,
    InconsistentContent,
    LockedError,
    ModificationNotAllowed,
    NotExistent,
    NotInitialised,
    NotInitialisedError,
)
from .write_batch import WriteBatch

LOGGER = logging.getLogger(__name__)

__version__ = '0.1.0'

__all__ = (
    'ClosingNotAllowed',
    'CompressMode',
    'Container',
    'InconsistentContent',
    'LockedError',
    'ModificationNotAllowed',
    'NotExistent',
    'NotInitialised',
    'NotInitialisedError',
    'ObjectCount',
    'ObjectMeta',
    'ObjectType',
    'TotalSize',
    'ValidationIssues',
    'WriteBatch',
)
