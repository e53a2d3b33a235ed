"""Replication: copy to another store every pack it lacks, verified, resumable, additive.

Packs are immutable and randomly named, so "what DEST lacks" is a set difference of pack names
and a replica is brought up to date pack by pack: read the source pack, decode and re-hash every
blob in it, publish it at DEST atomically, then index it at DEST (versions come from the
snapshot records it holds). An interruption leaves at worst a published pack DEST has not
indexed, which the next run indexes without copying it again. Nothing is ever deleted at DEST:
a project removed from the source stays in every replica.

A (project, version) that DEST already binds to a different snapshot is never rebound; the
arriving record is reported as a conflict (docs/FORMAT.md section 11).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from . import codecs, hashing
from .backend import LocalBackend, is_local_url, open_backend
from .errors import ArchiveError, DamageError, FormatError, StoreExists, StoreNotFound, UsageError
from .locks import StoreLock
from .packs import (KIND_SNAPSHOT, PackWriter, check_pack_header, pack_object_name,
                    parse_blob, parse_footer)
from .segments import create_once
from .snapshots import parse_snapshot
from .store import CONFIG, STORE_FORMAT, Store


# Packs in flight at once: reading + verifying one overlaps publishing others (for rclone
# remotes each publish is two rclone processes, mostly waiting on the network).
WORKERS = 3


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ReplicateResult:
    source: str
    dest: str
    packs_copied: int = 0
    bytes_copied: int = 0
    packs_present: int = 0          # already at DEST before this run
    packs_resumed: int = 0          # published at DEST by an interrupted run, indexed now
    versions_added: list[dict] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    damaged: list[dict] = field(default_factory=list)   # source blobs/packs that failed verification
    created: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.damaged

    def to_json(self) -> dict:
        return {"ok": self.ok, "source": self.source, "dest": self.dest, "created": self.created,
                "packs_copied": self.packs_copied, "bytes_copied": self.bytes_copied,
                "packs_present": self.packs_present, "packs_resumed": self.packs_resumed,
                "versions_added": self.versions_added, "conflicts": self.conflicts,
                "damaged": self.damaged, "seconds": round(self.seconds, 3),
                "mb_per_s": round(self.bytes_copied / 1e6 / max(self.seconds, 1e-9), 1)}


def init_replica(url: str, source: Store, encryption: dict | None = None) -> None:
    """Create an empty store at `url` with the source's chunker and pack parameters."""
    backend = open_backend(url)
    if isinstance(backend, LocalBackend):
        root = backend.root
        if root.exists() and any(root.iterdir()):
            raise StoreExists(f"{root} exists and is not empty; choose an empty or new folder")
        root.mkdir(parents=True, exist_ok=True)
        for d in ("packs", "tmp", "locks") + (() if encryption else ("index",)):
            (root / d).mkdir(exist_ok=True)
    else:
        ensure = getattr(backend, "ensure_bucket", None)  # an S3 replica may name a new bucket
        if ensure:
            ensure()
        if backend.exists(CONFIG) or any(True for _ in backend.list("packs")):
            raise StoreExists(f"{url} already holds data; choose an empty remote folder")
    config = {"format": "archivestore", "version": STORE_FORMAT,
              "store_id": os.urandom(16).hex(), "created": _now(),
              "hash": source.config["hash"], "chunker": dict(source.config["chunker"]),
              "pack_target": source.pack_target, "replica_of": source.config["store_id"]}
    if encryption:
        config["encryption"] = encryption
    # once, never over a config another process wrote meanwhile (S3 has no local temp folder)
    if not create_once(backend, CONFIG, json.dumps(config, indent=2).encode()):
        raise StoreExists(f"{url} already holds an archive store")
    close = getattr(backend, "close", None)
    if close:
        close()


