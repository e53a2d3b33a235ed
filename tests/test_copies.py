"""3-2-1: replication (local folder, rclone local remote, encrypted), never propagating a
deletion, healing from a copy, copies registry and status, interrupted replication."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from archivestore import Store
from archivestore.packs import pack_object_name
from archivestore.replicate import Replicator, open_dest

from . import sshd
from .conftest import assert_same_tree, make_tracks, run_cli, run_json

SMALL_PACKS = 120_000  # several packs from a ~1 MB (codec-compressed) session, so packs can be damaged one by one


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Remote indexes go to a per-test cache; a local rclone remote is configured by env."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RCLONE_CONFIG_MYLOCAL_TYPE", "local")
    for var in ("ARCHIVE_KEY_FILE", "ARCHIVE_PASSPHRASE", "ARCHIVE_STORE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def src(tmp_path) -> Path:
    p = tmp_path / "src"
    Store.init(p, pack_target=SMALL_PACKS).close()
    return p


def pack_files(store: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_size for p in (store / "packs").glob("*/*.pack")}


def needs_rclone():
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed")


# -- replication -----------------------------------------------------------------------------
def test_replicate_incremental_and_verified(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    dest = tmp_path / "nas"
    first = run_json("replicate", "--store", src, "--to", dest, "--init")
    packs1 = pack_files(src)
    assert len(packs1) >= 4
    assert first["created"] and first["ok"]
    assert first["packs_copied"] == len(packs1) and first["bytes_copied"] == sum(packs1.values())
    assert pack_files(dest) == packs1
    assert [v["version"] for v in first["versions_added"]] == [1]
    cfg_s, cfg_d = (json.loads((p / "config.json").read_text()) for p in (src, dest))
    assert cfg_d["chunker"] == cfg_s["chunker"] and cfg_d["pack_target"] == SMALL_PACKS
    assert cfg_d["store_id"] != cfg_s["store_id"]

    # a second version: only its new packs move
    make_tracks(session / "Audio Files", n=1, seconds=3.0, seed=42)
    run_json("ingest", session, "--store", src)
    new = {n: s for n, s in pack_files(src).items() if n not in packs1}
    second = run_json("replicate", "--store", src, "--to", dest)
    assert not second["created"]
    assert second["packs_copied"] == len(new) and second["bytes_copied"] == sum(new.values())
    assert second["packs_present"] == len(packs1)
    assert [v["version"] for v in second["versions_added"]] == [2]
    third = run_json("replicate", "--store", src, "--to", dest)
    assert third["packs_copied"] == 0 and third["bytes_copied"] == 0

    out = tmp_path / "r"
    run_cli("restore", "Paper Boats", "--store", dest, "--to", out)
    assert_same_tree(session, out)
    assert run_json("fsck", "--read-data", "--store", dest)["ok"]


def test_missing_destination_is_an_error(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    gone = tmp_path / "unmounted" / "archive"
    r = run_cli("replicate", "--store", src, "--to", gone, expect=3)
    assert "is the drive mounted" in r.output and "--init" in r.output
    assert not gone.exists() and not gone.parent.exists()


def test_damaged_source_pack_is_not_propagated(session, store, tmp_path):
    src = store  # default 32 MiB packs: all data in one pack (the snapshot record in another)
    run_json("ingest", session, "--store", src)
    with Store.open(src) as st:
        n, rec = st.version("Paper Boats")
        entry = next(e for e in st.iter_tree(rec) if e["path"] == "Audio Files/Track 2.wav")
        loc = st.index.lookup(bytes.fromhex(entry["chunks"][0]))
    with open(src / pack_object_name(loc.pack), "r+b") as f:
        f.seek(loc.offset + 52 + loc.stored_len // 2)  # inside that chunk's payload, whatever its size
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    dest = tmp_path / "d"
    out = run_json("replicate", "--store", src, "--to", dest, "--init", expect=1)
    assert [(d["pack"], d["chunk"]) for d in out["damaged"]] == [(loc.pack, entry["chunks"][0])]
    with Store.open(dest) as d:
        assert d.index.lookup(bytes.fromhex(entry["chunks"][0])) is None
    # the rest of that pack arrived, re-packed under the same name, and verifies
    sp, dp = pack_files(src), pack_files(dest)
    assert set(dp) == set(sp) and dp[loc.pack] < sp[loc.pack] - loc.stored_len
    fs = run_json("fsck", "--read-data", "--store", dest, expect=1)
    assert {p["kind"] for p in fs["problems"]} == {"missing_chunk"}
    assert {a["path"] for p in fs["problems"] for a in p["affected"]} == {"Audio Files/Track 2.wav"}


def test_deletion_in_source_is_not_propagated(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    other = tmp_path / "Other"
    make_tracks(other, n=1, seconds=2.0, seed=7)
    run_json("ingest", other, "--store", src)
    dest = tmp_path / "d"
    run_json("replicate", "--store", src, "--to", dest, "--init")
    # "delete" project Other in the source: its snapshot's pack goes, the index is rebuilt
    with Store.open(src) as st:
        snap = bytes.fromhex(st.version("Other")[1]["id"])
        pack = st.index.lookup(snap).pack
    (src / pack_object_name(pack)).unlink()
    run_json("fsck", "--rebuild-index", "--store", src, expect=None)
    assert [p["project"] for p in run_json("projects", "--store", src)["projects"]] == ["Paper Boats"]
    make_tracks(session / "Audio Files", n=1, seconds=2.0, seed=43)
    run_json("ingest", session, "--store", src)
    out = run_json("replicate", "--store", src, "--to", dest)
    assert out["ok"] and [v["version"] for v in out["versions_added"]] == [2]
    projects = {p["project"]: p["latest"] for p in run_json("projects", "--store", dest)["projects"]}
    assert projects == {"Paper Boats": 2, "Other": 1}
    run_cli("restore", "Other", "--store", dest, "--to", tmp_path / "o")
    assert_same_tree(other, tmp_path / "o")
    assert pack in pack_files(dest)


def test_version_conflict_is_reported_not_overwritten(session, src, tmp_path):
    dest = tmp_path / "d"
    run_json("replicate", "--store", src, "--to", dest, "--init")  # empty replica
    direct = tmp_path / "Direct"
    make_tracks(direct, n=1, seconds=1.0, seed=3)
    run_json("ingest", direct, "--project", "Paper Boats", "--store", dest)
    run_json("ingest", session, "--store", src)
    out = run_json("replicate", "--store", src, "--to", dest, expect=1)
    with Store.open(src) as s, Store.open(dest) as d:
        src_id = s.version("Paper Boats", 1)[1]["id"]
        dest_id = d.version("Paper Boats", 1)[1]["id"]
    assert out["conflicts"] == [{"project": "Paper Boats", "version": 1, "snapshot": src_id,
                                 "dest_snapshot": dest_id}]
    assert src_id != dest_id
    run_cli("restore", "Paper Boats", "--store", dest, "--to", tmp_path / "r")
    assert_same_tree(direct, tmp_path / "r")
    # the conflict stays put on every later run, and survives an index rebuild
    again = run_json("replicate", "--store", src, "--to", dest, expect=1)
    assert again["packs_copied"] == 0 and again["conflicts"] == out["conflicts"]
    run_json("fsck", "--rebuild-index", "--store", dest, expect=None)
    with Store.open(dest) as d:
        assert [n for n, _ in d.versions("Paper Boats")] == [1]


def test_interrupted_replication_resumes(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    packs = pack_files(src)
    dest = tmp_path / "d"
    done: list[str] = []

    def stop_after_one(event):
        done.append(event["pack"])
        raise KeyboardInterrupt

    with Store.open(src) as s:
        d, created = open_dest(str(dest), s, init=True)
        with d, pytest.raises(KeyboardInterrupt):
            Replicator(s, d, progress=stop_after_one).run()
    before = pack_files(dest)  # packs in flight when interrupted may have finished too
    assert created and set(done) <= set(before) and len(before) < len(packs) - 1
    # a pack published by an interrupted run but not yet indexed at the destination
    orphan = next(n for n in packs if n not in before)
    (dest / pack_object_name(orphan)).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / pack_object_name(orphan), dest / pack_object_name(orphan))
    out = run_json("replicate", "--store", src, "--to", dest)
    assert out["packs_resumed"] == 1 and out["packs_present"] == len(before)
    assert out["packs_copied"] == len(packs) - len(before) - 1
    assert out["bytes_copied"] == sum(s for n, s in packs.items() if n not in before and n != orphan)
    assert pack_files(dest) == packs
    run_cli("restore", "Paper Boats", "--store", dest, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")


# -- healing ---------------------------------------------------------------------------------
def _chunk_pack(store: Path, path: str) -> tuple[str, object]:
    """The biggest chunk of `path` in the latest version, and where the index puts it."""
    with Store.open(store) as st:
        rec = st.version("Paper Boats")[1]
        e = next(e for e in st.iter_tree(rec) if e["path"] == path)
        locs = [(st.index.lookup(bytes.fromhex(c)), c) for c in e["chunks"]]
        loc, cid = max(locs, key=lambda lc: lc[0].plain_len)
        return cid, loc


def test_heal_from_copy(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    dest = tmp_path / "d"
    run_json("replicate", "--store", src, "--to", dest, "--init")
    cid, loc = _chunk_pack(src, "Audio Files/Track 2.wav")
    with open(src / pack_object_name(loc.pack), "r+b") as f:   # rot one byte in one chunk
        f.seek(loc.offset + 52 + 5000)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    with Store.open(src) as st:  # lose the pack with the snapshot record and its tree part
        rec = st.version("Paper Boats")[1]
        snap_pack = st.index.lookup(bytes.fromhex(rec["id"])).pack
        tree_pack = st.index.lookup(bytes.fromhex(rec["tree"][0])).pack
    cid3, loc3 = _chunk_pack(src, "Audio Files/Track 3.wav")
    lost_packs = {snap_pack, tree_pack, loc3.pack} - {loc.pack}
    for p in lost_packs:
        (src / pack_object_name(p)).unlink()
    before = run_json("fsck", "--read-data", "--store", src, expect=1)
    assert {p["kind"] for p in before["problems"]} >= {"damaged_blob", "missing_pack"}

    healed = run_json("fsck", "--read-data", "--repair", "--from", dest, "--store", src)
    assert healed["ok"] and healed["unavailable"] == []
    ids = {h["chunk"] for h in healed["healed"]}
    assert {cid, cid3, rec["id"], rec["tree"][0]} <= ids
    assert all(h["from"] == str(dest) for h in healed["healed"])
    after = run_json("fsck", "--read-data", "--store", src)
    assert after["ok"] and after["problems"] == []
    reclaim = {r["path"] for r in after["reclaimable"] if "superseded" in r["reason"]}
    assert pack_object_name(loc.pack) in reclaim and {pack_object_name(p) for p in lost_packs} <= reclaim
    out = tmp_path / "r"
    run_cli("restore", "Paper Boats", "--store", src, "--to", out)
    assert_same_tree(session, out)
    # the healed store still replicates cleanly (the superseded damaged blob is not copied)
    again = run_json("replicate", "--store", src, "--to", tmp_path / "d2", "--init")
    assert again["ok"] and again["damaged"] == []
    # an index pointing back at the damaged copy (as a rebuild may) is re-pointed to the sound
    # copy already in the store, without fetching anything
    from archivestore.packs import BlobRef
    with Store.open(src) as st:
        good = st.index.lookup(bytes.fromhex(cid))
        assert good.pack != loc.pack
        st.index.repoint(loc.pack, [BlobRef(bytes.fromhex(cid), loc.offset, loc.plain_len,
                                            loc.stored_len, loc.kind, loc.codec)])
    run_json("fsck", "--read-data", "--store", src, expect=1)
    shutil.rmtree(dest)  # no copy reachable: the store heals itself
    dest.mkdir()
    Store.init(dest / "empty").close()
    again = run_json("fsck", "--read-data", "--repair", "--from", dest / "empty", "--store", src)
    assert [(h["chunk"], h["pack"]) for h in again["healed"]] == [(cid, good.pack)]
    run_cli("restore", "Paper Boats", "--store", src, "--to", tmp_path / "r2")
    assert_same_tree(session, tmp_path / "r2")


def test_heal_reports_what_no_copy_holds(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    dest = tmp_path / "d"
    run_json("replicate", "--store", src, "--to", dest, "--init")
    make_tracks(session / "Audio Files", n=4, seconds=3.0, seed=77)  # new Track 4, not replicated
    run_json("ingest", session, "--store", src)
    cid, loc = _chunk_pack(src, "Audio Files/Track 4.wav")
    (src / pack_object_name(loc.pack)).unlink()
    r = run_json("fsck", "--read-data", "--repair", "--from", dest, "--store", src, expect=1)
    assert cid in r["unavailable"]
    lost = [p for p in r["problems"] if p["chunk"] == cid]
    assert lost and {a["path"] for a in lost[0]["affected"]} == {"Audio Files/Track 4.wav"}
    healed_ids = {h["chunk"] for h in r["healed"]}
    assert cid not in healed_ids
    text = run_cli("fsck", "--read-data", "--repair", "--from", dest, "--store", src, expect=1).output
    assert "held by no copy (lost)" in text and "Track 4.wav" in text


def test_heal_needs_read_data_and_repair(src, tmp_path):
    run_cli("fsck", "--from", tmp_path, "--store", src, expect=2)


# -- encryption ------------------------------------------------------------------------------
def _pcm_run(session: Path) -> bytes:
    d = (session / "Audio Files" / "Track 1.wav").read_bytes()
    return d[len(d) // 2:len(d) // 2 + 48]


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_encrypted_replica_holds_no_plaintext(session, src, tmp_path, monkeypatch):
    # PCM is stored by the audio codec, so the control probe is an incompressible file (stored raw)
    (session / "render.bin").write_bytes(os.urandom(100_000))
    run_json("ingest", session, "--store", src)
    plain, enc, keyf = tmp_path / "plain", tmp_path / "enc", tmp_path / "offsite.key"
    run_json("replicate", "--store", src, "--to", plain, "--init")
    out = run_json("replicate", "--store", src, "--to", enc, "--init", "--encrypt", "--key-file", keyf)
    assert "Without this key the offsite copy is unreadable" in out["warning"]
    assert "archive key export" in out["warning"]
    assert keyf.stat().st_mode & 0o777 == 0o600
    run = _pcm_run(session)
    raw_run = (session / "render.bin").read_bytes()[50_000:50_048]
    some_id = bytes.fromhex(_chunk_pack(src, "Paper Boats.ptx")[0])
    assert raw_run in _all_bytes(plain) and some_id in _all_bytes(plain)  # the probes are meaningful
    blob = _all_bytes(enc)
    assert run not in blob and raw_run not in blob and some_id not in blob and b"Paper Boats" not in blob
    assert not (enc / "index").exists()
    cfg = json.loads((enc / "config.json").read_text())
    assert set(cfg["encryption"]) == {"scheme", "segment", "key", "check"}
    assert cfg["encryption"]["check"] not in keyf.read_text()

    # restore: refused without the key, works with it, verified byte for byte
    run_cli("restore", "Paper Boats", "--store", enc, "--to", tmp_path / "x", expect=2)
    monkeypatch.setenv("ARCHIVE_KEY_FILE", str(keyf))
    run_cli("restore", "Paper Boats", "--store", enc, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")
    # incremental replication to the encrypted copy
    make_tracks(session / "Audio Files", n=1, seconds=1.0, seed=12)
    run_json("ingest", session, "--store", src)
    again = run_json("replicate", "--store", src, "--to", enc, "--key-file", keyf)
    assert again["packs_copied"] >= 1 and [v["version"] for v in again["versions_added"]] == [2]
    # tampering is detected, never returned
    victim = sorted((enc / "packs").glob("*/*.pack"), key=lambda p: p.stat().st_size)[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    r = run_json("fsck", "--read-data", "--store", enc, expect=1)
    assert any(p["pack"] == victim.stem for p in r["problems"])


def test_passphrase_key_export_and_wrong_key(session, src, tmp_path, monkeypatch):
    run_json("ingest", session, "--store", src)
    enc = tmp_path / "enc"
    monkeypatch.setenv("PW", "correct horse battery")
    run_json("replicate", "--store", src, "--to", enc, "--init", "--encrypt", "--passphrase-env", "PW")
    cfg = json.loads((enc / "config.json").read_text())["encryption"]
    assert cfg["key"] == "scrypt" and len(cfg["scrypt"]["salt"]) == 32
    exported = tmp_path / "exported.key"
    run_cli("key", "export", "--store", enc, "--passphrase-env", "PW", "--out", exported)
    printed = run_cli("key", "export", "--store", enc, "--passphrase-env", "PW").output
    assert printed == exported.read_text() and "archivestore-key-v1 " in printed
    run_cli("key", "export", "--store", enc, "--passphrase-env", "PW", "--out", exported, expect=3)
    # the exported key file opens the copy without the passphrase, even with a cold cache
    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setenv("ARCHIVE_KEY_FILE", str(exported))
    run_cli("restore", "Paper Boats", "--store", enc, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")
    monkeypatch.delenv("ARCHIVE_KEY_FILE")
    monkeypatch.setenv("ARCHIVE_PASSPHRASE", "wrong horse battery")
    r = run_cli("restore", "Paper Boats", "--store", enc, "--to", tmp_path / "w", expect=2)
    assert "wrong key" in r.output
    run_cli("key", "export", "--store", src, expect=2)  # not encrypted


# -- rclone remotes --------------------------------------------------------------------------
def test_rclone_local_remote_replicate_restore_heal(session, src, tmp_path, monkeypatch):
    needs_rclone()
    run_json("ingest", session, "--store", src)
    remote_dir = tmp_path / "remote"
    url = f"rclone:mylocal:{remote_dir}"
    first = run_json("replicate", "--store", src, "--to", url, "--init")
    assert first["created"] and first["packs_copied"] == len(pack_files(src))
    assert pack_files(remote_dir) == pack_files(src)
    assert not (remote_dir / "index").exists()
    assert list((remote_dir / "tmp").glob("*")) == []  # uploads were renamed into place
    make_tracks(session / "Audio Files", n=1, seconds=1.0, seed=5)
    run_json("ingest", session, "--store", src)
    second = run_json("replicate", "--store", src, "--to", url)
    assert second["packs_copied"] == len(pack_files(src)) - first["packs_copied"]
    # restore from the remote, then again with the local index cache gone (rebuilt)
    run_cli("restore", "Paper Boats", "--store", url, "--to", tmp_path / "r1")
    assert_same_tree(session, tmp_path / "r1")
    shutil.rmtree(tmp_path / "cache")
    run_cli("restore", "Paper Boats", "--version", "1", "--store", url, "--to", tmp_path / "r2")
    assert run_json("fsck", "--read-data", "--store", url)["ok"]
    # heal the source from the remote
    cid, loc = _chunk_pack(src, "Paper Boats.ptx")
    (src / pack_object_name(loc.pack)).unlink()
    healed = run_json("fsck", "--read-data", "--repair", "--from", url, "--store", src)
    assert healed["ok"] and cid in {h["chunk"] for h in healed["healed"]}
    run_cli("restore", "Paper Boats", "--store", src, "--to", tmp_path / "r3")
    assert_same_tree(session, tmp_path / "r3")
    run_cli("replicate", "--store", src, "--to", "rclone:mylocal:" + str(tmp_path / "none"), expect=3)


def test_rclone_encrypted_remote(session, src, tmp_path, monkeypatch):
    needs_rclone()
    run_json("ingest", session, "--store", src)
    remote_dir = tmp_path / "remote"
    url = f"rclone:mylocal:{remote_dir}"
    monkeypatch.setenv("PW", "offsite passphrase")
    run_json("replicate", "--store", src, "--to", url, "--init", "--encrypt", "--passphrase-env", "PW")
    blob = _all_bytes(remote_dir)
    assert _pcm_run(session) not in blob and b"Paper Boats" not in blob
    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setenv("ARCHIVE_PASSPHRASE", "offsite passphrase")
    run_cli("restore", "Paper Boats", "--store", url, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")


# -- copies and 3-2-1 status -----------------------------------------------------------------
def test_status_321(session, src, tmp_path):
    run_json("ingest", session, "--store", src)
    st = run_json("status", "--store", src)
    [p] = st["projects"]
    assert (p["copies"], p["media"], p["offsite"], p["ok"]) == (1, ["local"], False, False)
    assert p["issues"] == ["1 copy (3 needed)", "1 media type (2 needed)", "no offsite copy"]

    nas = tmp_path / "nas"
    run_json("store", "add", "nas", nas, "--media", "nas", "--store", src)
    run_json("replicate", "--store", src, "--to", "nas", "--init")
    st = run_json("status", "--store", src)
    [p] = st["projects"]
    assert (p["copies"], p["media"], p["offsite"], p["ok"]) == (2, ["local", "nas"], False, False)
    assert p["issues"] == ["2 copies (3 needed)", "no offsite copy"]
    assert not st["ok"]

    needs_rclone()
    url = f"rclone:mylocal:{tmp_path / 'cloud'}"
    run_json("store", "add", "cloud", url, "--media", "remote", "--offsite", "--store", src)
    run_json("replicate", "--store", src, "--to", "cloud", "--init")
    run_json("fsck", "--read-data", "--store", nas)
    st = run_json("status", "--store", src)
    [p] = st["projects"]
    assert (p["copies"], p["stores"], p["offsite"], p["ok"]) == (3, ["primary", "nas", "cloud"], True, True)
    assert st["ok"]
    rows = {s["name"]: s for s in st["stores"]}
    assert rows["nas"]["last_verified"] and rows["nas"]["last_replicate"]
    assert rows["cloud"]["last_replicate"] and rows["cloud"]["last_verified"] is None
    assert rows["primary"]["last_verified"] is None
    text = run_cli("status", "--store", src).output
    assert "3-2-1 ok" in text

    # a new version only the primary holds breaks 3-2-1 again; an unmounted copy is named
    make_tracks(session / "Audio Files", n=1, seconds=1.0, seed=21)
    run_json("ingest", session, "--store", src)
    nas.rename(tmp_path / "nas-unmounted")
    st = run_json("status", "--store", src)
    [p] = st["projects"]
    assert (p["version"], p["copies"], p["ok"]) == (2, 1, False)
    assert {s["name"]: s["reachable"] for s in st["stores"]} == {"primary": True, "nas": False, "cloud": True}
    assert "BREAKS 3-2-1" in run_cli("status", "--store", src).output
    copies = json.loads((src / "copies.json").read_text())
    assert [c["name"] for c in copies["copies"]] == ["nas", "cloud"]


# -- SFTP through a real OpenSSH server ------------------------------------------------------
@pytest.fixture
def sftp_url(tmp_path, monkeypatch):
    """An rclone SFTP remote `mysftp:` on a real OpenSSH server started for this test."""
    why = sshd.missing()
    if why:
        pytest.skip(why)
    with sshd.sftp_server(tmp_path / "ssh") as env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield f"rclone:mysftp:{tmp_path / 'sftp-remote'}"


@pytest.mark.net
def test_sftp_remote_replicate_and_restore(session, store, tmp_path, sftp_url, monkeypatch):
    src = store  # default-size packs: few rclone calls, each one an SSH session
    run_json("ingest", session, "--store", src)
    out = run_json("replicate", "--store", src, "--to", sftp_url, "--init")
    assert out["ok"] and out["packs_copied"] == len(pack_files(src))
    assert pack_files(tmp_path / "sftp-remote") == pack_files(src)
    make_tracks(session / "Audio Files", n=1, seconds=1.0, seed=31)
    run_json("ingest", session, "--store", src)
    again = run_json("replicate", "--store", src, "--to", sftp_url)
    assert again["packs_copied"] == len(pack_files(src)) - out["packs_copied"]
    shutil.rmtree(tmp_path / "cache")
    run_cli("restore", "Paper Boats", "--store", sftp_url, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")


@pytest.mark.net
@pytest.mark.slow
def test_sftp_encrypted_remote(session, store, tmp_path, sftp_url, monkeypatch):
    src = store
    run_json("ingest", session, "--store", src)
    monkeypatch.setenv("PW", "sftp offsite pass")
    enc = sftp_url + "-enc"
    run_json("replicate", "--store", src, "--to", enc, "--init", "--encrypt", "--passphrase-env", "PW")
    assert _pcm_run(session) not in _all_bytes(tmp_path / "sftp-remote-enc")
    monkeypatch.setenv("ARCHIVE_PASSPHRASE", "sftp offsite pass")
    run_cli("restore", "Paper Boats", "--store", enc, "--to", tmp_path / "r2")
    assert_same_tree(session, tmp_path / "r2")


def test_killed_replication_to_remote_resumes(session, src, tmp_path):
    """SIGKILL the real `archive replicate` (and its rclone children) mid-run, then rerun."""
    import signal
    import subprocess
    import sys
    import time
    needs_rclone()
    run_json("ingest", session, "--store", src)
    packs = pack_files(src)
    remote = tmp_path / "remote"
    url = f"rclone:mylocal:{remote}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, "-m", "archivestore", "replicate", "--store", str(src),
                             "--to", url, "--init", "-q"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not ((remote / "packs").is_dir() and pack_files(remote)):
            assert proc.poll() is None, "replication finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = pack_files(remote)
    assert 1 <= len(before) < len(packs)
    out = run_json("replicate", "--store", src, "--to", url)
    assert out["packs_copied"] + out["packs_present"] + out["packs_resumed"] == len(packs)
    assert out["packs_copied"] == len(packs) - len(before)
    assert pack_files(remote) == packs
    run_cli("restore", "Paper Boats", "--store", url, "--to", tmp_path / "r")
    assert_same_tree(session, tmp_path / "r")


def test_rclone_backend_reads_and_encrypted_ranges(tmp_path):
    """Range reads through rclone (cat for small and tail reads, one whole-object download for
    big ones) and through the encrypted layer on top, against the plain bytes."""
    needs_rclone()
    from archivestore.encryption import EncryptedBackend, new_encryption
    from archivestore.remotes import RcloneBackend
    data = os.urandom(6 * 1024 * 1024 + 12345)
    b = RcloneBackend(f"mylocal:{tmp_path / 'r'}")
    src = b.temp_path(".x")
    src.write_bytes(data)
    b.put("packs/ab/obj", src)
    assert not src.exists() and b.size("packs/ab/obj") == len(data)
    calls = b.calls
    assert b.get("packs/ab/obj", 100, 1000) == data[100:1100]                      # cat
    assert b.get("packs/ab/obj", len(data) - 2_000_000, 2_000_000) == data[-2_000_000:]  # tail cat
    assert b.calls == calls + 2
    assert b.get("packs/ab/obj", 1_000_000, 1_500_000) == data[1_000_000:2_500_000]  # download
    assert b.get("packs/ab/obj", 3_000_000, 1_500_000) == data[3_000_000:4_500_000]  # cached
    assert b.calls == calls + 3
    assert list(b.list("packs")) == [("packs/ab/obj", len(data))]
    with pytest.raises(Exception, match="missing"):
        b.get("packs/ab/none", 0, 10)

    block, master = new_encryption(str(tmp_path / "k"), None)
    e = EncryptedBackend(RcloneBackend(f"mylocal:{tmp_path / 'e'}"), block)
    e.unlock(master)
    src = e.temp_path(".x")
    src.write_bytes(data)
    e.put("packs/cd/obj", src)
    sealed = b"".join(p.read_bytes() for p in (tmp_path / "e").rglob("obj"))
    assert data[:4096] not in sealed and len(sealed) > len(data)
    assert e.size("packs/cd/obj") == len(data)
    for off, n in [(0, 10), (1048570, 20), (len(data) - 65536, 65536), (5_000_000, 1_300_000)]:
        assert e.get("packs/cd/obj", off, n) == data[off:off + n]


def test_a_chunk_only_the_index_knows_is_named_by_its_key_and_healed_by_it(session, src, tmp_path):
    """A chunk of a missing pack that no version references: only the index knows it, by its
    24-byte key (index format 4). fsck names it by that key (48 hex digits); heal fetches it
    from a copy by the key and names the full id the copy's blob header gives."""
    from archivestore import hashing
    from archivestore.packs import PackWriter
    run_json("ingest", session, "--store", src)
    data = os.urandom(5000)
    cid = hashing.chunk_id(data)
    with Store.open(src) as st:  # an orphan: indexed, in no version
        w = PackWriter(st.backend)
        w.add(cid, 0, 0, len(data), data)
        name, size, entries = w.finish()
        st.index.add_pack(name, size, entries)
    dest = tmp_path / "d"
    assert run_json("replicate", "--store", src, "--to", dest, "--init")["ok"]
    (src / pack_object_name(name)).unlink()
    out = run_json("fsck", "--store", src, expect=1)
    assert [(p["kind"], p["pack"], p["chunk"], p["affected"]) for p in out["problems"]] == [
        ("missing_pack", name, cid[:24].hex(), [])]
    healed = run_json("fsck", "--read-data", "--repair", "--from", dest, "--store", src)
    assert healed["ok"] and healed["unavailable"] == []
    assert [(h["chunk"], h["from"]) for h in healed["healed"]] == [(cid.hex(), str(dest))]
    with Store.open(src) as st:
        assert st.read_blob(cid) == data


def test_rclone_abandoned_upload_parts_are_found_and_removed(session, src, tmp_path):
    """An upload killed between copy and rename leaves tmp/<uuid>.part on the remote: fsck lists
    it as reclaimable once it is a day old, --repair removes it; a fresh part (an upload that may
    still be running on another machine) is left alone."""
    needs_rclone()
    run_json("ingest", session, "--store", src)
    remote_dir = tmp_path / "remote"
    url = f"rclone:mylocal:{remote_dir}"
    run_json("replicate", "--store", src, "--to", url, "--init")
    (remote_dir / "tmp").mkdir(exist_ok=True)
    old, fresh = remote_dir / "tmp" / f"{'a' * 32}.part", remote_dir / "tmp" / f"{'b' * 32}.part"
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y" * 10)
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    r = run_json("fsck", "--store", url)
    assert r["ok"] and [(x["path"], x["bytes"]) for x in r["reclaimable"]] == [(f"tmp/{old.name}", 1000)]
    r = run_json("fsck", "--repair", "--store", url)
    assert r["ok"] and f"removed tmp/{old.name}" in r["repaired"]
    assert not old.exists() and fresh.exists()
    assert run_json("fsck", "--store", url)["reclaimable"] == []
