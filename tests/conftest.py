"""Shared fixtures: generated sessions and CLI helpers. Test data is synthesised, never committed."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import settings

from archivestore.cli import cli
from archivestore.demo import write_wav24

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent


def make_tracks(folder: Path, n: int = 3, seconds: float = 4.0, seed: int = 1) -> list[Path]:
    """Mono 24-bit BWF tracks: tones over a -84 dBFS noise floor."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    frames = int(48000 * seconds)
    t = np.arange(frames) / 48000
    for i in range(n):
        sig = np.sin(2 * np.pi * (110 * (i + 1)) * t) * 0.3 * 2 ** 23
        sig += rng.normal(0, 2 ** 23 * 10 ** (-84 / 20), frames)
        p = folder / f"Track {i + 1}.wav"
        write_wav24(p, np.clip(sig, -2 ** 23, 2 ** 23 - 1).astype(np.int32), description=f"take {i}")
        out.append(p)
    return out


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    """No test reads the user's ~/.config/archivestore/config.toml."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.delenv("ARCHIVE_CONFIG", raising=False)


@pytest.fixture
def session(tmp_path: Path) -> Path:
    """A small session: WAVs in nested folders, an empty folder, a symlink, non-ASCII names,
    a zero-byte file and a binary session file."""
    root = tmp_path / "Paper Boats"
    make_tracks(root / "Audio Files", n=3, seconds=3.0)
    (root / "Bounced Files" / "Mixes").mkdir(parents=True)
    make_tracks(root / "Bounced Files" / "Mixes", n=1, seconds=2.0, seed=9)
    (root / "Video").mkdir()
    (root / "Sessión — ñotes ☂.txt").write_text("Bass up 2 dB\n", encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    rng = np.random.default_rng(5)
    (root / "Paper Boats.ptx").write_bytes(rng.integers(0, 8, 300_000, dtype=np.uint8).tobytes())
    os.symlink("Audio Files/Track 1.wav", root / "Lead.wav")
    os.symlink("does/not/exist", root / "dangling")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = tmp_path / "store"
    r = CliRunner().invoke(cli, ["init", "--store", str(s)])
    assert r.exit_code == 0, r.output
    return s


def run_cli(*args: str, expect: int | None = 0, env: dict | None = None):
    """Invoke the CLI in-process; returns the click Result (checked against `expect`)."""
    r = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    if expect is not None:
        assert r.exit_code == expect, f"exit {r.exit_code}: {r.output}"
    return r


def run_json(*args: str, expect: int | None = 0) -> dict:
    r = run_cli(*args, "--json", expect=expect)
    return json.loads(r.stdout)


def run_subprocess(*args: str, env: dict | None = None, timeout: float = 120, **kw):
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "archivestore", *map(str, args)], env=e,
                          capture_output=True, text=True, timeout=timeout, **kw)


def assert_same_tree(a: Path, b: Path) -> None:
    """Every entry of `a` exists in `b` with identical bytes, link targets, modes and mtimes."""
    for dirpath, dirs, files in os.walk(a):
        rel = os.path.relpath(dirpath, a)
        for name in dirs + files:
            pa, pb = Path(dirpath, name), Path(b, rel, name)
            sa = pa.lstat()
            assert pb.is_symlink() or pb.exists(), f"missing {pb}"
            sb = pb.lstat()
            assert (sa.st_mode & 0o170000) == (sb.st_mode & 0o170000), pa
            if pa.is_symlink():
                assert os.readlink(pa) == os.readlink(pb)
                continue
            assert sa.st_mode == sb.st_mode, pa
            if pa.is_file():
                assert pa.read_bytes() == pb.read_bytes(), f"bytes differ: {pa}"
                assert sa.st_mtime_ns == sb.st_mtime_ns, pa
    names_a = sorted(os.path.relpath(os.path.join(d, n), a) for d, ds, fs in os.walk(a) for n in ds + fs)
    names_b = sorted(os.path.relpath(os.path.join(d, n), b) for d, ds, fs in os.walk(b) for n in ds + fs)
    assert names_a == names_b


@pytest.fixture
def small_delta(monkeypatch):
    """A chunk table whose delta merges into a run every 8 entries (archivestore.chunktable)."""
    from archivestore import chunktable
    monkeypatch.setattr(chunktable, "DELTA_MAX", 8)


def ticks_inside(copy) -> int:
    """How many times a Python thread ran while `copy()` was running. The switch interval is
    made long, so the GIL changes hands only where a thread lets it go: the spinner at each
    sleep(0), the copying thread only if the copy releases it."""
    stamps: list[float] = []
    done = threading.Event()

    def spin():
        while not done.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.01)
        inside = 0
        for _ in range(3):
            start = time.perf_counter()
            copy()
            end = time.perf_counter()
            inside += sum(start < x < end for x in stamps[-100000:])
        return inside
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(interval)
