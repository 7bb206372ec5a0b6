"""``disk_objectstore.exceptions`` (rsdos's classes, so that ``except`` clauses catch what rsdos
raises)."""

from rsdos.exceptions import (
    ClosingNotAllowed,
    InconsistentContent,
    ModificationNotAllowed,
    NotExistent,
    NotInitialised,
)

__all__ = ('ClosingNotAllowed', 'InconsistentContent', 'ModificationNotAllowed', 'NotExistent', 'NotInitialised')
