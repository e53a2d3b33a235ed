"""Test-only fault injection at named points of the write path.

`ARCHIVESTORE_FAULT=point:n[:action]` makes the n-th call of `hit(point)` in this process either
kill the process with SIGKILL (`kill`, the default: a power cut as far as the store can tell) or
raise ENOSPC on that and every later pass (`enospc`: a full disk), or stop the process with
SIGSTOP until a test sends SIGCONT (`stop`). Points: `chunk` (a chunk was cut), `pack_write` (a blob is
about to be appended to a pack), `pack_fsync` (a pack is complete, before fsync),
`pack_publish` (fsync'd, before the rename into packs/), `index_commit` (pack renamed, before its
index transaction), `index_txn` (inside that transaction, before it commits), `commit_index`
(the pack holding the snapshot record is published, commit lock held, before it is indexed),
`snapshot` (the commit lock is held, before the snapshot record is written), `run_written` (a
merged chunk-table run is renamed into place, before the index transaction naming it commits).
When the variable is unset `hit` is a dictionary lookup and a return.
"""
from __future__ import annotations

import errno
import os
import threading

_SPEC = os.environ.get("ARCHIVESTORE_FAULT", "")
_counts: dict[str, int] = {}
_lock = threading.Lock()


def _parse(spec: str) -> tuple[str, int, str] | None:
    if not spec:
        return None
    parts = spec.split(":")
    return parts[0], int(parts[1]) if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else "kill"


_TARGET = _parse(_SPEC)
POINTS = ("chunk", "pack_write", "pack_fsync", "pack_publish", "index_commit", "index_txn",
          "commit_index", "snapshot", "run_written")


def hit(point: str) -> None:
    """Count a pass through `point`; fire the configured fault on the n-th pass."""
    if _TARGET is None or _TARGET[0] != point:
        return
    with _lock:
        n = _counts[point] = _counts.get(point, 0) + 1
    if n < _TARGET[1]:
        return
    import signal
    if _TARGET[2] == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if _TARGET[2] == "stop":  # freeze here until SIGCONT (a test interleaves another process)
        if n == _TARGET[1]:
            os.kill(os.getpid(), signal.SIGSTOP)
        return
    os.kill(os.getpid(), signal.SIGKILL)
