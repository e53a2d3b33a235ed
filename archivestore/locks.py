"""Store lock files (docs/FORMAT.md section 9): O_EXCL creation, owner recorded, stale detection.

They work on local disks and NAS mounts alike (no fcntl/flock, which SMB/NFS do unreliably).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .errors import LockedError

HOST = os.uname().nodename  # gethostname(2), without importing socket at every start


def _boot_id() -> str:
    """This boot of this machine ("" where the system does not say): a lock written in an
    earlier boot is stale whatever its pid now names."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT = _boot_id()
# Locks this process holds (path -> depth), so that taking one again nests instead of waiting.
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


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
        if info.get("host") != HOST:
            return False
        if BOOT and info.get("boot", BOOT) != BOOT:
            return True  # written before this machine restarted
        return not pid_alive(int(info.get("pid", 0)))

    def _break_stale(self, seen: dict | None) -> None:
        """Remove a stale lock, unless another process replaced it meanwhile.

        Two waiters may both find the same dead owner; without care the slower one would
        delete the lock the faster one just took. Breaking is itself serialised by an O_EXCL
        `<name>.lock.break` file, and the lock is re-read under it before it is removed.
        """
        breaker = self.path.with_name(self.path.name + ".break")
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:  # a breaker killed mid-break leaves this behind; it is held for microseconds
                if time.time() - breaker.stat().st_mtime > 10:
                    os.unlink(breaker)
            except FileNotFoundError:
                pass
            time.sleep(0.01)
            return
        os.close(fd)
        try:
            now = self.owner()
            if now == seen and self._is_stale(now):
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
        finally:
            os.unlink(breaker)

    def acquire(self) -> None:
        """Take the lock, waiting up to `timeout` seconds. Re-entrant within one process (e.g.
        `replicate` holds commit.lock while `Store.index_pack` takes it to bind versions)."""
        key = str(self.path)
        with _HELD_LOCK:
            if key in _HELD:
                _HELD[key] += 1
                self.held = True
                return
        deadline = time.monotonic() + self.timeout
        self.path.parent.mkdir(exist_ok=True)
        body = json.dumps({"host": HOST, "boot": BOOT, "pid": os.getpid(), "op": self.op,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = self.owner()
                if self._is_stale(info):
                    self._break_stale(info)
                    continue
                if time.monotonic() >= deadline:
                    who = (f"{info.get('host')}/pid {info.get('pid')} ({info.get('op')}) since "
                           f"{info.get('time')}") if info else "another process"
                    raise LockedError(f"store is locked by {who}; if that process is gone, "
                                      f"remove {self.path}") from None
                time.sleep(0.05)
                continue
            # Not fsync'd (a journal commit, 20-30 ms per ingested project): after a machine
            # crash the file is missing, empty (stale after 10 s) or whole (stale by its boot).
            try:
                os.write(fd, body)
            finally:
                os.close(fd)
            with _HELD_LOCK:
                _HELD[key] = 1
            self.held = True
            return

    def release(self) -> None:
        if self.held:
            self.held = False
            key = str(self.path)
            with _HELD_LOCK:
                _HELD[key] -= 1
                if _HELD[key]:
                    return
                del _HELD[key]
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "StoreLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
