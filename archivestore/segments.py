"""Shared index segments: how several machines write into one store and see each other's work.

Each writer (one local cache directory = one writer id) publishes, after each flush, an object
`index/<writer-id>/<seq>.seg` naming the packs it made durable (with their footer entries) and
the snapshot records it committed. Readers list `index/`, fetch the segments their local index
has not merged yet and merge them: packs first, then snapshot records. Version numbers are
claimed with a create-once marker `versions/<project-hex>/<number>` (docs/FORMAT.md section 10).
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import zstandard

from .errors import ArchiveError, FormatError
from .index import Index
from .packs import FOOTER_ENTRY, BlobRef

SEGMENT_FORMAT = 1
SEGMENT_PREFIX = "index/"
VERSION_PREFIX = "versions/"
MAX_CLAIM_TRIES = 1000


def _writer_id(cache: Path) -> str:
    p = cache / "writer_id"
    try:
        wid = p.read_text().strip()
        if len(wid) == 32:
            return wid
    except FileNotFoundError:
        pass
    wid = os.urandom(16).hex()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(wid)
    os.replace(tmp, p)
    return wid


def encode_entries(entries: list[BlobRef]) -> str:
    import base64
    raw = b"".join(FOOTER_ENTRY.pack(e.id, e.offset, e.plain_len, e.stored_len, e.kind, e.codec, 0)
                   for e in entries)
    return base64.b64encode(raw).decode()


def decode_entries(text: str) -> list[BlobRef]:
    import base64
    raw = base64.b64decode(text)
    if len(raw) % FOOTER_ENTRY.size:
        raise FormatError("segment pack entries have a bad length")
    return [BlobRef(*FOOTER_ENTRY.unpack_from(raw, i)[:6]) for i in range(0, len(raw), FOOTER_ENTRY.size)]


def create_once(backend, name: str, data: bytes) -> bool:
    """Create object `name` once; False if it already exists."""
    put_bytes = getattr(backend, "put_bytes", None)
    if put_bytes is not None:
        from .s3 import ObjectExists
        try:
            put_bytes(name, data)
            return True
        except ObjectExists:
            return False
    # LocalBackend (NAS): publish a fsync'd temp file; its put refuses to overwrite.
    if backend.exists(name):
        return False
    tmp = backend.temp_path(".obj.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        backend.put(name, tmp)
    except ArchiveError:
        os.unlink(tmp)
        return False
    return True


class SharedCatalog:
    """Publishes this writer's index segments and merges everyone's into the local index."""

    def __init__(self, backend, cache: Path) -> None:
        self.backend = backend
        self.writer = _writer_id(cache)
        self._lock = threading.Lock()
        self._packs: list[list] = []
        self._snapshots: list[dict] = []

    # -- writing --------------------------------------------------------------------------
    def note_pack(self, name: str, size: int, entries: list[BlobRef]) -> None:
        with self._lock:
            self._packs.append([name, size, encode_entries(entries)])

    def note_snapshot(self, record: dict) -> None:
        with self._lock:
            self._snapshots.append(record)

    def publish(self, index: Index) -> str | None:
        """Write one segment with everything noted since the last one (after it is indexed)."""
        with self._lock:
            packs, snaps = self._packs, self._snapshots
            self._packs, self._snapshots = [], []
        if not packs and not snaps:
            return None
        seq = int(index.get_meta(b"segment_seq") or b"0")
        while True:
            seq += 1
            name = f"{SEGMENT_PREFIX}{self.writer}/{seq:010d}.seg"
            body = {"format": "archivestore-segment", "v": SEGMENT_FORMAT, "writer": self.writer,
                    "seq": seq, "packs": packs, "snapshots": snaps}
            data = zstandard.ZstdCompressor(level=3).compress(json.dumps(body).encode())
            if create_once(self.backend, name, data):
                break
        index.put_meta(b"segment_seq", str(seq).encode())
        index.put_meta(b"seg:" + name.encode(), b"1")  # our own: nothing to merge
        return name

    def claim_version(self, index: Index, project: str, first: int, snapshot_hint: str) -> int:
        """The lowest number ≥ `first` whose marker this writer creates (create-once PUT)."""
        n = first
        for _ in range(MAX_CLAIM_TRIES):
            body = json.dumps({"writer": self.writer, "claim": snapshot_hint}).encode()
            claim = f"{VERSION_PREFIX}{project.encode('utf-8', 'surrogateescape').hex()}/{n:010d}"
            if create_once(self.backend, claim, body):
                return n
            self.refresh(index)
            n = max(n + 1, index.next_version(project))
        raise ArchiveError(f"could not claim a version number for {project!r}")

    # -- reading --------------------------------------------------------------------------
    def refresh(self, index: Index) -> dict:
        """Merge every published segment the local index has not seen. Uses LIST to discover."""
        merged = packs = snaps = 0
        for name, _size in self.backend.list(SEGMENT_PREFIX.rstrip("/")):
            if not name.endswith(".seg") or index.get_meta(b"seg:" + name.encode()):
                continue
            p, s = self.merge(index, name)
            merged += 1
            packs += p
            snaps += s
        return {"segments": merged, "packs": packs, "versions": snaps}

    def merge(self, index: Index, name: str) -> tuple[int, int]:
        """Merge one segment: packs (and their blobs) first, then snapshot records."""
        try:
            body = json.loads(zstandard.ZstdDecompressor().decompress(self.backend.get(name),
                                                                      max_output_size=1 << 30))
            if body.get("format") != "archivestore-segment" or body.get("v") != SEGMENT_FORMAT:
                raise FormatError("not an index segment")
            packs = [(p[0], int(p[1]), decode_entries(p[2])) for p in body["packs"]]
            snaps = list(body["snapshots"])
        except (ValueError, KeyError, TypeError, IndexError, zstandard.ZstdError) as e:
            raise FormatError(f"index segment {name} is unreadable: {e}") from None
        for pname, size, entries in packs:
            index.add_pack(pname, size, entries)
        added = 0
        for rec in snaps:
            if not index.has_snapshot(bytes.fromhex(rec["id"])):
                index.add_version(rec["project"], int(rec["version"]), rec)
                added += 1
        index.put_meta(b"seg:" + name.encode(), b"1")
        return len(packs), added
