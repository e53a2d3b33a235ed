"""Ingest: walk a project folder, chunk and hash every file, store what is new, commit a version.

Pipeline (all hot work outside the GIL): two file workers read, chunk (Cython) and hash (BLAKE3)
files in parallel; chunks the store lacks go to an encode pool (zstd / PCM codec) whose results
are appended to packs by `BlobSink`. Tree entries are collected in walk order. The version is
committed last: every earlier pack is durable and indexed first, then the last one (the last
data, tree parts and the snapshot record) is indexed in the transaction recording the version.

A project's previous version guides the next (`_Guide`): a file is first tried against the
chunks it had, so unchanged bytes skip the content-defined scan and, when the whole file is
unchanged, the whole-file digest. A file at a path the previous version did not have is
matched by its size and first chunks to the file it was moved from (`_moved_from`). The cuts
and ids are exactly those of a plain ingest.

Several folders (a delivery) go through one pipeline (`ingest_many`): the next folder is read
while the one before it is committed, each as its own version.
"""
from __future__ import annotations

import datetime as _dt
import errno
import getpass
import os
import stat
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import catalog, codecs, faults, hashing, locations, sessions
from .audio import probe as probe_audio
from .backend import leftover_temps
from .chunking import ChunkParams, GuidedChunks, read_buffer
from .errors import ArchiveError, InputError, NotFound, StoreFull, UsageError
from .locks import HOST, StoreLock
from .packs import KIND_DATA, KIND_SNAPSHOT, KIND_TREE
from .snapshots import (SNAPSHOT_VERSION, TreeBuilder, encode_snapshot, larger_than,
                        validate_project_name)
from .store import Store

# In-flight encodes are bounded so memory stays flat whatever the file size: each holds at most
# one chunk (≤ max chunk size) and its encoded form.
MAX_INFLIGHT_ENCODES = 8
# Files being read at once: one per core keeps both busy on a folder of many tracks.
FILE_WORKERS = 2
# Walk entries read ahead of the one that joins the tree next. Finished ones hold only their
# entry; the lookahead keeps both readers busy on the next folder while a version is committed
# (each commit waits on fsyncs; with 8, a delivery of guided files ran dry there).
WINDOW = 64
# A file that changes while it is read is re-read this many times before it is skipped.
READ_RETRIES = 2
# Files smaller than SMALL_FILE are read and chunked by one file worker, start to end, and their
# new chunks encoded without the encode pool; files smaller than INLINE_FILE are read by the
# walking thread itself. For such files the hand-offs between threads cost more than the work
# (a folder of 10,000 fades, 2-20 KB each: 4.5 s, then 3.4 s, then 1.6 s; restic 1.5-1.9 s).
SMALL_FILE = 1 << 20
INLINE_FILE = 64 << 10
# Chunks of files under SMALL_FILE are claimed (one index read) and stored in batches of this
# many, or of BATCH_BYTES, by the thread that fills the batch: per file of fades, the read
# transaction cost ~13 µs of ~110.
BATCH_CHUNKS = 256
BATCH_BYTES = 4 << 20
# Chunk ids of the previous version kept to guide an ingest: 32 MB, about 1 TB of project.
GUIDE_MAX_CHUNKS = 1 << 20
# Codec-check failures listed in an ingest's result and its snapshot record (all are counted):
# a codec bug that failed every chunk of a big delivery must not grow either without bound.
CODEC_FAILED_KEEP = 1000


@dataclass
class IngestResult:
    """The outcome of one ingest: the version made and what it cost and skipped."""

    project: str
    version: int
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_in: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
    chunks: int = 0
    chunks_new: int = 0
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)
    snapshot_id: str = ""
    session_check: sessions.SessionCheck | None = None
    # the audio codec's own check at ingest (Ingester.verify_codec): payloads decoded and
    # compared with their chunk, and the chunks whose payload decoded to other bytes (a codec
    # bug: each was stored with zstd/raw instead, so nothing is lost; they are reported);
    # codec_unchecked: payloads stored without the check (--no-verify-codec). They go into the
    # snapshot record, the codec's record of trust (`archive stats` sums them). Failures are
    # all counted (codec_failed_count), the first CODEC_FAILED_KEEP listed.
    codec_checked: int = 0
    codec_failed: list[dict] = field(default_factory=list)
    codec_failed_count: int = 0
    codec_unchecked: int = 0

    def to_json(self) -> dict:
        return {"project": self.project, "version": self.version, "files": self.files,
                "bytes_in": self.bytes_in, "bytes_new": self.bytes_new,
                "bytes_stored": self.bytes_stored, "seconds": round(self.seconds, 3),
                "dirs": self.dirs, "symlinks": self.symlinks, "chunks": self.chunks,
                "chunks_new": self.chunks_new, "skipped": self.skipped,
                "snapshot": self.snapshot_id,
                "session_check": self.session_check.to_json() if self.session_check else None,
                "codec_checked": self.codec_checked, "codec_failed": self.codec_failed,
                "codec_failed_count": self.codec_failed_count,
                "codec_unchecked": self.codec_unchecked}


