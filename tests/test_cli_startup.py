"""Commands load their own code only: the command map, what a fresh `archive fsck` imports, and
the config file still checked against every command."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from archivestore.cli import COMMANDS, cli

from .conftest import ROOT, run_subprocess


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
