"""Helpers for the fault-injection suites: small-chunk stores, sessions, and checks."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from archivestore import Store
from archivestore.chunking import ChunkParams

from .conftest import ROOT, assert_same_tree, make_tracks, run_cli

# Small chunks and packs so a 2 MB session makes hundreds of chunks and a dozen packs: a kill
# lands in every phase of an ingest.
SMALL_CHUNKS = ChunkParams(2048, 8192, 32768)
SMALL_PACK = 128 * 1024


def make_store(path: Path) -> Path:
    Store.init(path, SMALL_CHUNKS, pack_target=SMALL_PACK).close()
    return path


def make_session(root: Path, seed: int = 1, tracks: int = 2, seconds: float = 3.0) -> Path:
    """Audio tracks plus an incompressible binary and a text file."""
    make_tracks(root / "Audio Files", n=tracks, seconds=seconds, seed=seed)
    rng = np.random.default_rng(seed)
    (root / "session.ptx").write_bytes(rng.integers(0, 256, 400_000, dtype=np.uint8).tobytes())
    (root / "notes.txt").write_text(f"take {seed}\n" * 50)
    return root


def cli_subprocess(*args, env: dict | None = None, timeout: float = 120, **kw):
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("ARCHIVESTORE_FAULT", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "archivestore", *map(str, args)], env=e,
                          capture_output=True, text=True, timeout=timeout, **kw)


def fsck(store: Path, *extra: str, expect: int = 0) -> dict:
    r = run_cli("fsck", "--store", store, "--read-data", "--json", *extra, expect=expect)
    return json.loads(r.stdout)


def restore_equals(store: Path, project: str, version: int, source: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    run_cli("restore", project, "--store", store, "--to", dest, "--version", version, "-q")
    assert_same_tree(source, dest)


def versions(store: Path, project: str) -> list[int]:
    r = run_cli("versions", project, "--store", store, "--json", expect=None)
    if r.exit_code != 0:
        return []
    return [v["version"] for v in json.loads(r.stdout)["versions"]]