class _Skip(Exception):
    """A source entry that is not archived, with the reason given to the user."""


@dataclass
class _Project:
    """One folder of an ingest run, from its walk to its committed version: what the run keeps
    per project while the next one is already being read."""

    src: Path
    name: str
    message: str | None
    res: IngestResult
    t0: float
    root: str = ""  # the folder as text, for session documents
    tree: TreeBuilder = field(default_factory=TreeBuilder)
    tree_ids: list[str] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)  # catalog records
    watcher: sessions.TreeWatcher = field(default_factory=sessions.TreeWatcher)
    guides: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    # (size, first chunk id) -> paths in the previous version: where a moved file came from
    firsts: dict[tuple[int, bytes], list[str]] = field(default_factory=dict)
    # a changed file that began like its previous version is read again from its start for
    # the digest (_chunk_file); not worth it over a network
    reread_ok: bool = True
    batch: list[tuple[bytes, bytes, object]] = field(default_factory=list)  # small files' chunks
    batch_bytes: int = 0
    # chunks this project found claimed, and not yet stored, by another file's job (maybe of the
    # next project): its version waits until they are in a pack (_wait_borrowed)
    borrowed: set[bytes] = field(default_factory=set)


class Ingester:
    """Ingests folders into a store. `progress(event)` receives dicts: {"project", "file",
    "bytes"}."""

    def __init__(self, store: Store, progress: Callable[[dict], None] | None = None,
                 strict: bool = False, verify_codec: bool = True,
                 audio_codec: bool = True) -> None:
        self.store = store
        self.progress = progress
        self.strict = strict
        # Decoding every PCM-encoded chunk at ingest proves the codec on real data before trust.
        self.verify_codec = verify_codec
        # Off: PCM goes through zstd/raw like any data (faster, ~30% larger); boundaries stay
        # audio-aware either way, so dedup is the same.
        self.audio_codec = audio_codec
        self._lock = threading.Lock()
        self._stored = threading.Condition(self._lock)  # notified as claimed chunks reach a pack
        self._pending: set[bytes] = set()  # claimed, not yet indexed
        self._unadded: set[bytes] = set()  # claimed, not yet in a pack
        self._error: BaseException | None = None

    # -- public ---------------------------------------------------------------------------
    @staticmethod
    def check_source(source: str | os.PathLike) -> Path:
        """The resolved project folder, or a UsageError/InputError saying why it cannot be one."""
        src = Path(source)
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise UsageError(f"{src}: no such folder") from None
        except OSError as e:
            raise InputError(f"{src}: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{src}: not a folder (ingest takes a project folder)")
        return src.resolve()

    def ingest(self, source: str | os.PathLike, project: str | None = None,
               message: str | None = None) -> IngestResult:
        """Archive one folder as the next version of `project` (default: the folder's name)."""
        return list(self.ingest_many([(source, project, message)]))[0]

    def ingest_many(self, sources: Iterable[tuple[str | os.PathLike, str | None, str | None]]
                    ) -> Iterator[IngestResult]:
        """Archive folders, each (folder, project or None, message or None) as its own project
        version, in one pipeline: the next folder is read while the previous one's last files
        are encoded and its version committed. Yields each result once its version is
        committed; an error stops the run there (earlier versions stay committed)."""
        for p, _size in leftover_temps(self.store.root):  # partial packs of killed ingests
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        self._error = None
        self._pending.clear()
        self._unadded.clear()
        self._sink = self.store.sink()
        self._sink.on_indexed = self._forget_indexed
        self._enc_pool = ThreadPoolExecutor(2, thread_name_prefix="encode")
        self._enc_slots = threading.BoundedSemaphore(MAX_INFLIGHT_ENCODES)
        self._enc_futures: set[Future] = set()
        file_pool = ThreadPoolExecutor(FILE_WORKERS, thread_name_prefix="read")
        # files in flight, in walk order, each with its project; ("end", project) closes one
        window: deque = deque()
        committed: list[str] = []
        try:
            def settle(get):
                try:
                    return get()
                except BaseException:
                    self._raise_pending_error()  # the cause, not a worker's "aborted"
                    raise

            def drain(limit: int) -> Iterator[IngestResult]:
                while len(window) > limit:
                    kind, proj, item = window.popleft()
                    if kind == "end":
                        res = self._finish_project(proj)
                        committed.append(res.project)
                        yield res
                        continue
                    entry = settle(item.result) if kind == "future" else item
                    self._raise_pending_error()
                    if entry is not None:
                        self._emit(proj, entry)

            for source, name, message in sources:
                proj = self._start_project(source, name, message)
                for entry_or_job in self._walk(proj):
                    if callable(entry_or_job) and entry_or_job.small:
                        # read here: a pool thread would cost more in hand-offs than the file does
                        window.append(("entry", proj, settle(entry_or_job)))
                    elif callable(entry_or_job):
                        window.append(("future", proj, file_pool.submit(entry_or_job)))
                    else:
                        window.append(("entry", proj, entry_or_job))
                    yield from drain(WINDOW)
                window.append(("end", proj, None))
            yield from drain(0)
            file_pool.shutdown(wait=True)
        except BaseException as exc:
            self._error = self._error or RuntimeError("aborted")
            file_pool.shutdown(wait=True, cancel_futures=True)
            self._enc_pool.shutdown(wait=True, cancel_futures=True)
            self._sink.abort()
            if _disk_full(exc):
                done = (f"only {', '.join(committed)} {'was' if len(committed) == 1 else 'were'} "
                        f"committed" if committed else "nothing was committed")
                raise StoreFull(f"store disk is full ({self.store.root}); {done} — free space "
                                f"and run the ingest again") from None
            raise
        finally:
            self._enc_pool.shutdown(wait=True)
            self._sink.close()

    # -- one project ------------------------------------------------------------------------
    def _start_project(self, source: str | os.PathLike, name: str | None,
                       message: str | None) -> _Project:
        t0 = time.monotonic()
        src = self.check_source(source)
        name = validate_project_name(name or src.name)
        proj = _Project(src=src, name=name, message=message,
                        res=IngestResult(project=name, version=0), t0=t0,
                        root=os.fsdecode(src))  # as text once, not per file
        proj.guides = self._load_guides(name)
        for path, (size, _digest, joined) in proj.guides.items():
            proj.firsts.setdefault((size, joined[:32]), []).append(path)
        proj.reread_ok = not locations.on_network_fs(src)
        return proj

    def _emit(self, proj: _Project, entry: dict) -> None:
        """An entry joins its project's tree, in walk order."""
        self._observe(proj, entry)
        part = proj.tree.add(entry)
        if part is not None:
            proj.tree_ids.append(self._store_tree_part(proj, part))

    def _finish_project(self, proj: _Project) -> IngestResult:
        """Every file of `proj` is read: store what is left of it, then commit its version."""
        res = proj.res
        self._store_batch(proj)
        self._wait_encodes()
        self._wait_borrowed(proj)
        self._raise_pending_error()
        self._check_sessions(proj)
        if self.strict and res.skipped:
            first = res.skipped[0]
            raise InputError(f"--strict: {len(res.skipped)} entr"
                             f"{'y' if len(res.skipped) == 1 else 'ies'} could not be archived, "
                             f"first {first['path']}: {first['reason']}")
        part = proj.tree.flush_part()
        if part is not None:
            proj.tree_ids.append(self._store_tree_part(proj, part))
        self._commit(proj)
        res.seconds = time.monotonic() - proj.t0
        return res

    # -- the previous version ---------------------------------------------------------------
    def _load_guides(self, project: str) -> dict[str, tuple[int, str, bytes]]:
        """path -> (size, digest, chunk ids joined) of the project's latest version's files."""
        guides: dict[str, tuple[int, str, bytes]] = {}
        try:
            _n, record = self.store.version(project)
        except NotFound:
            return guides
        total = 0
        try:
            # a file of one chunk gets no guidance (see _chunk_file)
            for e in self.store.iter_tree(record, larger_than(self.store.params.min)):
                chunks = e.get("chunks")
                if e.get("type") != "file" or not chunks:
                    continue
                total += len(chunks)
                if total > GUIDE_MAX_CHUNKS:
                    break
                # a digest of another kind (a version before XXH128 digests) cannot stand in
                # for this file's: "" makes the file hashed as it is read
                digest = e["digest"] if hashing.digest_alg(e) == hashing.FILE_DIGEST else ""
                guides[e["path"]] = (e["size"], digest,
                                     b"".join(bytes.fromhex(c) for c in chunks))
        except (ArchiveError, KeyError, TypeError, ValueError):
            pass  # a damaged or odd old version only costs the guidance; fsck reports it
        return guides

    def _guide(self, proj: _Project, rel: str) -> "_Guide | None":
        g = proj.guides.get(rel)
        if g is None:
            return None
        size, digest, joined = g
        ids = [joined[i:i + 32] for i in range(0, len(joined), 32)]
        with self._lock:
            locs = self.store.index.lookup_many(ids)
        if any(loc is None for loc in locs):
            return None
        return _Guide(ids, [loc.plain_len for loc in locs], size, digest)

    def _moved_from(self, proj: _Project, size: int, k: int, cid: bytes,
                    cands: list[str] | None) -> "tuple[_Guide | None, list[str] | None]":
        """For chunk `k` (0 or 1, id `cid`) of a file with no previous version at its path: the
        guide of the previous file it matches, or the candidates still in the running after
        chunk 0 (same size and first chunk: takes of one length often share a header), or
        neither (it is a new file: give up)."""
        if k == 0:
            cands = proj.firsts.get((size, cid))
        else:
            cands = [p for p in cands or () if proj.guides[p][2][32:64] == cid]
        if not cands:
            return None, None
        if len(cands) == 1 or k > 0:
            return self._guide(proj, cands[0]), None
        return None, cands

    # -- commit ---------------------------------------------------------------------------
    def _store_tree_part(self, proj: _Project, part: bytes) -> str:
        blob_id, nbytes = self._sink.add_plain(KIND_TREE, part)
        proj.res.bytes_stored += nbytes
        return blob_id.hex()

    def _commit(self, proj: _Project) -> None:
        res, src, tree_ids, message = proj.res, proj.src, proj.tree_ids, proj.message
        index = self.store.index
        with StoreLock(self.store.root, "commit", f"ingest {res.project}"):
            faults.hit("snapshot")
            version = self.store.claim_version(res.project, index.next_version(res.project))
            record = {"v": SNAPSHOT_VERSION, "project": res.project, "version": version,
                      "time": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "host": HOST, "user": _user(), "source": os.fsdecode(src),
                      "message": message or "", "files": res.files, "dirs": res.dirs,
                      "symlinks": res.symlinks, "bytes": res.bytes_in, "tree": tree_ids,
                      "skipped": res.skipped, "codec_checked": res.codec_checked,
                      "codec_failed": res.codec_failed,
                      "codec_failed_count": res.codec_failed_count,
                      "codec_unchecked": res.codec_unchecked}
            plain = encode_snapshot(record)
            snap_id, nbytes = self._sink.add_plain(KIND_SNAPSHOT, plain)
            res.bytes_stored += nbytes
            record["id"] = snap_id.hex()
            # one flush: every earlier pack is durable and indexed first, then the last one
            # (the project's last data, its tree parts and this snapshot) is made durable and
            # indexed in the transaction that records the version
            self._sink.flush(version=(res.project, version, record, proj.files))
        res.version = version
        res.snapshot_id = snap_id.hex()

    # -- catalog and session documents ----------------------------------------------------
    def _observe(self, proj: _Project, entry: dict) -> None:
        """Before an entry joins the tree: its catalog record, and for a session document (in
        the project folder) the media it refers to (recorded on the entry as `session`)."""
        if entry["type"] == "file":
            proj.files.append((entry["path"], catalog.encode_record(catalog.file_record(entry))))
            sess = sessions.read_document(proj.root, entry["path"])
            if sess is not None:
                entry["session"] = sess
        proj.watcher.add(entry)

    def _check_sessions(self, proj: _Project) -> None:
        res, src = proj.res, proj.src
        if not proj.watcher.relevant:
            return
        skipped = {s["path"] for s in res.skipped}
        check = proj.watcher.check(
            lambda rel: rel not in skipped and os.path.lexists(os.path.join(src, *rel.split("/"))))
        res.session_check = check
        if self.strict and not check.ok:
            first = check.summary()[0]
            n = len(check.problems) + sum(1 for s in check.sessions if s.get("error"))
            raise InputError(f"--strict: {n} session problem{'s' if n != 1 else ''}, first: {first}. "
                             f"Copy the media into the project folder (Ardour: Session > Save As "
                             f"with media copied; REAPER: Save As with 'copy all media') and "
                             f"ingest again, or ingest without --strict")

    # -- walking --------------------------------------------------------------------------
    def _skip(self, res: IngestResult, rel: str, reason: str) -> None:
        with self._lock:
            res.skipped.append({"path": rel, "reason": reason})

    def _walk(self, proj: _Project):
        """Yield entry dicts or file jobs depth first, names sorted; never follows links."""
        root, res = proj.src, proj.res
        links: dict[tuple[int, int], str] = {}
        stack: list[tuple[bytes, str]] = [(os.fsencode(root), "")]
        while stack:
            dpath, drel = stack.pop()
            try:
                with os.scandir(dpath) as it:
                    names = sorted(it, key=lambda d: d.name)
            except OSError as e:
                self._skip(res, drel or ".", f"cannot list folder: {e.strerror}")
                continue
            subdirs = []
            for d in names:
                name = os.fsdecode(d.name)
                rel = f"{drel}/{name}" if drel else name
                try:
                    st = d.stat(follow_symlinks=False)
                except OSError as e:
                    self._skip(res, rel, f"cannot stat: {e.strerror}")
                    continue
                mode = st.st_mode
                base = {"path": rel, "mode": stat.S_IMODE(mode), "mtime_ns": st.st_mtime_ns}
                if stat.S_ISDIR(mode):
                    res.dirs += 1
                    yield {**base, "type": "dir"}
                    subdirs.append((d.path, rel))
                elif stat.S_ISLNK(mode):
                    try:
                        target = os.fsdecode(os.readlink(d.path))
                    except OSError as e:
                        self._skip(res, rel, f"cannot read link: {e.strerror}")
                        continue
                    res.symlinks += 1
                    yield {**base, "type": "symlink", "target": target}
                elif stat.S_ISREG(mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in links:
                        job = self._hardlink_job(d.path, rel, base, links[key], proj)
                    else:
                        if st.st_nlink > 1:
                            links[key] = rel
                        job = self._file_job(d.path, rel, base, proj)
                    job.small = st.st_size < INLINE_FILE
                    yield job
                else:
                    kind = ("FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
                            else "device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "special file")
                    self._skip(res, rel, f"is a {kind}, not archived")
            stack.extend(reversed(subdirs))

    def _hardlink_job(self, path: bytes, rel: str, base: dict, first: str, proj: _Project):
        def job():
            entry = self._file_job(path, rel, base, proj)()
            if entry is not None:
                entry["hardlink"] = first
            return entry
        return job

    def _file_job(self, path: bytes, rel: str, base: dict, proj: _Project):
        def job() -> dict | None:
            if self._error is not None:
                return None
            for attempt in range(READ_RETRIES + 1):
                try:
                    return self._read_file(path, rel, base, proj)
                except _Skip as e:
                    if "changed while" in str(e) and attempt < READ_RETRIES:
                        continue
                    self._skip(proj.res, rel, str(e))
                    return None
            return None
        return job

    # -- one file -------------------------------------------------------------------------
    def _read_file(self, path: bytes, rel: str, base: dict, proj: _Project) -> dict:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _Skip("vanished before it could be read") from None
        except OSError as e:
            raise _Skip(f"cannot open: {e.strerror}") from None
        # New chunks of a small file go to the batch (_add_batch), not to the encode pool:
        # handing each to the pool and back cost more than encoding it (GIL and futex hand-offs;
        # a folder of 10,000 fades took twice restic's time).
        with os.fdopen(fd, "rb", buffering=0) as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _Skip("is no longer a regular file")
            try:
                entry = self._chunk_file(proj, f, rel, st, st.st_size < SMALL_FILE)
            except OSError as e:
                raise _Skip(f"read error: {e.strerror}") from None
            st2 = os.fstat(fd)
        # ctime too: an in-place rewrite that puts the old size and mtime back still moves it
        if ((st2.st_size, st2.st_mtime_ns, st2.st_ctime_ns) != (st.st_size, st.st_mtime_ns,
                                                               st.st_ctime_ns)
                or entry["size"] != st.st_size):
            raise _Skip("changed while it was being read")
        entry.update(base)
        entry["mode"] = stat.S_IMODE(st.st_mode)
        entry["mtime_ns"] = st.st_mtime_ns
        res = proj.res
        with self._lock:
            res.files += 1
            res.bytes_in += entry["size"]
            res.chunks += len(entry["chunks"])
        return entry

    def _chunk_file(self, proj: _Project, f, rel: str, st: os.stat_result,
                    small: bool = False) -> dict:
        """The file's entry; its new chunks go to the encode pool, or when `small` to the batch
        once the whole file is read."""
        params = self.store.params
        digest = hashing.FileDigest()
        # a file of one chunk is never scanned: its guidance would cost more than it saves
        guidable = bool(proj.guides) and st.st_size > params.min
        guide = self._guide(proj, rel) if guidable else None
        # while the file is its previous version chunk for chunk, its digest is that version's
        deferred = (guide is not None and guide.size == st.st_size and bool(guide.digest)
                    and proj.reread_ok)
        # no file at this path before: its first chunks may name the file it was moved from
        moved = guidable and guide is None
        cands: list[str] | None = None
        ids: list[str] = []
        held: list | None = [] if small else None
        size = 0
        info = _probe_audio(f, st.st_size)
        f.seek(0)
        if info is not None:
            # header | PCM frames (cuts on whole frames, the codec gets the format) | trailer
            segments = [(info.data_offset, 1, None), (info.data_length, info.block_align,
                                                      info.pcm_format), (None, 1, None)]
        else:
            segments = [(None, 1, None)]
        for length, align, fmt in segments:
            if length == 0:
                continue
            # a segment no longer than the minimum chunk is one chunk, never scanned (a folder
            # of fades is all such); None: to the end of the file, as long as fstat said
            expect_len = st.st_size - size if length is None else length
            if 0 <= expect_len <= params.min:
                chunks = _OneChunk(f, expect_len, to_eof=length is None)
            else:
                chunks = GuidedChunks(f, params, length=length, align=align,
                                      stride=params.stride_for(fmt))
            while (got := chunks.next(guide.expect() if guide is not None else 0)) is not None:
                chunk, guessed = got
                if self._error is not None:
                    raise ArchiveError("ingest aborted")
                cid = hashing.chunk_id(chunk)
                if moved:
                    guide, cands = self._moved_from(proj, st.st_size, len(ids), cid, cands)
                    moved = cands is not None
                    if guide is not None and guide.digest and proj.reread_ok:
                        # deferred like any guide's digest: it starts over (chunk 0 may be in it)
                        digest, deferred = hashing.FileDigest(), True
                known = False
                if guide is not None:
                    if not guide.follow(cid, guessed, len(ids)):
                        chunks.reject()
                        continue
                    known = guide.took_own()  # then no index read to tell it is stored
                    if deferred and not guide.in_order:
                        _digest_prefix(f, digest, size, params)
                        deferred = False
                faults.hit("chunk")
                if not deferred:
                    digest.update(chunk)
                ids.append(cid.hex())
                size += len(chunk)
                if held is not None:
                    # a copy: a batch of small files' chunks would pin a read buffer each
                    held.append((cid, bytes(chunk), fmt))  # claimed in a batch: one index read
                elif not known and self._claim([cid], proj)[0]:
                    # the view, not a copy: it pins its read buffer only until encoded, and the
                    # MAX_INFLIGHT_ENCODES chunks in flight are the latest few of two files, so
                    # they hold a handful of the pool's buffers (chunking._BufferPool)
                    self._submit_encode(cid, chunk, fmt, proj.res)
                if self.progress:
                    self.progress({"project": proj.name, "file": rel, "bytes": len(chunk)})
        if held:
            self._add_batch(proj, held)
        if deferred and len(ids) == len(guide.ids) and size == guide.size:
            hexdigest = guide.digest
        else:
            if deferred:
                _digest_prefix(f, digest, size, params)
            hexdigest = digest.hexdigest()
        entry = {"type": "file", "size": size, "chunks": ids, "digest": hexdigest,
                 "digest_alg": hashing.FILE_DIGEST}
        if info is not None:
            entry["audio"] = info.to_manifest()
        return {"path": rel, **entry}

    def _add_batch(self, proj: _Project, chunks: list) -> None:
        """Queue a small file's chunks; every BATCH_CHUNKS (or BATCH_BYTES) they are claimed
        with one index read and the new ones stored, by the thread that fills the batch.
        Claimed chunks are stored whatever becomes of their file: another file may already
        count on them (see _claim)."""
        with self._lock:
            proj.batch.extend(chunks)
            proj.batch_bytes += sum(len(c[1]) for c in chunks)
            full = len(proj.batch) >= BATCH_CHUNKS or proj.batch_bytes >= BATCH_BYTES
        if full:
            self._store_batch(proj)

    def _store_batch(self, proj: _Project) -> None:
        with self._lock:
            batch, proj.batch, proj.batch_bytes = proj.batch, [], 0
        if not batch:
            return
        claimed = [c for c, new in zip(batch, self._claim([c[0] for c in batch], proj)) if new]
        for cid, chunk, fmt in claimed:  # claimed: stored whatever happens (see _claim)
            self._encode_and_store(cid, chunk, fmt, proj.res)

    def _claim(self, cids: list[bytes], proj: _Project) -> list[bool]:
        """For each chunk: True if it is new to the store and this thread must store it. One
        that another job claimed and has not yet stored is noted as borrowed by `proj`."""
        with self._lock:
            known = self.store.index.contains_many(cids)
            out = []
            for cid, k in zip(cids, known):
                new = not k and cid not in self._pending
                if new:
                    self._pending.add(cid)
                    self._unadded.add(cid)
                elif not k and cid in self._unadded:
                    proj.borrowed.add(cid)
                out.append(new)
            return out

    # -- encoding -------------------------------------------------------------------------
    def _submit_encode(self, cid: bytes, chunk, fmt, res: IngestResult) -> None:
        self._enc_slots.acquire()
        try:
            fut = self._enc_pool.submit(self._encode_and_store, cid, chunk, fmt, res)
        except BaseException:
            self._enc_slots.release()
            raise
        with self._lock:
            self._enc_futures.add(fut)
        fut.add_done_callback(self._encode_done)

    def _encode_done(self, fut: Future) -> None:
        with self._lock:
            self._enc_futures.discard(fut)
        self._enc_slots.release()
        exc = fut.exception() if not fut.cancelled() else None
        if exc is not None:
            with self._stored:
                if self._error is None:
                    self._error = exc
                self._stored.notify_all()  # a version waiting on its borrowed chunks gives up

    def _encode_and_store(self, cid: bytes, chunk, fmt, res: IngestResult) -> None:
        if self._error is not None:
            return
        # reuse: the sink copies `stored` into its pack before this thread encodes again
        codec, stored = codecs.encode(chunk, fmt if self.audio_codec else None, reuse=True)
        checked, failed = codec == codecs.PCM and self.verify_codec, False
        if checked and not codecs.verify(codec, stored, chunk):
            failed = True
            codec, stored = codecs.encode(chunk, None)  # never store what does not round-trip
        nbytes = self._sink.add(cid, KIND_DATA, codec, len(chunk), stored)
        with self._stored:
            if checked:
                res.codec_checked += 1
            elif codec == codecs.PCM:
                res.codec_unchecked += 1
            if failed:
                res.codec_failed_count += 1
                if len(res.codec_failed) < CODEC_FAILED_KEEP:
                    bits, channels, big_endian, is_float = fmt
                    res.codec_failed.append({"chunk": cid.hex(), "bytes": len(chunk),
                                             "bits": bits, "channels": channels,
                                             "big_endian": big_endian, "float": is_float})
            self._unadded.discard(cid)
            res.bytes_new += len(chunk)
            res.chunks_new += 1
            res.bytes_stored += nbytes
            self._stored.notify_all()

    def _forget_indexed(self, entries) -> None:
        """Once a pack is indexed its ids leave the pending set (keeps memory flat)."""
        with self._lock:
            for e in entries:
                self._pending.discard(e.id)

    def _wait_encodes(self) -> None:
        """Wait for the encodes submitted so far (not for those the next project adds)."""
        with self._lock:
            futs = list(self._enc_futures)
        for f in futs:
            f.exception()

    def _wait_borrowed(self, proj: _Project) -> None:
        """Wait until every chunk `proj` found claimed by another job is in a pack (the next
        flush makes it durable), or an encode failed."""
        with self._stored:
            while proj.borrowed & self._unadded and self._error is None:
                self._stored.wait(0.5)

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise self._error


class _OneChunk:
    """A segment no longer than the minimum chunk size: one chunk, read as it is (the
    `GuidedChunks` interface without its buffer, which costs more than such a file). With
    `to_eof` the file must end there: more or fewer bytes mean it changed under the reader."""

    __slots__ = ("_data",)

    def __init__(self, f, length: int, to_eof: bool) -> None:
        want = length + 1 if to_eof else length
        data = f.read(want)
        while len(data) < want:
            more = f.read(want - len(data))
            if not more:
                break
            data += more
        if len(data) != length:
            raise _Skip("changed while it was being read")
        self._data: bytes | None = data or None

    def next(self, expect: int = 0) -> tuple[bytes, bool] | None:
        # the bytes themselves: a batch keeps `bytes(chunk)`, which for bytes is no copy
        data, self._data = self._data, None
        return None if data is None else (data, False)

    def reject(self) -> None:  # never called: no guess is made
        raise AssertionError("a one-chunk segment makes no guess")


class _Guide:
    """A file's previous version: the chunk to expect next, and whether every chunk so far was
    that version's, in order (then its digest stands for this file's)."""

    __slots__ = ("ids", "lengths", "size", "digest", "next", "in_order", "_where")

    def __init__(self, ids: list[bytes], lengths: list[int], size: int, digest: str) -> None:
        self.ids, self.lengths, self.size, self.digest = ids, lengths, size, digest
        self.next = 0
        self.in_order = True
        self._where: dict[bytes, int] | None = None

    def expect(self) -> int:
        """Length of the chunk expected next, 0 for none."""
        return self.lengths[self.next] if 0 <= self.next < len(self.lengths) else 0

    def follow(self, cid: bytes, guessed: bool, k: int) -> bool:
        """Take chunk number `k` (id `cid`); False when it was a guess and a wrong one."""
        if guessed:
            if cid != self.ids[self.next]:
                self.next = -1
                return False
            j: int | None = self.next
        elif k < len(self.ids) and self.ids[k] == cid:
            j = k
        else:
            if self._where is None:
                self._where = {c: i for i, c in enumerate(self.ids)}
            j = self._where.get(cid)  # back in step after an edit (a punch-in, a longer header)
        if j != k:
            self.in_order = False
        self.next = -1 if j is None else j + 1
        return True

    def took_own(self) -> bool:
        """Whether the chunk just taken is one of the previous version's, which were all in the
        index when this guide was made (and a store only gains chunks)."""
        return self.next > 0


def _digest_prefix(f, digest: hashing.FileDigest, n: int, params: ChunkParams) -> None:
    """Feed the first `n` bytes of the open file to `digest` (read again: they were skipped)."""
    view = read_buffer(params)  # a pooled buffer: a fresh 4 MiB one per call faulted 1,024 pages
    off = 0
    while off < n:
        got = os.preadv(f.fileno(), [view[:min(len(view), n - off)]], off)
        if not got:
            raise _Skip("changed while it was being read")
        digest.update(view[:got])
        off += got


def _probe_audio(f, size: int):
    try:
        return probe_audio(f, size)
    except Exception:  # noqa: BLE001 - a parser bug must never stop an ingest; plain chunking is safe
        return None


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from a pack write or the index (which reports LMDB's full disk as ENOSPC:
    index.disk_full_error)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return ""
