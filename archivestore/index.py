"""The LMDB index: chunk id → pack location, pack names, and project versions.

It knows hashes and packs, not files. It is a cache of what the packs say (docs/FORMAT.md
section 5): deleting it loses nothing, `Store.rebuild_index` refills it from the packs.
"""
from __future__ import annotations

import errno
import json
import os
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import lmdb

from . import faults
from .chunktable import ChunkTable, StaleRuns
from .errors import FormatError
from .packs import BlobRef

# 5: compact records in the chunk table (sorted run files + an LMDB delta, archivestore.chunktable)
# instead of a B-tree; 4: records keyed by the first KEY_LEN (24) bytes of the id, not all 32
# (docs/FORMAT.md section 5); 3: compact records in a DUPSORT|DUPFIXED `chunks` table, wide ones in `wide`; 2 kept every
# record in a plain `chunks` table; 1 stored `<IIIIBB` for every chunk
INDEX_FORMAT = b"5"
# Free bytes below which an EIO from LMDB counts as a full disk (disk_full_error)
NEARLY_FULL = 16 << 20
CHUNK_VALUE = struct.Struct("<IIIIBB")  # the wide chunk record, for fields the compact one can't hold
# The compact chunk record: one 96-bit little-endian integer, low bits first:
# pack number 23 | blob offset 25 | plain length - 1 22 | stored length - 1 22 | kind 2 | codec 2
COMPACT_LEN = 12
# The index keeps only the first KEY_LEN bytes (192 bits) of each 32-byte BLAKE3 id: every read
# checks the full id in the blob header and the BLAKE3 of the decoded bytes, so a key match never
# returns wrong bytes; two chunks sharing a key (n^2/2^193, 3e-44 at 20M chunks) would only make
# ingest take the second for stored (docs/FORMAT.md section 5, docs/DESIGN.md).
KEY_LEN = 24
PACK_VALUE = struct.Struct("<16sQI")
U32BE = struct.Struct(">I")
U64 = struct.Struct("<Q")
# Virtual address space only: LMDB on Linux grows the file as pages are used. 1 TiB covers
# hundreds of millions of chunks; on MapFullError the map is doubled and the write retried.
MAP_SIZE = 1 << 40
# Read transactions tried when merges keep replacing the runs the last one named (each retry
# follows a committed merge; the same list naming a missing run twice ends it at once).
STALE_RETRIES = 1000
# Chunk entries per write transaction of a bulk load (`Index.add_packs`).
TXN_CHUNKS = 8192


@dataclass(frozen=True)
class Location:
    """Where a chunk's blob is: pack name (hex) and the blob's fields."""

    pack: str
    offset: int
    plain_len: int
    stored_len: int
    kind: int
    codec: int


def key_of(chunk_id: bytes) -> bytes:
    """The index key of a chunk id: its first KEY_LEN bytes (what `Index.iter_chunks` yields)."""
    return bytes(chunk_id[:KEY_LEN])


def version_key(project: str, version: int) -> bytes:
    return project.encode("utf-8", "surrogateescape") + b"\0" + U32BE.pack(version)


def split_version_key(key: bytes) -> tuple[str, int]:
    return key[:-5].decode("utf-8", "surrogateescape"), U32BE.unpack(key[-4:])[0]


def pack_chunk(num: int, offset: int, plain_len: int, stored_len: int, kind: int,
               codec: int) -> bytes:
    """A `chunks` value: the 12-byte compact record when every field fits, else the 18-byte
    wide one (`CHUNK_VALUE`). Readers tell them apart by length."""
    if (num < 1 << 23 and offset < 1 << 25 and 0 < plain_len <= 1 << 22
            and 0 < stored_len <= 1 << 22 and kind < 4 and codec < 4):
        v = (num | offset << 23 | (plain_len - 1) << 48 | (stored_len - 1) << 70
             | kind << 92 | codec << 94)
        return v.to_bytes(COMPACT_LEN, "little")
    return CHUNK_VALUE.pack(num, offset, plain_len, stored_len, kind, codec)


