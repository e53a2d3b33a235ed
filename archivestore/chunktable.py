"""The chunk table: chunk key → compact record, as sorted run files plus a small delta in LMDB.

Ingest asks "which of these ids are stored?" for every chunk; a 20 TB store holds 20 M of them.
In an LMDB B-tree each answer is a descent through pages plus a Python call per id (≈ 0.4 M/s at
20 M entries, docs/DESIGN.md). Here the bulk of the table is a few immutable files of sorted
36-byte entries (24-byte key, 12-byte record) with a fence of bucket offsets, searched by
`_runs.find` for a whole batch with the GIL released; the entries indexed since the last merge
sit sorted in one LMDB value (the *delta*), so every insert is still part of the LMDB
transaction that indexes its pack. When the delta reaches `DELTA_MAX` entries it is merged,
with the newest runs while they are not much larger, into a new run file, inside the same
write transaction: the file is written, fsync'd and renamed before the transaction that names
it commits, and the runs it replaces are deleted only after (docs/FORMAT.md section 5.2).

Readers hold an LMDB read transaction while they use the runs it names. A run is never changed
once written; a reader whose run was deleted under it (its transaction predates the merge)
retries with a fresh transaction (`StaleRuns`).
"""
from __future__ import annotations

import array
import mmap
import os
import struct
import threading
import time
import weakref
from pathlib import Path
from typing import Iterator

from . import _runs, faults
from ._verify import crc32
from .backend import fsync_dir
from .errors import FormatError

KEY_LEN = _runs.KEY_LEN          # 24
RECORD_LEN = _runs.RECORD_LEN    # 12
ENTRY = _runs.ENTRY_LEN          # 36
# Entries kept in the LMDB delta before they are merged into a run file. Every pack's index
# transaction rewrites the delta value (≤ 576 KiB, ~2 % of a 32 MiB pack's bytes); a lookup
# searches it in memory like a run. ARCHIVESTORE_DELTA_MAX sets it for tests (merges every few
# packs, e.g. under the crash tests' faults).
DELTA_MAX = int(os.environ.get("ARCHIVESTORE_DELTA_MAX") or 16384)
# A merge takes in the newest run while that run holds at most RATIO× the entries merged so far:
# run sizes then grow geometrically (at most ≈ log4(n / DELTA_MAX) + 1 runs; 6 at 20 M entries)
# and an entry is rewritten a few times over the store's life, not once per merge.
RATIO = 4
MAGIC = b"ASRUN001"
FP_BYTE = 8  # an entry's fingerprint: this byte of its key (_runs.pyx)
# magic, entries, fence bits, CRC-32 of entries + fingerprints + fence; then the CRC-32 of those
# 24 bytes
HEAD = struct.Struct("<8sQB3xI")
HEADER_LEN = 32
RUN_LIST = struct.Struct("<QQ")  # one per run in meta `chunkruns`: generation, entries
U64 = struct.Struct("<Q")
META_DELTA, META_RUNS, META_GEN = b"chunkdelta", b"chunkruns", b"chunkgen"
# A search of at most FILE_SEARCH keys reads each run's bucket entry with pread (≈ 1–2 µs a key
# with the fingerprints, nothing mapped): ingest and restore look up one chunk at a time, fsck a
# pack's chunks and then a file's (up to 1 GiB of audio at 1 MiB chunks). Bigger batches go
# through a read-only mapping, several times faster per key. Its cost is the process's
# file-backed RSS: this kernel maps a whole page-cache folio per fault (≈ 160 KB–2 MB per
# random probe measured here), so a few thousand probes map most of a run. Those are clean page
# cache pages, shared and reclaimable, not memory the process owns; they are dropped
# (MADV_DONTNEED) once TRIM_PROBES probes and TRIM_SECONDS have passed, so a caller doing
# millions of lookups a second refaults a run twice a second, not on every probe.
FILE_SEARCH = 1024
TRIM_PROBES = 256
TRIM_SECONDS = 0.5
MERGE_BUFFER = 65536             # entries per write of a merge (2.3 MiB)


class StaleRuns(Exception):
    """A run named by this read transaction was deleted by a later merge: start a new one.
    `names` is the run list that named it: a new transaction that names the same missing run
    means the file is gone, not replaced (a merge commits before it deletes)."""

    def __init__(self, names: bytes = b"") -> None:
        super().__init__()
        self.names = names


