"""Where a store lives: a local folder or an `s3://bucket/prefix` URL, and where its index goes.

The index (LMDB) must be on a local filesystem: LMDB's locking is unsafe on NFS/SMB, and an
object store has no files at all. For those stores the index lives in a local cache directory,
`$XDG_CACHE_HOME/archivestore/<store_id>/` (default `~/.cache/archivestore`), rebuilt from the
store when missing (docs/FORMAT.md section 5).
"""
from __future__ import annotations

import os
from pathlib import Path

# Filesystem types on which LMDB must not keep its lock and data files.
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs",
              "fuse.rclone", "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre"}


def is_url(location: str | os.PathLike) -> bool:
    return isinstance(location, str) and "://" in location


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archivestore"


def cache_dir(store_id: str) -> Path:
    """The local directory holding a remote or network store's index, temp files and locks."""
    d = cache_root() / store_id
    for sub in ("tmp", "locks"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    return d


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 …)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def fs_type(path: str | os.PathLike, mountinfo: str | None = None) -> str:
    """Filesystem type of the mount holding `path` (longest mount-point prefix wins).

    `mountinfo` is the text of /proc/self/mountinfo (read when None); '' if it cannot tell.
    """
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
                mountinfo = f.read()
        except OSError:
            return ""
    p = os.path.realpath(path)
    best, best_type = -1, ""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5 or not right.split():
            continue
        mnt = _unescape(fields[4])
        inside = p == mnt or mnt == "/" or p.startswith(mnt.rstrip("/") + "/")
        # later lines mount over earlier ones at the same point: >= keeps the last
        if inside and len(mnt) >= best:
            best, best_type = len(mnt), right.split()[0]
    return best_type


def on_network_fs(path: str | os.PathLike, mountinfo: str | None = None) -> bool:
    """True when `path` is on NFS, SMB/CIFS, sshfs or another network filesystem."""
    return fs_type(path, mountinfo) in NETWORK_FS


def open_backend(url: str, tmp_dir: Path | None = None):
    """The backend for a store URL (`s3://bucket/prefix`)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "s3":
        from .s3 import S3Backend
        return S3Backend(url, tmp_dir)
    from .errors import UsageError
    raise UsageError(f"{url}: unsupported store URL (use a folder or s3://bucket/prefix)")
