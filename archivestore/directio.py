"""Sequential file writes that bypass the page cache (O_DIRECT) where the filesystem allows it.

Why: archive data is written once and not read back soon, so caching it only evicts the
user's working set, and every page a buffered write dirties costs a kernel copy into a fresh
page-cache page. On this project's reference machine (a VM whose freed memory goes back to the
host) that copy is first-touch memory: writing 1.26 GB buffered took 3.1 CPU-seconds in the
kernel and 3.6 s of wall time; with O_DIRECT, 0.06 CPU-s and 0.6 s (docs/DESIGN.md, "Session
5: writes that skip the page cache").

`DirectWriter` gathers writes into page-aligned buffers, hands each full buffer to an I/O
thread (up to QUEUE_DEPTH in flight, so the caller keeps encoding or decoding while the device
writes) and writes the last partial block without O_DIRECT. It writes through the page cache as
before where O_DIRECT is refused (EINVAL: some FUSE or older tmpfs mounts), on network
filesystems, and for files the caller knows to be small (`direct=False`); nothing else changes.
A write error fails the writer for good: no later write or close succeeds on a file with a hole.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import mmap
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from . import locations
from ._bulk import copy_into, populate

ALIGN = 4096  # O_DIRECT needs buffer address, file offset and length in multiples of this
BUF = 2 << 20  # one device write
QUEUE_DEPTH = 2  # writes in flight per writer, besides the buffer being filled (the default)
IO_THREADS = 16  # the shared I/O pool's bound; threads start only as writes need them
# ARCHIVESTORE_DIRECT_IO=0 writes through the page cache (for a filesystem where O_DIRECT is
# accepted but slow, and for measuring the difference).
_O_DIRECT = getattr(os, "O_DIRECT", 0) if os.environ.get("ARCHIVESTORE_DIRECT_IO", "1") != "0" else 0
_KEEP = 16  # free buffers kept for reuse: a new mmap is first-touch memory too

_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS

_free: list[mmap.mmap] = []
_free_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_buffer() -> mmap.mmap:
    with _free_lock:
        if _free:
            return _free.pop()
    # anonymous mappings are page aligned; populated in one call, every page of which is
    # written anyway: half the cost of faulting them in one by one (≈ 2.4 against 4.9 µs a page
    # on the build VM). Not by MAP_POPULATE: mmap.mmap holds the GIL through it.
    buf = mmap.mmap(-1, BUF, flags=_MAP_FLAGS)
    populate(buf)
    return buf


def _put_buffer(buf: mmap.mmap) -> None:
    with _free_lock:
        if len(_free) < _KEEP:
            _free.append(buf)
            return
    buf.close()


def _io_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="direct-io")
        return _pool


def _pwrite_all(fd: int, data, offset: int) -> None:
    mv = memoryview(data)
    while mv:
        n = os.pwrite(fd, mv, offset)
        if n <= 0:  # pragma: no cover - the kernel reports errors by raising
            raise OSError(errno.EIO, "short write")
        mv = mv[n:]
        offset += n


@functools.lru_cache(maxsize=256)
def _on_network_fs(folder: str) -> bool:
    """O_DIRECT on NFS or SMB turns every write into a synchronous round trip, and FUSE mounts
    differ in what they accept: network folders are written through the page cache."""
    return locations.on_network_fs(folder)


def _set_direct(fd: int, on: bool) -> bool:
    """Switch O_DIRECT on or off for fd; False when the filesystem refuses it."""
    if not _O_DIRECT:
        return False
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (fl | _O_DIRECT) if on else (fl & ~_O_DIRECT))
    except OSError as e:
        if e.errno == errno.EINVAL:
            return False
        raise
    return True


class DirectWriter:
    """A new file written front to back. `write` blocks on the device only when `depth`
    writes are already in flight; an error of a background write surfaces at the next `write`
    or at `close`, and at every call after. Not thread-safe: one writer per file, used by one
    thread at a time."""

    def __init__(self, path: str | os.PathLike, flags: int = os.O_CREAT | os.O_EXCL,
                 mode: int = 0o666, direct: bool = True, depth: int = QUEUE_DEPTH) -> None:
        """direct=False: plain writes through the page cache, for a file known to be small
        (an O_DIRECT write of a few KiB waits for the disk and saves nothing). `depth`: writes
        in flight before `write` waits (each holds a BUF-sized buffer)."""
        self._depth = max(1, depth)
        self.fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | flags, mode)
        try:
            self._direct = (direct and not _on_network_fs(os.path.dirname(os.fsdecode(path)))
                            and _set_direct(self.fd, True))
            self._buf = _get_buffer() if self._direct else None
        except BaseException:
            os.close(self.fd)
            raise
        self._pos = 0          # bytes accepted by write()
        self._disk = 0         # bytes handed to the kernel (a multiple of ALIGN while direct)
        self._fill = 0
        self._spare: list[mmap.mmap] = []  # written buffers, ready to fill again
        self._inflight: deque[Future] = deque()
        self._failed: BaseException | None = None  # the first write error: every later call raises it
        self.closed = False

    @property
    def direct(self) -> bool:
        """True while writes bypass the page cache."""
        return self._direct

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        """Take all of data (or raise: then the writer is failed, and every later write and
        close raises the same error, so a file with a hole in it is never completed)."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._write(data)
        except BaseException as e:
            self._failed = e
            raise

    def _write(self, data) -> int:
        mv = memoryview(data).cast("B")
        total = len(mv)
        self._pos += total
        if not self._direct:
            self._wait()
            self._drain()  # bytes gathered before a background write fell back
            _pwrite_all(self.fd, mv, self._disk)
            self._disk += total
            return total
        buf = self._buf
        while mv:
            n = min(len(mv), BUF - self._fill)
            copy_into(buf, self._fill, mv[:n])  # without the GIL: encoders and readers go on
            self._fill += n
            mv = mv[n:]
            if self._fill == BUF:
                self._submit()
                buf = self._buf
        return total

    def _submit(self) -> None:
        """Hand the full buffer to the I/O threads and go on filling another one. Up to
        `depth` writes are in flight (at their own offsets): one at a time left the
        virtual disk idle between them, and restore waited on it for 45% of its time."""
        if len(self._inflight) >= self._depth:
            self._wait(self._depth - 1)
        full, offset = self._buf, self._disk
        self._disk += BUF
        self._buf = self._spare.pop() if self._spare else _get_buffer()
        self._fill = 0

        def job() -> None:
            try:
                self._write_direct(full, BUF, offset)
            finally:
                self._spare.append(full)
        self._inflight.append(_io_pool().submit(job))

    def _write_direct(self, buf, length: int, offset: int) -> None:
        try:
            _pwrite_all(self.fd, memoryview(buf)[:length], offset)
        except OSError as e:
            # A filesystem may accept the flag and still refuse the write: go on buffered
            # (another write in flight may have switched already; switching is idempotent).
            if e.errno != errno.EINVAL:
                raise
            _set_direct(self.fd, False)
            self._direct = False
            _pwrite_all(self.fd, memoryview(buf)[:length], offset)

    def _drain(self) -> None:
        """Write the gathered bytes without O_DIRECT (the descriptor no longer has it)."""
        if self._fill:
            _pwrite_all(self.fd, memoryview(self._buf)[:self._fill], self._disk)
            self._disk += self._fill
            self._fill = 0

    def _wait(self, keep: int = 0) -> None:
        """Wait until at most `keep` writes are in flight; raise the first one's error."""
        while len(self._inflight) > keep:
            f = self._inflight[0]
            try:
                f.result()
            finally:
                if f.done():  # not after an interrupt: _release must still wait for it
                    self._inflight.popleft()

    def close(self, fsync: bool = False) -> None:
        """Write what is buffered (the last partial block through the page cache), optionally
        fsync, and close. On an error the descriptor is closed and the error raised."""
        if self.closed:
            if self._failed is not None:
                raise self._failed
            return
        try:
            if self._failed is not None:
                raise self._failed
            self._wait()
            if self._direct and self._fill >= ALIGN:
                head = self._fill & ~(ALIGN - 1)
                self._write_direct(self._buf, head, self._disk)
                self._disk += head
                self._fill -= head
                self._buf[:self._fill] = self._buf[head:head + self._fill]
            if self._fill:  # the last partial block goes through the page cache
                if self._direct:
                    _set_direct(self.fd, False)
                    self._direct = False
                self._drain()
            if fsync:
                os.fsync(self.fd)
        except BaseException as e:
            self._failed = self._failed or e
            raise
        finally:
            self._release()

    def abort(self) -> None:
        """Close without writing what is buffered; the caller removes the file."""
        if self.closed:
            return
        try:
            self._wait()
        except OSError:
            pass  # the file is being thrown away; the first error was or will be reported
        finally:
            self._release()

    def _release(self) -> None:
        self.closed = True
        interrupted: BaseException | None = None
        for f in self._inflight:
            # Every write in flight must end before the descriptor is closed (its number could
            # be reused by the next open, and the write would land there); an interrupt while
            # waiting is re-raised after, not lost.
            while True:
                try:
                    f.result()
                    break
                except BaseException as e:  # noqa: BLE001 - the job's own error, or an interrupt
                    if f.done():
                        break
                    interrupted = interrupted or e
        os.close(self.fd)
        for b in ([self._buf] if self._buf is not None else []) + self._spare:
            _put_buffer(b)
        self._buf, self._spare = None, []
        self._inflight.clear()
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> "DirectWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