def _damaged(what: str) -> FormatError:
    return FormatError(f"the index's chunk table is damaged ({what}); rebuild it from the "
                       f"packs with: archive fsck --rebuild-index")


def run_name(gen: int) -> str:
    return f"{gen:016x}.run"


def fence_bits(entries: int) -> int:
    """Bucket bits of a run of about `entries`: 8–16 entries per bucket, ≤ 0.5 byte per entry."""
    return min(31, max(0, (entries // 8).bit_length() - 1))


class Run:
    """One run file: its fence in memory, its entries read with pread (a search of a few keys)
    or through a read-only mapping made on first need (batches, merges, checks)."""

    def __init__(self, path: Path, gen: int, n: int) -> None:
        self.gen, self.n, self.path = gen, n, path
        fd = os.open(path, os.O_RDONLY)  # FileNotFoundError → the caller's StaleRuns
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, HEADER_LEN, 0)
            if len(head) < HEADER_LEN:
                raise _damaged(f"{path.name} is truncated")
            magic, count, bits, body_crc = HEAD.unpack_from(head)
            (head_crc,) = struct.unpack_from("<I", head, HEAD.size)
            if magic != MAGIC or crc32(head[:HEAD.size]) != head_crc:
                raise _damaged(f"{path.name} has a bad header")
            if count != n or bits > 31:
                raise _damaged(f"{path.name} holds {count} entries, the index names {n}")
            fence_len = 4 * ((1 << bits) + 1)
            if size != HEADER_LEN + (ENTRY + 1) * n + fence_len:
                raise _damaged(f"{path.name} is {size} bytes, not "
                               f"{HEADER_LEN + (ENTRY + 1) * n + fence_len}")
            # in memory: the fingerprints (1 byte per entry) and the fence (≤ 0.5 byte)
            self.fps = os.pread(fd, n, HEADER_LEN + ENTRY * n)
            self.fence = os.pread(fd, fence_len, HEADER_LEN + (ENTRY + 1) * n)
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.bits, self.body_crc, self.size = fd, bits, body_crc, size
        # closed when the run is dropped: a search holds its runs until it returns
        self._closer = weakref.finalize(self, os.close, fd)
        # a fence that skips entries would answer "absent" for stored chunks: check it whole
        # (≈ 1 ms per million buckets); the entries' order is checked by fsck (`verify`)
        if len(self.fps) != n or not _runs.fence_ok(self.fence, n, bits):
            raise _damaged(f"{path.name} has a bad fence")
        self._map: mmap.mmap | None = None
        self._entries: memoryview | None = None
        self._map_lock = threading.Lock()
        self.probes = 0
        self.trimmed_at = time.monotonic()

    @property
    def entries(self) -> memoryview:
        """The entries, mapped read-only (the mapping is made once, on first use)."""
        if self._entries is None:
            with self._map_lock:
                if self._entries is None:
                    self._map = mmap.mmap(self.fd, self.size, prot=mmap.PROT_READ)
                    self._entries = memoryview(self._map)[HEADER_LEN:HEADER_LEN + ENTRY * self.n]
        return self._entries

    @property
    def table(self) -> tuple:
        """A `_runs.find` table over the mapping."""
        return (self.entries, self.n, self.fence, self.bits, self.fps)

    @property
    def file_table(self) -> tuple:
        """A `_runs.find` table that reads the file (maps nothing)."""
        return (None, self.n, self.fence, self.bits, self.fps, self.fd, HEADER_LEN)

    def probed(self, count: int) -> None:
        """Count lookups through the mapping; drop its pages now and then (`TRIM_PROBES`)."""
        self.probes += count
        if self.probes >= TRIM_PROBES:
            now = time.monotonic()
            if now - self.trimmed_at >= TRIM_SECONDS:
                self.probes = 0
                self.trimmed_at = now
                self.trim()

    def trim(self, end: int | None = None) -> None:
        """Drop this process's mapped pages (of the first `end` bytes of entries, or all)."""
        if self._map is None:
            return
        length = self.size if end is None else (HEADER_LEN + end) // mmap.PAGESIZE * mmap.PAGESIZE
        if length > 0:
            self._map.madvise(mmap.MADV_DONTNEED, 0, length)

    def verify(self) -> str | None:
        """What is wrong with this run's bytes (CRC, key order, fingerprints, fence), or None.
        Reads the entries once, in order, dropping what it has read (RSS stays flat)."""
        merger = _runs.Merger([(self.entries, self.n)])
        counts = array.array("I", bytes(4 << self.bits))
        buf = bytearray(ENTRY * MERGE_BUFFER)
        crc, done = 0, 0
        try:
            while True:
                try:
                    w = merger.fill(buf, counts, self.bits)
                except ValueError:
                    return f"{self.path.name} is out of key order after entry {merger.written}"
                if not w:
                    break
                piece = memoryview(buf)[:w * ENTRY]
                crc = crc32(piece, crc)
                if bytes(piece[FP_BYTE::ENTRY]) != self.fps[done:done + w]:
                    return f"{self.path.name} has a wrong fingerprint near entry {done}"
                done += w
                self.trim(merger.position(0) * ENTRY)
        finally:
            self.trim()
        if crc32(self.fence, crc32(self.fps, crc)) != self.body_crc:
            return f"{self.path.name} fails its CRC"
        if _runs.fence_from_counts(counts, self.bits) != self.fence:
            return f"{self.path.name} has a wrong fence"
        return None


class ChunkTable:
    """The chunk table of one index directory. Every method takes the caller's LMDB transaction
    (and `meta` database), so table changes commit or vanish with the rest of the index."""

    def __init__(self, directory: Path, meta) -> None:
        self.dir = Path(directory)
        self.meta = meta
        self._runs: dict[int, Run] = {}
        self._lock = threading.Lock()
        # runs replaced by merges of this process's write transactions: deleted once the
        # committed list no longer names them
        self._superseded: list[int] = []
        self._cached: tuple[bytes, list[Run]] = (b"\xff", [])
        self._delta_checked = -1

    # -- reading ----------------------------------------------------------------------------
    def run_list(self, txn) -> list[tuple[int, int]]:
        raw = txn.get(META_RUNS, db=self.meta) or b""
        if len(raw) % RUN_LIST.size:
            raise _damaged("a garbled run list")
        return [RUN_LIST.unpack_from(raw, i) for i in range(0, len(raw), RUN_LIST.size)]

    def delta(self, txn):
        """The delta's entries (a buffer valid during `txn` when it was begun with buffers).

        Its key order is checked once per snapshot (LMDB transaction id): a damaged page in
        `data.mdb` must give the rebuild pointer, not a binary search that misses stored keys.
        ≈ 50 µs for a full delta, once per commit in an ingest, once in a reader."""
        raw = txn.get(META_DELTA, db=self.meta)
        if raw is None:
            return b""
        if len(raw) % ENTRY:
            raise _damaged(f"a {len(raw)}-byte delta")
        tid = txn.id()
        if tid != self._delta_checked:
            if _runs.check(raw, len(raw) // ENTRY, None, 0) != -1:
                raise _damaged("the delta is out of key order")
            self._delta_checked = tid
        return raw

    def _run(self, gen: int, n: int) -> Run:
        run = self._runs.get(gen)
        if run is None or run.n != n:
            with self._lock:
                run = self._runs.get(gen)
                if run is None or run.n != n:
                    try:
                        run = Run(self.dir / run_name(gen), gen, n)
                    except FileNotFoundError:
                        raise StaleRuns() from None
                    self._runs[gen] = run
        return run

    def runs(self, txn) -> list[Run]:
        """The runs this transaction names, oldest first (opened once per process; the list is
        parsed again only when it changed)."""
        raw = txn.get(META_RUNS, db=self.meta)
        raw = bytes(raw) if raw is not None else b""
        cached = self._cached
        if cached[0] == raw:
            return cached[1]
        try:
            runs = [self._run(gen, n) for gen, n in self.run_list(txn)]
        except StaleRuns:
            raise StaleRuns(raw) from None
        live = {r.gen for r in runs}
        with self._lock:  # forget merged runs; a search still using one keeps it alive
            for gen in [g for g in self._runs if g not in live]:
                del self._runs[gen]
        self._cached = (raw, runs)
        return runs

    def tables(self, txn, mapped: bool = True) -> tuple[list[tuple], list[Run]]:
        """(`_runs.find` tables newest first: the delta, then the runs; the runs). The runs'
        tables read their mappings, or (`mapped=False`) their files."""
        delta = self.delta(txn)
        runs = self.runs(txn)
        tables = [r.table if mapped else r.file_table for r in reversed(runs)]
        return [(delta, len(delta) // ENTRY, None, 0)] + tables, runs

    def find(self, txn, keys: bytes, stride: int = KEY_LEN) -> tuple[bytearray, bytearray]:
        """(found, records) for keys `stride` bytes apart (each by its first 24 bytes):
        found[i] != 0 when key i is in the table, records[12 i : 12 i + 12] its record then."""
        n = len(keys) // stride
        found, records = bytearray(n), bytearray(n * RECORD_LEN)
        if n:
            mapped = n > FILE_SEARCH
            tables, runs = self.tables(txn, mapped)
            try:
                _runs.find(keys, tables, found, records, stride)
            except OSError:  # a run shorter than its header says: truncated since it was opened
                raise _damaged("a run file is shorter than its entries") from None
            if mapped:
                for r in runs:
                    r.probed(n)
        return found, records

    def iterate(self, txn) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, record) in key order. The runs are taken now (a StaleRuns is raised
        here, not while iterating); the iteration does not need `txn` to stay open."""
        tables, runs = self.tables(txn)
        return self._iterate(tables, runs)

    def _iterate(self, tables: list[tuple], runs: list[Run]) -> Iterator[tuple[bytes, bytes]]:
        merger = _runs.Merger([(t[0], t[1]) for t in tables])
        buf = bytearray(ENTRY * 4096)
        newest_first = list(reversed(runs))
        try:
            while True:
                try:
                    w = merger.fill(buf)
                except ValueError:
                    raise _damaged("a run is out of key order") from None
                if not w:
                    break
                raw = bytes(buf[:w * ENTRY])
                for i in range(0, w * ENTRY, ENTRY):
                    yield raw[i:i + KEY_LEN], raw[i + KEY_LEN:i + ENTRY]
                for t, r in enumerate(newest_first, start=1):  # RSS stays flat on a long walk
                    r.trim(merger.position(t) * ENTRY)
        finally:
            for r in runs:
                r.trim()

    def file_bytes(self) -> int:
        return sum(p.stat().st_blocks * 512 for p in self.dir.glob("*.run"))

    # -- writing (inside the caller's write transaction) -----------------------------------
    def put(self, txn, items: list[tuple[bytes, bytes]]) -> None:
        """Set records: `items` are (24-byte key, 12-byte record), each key once; they override
        what the table holds for those keys. Merges into a run when the delta is full."""
        if not items:
            return
        items.sort()
        new = b"".join(k + r for k, r in items)
        delta = self.delta(txn)
        out = bytearray(len(new) + len(delta))
        try:
            w = _runs.Merger([(new, len(items)), (delta, len(delta) // ENTRY)]).fill(out)
        except ValueError:  # `delta` checked it; duplicate keys in `items` are a caller's bug
            raise _damaged("the delta is out of key order") from None
        if w * ENTRY < len(out):
            del out[w * ENTRY:]
        if w >= DELTA_MAX:
            self._merge(txn, bytes(out))
        else:
            txn.put(META_DELTA, bytes(out), db=self.meta)

    def _merge(self, txn, delta: bytes) -> None:
        """Write the delta and the newest runs as one run; name it in this transaction."""
        runs = self.run_list(txn)
        self._remove_orphans({g for g, _n in runs})
        total, i = len(delta) // ENTRY, len(runs)
        while i > 0 and runs[i - 1][1] <= RATIO * total:
            i -= 1
            total += runs[i][1]
        merged = [self._run(g, n) for g, n in reversed(runs[i:])]
        gen = self._next_gen(txn)
        n = self._write_run(gen, [(delta, len(delta) // ENTRY)] + [(r.entries, r.n) for r in merged],
                            total, merged)
        faults.hit("run_written")  # killed here, the index still names the old runs
        self._name(txn, runs[:i] + [(gen, n)])
        self._superseded += [r.gen for r in merged]

    def _next_gen(self, txn) -> int:
        return U64.unpack(txn.get(META_GEN, db=self.meta) or U64.pack(1))[0]

    def _name(self, txn, runs: list[tuple[int, int]]) -> None:
        """Make `runs` (oldest first, the newest just written) the table, with an empty delta."""
        txn.put(META_RUNS, b"".join(RUN_LIST.pack(g, c) for g, c in runs), db=self.meta)
        txn.put(META_DELTA, b"", db=self.meta)
        txn.put(META_GEN, U64.pack(runs[-1][0] + 1), db=self.meta)

    def _write_run(self, gen: int, sources: list[tuple], upper: int, maps: list[Run]) -> int:
        """Merge `sources` (newest first) into run file `gen`: write, fsync, rename."""
        merger = _runs.Merger(sources)

        def trim() -> None:  # keep the merge's RSS flat
            for t, r in enumerate(maps, start=1):
                r.trim(merger.position(t) * ENTRY)
        n = self._write_file(gen, [merger], upper, trim)
        for r in maps:
            r.trim()
        return n

    def _write_file(self, gen: int, mergers: Iterator, upper: int, step=None) -> int:
        """Write run file `gen` from `mergers` (each `_runs.Merger` in turn, their keys in
        increasing order across them): header, entries, fence; fsync; rename into place."""
        bits = fence_bits(upper)
        counts = array.array("I", bytes(4 << bits))  # per bucket, native u32 (`Merger.fill`)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{run_name(gen)}.tmp"
        buf = bytearray(ENTRY * MERGE_BUFFER)
        fps = bytearray()  # written after the entries: ≈ 1 byte per entry held until then
        crc = n = 0
        with open(tmp, "wb") as f:
            f.write(bytes(HEADER_LEN))
            for merger in mergers:
                while True:
                    try:
                        w = merger.fill(buf, counts, bits)
                    except ValueError:
                        raise _damaged("a run is out of key order") from None
                    if not w:
                        break
                    piece = memoryview(buf)[:w * ENTRY]
                    crc = crc32(piece, crc)
                    f.write(piece)
                    fps += bytes(piece[FP_BYTE::ENTRY])
                    n += w
                    if step is not None:
                        step()
            fence = _runs.fence_from_counts(counts, bits)
            crc = crc32(fence, crc32(fps, crc))
            f.write(fps)
            f.write(fence)
            head = HEAD.pack(MAGIC, n, bits, crc)
            f.seek(0)
            f.write(head + struct.pack("<I", crc32(head)) + bytes(HEADER_LEN - HEAD.size - 4))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / run_name(gen))
        fsync_dir(self.dir)
        return n

    def load_sorted(self, txn, batches: Iterator[bytes], upper: int) -> int:
        """Replace the table with one run of `batches` (entries in strictly increasing key
        order across all of them, about `upper` in all), named in this transaction: an index
        upgrade writes its old table this way. Returns the entries written."""
        self.remove_orphans(txn)
        last = [b""]

        def mergers():
            for batch in batches:
                if batch:
                    if batch[:KEY_LEN] <= last[0]:
                        raise _damaged("the old chunk table is out of key order")
                    last[0] = bytes(batch[-ENTRY:-RECORD_LEN])
                    yield _runs.Merger([(batch, len(batch) // ENTRY)])
        gen = self._next_gen(txn)
        n = self._write_file(gen, mergers(), upper)
        self._name(txn, [(gen, n)])
        return n

    def remove_orphans(self, txn) -> None:
        """Delete the run files the committed list does not name (inside a write transaction:
        a killed merge's run, or runs whose replacement committed before its process died)."""
        self._remove_orphans({g for g, _n in self.run_list(txn)})

    def _remove_orphans(self, live: set[int]) -> None:
        """Delete run files no committed list names (a merge killed before its commit, runs a
        killed process superseded). Only under the write transaction: no merge is running."""
        if not self.dir.is_dir():
            return
        for p in self.dir.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif p.name.endswith(".run"):
                try:
                    gen = int(p.name[:-4], 16)
                except ValueError:
                    continue
                if gen not in live:
                    p.unlink(missing_ok=True)

    def committed(self, env) -> None:
        """After a write transaction committed: delete the runs merges replaced that the
        committed list no longer names. Checked against the list, not assumed: with threads
        sharing this table, another thread's merge may not have committed (or may abort)."""
        if not self._superseded:
            return
        with self._lock, env.begin() as txn:
            live = {g for g, _n in self.run_list(txn)}
            for gen in [g for g in self._superseded if g not in live]:
                (self.dir / run_name(gen)).unlink(missing_ok=True)
                self._superseded.remove(gen)

    def aborted(self) -> None:
        """After a write transaction was dropped: its new run is an orphan (removed by the next
        open or merge) whose generation the next merge will reuse, so forget every cached run
        and list; the runs it replaced stay named."""
        with self._lock:
            self._runs.clear()
            self._cached = (b"\xff", [])
            self._delta_checked = -1
