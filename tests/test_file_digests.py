"""Whole-file digests: XXH3-128 as `xxhsum -H2` prints it in new versions, BLAKE3-256 in the
versions made before (snapshot record version 1). Restore checks each entry with the hash it
names, `diff` compares versions either side of the change by chunk lists, and a guided ingest
never carries an old kind of digest into a new entry."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import blake3
import numpy as np
import pytest
import xxhash

from archivestore import Store, hashing
from archivestore.chunking import ChunkParams
from archivestore.errors import FormatError
from archivestore.ingest import Ingester
from archivestore.packs import KIND_SNAPSHOT, KIND_TREE
from archivestore.snapshots import TreeBuilder, encode_snapshot, parse_snapshot, validate_entry

from .audio_helpers import write_wav
from .conftest import run_cli, run_json
from .test_guided_ingest import _count_digest_bytes


def _project(root: Path) -> Path:
    src = root / "Song"
    (src / "Audio Files").mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i, name in enumerate(["Kick", "Vox", "Bass"]):
        sig = np.sin(np.arange(60000) * (0.01 + i / 100)) * 2 ** 22 + rng.normal(0, 40, 60000)
        write_wav(src / "Audio Files" / f"{name}_01.wav", sig.astype(np.int32), 48000, 24)
    (src / "Song.ptx").write_bytes(rng.bytes(200_000))
    (src / "notes.txt").write_text("mix notes\n")
    (src / "empty.txt").write_bytes(b"")
    return src


def _files(store: Path, version: int | None = None) -> dict[str, dict]:
    with Store.open(store) as st:
        _n, rec = st.version("Song", version)
        return {e["path"]: e for e in st.iter_tree(rec) if e["type"] == "file"}


def _legacy_copy(store: Path, spoil: str | None = None, alg: str | None = None) -> int:
    """Commit the latest version of "Song" again as archivestore wrote it before XXH128: a
    version 1 record whose file entries have BLAKE3-256 digests and no `digest_alg`. `spoil`:
    that file's digest is wrong; `alg`: every entry names that algorithm instead."""
    with Store.open(store) as st:
        n, rec = st.version("Song")
        entries = []
        for e in st.iter_tree(rec):
            if e["type"] == "file":
                e = dict(e)
                e.pop("digest_alg", None)
                h = blake3.blake3()
                for cid in e["chunks"]:
                    h.update(st.read_blob(bytes.fromhex(cid)))
                e["digest"] = h.hexdigest() if e["path"] != spoil else "ab" * 32
                if alg is not None:
                    e["digest_alg"] = alg
            entries.append(e)
        tb = TreeBuilder()  # the writer's own encoding (guides pick entries by its "size":)
        for e in entries:
            assert tb.add(e) is None
        part = tb.flush_part()
        sink = st.sink()
        tree_id, _ = sink.add_plain(KIND_TREE, part)
        new = {k: v for k, v in rec.items() if k != "id"}
        new.update(v=1, version=n + 1, tree=[tree_id.hex()])
        new["id"] = sink.add_plain(KIND_SNAPSHOT, encode_snapshot(new))[0].hex()
        sink.flush(version=("Song", n + 1, new))
        sink.close()
    return n + 1


def test_new_digests_are_what_xxhsum_prints(tmp_path, store):
    src = _project(tmp_path)
    run_cli("ingest", src, "--store", store)
    files = _files(store)
    assert len(files) == 6
    with Store.open(store) as st:
        assert st.version("Song")[1]["v"] == 2
    for path, e in files.items():
        data = (src / path).read_bytes()
        assert e["digest_alg"] == "xxh128", path
        assert e["digest"] == xxhash.xxh3_128(data).hexdigest(), path
    if shutil.which("xxhsum") is None:
        pytest.skip("xxhsum (Debian package xxhash) is not installed")
    for path, e in files.items():
        out = subprocess.run(["xxhsum", "-H2", str(src / path)], capture_output=True, text=True,
                             check=True).stdout
        assert out.split()[0] == e["digest"], path


