"""archivestore: a content-addressed, deduplicating archive store for studio sessions."""
__version__ = "0.1.0"

from .errors import ArchiveError  # noqa: E402
from .store import Store  # noqa: E402

__all__ = ["ArchiveError", "Store", "__version__"]
