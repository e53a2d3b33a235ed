"""Pack files: immutable containers of self-describing blobs (docs/FORMAT.md section 4).

`PackWriter` appends encoded blobs to a temp file and publishes it through the backend;
`parse_blob`, `read_footer` and `scan_pack` read them back. Nothing here knows about files,
projects or the index.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import faults
from .backend import Backend
from .directio import DirectWriter
from .errors import FormatError

try:  # the same CRC-32 as zlib's, 3x faster (carry-less multiply) and outside the GIL
    from ._verify import blob_crc
    from ._verify import crc32 as _crc32
except ImportError:  # extension not built: zlib gives the same answers, more slowly
    _crc32 = zlib.crc32

    def blob_crc(data, start: int, stored_len: int) -> tuple[int, int]:
        """(stored CRC field, computed CRC) of the blob at data[start:]: header bytes 0..47,
        then the `stored_len` bytes after the 52-byte header."""
        view = memoryview(data)
        field_ = int.from_bytes(view[start + 48:start + 52], "little")
        return field_, zlib.crc32(view[start + 52:start + 52 + stored_len],
                                  zlib.crc32(view[start:start + 48]))

PACK_MAGIC = b"ARCPACK\0"
PACK_VERSION = 1
PACK_HEADER = struct.Struct("<8sII")
BLOB_MAGIC = b"BLOB"
BLOB_HEADER = struct.Struct("<4sBBHII32sI")  # magic kind codec flags plain stored id crc
FOOTER_ENTRY = struct.Struct("<32sQIIBBH")
TRAILER = struct.Struct("<II8s")
TRAILER_MAGIC = b"ARCPEND\0"

KIND_DATA = 0
KIND_TREE = 1
KIND_SNAPSHOT = 2
KIND_NAMES = {KIND_DATA: "data", KIND_TREE: "tree", KIND_SNAPSHOT: "snapshot"}

# Packs close at 32 MiB: large sequential writes and few files (20 TB is ~600k packs), small
# enough that a damaged or missing pack loses little and replication resumes at fine grain.
PACK_TARGET = 32 * 1024 * 1024
# Pack writes in flight (2 MiB each) before an encoder waits for the disk. While the previous
# pack is fsync'd, ext4 holds up appends to the next one (journal commit); with 2 in flight both
# encoders, then both readers, stalled every pack (~0.2 s apart): 5-7% of ingest samples had no
# thread runnable, 1-2% with 8 (bench/timeline.py --stalls). Costs ~10 MB of peak RSS.
PACK_QUEUE_DEPTH = 8


def pack_object_name(name: str) -> str:
    return f"packs/{name[:2]}/{name}.pack"


@dataclass(frozen=True)
class BlobRef:
    """Where a blob lives and what it is, as recorded in a pack footer."""

    id: bytes
    offset: int
    plain_len: int
    stored_len: int
    kind: int
    codec: int

    @property
    def size(self) -> int:
        return BLOB_HEADER.size + self.stored_len


def blob_header(kind: int, codec: int, plain_len: int, stored, blob_id: bytes) -> bytes:
    head = BLOB_HEADER.pack(BLOB_MAGIC, kind, codec, 0, plain_len, len(stored), blob_id, 0)[:48]
    crc = _crc32(stored, _crc32(head))
    return head + struct.pack("<I", crc)


def parse_blob(raw, expect_id: bytes | None = None, check_crc: bool = True, pos: int = 0,
               end: int | None = None):
    """Split the blob at raw[pos:end] (a blob read from a pack, or one inside a larger read)
    into (kind, codec, plain_len, id, stored view).

    Raises FormatError when the header or CRC does not hold.
    """
    avail = (len(raw) if end is None else min(end, len(raw))) - pos
    if avail < BLOB_HEADER.size:
        raise FormatError("blob truncated")
    magic, kind, codec, flags, plain_len, stored_len, blob_id, crc = \
        BLOB_HEADER.unpack_from(raw, pos)
    if magic != BLOB_MAGIC:
        raise FormatError("bad blob magic")
    if flags != 0:
        raise FormatError("unknown blob flags")
    if avail < BLOB_HEADER.size + stored_len:
        raise FormatError("blob truncated")
    stored = memoryview(raw)[pos + BLOB_HEADER.size:pos + BLOB_HEADER.size + stored_len]
    if check_crc and blob_crc(raw, pos, stored_len)[1] != crc:
        raise FormatError("blob checksum mismatch")
    if expect_id is not None and blob_id != expect_id:
        raise FormatError("blob id differs from the index")
    return kind, codec, plain_len, blob_id, stored


class PackWriter:
    """Accumulates blobs into one pack; `finish` makes it durable and returns its entries."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = os.urandom(16).hex()
        self.tmp: Path = backend.temp_path(".pack.tmp")
        # Packs are fsync'd and not read back soon: written around the page cache (directio.py).
        self._f = DirectWriter(self.tmp, depth=PACK_QUEUE_DEPTH)
        try:
            self._f.write(PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0))
        except BaseException:
            self.abort()  # a full disk: no descriptor and no temp pack left behind
            raise
        self.offset = PACK_HEADER.size
        self.entries: list[BlobRef] = []

    def add(self, blob_id: bytes, kind: int, codec: int, plain_len: int, stored) -> BlobRef:
        ref = BlobRef(blob_id, self.offset, plain_len, len(stored), kind, codec)
        faults.hit("pack_write")
        self._f.write(blob_header(kind, codec, plain_len, stored, blob_id))
        self._f.write(stored)
        self.offset += ref.size
        self.entries.append(ref)
        return ref

    def finish(self) -> tuple[str, int, list[BlobRef]]:
        """Write footer and trailer, fsync, publish. Returns (name, size, entries).

        On failure (a full disk, say) the temp file is removed: nothing half-written remains.
        """
        try:
            footer = b"".join(FOOTER_ENTRY.pack(e.id, e.offset, e.plain_len, e.stored_len, e.kind,
                                                e.codec, 0) for e in self.entries)
            self._f.write(footer)
            self._f.write(TRAILER.pack(len(self.entries), zlib.crc32(footer), TRAILER_MAGIC))
            faults.hit("pack_fsync")
            size = self._f.tell()
            self._f.close(fsync=True)
            faults.hit("pack_publish")
            self.backend.put(pack_object_name(self.name), self.tmp)
        except BaseException:
            self.abort()
            raise
        return self.name, size, self.entries

    def abort(self) -> None:
        self._f.abort()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def parse_footer(tail: bytes, size: int) -> list[BlobRef]:
    """Parse the footer from the last bytes of a pack (`tail` must end at the pack's end)."""
    if size < PACK_HEADER.size + TRAILER.size or len(tail) < TRAILER.size:
        raise FormatError("pack too small")
    count, crc, magic = TRAILER.unpack_from(tail, len(tail) - TRAILER.size)
    if magic != TRAILER_MAGIC:
        raise FormatError("bad pack trailer")
    flen = count * FOOTER_ENTRY.size
    if flen + TRAILER.size + PACK_HEADER.size > size:
        raise FormatError("pack footer larger than the pack")
    if flen + TRAILER.size > len(tail):
        raise FormatError("need more tail bytes")
    footer = memoryview(tail)[len(tail) - TRAILER.size - flen:len(tail) - TRAILER.size]
    if zlib.crc32(footer) != crc:
        raise FormatError("pack footer checksum mismatch")
    refs = []
    limit = size - TRAILER.size - flen
    for i in range(count):
        bid, off, plain, stored, kind, codec, _ = FOOTER_ENTRY.unpack_from(footer, i * FOOTER_ENTRY.size)
        if off < PACK_HEADER.size or off + BLOB_HEADER.size + stored > limit:
            raise FormatError("pack footer entry out of range")
        refs.append(BlobRef(bid, off, plain, stored, kind, codec))
    return refs


