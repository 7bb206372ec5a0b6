"""Exceptions of rsdos: the five of disk-objectstore (same names, same bases) plus two
subclasses that rsdos raises where disk-objectstore raises a built-in exception, so that code
catching either keeps working."""


class NotExistent(Exception):
    """Raised if the requested object does not exist."""


class NotInitialised(Exception):
    """Raised if you are trying to perform an operation on a container that is not yet initialised."""


class ModificationNotAllowed(Exception):
    """Raised if you are trying to modify an object but you are not allowed to do so."""


class ClosingNotAllowed(Exception):
    """Raised if you manually close an object writer instead of letting the context manager close it."""


class InconsistentContent(Exception):
    """Raised if the content of the container is inconsistent and cannot be recovered automatically
    (an object whose content does not match its hash key, a corrupt compressed stream, ...)."""


class NotInitialisedError(NotInitialised, FileNotFoundError):
    """Raised by operations on a folder that is not an initialised container.

    disk-objectstore raises ``NotInitialised`` from the configuration properties and
    ``FileNotFoundError`` from the other methods; this class is both, so ``except`` clauses
    written for either catch it.
    """


class LockedError(TimeoutError):
    """Raised when a maintenance operation (packing, repacking, deleting, direct writes to
    packs, ...) waited too long for the container's maintenance lock, held by another process or
    thread (rsdos addition: disk-objectstore has no such lock)."""


__all__ = (
    'ClosingNotAllowed',
    'InconsistentContent',
    'LockedError',
    'ModificationNotAllowed',
    'NotExistent',
    'NotInitialised',
    'NotInitialisedError',
)
