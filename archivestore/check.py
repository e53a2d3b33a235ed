"""fsck: find every damaged or missing byte and say which files it hurts.

The checker keeps going after the first problem and reports each as a `Problem` with the pack,
the chunk and every project/version/path that depends on it. Structure checks read pack footers
and manifests; `read_data` also reads, decodes and re-hashes every blob in every pack.
Repair is separate (`repair=True` only cleans leftovers and indexes complete but unindexed packs).
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from . import codecs, hashing
from .backend import LocalBackend, leftover_temps
from .errors import DamageError, FormatError
from .index import key_of
from .packs import (FOOTER_ENTRY, KIND_DATA, PACK_HEADER, TRAILER, BlobRef, check_pack_header,
                    pack_object_name, parse_blob, read_footer, scan_blobs)
from .store import Store


WORKERS = 2
# read_data reads each pack in sequential runs of whole blobs of about this many bytes into a
# buffer each worker keeps (one pread per run instead of one per blob, no fresh allocation per
# blob), and runs are the unit of work, so both workers stay busy to the last pack.
SEGMENT = 4 * 1024 * 1024
# Runs queued ahead of the one being collected: bounds memory (open packs, pending results).
INFLIGHT = 4 * WORKERS


@dataclass
class Problem:
    """One problem fsck found, with every project/version/path it affects."""

    kind: str          # missing_pack, damaged_pack, damaged_blob, missing_chunk, damaged_tree, ...
    detail: str
    pack: str | None = None
    chunk: str | None = None
    offset: int | None = None
    affected: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"kind": self.kind, "detail": self.detail, "pack": self.pack, "chunk": self.chunk,
                "offset": self.offset, "affected": self.affected}


@dataclass
class CheckResult:
    """What a check covered and what it found (`ok` when no problems)."""

    packs_checked: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    versions_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    reclaimable: list[dict] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "chunks_checked": self.chunks_checked,
                "bytes_checked": self.bytes_checked, "packs_checked": self.packs_checked,
                "versions_checked": self.versions_checked,
                "problems": [p.to_json() for p in self.problems],
                "reclaimable": self.reclaimable, "repaired": self.repaired,
                "seconds": round(self.seconds, 3)}


class Checker:
    """Checks one store. `progress(event)` receives {"pack", "bytes"} dicts."""

    def __init__(self, store: Store, progress: Callable[[dict], None] | None = None) -> None:
        self.store = store
        self.progress = progress
        self._referenced: set[str] | None = None

    def check(self, read_data: bool = False, repair: bool = False) -> CheckResult:
        t0 = time.monotonic()
        res = CheckResult()
        self._leftovers(res, repair)
        for msg in self.store.index.check_table():
            res.problems.append(Problem("damaged_index", f"{msg}; rebuild the index from the "
                                        "packs with: archive fsck --rebuild-index"))
        # keyed by `key_of(id)`: the index knows only that much of a chunk's id (a pack that is
        # missing is known only from the index); `_trees` names the full ids from the manifests
        bad_chunks: dict[bytes, Problem] = {}
        self._packs(res, read_data, repair, bad_chunks)
        self._trees(res, bad_chunks)
        res.seconds = time.monotonic() - t0
        return res

    # -- leftovers ------------------------------------------------------------------------
    def _leftovers(self, res: CheckResult, repair: bool) -> None:
        for p, size in leftover_temps(self.store.root):
            info = {"path": f"tmp/{p.name}", "bytes": size,
                    "reason": "partial pack left by an interrupted ingest"}
            if repair:
                try:
                    p.unlink()
                except FileNotFoundError:
                    continue
                res.repaired.append(f"removed {info['path']}")
            else:
                res.reclaimable.append(info)
        remote = getattr(self.store.backend, "inner", self.store.backend)  # under encryption
        for name, size in getattr(remote, "leftover_parts", lambda: ())():
            info = {"path": name, "bytes": size,
                    "reason": "partial upload left by an interrupted copy to this remote"}
            if repair:
                remote.remove_part(name)
                res.repaired.append(f"removed {name}")
            else:
                res.reclaimable.append(info)

    # -- packs ----------------------------------------------------------------------------
    def _packs(self, res: CheckResult, read_data: bool, repair: bool,
               bad_chunks: dict[bytes, Problem]) -> None:
        store = self.store
        # Index first, then the folder: a pack an ingest publishes and indexes meanwhile is then
        # at worst "on disk, not indexed" (reclaimable), never "indexed but missing".
        indexed = {name: (size, count) for name, size, count in store.index.iter_packs()}
        on_disk = dict(store.list_pack_files())
        for name, (size, _count) in sorted(indexed.items()):
            if name not in on_disk:
                self._pack_problem(res, bad_chunks, "missing_pack", name, "pack file is missing")
            elif on_disk[name] != size:
                self._pack_problem(res, bad_chunks, "damaged_pack", name,
                                   f"pack is {on_disk[name]} bytes, the index says {size}")
        for name in sorted(set(on_disk) - set(indexed)):
            if repair:
                try:
                    entries = read_footer(store.backend, pack_object_name(name), on_disk[name])
                    store.index_pack(name, on_disk[name], entries)
                    res.repaired.append(f"indexed pack {name}")
                    indexed[name] = (on_disk[name], len(entries))
                    continue
                except (FormatError, DamageError) as e:
                    res.problems.append(Problem("damaged_pack", f"unindexed pack is unreadable: {e}", pack=name))
                    continue
            res.reclaimable.append({"path": pack_object_name(name), "bytes": on_disk[name],
                                    "reason": "complete pack not in the index (interrupted "
                                              "ingest); `fsck --repair` indexes it"})
        names = [n for n in sorted(indexed) if n in on_disk and on_disk[n] == indexed[n][0]]
        if read_data:
            done = self._read_packs([(n, on_disk[n]) for n in names])
        else:
            done = (self._footer_pack(n, on_disk[n]) for n in names)
        for name, size, problems, nchunks, nbytes in done:
            res.packs_checked += 1
            res.chunks_checked += nchunks
            res.bytes_checked += nbytes
            superseded = 0
            for p in problems:
                if self._superseded(p, name):
                    superseded += 1
                    continue
                res.problems.append(p)
                if p.chunk:
                    bad_chunks[key_of(bytes.fromhex(p.chunk))] = p
            if superseded:
                self._reclaim_superseded(res, name, size)
            if self.progress:
                self.progress({"pack": name, "bytes": size})

    def _pack_problem(self, res, bad_chunks, kind: str, name: str, detail: str) -> None:
        """A whole pack is gone or damaged: one problem per chunk the index places there (named
        by its index key until `_trees` finds its full id in a manifest)."""
        found = False
        for key, loc in self.store.index.iter_chunks():
            if loc.pack == name:
                p = Problem(kind, detail, pack=name, chunk=key.hex(), offset=loc.offset)
                res.problems.append(p)
                bad_chunks[key] = p
                found = True
        if not found:  # no indexed chunk lives there any more (a repair re-pointed them all)
            res.reclaimable.append({"path": pack_object_name(name), "bytes": 0,
                                    "reason": f"superseded {kind.replace('_', ' ')}: every chunk "
                                              "the index needs from it has a good copy elsewhere "
                                              "(`fsck --rebuild-index` forgets it)"})

    def _superseded(self, p: Problem, name: str) -> bool:
        """A damaged copy the index no longer uses: a repair wrote a good copy elsewhere."""
        if p.kind not in ("damaged_blob", "damaged_pack"):
            return False
        if p.chunk:
            loc = self.store.index.lookup_key(key_of(bytes.fromhex(p.chunk)))
            return loc is not None and loc.pack != name
        if self._referenced is None:
            self._referenced = {loc.pack for _cid, loc in self.store.index.iter_chunks()}
        return name not in self._referenced

    @staticmethod
    def _reclaim_superseded(res: CheckResult, name: str, size: int) -> None:
        res.reclaimable.append({"path": pack_object_name(name), "bytes": size,
                                "reason": "superseded damaged copy: every chunk the index "
                                          "needs from this pack has a good copy elsewhere"})

    def _footer_pack(self, name: str, size: int):
        problems = []
        try:
            entries = read_footer(self.store.backend, pack_object_name(name), size)
            self._compare_index(name, entries, problems)
        except (FormatError, DamageError) as e:
            problems.append(Problem("damaged_pack", f"pack footer: {e}", pack=name))
        return name, size, problems, 0, 0

    def _compare_index(self, name: str, entries, problems: list[Problem]) -> None:
        entries = list(entries)
        for e, loc in zip(entries, self.store.index.lookup_many([e.id for e in entries])):
            if loc is None:
                problems.append(Problem("unindexed_blob", "blob in pack is not in the index",
                                        pack=name, chunk=e.id.hex(), offset=e.offset))
            elif loc.pack == name and (loc.offset, loc.plain_len, loc.stored_len, loc.kind,
                                       loc.codec) != (e.offset, e.plain_len, e.stored_len,
                                                      e.kind, e.codec):
                problems.append(Problem("index_mismatch", "the index disagrees with the pack "
                                        "footer about this blob (run: archive fsck "
                                        "--rebuild-index)", pack=name, chunk=e.id.hex(),
                                        offset=e.offset))

    def _read_packs(self, packs: list[tuple[str, int]]):
        """Verify every byte of every pack; yields (name, size, problems, nchunks, nbytes) per
        pack, in order. The calling thread reads headers and footers and plans sequential runs
        of blobs; WORKERS threads read and verify the runs (CRC, decode, BLAKE3: all outside
        the GIL) with at most INFLIGHT runs queued, so memory stays at a few runs whatever the
        store's size."""
        local = threading.local()
        jobs: deque[_PackJob] = deque()
        queued = 0
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="fsck") as pool:
            try:
                for name, size in packs:
                    job = self._plan_pack(name, size)
                    if job.entries is None:
                        job.futures.append(pool.submit(self._scan_pack, job))
                    else:
                        job.futures.extend(pool.submit(self._verify_run, job, run, local)
                                           for run in job.runs)
                    jobs.append(job)
                    queued += len(job.futures)
                    while jobs and queued - len(jobs[0].futures) >= INFLIGHT:
                        queued -= len(jobs[0].futures)
                        yield self._finish_pack(jobs.popleft())
                while jobs:
                    yield self._finish_pack(jobs.popleft())
            finally:
                for job in jobs:  # an exception above: let the workers finish, close the files
                    for f in job.futures:
                        f.cancel()
                pool.shutdown(wait=True)
                for job in jobs:
                    job.close()

    def _plan_pack(self, name: str, size: int) -> "_PackJob":
        """Header, footer and tiling checks of one pack, and its runs of blobs to verify."""
        job = _PackJob(name, size, _PackReader(self.store.backend, pack_object_name(name)))
        problems = job.problems
        try:
            head = job.reader.read(0, min(size, PACK_HEADER.size))
        except (OSError, DamageError) as e:
            problems.append(Problem("damaged_pack", f"unreadable: {e}", pack=name))
            job.entries, job.runs = [], []
            job.unreadable = True
            return job
        try:
            check_pack_header(head)
            if bytes(head[12:16]) != b"\0\0\0\0":
                raise FormatError("reserved pack header bytes are not zero")
        except FormatError as e:
            problems.append(Problem("damaged_pack", f"pack header: {e}", pack=name, offset=0))
        try:
            entries = read_footer(job.reader, "", size)
        except (OSError, FormatError, DamageError) as e:
            problems.append(Problem("damaged_pack", f"pack footer: {e}", pack=name))
            return job  # entries None: scan the whole pack
        expect = PACK_HEADER.size
        for ent in entries:
            if ent.offset != expect:
                problems.append(Problem("damaged_pack", "footer offsets do not tile the pack",
                                        pack=name, offset=ent.offset))
                break
            expect = ent.offset + ent.size
        footer_start = size - TRAILER.size - len(entries) * FOOTER_ENTRY.size
        if entries and expect != footer_start:
            problems.append(Problem("damaged_pack", "bytes between the last blob and the footer",
                                    pack=name, offset=expect))
        job.entries = entries
        # Runs of blobs that follow each other in the file (the footer tiles the pack unless it
        # is damaged; then a run ends wherever the next blob does not start at the last's end).
        runs: list[list[BlobRef]] = []
        cur: list[BlobRef] = []
        cur_end = cur_start = 0
        for ent in entries:
            if cur and (ent.offset != cur_end or ent.offset + ent.size - cur_start > SEGMENT):
                runs.append(cur)
                cur = []
            if not cur:
                cur_start = ent.offset
            cur.append(ent)
            cur_end = ent.offset + ent.size
        if cur:
            runs.append(cur)
        job.runs = runs
        return job

    def _verify_run(self, job: "_PackJob", run: list[BlobRef], local) -> list[str | None]:
        """Read a run of adjacent blobs with one read and verify each; one error (or None) per
        blob. A run that cannot be read whole is retried blob by blob, so each blob gets its own
        verdict."""
        start = run[0].offset
        length = run[-1].offset + run[-1].size - start
        try:
            data = job.reader.read_into(start, length, local)
        except (OSError, DamageError):
            data = None
        if data is not None and len(data) == length:
            return [self._verify_at(data, ent.offset - start, ent) for ent in run]
        out: list[str | None] = []
        for ent in run:
            try:
                raw = job.reader.read(ent.offset, ent.size)
            except (OSError, DamageError) as e:
                out.append(f"unreadable: {e}")
            else:
                out.append(self._verify_at(raw, 0, ent))
        return out

    @staticmethod
    def _verify_at(data, pos: int, ent: BlobRef) -> str | None:
        """Verify the blob the footer entry `ent` describes, at data[pos:pos + ent.size]."""
        # The CRC covers every stored byte, including bits a decoder never reads (padding at the
        # end of a Rice bitstream, where a flip still decodes to the right bytes) and the CRC
        # field itself; decoding and hashing then prove the plain bytes.
        try:
            kind, codec, plain_len, _bid, stored = parse_blob(data, ent.id, True, pos,
                                                              pos + ent.size)
        except FormatError as e:
            return str(e)
        if (kind, codec, plain_len) != (ent.kind, ent.codec, ent.plain_len):
            return "blob header differs from the pack footer"
        try:
            plain = stored if codec == codecs.RAW and len(stored) == plain_len else \
                codecs.decode(codec, stored, plain_len)
        except FormatError as e:
            return str(e)
        if hashing.chunk_id(plain) == ent.id:
            return None
        return "hash mismatch after decoding"

    def _scan_pack(self, job: "_PackJob") -> tuple[list[Problem], int, int]:
        """Footer lost: read the whole pack, walk the blob headers and check the chunks the
        index puts here (damage only: a sound pack never takes this path)."""
        name, size = job.name, job.size
        problems: list[Problem] = []
        nchunks = nbytes = 0
        try:
            data = job.reader.read(0, size)
        except (OSError, DamageError) as e:
            problems.append(Problem("damaged_pack", f"unreadable: {e}", pack=name))
            data = b""
        good = set()  # index keys of the blobs that verify
        for off, parsed in scan_blobs(data):
            if isinstance(parsed, FormatError):
                continue
            kind, codec, plain_len, bid, stored = parsed
            ent = BlobRef(bid, off, plain_len, len(stored), kind, codec)
            if not self._verify_at(data, off, ent):
                good.add(key_of(bid))
                nchunks += 1
                nbytes += plain_len
        # named by the index key (a damaged blob header's id is no evidence) until `_trees`
        # finds the full id in a manifest
        for key, loc in self.store.index.iter_chunks():
            if loc.pack == name and key not in good:
                problems.append(Problem("damaged_blob", "blob unreadable (pack footer damaged)",
                                        pack=name, chunk=key.hex(), offset=loc.offset))
        return problems, nchunks, nbytes

    def _finish_pack(self, job: "_PackJob"):
        """Collect a pack's results (waiting for its runs) in blob order."""
        try:
            problems = job.problems
            nchunks = nbytes = 0
            if job.entries is None:
                found, nchunks, nbytes = job.futures[0].result()
                problems.extend(found)
            else:
                for run, fut in zip(job.runs, job.futures):
                    for ent, err in zip(run, fut.result()):
                        if err:
                            problems.append(Problem("damaged_blob", err, pack=job.name,
                                                    chunk=ent.id.hex(), offset=ent.offset))
                        else:
                            nchunks += 1
                            nbytes += ent.plain_len
                if not job.unreadable:
                    self._compare_index(job.name, job.entries, problems)
            return job.name, job.size, problems, nchunks, nbytes
        finally:
            job.close()

    # -- manifests ------------------------------------------------------------------------
    def _trees(self, res: CheckResult, bad_chunks: dict[bytes, Problem]) -> None:
        """Every version's tree must be readable and every chunk it names indexed and sound."""
        index = self.store.index
        missing: dict[bytes, Problem] = {}
        for project, number, rec in list(index.iter_versions()):
            res.versions_checked += 1
            whole = {"project": project, "version": number, "path": "*"}
            for meta in [rec.get("id", "")] + list(rec.get("tree", [])):  # its record and tree
                prob = bad_chunks.get(key_of(bytes.fromhex(meta))) if len(meta) == 64 else None
                if prob is not None:
                    _name_full_id(prob, meta)
                    prob.affected.append(whole)
            try:
                for e in self.store.iter_tree(rec):
                    if e["type"] != "file":
                        continue
                    ids = [bytes.fromhex(h) for h in e["chunks"]]
                    where = {"project": project, "version": number, "path": e["path"]}
                    hits = index.contains_many(ids) if ids else []
                    for cid, present in zip(ids, hits):
                        prob = bad_chunks.get(key_of(cid))
                        if prob is not None:
                            _name_full_id(prob, cid.hex())
                        elif not present:
                            prob = missing.get(cid)
                            if prob is None:
                                prob = missing[cid] = Problem("missing_chunk",
                                                              "chunk is not in the store",
                                                              chunk=cid.hex())
                                res.problems.append(prob)
                        if prob is not None and (not prob.affected or prob.affected[-1] != where):
                            prob.affected.append(where)
            except (FormatError, DamageError) as e:
                res.problems.append(Problem("damaged_tree", f"manifest unreadable: {e}",
                                            affected=[{"project": project, "version": number,
                                                       "path": "*"}]))


