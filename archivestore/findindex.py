"""Search blocks: a compact copy of the file catalog laid out for `archive find`
(docs/FORMAT.md section 5.1).

The `files` database holds one JSON record per file; matching 1M of them one by one in Python
took 1-12 s. The search blocks hold the same records grouped per version, up to
`BLOCK_RECORDS` to a block, one column per database:

- `find_names`: the paths, each ending in `\\0` — a name query lower-cases a whole block and
  finds the pattern's longest literal in it with one `bytes.find` per hit;
- `find_text`: the case-folded "description \\n originator" texts with their offsets — a
  `--desc` query is one `bytes.find` per hit over a block;
- `find_out`: per record the digest, the path and the rest of the record as
  `archive find --json` prints them, zstd-compressed — read only for blocks with a hit, so a
  hit is printed without decoding its record.

They are derived from `files` in the same transaction that writes a version's records
(`index_version`, called by `Index._put_files`), and rebuilt from `files` by `ensure` when an
index lacks them or they disagree with `files` (an index of an older archivestore).
"""
from __future__ import annotations

import json
import re
import struct
import sys
from array import array
from bisect import bisect_right
from json.encoder import encode_basestring
from typing import Iterator

import zstandard

from . import jsontext

#: Layout version of the search blocks, kept in `meta` as `find_layout`.
LAYOUT = b"1"
META_LAYOUT = b"find_layout"
#: Records the blocks hold, u64 in `meta`: equal to the `files` entries when they are complete.
META_RECORDS = b"find_records"
BLOCK_RECORDS = 1024
U32BE = struct.Struct(">I")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
ZSTD_LEVEL = 3
# Records rebuilt per write transaction by `ensure` (bounds the transaction's dirty pages).
BACKFILL_RECORDS = 100_000

_SURROGATE = re.compile("[\udc80-\udcff]")


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps's defaults, without its wrapper
_ENCODE = jsontext.one_shot(_ENCODER)


def _escape_surrogates(text: str) -> str:
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_text(obj) -> str:
    """`obj` as `archive find --json` prints it (see cli.common.emit_json)."""
    return _escape_surrogates(_ENCODER.encode(obj))


def _text(x) -> str:
    return x if isinstance(x, str) else ""


def record_columns(key: bytes, value: bytes, vlen: int) -> tuple[bytes, bytes, bytes]:
    """(path bytes, search text, output entry) of one `files` record; `vlen` is the length of
    its version key. The output entry is `path \\0 digest \\0 rest`, all three JSON text."""
    from .catalog import audio_summary  # catalog imports index, which imports this module
    try:
        rec = json.loads(bytes(value).decode("utf-8", "surrogateescape"))
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        rec = {}
    path_b = key[vlen + 1:]
    if b"\0" in path_b and isinstance(rec.get("path"), str):  # a shortened key (long path)
        path_b = rec["path"].encode("utf-8", "surrogateescape")
    path = path_b.decode("utf-8", "surrogateescape")
    a = rec.get("audio")
    desc, orig = _text(rec.get("description", "")), _text(rec.get("originator", ""))
    digest = rec.get("digest", "")
    rest = _ENCODE({"size": rec.get("size", 0), "digest": digest, "audio": a,
                    "format": audio_summary(a if isinstance(a, dict) else None),
                    "description": desc, "originator": orig})
    out = "\0".join((encode_basestring(path), _ENCODER.encode(digest), rest[1:]))
    if not out.isascii():  # only a non-ASCII text can hold surrogates
        out = _escape_surrogates(out)
    text = (desc + "\n" + orig).casefold()
    return path_b, text.encode("utf-8", "surrogatepass"), out.encode("utf-8", "surrogatepass")


def _u32_array(data) -> array:
    a = array("I")
    a.frombytes(data)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _offsets_block(texts: list[bytes]) -> bytes:
    """u32 n, u32 offsets[n + 1] (little-endian), then the texts end to end."""
    offs = array("I", [0])
    for t in texts:
        offs.append(offs[-1] + len(t))
    if sys.byteorder == "big":
        offs.byteswap()
    return U32.pack(len(texts)) + offs.tobytes() + b"".join(texts)


def _blocks(txn, db, vkey: bytes) -> Iterator[bytes]:
    """Keys of a version's blocks in `db`."""
    cur = txn.cursor(db)
    if not cur.set_range(vkey):
        return
    for k in cur.iternext(keys=True, values=False):
        if not (k.startswith(vkey) and len(k) == len(vkey) + 4):
            return
        yield bytes(k)


