"""S3 stores against a real Ceph RADOS Gateway started on 127.0.0.1 (run with `-m s3`)."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from archivestore.store import Store

from .ceph_rgw import CephRGW, available
from .conftest import assert_same_tree, make_tracks, run_cli, run_json, run_subprocess

pytestmark = [pytest.mark.s3,
              pytest.mark.skipif(not available(), reason="ceph-mon/ceph-osd/radosgw not installed")]


@pytest.fixture(scope="session")
def rgw(tmp_path_factory):
    cluster = CephRGW(tmp_path_factory.mktemp("rgw") / "ceph")
    env = cluster.start()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    cluster.stop()


@pytest.fixture
def url(rgw, tmp_path, monkeypatch) -> str:
    """A fresh store URL in a new bucket; this test's cache is under tmp_path/cache-main."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-main"))
    u = f"s3://t{uuid.uuid4().hex[:12]}/studio"
    run_cli("init", "--store", u)
    return u


def _cache(tmp_path: Path, name: str) -> dict:
    return {"XDG_CACHE_HOME": str(tmp_path / f"cache-{name}")}


def _objects(url: str, prefix: str) -> list[str]:
    with Store.open(url) as st:
        return [n for n, _ in st.backend.list(prefix)]


def test_ingest_restore_fsck_and_cache_rebuilt_from_bucket(url, session, tmp_path, monkeypatch):
    r = run_json("ingest", session, "--store", url)
    assert (r["project"], r["version"]) == ("Paper Boats", 1)
    assert r["files"] >= 5
    # the index lives in the local cache, never in the bucket
    cache = tmp_path / "cache-main" / "archivestore" / "remotes"
    (store_id,) = os.listdir(cache)
    assert (cache / store_id / "index" / "data.mdb").is_file()
    assert not [n for n in _objects(url, "index") if n.endswith(".mdb")]
    assert _objects(url, "index") and all(n.endswith(".seg") for n in _objects(url, "index"))

    # a second machine (empty cache) sees the version and restores it byte for byte
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-other"))
    vs = run_json("versions", "Paper Boats", "--store", url)
    assert [v["version"] for v in vs["versions"]] == [1]
    run_cli("restore", "Paper Boats", "--to", tmp_path / "out", "--store", url)
    assert_same_tree(session, tmp_path / "out")
    f = run_json("fsck", "--read-data", "--store", url)
    assert f["ok"] and f["problems"] == []

    # losing the cache loses nothing: it is rebuilt from the bucket on open
    shutil.rmtree(tmp_path / "cache-other")
    stats = run_json("stats", "--store", url)
    assert stats["versions"] == 1 and stats["projects"] == 1
    # and a full rebuild from the pack footers (LIST packs/) agrees
    f = run_json("fsck", "--rebuild-index", "--store", url)
    assert f["ok"], f


def test_second_ingest_dedups_and_restores_from_fresh_cache(url, tmp_path, monkeypatch):
    src = tmp_path / "Session"
    make_tracks(src, n=3, seconds=6.0)
    r1 = run_json("ingest", src, "--store", url)
    (src / "notes.txt").write_text("take 2")
    r2 = run_json("ingest", src, "--store", url)
    assert r2["version"] == 2
    assert r2["bytes_stored"] < r1["bytes_stored"] / 10  # the tracks are already there
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-fresh"))
    run_cli("restore", "Session", "--to", tmp_path / "out", "--version", "2", "--store", url)
    assert_same_tree(src, tmp_path / "out")


def test_objects_are_never_overwritten(url):
    from archivestore.s3 import ObjectExists
    with Store.open(url) as st:
        with pytest.raises(ObjectExists):
            st.backend.put_bytes("config.json", b"{}")
        assert json.loads(st.backend.get("config.json"))["format"] == "archivestore"
    r = run_cli("init", "--store", url, expect=None)
    assert r.exit_code != 0 and "already holds" in r.output


