"""Concurrency with real processes: two ingests at once, fsck and restore beside an ingest,
locks held by live, killed and racing processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from archivestore.errors import LockedError
from archivestore.locks import HOST, StoreLock

from .conftest import ROOT, run_json
from .faultlib import cli_subprocess, fsck, make_session, make_store, restore_equals, versions


def _popen(*args, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    e.pop("ARCHIVESTORE_FAULT", None)
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "archivestore", *map(str, args)], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _big_session(root: Path, seed: int, mb: int) -> Path:
    make_session(root, seed=seed, tracks=1)
    (root / "big.bin").write_bytes(np.random.default_rng(seed).bytes(mb * 1024 * 1024))
    return root


def test_two_ingests_at_once(tmp_path):
    store = make_store(tmp_path / "store")
    a = _big_session(tmp_path / "a" / "Song", 1, 4)
    b = _big_session(tmp_path / "b" / "Song", 2, 4)
    c = _big_session(tmp_path / "c" / "Other", 3, 4)
    procs = [_popen("ingest", src, "--store", store, "--json", "-q") for src in (a, b, c)]
    outs = []
    for p in procs:
        so, se = p.communicate(timeout=180)
        assert p.returncode == 0, se
        outs.append(json.loads(so))
    # same project: serialised at commit into versions 1 and 2, each its own source
    assert sorted(o["version"] for o in outs[:2]) == [1, 2]
    for o, src in zip(outs, (a, b, c)):
        restore_equals(store, o["project"], o["version"], src, tmp_path / f"r{o['version']}{o['project']}")
    assert versions(store, "Song") == [1, 2] and versions(store, "Other") == [1]
    out = fsck(store)
    assert out["ok"] is True and out["reclaimable"] == [] and out["versions_checked"] == 3
    assert not (store / "locks" / "commit.lock").exists()


def test_fsck_and_restore_beside_a_running_ingest(tmp_path):
    store = make_store(tmp_path / "store")
    v1 = make_session(tmp_path / "v1" / "Song", seed=1)
    run_json("ingest", v1, "--store", store, "-q")
    v2 = _big_session(tmp_path / "v2" / "Song", 2, 24)
    p = _popen("ingest", v2, "--store", store, "--json", "-q")
    checks = restores = 0
    while p.poll() is None:
        out = fsck(store)  # must never take the in-progress ingest for damage
        assert out["ok"] is True and out["problems"] == [], out["problems"]
        checks += 1
        if p.poll() is None:
            restore_equals(store, "Song", 1, v1, tmp_path / "r1")
            restores += 1
    so, se = p.communicate()
    assert p.returncode == 0, se
    print("checks", checks, "restores", restores)
    assert checks >= 2 and restores >= 1, (checks, restores)
    assert json.loads(so)["version"] == 2
    restore_equals(store, "Song", 2, v2, tmp_path / "r2")
    assert fsck(store)["ok"] is True


HOLDER = """
import sys, time
from archivestore.locks import StoreLock
lock = StoreLock(sys.argv[1], "commit", "test holder")
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def _holder(store: Path, seconds: float):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), str(seconds)],
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_locked_store_waits_then_succeeds_or_says_who(tmp_path):
    store = make_store(tmp_path / "store")
    src = make_session(tmp_path / "s" / "Song", seed=1)
    h = _holder(store, 1.5)
    t0 = time.monotonic()
    r = cli_subprocess("ingest", src, "--store", store, "-q")  # waits for the commit lock
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 1.0
    h.wait()
    h = _holder(store, 30)
    try:
        with pytest.raises(LockedError) as e:
            StoreLock(store, "commit", "second", timeout=0.3).acquire()
        msg = str(e.value)
        assert msg.startswith(f"store is locked by {HOST}/pid {h.pid} (test holder) since 20")
    finally:
        h.kill()
        h.wait()


def test_lock_of_killed_process_is_stale(tmp_path):
    store = make_store(tmp_path / "store")
    src = make_session(tmp_path / "s" / "Song", seed=1)
    # an ingest killed while it holds the commit lock
    r = cli_subprocess("ingest", src, "--store", store, env={"ARCHIVESTORE_FAULT": "snapshot:1"})
    assert r.returncode == -signal.SIGKILL
    lock = store / "locks" / "commit.lock"
    assert lock.exists() and json.loads(lock.read_bytes())["op"] == "ingest Song"
    t0 = time.monotonic()
    out = run_json("ingest", src, "--store", store, "-q")
    assert out["version"] == 1 and time.monotonic() - t0 < 10
    assert not lock.exists()
    # a half-written lock file (killed between create and write) is stale once old
    lock.write_bytes(b"")
    old = time.time() - 60
    os.utime(lock, (old, old))
    out = run_json("ingest", src, "--store", store, "-q")
    assert out["version"] == 2 and not lock.exists()



