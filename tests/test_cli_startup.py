"""Commands load their own code only: the command map, what a fresh `archive fsck` imports, what
start-up and the hot commands (ingest, restore, fsck) leave unloaded, and the config file still
checked against every command."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from archivestore.cli import COMMANDS, cli

from .conftest import ROOT, make_tracks, run_cli, run_subprocess


def _env(**extra: str) -> dict:
    """This checkout first on the path, as conftest.run_subprocess does for `-m archivestore`."""
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **extra)


def _fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=_env(**env), capture_output=True,
                          text=True, timeout=60)


def test_command_map_names_the_module_of_every_command():
    commands = cli.all_commands()
    assert set(commands) == set(COMMANDS)
    for name, cmd in commands.items():
        assert cmd.callback.__module__ == f"archivestore.cli.{COMMANDS[name]}", name


def test_fsck_imports_neither_ingest_nor_replication(tmp_path):
    store = tmp_path / "s"
    code = ("import sys, json\n"
            "from archivestore.cli import main\n"
            f"sys.argv = ['archive', 'init', '--store', {str(store)!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"sys.argv = ['archive', 'fsck', '--read-data', '--store', {str(store)!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('archivestore'))))\n")
    r = _fresh(code, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.splitlines()[-1]))
    assert "archivestore.check" in loaded and "archivestore.cli.core" in loaded
    for lazy in ("archivestore.ingest", "archivestore.replicate", "archivestore.cli.copies",
                 "archivestore.cli.browse", "archivestore.sessions", "archivestore.restore"):
        assert lazy not in loaded, lazy


# Loaded by no hot command (ingest, restore, fsck --read-data) at start-up; `site` may have loaded
# the stdlib ones before us (certifi, editable installs), so the fresh interpreter drops them first
# and sees whether our imports bring them back
NOT_AT_START = ("shutil", "bz2", "lzma", "tempfile", "random", "zipfile", "hashlib", "socket",
                "subprocess", "getpass", "ctypes", "base64", "tomllib", "numpy",
                "archivestore.findindex", "archivestore.segments", "archivestore.remotes",
                "archivestore.s3", "archivestore.encryption", "archivestore.replicate",
                "archivestore.heal", "archivestore.catalog", "archivestore.sessions",
                "archivestore.copies", "archivestore.ingest", "archivestore.restore",
                "archivestore.check", "archivestore.cli.copies", "archivestore.cli.browse")
# ... nor while those commands run (ingest itself needs the find index, restore and fsck do not)
NOT_IN_HOT_COMMANDS = ("shutil", "bz2", "lzma", "tempfile", "zipfile", "hashlib", "socket",
                       "subprocess", "archivestore.segments", "archivestore.remotes",
                       "archivestore.s3", "archivestore.encryption", "archivestore.replicate",
                       "archivestore.heal", "archivestore.cli.copies", "archivestore.cli.browse")


def _loaded_after(code: str, watch: tuple, **env: str) -> set:
    """The modules of `watch` in sys.modules after `code` runs in a fresh interpreter that
    dropped them first."""
    pre = f"import sys, json\nfor _m in {list(watch)!r}:\n    sys.modules.pop(_m, None)\n"
    post = f"\nprint(json.dumps([m for m in {list(watch)!r} if m in sys.modules]))\n"
    r = _fresh(pre + code + post, **env)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_hot_commands_start_without_the_modules_they_do_not_need(tmp_path):
    """Start-up is part of every command's time: the CLI, once `ingest`, `restore` and `fsck`
    are resolved and parsed, has not imported what only other commands use."""
    code = ("from archivestore.memory import quiet_gc\n"  # what `python -m archivestore` does
            "quiet_gc()\n"
            "from archivestore.cli import cli\n"
            "for argv in (['ingest', 'f', '-s', 's'], ['restore', 'p', '--to', 't', '-s', 's'],\n"
            "             ['fsck', '--read-data', '-s', 's']):\n"
            "    cli.get_command(None, argv[0]).make_context(argv[0], argv[1:])\n"
            "assert 'archivestore.cli.core' in sys.modules and 'archivestore.store' in sys.modules\n")
    loaded = _loaded_after(code, NOT_AT_START, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    assert not loaded, f"imported at start-up: {sorted(loaded)}"


def test_ingest_restore_fsck_do_not_load_what_they_do_not_use(tmp_path):
    store = tmp_path / "store"
    run_cli("init", "--store", store)
    make_tracks(tmp_path / "Paper Boats", n=1, seconds=0.5)
    cmds = [["ingest", str(tmp_path / "Paper Boats")],
            ["restore", "Paper Boats", "--to", str(tmp_path / "out")], ["fsck", "--read-data"]]
    code = ("from archivestore.cli import main\n"
            f"for argv in {cmds!r}:\n"
            f"    sys.argv = ['archive', *argv, '-q', '--store', {str(store)!r}]\n"
            "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, (argv, e.code)\n"
            "assert 'archivestore.restore' in sys.modules and 'archivestore.check' in sys.modules\n")
    loaded = _loaded_after(code, NOT_IN_HOT_COMMANDS, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    assert not loaded, f"loaded by ingest, restore or fsck: {sorted(loaded)}"


def test_config_sections_are_checked_against_commands_not_yet_loaded(tmp_path):
    """`archive projects` loads core only, yet a typo in [replicate] is still an error."""
    cfg = tmp_path / "cfg" / "archivestore" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[replicate]\nencrpyt = true\n')
    r = run_subprocess("projects", "--store", tmp_path / "none",
                       env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "[replicate] has no option 'encrpyt'" in r.stderr and "encrypt" in r.stderr


def test_each_command_loads_on_its_own_in_a_fresh_interpreter():
    """Each module imported first (no other command module loaded before it) still works."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "archivestore", name, "--help"],
                                    env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
             for name in COMMANDS}
    for name, p in procs.items():
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, f"{name}: {err}"
        assert f"archive {name}" in out, name