def test_two_concurrent_writers_lose_nothing(url, tmp_path):
    """Two processes with their own caches ingest overlapping projects at the same time."""
    a, b = tmp_path / "A" / "Shared Song", tmp_path / "B" / "Shared Song"
    make_tracks(a, n=4, seconds=5.0, seed=1)
    make_tracks(b, n=4, seconds=5.0, seed=1)          # same audio: dedup across writers is
    (b / "only-b.txt").write_text("b")               # not required, correctness is
    c = tmp_path / "A" / "Other"
    make_tracks(c, n=2, seconds=3.0, seed=7)
    import subprocess
    import sys
    procs = []
    for cache, folder in (("w1", a), ("w2", b), ("w1b", c), ("w2b", a)):
        env = dict(os.environ, **_cache(tmp_path, cache))
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        procs.append(subprocess.Popen([sys.executable, "-m", "archivestore", "ingest", str(folder),
                                       "--store", url, "--json"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    shared = sorted(o["version"] for o in outs if o["project"] == "Shared Song")
    assert shared == [1, 2, 3]  # three commits of one project: three distinct numbers
    # a third machine, fresh cache: every version is there, restores and checks clean
    env3 = _cache(tmp_path, "reader")
    p = run_subprocess("versions", "Shared Song", "--store", url, "--json", env=env3)
    assert p.returncode == 0, p.stderr
    got = {v["version"] for v in json.loads(p.stdout)["versions"]}
    assert got == {1, 2, 3}
    # the file catalog answers for every writer's versions too
    p = run_subprocess("find", "only-b.txt", "--store", url, "--json", env=env3)
    assert p.returncode == 0, p.stderr
    b_version = outs[1]["version"]  # the second process ingested folder b
    assert [(m["project"], m["path"], m["versions"]) for m in json.loads(p.stdout)["matches"]] \
        == [("Shared Song", "only-b.txt", [b_version])]
    for o, folder in zip(outs, (a, b, c, a)):
        out = tmp_path / f"restore-{o['project']}-{o['version']}"
        p = run_subprocess("restore", o["project"], "--version", str(o["version"]), "--to", out,
                           "--store", url, env=env3)
        assert p.returncode == 0, p.stderr
        assert_same_tree(folder, out)
        assert_same_tree(out, folder)
    p = run_subprocess("fsck", "--read-data", "--store", url, "--json", env=env3)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["problems"] == []


def test_restore_reads_in_parallel(url, tmp_path, monkeypatch):
    """A large file's chunks are fetched many at a time, not one by one."""
    import threading
    src = tmp_path / "Big"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(24 << 20))
    run_cli("ingest", src, "--store", url)
    from archivestore.restore import Restorer
    with Store.open(url) as st:
        inflight = peak = 0
        lock = threading.Lock()
        real = st.backend.get

        def counting(name, offset=0, length=None):
            nonlocal inflight, peak
            with lock:
                inflight += 1
                peak = max(peak, inflight)
            try:
                return real(name, offset, length)
            finally:
                with lock:
                    inflight -= 1
        st.backend.get = counting
        res = Restorer(st).restore("Big", tmp_path / "out")
    assert res.ok and res.bytes == 24 << 20
    assert peak >= 4
    assert (tmp_path / "out" / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_missing_store_and_bucket_are_one_line_errors(rgw, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    r = run_cli("projects", "--store", f"s3://nobucket{uuid.uuid4().hex[:8]}/x", expect=None)
    assert r.exit_code == 3 and "no such bucket" in r.output and "Traceback" not in r.output
    u = f"s3://t{uuid.uuid4().hex[:12]}"
    with Store.init(u):
        pass
    r = run_cli("projects", "--store", u + "/elsewhere", expect=None)
    assert r.exit_code == 3 and "no archive store at" in r.output


def test_encrypted_replica_in_a_bucket(rgw, session, tmp_path, monkeypatch):
    """3-2-1 offsite copy in S3, encrypted: the bucket holds no plaintext, a machine with only the
    passphrase restores it byte for byte, and tampering in the bucket is found by fsck."""
    from archivestore.s3 import S3Backend
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    src = tmp_path / "local"
    run_cli("init", "--store", src)
    run_json("ingest", session, "--store", src)
    url = f"s3://t{uuid.uuid4().hex[:12]}/offsite"
    monkeypatch.setenv("PW", "offsite passphrase")
    first = run_json("replicate", "--store", src, "--to", url, "--init", "--encrypt",
                     "--passphrase-env", "PW")
    assert first["packs_copied"] >= 1
    raw = S3Backend(url)
    pages = raw.client.get_paginator("list_objects_v2").paginate(Bucket=raw.bucket, Prefix="offsite/")
    names = [o["Key"][len("offsite/"):] for page in pages for o in page.get("Contents", ())]
    assert any(n.startswith("packs/") for n in names) and not any(n.endswith(".mdb") for n in names)
    blob = b"".join(raw.get(n) for n in names)
    track = (session / "Audio Files" / "Track 1.wav").read_bytes()
    assert track[len(track) // 2:len(track) // 2 + 48] not in blob and b"Paper Boats" not in blob

    # incremental: a new version goes up, only new packs are sent
    make_tracks(session / "Audio Files", n=1, seconds=1.0, seed=21)
    run_json("ingest", session, "--store", src)
    again = run_json("replicate", "--store", src, "--to", url, "--passphrase-env", "PW")
    assert [v["version"] for v in again["versions_added"]] == [2]

    # another machine: no cache, the passphrase only
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-other"))
    run_cli("restore", "Paper Boats", "--store", url, "--to", tmp_path / "nokey", expect=2)
    monkeypatch.setenv("ARCHIVE_PASSPHRASE", "offsite passphrase")
    run_cli("restore", "Paper Boats", "--store", url, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")
    assert run_json("fsck", "--read-data", "--store", url)["ok"]

    # objects are written once, so damage is simulated by a pack object replaced in place
    # through the raw client (what a faulty gateway or a hostile admin could do)
    pack, size = max(((n, s) for n, s in raw.list("packs/")), key=lambda t: t[1])
    data = bytearray(raw.get(pack))
    data[len(data) // 2] ^= 0x40
    raw.client.put_object(Bucket=raw.bucket, Key=raw._key(pack), Body=bytes(data))
    r = run_json("fsck", "--read-data", "--store", url, expect=1)
    assert not r["ok"] and r["problems"]