def index_version(index, txn, vkey: bytes) -> None:
    """(Re)write the search blocks of one version from its `files` records, inside the
    caller's write transaction; keeps `find_records` in step."""
    old = 0
    for k in list(_blocks(txn, index.find_names, vkey)):
        old += bytes(txn.get(k, db=index.find_names)).count(b"\0")
        for db in (index.find_names, index.find_text, index.find_out):
            txn.delete(k, db=db)
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    prefix = vkey + b"\0"
    names: list[bytes] = []
    texts: list[bytes] = []
    outs: list[bytes] = []
    block = 0
    total = 0

    def flush() -> None:
        nonlocal block
        k = vkey + U32BE.pack(block)
        txn.put(k, b"\0".join(names) + b"\0", db=index.find_names)
        txn.put(k, _offsets_block(texts), db=index.find_text)
        txn.put(k, cctx.compress(_offsets_block(outs)), db=index.find_out)
        block += 1
        names.clear()
        texts.clear()
        outs.clear()

    cur = txn.cursor(index.files)
    if cur.set_range(prefix):
        for k, v in cur:
            if not k.startswith(prefix):
                break
            p, t, o = record_columns(bytes(k), v, len(vkey))
            names.append(p)
            texts.append(t)
            outs.append(o)
            total += 1
            if len(names) == BLOCK_RECORDS:
                flush()
    if names:
        flush()
    txn.put(META_RECORDS, U64.pack(_records(txn, index) + total - old), db=index.meta)


def mark_new(txn, meta) -> None:
    """Mark a new, empty index: its (no) search blocks are complete."""
    txn.put(META_LAYOUT, LAYOUT, db=meta)
    txn.put(META_RECORDS, U64.pack(0), db=meta)


def is_current(index) -> bool:
    """True when the search blocks hold exactly the `files` records in this layout."""
    with index.env.begin() as txn:
        if txn.get(META_LAYOUT, db=index.meta) != LAYOUT:
            return False
        return _records(txn, index) == txn.stat(index.files)["entries"]


def ensure(index) -> int:
    """Rebuild the search blocks from `files` when they are missing, of another layout, or
    incomplete (records written by an older archivestore). Returns the records indexed (0
    when the blocks were current). Crash-safe: the layout mark is written last, with the
    last blocks, so an interrupted rebuild starts again; versions committed meanwhile write
    their own blocks, and each batch rebuilds a version from `files` in one transaction."""
    if is_current(index):
        return 0

    def start() -> None:
        with index.env.begin(write=True) as txn:
            for db in (index.find_names, index.find_text, index.find_out):
                txn.drop(db, delete=False)
            txn.delete(META_LAYOUT, db=index.meta)
            txn.put(META_RECORDS, U64.pack(0), db=index.meta)

    state = {"after": b"", "done": False}

    def batch() -> None:
        with index.env.begin(write=True) as txn:
            cur = txn.cursor(index.files)
            after = state["after"]
            ok = cur.set_range(after) if after else cur.first()
            first = _records(txn, index)
            while ok:
                k = bytes(cur.key())
                vkey = k[:k.index(b"\0") + 5]
                index_version(index, txn, vkey)
                after = vkey + b"\1"  # past every key of this version (the next byte is \0)
                if _records(txn, index) - first >= BACKFILL_RECORDS:
                    break
                ok = cur.set_range(after)
            else:
                txn.put(META_LAYOUT, LAYOUT, db=index.meta)
            done = not ok
        state["after"], state["done"] = after, done

    for _attempt in range(3):  # another process may have restarted the rebuild meanwhile
        state["after"], state["done"] = b"", False
        index._grow_on_full(start)
        while not state["done"]:
            index._grow_on_full(batch)
        if is_current(index):
            break
    with index.env.begin() as txn:
        return _records(txn, index)


def _records(txn, index) -> int:
    raw = txn.get(META_RECORDS, db=index.meta)
    return U64.unpack(raw)[0] if raw else 0


# -- search -------------------------------------------------------------------------------

