"""What a person sees: progress on a terminal (a real pseudo-terminal), silence in pipes,
--help with an example for every command, one-line errors, the config file."""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from archivestore.cli import cli
from archivestore.cli.common import Progress

from .conftest import ROOT, make_tracks, run_cli, run_json, run_subprocess

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_pty(args: list, cols: int = 100, env: dict | None = None, timeout: float = 120):
    """Run the CLI with stderr on a pseudo-terminal `cols` wide and stdout on a pipe.
    Returns (exit code, stdout text, raw terminal bytes)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    e = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm", **(env or {}))
    p = subprocess.Popen([sys.executable, "-m", "archivestore", *map(str, args)], env=e,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    raw = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        r, _w, _x = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            raw += chunk
        elif p.poll() is not None:
            break
        if time.monotonic() > deadline:
            p.kill()
            raise TimeoutError(args)
    out = p.stdout.read().decode()
    p.wait()
    os.close(master)
    return p.returncode, out, bytes(raw)


def frames(raw: bytes) -> list[str]:
    """The progress lines drawn (each redraw starts with \\r)."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    return [ANSI.sub("", f) for f in text.split("\r") if ANSI.sub("", f).strip()]


@pytest.fixture
def big_session(tmp_path):
    root = tmp_path / "Long Day"
    make_tracks(root / "Audio Files", n=6, seconds=20.0)  # ~17 MB
    return root


def test_progress_on_terminal_not_in_pipe(big_session, store, tmp_path):
    code, out, raw = run_on_pty(["ingest", big_session, "--store", store], cols=100)
    assert code == 0
    shown = frames(raw)
    assert shown, raw[:200]
    bar = shown[0]
    assert bar.startswith("ingest  ") and "%" in bar and "/s" in bar and "ETA" in bar
    assert any("Audio Files/Track" in f for f in shown)  # the current file
    assert all(len(f.rstrip("\n")) <= 99 for f in shown)  # fits the 100-column terminal
    assert raw.endswith(b"\r\x1b[K")  # the bar is cleared before the summary is printed
    assert "Long Day: version 1 — 6 files" in out and "delivered" in out and "stored in" in out
    # the same ingest with stderr on a pipe: no progress at all
    r = run_subprocess("ingest", big_session, "--store", store)
    assert r.returncode == 0 and r.stderr == "" and "version 2" in r.stdout
    # restore and fsck draw their own bars on a terminal
    code, out, raw = run_on_pty(["restore", "Long Day", "--store", store, "--to", tmp_path / "r"])
    assert code == 0 and frames(raw)[0].startswith("restore  ") and "all verified" in out
    code, out, raw = run_on_pty(["fsck", "--read-data", "--store", store])
    assert code == 0 and frames(raw)[0].startswith("fsck --read-data  ") and out.startswith("OK:")


def test_one_bar_for_a_delivery_of_several_folders(big_session, store, tmp_path):
    """Several folders: one bar over the whole delivery, files named under their project, and
    each project's summary printed (stdout) once it is committed, with the bar cleared first."""
    second = tmp_path / "Night Shift"
    make_tracks(second / "Audio Files", n=3, seconds=20.0, seed=5)
    code, out, raw = run_on_pty(["ingest", big_session, second, "--store", store], cols=120)
    assert code == 0
    shown = frames(raw)
    assert shown and all(f.startswith("ingest 2 projects  ") for f in shown)
    assert any("Long Day/Audio Files/Track" in f for f in shown)
    assert raw.endswith(b"\r\x1b[K")
    lines = out.splitlines()
    assert lines[0].startswith("Long Day: version 1 — 6 files")
    assert any(line.startswith("Night Shift: version 1 — 3 files") for line in lines)
    # and back: one bar for `restore --all`, each project's line as it is done
    code, out, raw = run_on_pty(["restore", "--all", "--store", store, "--to", tmp_path / "r"],
                                cols=120)
    assert code == 0
    shown = frames(raw)
    assert shown and all(f.startswith("restore 2 projects  ") for f in shown)
    assert raw.endswith(b"\r\x1b[K")
    assert [line.split(":")[0] for line in out.splitlines()] == ["Long Day", "Night Shift"]