def test_restore_checks_a_legacy_version_with_blake3(tmp_path, store):
    src = _project(tmp_path)
    run_cli("ingest", src, "--store", store)
    v = _legacy_copy(store)
    legacy = _files(store, v)
    assert all("digest_alg" not in e and len(e["digest"]) == 64 for e in legacy.values())
    out = tmp_path / "out"
    run_cli("restore", "Song", "--version", v, "--store", store, "--to", out)
    for path in legacy:
        assert (out / path).read_bytes() == (src / path).read_bytes(), path
        assert blake3.blake3((out / path).read_bytes()).hexdigest() == legacy[path]["digest"]

    # a legacy digest that does not match is reported and its file not left behind
    bad = _legacy_copy(store, spoil="Audio Files/Vox_01.wav")
    out2 = tmp_path / "out2"
    res = run_json("restore", "Song", "--version", bad, "--store", store, "--to", out2,
                   expect=None)
    assert [f["path"] for f in res["failed"]] == ["Audio Files/Vox_01.wav"]
    assert "do not match the recorded digest" in res["failed"][0]["error"]
    assert not (out2 / "Audio Files" / "Vox_01.wav").exists()
    assert (out2 / "Audio Files" / "Kick_01.wav").read_bytes() == \
        (src / "Audio Files" / "Kick_01.wav").read_bytes()


def test_an_unknown_digest_algorithm_is_refused(tmp_path, store):
    src = _project(tmp_path)
    run_cli("ingest", src, "--store", store)
    v = _legacy_copy(store, alg="md5")
    r = run_cli("restore", "Song", "--version", v, "--store", store, "--to", tmp_path / "o",
                expect=None)
    assert r.exit_code != 0
    assert "unknown digest algorithm 'md5'" in r.output
    with pytest.raises(FormatError, match="unknown digest algorithm"):
        validate_entry({"path": "a", "type": "file", "size": 0, "chunks": [], "digest": "",
                        "digest_alg": "sha1"})
    with pytest.raises(FormatError, match="bad digest"):
        validate_entry({"path": "a", "type": "file", "size": 0, "chunks": [], "digest": 5})


def test_a_later_record_version_is_refused():
    rec = {"v": 3, "project": "p", "version": 1, "tree": []}
    with pytest.raises(FormatError, match="unsupported snapshot record version 3 .written by a "
                                          "newer archivestore"):
        parse_snapshot(json.dumps(rec).encode())
    with pytest.raises(FormatError, match="not a JSON object"):
        parse_snapshot(b"[1, 2]")
    for v in (1, 2):
        assert parse_snapshot(json.dumps(dict(rec, v=v)).encode())["v"] == v


def test_diff_across_the_digest_change(tmp_path, store):
    src = _project(tmp_path)
    run_cli("ingest", src, "--store", store)
    legacy = _legacy_copy(store)
    d = run_json("diff", "Song", "1", str(legacy), "--store", store)
    assert (d["added"], d["removed"], d["changed"], d["renamed"]) == ([], [], [], [])
    assert d["unchanged_files"] == 6

    (src / "Audio Files" / "Bass_01.wav").rename(src / "Audio Files" / "Bass DI_01.wav")
    (src / "notes.txt").write_text("mix notes\nv3\n")
    run_cli("ingest", src, "--store", store)  # XXH128 again, guided by the legacy version
    d = run_json("diff", "Song", str(legacy), "--store", store)
    assert [(r["from"], r["to"]) for r in d["renamed"]] == \
        [("Audio Files/Bass_01.wav", "Audio Files/Bass DI_01.wav")]
    assert [c["path"] for c in d["changed"]] == ["notes.txt"]
    assert (d["added"], d["removed"], d["unchanged_files"]) == ([], [], 4)


