"""Store lock files (docs/FORMAT.md section 9): O_EXCL creation, owner recorded, stale detection.

They work on local disks and NAS mounts alike (no fcntl/flock, which SMB/NFS do unreliably).
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import LockedError

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreLock:
    """An exclusive named lock in `<store>/locks/`; waits up to `timeout` seconds."""

    def __init__(self, root: Path, name: str, op: str, timeout: float = 120.0) -> None:
        self.path = Path(root) / "locks" / f"{name}.lock"
        self.op = op
        self.timeout = timeout
        self.held = False

    def owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None

    def _is_stale(self, info: dict | None) -> bool:
        if info is None:
            # Unreadable or half-written: stale once it is older than a few seconds.
            try:
                return time.time() - self.path.stat().st_mtime > 10
            except FileNotFoundError:
                return True
        return info.get("host") == HOST and not pid_alive(int(info.get("pid", 0)))

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        self.path.parent.mkdir(exist_ok=True)
        body = json.dumps({"host": HOST, "pid": os.getpid(), "op": self.op,
                           "time": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = self.owner()
                if self._is_stale(info):
                    try:
                        os.unlink(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                if time.monotonic() >= deadline:
                    who = (f"{info.get('host')}/pid {info.get('pid')} ({info.get('op')}) since "
                           f"{info.get('time')}") if info else "another process"
                    raise LockedError(f"store is locked by {who}; if that process is gone, "
                                      f"remove {self.path}") from None
                time.sleep(0.05)
                continue
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return

    def release(self) -> None:
        if self.held:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "StoreLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
