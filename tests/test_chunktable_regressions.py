"""Index format 5 (the chunk table): regression tests from the review of its first version —
each failed on it (the docstrings say how)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from archivestore import chunktable
from archivestore.errors import FormatError
from archivestore.index import Index
from archivestore.packs import BlobRef

from .conftest import ROOT
from .test_chunktable import ref


def _as_format_4(path: Path) -> list[bytes]:
    """A format 4 index at `path` holding 50 chunks; their ids."""
    idx = Index(path)
    ids = [os.urandom(32) for _ in range(50)]
    name = os.urandom(16).hex()
    idx.add_pack(name, 1 << 20, [ref(c, i) for i, c in enumerate(ids)])
    with idx.env.begin(write=True) as txn:
        items = [(k, bytes(v)) for k, v in idx.table.iterate(txn)]
        for key in (b"chunkdelta", b"chunkruns", b"chunkgen"):
            txn.delete(key, db=idx.meta)
    for run in (path / "runs").glob("*.run"):
        run.unlink()
    chunks = idx.env.open_db(b"chunks", dupsort=True, dupfixed=True)
    with idx.env.begin(write=True) as txn:
        for k, v in items:
            txn.put(k[:1], k[1:] + v, db=chunks)
        txn.put(b"format", b"4", db=idx.meta)
    idx.close()
    return ids


def test_processes_opening_a_format_4_index_at_once_upgrade_it_once(tmp_path):
    """The upgrade runs in the open's write transaction, the one that read format 4: a second
    process waits for it, then reads format 5 and leaves the run alone. (Upgrading in a second
    transaction let two opens both upgrade: the second deleted the first's committed run and
    named an empty one, and every chunk read as absent.)"""
    for trial in range(3):
        path = tmp_path / f"index{trial}"
        ids = _as_format_4(path)
        procs = [subprocess.Popen([sys.executable, "-c",
                                   f"from archivestore.index import Index; "
                                   f"Index({str(path)!r}).close()"], cwd=ROOT)
                 for _ in range(3)]
        assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
        idx = Index(path)
        assert idx.contains_many(ids) == [True] * len(ids)
        with idx.env.begin() as txn:
            assert [n for _g, n in idx.table.run_list(txn)] == [len(ids)]
        assert len(list((path / "runs").iterdir())) == 1
        idx.close()


def test_stale_run_after_abort_then_repoint(tmp_path, small_delta, monkeypatch):
    """add_packs: pack 1 merges into run G, pack 2's search opens G (cached by generation in
    `_runs`/`_cached`); the transaction aborts, chunkgen stays G. The next write is a repoint
    (put() without a runs() call): its merge commits a different run G; readers get the
    aborted transaction's file."""
    idx = Index(tmp_path / "index")
    base = [os.urandom(32) for _ in range(10)]
    home = os.urandom(16).hex()
    idx.add_pack(home, 1 << 20, [ref(c, i) for i, c in enumerate(base)])  # merged: run 1
    ghost = [os.urandom(32) for _ in range(12)]
    calls = []
    real_bump = Index._bump

    def bump(self, txn, **d):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a failure while indexing the second pack")
        real_bump(self, txn, **d)
    monkeypatch.setattr(Index, "_bump", bump)
    with pytest.raises(RuntimeError):
        idx.add_packs([(os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(ghost[:8])]),
                       (os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(ghost[8:])])])
    monkeypatch.setattr(Index, "_bump", real_bump)
    # a repair re-points the 10 stored chunks (a merge: 10 >= DELTA_MAX), committing gen 2
    idx.repoint(home, [BlobRef(c, 5000 + i, 10, 9, 0, 2) for i, c in enumerate(base)])
    assert idx.contains_many(ghost) == [False] * 12  # was: the aborted packs' chunks "stored"
    assert [loc.offset for loc in idx.lookup_many(base)] == [5000 + i for i in range(10)]
    idx.close()


def test_a_missing_run_in_a_write_is_a_format_error(tmp_path, small_delta):
    """A run file named by the committed list is gone (damage, a user's rm): readers get the
    rebuild pointer after their retries, but a write raises the internal StaleRuns."""
    idx = Index(tmp_path / "index")
    idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(os.urandom(32), i) for i in range(10)])
    idx.close()
    for run in (tmp_path / "index" / "runs").glob("*.run"):
        run.unlink()
    idx = Index(tmp_path / "index")
    with pytest.raises(FormatError, match="rebuild-index"):
        idx.lookup(os.urandom(32))
    with pytest.raises(FormatError, match="rebuild-index"):  # was: an internal StaleRuns
        idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(os.urandom(32), 0)])
    idx.close()


def test_another_threads_commit_deletes_runs_an_uncommitted_merge_replaced(tmp_path, small_delta,
                                                                           monkeypatch):
    """`_superseded` is one list per ChunkTable, and committed() runs after the write lock is
    released: thread A's committed() deletes the runs thread B's still-open merge replaced;
    B's transaction then aborts (disk full), and the committed run list names deleted files."""
    idx = Index(tmp_path / "index")
    ids = [os.urandom(32) for _ in range(10)]
    idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(ids)])
    merged, a_done = threading.Event(), threading.Event()
    real_bump, real_committed = Index._bump, idx.table.committed

    def bump(self, txn, **d):  # B, after its merge, before its commit
        if threading.current_thread() is not threading.main_thread():
            merged.set()
            a_done.wait(10)
            raise OSError(28, "No space left on device")
        real_bump(self, txn, **d)
    monkeypatch.setattr(Index, "_bump", bump)

    def b():
        try:
            idx.add_pack(os.urandom(16).hex(), 1 << 20,
                         [ref(os.urandom(32), i) for i in range(10)])  # merges run 1 away
        except OSError:
            pass
    tb = threading.Thread(target=b)

    def committed(env):  # A: its LMDB commit is done, the lock free; B begins and merges
        tb.start()
        merged.wait(10)
        real_committed(env)
        a_done.set()
    idx.table.committed = committed
    with idx._write() as txn:  # A: any write (put_meta, add_version, ...)
        txn.put(b"x", b"1", db=idx.meta)
    tb.join(10)
    idx.table.committed = real_committed
    with idx.env.begin() as txn:
        named = [chunktable.run_name(g) for g, _n in idx.table.run_list(txn)]
    idx.close()
    assert all((tmp_path / "index" / "runs" / n).exists() for n in named)  # was: deleted
    idx = Index(tmp_path / "index")  # another process (was: FormatError, rebuild needed)
    assert idx.contains_many(ids) == [True] * 10
    idx.close()


def test_find_with_many_fenced_tables_overflows_views():
    """find() keeps 2 * MAX_TABLES + 1 Py_buffers but acquires up to 3 per table (entries,
    fingerprints, fence): 43+ such tables write past `views` on the stack."""
    script = """
import os
from archivestore import _runs
fence = (0).to_bytes(4, "little") + (1).to_bytes(4, "little")
tables = []
for t in range(64):
    raw = os.urandom(24) + bytes(12)
    tables.append((raw, 1, fence, 0, raw[8:9]))
_runs.find(os.urandom(24), tables, bytearray(1), bytearray(12))
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert r.returncode == 0  # was: SIGSEGV (-11)