def test_guided_ingest_never_reuses_a_legacy_digest(tmp_path, monkeypatch):
    """The first ingest after a legacy version hashes every file (its old digests are of the
    other kind); the next one takes unchanged files' digests from it again."""
    src = _project(tmp_path)
    store = tmp_path / "small-chunks"  # files of several chunks: guided ingests defer digests
    Store.init(store, params=ChunkParams(4096, 16384, 65536)).close()
    run_cli("ingest", src, "--store", store)
    _legacy_copy(store)
    # and one file moved: it is guided by the legacy entry it came from (ingest._moved_from)
    (src / "Audio Files" / "Vox_01.wav").rename(src / "Audio Files" / "Vox comp_01.wav")
    fed = _count_digest_bytes(monkeypatch)
    with Store.open(store) as st:
        Ingester(st).ingest(src)
    after = _files(store)
    total = sum(e["size"] for e in after.values())
    assert fed["bytes"] == total
    for path, e in after.items():
        assert e["digest_alg"] == "xxh128"
        assert e["digest"] == xxhash.xxh3_128((src / path).read_bytes()).hexdigest(), path

    fed["bytes"] = 0
    with Store.open(store) as st:
        Ingester(st).ingest(src)
    again = _files(store)
    assert {p: e["digest"] for p, e in again.items()} == {p: e["digest"] for p, e in after.items()}
    big = sum(e["size"] for e in after.values() if len(e["chunks"]) > 1)
    assert big > 300_000
    assert fed["bytes"] <= total - big  # files of several chunks took their digests from v3


def test_same_content():
    a = {"size": 3, "chunks": ["aa" * 32], "digest": "11" * 16, "digest_alg": "xxh128"}
    b = dict(a)
    assert hashing.same_content(a, b)
    assert not hashing.same_content(a, dict(b, digest="22" * 16))
    legacy = {"size": 3, "chunks": ["aa" * 32], "digest": "33" * 32}
    assert hashing.same_content(a, legacy)  # across kinds: the chunk lists decide
    assert not hashing.same_content(a, dict(legacy, chunks=["bb" * 32]))
    assert hashing.file_digest(legacy).alg == "blake3"
    assert hashing.file_digest(a).alg == "xxh128"


def test_checksum_list_checks_a_restore_with_xxhsum(tmp_path, store):
    src = _project(tmp_path)
    (src / "Audio Files" / "odd \\ name.wav").write_bytes(b"RIFF odd")
    run_cli("ingest", src, "--store", store)
    sums = run_cli("ls", "Song", "--checksums", "--store", store).stdout
    files = _files(store)
    assert sorted(sums.splitlines()) == sorted(f"{e['digest']}  {p}" for p, e in files.items())
    only = run_cli("ls", "Song", "Audio Files", "--checksums", "--store", store).stdout
    assert len(only.splitlines()) == 4 and all("  Audio Files/" in ln for ln in only.splitlines())
    r = run_cli("ls", "Song", "--checksums", "--json", "--store", store, expect=2)
    assert "--checksums" in r.output
    if shutil.which("xxhsum") is None:
        pytest.skip("xxhsum (Debian package xxhash) is not installed")
    out = tmp_path / "out"
    run_cli("restore", "Song", "--store", store, "--to", out)
    (tmp_path / "song.xxh128").write_text(sums)
    ok = subprocess.run(["xxhsum", "-c", str(tmp_path / "song.xxh128")], cwd=out,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": OK") == len(files)
    (out / "notes.txt").write_text("edited after the restore\n")
    bad = subprocess.run(["xxhsum", "-c", str(tmp_path / "song.xxh128")], cwd=out,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "notes.txt: FAILED" in bad.stdout


def test_checksum_list_of_a_legacy_version_is_blake3(tmp_path, store):
    src = _project(tmp_path)
    run_cli("ingest", src, "--store", store)
    v = _legacy_copy(store)
    sums = run_cli("ls", "Song", "--version", v, "--checksums", "--store", store).stdout
    for line in sums.splitlines():
        digest, path = line.split("  ", 1)
        assert digest == blake3.blake3((src / path).read_bytes()).hexdigest(), path
    assert len(sums.splitlines()) == 6


def test_checksum_list_names_what_it_cannot_hold(tmp_path, store):
    src = _project(tmp_path)
    (src / "two\nlines.txt").write_bytes(b"a name with a line break")
    run_cli("ingest", src, "--store", store)
    r = run_cli("ls", "Song", "--checksums", "--store", store)
    assert len(r.stdout.splitlines()) == 6  # the six ordinary files
    assert "line break in its name" in r.stderr and "two\\nlines.txt" in r.stderr
