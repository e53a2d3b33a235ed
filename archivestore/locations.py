"""Whether a store folder is on a network filesystem, where its LMDB index must not live.

LMDB's locking is unsafe on NFS/SMB, so a store folder on one keeps its index in the local cache
directory of remote stores (`remotes.remote_cache_root`), shared with other machines through
index segments exactly as an S3 store does (docs/FORMAT.md section 14).
"""
from __future__ import annotations

import os

# Filesystem types on which LMDB must not keep its lock and data files.
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs",
              "fuse.rclone", "ceph", "fuse.ceph", "glusterfs", "fuse.glusterfs", "lustre"}


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 …)."""
    if "\\" not in field:
        return field
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
