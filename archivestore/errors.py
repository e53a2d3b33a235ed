"""Error types. Every user-facing failure is an ArchiveError with an exit code; the CLI maps
them to one-line messages in one place."""
from __future__ import annotations

EXIT_OK = 0
EXIT_DAMAGE = 1
EXIT_USAGE = 2
EXIT_OPERATIONAL = 3


class ArchiveError(Exception):
    """Base class: a failure the user can act on. `exit_code` is what the CLI returns."""

    exit_code = EXIT_OPERATIONAL


class UsageError(ArchiveError):
    """Bad arguments or a request that cannot be satisfied as asked."""

    exit_code = EXIT_USAGE


class StoreNotFound(ArchiveError):
    """The store directory does not exist or is not an archivestore store."""


class StoreExists(ArchiveError):
    """`init` on a path that already holds a store or other files."""


class FormatError(ArchiveError):
    """On-disk data that violates docs/FORMAT.md (wrong magic, version, lengths)."""


class DamageError(ArchiveError):
    """Stored data failed verification: a checksum or hash mismatch, or a missing object."""

    exit_code = EXIT_DAMAGE


class NotFound(ArchiveError):
    """A project, version, path or chunk that the store does not hold."""

    exit_code = EXIT_USAGE


class LockedError(ArchiveError):
    """Another process holds the store's lock."""


class InputError(ArchiveError):
    """A source file could not be read (permissions, vanished, changed while read)."""


class StoreFull(ArchiveError):
    """The store's disk (or the index's) ran out of space; nothing of the operation was committed."""
