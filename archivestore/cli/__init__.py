"""The `archive` command: a thin shell over the Python API. One module per command group;
errors become one-line messages and exit codes in `common.run`."""
from __future__ import annotations

import gc

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


from . import core, demo  # noqa: E402,F401  (register commands)
from . import browse, settings  # noqa: E402,F401  (versions, ls, diff, find, check-session, config)
from . import copies  # noqa: E402,F401


def main() -> None:
    # Everything imported so far lives for the whole run: keep the cyclic GC from rescanning it
    # (py-spy showed gc_collect_main at 31% of a re-ingest before this).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    cli(prog_name="archive")
