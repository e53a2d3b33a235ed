"""Shared CLI pieces: the --store/--json options, error mapping, human units, progress."""
from __future__ import annotations

import functools
import json
import os
import re
import sys
import threading
import time
from typing import Any, Callable

import click
import lmdb

from ..errors import EXIT_OPERATIONAL, ArchiveError, UsageError
from ..store import Store


class OneLineUsageError(click.ClickException):
    """A usage error shown as one line (click's default is usage, hint and message)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"archive: error: {self.format_message()}", err=True)


class ArchiveGroup(click.Group):
    """The `archive` group: argument errors of any subcommand become one line, exit 2."""

    @staticmethod
    def _one_line(e: click.UsageError) -> OneLineUsageError:
        where = e.ctx.command_path if e.ctx is not None else "archive"
        msg = " ".join(e.format_message().split())
        return OneLineUsageError(f"{where}: {msg} (see: {where} --help)")

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            raise self._one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            raise self._one_line(e) from None


def store_option(f):
    return click.option("--store", "-s", "store_path", envvar="ARCHIVE_STORE", metavar="PATH",
                        help="Store folder (default: $ARCHIVE_STORE).")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print exactly one JSON object on stdout, nothing else.")(f)


def quiet_option(f):
    f = click.option("-q", "--quiet", is_flag=True, help="No progress, only errors and the result.")(f)
    return click.option("-v", "--verbose", count=True, help="More detail.")(f)


def open_store(path: str | None, fresh_index: bool = False) -> Store:
    if not path:
        raise UsageError("no store given: pass --store PATH or set ARCHIVE_STORE")
    return Store.open(path, fresh_index=fresh_index)


def run(fn: Callable) -> Callable:
    """Map every failure to a one-line message and an exit code (never a traceback)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArchiveError as e:
            click.echo(f"archive: error: {e}", err=True)
            sys.exit(e.exit_code)
        except lmdb.Error as e:  # the index file itself is damaged (pages, not packs)
            click.echo(f"archive: error: the index is damaged ({e}); rebuild it from the packs "
                       f"with: archive fsck --rebuild-index", err=True)
            sys.exit(EXIT_OPERATIONAL)
        except KeyboardInterrupt:
            click.echo("archive: interrupted; the store is unchanged by the unfinished work", err=True)
            sys.exit(130)
        except OSError as e:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            click.echo(f"archive: error: {e.strerror or e}{where}", err=True)
            sys.exit(EXIT_OPERATIONAL)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as e:  # noqa: BLE001 - last resort: still one line, still non-zero
            click.echo(f"archive: internal error: {type(e).__name__}: {e} "
                       f"(please report this)", err=True)
            sys.exit(EXIT_OPERATIONAL)
    return wrapper


_SURROGATE = re.compile("[\udc80-\udcff]")


def emit_json(obj: Any) -> None:
    """One JSON object on stdout. Names that are not UTF-8 (kept as surrogate escapes) are
    written as `\\udcXX` escapes: valid JSON that decodes back to the same str."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=False)
    click.echo(_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def human(n: float) -> str:
    """Bytes in human units: 2.1 GB, 230 MB, 512 B (decimal, as drives are sold)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int | None, label: str, enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.current = ""
        self.enabled = enabled and sys.stderr.isatty()
        self._t0 = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: dict) -> None:
        with self._lock:
            self.done += event.get("bytes", 0)
            self.current = event.get("file") or event.get("pack") or self.current
            now = time.monotonic()
            if self.enabled and now - self._last > 0.1:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        el = max(now - self._t0, 1e-6)
        rate = self.done / el
        width = 24
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            eta = (self.total - self.done) / rate if rate > 0 else 0
            head = f"{self.label} [{bar}] {human(self.done)}/{human(self.total)} {human(rate)}/s ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        else:
            head = f"{self.label} {human(self.done)} {human(rate)}/s"
        cols = _term_width()
        room = cols - len(head) - 3
        cur = self.current if len(self.current) <= room else "…" + self.current[-(room - 1):] if room > 1 else ""
        sys.stderr.write("\r\x1b[2K" + (head + "  " + cur)[:cols - 1])
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def _term_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 100


def tree_size(path: str) -> int:
    """Bytes of regular files under `path` (for a progress total; never follows links)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o100000:
                total += st.st_size
    return total
