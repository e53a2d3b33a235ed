"""Remote stores: a store whose objects live on an rclone remote (`rclone:REMOTE:path`).

The real `rclone` program moves the bytes, so every remote rclone supports (SFTP, S3, B2, Drive,
a local path …) can hold a replica. Objects are immutable, so calls are few and coarse: one
`lsjson -R` lists every pack, one `copyto` + `moveto` publishes a pack, `cat --offset --count`
reads a small range, and a read of more than `WHOLE_READ` bytes fetches the whole object once
into a small local cache that later reads of the same pack are served from.

A remote store keeps its index (and tmp/, locks/) in the local cache folder
`$XDG_CACHE_HOME/archivestore/remotes/<store_id>/`, rebuilt from the remote's packs when missing.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

from .backend import FOREIGN_TEMP_AGE, Backend, cache_dir
from .errors import ArchiveError, DamageError, StoreNotFound

# Reads up to this size use `rclone cat --offset --count`; larger ones fetch the whole object
# (a restore reads most blobs of a pack, ~1 MiB each: one download beats 32 rclone calls).
WHOLE_READ = 256 * 1024
# A read that ends at the object's end (a pack footer, or an encrypted pack's last segments)
# uses `cat` up to this size: indexing a remote must not download every pack.
TAIL_READ = 4 * 1024 * 1024
CACHED_OBJECTS = 4  # whole packs kept locally per backend (4 x 32 MiB)
# An object known (from a listing) to be at most this big is fetched whole on its first read:
# one call instead of one per blob (each rclone call costs ~0.1 s of process start-up).
WHOLE_OBJECT = 4 * 1024 * 1024


def rclone_exe() -> str:
    exe = shutil.which("rclone")
    if exe is None:
        raise ArchiveError("rclone is not installed (Debian: apt install rclone)")
    return exe


class RcloneBackend:
    """Objects under `REMOTE:path`, moved by the `rclone` program."""

    def __init__(self, spec: str) -> None:
        if ":" not in spec:
            raise ArchiveError(f"bad rclone address {spec!r}: expected rclone:REMOTE:path")
        self.spec = spec.rstrip("/")
        self._tmp = Path(tempfile.mkdtemp(prefix="rclone-", dir=_mkdir(cache_dir() / "tmp")))
        self._cache: OrderedDict[str, Path] = OrderedDict()
        self._sizes: dict[str, int] = {}  # objects are immutable: a size once seen stays true
        self._lock = threading.Lock()
        self.calls = 0  # rclone invocations (tests and benchmarks read it)

    def _path(self, name: str) -> str:
        return f"{self.spec}/{name}" if name else self.spec

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        self.calls += 1
        p = subprocess.run([rclone_exe(), *args], capture_output=True)
        if check and p.returncode != 0:
            msg = p.stderr.decode(errors="replace").strip().splitlines()
            raise ArchiveError(f"rclone {args[0]} failed: {msg[-1] if msg else p.returncode}")
        return p

    def temp_path(self, suffix: str) -> Path:
        return self._tmp / f"{uuid.uuid4().hex}{suffix}"

    def put(self, name: str, src: Path) -> None:
        """Upload under a temporary name, then rename into place: a reader never sees half."""
        tmp = f"tmp/{uuid.uuid4().hex}.part"
        self._run("copyto", str(src), self._path(tmp))
        size = os.path.getsize(src)
        self._run("moveto", "--immutable", self._path(tmp), self._path(name))
        self._sizes[name] = size
        os.unlink(src)

    def leftover_parts(self) -> Iterator[tuple[str, int]]:
        """(name, size) of `tmp/*.part` uploads whose writer was killed between copy and rename.
        The name says nothing of the writer (any machine may upload), so only parts older than
        FOREIGN_TEMP_AGE count: an upload renames its part within minutes."""
        p = self._run("lsjson", "--files-only", "--no-mimetype", self._path("tmp"), check=False)
        if p.returncode != 0:
            return  # no tmp/ folder: nothing was ever left there
        now = time.time()
        for item in json.loads(p.stdout or b"[]"):
            name = item.get("Name", "")
            try:
                mtime = _dt.datetime.fromisoformat(item["ModTime"]).timestamp()
            except (KeyError, ValueError):
                continue  # an unreadable time: leave it rather than guess
            if name.endswith(".part") and now - mtime >= FOREIGN_TEMP_AGE:
                yield f"tmp/{name}", int(item.get("Size", 0))

    def remove_part(self, name: str) -> None:
        """Delete one abandoned upload (`leftover_parts`); never anything outside tmp/."""
        if not (name.startswith("tmp/") and name.endswith(".part") and "/" not in name[4:]):
            raise ArchiveError(f"refusing to delete {name}: not an upload part")
        self._run("deletefile", self._path(name), check=False)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        f = self._open_cached(name)
        if f is None:
            known = self._sizes.get(name)
            small = known is not None and known <= WHOLE_OBJECT
            tail = known is not None and length is not None and offset + length >= known
            if length is not None and not small and (
                    length <= WHOLE_READ or (tail and length <= TAIL_READ)):
                p = self._run("cat", "--offset", str(offset), "--count", str(length),
                              self._path(name), check=False)
                if p.returncode != 0:
                    raise DamageError(f"{name} is missing or unreadable on {self.spec}")
                return p.stdout
            f = self._fetch(name)
        with f:  # an open file stays readable even if another thread evicts it meanwhile
            f.seek(offset)
            return f.read(-1 if length is None else length)

    def _open_cached(self, name: str):
        with self._lock:
            local = self._cache.get(name)
            if local is None:
                return None
            self._cache.move_to_end(name)
            return open(local, "rb")

    def _fetch(self, name: str):
        """Download a whole object into the local cache; an open file on it."""
        dst = self.temp_path(".obj")
        p = self._run("copyto", self._path(name), str(dst), check=False)
        if p.returncode != 0 or not dst.exists():
            raise DamageError(f"{name} is missing or unreadable on {self.spec}")
        f = open(dst, "rb")
        with self._lock:
            old = self._cache.pop(name, None)  # fetched concurrently by another thread
            if old is not None:
                old.unlink(missing_ok=True)
            self._cache[name] = dst
            while len(self._cache) > CACHED_OBJECTS:
                _k, gone = self._cache.popitem(last=False)
                gone.unlink(missing_ok=True)
        return f

    def _stat(self, name: str) -> int | None:
        if name in self._sizes:
            return self._sizes[name]
        p = self._run("lsjson", "--files-only", "--no-mimetype", "--no-modtime",
                      self._path(name), check=False)
        if p.returncode != 0:
            return None
        items = json.loads(p.stdout or b"[]")
        if not items:
            return None
        self._sizes[name] = int(items[0]["Size"])
        return self._sizes[name]

    def exists(self, name: str) -> bool:
        return self._stat(name) is not None

    def size(self, name: str) -> int:
        n = self._stat(name)
        if n is None:
            raise DamageError(f"{name} is missing on {self.spec}")
        return n

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        p = self._run("lsjson", "-R", "--files-only", "--no-mimetype", "--no-modtime",
                      self._path(prefix), check=False)
        if p.returncode != 0:
            return  # the folder does not exist yet
        for item in sorted(json.loads(p.stdout or b"[]"), key=lambda i: i["Path"]):
            name, size = f"{prefix}/{item['Path']}", int(item["Size"])
            self._sizes[name] = size
            yield name, size

    def root_exists(self) -> bool:
        return self._run("lsjson", "--max-depth", "1", self._path(""), check=False).returncode == 0

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._cache.clear()


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def remote_cache_root(store_id: str) -> Path:
    """Local folder holding a remote (or encrypted) store's index, tmp/ and locks/."""
    root = cache_dir() / "remotes" / store_id
    for d in ("index", "tmp", "locks"):
        _mkdir(root / d)
    return root


def attach_remote(backend: Backend, config: dict) -> tuple[Backend, Path]:
    """Wrap `backend` for an encrypted store and pick the local cache folder for its index."""
    sid = config.get("store_id")
    if not isinstance(sid, str) or len(sid) != 32 or not all(c in "0123456789abcdef" for c in sid):
        raise StoreNotFound("store config has no valid store_id")
    if "encryption" in config:
        from .encryption import EncryptedBackend
        backend = EncryptedBackend(backend, config["encryption"])
    return backend, remote_cache_root(sid)


__all__ = ["RcloneBackend", "attach_remote", "remote_cache_root"]
