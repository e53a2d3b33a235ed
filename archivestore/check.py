"""fsck: find every damaged or missing byte and say which files it hurts.

The checker keeps going after the first problem and reports each as a `Problem` with the pack,
the chunk and every project/version/path that depends on it. Structure checks read pack footers
and manifests; `read_data` also reads, decodes and re-hashes every blob in every pack.
Repair is separate (`repair=True` only cleans leftovers and indexes complete but unindexed packs).
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from . import codecs, hashing
from .backend import leftover_temps
from .errors import DamageError, FormatError
from .packs import (FOOTER_ENTRY, KIND_DATA, PACK_HEADER, TRAILER, check_pack_header,
                    pack_object_name, parse_blob, read_footer, scan_blobs)
from .store import Store

WORKERS = 2


@dataclass
class Problem:
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
        fn = self._read_pack if read_data else self._footer_pack
        with ThreadPoolExecutor(WORKERS if read_data else 1) as pool:
            for name, size, problems, nchunks, nbytes in pool.map(
                    lambda n: fn(n, on_disk[n]), names):
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
                        bad_chunks[bytes.fromhex(p.chunk)] = p
                if superseded:
                    self._reclaim_superseded(res, name, size)
                if self.progress:
                    self.progress({"pack": name, "bytes": size})

    def _pack_problem(self, res, bad_chunks, kind: str, name: str, detail: str) -> None:
        """A whole pack is gone or damaged: one problem per chunk the index places there."""
        found = False
        for cid, loc in self.store.index.iter_chunks():
            if loc.pack == name:
                p = Problem(kind, detail, pack=name, chunk=cid.hex(), offset=loc.offset)
                res.problems.append(p)
                bad_chunks[cid] = p
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
            loc = self.store.index.lookup(bytes.fromhex(p.chunk))
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
        for e in entries:
            loc = self.store.index.lookup(e.id)
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

    def _read_pack(self, name: str, size: int):
        """Verify every byte of a pack: header, each blob (read one at a time, so memory stays
        at one blob per worker), footer and trailer."""
        problems: list[Problem] = []
        nchunks = nbytes = 0
        obj = pack_object_name(name)
        get = self.store.backend.get
        try:
            head = get(obj, 0, min(size, PACK_HEADER.size))
        except (OSError, DamageError) as e:
            return name, size, [Problem("damaged_pack", f"unreadable: {e}", pack=name)], 0, 0
        try:
            check_pack_header(head)
            if bytes(head[12:16]) != b"\0\0\0\0":
                raise FormatError("reserved pack header bytes are not zero")
        except FormatError as e:
            problems.append(Problem("damaged_pack", f"pack header: {e}", pack=name, offset=0))
        try:
            entries = read_footer(self.store.backend, obj, size)
        except (OSError, FormatError, DamageError) as e:
            problems.append(Problem("damaged_pack", f"pack footer: {e}", pack=name))
            entries = None
        if entries is not None:
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
            for ent in entries:
                try:
                    raw = get(obj, ent.offset, ent.size)
                except (OSError, DamageError) as e:
                    raw, err = b"", f"unreadable: {e}"
                else:
                    err = self._verify_blob(raw, ent.id, ent.plain_len, ent.codec, ent.kind)
                if err:
                    problems.append(Problem("damaged_blob", err, pack=name, chunk=ent.id.hex(),
                                            offset=ent.offset))
                else:
                    nchunks += 1
                    nbytes += ent.plain_len
            self._compare_index(name, entries, problems)
        else:
            # Footer lost: read the whole pack, walk the blob headers and check the chunks the
            # index puts here.
            try:
                data = get(obj, 0, size)
            except (OSError, DamageError) as e:
                problems.append(Problem("damaged_pack", f"unreadable: {e}", pack=name))
                data = b""
            good = set()
            for off, parsed in scan_blobs(data):
                if isinstance(parsed, FormatError):
                    continue
                kind, codec, plain_len, bid, stored = parsed
                if not self._verify_blob(memoryview(data)[off:off + 52 + len(stored)], bid,
                                         plain_len, codec, kind):
                    good.add(bid)
                    nchunks += 1
                    nbytes += plain_len
            for cid, loc in self.store.index.iter_chunks():
                if loc.pack == name and cid not in good:
                    problems.append(Problem("damaged_blob", "blob unreadable (pack footer damaged)",
                                            pack=name, chunk=cid.hex(), offset=loc.offset))
        return name, size, problems, nchunks, nbytes

    @staticmethod
    def _verify_blob(raw, bid: bytes, plain_len: int, codec: int, kind: int) -> str | None:
        # The CRC covers every stored byte, including bits a decoder never reads (padding at the
        # end of a Rice bitstream, where a flip still decodes to the right bytes) and the CRC
        # field itself; decoding and hashing then prove the plain bytes.
        try:
            k, c, p, got_id, stored = parse_blob(raw, bid, check_crc=True)
            if (k, c, p) != (kind, codec, plain_len):
                return "blob header differs from the pack footer"
            plain = codecs.decode(c, stored, p)
            if hashing.chunk_id(plain) == bid:
                return None
            return "hash mismatch after decoding"
        except FormatError as e:
            return str(e)

    # -- manifests ------------------------------------------------------------------------
    def _trees(self, res: CheckResult, bad_chunks: dict[bytes, Problem]) -> None:
        """Every version's tree must be readable and every chunk it names indexed and sound."""
        index = self.store.index
        missing: dict[bytes, Problem] = {}
        for project, number, rec in list(index.iter_versions()):
            res.versions_checked += 1
            whole = {"project": project, "version": number, "path": "*"}
            for meta in [rec.get("id", "")] + list(rec.get("tree", [])):  # its record and tree
                prob = bad_chunks.get(bytes.fromhex(meta)) if len(meta) == 64 else None
                if prob is not None:
                    prob.affected.append(whole)
            try:
                for e in self.store.iter_tree(rec):
                    if e["type"] != "file":
                        continue
                    ids = [bytes.fromhex(h) for h in e["chunks"]]
                    where = {"project": project, "version": number, "path": e["path"]}
                    hits = index.contains_many(ids) if ids else []
                    for cid, present in zip(ids, hits):
                        prob = bad_chunks.get(cid)
                        if prob is None and not present:
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


__all__ = ["Checker", "CheckResult", "Problem", "KIND_DATA"]
