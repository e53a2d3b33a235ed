"""Content addresses (BLAKE3-256) and whole-file digests (XXH3-128).

Chunk ids: BLAKE3-256 of the plain bytes, chosen by measurement on the 2-core build machine
(1 MiB inputs, one thread): the `blake3` package (SIMD, releases the GIL) 4.6-6.1 GB/s per core
and 11 GB/s on two threads; SHA-256 via hashlib/OpenSSL with SHA-NI 1.47 GB/s. An id is an
address that must not collide even for someone trying, so it is a cryptographic hash.

Whole-file digests: XXH3-128 (the `xxhash` package, the reference C code, releases the GIL),
8-9 GB/s from memory on one core against BLAKE3's 2.4-3.5 on the same VM. A digest only checks
that a file was put together again from the right chunks in the right order (every chunk is
verified against its BLAKE3 id on the way) and lets anyone check a restored file without us:
`xxhsum -H2 FILE` prints it, and XXH128 is what media hash lists (ASC MHL) and DIT tools record.
Versions written before snapshot record version 2 carry BLAKE3-256 file digests (`b3sum`);
`file_digest(entry)` picks the hash an entry was made with (docs/FORMAT.md 6.1).
"""
from __future__ import annotations

import blake3
import xxhash

from .errors import FormatError

ID_SIZE = 32
ALGORITHM = "blake3"
# The whole-file digest of new tree entries (their `digest_alg`); entries without the field
# are BLAKE3-256 (LEGACY_DIGEST).
FILE_DIGEST = "xxh128"
LEGACY_DIGEST = "blake3"


def chunk_id(data) -> bytes:
    """The id of a chunk: BLAKE3-256 of its plain bytes."""
    return blake3.blake3(data).digest()


class FileDigest:
    """Incremental whole-file digest of new entries (XXH3-128, as `xxhsum -H2` prints it), fed
    chunk by chunk."""

    __slots__ = ("_h",)
    alg = FILE_DIGEST
    _new = xxhash.xxh3_128

    def __init__(self) -> None:
        self._h = self._new()

    def update(self, data) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class Blake3FileDigest(FileDigest):
    """The whole-file digest of entries written before `digest_alg` (BLAKE3-256, as `b3sum`)."""

    __slots__ = ()
    alg = LEGACY_DIGEST
    _new = blake3.blake3


_BY_ALG = {FILE_DIGEST: FileDigest, LEGACY_DIGEST: Blake3FileDigest}


def digest_alg(entry: dict) -> str:
    """The hash a file entry's `digest` was made with."""
    return entry.get("digest_alg", LEGACY_DIGEST)


def file_digest(entry: dict) -> FileDigest | Blake3FileDigest:
    """A fresh hasher of the kind `entry`'s digest was made with (FormatError if unknown)."""
    alg = digest_alg(entry)
    try:
        return _BY_ALG[alg]()
    except (KeyError, TypeError):
        raise FormatError(f"{entry.get('path')!r}: unknown digest algorithm {alg!r}") from None


def content_key(entry: dict) -> bytes:
    """A file entry's bytes named by its chunk list: BLAKE3 of the ids in order (ids are
    content addresses and a store's chunking is fixed, so equal bytes have equal lists), or
    the `content` a caller put in place of a long `chunks` list."""
    if "content" in entry:
        return entry["content"]
    h = blake3.blake3()
    for c in entry.get("chunks", ()):
        h.update(bytes.fromhex(c))
    return h.digest()


def same_content(a: dict, b: dict) -> bool:
    """Whether two file entries of one store hold the same bytes: equal digests of one kind,
    or, across the change of digest (v1 and v2 records), equal chunk lists."""
    if a.get("size") != b.get("size"):
        return False
    if digest_alg(a) == digest_alg(b):
        return a.get("digest") == b.get("digest")
    return content_key(a) == content_key(b)