class _MapTrim:
    """Drops this process's page-table entries for the index file after a stretch of scanning,
    so the pages a scan touched stop counting as its resident memory.

    LMDB reads through a shared read-only mapping of data.mdb. Blocks written one commit at a
    time sit between other pages, and the kernel maps whole page-cache folios (64 KiB and up)
    around each page read: a 30 MB scan of names showed 250 MB resident at 1M records.
    `MADV_DONTNEED` on a shared file mapping only unmaps: the pages stay in the page cache and
    a later read maps them again with the same bytes. Linux only; elsewhere a no-op.
    """

    EVERY = 256  # blocks between trims (about 3-10 MB of values)

    def __init__(self, env) -> None:
        self.path = None
        self.madvise = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                import os
                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                self.madvise = libc.madvise
                self.path = os.path.realpath(os.path.join(env.path(), "data.mdb"))
            except (OSError, AttributeError):
                self.madvise = None
        self.n = 0

    def step(self) -> None:
        self.n += 1
        if self.madvise is None or self.n % self.EVERY:
            return
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    if line.rstrip("\n").endswith(" " + self.path) and line.split()[1][3] == "s":
                        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                        self.madvise(lo, hi - lo, 4)  # MADV_DONTNEED
        except OSError:
            self.madvise = None

def uncatalogued(index, project: str | None = None) -> int:
    """Versions (of `project`, or all) that have files but no catalog records: archived by an
    archivestore older than the catalog. One ordered pass over version keys, a record decoded
    only where the catalog has nothing, and the mapping trimmed as the scan goes (at 10,000
    versions the seeks alone left 300 MB of index pages resident)."""
    from .index import _record, split_version_key
    trim = _MapTrim(index.env)
    n = 0
    with index.env.begin(buffers=True) as txn:
        files = txn.cursor(index.files)
        for k, v in txn.cursor(index.versions):
            key = bytes(k)
            if project is not None and split_version_key(key)[0] != project:
                continue
            prefix = key + b"\0"
            if not (files.set_range(prefix) and bytes(files.key()).startswith(prefix)):
                n += bool(_record(v).get("files"))  # a garbled record: FormatError, as before
            trim.step()
    return n


#: One match: (path as JSON, the record's members from "size" on as JSON with the closing
#: brace, versions). The same bytes at the same path in one or more versions of a project.
Found = tuple[bytes, bytes, list[int]]


def found_json(project_json: bytes, found: Found) -> bytes:
    """A match as one item of `archive find --json`'s "matches" (cf. catalog.Match.to_json)."""
    path_json, rest, vs = found
    if len(vs) == 1:
        return b'{"project": %s, "version": %d, "versions": [%d], "path": %s, %s' % (
            project_json, vs[0], vs[0], path_json, rest)
    return b'{"project": %s, "version": %d, "versions": [%s], "path": %s, %s' % (
        project_json, vs[-1], b", ".join(b"%d" % v for v in vs), path_json, rest)


def found_record(found: Found) -> tuple[str, dict]:
    """(path, {size, digest, audio, format, description, originator}) of a match."""
    return json.loads(found[0]), json.loads(b"{" + found[1])


def _glob_of(pattern: str) -> str:
    """The glob `catalog.compile_pattern` matches, lower-cased."""
    return (pattern if any(c in pattern for c in "*?[") else f"*{pattern}*").lower()