def open_dest(url: str, source: Store, init: bool = False,
              encryption: dict | None = None) -> tuple[Store, bool]:
    """Open the replica at `url`; (store, created). A missing DEST is an error unless `init`."""
    try:
        return Store.open(url), False
    except StoreNotFound:
        if not init:
            where = "is the drive mounted?" if is_local_url(url) else "is the remote reachable?"
            raise StoreNotFound(f"no archive store at {url} ({where} To create a new replica "
                                f"there, add --init)") from None
    init_replica(url, source, encryption)
    return Store.open(url), True


class VerifiedPack:
    """A source pack read whole and checked blob by blob (decode + BLAKE3 == id; the header
    fields are compared with the footer, so the CRC would prove nothing more)."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data
        self.entries = []
        self.bad: list[tuple[bytes | None, str]] = []
        self.records: dict[bytes, dict] = {}
        try:
            check_pack_header(data)
            self.entries = parse_footer(data, len(data))
        except FormatError as e:
            self.bad.append((None, f"pack structure: {e}"))
            return
        for e in self.entries:
            raw = memoryview(data)[e.offset:e.offset + e.size]
            try:
                kind, codec, plain_len, _bid, stored = parse_blob(raw, e.id, check_crc=True)  # the CRC also covers bits no decoder reads
                if (kind, codec, plain_len) != (e.kind, e.codec, e.plain_len):
                    raise FormatError("blob header differs from the pack footer")
                plain = codecs.decode(codec, stored, plain_len)
                if hashing.chunk_id(plain) != e.id:
                    raise FormatError("hash mismatch after decoding")
                if kind == KIND_SNAPSHOT:
                    self.records[e.id] = parse_snapshot(plain)
            except FormatError as err:
                self.bad.append((e.id, str(err)))

    @property
    def ok(self) -> bool:
        return not self.bad


class Replicator:
    """Brings `dest` up to date with `source`. `progress(event)` gets {"pack", "bytes"}."""

    def __init__(self, source: Store, dest: Store,
                 progress: Callable[[dict], None] | None = None) -> None:
        if source.config["store_id"] == dest.config["store_id"]:
            raise UsageError("source and destination are the same store")
        self.source = source
        self.dest = dest
        self.progress = progress
        self._packs_in_use: set[str] | None = None
        self._lock = threading.Lock()  # result counters and DEST index commits

    def plan(self) -> list[tuple[str, int]]:
        """(name, size) of every source pack DEST does not have, in index order."""
        have = {n for n, _s, _c in self.dest.index.iter_packs()}
        return [(n, s) for n, s, _c in self.source.index.iter_packs() if n not in have]

    def run(self) -> ReplicateResult:
        t0 = time.monotonic()
        res = ReplicateResult(self.source.url, self.dest.url)
        self._resume(res)
        todo = self.plan()
        res.packs_present = self.source.index.stats()["packs"] - len(todo) - res.packs_resumed
        pending: deque = deque()
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="replicate") as pool:
            try:
                for name, size in todo:
                    pending.append((name, size, pool.submit(self._copy, name, size, res)))
                    if len(pending) >= WORKERS:
                        self._done(*pending.popleft())
                while pending:
                    self._done(*pending.popleft())
            except BaseException:
                for _n, _s, f in pending:
                    f.cancel()
                raise
        self._conflicts(res)
        res.seconds = time.monotonic() - t0
        return res

    def _done(self, name: str, size: int, fut: Future) -> None:
        fut.result()
        if self.progress:
            self.progress({"pack": name, "bytes": size})

    def _resume(self, res: ReplicateResult) -> None:
        """Index packs an interrupted run published at DEST but did not index."""
        for name, size in sorted(self.dest.list_pack_files()):
            if self.dest.index.has_pack(name):
                continue
            pack = VerifiedPack(name, self.dest.backend.get(pack_object_name(name), 0, size))
            if not pack.ok:
                res.damaged.append({"pack": name, "where": "dest",
                                    "detail": f"unindexed pack at the destination fails "
                                              f"verification: {pack.bad[0][1]}"})
                continue
            self._index(pack, size, res)
            if self.source.index.has_pack(name):
                res.packs_resumed += 1

    def _copy(self, name: str, size: int, res: ReplicateResult) -> None:
        obj = pack_object_name(name)
        try:
            data = self.source.backend.get(obj, 0, size)
            if len(data) != size:
                raise DamageError(f"pack is {len(data)} bytes, the index says {size}")
        except (OSError, DamageError) as e:
            if self._referenced(name):  # else: superseded by a repair, nothing to copy
                res.damaged.append({"pack": name, "where": "source", "detail": f"unreadable: {e}"})
            return
        pack = VerifiedPack(name, data)
        if pack.ok:
            tmp = self.dest.backend.temp_path(".pack.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                self.dest.backend.put(obj, tmp)
            except ArchiveError:
                if not self.dest.backend.exists(obj):
                    raise
                os.unlink(tmp)  # published meanwhile by a concurrent replication of this pack
            self._index(pack, size, res)
        else:
            self._salvage(pack, res)
            if not pack.entries:
                return
        with self._lock:
            res.packs_copied += 1
            res.bytes_copied += len(data)

    def _referenced(self, name: str) -> bool:
        """Whether the source index still places any chunk in pack `name`."""
        if self._packs_in_use is None:
            self._packs_in_use = {loc.pack for _c, loc in self.source.index.iter_chunks()}
        return name in self._packs_in_use

    def _salvage(self, pack: VerifiedPack, res: ReplicateResult) -> None:
        """Copy only the blobs that verify into a pack of the same name at DEST, and report the
        rest (unless the source index already points to a good copy elsewhere)."""
        bad_ids = {bid for bid, _ in pack.bad if bid is not None}
        for bid, why in pack.bad:
            loc = self.source.index.lookup(bid) if bid is not None else None
            if loc is not None and loc.pack != pack.name:
                continue  # superseded: a repair wrote a good copy into another pack
            res.damaged.append({"pack": pack.name, "where": "source",
                                "chunk": bid.hex() if bid else None, "detail": why})
        good = [e for e in pack.entries if e.id not in bad_ids]
        if not good:
            pack.entries = []
            return
        w = PackWriter(self.dest.backend)
        w.name = pack.name
        try:
            for e in good:
                raw = memoryview(pack.data)[e.offset + 52:e.offset + e.size]
                w.add(e.id, e.kind, e.codec, e.plain_len, raw)
        except BaseException:
            w.abort()
            raise
        name, size, entries = w.finish()
        pack.entries = entries
        self._index(pack, size, res)

    def _index(self, pack: VerifiedPack, size: int, res: ReplicateResult) -> None:
        with self._lock, StoreLock(self.dest.root, "commit", "replicate"):
            recs = self.dest.index_pack(pack.name, size, pack.entries, pack.records)
            for r in recs:
                if not r.get("conflict"):
                    res.versions_added.append({"project": r["project"], "version": r["version"],
                                               "snapshot": r["id"]})

    def _conflicts(self, res: ReplicateResult) -> None:
        """Every source version DEST binds to a different snapshot (reported on every run
        until someone resolves it, e.g. by renaming the project at one side)."""
        for project, n, rec in self.source.index.iter_versions():
            held = self.dest.index.get_version(project, n)
            if held is not None and held.get("id") != rec.get("id"):
                res.conflicts.append({"project": project, "version": n, "snapshot": rec.get("id"),
                                      "dest_snapshot": held.get("id")})


def replicate(source: Store, dest: Store,
              progress: Callable[[dict], None] | None = None) -> ReplicateResult:
    """Bring `dest` up to date with `source` (see the module docstring)."""
    return Replicator(source, dest, progress).run()


__all__ = ["Replicator", "ReplicateResult", "VerifiedPack", "replicate", "open_dest",
           "init_replica"]
