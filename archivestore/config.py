"""The user's config file: default store and per-command defaults (TOML).

Location: `$ARCHIVE_CONFIG` if set, else `$XDG_CONFIG_HOME/archivestore/config.toml`
(`~/.config/archivestore/config.toml` when XDG_CONFIG_HOME is unset). Example::

    store = "/Volumes/Archive/store"   # like --store; ARCHIVE_STORE and --store win over it

    [ingest]
    strict = true                      # any option of `archive ingest`, by its long name

    [fsck]
    read-data = true

Values become click defaults, so the order of precedence is: command line, environment
(ARCHIVE_STORE), config file, built-in default.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

STORE_ENV = "ARCHIVE_STORE"


def config_path() -> Path:
    explicit = os.environ.get("ARCHIVE_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "archivestore" / "config.toml"


def load(path: Path | None = None) -> dict:
    """The parsed config ({} when there is no file); UsageError names the file and the fault."""
    path = path or config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror}") from None
    import tomllib  # only when there is a file: every command reads the config at start
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"config file {path} is not valid TOML: {e}") from None


def default_map(cfg: Mapping[str, Any], commands: Mapping[str, Any], path: Path | None = None) -> dict:
    """Turn a config into click's `default_map` for `commands` (name → click.Command).

    Unknown sections or keys are errors naming the valid ones, so a typo never silently
    changes nothing.
    """
    path = path or config_path()
    out: dict[str, dict] = {}
    store = cfg.get("store")
    if store is not None and not isinstance(store, str):
        raise UsageError(f"{path}: 'store' must be a string (a folder path)")
    for name, cmd in commands.items():
        if store is not None and any(p.name == "store_path" and p.envvar == STORE_ENV
                                     for p in cmd.params):
            out.setdefault(name, {})["store_path"] = os.path.expanduser(store)
    for key, value in cfg.items():
        if key == "store":
            continue
        if not isinstance(value, dict):
            raise UsageError(f"{path}: unknown setting {key!r} (top-level settings: store; "
                             f"command sections: {', '.join(sorted(commands))})")
        cmd = commands.get(key)
        if cmd is None:
            raise UsageError(f"{path}: unknown section [{key}] (sections are command names: "
                             f"{', '.join(sorted(commands))})")
        by_name = {}
        for p in cmd.params:
            if getattr(p, "param_type_name", "") != "option":
                continue
            by_name[p.name] = p.name
            for o in p.opts:
                if o.startswith("--"):
                    by_name[o[2:]] = p.name
                    by_name[o[2:].replace("-", "_")] = p.name
        for opt, v in value.items():
            pname = by_name.get(opt)
            if pname is None or pname in ("as_json",):
                valid = sorted(o[2:] for p in cmd.params if getattr(p, "param_type_name", "") == "option"
                               for o in p.opts if o.startswith("--") and o not in ("--json", "--help"))
                raise UsageError(f"{path}: [{key}] has no option {opt!r} "
                                 f"(options of archive {key}: {', '.join(valid)})")
            if pname == "store_path" and isinstance(v, str):
                v = os.path.expanduser(v)
            out.setdefault(key, {})[pname] = v
    return out
