"""`archive demo`: the embedded default job."""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_DAMAGE
from . import cli
from .common import emit_json, human, json_option, run


@cli.command()
@click.option("--store", "-s", "store_path", type=click.Path(), default=None,
              help="Store to use (default: a new one in a temporary folder).")
@json_option
@run
def demo(store_path, as_json):
    """Generate a small WAV session, archive it twice, restore it and verify every byte.

    \b
    Example:
      archive demo
    """
    from ..demo import run_demo  # numpy is only needed here; keep it out of every command's start-up
    out = run_demo(store_path)
    if as_json:
        emit_json(out)
    else:
        click.echo(f"Generated a session of {human(out['bytes_in'])} in {out['source']}")
        click.echo(f"Ingested it into {out['store']} as version {out['versions'][0]}: "
                   f"stored in {human(out['bytes_stored_v1'])}")
        click.echo(f"Edited the notes and ingested again as version {out['versions'][1]}: "
                   f"{human(out['bytes_new_v2'])} new")
        click.echo(f"Restored {out['files_restored']} files to {out['restored_to']}: "
                   + ("byte-identical, verified." if out["verified"] else "MISMATCH!"))
    if not out["verified"]:
        sys.exit(EXIT_DAMAGE)