def test_lock_from_an_earlier_boot_is_stale_even_if_its_pid_lives(tmp_path):
    """After a machine restart the pid in a leftover lock may name a new, unrelated process."""
    from archivestore import locks
    if not locks.BOOT:
        pytest.skip("no boot id on this system")
    lock = StoreLock(tmp_path, "commit", "test")
    lock.path.parent.mkdir()
    live = os.getppid()  # alive, and not this process (which would nest)
    lock.path.write_text(json.dumps({"host": HOST, "boot": "another-boot", "pid": live, "op": "x"}))
    assert lock._is_stale(lock.owner())
    lock.path.write_text(json.dumps({"host": HOST, "boot": locks.BOOT, "pid": live, "op": "x"}))
    assert not lock._is_stale(lock.owner())
    lock.path.write_text(json.dumps({"host": HOST, "pid": live, "op": "x"}))  # older archivestore
    assert not lock._is_stale(lock.owner())
    lock.path.write_text(json.dumps({"host": "elsewhere", "boot": "b", "pid": 1, "op": "x"}))
    assert not lock._is_stale(lock.owner())  # another machine's lock: only it can tell
    lock.path.unlink()
    with StoreLock(tmp_path, "commit", "test", timeout=1):
        held = json.loads(lock.path.read_bytes())
    assert held["boot"] == locks.BOOT and held["pid"] == os.getpid()

RACER = """
import os, sys, time
from archivestore.locks import StoreLock
store, log = sys.argv[1], sys.argv[2]
lock = StoreLock(store, "commit", "racer", timeout=60)
lock.acquire()
fd = os.open(log, os.O_WRONLY | os.O_APPEND)
os.write(fd, f"in {os.getpid()}\\n".encode())
time.sleep(0.02)
os.write(fd, f"out {os.getpid()}\\n".encode())
os._exit(0)  # dies holding the lock: every waiter finds the same stale owner at once
"""


def test_stale_lock_broken_by_many_waiters_keeps_exclusion(tmp_path):
    """Each holder dies holding the lock; the waiters all find it stale at once, and exactly
    one of them may take it each time."""
    store = make_store(tmp_path / "store")
    log = tmp_path / "log"
    log.write_text("")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    n = 8
    ps = [subprocess.Popen([sys.executable, "-c", RACER, str(store), str(log)], env=env)
          for _ in range(n)]
    deadline = time.monotonic() + 120
    while None in [p.poll() for p in ps]:  # reap all at once: a zombie's pid still looks alive
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert all(p.returncode == 0 for p in ps)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 * n
    for i in range(0, 2 * n, 2):  # strictly in/out pairs of the same process: no overlap
        assert lines[i].startswith("in ") and lines[i + 1] == "out " + lines[i][3:], lines


def _wait_state(pid: int, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == state:
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never reached state {state}")


def test_repair_indexing_a_committing_pack_loses_no_version(tmp_path):
    """`fsck --repair` indexes the pack an ingest has just published with its snapshot record
    (complete, not yet indexed) and is then killed; the ingest's commit must still record its
    version (it once returned early: the pack was known, the version never entered)."""
    from archivestore import Store
    store = make_store(tmp_path / "store")
    src = make_session(tmp_path / "s" / "Song", seed=1)
    ing = _popen("ingest", src, "--store", store, "--json", "-q",
                 env={"ARCHIVESTORE_FAULT": "commit_index:1:stop"})
    _wait_state(ing.pid, "T")  # frozen: snapshot pack published, commit lock held
    rep = _popen("fsck", "--store", store, "--repair", "--json")
    deadline = time.monotonic() + 60
    while True:  # until repair has indexed every pack (it then waits for the commit lock)
        with Store.open(store) as st:
            if {n for n, _s in st.list_pack_files()} == {n for n, _s, _c in st.index.iter_packs()}:
                break
        assert time.monotonic() < deadline and rep.poll() is None
        time.sleep(0.02)
    rep.kill()
    rep.wait()
    ing.send_signal(signal.SIGCONT)
    so, se = ing.communicate(timeout=60)
    assert ing.returncode == 0, se
    assert json.loads(so)["version"] == 1
    assert versions(store, "Song") == [1]
    restore_equals(store, "Song", 1, src, tmp_path / "r")
    out = fsck(store)
    assert out["ok"] is True and out["reclaimable"] == []