def _garbled(what: str) -> FormatError:
    return FormatError(f"the index holds a garbled chunk record ({what}); rebuild it from the "
                       f"packs with: archive fsck --rebuild-index")


def unpack_chunk(raw) -> tuple[int, int, int, int, int, int]:
    """(pack number, offset, plain length, stored length, kind, codec) of a `chunks` value."""
    if len(raw) == COMPACT_LEN:
        v = int.from_bytes(raw, "little")
        return (v & 0x7FFFFF, v >> 23 & 0x1FFFFFF, (v >> 48 & 0x3FFFFF) + 1,
                (v >> 70 & 0x3FFFFF) + 1, v >> 92 & 3, v >> 94)
    if len(raw) == CHUNK_VALUE.size:
        return CHUNK_VALUE.unpack(raw)
    raise _garbled(f"{len(raw)} bytes")


def _record(raw) -> dict:
    """A snapshot record as the index keeps it; garbage means the index file is damaged."""
    try:
        rec = json.loads(bytes(raw))
    except ValueError:
        rec = None
    if not isinstance(rec, dict) or not isinstance(rec.get("tree"), list):
        raise FormatError("the index holds a garbled version record; rebuild it from the packs "
                          "with: archive fsck --rebuild-index")
    return rec


# LMDB refuses keys over 511 bytes (MDB_BAD_VALSIZE); session paths can be longer than that.
MAX_KEY = 511


def file_key(project: str, version: int, path: str) -> bytes:
    """Key of a `files` record: project \\0 version (u32 big-endian) \\0 path. A key that would
    pass LMDB's limit keeps the path's start, then `\\0` and 16 bytes of its BLAKE2b; such a
    record carries the full path in its `path` field."""
    key = version_key(project, version) + b"\0" + path.encode("utf-8", "surrogateescape")
    if len(key) > MAX_KEY:
        import hashlib  # rare (a key this long), and importing it loads OpenSSL
        key = key[:MAX_KEY - 17] + b"\0" + hashlib.blake2b(key, digest_size=16).digest()
    return key


def disk_full_error(e: lmdb.Error, path: Path) -> OSError | None:
    """ENOSPC for an LMDB error that means the index's disk is full, else None. LMDB names
    ENOSPC and EDQUOT in its text, and turns a page write cut short into EIO ("short write,
    filesystem full?" in mdb_page_flush): that is a full disk when the filesystem holding
    `path` has next to nothing left (NEARLY_FULL)."""
    text = str(e)
    if "No space left" not in text and "quota" not in text:
        if "Input/output error" not in text:
            return None
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        if st.f_bavail * st.f_frsize >= NEARLY_FULL:
            return None
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (index: {text})")