def test_quiet_json_and_narrow_terminal(big_session, store):
    code, out, raw = run_on_pty(["ingest", big_session, "--store", store, "-q"])
    assert code == 0 and raw == b"" and "version 1" in out
    code, out, raw = run_on_pty(["ingest", big_session, "--store", store, "--json"])
    assert code == 0 and raw == b"" and json.loads(out)["version"] == 2
    code, out, raw = run_on_pty(["ingest", big_session, "--store", store], cols=40)
    assert code == 0 and all(len(f) <= 39 for f in frames(raw))


def test_verbose_names_files_even_in_pipe(big_session, store):
    r = run_subprocess("ingest", big_session, "--store", store, "-v")
    assert r.returncode == 0
    # each file named once as work on it starts (two readers: the order may interleave)
    assert sorted(line.strip() for line in r.stderr.splitlines()) == \
        [f"Audio Files/Track {i}.wav" for i in range(1, 7)]


class _Tty:
    """A stream that says it is a terminal, for unit-testing redraw behaviour."""

    encoding = "utf-8"

    def __init__(self) -> None:
        self.buf: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, s: str) -> None:
        self.buf.append(s)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise OSError("no fd")


def test_progress_throttles_and_fits():
    t = _Tty()
    p = Progress(1000, "ingest", stream=t, interval=60)
    for _ in range(500):
        p({"file": "a.wav", "bytes": 1})
    assert len(t.buf) == 1  # first event draws, the next 499 are within the interval
    p.close()
    assert t.buf[-1] == "\r\x1b[K"
    # width: every layout fits; the file name is shortened in the middle, keeping its end
    p = Progress(10**9, "restore", stream=_Tty())
    p.done, p.current = 4 * 10**8, "Deep/" * 30 + "Final Mix.wav"
    for cols in (20, 40, 60, 80, 120, 200):
        line = p.line(time.monotonic(), cols)
        assert len(line) <= cols - 1
        if cols >= 80:
            assert line.endswith("Final Mix.wav") and "…" in line and "ETA" in line
    assert Progress(10, "x", stream=open(os.devnull, "w")).enabled is False


def test_progress_counts_its_total_only_for_a_bar_on_screen():
    calls = []

    def count():
        calls.append(1)
        return 1234
    assert Progress(count, "ingest", stream=open(os.devnull, "w")).total is None
    assert Progress(count, "ingest", stream=_Tty(), enabled=False).total is None
    assert calls == []  # with --json, -q or in a pipe the source folder is not walked twice
    assert Progress(count, "ingest", stream=_Tty()).total == 1234 and calls == [1]


def _all_commands():
    return sorted(cli.all_commands())


@pytest.mark.parametrize("name", _all_commands())
def test_every_command_has_help_with_example(name):
    r = run_cli(name, "--help")
    assert "Example" in r.stdout, name
    assert f"archive {name}" in r.stdout or name == "demo" and "archive demo" in r.stdout
    assert "-h, --help" in r.stdout


def test_errors_name_the_cause_and_exit_nonzero(store, tmp_path):
    r = run_cli("ls", "Nope", "--store", store, expect=2)
    assert r.stderr.startswith("archive: error: no project named 'Nope'") and "archive projects" in r.stderr
    r = run_cli("ingest", tmp_path / "gone", "--store", store, expect=2)
    assert "gone: no such folder" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("projects", expect=2, env={"ARCHIVE_STORE": ""})
    assert "--store" in r.stderr and "config.toml" in r.stderr


