"""Crash safety: SIGKILL an ingest at seeded points of its write path (and at seeded times),
then prove the store is consistent, earlier versions restore, and a re-run completes and dedups
against exactly what was durable. Also: a full disk, injected (always) and real (tmpfs)."""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from archivestore import Store
from archivestore.faults import POINTS
from archivestore.packs import KIND_SNAPSHOT, read_footer

from .conftest import make_tracks, run_cli, run_json
from .faultlib import (cli_subprocess, fsck, make_session, make_store, restore_equals, versions)


# The v2 ingests run with a 4-entry chunk-table delta: their index commits merge runs, so a
# kill can land in a merge too (`run_written`: the new run renamed, its transaction not committed).
MERGES = {"ARCHIVESTORE_DELTA_MAX": "4"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """v1 committed in a small-chunk store; the v2 source; a clean reference ingest of v2."""
    d = tmp_path_factory.mktemp("crash")
    src1 = make_session(d / "v1" / "Song", seed=1)
    src2 = d / "v2" / "Song"
    shutil.copytree(src1, src2, symlinks=True)
    make_tracks(src2 / "Audio Files", n=1, seconds=4.0, seed=77)  # Track 1 re-recorded
    (src2 / "mix.bin").write_bytes(np.random.default_rng(3).bytes(300_000))
    store = make_store(d / "store")
    run_json("ingest", src1, "--store", store, "--project", "Song", "-q")
    with Store.open(store) as st:
        base_stats = st.stats()
    ref_store = d / "ref"
    shutil.copytree(store, ref_store)
    t0 = time.monotonic()
    ref = json.loads(cli_subprocess("ingest", src2, "--store", ref_store, "--project", "Song",
                                    "--json", "-q", env=MERGES).stdout)
    duration = time.monotonic() - t0
    with Store.open(ref_store) as st:
        ref_stats = st.stats()
        merges = st.index.counter("chunkgen") - 1  # run generations start at 1
    packs = ref_stats["packs"] - base_stats["packs"]
    # how often each fault point is passed during the v2 ingest
    hits = {"chunk": ref["chunks"], "pack_write": ref["chunks_new"] + 2, "pack_fsync": packs,
            "pack_publish": packs, "index_commit": packs, "index_txn": packs,
            "commit_index": 1, "snapshot": 1, "run_written": merges}
    assert packs >= 5 and ref["chunks"] >= 100 and merges >= 2, (packs, ref, merges)
    return {"dir": d, "src1": src1, "src2": src2, "store": store, "ref": ref, "hits": hits,
            "base_stats": base_stats, "duration": duration}


def _orphan_snapshots(store: Path, reclaimable: list[dict]) -> set[str]:
    """Ids of snapshot records in complete but unindexed packs."""
    found = set()
    with Store.open(store) as st:
        for r in reclaimable:
            if r["path"].startswith("packs/"):
                found |= {e.id.hex() for e in read_footer(st.backend, r["path"])
                          if e.kind == KIND_SNAPSHOT}
    return found


def _trial(base: dict, tmp: Path, seed: int, mode: str) -> dict:
    rng = random.Random(seed)
    store = tmp / f"store{seed}"
    shutil.copytree(base["store"], store)
    args = ["ingest", base["src2"], "--store", store, "--project", "Song", "--json", "-q"]
    if mode == "timed":
        env = dict(__import__("os").environ, PYTHONPATH=str(Path(__file__).parent.parent))
        env.pop("ARCHIVESTORE_FAULT", None)
        env.update(MERGES)
        p = subprocess.Popen([sys.executable, "-m", "archivestore", *map(str, args)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 0.9) * base["duration"])  # startup is ~0.3 of it
        p.send_signal(signal.SIGKILL)
        rc = p.wait()
        fault = f"timed:{rng.random():.3f}"
    else:
        n = rng.randint(1, base["hits"][mode])
        fault = f"{mode}:{n}"
        rc = cli_subprocess(*args, env={"ARCHIVESTORE_FAULT": fault, **MERGES}).returncode
    killed = rc == -signal.SIGKILL
    assert killed or rc == 0, (fault, rc)

    # 1. consistent: no damage; leftovers are only reclaimable temp files and unindexed packs
    chk = fsck(store)
    assert chk["ok"] is True and chk["problems"] == [], (fault, chk["problems"])
    assert all(r["path"].startswith(("tmp/", "packs/")) for r in chk["reclaimable"]), chk
    # 2. what was committed before the crash restores byte-identically
    restore_equals(store, "Song", 1, base["src1"], tmp / "r1")
    vs = versions(store, "Song")
    if mode != "timed":
        assert vs == ([1] if killed else [1, 2]), (fault, vs)
    assert vs in ([1], [1, 2]), (fault, vs)
    orphans = _orphan_snapshots(store, chk["reclaimable"])
    # 3. the same ingest again succeeds, cleans the dead writer's temp files, and stores only
    #    what the crashed run had not made durable (indexed)
    with Store.open(store) as st:
        unique_before = st.stats()["bytes_unique"]
    again = run_json("ingest", base["src2"], "--store", store, "--project", "Song", "-q")
    # a durable record identical to the re-run's (same second) is the same snapshot, not a new one
    orphan = bool(orphans - {again["snapshot"]})
    assert list((store / "tmp").iterdir()) == [], fault
    if vs == [1]:
        assert again["version"] == 2
        assert again["bytes_new"] == (base["ref"]["bytes_new"]
                                      - (unique_before - base["base_stats"]["bytes_unique"])), fault
    else:
        assert again["version"] == 3 and again["bytes_new"] == 0
    restore_equals(store, "Song", again["version"], base["src2"], tmp / "r2")
    # 4. repair indexes complete packs of the dead run; nothing is left to reclaim or lost
    rep = fsck(store, "--repair")
    assert rep["ok"] is True and rep["reclaimable"] == [], (fault, rep)
    after = versions(store, "Song")
    # a durable but never committed record of the killed run does not rebind the re-run's
    assert after == sorted(set(vs + [again["version"]])), (fault, after, orphan)
    with Store.open(store) as st:
        assert st.version("Song", again["version"])[1]["id"] == again["snapshot"]
    final = fsck(store)
    assert final["ok"] is True and final["reclaimable"] == []
    shutil.rmtree(store)
    return {"fault": fault, "killed": killed, "orphan_snapshot": orphan}


MODES = list(POINTS) + ["timed"]


def _run_trials(base, tmp_path, n: int, seed0: int) -> list[dict]:
    out = [_trial(base, tmp_path, seed0 + i, MODES[i % len(MODES)]) for i in range(n)]
    fired = [o for o in out if o["killed"]]
    assert len(fired) >= 0.8 * n, out  # the faults really fired
    return out


def test_kill_ingest_fast(base, tmp_path):
    out = _run_trials(base, tmp_path, len(MODES), 100)
    assert {o["fault"].split(":")[0] for o in out} == set(MODES)


@pytest.mark.slow
def test_kill_ingest_many(base, tmp_path):
    out = _run_trials(base, tmp_path, 42, 1000)
    print("\n".join(f"{o['fault']:>20} killed={o['killed']} orphan={o['orphan_snapshot']}"
                    for o in out))


def test_kill_after_snapshot_durable_before_indexed(base, tmp_path):
    """The worst moment: the pack with the snapshot record is published but not indexed. The
    version is not committed; the re-run commits it; repair then indexes the dead run's pack
    but never rebinds the re-run's version to the dead run's record."""
    store = tmp_path / "store"
    shutil.copytree(base["store"], store)
    args = ("ingest", base["src2"], "--store", store, "--project", "Song", "--json", "-q")
    rc = cli_subprocess(*args, env={"ARCHIVESTORE_FAULT": "commit_index:1"}).returncode
    assert rc == -signal.SIGKILL
    chk = fsck(store)
    assert chk["ok"] is True and len(_orphan_snapshots(store, chk["reclaimable"])) == 1
    assert versions(store, "Song") == [1]
    time.sleep(1.1)  # a record of another second: a different snapshot
    again = run_json("ingest", base["src2"], "--store", store, "--project", "Song", "-q")
    assert again["version"] == 2
    rep = fsck(store, "--repair")
    assert rep["ok"] is True and any(r.startswith("indexed pack") for r in rep["repaired"])
    assert rep["reclaimable"] == []
    assert versions(store, "Song") == [1, 2]
    with Store.open(store) as st:
        assert st.version("Song", 2)[1]["id"] == again["snapshot"]
    restore_equals(store, "Song", 2, base["src2"], tmp_path / "r2")
    restore_equals(store, "Song", 1, base["src1"], tmp_path / "r1")
    # a full rebuild from the packs binds v2 to one of the two records, and both restore it
    rb = json.loads(run_cli("fsck", "--store", store, "--rebuild-index", "--json").stdout)
    assert rb["ok"] is True
    assert versions(store, "Song") == [1, 2]
    restore_equals(store, "Song", 2, base["src2"], tmp_path / "r3")


def _assert_full_then_recovers(store: Path, base: dict, r, tmp: Path, free=None) -> None:
    assert r.returncode == 3, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archive: error: store disk is full"), r.stderr
    assert "nothing was committed" in lines[0]
    assert list((store / "tmp").iterdir()) == []  # the failed pack's temp file is gone
    chk = fsck(store)
    assert chk["ok"] is True and chk["problems"] == []
    assert versions(store, "Song") == [1]
    restore_equals(store, "Song", 1, base["src1"], tmp / "r1")
    if free is not None:
        free()
    again = run_json("ingest", base["src2"], "--store", store, "--project", "Song", "-q")
    assert again["version"] == 2
    restore_equals(store, "Song", 2, base["src2"], tmp / "r2")
    assert fsck(store)["ok"] is True


@pytest.mark.parametrize("point", ["pack_write", "pack_fsync", "pack_publish", "index_commit",
                                   "index_txn"])
def test_disk_full_injected(base, tmp_path, point):
    """ENOSPC at the write layer (always runs): exit 3, one line, store consistent."""
    store = tmp_path / "store"
    shutil.copytree(base["store"], store)
    n = max(1, base["hits"][point] // 2)
    r = cli_subprocess("ingest", base["src2"], "--store", store, "--project", "Song", "-q",
                       env={"ARCHIVESTORE_FAULT": f"{point}:{n}:enospc"})
    _assert_full_then_recovers(store, base, r, tmp_path)


@contextlib.contextmanager
def _tmpfs(mnt: Path, size: str):
    """A real tmpfs of `size` mounted at mnt for the test (skipped where mounting is refused)."""
    mnt.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if m.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {m.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_real_tmpfs(base, tmp_path):
    """A real full filesystem: a 4 MiB tmpfs holding v1 and ballast up to ~150 kB free."""
    with _tmpfs(tmp_path / "mnt", "4m") as mnt:
        store = mnt / "store"
        shutil.copytree(base["store"], store)
        ballast = mnt / "ballast"
        st = os.statvfs(mnt)
        # leave ~150 kB: less than v2's 300 kB of incompressible new data alone
        ballast.write_bytes(b"\1" * (st.f_bavail * st.f_frsize - 150_000))
        r = cli_subprocess("ingest", base["src2"], "--store", store, "--project", "Song", "-q")
        _assert_full_then_recovers(store, base, r, tmp_path, free=ballast.unlink)


def test_restore_into_a_full_disk(base, tmp_path):
    """A restore target that fills up (a real 1 MiB tmpfs; v1 holds 1.3 MB; restored files
    are written with O_DIRECT, two at a time): exit 3 with the disk-full line, no partial file left,
    every file that is there complete, and a restore elsewhere afterwards still identical."""
    with _tmpfs(tmp_path / "mnt", "1m") as mnt:
        r = cli_subprocess("restore", "Song", "--store", base["store"], "--to", mnt / "r", "-q")
        assert r.returncode == 3, r.stderr
        assert "No space left on device" in r.stderr and "Traceback" not in r.stderr
        left = [p for p in (mnt / "r").rglob("*") if p.is_file()]
        assert not [p for p in left if p.name.endswith(".partial")]
        src1 = base["src1"]
        for p in left:
            assert p.read_bytes() == (src1 / p.relative_to(mnt / "r")).read_bytes(), p
    restore_equals(base["store"], "Song", 1, base["src1"], tmp_path / "again")


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """Two project folders (sharing a track) for one ingest run."""
    d = tmp_path_factory.mktemp("delivery")
    a = make_session(d / "in" / "Alpha", seed=11)
    b = make_session(d / "in" / "Bravo", seed=12)
    shutil.copy(a / "Audio Files" / "Track 1.wav", b / "Audio Files" / "Shared.wav")
    return {"a": a, "b": b}


@pytest.mark.parametrize("fault", ["snapshot:2", "commit_index:2", "chunk:60", "pack_fsync:3"])
def test_kill_a_delivery_between_and_inside_versions(delivery, tmp_path, fault):
    """A delivery of two folders is one pipeline, each folder committed on its own: a kill
    leaves the versions committed before it (in order, whole) and nothing else; the run
    again completes, and every version restores byte-identically."""
    store = make_store(tmp_path / "store")
    args = ["ingest", delivery["a"], delivery["b"], "--store", store, "--json", "-q"]
    r = cli_subprocess(*args, env={"ARCHIVESTORE_FAULT": fault})
    assert r.returncode == -signal.SIGKILL, (fault, r.returncode, r.stderr)
    done = [json.loads(line)["project"] for line in r.stdout.splitlines()]
    committed = [p for p in ("Alpha", "Bravo") if versions(store, p)]
    assert committed == done and committed in ([], ["Alpha"]), (fault, committed)
    if fault in ("snapshot:2", "commit_index:2"):
        assert committed == ["Alpha"]
    chk = fsck(store)
    assert chk["ok"] is True and chk["problems"] == [], (fault, chk["problems"])
    for p in committed:
        restore_equals(store, p, 1, delivery[p[0].lower()], tmp_path / f"r-{p}")
    again = [json.loads(line) for line in run_cli(*args).stdout.splitlines()]
    assert [(o["project"], o["version"]) for o in again] == \
        [("Alpha", 2 if committed else 1), ("Bravo", 1)]
    for o in again:
        restore_equals(store, o["project"], o["version"], delivery[o["project"][0].lower()],
                       tmp_path / f"again-{o['project']}")
    rep = fsck(store, "--repair")
    assert rep["ok"] is True and rep["reclaimable"] == [], (fault, rep)
