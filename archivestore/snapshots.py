"""Manifests: the file tree of a version (tree parts) and its snapshot record.

Formats are in docs/FORMAT.md section 6. This module serialises and validates them; it does not
read files or packs.
"""
from __future__ import annotations

import json
import posixpath
import re
from typing import Callable, Iterable, Iterator

from . import jsontext
from .errors import FormatError, UsageError
from .hashing import FILE_DIGEST

# Version 2 records list file entries whose whole-file digest is XXH3-128 (`digest_alg`);
# version 1 records, BLAKE3-256. Both are read; a record of a later version is refused, so an
# older archivestore never checks a restore against a digest it cannot compute.
SNAPSHOT_VERSION = 2
SNAPSHOT_VERSIONS_READ = (1, 2)
DIGEST_ALGS = (FILE_DIGEST,)  # `digest_alg` values a file entry may name (absent: BLAKE3-256)
# A tree part closes at ~4 MiB of JSON so that building and reading a manifest of any size
# holds one part in memory.
TREE_PART_BYTES = 4 * 1024 * 1024
ENTRY_TYPES = ("file", "dir", "symlink")


def validate_project_name(name: str) -> str:
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise UsageError(f"invalid project name {name!r} (no '/', not empty)")
    return name


def validate_path(path: str) -> str:
    """Reject what restore must never write: absolute paths, `..`, empty or odd components."""
    if not isinstance(path, str) or not path:
        raise FormatError("empty path in manifest")
    if path.startswith("/") or "\0" in path:
        raise FormatError(f"absolute or invalid path in manifest: {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise FormatError(f"path with empty, '.' or '..' component in manifest: {path!r}")
    return path


def validate_entry(e: dict) -> dict:
    """Check one tree entry's shape; raises FormatError for a malformed or hostile entry."""
    if not isinstance(e, dict):
        raise FormatError("tree entry is not an object")
    validate_path(e.get("path"))
    t = e.get("type")
    if t not in ENTRY_TYPES:
        raise FormatError(f"unknown entry type {t!r} for {e.get('path')!r}")
    if not isinstance(e.get("mode", 0), int) or not isinstance(e.get("mtime_ns", 0), int):
        raise FormatError(f"bad mode/mtime for {e['path']!r}")
    if t == "file":
        chunks = e.get("chunks")
        if not isinstance(chunks, list) or not isinstance(e.get("size"), int):
            raise FormatError(f"file entry without chunks/size: {e['path']!r}")
        for c in chunks:
            if not isinstance(c, str) or len(c) != 64:
                raise FormatError(f"bad chunk id in {e['path']!r}")
        if not isinstance(e.get("digest", ""), str):
            raise FormatError(f"bad digest in {e['path']!r}")
        if "digest_alg" in e and e["digest_alg"] not in DIGEST_ALGS:
            raise FormatError(f"unknown digest algorithm {e['digest_alg']!r} in {e['path']!r}")
        if "hardlink" in e:
            validate_path(e["hardlink"])
    elif t == "symlink" and not isinstance(e.get("target"), str):
        raise FormatError(f"symlink without target: {e['path']!r}")
    return e


_ENCODE_LINE = jsontext.dumps(ensure_ascii=True, separators=(",", ":"))


class TreeBuilder:
    """Collects entries and cuts them into parts; `flush_part` hands a finished part out."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._size = 0

    def add(self, entry: dict) -> bytes | None:
        """Add one entry; returns a full part's bytes when one is ready to be stored."""
        line = _ENCODE_LINE(entry).encode() + b"\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= TREE_PART_BYTES:
            return self.flush_part()
        return None

    def flush_part(self) -> bytes | None:
        if not self._lines:
            return None
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        return data


def parse_tree_part(data: bytes, keep: Callable[[bytes], bool] | None = None) -> Iterator[dict]:
    """The entries of a tree part; with `keep`, only those whose encoded line it accepts."""
    for n, line in enumerate(bytes(data).splitlines(), 1):
        if not line or (keep is not None and not keep(line)):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            raise FormatError(f"tree part line {n} is not JSON") from None
        yield validate_entry(e)


# A key, never text inside a string: TreeBuilder writes ASCII JSON, where a quote in a string is \"
_SIZE_FIELD = re.compile(rb'[{,]"size":(\d+)')


def larger_than(n: int) -> Callable[[bytes], bool]:
    """A `keep` for parse_tree_part: file entries over `n` bytes, picked without parsing JSON
    (a tree of 10,000 fades parses in 0.1 s; this skips them in a few ms)."""
    def keep(line: bytes) -> bool:
        m = _SIZE_FIELD.search(line)
        return m is not None and int(m.group(1)) > n
    return keep


def encode_snapshot(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=True, sort_keys=True).encode()


def parse_snapshot(data: bytes) -> dict:
    try:
        rec = json.loads(bytes(data))
    except ValueError:
        raise FormatError("snapshot record is not JSON") from None
    if not isinstance(rec, dict):
        raise FormatError("snapshot record is not a JSON object")
    if rec.get("v") not in SNAPSHOT_VERSIONS_READ:
        newer = isinstance(rec.get("v"), int) and rec["v"] > SNAPSHOT_VERSION
        raise FormatError(f"unsupported snapshot record version {rec.get('v')!r}"
                          + (" (written by a newer archivestore: upgrade to read it)" if newer
                             else ""))
    for field, typ in (("project", str), ("version", int), ("tree", list)):
        if not isinstance(rec.get(field), typ):
            raise FormatError(f"snapshot record without {field}")
    return rec


def path_selected(path: str, selections: Iterable[str]) -> bool:
    """True when `path` is one of the selected paths or lies under one of them."""
    for s in selections:
        s = posixpath.normpath(s.strip("/"))
        if s in (".", "") or path == s or path.startswith(s + "/"):
            return True
    return False