def test_config_file_defaults_and_precedence(tmp_path, store, session, monkeypatch):
    cfg_home = tmp_path / "xdg"
    (cfg_home / "archivestore").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg_home))
    monkeypatch.delenv("ARCHIVE_STORE", raising=False)
    cfg = cfg_home / "archivestore" / "config.toml"
    cfg.write_text(f'store = "{store}"\n\n[ingest]\nmessage = "from config"\n')
    out = run_json("ingest", session)  # no --store: the config's store
    assert out["version"] == 1
    assert run_json("versions", "Paper Boats")["versions"][0]["message"] == "from config"
    # ARCHIVE_STORE wins over the file, --store wins over both
    other = tmp_path / "other"
    run_cli("init", "--store", other)
    r = run_cli("projects", "--json", env={"ARCHIVE_STORE": str(other)})
    assert json.loads(r.stdout)["projects"] == []
    assert len(run_json("projects", "--store", store)["projects"]) == 1
    c = run_json("config")
    assert c["store"] == str(store) and c["store_from"] == str(cfg)
    # [ingest] strict = true refuses a session with problems; --no-strict overrides it
    cfg.write_text(f'store = "{store}"\n[ingest]\nstrict = true\n')
    (session / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(session / "fifo")
    r = run_cli("ingest", session, expect=3)
    assert "--strict" in r.stderr
    assert run_json("ingest", session, "--no-strict")["skipped"] == [
        {"path": "fifo", "reason": "is a FIFO, not archived"}]
    # mistakes in the file are one-line errors naming the file and what is valid
    cfg.write_text("[ingest]\nstrikt = true\n")
    r = run_cli("projects", "--store", store, expect=2)
    assert str(cfg) in r.stderr and "'strikt'" in r.stderr and "strict" in r.stderr
    cfg.write_text("store = \n")
    r = run_cli("projects", "--store", store, expect=2)
    assert "not valid TOML" in r.stderr
    cfg.write_text("[frobnicate]\nx = 1\n")
    assert "unknown section [frobnicate]" in run_cli("projects", expect=2).stderr


def test_completion_script_is_generated():
    r = subprocess.run([sys.executable, "-c", "from archivestore.cli import main; main()"],
                       env=dict(os.environ, PYTHONPATH=str(ROOT), _ARCHIVE_COMPLETE="bash_source"),
                       capture_output=True, text=True)
    assert r.returncode == 0 and "_archive_completion" in r.stdout


def test_project_names_complete(session, store):
    run_json("ingest", session, "--store", store)
    r = subprocess.run([sys.executable, "-c", "from archivestore.cli import main; main()"],
                       env=dict(os.environ, PYTHONPATH=str(ROOT), _ARCHIVE_COMPLETE="bash_complete",
                                COMP_WORDS="archive restore pap", COMP_CWORD="2",
                                ARCHIVE_STORE=str(store)),
                       capture_output=True, text=True)
    assert r.stdout.strip() == "plain,Paper Boats"


def test_ingest_summary_in_words(session, store):
    r = run_cli("ingest", session, "--store", store)
    first = r.stdout.splitlines()[0]
    assert re.match(r"Paper Boats: version 1 — 7 files, [\d.]+ [kMG]?B delivered, [\d.]+ [kMG]?B new, "
                    r"stored in [\d.]+ [kMG]?B \(", first), first
    r = run_cli("ingest", session, "--store", store)
    assert "100% of it was already in the store" in r.stdout


def test_weekly_schedule_script_logs_and_fails_on_damage(session, store, tmp_path):
    """docs/schedules/archive-weekly.sh: fsck + stats into a log; exit 1 once a pack is damaged."""
    import plistlib
    sched = ROOT / "docs" / "schedules"
    plist = plistlib.loads((sched / "org.archivestore.weekly.plist").read_bytes())
    assert plist["ProgramArguments"][-1] == "/usr/local/bin/archive-weekly"
    assert "OnCalendar=" in (sched / "archive-weekly.timer").read_text()
    assert "ExecStart=/usr/local/bin/archive-weekly" in (sched / "archive-weekly.service").read_text()
    run_json("ingest", session, "--store", store)
    wrapper = tmp_path / "archive"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m archivestore \"$@\"\n")
    wrapper.chmod(0o755)
    log = tmp_path / "weekly.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), ARCHIVE=str(wrapper), ARCHIVE_STORE=str(store),
               ARCHIVE_LOG=str(log), HOME=str(tmp_path))
    env.pop("ARCHIVE_REPLICA", None)
    env.pop("ARCHIVE_MAILTO", None)
    r = subprocess.run(["sh", str(sched / "archive-weekly.sh")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    text = log.read_text()
    assert text.startswith("archive OK on ") and "== fsck: exit 0" in text and "1 projects" in text
    pack = sorted(store.glob("packs/*/*.pack"))[0]
    data = bytearray(pack.read_bytes())
    data[200] ^= 0xFF
    pack.write_bytes(bytes(data))
    r = subprocess.run(["sh", str(sched / "archive-weekly.sh")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert "archive PROBLEM on " in log.read_text() and "DAMAGE FOUND" in r.stdout
