"""The `archive` command: a thin shell over the Python API. One module per command group;
errors become one-line messages and exit codes in `common.run`.

A command's module is imported when that command runs (or --help lists them all), so
`archive fsck` does not load the code of ingest, replication or the session parsers: start-up
is part of every command's time (≈ 0.1 s of a 1 s check before this).
"""
from __future__ import annotations

import gc
import sys

import click

from .. import __version__
from ..memory import quiet_gc
from .common import ArchiveGroup


# command name → the module of this package that defines it
COMMANDS = {
    "init": "core", "ingest": "core", "projects": "core", "restore": "core", "fsck": "core",
    "stats": "core", "demo": "demo", "versions": "browse", "ls": "browse", "diff": "browse",
    "find": "browse", "check-session": "browse", "config": "settings", "replicate": "copies",
    "store": "copies", "status": "copies", "key": "copies",
}


@click.group(cls=ArchiveGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="archive")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """archivestore: a deduplicating, verified archive for studio sessions.

    \b
    Typical use:
      archive init --store /Volumes/Archive/store
      archive ingest "/Sessions/Paper Boats" --store /Volumes/Archive/store
      archive versions "Paper Boats"
      archive restore "Paper Boats" --to /tmp/pb
      archive fsck --read-data

    Set ARCHIVE_STORE, or `store = "PATH"` in ~/.config/archivestore/config.toml, to skip
    --store on every command.
    """
    from .settings import apply_config
    apply_config(ctx)


def main() -> None:
    # Everything imported so far lives for the whole run: keep the cyclic GC from rescanning it
    # (py-spy showed gc_collect_main at 31% of a re-ingest before this). No gc.collect() first:
    # imports leave no cycles to free, and a full collection cost 6-8 ms of every command.
    gc.freeze()
    quiet_gc()
    # File names that are not UTF-8 print as their original bytes instead of failing
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    cli(prog_name="archive")
