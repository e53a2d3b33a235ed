"""Self-healing: replace damaged or missing blobs of a store with verified copies from replicas.

`Healer` runs the full `Checker` (read-data), collects every chunk it names as damaged or
missing (data chunks, tree parts and snapshot records alike), fetches each from the first copy
that holds a sound one (decode + BLAKE3 == id), writes the good copies into NEW packs in the
store and re-points the index at them (`Index.repoint`). A second check then proves the result;
since a healed tree part can name chunks the first pass could not see, it repeats until nothing
new is found. Whatever no copy holds stays reported as lost, with the files it affects.

The damaged old packs are left untouched: `fsck` reports them as superseded, reclaimable copies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from . import codecs, hashing
from .check import Checker, CheckResult
from .errors import DamageError, FormatError
from .index import KEY_LEN, Location, key_of
from .locks import StoreLock
from .packs import BlobRef, PackWriter, pack_object_name, parse_blob, read_footer
from .store import Store

HEALABLE = ("damaged_blob", "missing_pack", "damaged_pack", "missing_chunk")
MAX_ROUNDS = 4


@dataclass
class HealResult:
    healed: list[dict] = field(default_factory=list)   # {"chunk", "kind", "bytes", "from", "pack"}
    unavailable: list[str] = field(default_factory=list)  # chunk ids no copy holds soundly
    check: CheckResult | None = None                   # the final check, after healing
    rounds: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.check is not None and self.check.ok

    def to_json(self) -> dict:
        out = self.check.to_json() if self.check else {"ok": False}
        out["healed"] = self.healed
        out["unavailable"] = self.unavailable
        out["heal_rounds"] = self.rounds
        out["seconds"] = round(self.seconds, 3)
        return out


def fetch_blob(store: Store, blob_id: bytes) -> tuple[bytes, int, int, int, bytes] | None:
    """(full id, kind, codec, plain_len, stored bytes) of a sound copy of `blob_id` in `store`,
    or None. `blob_id` is a full id or an index key (`key_of`: where only an index knew the
    chunk, e.g. it lived in a missing pack); the full id is then the blob header's.

    The stored bytes are returned as they are (same codec), after decoding them and checking
    BLAKE3 of the plain bytes equals the full id (and the id begins with `blob_id`).
    """
    loc = store.index.lookup_key(key_of(blob_id))
    if loc is None:
        return None
    try:
        raw = store.backend.get(pack_object_name(loc.pack), loc.offset, 52 + loc.stored_len)
        kind, codec, plain_len, bid, stored = parse_blob(raw, None, check_crc=True)
        if bid[:len(blob_id)] != blob_id:
            return None
        plain = codecs.decode(codec, stored, plain_len)
    except (FormatError, DamageError, OSError):
        return None
    if hashing.chunk_id(plain) != bid:
        return None
    return bytes(bid), kind, codec, plain_len, bytes(stored)


class Healer:
    """Heals `store` from `copies` (other stores, tried in order)."""

    def __init__(self, store: Store, copies: list[Store],
                 progress: Callable[[dict], None] | None = None) -> None:
        self.store = store
        self.copies = copies
        self.progress = progress

    def heal(self) -> HealResult:
        t0 = time.monotonic()
        res = HealResult()
        tried: set[bytes] = set()  # index keys
        while True:
            check = Checker(self.store, self.progress).check(read_data=True, repair=True)
            want = {k: cid for k, cid in self._wanted(check).items() if k not in tried}
            if not want or res.rounds >= MAX_ROUNDS:
                res.check = check
                break
            res.rounds += 1
            tried |= set(want)
            self._heal_ids(sorted(want.values()), res)
        res.seconds = time.monotonic() - t0
        return res

    def _wanted(self, check: CheckResult) -> dict[bytes, bytes]:
        """Chunk ids the check names as damaged or missing, plus every chunk still indexed in a
        pack whose structure is damaged, plus tree parts and snapshot records not indexed; by
        index key (`key_of`), each the full id where a problem or a record gives it, else the
        key (a chunk only the index knows)."""
        ids: dict[bytes, bytes] = {}
        broken_packs: set[str] = set()

        def want(cid: bytes) -> None:
            key = key_of(cid)
            if len(cid) > len(ids.get(key, b"")):
                ids[key] = cid

        for p in check.problems:
            if p.kind in HEALABLE and p.chunk:
                want(bytes.fromhex(p.chunk))
            elif p.kind == "damaged_pack" and p.pack:
                broken_packs.add(p.pack)
        if broken_packs:
            for key, loc in self.store.index.iter_chunks():
                if loc.pack in broken_packs:
                    want(key)
        index = self.store.index
        for _project, _n, rec in index.iter_versions():
            for h in [rec.get("id")] + list(rec.get("tree", [])):
                try:
                    bid = bytes.fromhex(h)
                except (TypeError, ValueError):
                    continue
                if len(bid) >= KEY_LEN and index.lookup_key(key_of(bid)) is None:
                    want(bid)
        return ids

    def _local_duplicates(self, ids: set[bytes]) -> dict[bytes, list[tuple[str, BlobRef]]]:
        """Other copies of `ids` (index keys) inside this store's own packs, by key (after
        `--rebuild-index` the index may point to a damaged one while a later pack holds a sound
        copy)."""
        out: dict[bytes, list[tuple[str, BlobRef]]] = {}
        for name, size in self.store.list_pack_files():
            if not self.store.index.has_pack(name):
                continue
            try:
                entries = read_footer(self.store.backend, pack_object_name(name), size)
            except (FormatError, DamageError):
                continue
            for e in entries:
                key = key_of(e.id)
                if key in ids:
                    out.setdefault(key, []).append((name, e))
        return out

    def _sound_duplicate(self, cid: bytes, dups) -> tuple[str, BlobRef] | None:
        current = self.store.index.lookup_key(key_of(cid))
        for name, e in dups.get(key_of(cid), []):
            if current is not None and (current.pack, current.offset) == (name, e.offset):
                continue
            if e.id[:len(cid)] != cid:
                continue
            try:
                self.store.read_location(e.id, Location(name, e.offset, e.plain_len, e.stored_len,
                                                       e.kind, e.codec), check_crc=True)
            except (FormatError, DamageError):
                continue
            return name, e
        return None

    def _heal_ids(self, ids: list[bytes], res: HealResult) -> None:
        store = self.store
        dups = self._local_duplicates({key_of(cid) for cid in ids})
        with StoreLock(store.root, "commit", "heal"):
            w: PackWriter | None = None
            try:
                for cid in ids:
                    dup = self._sound_duplicate(cid, dups)
                    if dup is not None:  # a sound copy in this store: point the index at it
                        store.index.repoint(dup[0], [dup[1]])
                        res.healed.append({"chunk": dup[1].id.hex(), "kind": dup[1].kind,
                                           "bytes": dup[1].plain_len,
                                           "from": f"{store.url} (pack {dup[0]})", "pack": dup[0]})
                        continue
                    got, origin = None, None
                    for copy in [*self.copies, store]:  # the store itself last: a chunk in a
                        got = fetch_blob(copy, cid)     # pack with a broken footer may be sound
                        if got is not None:
                            origin = copy.url
                            break
                    if got is None:
                        res.unavailable.append(cid.hex())
                        continue
                    if w is None:
                        w = PackWriter(store.backend)
                    full, kind, codec, plain_len, stored = got
                    w.add(full, kind, codec, plain_len, stored)
                    res.healed.append({"chunk": full.hex(), "kind": kind, "bytes": plain_len,
                                       "from": origin, "pack": w.name})
                    if self.progress:
                        self.progress({"pack": w.name, "bytes": 0})
                    if w.offset >= store.pack_target:
                        self._publish(w)
                        w = None
                if w is not None:
                    self._publish(w)
                    w = None
            finally:
                if w is not None:
                    w.abort()

    def _publish(self, w: PackWriter) -> None:
        """Pack durable first, then indexed, then the chunk entries re-pointed to it."""
        name, size, entries = w.finish()
        self.store.index.add_pack(name, size, entries)
        self.store.index.repoint(name, entries)


def heal(store: Store, copies: list[Store],
         progress: Callable[[dict], None] | None = None) -> HealResult:
    """Heal `store` from `copies`; see the module docstring."""
    return Healer(store, copies, progress).heal()


__all__ = ["Healer", "HealResult", "heal", "fetch_blob"]
