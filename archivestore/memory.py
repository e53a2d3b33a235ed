"""Process-wide memory tuning: the allocator for reads that stream decoded chunks (restore,
fsck), and the cyclic garbage collector's thresholds (`quiet_gc`).

Every chunk passes through a few 0.25–4 MiB buffers (read, decoded, encoded) that live for
milliseconds. glibc hands such blocks back to the kernel as soon as they are freed (mmap'd
blocks are unmapped, the top of a heap is trimmed past 2× the block size) and the next block
faults every page in again, zero-filled: a restore spent as much time in the kernel as in
user space (2.5 CPU-s user, 1.2–2.4 s sys for 1.2 GB). Keeping freed blocks in the heap removes
that churn; peak RSS is unchanged because the number of buffers alive at once is bounded by the
pipelines, not by this setting. Ingest is not tuned: its encoder threads each kept their own
heap and peak RSS rose from 103 to 130 MB for no measurable gain.
"""
from __future__ import annotations

import gc
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap, not a private mapping (glibc caps it at 32 MiB on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free space at the top of a heap kept for reuse before it is returned to the kernel.
TRIM_THRESHOLD = 64 * 1024 * 1024


def tune_allocator() -> bool:
    """Keep short-lived chunk buffers in the heap (glibc only); True if the setting took."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        # the C library the interpreter runs on (find_library would spawn `ldconfig -p`)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok


def quiet_gc() -> None:
    """Make cyclic garbage collection rare: a command's objects (imports, indexes, trees) live
    for its whole run, and collections that rescan them cost a re-ingest a third of its time
    (py-spy). `python -m archivestore` calls this before its imports, `cli.main` again."""
    gc.set_threshold(50_000, 50, 100)
