"""The file catalog: one small record per file of every version, kept in the index's `files`
database (docs/FORMAT.md section 5) so that `archive find` answers from the index alone,
without reading a single pack.

Records are written at version commit in the same LMDB transaction as the version record, and
`Store.rebuild_index` refills them from the manifests. This module builds records from tree
entries, encodes their keys and values, and searches them; the Index stores the bytes.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from . import jsontext
from .errors import DamageError, FormatError
from .index import U32BE, file_key, version_key

# Audio fields kept in a record: enough to answer "what format is it" without the manifest.
AUDIO_FIELDS = ("container", "sample_rate", "bits", "channels", "duration", "float")
# Bytes of the whole-file digest kept (hex chars): identifies identical files across versions.
DIGEST_PREFIX = 16
# Longest description/originator kept per record (BWF allows 256/32 bytes).
TEXT_MAX = 256


record_key = file_key  # project \\0 version (u32 big-endian) \\0 path


def version_prefix(project: str, version: int) -> bytes:
    return version_key(project, version) + b"\0"


def split_record_key(key: bytes, value: bytes | None = None) -> tuple[str, int, str]:
    """(project, version, path) of a record; a shortened key (a very long path, see
    `index.file_key`) takes the path from the record `value`."""
    i = key.index(b"\0")
    path_b = key[i + 6:]
    if b"\0" in path_b and value is not None:
        path = json.loads(value)["path"]
    else:
        path = path_b.decode("utf-8", "surrogateescape")
    return key[:i].decode("utf-8", "surrogateescape"), U32BE.unpack(key[i + 1:i + 5])[0], path


def file_record(entry: dict) -> dict:
    """The catalog record of one tree entry of type "file"."""
    rec: dict = {"size": entry.get("size", 0), "digest": entry.get("digest", "")[:DIGEST_PREFIX]}
    a = entry.get("audio")
    if isinstance(a, dict):
        rec["audio"] = {k: a[k] for k in AUDIO_FIELDS if k in a}
        for k in ("description", "originator"):
            if isinstance(a.get(k), str) and a[k].strip():
                rec[k] = a[k].strip()[:TEXT_MAX]
    return rec


_ENCODE_RECORD = jsontext.dumps(ensure_ascii=False, separators=(",", ":"))


def encode_record(rec: dict) -> bytes:
    return _ENCODE_RECORD(rec).encode("utf-8", "surrogateescape")


def records_for_tree(entries: Iterable[dict]) -> Iterator[tuple[str, bytes]]:
    """(path, encoded record) for every file entry of a tree."""
    for e in entries:
        if e.get("type") == "file":
            yield e["path"], encode_record(file_record(e))


def audio_summary(a: dict | None) -> str:
    """'BWF 24-bit 48 kHz stereo 3:12.5' — a short human description of an audio format."""
    if not a:
        return ""
    ch = a.get("channels")
    chs = {1: "mono", 2: "stereo"}.get(ch, f"{ch}ch") if ch else ""
    bits = a.get("bits")
    depth = f"{bits}-bit{' float' if a.get('float') else ''}" if bits else ""
    rate = f"{a['sample_rate'] / 1000:g} kHz" if a.get("sample_rate") else ""
    dur = a.get("duration")
    length = ""
    if isinstance(dur, (int, float)):
        m, s = divmod(float(dur), 60)
        length = f"{int(m)}:{s:04.1f}" if m else f"{s:.1f} s"
    return " ".join(x for x in (str(a.get("container", "")).upper(), depth, rate, chs, length) if x)


# -- search -------------------------------------------------------------------------------

def compile_pattern(pattern: str) -> re.Pattern:
    """A case-insensitive glob; a pattern without wildcards matches as a substring."""
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)


@dataclass
class Match:
    """One file found: the same bytes at the same path in one or more versions of a project."""

    project: str
    path: str
    record: dict
    versions: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        a = self.record.get("audio")
        return {"project": self.project, "version": self.versions[-1], "versions": self.versions,
                "path": self.path, "size": self.record.get("size", 0),
                "digest": self.record.get("digest", ""), "audio": a,
                "format": audio_summary(a),
                "description": self.record.get("description", ""),
                "originator": self.record.get("originator", "")}


def _literal(pattern: str) -> bytes:
    """The longest run of an ASCII glob without wildcards, lower-cased: every name or path the
    glob matches contains it (b"" when the pattern has no safe literal)."""
    plain = re.sub(r"\[[^\]]*\]", "*", pattern)
    if "[" in plain or "]" in plain:
        return b""
    return max(re.split(r"[*?]", plain.lower()), key=len).encode("ascii")


def search(items: Iterable[tuple[bytes, object]], pattern: str | None = None,
           desc: str | None = None, project: str | None = None,
           limit: int | None = None) -> tuple[list[Match], bool]:
    """Search raw (key, value) catalog items (value: bytes, or a callable that reads it, see
    `Index.iter_files(lazy=True)`). Returns (matches, truncated).

    `pattern` is matched against the basename and the full path; `desc` is a case-insensitive
    substring of the BWF description or originator. Consecutive versions holding the same bytes
    at the same path are folded into one Match.
    """
    rx = compile_pattern(pattern) if pattern else None
    # Fast paths on raw bytes (no decode per record) when pattern/needle and record are ASCII
    # (so `?` still means one character and case folding is the same): 1M records took
    # 1.4-5.3 s through str decoding. Anything else takes the exact str path.
    rxb = (re.compile(rx.pattern.encode("ascii"), re.IGNORECASE | re.DOTALL)
           if rx is not None and pattern.isascii() else None)
    lit = _literal(pattern) if rxb is not None else b""
    needle = desc.casefold() if desc else None
    needle_b = needle.encode("ascii") if needle is not None and needle.isascii() else None
    pfx = project.encode("utf-8", "surrogateescape") + b"\0" if project else None
    out: dict[tuple[str, str, str], Match] = {}
    order: list[tuple[str, str, str]] = []
    truncated = False
    for key, value in items:
        if pfx is not None and not key.startswith(pfx):
            continue
        i = key.index(b"\0")
        path_b = key[i + 6:]
        if rx is not None:
            if rxb is not None and path_b.isascii() and b"\0" not in path_b:
                if lit and lit not in path_b.lower():
                    continue  # any match holds the pattern's longest literal run
                if not rxb.match(path_b.rpartition(b"/")[2]) and not rxb.match(path_b):
                    continue
            else:
                if b"\0" in path_b and callable(value):
                    value = value()
                path = (path_b.decode("utf-8", "surrogateescape") if b"\0" not in path_b
                        else json.loads(bytes(value))["path"])
                base = path.rsplit("/", 1)[-1]
                if not rx.match(base) and not rx.match(path):
                    continue
        value = bytes(value() if callable(value) else value)
        if needle is not None:
            # cheap test on the whole record first: most records do not match at all
            if needle_b is not None and value.isascii():
                if needle_b not in value.lower():
                    continue
            elif needle not in value.decode("utf-8", "surrogateescape").casefold():
                continue
            rec = json.loads(value)
            text = (rec.get("description", "") + "\n" + rec.get("originator", "")).casefold()
            if needle not in text:
                continue
        else:
            rec = json.loads(value)
        proj, version, path = split_record_key(key, value)
        k = (proj, path, rec.get("digest", ""))
        m = out.get(k)
        if m is None:
            if limit is not None and len(order) >= limit:
                truncated = True
                continue
            m = out[k] = Match(proj, path, rec)
            order.append(k)
        m.versions.append(version)
    return [out[k] for k in order], truncated


def format_versions(vs: list[int]) -> str:
    """[1, 2, 3, 5] → 'v1-3,5'."""
    runs: list[str] = []
    start = prev = vs[0]
    for v in vs[1:] + [None]:  # type: ignore[list-item]
        if v is not None and v == prev + 1:
            prev = v
            continue
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return "v" + ",".join(runs)


def fill_versions(store, versions: Iterable[dict]) -> int:
    """Write catalog records for these snapshot records, read from their manifests.

    A version whose tree cannot be read (yet: during an index rebuild its tree parts may sit in
    a pack indexed later; or damaged: fsck reports it) is left without records. Returns the
    versions filled.
    """
    filled = 0
    for rec in versions:
        project, number = rec["project"], rec["version"]
        if store.index.has_files(project, number):
            continue
        try:
            records = list(records_for_tree(store.iter_tree(rec)))
        except (FormatError, DamageError):
            continue
        if records:
            store.index.add_files(project, number, records)
            filled += 1
    return filled


def fill_missing(store) -> int:
    """Fill the catalog for every indexed version that has no records (after a rebuild)."""
    return fill_versions(store, [rec for _p, _n, rec in store.index.iter_versions()])