class Index:
    """Opens (creating if needed) the LMDB environment at `path`."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.env = lmdb.open(str(self.path), map_size=MAP_SIZE, max_dbs=16, subdir=True,
                                 readahead=False, max_readers=256)
        except lmdb.Error as e:
            raise FormatError(f"the index at {self.path} is damaged ({e}); rebuild it from the "
                              f"packs with: archive fsck --rebuild-index") from None
        # A data.mdb shorter than the pages its meta page claims (truncated by a copy or a
        # crash of the disk) would be mapped past its end: the first read of such a page kills
        # the process with SIGBUS. Check before any page is touched.
        # Reader slots of killed processes pin old pages (the file grows) and fill the table.
        self.env.reader_check()
        data_file = self.path / "data.mdb"
        used = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        if data_file.exists() and data_file.stat().st_size < used:
            self.env.close()
            raise FormatError(f"the index at {self.path} is damaged (data.mdb is truncated); "
                              f"rebuild it from the packs with: archive fsck --rebuild-index")
        try:
            # the format first: another layout's databases may not even open with our flags
            self.meta = self.env.open_db(b"meta")
            self.table = ChunkTable(self.path / "runs", self.meta)
            with self.env.begin(write=True) as txn:
                fmt = txn.get(b"format", db=self.meta)
                if fmt is None:
                    from . import findindex  # deferred: only `find` and ingest use it (start-up time)
                    txn.put(b"format", INDEX_FORMAT, db=self.meta)
                    findindex.mark_new(txn, self.meta)  # no records: its blocks are complete
                self.rebuilding = txn.get(b"rebuilding", db=self.meta) is not None
                if fmt == b"4":  # in this transaction: two processes must not both upgrade
                    self._upgrade_from_4(txn)
                    fmt = INDEX_FORMAT
                elif fmt == INDEX_FORMAT:  # under the write lock: no merge is under way
                    self.table.remove_orphans(txn)
            if fmt is not None and fmt != INDEX_FORMAT:
                # an index is a cache of the packs: never read records of another layout
                self.env.close()
                raise FormatError(
                    f"the index at {self.path} has format {fmt.decode('ascii', 'replace')}, "
                    f"this version uses {INDEX_FORMAT.decode()}; rebuild it from the packs "
                    f"with: archive fsck --rebuild-index")
            # compact records live in the chunk table, `wide` holds those the compact layout
            # can't (section 5)
            self.wide = self.env.open_db(b"wide")
            self.packs = self.env.open_db(b"packs")
            self.packnames = self.env.open_db(b"packnames")
            self.versions = self.env.open_db(b"versions")
            self.snapids = self.env.open_db(b"snapids")
            self.files = self.env.open_db(b"files")  # the file catalog (archivestore.catalog)
            # its search blocks, derived from `files` (archivestore.findindex)
            self.find_names, self.find_text, self.find_out = (
                self.env.open_db(n) for n in (b"find_names", b"find_text", b"find_out"))
        except lmdb.Error as e:
            self.env.close()
            raise FormatError(f"the index at {self.path} is damaged ({e}); rebuild it from the "
                              f"packs with: archive fsck --rebuild-index") from None
        except FormatError:  # e.g. a garbled run list: nothing stays open
            self.env.close()
            raise
        #: True when this open created the index (it was missing or empty).
        self.created = fmt is None
        self._pack_names: dict[int, str] = {}

    def _upgrade_from_4(self, txn) -> None:
        """Format 4 → 5 inside the open's write transaction (the one that read `format`, so a
        second process waits for it and then finds format 5): format 4's DUPSORT `chunks` table
        (key = the id's first byte, 35-byte items = its bytes 1..23 + the compact record)
        becomes one run of the same entries in the same order, then is dropped; `wide` and
        every other table are the same in both. Killed midway, the index is still format 4 and
        the next open upgrades it again (a 20 M-chunk table takes seconds; a rebuild would read
        every pack footer)."""
        old = self.env.open_db(b"chunks", txn=txn, dupsort=True, dupfixed=True)

        def batches():
            items = []
            for k, v in txn.cursor(old):
                if len(k) != 1 or len(v) != 35:
                    raise _garbled(f"a {len(k)}-byte key, a {len(v)}-byte item")
                items.append(k + v)  # 1 + 23 key bytes + the record: one entry
                if len(items) == 65536:
                    yield b"".join(items)
                    items = []
            yield b"".join(items)
        self.table.load_sorted(txn, batches(), txn.stat(old)["entries"])
        txn.drop(old, delete=True)
        txn.put(b"format", INDEX_FORMAT, db=self.meta)

    def close(self) -> None:
        self.env.close()

    @staticmethod
    def destroy(path: Path) -> None:
        import shutil  # deferred: rare here, and it loads bz2 and lzma (start-up time)
        shutil.rmtree(path, ignore_errors=True)

    # -- writes ---------------------------------------------------------------------------
    @contextmanager
    def _write(self):
        """A write transaction; the chunk table learns whether it committed."""
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except StaleRuns:  # the write transaction sees the latest list: a named run is gone
            self.table.aborted()
            raise self._missing_run() from None
        except lmdb.Error as e:
            self.table.aborted()
            full = disk_full_error(e, self.path)
            if full is not None:  # callers report a full disk as such, not as a damaged index
                raise full from e
            raise
        except BaseException:
            self.table.aborted()
            raise
        self.table.committed(self.env)

    def _reading(self, fn):
        """fn(read transaction), again with a new transaction if a merge deleted a run the
        first one names (docs/FORMAT.md section 5.2). Values are read in place (buffers), not
        copied (the delta is up to 576 KiB): fn must not keep one past the transaction."""
        txn, out = self._begin_reading(fn, buffers=True)
        txn.abort()
        return out

    def _begin_reading(self, fn, buffers: bool = False):
        """(read transaction, fn(it)), the transaction still open for the caller to end; a new
        transaction while merges keep replacing the runs the last one named."""
        seen = None
        for _attempt in range(STALE_RETRIES):
            txn = self.env.begin(buffers=buffers)
            try:
                return txn, fn(txn)
            except StaleRuns as e:
                txn.abort()
                if e.names == seen:  # the same list again: its file is gone for good
                    break
                seen = e.names
            except BaseException:
                txn.abort()
                raise
        raise self._missing_run()

    @staticmethod
    def _full_ids(ids: list[bytes], fn, other):
        """fn(ids) where every id is a full 32-byte id; else fn of those, `other` for the rest
        (an id of another length is never in the index)."""
        if set(map(len, ids)) == {32}:
            return fn(ids)
        answers = iter(fn([c for c in ids if len(c) == 32]))
        return [next(answers) if len(c) == 32 else other for c in ids]

    def _missing_run(self) -> FormatError:
        return FormatError(f"the index at {self.path} names a chunk run file that is missing; "
                           f"rebuild it from the packs with: archive fsck --rebuild-index")

    def _grow_on_full(self, fn, *args) -> None:
        """Run a write; if the map is full, double map_size and run it once more."""
        try:
            fn(*args)
        except lmdb.MapFullError:
            self.env.set_mapsize(self.env.info()["map_size"] * 2)
            fn(*args)

    def get_meta(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(key, db=self.meta)

    def put_meta(self, key: bytes, value: bytes) -> None:
        def put():
            with self._write() as txn:
                txn.put(key, value, db=self.meta)
        self._grow_on_full(put)

    def add_pack(self, name: str, size: int, entries: Iterable[BlobRef],
                 version: tuple[str, int, dict] | None = None) -> None:
        """Index a durable pack's blobs in one transaction (and optionally a snapshot record)."""
        entries = list(entries)
        self._grow_on_full(self._add_pack, name, size, entries, version)

    def add_packs(self, packs: list[tuple[str, int, list[BlobRef]]]) -> None:
        """Index many durable packs, a transaction per `TXN_CHUNKS` entries (bulk loads).

        Each pack is indexed whole or not at all. Bounded transactions keep the file small:
        LMDB copies every page a transaction touches, and the old copies stay in the file as
        free pages; one transaction of 131k random ids at 20M entries touched a quarter of the
        `chunks` tree and left the file 40 % larger than its live pages (docs/DESIGN.md)."""
        def run(group):
            with self._write() as txn:
                for name, size, entries in group:
                    self._add_pack_txn(txn, name, size, entries, None)
        group: list = []
        count = 0
        for pack in packs:
            group.append(pack)
            count += len(pack[2])
            if count >= TXN_CHUNKS:
                self._grow_on_full(run, group)
                group, count = [], 0
        if group:
            self._grow_on_full(run, group)

    def _add_pack(self, name: str, size: int, entries: list[BlobRef],
                  version: tuple[str, int, dict] | None) -> None:
        with self._write() as txn:
            self._add_pack_txn(txn, name, size, entries, version)

    def _add_pack_txn(self, txn, name: str, size: int, entries: list[BlobRef],
                      version: tuple[str, int, dict] | None) -> None:
        raw = bytes.fromhex(name)
        if txn.get(raw, db=self.packnames) is not None:
            # `fsck --repair` indexed it first (it was complete, not yet indexed): the
            # snapshot record still belongs to this commit
            if version is not None:
                self._put_version(txn, *version)
            return
        num = txn.stat(self.packs)["entries"]
        cur = txn.cursor(self.packs)
        if cur.last():
            num = U32BE.unpack(cur.key())[0] + 1
        txn.put(U32BE.pack(num), PACK_VALUE.pack(raw, size, len(entries)), db=self.packs)
        txn.put(raw, U32BE.pack(num), db=self.packnames)
        new_chunks = new_bytes = 0
        keys = [bytes(e.id[:KEY_LEN]).ljust(KEY_LEN, b"\0") for e in entries]
        found = self.table.find(txn, b"".join(keys))[0]
        wide = txn.cursor(self.wide)
        has_wide = txn.stat(self.wide)["entries"] > 0
        new: dict[bytes, bytes] = {}
        for e, key, hit in zip(entries, keys, found):
            # one record per id, the first pack indexed keeps it (a repoint moves it)
            if hit or key in new:
                continue
            rec = pack_chunk(num, e.offset, e.plain_len, e.stored_len, e.kind, e.codec)
            if len(rec) == COMPACT_LEN:
                if has_wide and wide.set_key(key):
                    continue
                new[key] = rec
            elif not wide.put(key, rec, overwrite=False):
                continue
            else:
                has_wide = True
            if e.kind == 0:
                new_chunks += 1
                new_bytes += e.plain_len
        self.table.put(txn, list(new.items()))
        self._bump(txn, chunks=new_chunks, bytes_unique=new_bytes, bytes_stored=size)
        if version is not None:
            self._put_version(txn, *version)
        faults.hit("index_txn")  # killed here, LMDB drops the whole transaction

    def set_rebuilding(self, on: bool) -> None:
        """Mark a rebuild in progress, so an interrupted rebuild is not taken for an index."""
        with self._write() as txn:
            if on:
                txn.put(b"rebuilding", b"1", db=self.meta)
            else:
                txn.delete(b"rebuilding", db=self.meta)
        self.rebuilding = on

    def _bump(self, txn, **deltas: int) -> None:
        for k, d in deltas.items():
            key = k.encode()
            old = txn.get(key, db=self.meta)
            txn.put(key, U64.pack((U64.unpack(old)[0] if old else 0) + d), db=self.meta)

    def _put_version(self, txn, project: str, version: int, record: dict,
                     files: Iterable[tuple[str, bytes]] | None = None) -> None:
        key = version_key(project, version)
        txn.put(key, json.dumps(record, ensure_ascii=True).encode(), db=self.versions)
        txn.put(bytes.fromhex(record["id"]), key, db=self.snapids)
        if files is not None:
            self._put_files(txn, project, version, files)

    def _put_files(self, txn, project: str, version: int,
                   files: Iterable[tuple[str, bytes]]) -> None:
        for path, value in files:
            key = file_key(project, version, path)
            if len(key) == MAX_KEY and b"\0" in key[len(version_key(project, version)) + 1:]:
                value = json.dumps({**json.loads(value), "path": path}, ensure_ascii=False,
                                   separators=(",", ":")).encode("utf-8", "surrogateescape")
            txn.put(key, value, db=self.files)
        from . import findindex  # deferred: restore and fsck never index versions (start-up time)
        findindex.index_version(self, txn, version_key(project, version))  # same transaction

    def add_version(self, project: str, version: int, record: dict,
                    files: Iterable[tuple[str, bytes]] | None = None) -> None:
        """Index a snapshot record (and its catalog records, `(path, value)`) in one transaction."""
        with self._write() as txn:
            self._put_version(txn, project, version, record, files)

    def add_files(self, project: str, version: int, files: Iterable[tuple[str, bytes]]) -> None:
        """Add catalog records for a version (index rebuild, benchmarks)."""
        with self._write() as txn:
            self._put_files(txn, project, version, files)

    def has_files(self, project: str, version: int) -> bool:
        """True when the catalog holds at least one record of this version."""
        prefix = version_key(project, version) + b"\0"
        with self.env.begin() as txn:
            cur = txn.cursor(self.files)
            return cur.set_range(prefix) and cur.key().startswith(prefix)

    def repoint(self, name: str, entries: Iterable[BlobRef]) -> None:
        """Point chunk entries at their copies in the indexed pack `name` (after a repair
        wrote good copies of damaged or missing blobs there)."""
        with self._write() as txn:
            num = txn.get(bytes.fromhex(name), db=self.packnames)
            if num is None:
                raise FormatError(f"pack {name} is not indexed")
            num = U32BE.unpack(num)[0]
            compact: dict[bytes, bytes] = {}
            for e in entries:
                key = bytes(e.id[:KEY_LEN])
                rec = pack_chunk(num, e.offset, e.plain_len, e.stored_len, e.kind, e.codec)
                # a `wide` record overrides the chunk table's (whose old record may stay)
                txn.delete(key, db=self.wide)
                if len(rec) == COMPACT_LEN:
                    compact[key] = rec
                else:
                    compact.pop(key, None)
                    txn.put(key, rec, db=self.wide)
            self.table.put(txn, list(compact.items()))

    def get_version(self, project: str, version: int) -> dict | None:
        with self.env.begin() as txn:
            v = txn.get(version_key(project, version), db=self.versions)
        return json.loads(v) if v is not None else None

    def next_version(self, project: str) -> int:
        versions = self.list_versions(project)
        return versions[-1][0] + 1 if versions else 1

    # -- reads ----------------------------------------------------------------------------
    def counter(self, name: str) -> int:
        with self.env.begin() as txn:
            v = txn.get(name.encode(), db=self.meta)
        return U64.unpack(v)[0] if v else 0

    def _pack_name(self, txn, num: int) -> str:
        name = self._pack_names.get(num)
        if name is None:
            v = txn.get(U32BE.pack(num), db=self.packs)
            if v is None:
                raise FormatError(f"index names pack #{num} that it does not list")
            name = PACK_VALUE.unpack(v)[0].hex()
            self._pack_names[num] = name
        return name

    def _records(self, txn, keys: bytes, stride: int) -> list:
        """The chunk record (12 or 18 bytes) of each key in `keys` (`stride` bytes apart, each
        by its first KEY_LEN bytes), or None. A `wide` record overrides the chunk table's (a
        repoint to a wide record leaves the old one)."""
        found, records = self.table.find(txn, keys, stride)
        out = [records[12 * i:12 * i + 12] if f else None for i, f in enumerate(found)]
        if txn.stat(self.wide)["entries"]:
            for i in range(len(out)):
                v = txn.get(keys[i * stride:i * stride + KEY_LEN], db=self.wide)
                if v is not None:
                    out[i] = v
        return out

    def lookup_many(self, ids: list[bytes]) -> list[Location | None]:
        """`lookup` of many full 32-byte ids in one transaction and one table search."""
        def locate(full: list[bytes]) -> list[Location | None]:
            if not full:
                return []
            joined = b"".join(full)
            return self._reading(lambda txn: [None if v is None else self._location(txn, v)
                                              for v in self._records(txn, joined, 32)])
        return self._full_ids(ids, locate, None)

    def _location(self, txn, rec) -> Location:
        num, off, plain, stored, kind, codec = unpack_chunk(rec)
        return Location(self._pack_name(txn, num), off, plain, stored, kind, codec)

    def lookup(self, chunk_id: bytes) -> Location | None:
        """Where the chunk of this full 32-byte id is (found by its key), or None."""
        if len(chunk_id) != 32:
            return None
        return self.lookup_key(chunk_id[:KEY_LEN])

    def lookup_key(self, key: bytes) -> Location | None:
        """`lookup` by an index key (`key_of`, `iter_chunks`): where only the index knows the
        chunk, e.g. a chunk of a missing pack."""
        if len(key) != KEY_LEN:
            return None

        def read(txn):
            v = self._records(txn, bytes(key), KEY_LEN)[0]
            return None if v is None else self._location(txn, v)
        return self._reading(read)

    def contains_many(self, ids: list[bytes]) -> list[bool]:
        """Membership test of many ids in one read transaction and one search of the chunk
        table (GIL released), without decoding locations (ingest's dedup check, fsck's)."""
        def present(full: list[bytes]) -> list[bool]:
            if not full:
                return []
            joined = b"".join(full)

            def read(txn):
                found = self.table.find(txn, joined, 32)[0]
                if txn.stat(self.wide)["entries"]:  # empty with the default chunker and packs
                    get, wide = txn.get, self.wide
                    return [bool(f) or get(c[:KEY_LEN], db=wide) is not None
                            for f, c in zip(found, full)]
                return list(map(bool, found))
            return self._reading(read)
        return self._full_ids(ids, present, False)

    def has_snapshot(self, snap_id: bytes) -> bool:
        with self.env.begin() as txn:
            return txn.get(snap_id, db=self.snapids) is not None

    def has_pack(self, name: str) -> bool:
        with self.env.begin() as txn:
            return txn.get(bytes.fromhex(name), db=self.packnames) is not None

    def iter_packs(self) -> Iterator[tuple[str, int, int]]:
        """(name, size, blob count) of every indexed pack."""
        with self.env.begin() as txn:
            for _k, v in txn.cursor(self.packs):
                raw, size, count = PACK_VALUE.unpack(v)
                yield raw.hex(), size, count

    def iter_chunks(self) -> Iterator[tuple[bytes, Location]]:
        """Every (key, location), in id order. The key is the id's first KEY_LEN bytes (the
        index keeps no more): compare with `key_of(id)`, name the full id where a pack footer
        or a manifest gives it."""
        txn, compact = self._begin_reading(self.table.iterate)
        try:
            wide = iter(txn.cursor(self.wide))
            w = next(wide, None)
            for k, v in compact:
                while w is not None and w[0] < k:
                    yield self._located(txn, *w)
                    w = next(wide, None)
                if w is not None and w[0] == k:  # a wide record overrides the table's
                    continue
                yield self._located(txn, k, v)
            while w is not None:
                yield self._located(txn, *w)
                w = next(wide, None)
        finally:
            txn.abort()

    def check_table(self) -> list[str]:
        """What is wrong with the chunk table's files and delta (fsck reads every byte)."""
        def read(txn):
            self.table.delta(txn)  # a disordered delta raises: the rebuild pointer
            return [p for r in self.table.runs(txn) if (p := r.verify())]
        return self._reading(read)

    def _located(self, txn, key: bytes, rec: bytes) -> tuple[bytes, Location]:
        return bytes(key), self._location(txn, rec)

    def list_projects(self) -> list[str]:
        seen: list[str] = []
        with self.env.begin() as txn:
            for k in txn.cursor(self.versions).iternext(keys=True, values=False):
                p = split_version_key(k)[0]
                if not seen or seen[-1] != p:
                    seen.append(p)
        return seen

    def list_versions(self, project: str) -> list[tuple[int, dict]]:
        prefix = project.encode("utf-8", "surrogateescape") + b"\0"
        out = []
        with self.env.begin() as txn:
            cur = txn.cursor(self.versions)
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix) or len(k) != len(prefix) + 4:
                        if not k.startswith(prefix):
                            break
                        continue
                    out.append((U32BE.unpack(k[-4:])[0], _record(v)))
        return out

    def iter_versions(self) -> Iterator[tuple[str, int, dict]]:
        with self.env.begin() as txn:
            for k, v in txn.cursor(self.versions):
                p, n = split_version_key(k)
                yield p, n, _record(v)

    def iter_files(self, prefix: bytes = b"", lazy: bool = False) -> Iterator[tuple[bytes, object]]:
        """Raw (key, value) catalog records in key order, optionally under a key prefix.

        With `lazy`, the value is a zero-argument callable that reads it: a search that rejects
        most records by key alone then never copies their values (the bulk of a 1M-record scan).
        """
        with self.env.begin() as txn:
            cur = txn.cursor(self.files)
            if not cur.set_range(prefix):
                return
            if lazy:
                value = cur.value
                for k in cur.iternext(keys=True, values=False):
                    if not k.startswith(prefix):
                        break
                    yield k, value
                return
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                yield k, v

    def stats(self) -> dict:
        with self.env.begin() as txn:
            packs = txn.stat(self.packs)["entries"]
            versions = txn.stat(self.versions)["entries"]
        return {"chunks": self.counter("chunks"), "bytes_unique": self.counter("bytes_unique"),
                "bytes_stored": self.counter("bytes_stored"), "packs": packs, "versions": versions}
