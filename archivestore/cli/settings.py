"""The config file in the CLI: applied to every command, shown by `archive config`."""
from __future__ import annotations

import os
import sys

import click

from .. import config
from ..errors import ArchiveError
from . import cli
from .common import emit_json, json_option, run


def apply_config(ctx: click.Context) -> None:
    """Make the config file's values the defaults of every command (one-line error if bad)."""
    try:
        cfg = config.load()
        if cfg:  # no file: nothing to apply, and no need to load every command to check it
            ctx.default_map = config.default_map(cfg, cli.all_commands())
    except ArchiveError as e:
        click.echo(f"archive: error: {e}", err=True)
        sys.exit(e.exit_code)


@cli.command(name="config")
@json_option
@run
def config_cmd(as_json):
    """Show where the config file is and what it sets.

    \b
    Example config (~/.config/archivestore/config.toml, or $XDG_CONFIG_HOME/…):
      store = "/Volumes/Archive/store"
      [ingest]
      strict = true
    \b
    Example:
      archive config
    """
    path = config.config_path()
    cfg = config.load(path)
    env = os.environ.get(config.STORE_ENV)
    store, source = (env, f"${config.STORE_ENV}") if env else (cfg.get("store"), str(path)) \
        if cfg.get("store") else (None, None)
    out = {"path": str(path), "exists": path.is_file(), "config": cfg, "store": store,
           "store_from": source}
    if as_json:
        emit_json(out)
        return
    click.echo(f"Config file: {path}" + ("" if out["exists"] else " (not present)"))
    click.echo(f"Store: {store} (from {source})" if store else
               "Store: none set (pass --store, set ARCHIVE_STORE or store = \"PATH\" in the config file)")
    for section, values in cfg.items():
        if isinstance(values, dict):
            for k, v in values.items():
                click.echo(f"  [{section}] {k} = {v!r}")
