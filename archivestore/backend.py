"""Storage backends: where a store's immutable objects live. A backend knows named files
(objects), not chunks: `put` publishes a finished local file atomically, `get` reads a byte range.

Object names are '/'-separated relative paths such as `packs/ab/ab12….pack` or `config.json`.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Iterator, Protocol

from .errors import ArchiveError, DamageError
from .locks import HOST, pid_alive

# tmp/<host>.<pid>.<32 hex><suffix>: hosts may contain dots, so parse from the right.
_TEMP_NAME = re.compile(r"^(?P<host>.+)\.(?P<pid>\d+)\.[0-9a-f]{32}\.")
# A temp file of another machine is only called abandoned once it is this old (its writer may
# still be running there: a pack takes seconds to write, never a day).
FOREIGN_TEMP_AGE = 24 * 3600


class Backend(Protocol):
    """The interface packs flow through; S3 or rclone backends implement the same calls."""

    def temp_path(self, suffix: str) -> Path: ...
    def put(self, name: str, src: Path) -> None: ...
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...
    def exists(self, name: str) -> bool: ...
    def size(self, name: str) -> int: ...
    def list(self, prefix: str) -> Iterator[tuple[str, int]]: ...


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """write → fsync → rename → fsync(dir): the file is either absent or complete."""
    tmp = path.with_name(f".{path.name}.{os.urandom(16).hex()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)  # a full disk leaves no half-written temp file behind
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def leftover_temps(root: Path) -> Iterator[tuple[Path, int]]:
    """(path, size) of files in `<root>/tmp/` whose writer is gone: same host and pid dead, an
    unparseable name, or another host's file older than FOREIGN_TEMP_AGE. `root` is the store's
    local folder (a remote store's cache folder)."""
    tmp = Path(root) / "tmp"
    if not tmp.is_dir():
        return
    me = os.getpid()
    for p in sorted(tmp.iterdir()):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue  # published or removed by its writer meanwhile
        m = _TEMP_NAME.match(p.name)
        if m is not None:
            pid = int(m["pid"])
            if m["host"] == HOST:
                if pid == me or pid_alive(pid):
                    continue
            elif time.time() - st.st_mtime < FOREIGN_TEMP_AGE:
                continue
        yield p, st.st_size


class LocalBackend:
    """A store in a local or mounted directory. Read descriptors are cached (LRU, 64)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._fds: dict[str, int] = {}
        self._busy: dict[int, int] = {}
        self._lock = threading.Lock()

    def temp_path(self, suffix: str) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        # host.pid in the name lets a later process tell a dead writer's leftovers from live ones
        return tmp / f"{HOST}.{os.getpid()}.{os.urandom(16).hex()}{suffix}"

    def put(self, name: str, src: Path) -> None:
        """Move a finished, fsync'd local file into place (never overwrites)."""
        dst = self.root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            raise ArchiveError(f"refusing to overwrite existing object {name}")
        os.rename(src, dst)
        fsync_dir(dst.parent)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        with self._lock:
            fd = self._fds.pop(name, None)
            if fd is None:
                try:
                    fd = os.open(self.root / name, os.O_RDONLY)
                except FileNotFoundError:
                    raise DamageError(f"{name} is missing") from None
            self._busy[fd] = self._busy.get(fd, 0) + 1
            self._fds[name] = fd  # most recently used last
        try:
            if length is None:
                length = os.fstat(fd).st_size - offset
            return os.pread(fd, length, offset)
        finally:
            with self._lock:
                self._busy[fd] -= 1
                if not self._busy[fd]:
                    del self._busy[fd]
                self._evict()

    def _evict(self) -> None:
        """Close least recently used descriptors that no thread is reading from."""
        if len(self._fds) <= 64:
            return
        for k in list(self._fds)[:32]:
            fd = self._fds[k]
            if fd not in self._busy:
                del self._fds[k]
                os.close(fd)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def size(self, name: str) -> int:
        try:
            return (self.root / name).stat().st_size
        except FileNotFoundError:
            raise DamageError(f"{name} is missing") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self.root / prefix
        if not base.is_dir():
            return
        for dirpath, dirs, files in os.walk(base):
            dirs.sort()
            for fn in sorted(files):
                p = Path(dirpath) / fn
                try:
                    yield p.relative_to(self.root).as_posix(), p.stat().st_size
                except FileNotFoundError:
                    continue

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def cache_dir() -> Path:
    """archivestore's local cache folder ($XDG_CACHE_HOME/archivestore, default ~/.cache/…)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archivestore"


def is_local_url(url: str | os.PathLike) -> bool:
    """True for a plain folder path, False for a `scheme:` remote such as `rclone:NAME:path`."""
    return not str(url).startswith(("rclone:", "s3://"))


def open_backend(url: str | os.PathLike) -> Backend:
    """The backend for a store address: a folder path, `rclone:REMOTE:path` or `s3://bucket/prefix`."""
    s = str(url)
    if s.startswith("s3://"):
        from .s3 import S3Backend
        return S3Backend(s)
    if s.startswith("rclone:"):
        from .remotes import RcloneBackend
        return RcloneBackend(s[len("rclone:"):])
    return LocalBackend(Path(s))