def _name_full_id(prob: Problem, full_hex: str) -> None:
    """A problem named by an index key only (a missing or damaged pack) takes the full id a
    manifest gives for it."""
    if prob.chunk is not None and len(prob.chunk) < 64 and full_hex.startswith(prob.chunk):
        prob.chunk = full_hex


class _PackReader:
    """Reads byte ranges of one pack. A local pack is opened once (and read with pread into a
    buffer each worker thread reuses); other backends go through `backend.get`."""

    def __init__(self, backend, obj: str) -> None:
        self.backend = backend
        self.obj = obj
        self.fd: int | None = None
        self._err: Exception | None = None  # raised by every read: the pack cannot be opened
        if isinstance(backend, LocalBackend):
            try:
                self.fd = os.open(backend.root / obj, os.O_RDONLY)
            except FileNotFoundError:
                self._err = DamageError(f"{obj} is missing")
            except OSError as e:
                self._err = e
            else:
                try:  # a hint for the kernel's readahead (a cold cache, a slow disk)
                    os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                except (AttributeError, OSError):
                    pass

    def read(self, offset: int, length: int) -> bytes:
        if self._err is not None:
            raise self._err
        if self.fd is None:
            return self.backend.get(self.obj, offset, length)
        return os.pread(self.fd, length, offset)

    def get(self, _obj: str, offset: int, length: int) -> bytes:  # for packs.read_footer
        return self.read(offset, length)

    def read_into(self, offset: int, length: int, local):
        """length bytes at offset, as a view of this thread's reusable buffer when the pack is
        local (fewer bytes at end of file)."""
        if self.fd is None or self._err is not None:
            return self.read(offset, length)
        buf = getattr(local, "buf", None)
        if buf is None or len(buf) < length:
            buf = local.buf = bytearray(max(length, SEGMENT + 64 * 1024))
        view = memoryview(buf)[:length]
        got = 0
        while got < length:
            n = os.preadv(self.fd, [view[got:]], offset + got)
            if n <= 0:
                break
            got += n
        if len(buf) > 4 * SEGMENT:  # a huge blob: do not keep its buffer
            local.buf = None
        return view[:got]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _PackJob:
    """One pack in flight in `Checker._read_packs`."""

    def __init__(self, name: str, size: int, reader: _PackReader) -> None:
        self.name = name
        self.size = size
        self.reader = reader
        self.problems: list[Problem] = []
        self.entries: list[BlobRef] | None = None
        self.runs: list[list[BlobRef]] = []
        self.futures: list = []
        self.unreadable = False

    def close(self) -> None:
        self.reader.close()


__all__ = ["Checker", "CheckResult", "Problem", "KIND_DATA"]