class Finder:
    """`archive find` over the search blocks. Iterating yields (project, matches) one project
    at a time (a project's matches are complete once the next project starts), so memory
    holds one project's matches, not the whole answer; `truncated` and `count` are final once
    iteration ends.

    Answers equal `catalog.search` over the `files` records: `pattern` is a case-insensitive
    glob on the basename or the full path (without wildcards: a substring), `desc` a
    case-folded substring of "description \\n originator"; the same (project, path, digest)
    in several versions is one match; at most `limit` matches.
    """

    def __init__(self, index, pattern: str | None = None, desc: str | None = None,
                 project: str | None = None, limit: int | None = None) -> None:
        from .catalog import _literal, compile_pattern
        self.index = index
        self.pattern = pattern or None
        self.rx = compile_pattern(pattern) if pattern else None
        # ASCII pattern on ASCII names: bytes regex, prefiltered by the longest literal run
        self.rxb = (re.compile(self.rx.pattern.encode("ascii"), re.IGNORECASE | re.DOTALL)
                    if self.rx is not None and pattern.isascii() else None)
        self.lit = _literal(pattern) if self.rxb is not None else b""
        # "*text*" (or a pattern without wildcards): every name holding the text matches
        self.substring = (self.rxb is not None and self.lit != b"" and
                          _glob_of(pattern) == "*" + self.lit.decode() + "*")
        self.needle = (desc.casefold().encode("utf-8", "surrogatepass") if desc else None)
        self.prefix = project.encode("utf-8", "surrogateescape") + b"\0" if project else b""
        self.limit = limit
        self.truncated = False
        self.count = 0

    # per block: the indexes (ascending) of the records that match
    def _name_hits(self, names: bytes) -> list[int]:
        rx, rxb = self.rx, self.rxb
        hits: list[int] = []
        if rxb is not None and names.isascii():
            if not self.lit:
                for i, p in enumerate(names.split(b"\0")[:-1]):
                    if rxb.match(p.rpartition(b"/")[2]) or rxb.match(p):
                        hits.append(i)
                return hits
            low = names.lower()
            lit = self.lit
            find, count = low.find, low.count
            pos = find(lit)
            if self.substring:
                i, at = 0, 0
                while pos >= 0:
                    i += count(b"\0", at, pos)
                    hits.append(i)
                    at = find(b"\0", pos) + 1
                    i += 1
                    pos = find(lit, at)
                return hits
            i, at = 0, 0  # record i starts at offset `at`
            while pos >= 0:
                i += count(b"\0", at, pos)
                start = low.rfind(b"\0", 0, pos) + 1
                end = find(b"\0", pos)
                p = names[start:end]
                if rxb.match(p.rpartition(b"/")[2]) or rxb.match(p):
                    hits.append(i)
                at = end + 1
                i += 1
                pos = find(lit, at)
            return hits
        for i, p in enumerate(names.split(b"\0")[:-1]):
            if rxb is not None and p.isascii():
                if rxb.match(p.rpartition(b"/")[2]) or rxb.match(p):
                    hits.append(i)
                continue
            s = p.decode("utf-8", "surrogateescape")
            if rx.match(s.rsplit("/", 1)[-1]) or rx.match(s):
                hits.append(i)
        return hits

    def _text_hits(self, block, only: list[int] | None) -> list[int]:
        n = U32.unpack_from(block)[0]
        offs = _u32_array(block[4:8 + 4 * n])
        text = bytes(block[8 + 4 * n:])
        needle = self.needle
        if only is not None:
            return [i for i in only if needle in text[offs[i]:offs[i + 1]]]
        hits: list[int] = []
        ln = len(needle)
        find = text.find
        pos = find(needle)
        while pos >= 0:
            i = bisect_right(offs, pos) - 1
            end = offs[i + 1]
            if pos + ln <= end:
                hits.append(i)
                pos = find(needle, end)
            else:  # the occurrence runs into the next record's text
                pos = find(needle, pos + 1)
        return hits

    def _fold(self, entries: bytes, offs: array, hits: list[int],
              batch: dict[tuple[bytes, bytes], Found], version: int) -> bool:
        """Add one block's hits to its project's matches; True if the limit dropped one."""
        get = batch.get
        count = self.count
        limit = self.limit if self.limit is not None else sys.maxsize
        dropped = False
        for i in hits:
            pj, dj, rest = entries[offs[i]:offs[i + 1]].split(b"\0", 2)
            f = get((pj, dj))
            if f is None:
                if count >= limit:
                    dropped = True
                    continue
                batch[pj, dj] = (pj, rest, [version])
                count += 1
            else:
                f[2].append(version)
        self.count = count
        return dropped

    def __iter__(self) -> Iterator[tuple[str, list[Found]]]:
        idx = self.index
        dctx = zstandard.ZstdDecompressor()
        trim = _MapTrim(idx.env)
        drive = idx.find_names if self.rx is not None else idx.find_text
        prefix = self.prefix
        cur_project = None
        batch: dict[tuple[bytes, bytes], Found] = {}
        project = ""
        with idx.env.begin(buffers=True) as txn:
            cur = txn.cursor(drive)
            ok = cur.set_range(prefix) if prefix else cur.first()
            while ok:
                key = bytes(cur.key())
                if not key.startswith(prefix):
                    break
                pb = key[:-9]
                if pb != cur_project:
                    if batch:
                        yield project, list(batch.values())
                        batch = {}
                    if self.truncated:
                        return  # no later record can add a version to a kept match
                    cur_project, project = pb, pb.decode("utf-8", "surrogateescape")
                version = U32BE.unpack_from(key, len(key) - 8)[0]
                if self.rx is not None:
                    hits = self._name_hits(bytes(cur.value()))
                    if hits and self.needle is not None:
                        hits = self._text_hits(txn.get(key, db=idx.find_text), hits)
                else:
                    hits = self._text_hits(cur.value(), None)
                if hits:
                    out = dctx.decompress(txn.get(key, db=idx.find_out))
                    n = U32.unpack_from(out)[0]
                    offs = _u32_array(out[4:8 + 4 * n])
                    base = 8 + 4 * n
                    if self._fold(out[base:], offs, hits, batch, version):
                        self.truncated = True
                trim.step()
                ok = cur.next()
        if batch:
            yield project, list(batch.values())