def read_footer(backend: Backend, obj: str, size: int | None = None) -> list[BlobRef]:
    """The blob list of a pack from its footer (one read of the tail, a second if it is big)."""
    if size is None:
        size = backend.size(obj)
    want = min(size, 64 * 1024)
    tail = backend.get(obj, size - want, want)
    try:
        return parse_footer(tail, size)
    except FormatError as e:
        if str(e) != "need more tail bytes":
            raise
    count = TRAILER.unpack_from(tail, len(tail) - TRAILER.size)[0]
    want = count * FOOTER_ENTRY.size + TRAILER.size
    return parse_footer(backend.get(obj, size - want, want), size)


def check_pack_header(data) -> None:
    if len(data) < PACK_HEADER.size:
        raise FormatError("pack truncated")
    magic, version, _ = PACK_HEADER.unpack_from(data)
    if magic != PACK_MAGIC:
        raise FormatError("bad pack magic")
    if version != PACK_VERSION:
        raise FormatError(f"unsupported pack version {version}")


def scan_blobs(data) -> Iterator[tuple[int, object]]:
    """Walk blob headers from the start of a whole pack, for recovery when the footer is lost.

    Yields (offset, parse result or FormatError). After a blob that does not parse (bad CRC,
    zeroed or torn header) the scan resynchronises at the next `BLOB` magic whose header and
    CRC hold, so one damaged blob does not hide the intact ones after it.
    """
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    off = PACK_HEADER.size
    end = len(data)
    view = memoryview(data)
    while off + BLOB_HEADER.size <= end:
        if bytes(view[off:off + 4]) == BLOB_MAGIC:
            stored_len = struct.unpack_from("<I", data, off + 12)[0]
            try:
                parsed = parse_blob(view[off:off + BLOB_HEADER.size + stored_len])
            except FormatError as e:
                yield off, e
            else:
                yield off, parsed
                off += BLOB_HEADER.size + stored_len
                continue
        nxt = data.find(BLOB_MAGIC, off + 1)
        if nxt < 0:
            return
        off = nxt
