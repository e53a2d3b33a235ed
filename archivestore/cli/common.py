"""Shared CLI pieces: the --store/--json options, error mapping, human units, progress."""
from __future__ import annotations

import errno
import functools
import importlib
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
    """The `archive` group: argument errors of any subcommand become one line, exit 2.

    lazy_commands maps command names to the module of this package that registers them; a
    module is imported the first time one of its commands is looked up."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def get_command(self, ctx, cmd_name):
        module = self.lazy_commands.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"{__package__}.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx):
        return sorted(set(self.commands) | set(self.lazy_commands))

    def all_commands(self) -> dict[str, click.Command]:
        """Every command, each module imported (for what must see them all: the config file)."""
        for name in self.lazy_commands:
            self.get_command(None, name)
        return self.commands

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
                        help="Store folder (default: $ARCHIVE_STORE, then the config file).")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print exactly one JSON object on stdout, nothing else.")(f)


def quiet_option(f):
    f = click.option("-q", "--quiet", is_flag=True, help="No progress, only errors and the result.")(f)
    return click.option("-v", "--verbose", count=True, help="More detail.")(f)


def complete_project(ctx: click.Context, _param, incomplete: str) -> list:
    """Shell completion of project names from the store in --store, ARCHIVE_STORE or config."""
    path = ctx.params.get("store_path") or os.environ.get("ARCHIVE_STORE")
    if not path:
        try:
            from .. import config
            path = config.load().get("store")
        except Exception:  # noqa: BLE001 - completion must never fail loudly
            return []
    try:
        with Store.open(path) as st:
            names = st.projects()
    except Exception:  # noqa: BLE001
        return []
    low = incomplete.casefold()
    return [n for n in names if n.casefold().startswith(low)]


def open_store(path: str | None, fresh_index: bool = False) -> Store:
    if not path:
        raise UsageError("no store given: pass --store PATH, set ARCHIVE_STORE, or put "
                         "store = \"PATH\" in ~/.config/archivestore/config.toml")
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
        except BrokenPipeError:
            # `archive find … | head`: the reader has what it wanted; stop quietly, as cat does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except OSError as e:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            hint = _OS_HINTS.get(e.errno, "")
            click.echo(f"archive: error: {e.strerror or e}{where}{hint}", err=True)
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


_OS_HINTS = {
    errno.ENOSPC: "; free some space there (or archive to a bigger volume) and run the command "
                  "again: the store is unchanged by the unfinished work",
    errno.EACCES: "; check the permissions of that file or folder for the user running archive",
    errno.EPERM: "; check the permissions of that file or folder for the user running archive",
    errno.EROFS: "; the volume is mounted read-only: remount it writable",
    errno.ENOENT: "; check that the path is right and the volume is mounted",
    errno.EIO: "; the disk reported a read/write error: check the drive and its cabling, then run "
               "archive fsck --read-data",
    errno.ESTALE: "; the network share went away: remount it and run the command again",
}


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
    """Progress of a long operation on stderr: bar, bytes done, MB/s, ETA and the current file.

    Drawn only when the stream is a terminal (never into pipes, cron mail or --json output),
    at most every `interval` seconds, fitted to the terminal's width on every redraw, and
    written as one `\\r…\\x1b[K` per redraw so the line never flickers. `close()` clears it.
    With `verbose`, each file is also named on its own line as work on it starts (terminal or
    not). Thread-safe: components call it from their worker threads with {"file"|"pack",
    "bytes"} events; with `by_project` (a run over several projects) a file is named under the
    event's "project".
    """

    # Rate (and so ETA) over the last few seconds, so a slow NAS patch shows up quickly.
    RATE_WINDOW = 5.0

    def __init__(self, total: int | None | Callable[[], int | None], label: str,
                 enabled: bool = True, verbose: int = 0, stream=None,
                 interval: float = 0.125, by_project: bool = False) -> None:
        """total: bytes to do, or a function that counts them (a walk of the source folder),
        called only when the bar will be drawn: with --json or in a pipe nobody sees it."""
        self.stream = stream or sys.stderr
        self.label = label
        self.done = 0
        self.current = ""
        self.enabled = enabled and _isatty(self.stream)
        self.total = (total() if self.enabled else None) if callable(total) else total
        self.verbose = verbose if enabled else 0
        self.interval = interval
        self.by_project = by_project
        self._t0 = time.monotonic()
        self._last = 0.0
        self._samples: list[tuple[float, int]] = [(self._t0, 0)]
        self._shown = 0           # length of the line on screen (for terminals without \x1b[K)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        enc = (getattr(self.stream, "encoding", None) or "").lower()
        self._unicode = enc.startswith("utf")
        self._ansi = os.environ.get("TERM", "") != "dumb"

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, event: dict) -> None:
        with self._lock:
            self.done += event.get("bytes", 0)
            name = event.get("file")
            if name and self.by_project:
                name = f"{event['project']}/{name}"
            name = name or (f"pack {event['pack']}" if event.get("pack") else None)
            if name:
                if self.verbose and name not in self._seen:
                    self._seen.add(name)
                    self._print(f"  {name}")
                self.current = name
            now = time.monotonic()
            if self.enabled and (not self._last or now - self._last >= self.interval):
                self._last = now
                self._draw(now)

    def log(self, line: str) -> None:
        """Print a line above the bar (the bar is redrawn on the next event)."""
        with self._lock:
            self._print(line)

    def echo(self, out: list[str], err: list[str] = ()) -> None:
        """Print lines to stdout and stderr above the bar (redrawn on the next event)."""
        with self._lock:
            if self.enabled:
                self._clear()
                self.stream.flush()
            for line in out:
                click.echo(line)
            for line in err:
                click.echo(line, err=True)

    def _print(self, line: str) -> None:
        if self.enabled:
            self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def rate(self, now: float) -> float:
        """Bytes per second over the last RATE_WINDOW seconds (whole run before that)."""
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[1][0] > self.RATE_WINDOW:
            self._samples.pop(0)
        t, d = self._samples[0]
        return (self.done - d) / (now - t) if now - t > 1e-3 else 0.0

    def line(self, now: float, cols: int) -> str:
        """The status line for a terminal `cols` wide (never longer than cols - 1).

        The most detailed layout that leaves room for the current file wins; on a narrow
        terminal the totals, then the bar, then the rate go first.
        """
        rate = self.rate(now)
        # Fields have fixed widths so the bar and the file name do not jump between redraws.
        speed = f"{human(rate) + '/s':>11}"
        done = f"{human(self.done):>8}"
        if self.total:
            frac = min(self.done / self.total, 1.0)
            # no ETA from the first second's rate: it is mostly start-up
            settled = now - self._t0 >= 1.0 and rate > 0
            eta = (self.total - self.done) / rate if settled else None
            pct = f"{frac * 100:3.0f}%"
            eta_s = "ETA " + (f"{_clock(eta):>7}" if eta is not None else "  --:--")
            layouts = [[pct, f"{done} / {human(self.total)}", speed, eta_s],
                       [pct, done, speed, eta_s],
                       [pct, eta_s]]
        else:
            frac = None
            layouts = [[done, speed, f"{_clock(now - self._t0):>7}"], [done]]
        width = cols - 1
        for i, parts in enumerate(layouts):
            text = "  ".join([self.label, *parts])
            room = width - len(text) - 2
            if frac is not None and i == 0:
                bar_w = min(24, room - 36)  # a bar only when the file name keeps 36 columns
                if bar_w >= 10:
                    text = "  ".join([self.label, _bar(frac, bar_w, self._unicode), *parts])
                    room = width - len(text) - 2
            if room >= 16 or i == len(layouts) - 1:
                cur = _fit(self.current, room) if room >= 8 else ""
                return (text + ("  " + cur if cur else ""))[:width]
        return ""  # not reached

    def _draw(self, now: float) -> None:
        text = self.line(now, _term_width(self.stream))
        if self._ansi:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write("\r" + text.ljust(self._shown))
        self._shown = len(text)
        self.stream.flush()

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K" if self._ansi else "\r" + " " * self._shown + "\r")
            self._shown = 0

    def close(self) -> None:
        """Clear the bar so the summary starts on a clean line."""
        with self._lock:
            if self.enabled:
                self._clear()
                self.stream.flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _bar(frac: float, width: int, fine: bool) -> str:
    if not fine:
        n = int(frac * width)
        return "[" + "#" * n + "-" * (width - n) + "]"
    eighths = int(frac * width * 8)
    full, part = divmod(eighths, 8)
    s = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part and full < width else "")
    return "│" + s.ljust(width) + "│"


def _clock(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def _fit(text: str, room: int) -> str:
    """`text` shortened in the middle to `room` characters (keeps the file name visible)."""
    if len(text) <= room:
        return text
    keep = room - 1
    base = len(text.rsplit("/", 1)[-1]) + 1
    tail = min(keep, max(keep * 2 // 3, base))
    return text[:keep - tail] + "…" + text[len(text) - tail:]


def _term_width(stream=None) -> int:
    try:
        cols = os.get_terminal_size((stream or sys.stderr).fileno()).columns
    except (OSError, AttributeError, ValueError):
        return 100
    return cols if cols >= 20 else 80  # a pty nobody sized reports 0


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
