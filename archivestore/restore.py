"""Restore: write a version's files back, byte-identical and verified.

Every chunk is verified against its id as it is read and every file against its whole-file
digest before it gets its final name; a file that fails is removed (never left with wrong
bytes) and named in the result, while the rest of the version is still restored.
Chunk reads and decodes run on a small thread pool ahead of the writer.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from . import hashing
from .directio import DirectWriter
from .errors import DamageError, FormatError, UsageError
from .index import Location
from .snapshots import path_selected, validate_entry
from .store import Store

READ_AHEAD = 8
LOOKUP_BATCH = 64  # chunk locations looked up at once (a file's next 64 MiB or so)
WORKERS = 2
FILE_WRITERS = 2  # files written at once (each with its own read-ahead window)
# Files smaller than DIRECT_MIN are written through the page cache (an O_DIRECT write of a few
# KiB waits for the disk and saves nothing); files smaller than INLINE_FILE are restored by the
# calling thread: handing their one chunk to a pool thread and back cost more (GIL and futex
# hand-offs) than decoding it. 10,000 fades of 2-20 KB: 4.8-5.8 s before, 1.2-1.6 s after, restic
# 1.4-1.6 s (tmpfs target).
DIRECT_MIN = 1 << 20
INLINE_FILE = 64 << 10


@dataclass
class RestoreResult:
    """The outcome of one restore (`ok` when every file verified)."""

    project: str
    version: int
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0   # files among `files` restored as a hard link to another one
    bytes: int = 0
    seconds: float = 0.0
    failed: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        return {"project": self.project, "version": self.version, "files": self.files,
                "bytes": self.bytes, "seconds": round(self.seconds, 3), "dirs": self.dirs,
                "symlinks": self.symlinks, "hardlinks": self.hardlinks, "ok": self.ok,
                "failed": self.failed}


@dataclass
class _Job:
    """One version in a restore run, from its checked entries to its result."""

    res: RestoreResult
    root: str
    entries: list[dict]
    overwrite: bool
    t0: float
    dirs: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    futures: list[Future | None] = field(default_factory=list)
    done: list[bool | None] = field(default_factory=list)


class Restorer:
    """Restores versions from `store`; `progress(event)` gets {"project", "file", "bytes"}
    dicts."""

    def __init__(self, store: Store, progress: Callable[[dict], None] | None = None) -> None:
        self.store = store
        self.progress = progress
        self._res_lock = threading.Lock()
        self._safe_dirs: set[str] = set()  # target folders proven free of symlinks, and made

    def restore(self, project: str, target: str | os.PathLike, version: int | None = None,
                paths: Iterable[str] = (), overwrite: bool = False) -> RestoreResult:
        """Restore one version of `project` (default: the latest) into `target`."""
        return list(self.restore_many([(project, target, version, paths)], overwrite))[0]

    def restore_many(self, jobs: Iterable[tuple[str, str | os.PathLike, int | None, Iterable[str]]],
                     overwrite: bool = False) -> Iterator[RestoreResult]:
        """Restore versions, each (project, target, version or None, paths), in one pipeline:
        the next one's files start while the last files of the one before are written (with
        `restore --all`, each project's end left a writer idle). Yields each result once its
        version is restored, in order; an error stops the run there, after the version in
        progress is finished."""
        self._safe_dirs = set()
        # remote backends hide per-request latency behind more reads in flight
        self._workers = getattr(self.store.backend, "read_parallelism", WORKERS)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="restore")
        writers = ThreadPoolExecutor(FILE_WRITERS, thread_name_prefix="restore-file")
        prev: _Job | None = None
        try:
            for project, target, version, paths in jobs:
                try:
                    job = self._prepare(project, target, version, paths, overwrite)
                    self._start(job, writers)
                except BaseException:  # the version before is finished and reported first
                    if prev is not None:
                        yield self._finish(prev)
                    raise
                if prev is not None:
                    yield self._finish(prev)
                prev = job
            if prev is not None:
                yield self._finish(prev)
        finally:
            # stopped early (an error, or the caller stopped iterating): no file starts any
            # more, and those being written end cleanly (verified and renamed, or removed)
            writers.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True)

    def _prepare(self, project: str, target: str | os.PathLike, version: int | None,
                 paths: Iterable[str], overwrite: bool) -> "_Job":
        """A version's entries, checked before anything of it is written."""
        t0 = time.monotonic()
        number, record = self.store.version(project, version)
        res = RestoreResult(project=project, version=number)
        target = Path(target)
        paths = list(paths)
        if target.exists() and not target.is_dir():
            raise UsageError(f"{target} exists and is not a folder")
        target.mkdir(parents=True, exist_ok=True)
        root = os.path.realpath(target)
        matched: set[str] = set()
        entries = []
        for e in self.store.iter_tree(record):
            hit = [p for p in paths if path_selected(e["path"], [p])]
            if paths and not hit:
                continue
            entries.append(e)
            matched.update(hit)
        _refuse_paths_through_links(entries)
        missing = [p for p in paths if p not in matched]
        if missing:
            raise UsageError(f"not in {project} version {number}: {', '.join(missing)}")
        if not overwrite:
            clash = [e["path"] for e in entries if e["type"] != "dir"
                     and os.path.lexists(self._dest(root, e["path"]))]
            if clash:
                more = f" and {len(clash) - 1} more" if len(clash) > 1 else ""
                raise UsageError(f"{self._dest(root, clash[0])} exists{more}; "
                                 f"restore into an empty folder or pass --overwrite")
        return _Job(res=res, root=root, entries=entries, overwrite=overwrite, t0=t0)

    def _start(self, job: "_Job", writers: ThreadPoolExecutor) -> None:
        """Make the folders, hand the files of INLINE_FILE bytes and more to the writers
        (FILE_WRITERS at a time: one at a time left the decoders idle at every file's end) and
        restore the smaller ones on this thread meanwhile."""
        root, res = job.root, job.res
        job.dirs = [e for e in job.entries if e["type"] == "dir"]
        for e in job.dirs:
            self._make_dir(root, e, res)
        # a hard link's first name may sort later: links come after every file (_finish)
        job.files = [e for e in job.entries if e["type"] == "file" and "hardlink" not in e]
        job.futures = [writers.submit(self._restore_file, root, e, res)
                       if _size(e) >= INLINE_FILE else None for e in job.files]
        job.done = [self._restore_file(root, e, res) if f is None else None
                    for e, f in zip(job.files, job.futures)]

    def _finish(self, job: "_Job") -> RestoreResult:
        """Wait for a version's files, then its hard links, symlinks and folder times."""
        root, res, entries = job.root, job.res, job.entries
        # on an error restore_many's shutdown cancels the files not yet started
        oks = [d if f is None else f.result() for d, f in zip(job.done, job.futures)]
        restored = {e["path"]: e for e, ok in zip(job.files, oks) if ok}  # verified
        for e in entries:
            if e["type"] == "file" and "hardlink" in e:
                first = restored.get(e["hardlink"])
                if (first is not None and self._link(root, first, e, res)) or \
                        self._restore_file(root, e, res):
                    restored[e["path"]] = e
        for e in entries:
            if e["type"] == "symlink":
                self._make_symlink(root, e, res, job.overwrite)
        for e in sorted(job.dirs, key=lambda d: d["path"].count("/"), reverse=True):
            d = self._dest(root, e["path"])
            os.chmod(d, e["mode"])
            os.utime(d, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=False)
        res.seconds = time.monotonic() - job.t0
        return res

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _dest(root: str, rel: str) -> str:
        return os.path.join(root, *rel.split("/"))

    def _safe_parent(self, root: str, rel: str) -> str:
        """The destination path, after proving no existing parent is a symlink out of root.
        A parent proven once (and created, by the callers) is not walked again in this run:
        for a folder of 200 fades that walk was most of the system calls per file."""
        dest = self._dest(root, rel)
        parent = os.path.dirname(dest)
        if parent in self._safe_dirs:
            return dest
        real = os.path.realpath(parent)
        if real != root and not real.startswith(root + os.sep):
            raise FormatError(f"{rel}: would be written outside the target through a symlink")
        cur = parent
        while len(cur) > len(root):
            if os.path.islink(cur):
                raise FormatError(f"{rel}: a parent folder in the target is a symlink")
            cur = os.path.dirname(cur)
        return dest

    def _make_parent(self, dest: str) -> None:
        parent = os.path.dirname(dest)
        if parent not in self._safe_dirs:
            os.makedirs(parent, exist_ok=True)
            with self._res_lock:
                self._safe_dirs.add(parent)

    def _make_dir(self, root: str, e: dict, res: RestoreResult) -> None:
        validate_entry(e)
        dest = self._safe_parent(root, e["path"])
        if os.path.islink(dest):
            raise FormatError(f"{e['path']}: target folder is a symlink")
        os.makedirs(dest, exist_ok=True)
        with self._res_lock:
            self._safe_dirs.add(dest)
        os.chmod(dest, 0o700 | e["mode"])
        res.dirs += 1

    def _make_symlink(self, root: str, e: dict, res: RestoreResult, overwrite: bool) -> None:
        validate_entry(e)
        dest = self._safe_parent(root, e["path"])
        if overwrite and os.path.lexists(dest) and not os.path.isdir(dest):
            os.unlink(dest)
        os.symlink(e["target"], dest)
        os.utime(dest, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=False)
        res.symlinks += 1

    def _link(self, root: str, first: dict, e: dict, res: RestoreResult) -> bool:
        """Restore `e` as a hard link to `first`, a file this run restored and verified, when
        both entries record the same bytes and inode attributes (the source was one inode);
        False leaves `e` to be written as a file of its own (also on a filesystem without
        hard links)."""
        if any(first.get(k) != e.get(k)
               for k in ("digest", "digest_alg", "size", "mode", "mtime_ns")):
            return False
        validate_entry(e)
        dest = self._safe_parent(root, e["path"])
        self._make_parent(dest)
        tmp = self._partial(dest)
        try:
            os.link(self._dest(root, first["path"]), tmp, follow_symlinks=False)
        except OSError:
            return False
        if os.path.isdir(dest) and not os.path.islink(dest):
            _unlink(tmp)
            raise UsageError(f"{dest} is a folder; cannot restore a file over it")
        os.replace(tmp, dest)
        res.files += 1
        res.hardlinks += 1
        return True

    @staticmethod
    def _partial(dest: str) -> str:
        """A temp name beside `dest` (names are limited in bytes, 255: shorten the encoded one)."""
        short = os.fsdecode(os.fsencode(os.path.basename(dest))[:200])
        return os.path.join(os.path.dirname(dest), f".{short}.{uuid.uuid4().hex[:8]}.partial")

    def _located(self, chunks: list[str]) -> Iterator[tuple[bytes, Location | None]]:
        """(id, location or None) of each chunk, looked up LOOKUP_BATCH at a time: one read
        transaction and one chunk-table search a batch instead of one a chunk (≈ 0.1 ms of
        Python under the GIL each). Packs are never rewritten, so a location stays good."""
        for i in range(0, len(chunks), LOOKUP_BATCH):
            ids = [bytes.fromhex(h) for h in chunks[i:i + LOOKUP_BATCH]]
            yield from zip(ids, self.store.index.lookup_many(ids))

    def _restore_file(self, root: str, e: dict, res: RestoreResult) -> bool:
        """Write one file (False when its chunks or digest failed: named in `res.failed`)."""
        validate_entry(e)
        rel = e["path"]
        dest = self._safe_parent(root, rel)
        self._make_parent(dest)
        tmp = self._partial(dest)
        digest = hashing.file_digest(e)  # XXH3-128, or BLAKE3-256 for older versions
        written = 0
        window: deque = deque()
        ids = self._located(e["chunks"])
        small = e["size"] < INLINE_FILE  # its chunks are fetched by this thread
        try:
            # Restored files are written around the page cache (directio.py): a studio restores
            # more than fits in memory, and the kernel's copy into fresh pages cost more CPU here
            # than decoding did.
            out = DirectWriter(tmp, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                              direct=e["size"] >= DIRECT_MIN)
            try:
                def fill() -> None:
                    while len(window) < max(READ_AHEAD, 2 * self._workers):
                        got = next(ids, None)
                        if got is None:
                            return
                        if small:
                            window.append(f := Future())
                            f.set_result(self.store.read_location(*got))
                        else:
                            window.append(self._pool.submit(self.store.read_location, *got))
                fill()
                while window:
                    data = window.popleft().result()
                    fill()
                    digest.update(data)
                    out.write(data)
                    written += len(data)
                    if self.progress:
                        self.progress({"project": res.project, "file": rel, "bytes": len(data)})
            except BaseException:
                out.abort()
                raise
            out.close()
            if written != e["size"] or digest.hexdigest() != e.get("digest"):
                raise DamageError(f"{rel}: restored bytes do not match the recorded digest")
            os.chmod(tmp, e["mode"])
            os.utime(tmp, ns=(e["mtime_ns"], e["mtime_ns"]))
            if os.path.isdir(dest) and not os.path.islink(dest):
                raise UsageError(f"{dest} is a folder; cannot restore a file over it")
            os.replace(tmp, dest)
        except (DamageError, FormatError) as exc:
            for f in window:
                f.cancel()
            _unlink(tmp)
            with self._res_lock:
                res.failed.append({"path": rel, "error": str(exc)})
            return False
        except BaseException:
            for f in window:
                f.cancel()
            _unlink(tmp)
            raise
        with self._res_lock:
            res.files += 1
            res.bytes += written
        return True


def _refuse_paths_through_links(entries: list[dict]) -> None:
    """docs/FORMAT.md 6.1: no entry may lie under a symlink the same restore creates (it would
    be written wherever the link points). Checked before anything is written."""
    links = {e["path"] for e in entries if e["type"] == "symlink"}
    if not links:
        return
    for e in entries:
        parts = e["path"].split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise FormatError(f"manifest path {e['path']!r} lies under the symlink "
                                  f"{'/'.join(parts[:i])!r}; refusing to restore this version")


def _size(e: dict) -> int:
    """An entry's size for scheduling, before validate_entry has looked at it."""
    n = e.get("size")
    return n if isinstance(n, int) else 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

