"""archivestore: a content-addressed, deduplicating archive store for studio sessions."""
__version__ = "0.1.0"

from .errors import ArchiveError  # noqa: E402

__all__ = ["ArchiveError", "Store", "__version__"]


def __getattr__(name: str):
    # Store is imported on first use: `python -m archivestore` runs this file before __main__,
    # which sets up the garbage collector before the bulk of the imports
    if name == "Store":
        from .store import Store
        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
