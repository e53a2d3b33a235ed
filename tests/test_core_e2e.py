"""End to end through the CLI: ingest → restore byte-identical, versions, dedup, fsck, rebuild."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from archivestore import Store
from archivestore.packs import pack_object_name

from .conftest import assert_same_tree, make_tracks, run_cli, run_json, run_subprocess


def test_ingest_restore_identical(session, store, tmp_path):
    out = run_json("ingest", session, "--store", store)
    assert out["project"] == "Paper Boats" and out["version"] == 1
    assert out["files"] == 7 and out["bytes_in"] > 1_000_000
    assert set(out) >= {"project", "version", "files", "bytes_in", "bytes_new", "bytes_stored", "seconds"}
    dest = tmp_path / "restored"
    r = run_json("restore", "Paper Boats", "--store", store, "--to", dest)
    assert r["files"] == 7 and r["version"] == 1 and r["bytes"] == out["bytes_in"]
    assert_same_tree(session, dest)
    assert (dest / "Video").is_dir() and not any((dest / "Video").iterdir())
    assert os.readlink(dest / "dangling") == "does/not/exist"
    assert (dest / "empty.txt").read_bytes() == b""


def test_second_version_stores_little(session, store, tmp_path):
    v1 = run_json("ingest", session, "--store", store)
    # revision: one take re-recorded, notes edited, a file renamed
    make_tracks(session / "Audio Files", n=1, seconds=3.0, seed=99)
    (session / "Sessión — ñotes ☂.txt").write_text("Bass up 3 dB\n", encoding="utf-8")
    (session / "Bounced Files" / "Mixes" / "Track 1.wav").rename(session / "Bounced Files" / "Mixes" / "Mix v1.wav")
    v2 = run_json("ingest", session, "--store", store)
    assert v2["version"] == 2
    assert v2["bytes_new"] < 0.4 * v2["bytes_in"], v2
    vs = run_json("versions", "Paper Boats", "--store", store)
    assert [v["version"] for v in vs["versions"]] == [1, 2]
    d1, d2 = tmp_path / "r1", tmp_path / "r2"
    run_cli("restore", "Paper Boats", "--store", store, "--to", d2)
    assert_same_tree(session, d2)
    r = run_json("restore", "Paper Boats", "--version", "1", "--store", store, "--to", d1)
    assert r["version"] == 1 and r["bytes"] == v1["bytes_in"]


def test_unchanged_reingest_adds_nothing(session, store):
    run_json("ingest", session, "--store", store)
    again = run_json("ingest", session, "--store", store)
    assert again["bytes_new"] == 0 and again["version"] == 2


def test_project_name_override_and_env(session, store, tmp_path):
    r = run_cli("ingest", session, "--project", "PB Final", "--json", env={"ARCHIVE_STORE": str(store)})
    assert json.loads(r.stdout)["project"] == "PB Final"
    p = run_json("projects", "--store", store)
    assert [x["project"] for x in p["projects"]] == ["PB Final"]


def test_partial_restore_and_ls(session, store, tmp_path):
    run_json("ingest", session, "--store", store)
    dest = tmp_path / "part"
    r = run_json("restore", "Paper Boats", "Audio Files/Track 2.wav", "--store", store, "--to", dest)
    assert r["files"] == 1
    assert (dest / "Audio Files" / "Track 2.wav").read_bytes() == (session / "Audio Files" / "Track 2.wav").read_bytes()
    assert not (dest / "Paper Boats.ptx").exists()
    ls = run_json("ls", "Paper Boats", "--store", store)
    paths = {e["path"] for e in ls["entries"]}
    assert "Audio Files/Track 1.wav" in paths and "Video" in paths
    assert "Track 1.wav" in run_cli("ls", "Paper Boats", "--store", store).stdout


def test_restore_refuses_overwrite(session, store, tmp_path):
    run_json("ingest", session, "--store", store)
    dest = tmp_path / "d"
    run_cli("restore", "Paper Boats", "--store", store, "--to", dest)
    (dest / "Paper Boats.ptx").write_bytes(b"changed")
    r = run_cli("restore", "Paper Boats", "--store", store, "--to", dest, expect=2)
    assert "--overwrite" in r.output
    run_cli("restore", "Paper Boats", "--store", store, "--to", dest, "--overwrite")
    assert_same_tree(session, dest)


def test_fsck_clean_and_stats(session, store):
    run_json("ingest", session, "--store", store)
    f = run_json("fsck", "--read-data", "--store", store)
    assert f["ok"] and f["chunks_checked"] > 0 and f["problems"] == []
    s = run_json("stats", "--store", store)
    assert s["projects"] == 1 and s["versions"] == 1 and s["chunks"] > 0
    assert s["bytes_unique"] <= s["bytes_logical"] and s["bytes_stored"] > 0
    assert s["codec"]["checked"] > 0 and s["codec"]["versions_unrecorded"] == 0


def test_stats_counts_versions_without_the_codec_record(session, store):
    """A version whose record predates the codec's check record (session 17) is counted as
    such, not as checked."""
    run_json("ingest", session, "--store", store)
    run_json("ingest", session, "--store", store)
    with Store.open(store) as st:
        # version 2's record (version 1 stored, and so checked, every chunk)
        key, rec = [(k, json.loads(v)) for k, v in st.index.env.begin().cursor(st.index.versions)][-1]
        assert rec["version"] == 2
        for f in ("codec_checked", "codec_failed", "codec_failed_count", "codec_unchecked"):
            del rec[f]
        with st.index.env.begin(write=True) as txn:
            txn.put(key, json.dumps(rec).encode(), db=st.index.versions)
    s = run_json("stats", "--store", store)["codec"]
    assert s["versions_unrecorded"] == 1 and s["checked"] > 0
    assert "1 version made before archivestore recorded this check" in \
        run_cli("stats", "--store", store).output


def _packs(store: Path) -> list[Path]:
    return sorted(store.glob("packs/*/*.pack"))


def test_fsck_finds_flipped_bit_and_names_file(session, store, tmp_path):
    run_json("ingest", session, "--store", store)
    with Store.open(store) as st:
        n, rec = st.version("Paper Boats")
        entry = next(e for e in st.iter_tree(rec) if e["path"] == "Audio Files/Track 2.wav")
        cid = bytes.fromhex(entry["chunks"][-1])
        loc = st.index.lookup(cid)
    path = store / pack_object_name(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + 52 + loc.stored_len // 2] ^= 0x10  # a payload bit of that file's chunk
    path.write_bytes(bytes(data))
    f = run_json("fsck", "--read-data", "--store", store, expect=1)
    assert not f["ok"]
    prob = next(p for p in f["problems"] if p["chunk"] == cid.hex())
    assert prob["pack"] == loc.pack
    assert {"project": "Paper Boats", "version": 1, "path": "Audio Files/Track 2.wav"} in prob["affected"]
    # restore: the damaged file fails loudly and is not written; the rest is restored
    dest = tmp_path / "out"
    r = run_json("restore", "Paper Boats", "--store", store, "--to", dest, expect=1)
    assert [x["path"] for x in r["failed"]] == ["Audio Files/Track 2.wav"]
    assert not (dest / "Audio Files" / "Track 2.wav").exists()
    assert not list((dest / "Audio Files").glob("*.partial"))
    assert (dest / "Audio Files" / "Track 1.wav").read_bytes() == (session / "Audio Files" / "Track 1.wav").read_bytes()


def test_index_deleted_rebuilt(session, store, tmp_path):
    run_json("ingest", session, "--store", store)
    make_tracks(session / "Audio Files", n=1, seconds=1.0, seed=42)
    run_json("ingest", session, "--store", store)
    shutil.rmtree(store / "index")
    f = run_json("fsck", "--rebuild-index", "--read-data", "--store", store)
    assert f["ok"] and f["rebuilt_index"]["versions"] == 2
    dest = tmp_path / "r"
    run_cli("restore", "Paper Boats", "--store", store, "--to", dest)
    assert_same_tree(session, dest)


def test_missing_store_suggests_init(tmp_path):
    r = run_cli("projects", "--store", tmp_path / "nope", expect=3)
    assert "archive init" in r.output


def test_usage_errors_exit_2(store, tmp_path):
    assert run_cli("ingest", tmp_path / "missing", "--store", store, expect=2)
    assert run_cli("restore", "nothing", "--store", store, "--to", tmp_path / "x", expect=2)
    assert run_cli("frobnicate", expect=2)


def test_subprocess_cli_and_demo(tmp_path):
    # the demo keeps its session and restore for the user to look at: keep them in tmp_path
    r = run_subprocess("demo", "--store", tmp_path / "demo-store", "--json",
                       env={"TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verified"] and out["versions"] == [1, 2]
    assert out["restored_to"].startswith(str(tmp_path))
    assert r.stderr == ""


def test_large_file_flat_memory(tmp_path, store):
    """Chunking streams: ingesting 200 MiB uses no more memory than 20 MiB (ratio, not bytes)."""
    import subprocess
    import sys
    code = ("import sys,resource; from archivestore import Store; from archivestore.ingest import Ingester;"
            "s=Store.open(sys.argv[1]); Ingester(s).ingest(sys.argv[2], project=sys.argv[3]);"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    rss = {}
    for mb in (20, 200):
        d = tmp_path / f"src{mb}"
        d.mkdir()
        with open(d / "big.bin", "wb") as f:
            rng = np.random.default_rng(mb)
            for _ in range(mb // 4):
                f.write(rng.integers(0, 256, 4 << 20, dtype=np.uint8).tobytes())
        p = subprocess.run([sys.executable, "-c", code, str(store), str(d), f"p{mb}"],
                           capture_output=True, text=True, cwd=Path(__file__).parent.parent)
        assert p.returncode == 0, p.stderr
        rss[mb] = int(p.stdout.strip())
    assert rss[200] < rss[20] * 1.25 + 16_000, rss


def test_ingest_several_folders_and_restore_all(session, store, tmp_path):
    """A whole delivery in one command: each folder its own project version; --all restores
    every project's latest version into its own folder."""
    second = tmp_path / "Glass Orchard"
    make_tracks(second / "Audio Files", n=2, seconds=2.0, seed=7)
    shutil.copytree(session / "Audio Files", second / "Shared", symlinks=True)
    r = run_cli("ingest", session, second, "--store", store, "--json")
    outs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(o["project"], o["version"]) for o in outs] == [("Paper Boats", 1), ("Glass Orchard", 1)]
    assert outs[1]["bytes_new"] < outs[1]["bytes_in"]  # the shared tracks dedup across projects
    dest = tmp_path / "restored"
    r = run_cli("restore", "--all", "--store", store, "--to", dest, "--json")
    rs = {o["project"]: o for o in map(json.loads, r.stdout.splitlines())}
    assert set(rs) == {"Paper Boats", "Glass Orchard"}
    assert_same_tree(session, dest / "Paper Boats")
    assert_same_tree(second, dest / "Glass Orchard")


def test_ingest_several_folders_checks_all_first(session, store, tmp_path):
    r = run_cli("ingest", session, tmp_path / "missing", "--store", store, expect=2)
    assert "missing: no such folder" in r.output
    assert run_json("projects", "--store", store)["projects"] == []  # nothing archived
    r = run_cli("ingest", session, session, "--store", store, expect=2)
    assert "would both be project 'Paper Boats'" in r.output
    r = run_cli("ingest", session, tmp_path, "--project", "X", "--store", store, expect=2)
    assert "--project" in r.output
    r = run_cli("restore", "--all", "Paper Boats", "--store", store, "--to", tmp_path / "d", expect=2)
    assert "--all" in r.output
    r = run_cli("restore", "--store", store, "--to", tmp_path / "d", expect=2)
    assert "which project" in r.output
