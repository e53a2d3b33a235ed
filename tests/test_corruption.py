"""Corruption: bit flips, zeroed ranges, truncated and deleted packs, a damaged footer and a
damaged LMDB index. fsck --read-data must detect every seeded case and name the pack, the chunk
and every project/version/path hurt; restore must never write wrong bytes."""
from __future__ import annotations

import json
import os
import random
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from archivestore import Store
from archivestore.errors import DamageError, FormatError
from archivestore.packs import KIND_DATA, KIND_TREE, pack_object_name, read_footer

from .conftest import assert_same_tree, run_cli, run_json
from .faultlib import fsck, make_session, make_store, restore_equals, versions


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two projects, three versions; a map of every blob to its pack and who uses it."""
    d = tmp_path_factory.mktemp("corrupt")
    srcs = {("Song", 1): make_session(d / "s1" / "Song", seed=1),
            ("Song", 2): make_session(d / "s2" / "Song", seed=2, tracks=1),
            ("Other", 1): make_session(d / "s3" / "Other", seed=3, tracks=1, seconds=2.0)}
    # v2 shares the text file's bytes with v1 (same seed text differs: write a common one)
    for src in srcs.values():
        (src / "common.bin").write_bytes(bytes(range(256)) * 300)
    store = make_store(d / "store")
    for (proj, _v), src in srcs.items():
        run_json("ingest", src, "--store", store, "--project", proj, "-q")
    blobs: dict[bytes, tuple] = {}        # id -> (pack, BlobRef)
    users: dict[bytes, set] = defaultdict(set)  # chunk id -> {(project, version, path)}
    meta: dict[bytes, set] = defaultdict(set)   # tree/snapshot id -> {(project, version)}
    with Store.open(store) as st:
        packs = sorted(st.list_pack_files())
        for name, size in packs:
            for e in read_footer(st.backend, pack_object_name(name), size):
                blobs.setdefault(e.id, (name, e))
        for proj in st.projects():
            for n, rec in st.versions(proj):
                meta[bytes.fromhex(rec["id"])].add((proj, n))
                for t in rec["tree"]:
                    meta[bytes.fromhex(t)].add((proj, n))
                for e in st.iter_tree(rec):
                    for c in e.get("chunks", []):
                        users[bytes.fromhex(c)].add((proj, n, e["path"]))
    return {"dir": d, "store": store, "srcs": srcs, "packs": dict(packs), "blobs": blobs,
            "users": users, "meta": meta}


def _pack_blobs(world, pack: str) -> list:
    return sorted((e for n, e in world["blobs"].values() if n == pack), key=lambda e: e.offset)


def _expected_restore_failures(world, damaged_chunks: set[bytes]) -> dict:
    out = defaultdict(set)
    for c in damaged_chunks:
        for proj, n, path in world["users"].get(c, ()):
            out[(proj, n)].add(path)
    return out


def _check_restores(world, store: Path, tmp: Path, bad_chunks: set[bytes], bad_meta: set) -> None:
    """Each version: refused whole if its manifest is hurt, else exactly the hurt files fail
    (and are absent), every other file is byte-identical."""
    fails = _expected_restore_failures(world, bad_chunks)
    for (proj, n), src in world["srcs"].items():
        dest = tmp / f"r-{proj}-{n}"
        r = run_cli("restore", proj, "--store", store, "--to", dest, "--version", n, "--json",
                    expect=None)
        if (proj, n) in bad_meta:
            assert r.exit_code in (1, 3), r.output
            files = [p for p in dest.rglob("*") if not p.is_dir()] if dest.exists() else []
            assert files == [], files  # nothing written from a damaged manifest
            continue
        want = fails.get((proj, n), set())
        out = json.loads(r.stdout)
        assert {f["path"] for f in out["failed"]} == want
        assert r.exit_code == (1 if want else 0)
        for dirpath, _dirs, names in os.walk(src):
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), src)
                got = dest / rel
                if rel in want:
                    assert not os.path.lexists(got), rel  # no partial, no wrong bytes
                elif not os.path.islink(os.path.join(dirpath, name)):
                    assert got.read_bytes() == Path(dirpath, name).read_bytes(), rel
        assert not [p for p in dest.rglob("*.partial")]


def _check_fsck(world, store: Path, pack: str, bad_chunks: set[bytes], whole_pack: bool) -> dict:
    """`bad_chunks`: the blobs whose bytes were really hit."""
    # versions whose manifest is unreadable: their files cannot be named, the version is ("*")
    lost_trees = {v for c in bad_chunks if world["blobs"][c][1].kind == KIND_TREE
                  and not _still_reads(store, c) for v in world["meta"][c]}
    out = fsck(store, expect=1)
    assert out["ok"] is False
    probs = out["problems"]
    assert probs and all(p["pack"] in (pack, None) for p in probs), probs
    assert any(p["pack"] == pack for p in probs)
    # The index keeps each id's first 24 bytes (index format 4): a problem names the full id
    # wherever a pack footer or a readable manifest gives it, and the 48-hex index
    # key only for a chunk that no readable manifest names (its tree part lost with it).
    full = {c[:24]: c for c in world["blobs"]}
    named = set()
    for p in probs:
        if not p["chunk"] or p["pack"] != pack:
            continue
        cid = full[bytes.fromhex(p["chunk"])[:24]]
        if len(p["chunk"]) != 64:
            assert len(p["chunk"]) == 48 and p["chunk"] == cid[:24].hex(), p
            assert not world["meta"].get(cid), p
            assert all(u[:2] in lost_trees for u in world["users"].get(cid, ())), p
        named.add(cid)
    assert bad_chunks <= named, "a damaged chunk was not named"
    if not whole_pack:
        assert named == bad_chunks, "an intact chunk was named as damaged"
    for p in probs:
        if not p["chunk"] or p["pack"] != pack:
            continue
        cid = full[bytes.fromhex(p["chunk"])[:24]]
        got = {(a["project"], a["version"], a["path"]) for a in p["affected"]}
        want = {u for u in world["users"].get(cid, set()) if u[:2] not in lost_trees}
        want |= {(proj, n, "*") for proj, n in world["meta"].get(cid, set())}
        assert got == want, (p, want)
    trees = {(a["project"], a["version"]) for p in probs if p["kind"] == "damaged_tree"
             for a in p["affected"]}
    assert trees == lost_trees
    return out


def _damage(world, store: Path, rng: random.Random, how: str):
    """Apply one seeded damage; returns (pack, damaged blob ids, whole_pack, trunc_len)."""
    pack = rng.choice(sorted(world["packs"]))
    path = store / pack_object_name(pack)
    size = world["packs"][pack]
    data = bytearray(path.read_bytes())
    blobs = _pack_blobs(world, pack)
    if how == "delete":
        path.unlink()
        return pack, {e.id for e in blobs}, True, 0
    if how == "truncate":
        cut = rng.randrange(0, size)
        path.write_bytes(bytes(data[:cut]))
        return pack, {e.id for e in blobs if e.offset + e.size > cut}, True, cut
    if how == "flip":
        off = rng.randrange(size)
        data[off] ^= 1 << rng.randrange(8)
        lo, hi = off, off + 1
    else:  # zero 4 KiB
        while True:
            lo = rng.randrange(max(1, size - 4096))
            hi = min(size, lo + 4096)
            if any(data[lo:hi]):
                break
        data[lo:hi] = bytes(hi - lo)
    path.write_bytes(bytes(data))
    return pack, {e.id for e in blobs if e.offset < hi and lo < e.offset + e.size}, False, 0


def _still_reads(store: Path, cid: bytes) -> bool:
    """A hit blob can still decode to the right bytes (a flipped padding bit at the end of a
    PCM payload): fsck names it (CRC), but restore may return its correct, hash-verified bytes."""
    with Store.open(store) as st:
        try:
            st.read_blob(cid)
        except (DamageError, FormatError):
            return False
    return True


def _trial(world, tmp: Path, seed: int, how: str) -> dict:
    rng = random.Random(seed)
    store = tmp / f"store{seed}"
    shutil.copytree(world["store"], store)
    pack, hit, whole, cut = _damage(world, store, rng, how)
    out = _check_fsck(world, store, pack, hit, whole)
    # what a restore can no longer produce: hit data chunks; hurt manifests refuse the version
    bad_meta = {v for c in hit for v in world["meta"].get(c, set())}
    with Store.open(store):
        kinds = {c: world["blobs"][c][1].kind for c in hit}
    bad_data = {c for c, k in kinds.items() if k == KIND_DATA and not _still_reads(store, c)}
    # a snapshot record lives in the index too: restore does not need the damaged blob
    bad_meta = {v for c in hit if kinds[c] == KIND_TREE and not _still_reads(store, c)
                for v in world["meta"][c]}
    _check_restores(world, store, tmp / f"restore{seed}", bad_data, bad_meta)
    shutil.rmtree(store)
    return {"how": how, "pack": pack, "blobs_hit": len(hit), "problems": len(out["problems"])}


@pytest.mark.parametrize("how", ["flip", "zero", "truncate", "delete"])
def test_damage_fast(world, tmp_path, how):
    for seed in range(3):
        _trial(world, tmp_path, 10 * seed + ["flip", "zero", "truncate", "delete"].index(how), how)


@pytest.mark.slow
def test_fifty_bit_flips(world, tmp_path):
    out = [_trial(world, tmp_path, 5000 + i, "flip") for i in range(50)]
    assert len(out) == 50  # each trial asserted detection, naming and safe restore


@pytest.mark.slow
@pytest.mark.parametrize("how", ["zero", "truncate", "delete"])
def test_damage_many(world, tmp_path, how):
    for i in range(15):
        _trial(world, tmp_path, 7000 + i, how)


def _footer_range(world, pack: str) -> tuple[int, int]:
    blobs = _pack_blobs(world, pack)
    end = blobs[-1].offset + blobs[-1].size
    return end, world["packs"][pack]


def _biggest_data_pack(world) -> str:
    return max(world["packs"], key=lambda p: sum(e.kind == KIND_DATA for e in _pack_blobs(world, p)))


@pytest.mark.parametrize("also_blob", [False, True])
def test_rebuild_index_with_damaged_footer(world, tmp_path, also_blob):
    """A pack whose footer is damaged still yields its intact blobs to --rebuild-index (the
    scan resynchronises past a damaged blob); only what is really lost is reported."""
    store = tmp_path / "store"
    shutil.copytree(world["store"], store)
    pack = _biggest_data_pack(world)
    path = store / pack_object_name(pack)
    data = bytearray(path.read_bytes())
    lo, hi = _footer_range(world, pack)
    data[lo + 40] ^= 0x10                   # inside the footer's entries
    lost: set[bytes] = set()
    if also_blob:
        victim = [e for e in _pack_blobs(world, pack) if e.kind == KIND_DATA][1]
        data[victim.offset + 60] ^= 0x01    # inside its stored bytes
        lost = {victim.id}
    path.write_bytes(bytes(data))
    r = run_cli("fsck", "--store", store, "--rebuild-index", "--read-data", "--json", expect=1)
    out = json.loads(r.stdout)
    rb = out["rebuilt_index"]
    assert rb["versions"] == 3 and rb["packs"] == len(world["packs"])
    n_intact = len(_pack_blobs(world, pack)) - len(lost)
    assert rb["unreadable_packs"] == [f"{pack}: pack footer checksum mismatch; {n_intact} intact "
                                      f"blobs recovered by scanning"]
    kinds = {(p["kind"], p["pack"]) for p in out["problems"]}
    assert ("damaged_pack", pack) in kinds
    missing = {bytes.fromhex(p["chunk"]) for p in out["problems"] if p["kind"] == "missing_chunk"}
    assert missing == lost
    for p in out["problems"]:
        if p["kind"] == "missing_chunk":
            assert {(a["project"], a["version"], a["path"]) for a in p["affected"]} == \
                world["users"][bytes.fromhex(p["chunk"])]
    _check_restores(world, store, tmp_path / "r", lost, set())


def _index_trial(world, tmp: Path, seed: int) -> str:
    """Damage data.mdb one seeded way; every command either works correctly or fails with one
    line pointing at --rebuild-index, and the rebuild restores a sound store."""
    rng = random.Random(seed)
    store = tmp / f"store{seed}"
    shutil.copytree(world["store"], store)
    mdb = store / "index" / "data.mdb"
    size = mdb.stat().st_size
    how = ["garbage", "zero", "truncate", "delete"][seed % 4]
    if how == "delete":
        mdb.unlink()
    elif how == "truncate":
        os.truncate(mdb, rng.randrange(0, size))
    else:
        page = rng.randrange(size // 4096)
        with open(mdb, "r+b") as f:
            f.seek(page * 4096)
            f.write(os.urandom(4096) if how == "garbage" else bytes(4096))
    outcome = "unharmed"
    for args in (("versions", "Song"), ("fsck", "--read-data"),
                 ("restore", "Song", "--version", "1", "--to", tmp / f"x{seed}")):
        r = run_cli(*args, "--store", store, "--json", expect=None)
        if r.exit_code != 0:
            assert r.exit_code == 3, r.output
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "archive fsck --rebuild-index" in lines[0], r.stderr
            outcome = "refused"
    if outcome == "unharmed":  # the damage missed every page in use: all answers are right
        assert versions(store, "Song") == [1, 2] and versions(store, "Other") == [1]
        assert_same_tree(world["srcs"][("Song", 1)], tmp / f"x{seed}")
    rb = json.loads(run_cli("fsck", "--store", store, "--rebuild-index", "--read-data",
                            "--json").stdout)
    assert rb["ok"] is True and rb["rebuilt_index"]["versions"] == 3
    for (proj, n), src in world["srcs"].items():
        restore_equals(store, proj, n, src, tmp / f"after{seed}")
    shutil.rmtree(store)
    return f"{how}:{outcome}"


def test_damaged_index_fast(world, tmp_path):
    out = [_index_trial(world, tmp_path, s) for s in range(8)]
    assert "delete:refused" in out and "truncate:refused" in out


@pytest.mark.slow
def test_damaged_index_many(world, tmp_path):
    out = [_index_trial(world, tmp_path, 300 + s) for s in range(40)]
    print(sorted(out))
    assert sum(o.endswith("refused") for o in out) >= 10


def test_interrupted_rebuild_is_refused_until_redone(world, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(world["store"], store)
    with Store.open(store) as st:  # what a rebuild killed half-way leaves: the flag still set
        st.index.set_rebuilding(True)
    r = run_cli("versions", "Song", "--store", store, expect=3)
    assert r.stderr == ("archive: error: an index rebuild was interrupted; rebuild it from the "
                        "packs with: archive fsck --rebuild-index\n")
    out = json.loads(run_cli("fsck", "--store", store, "--rebuild-index", "--json").stdout)
    assert out["ok"] is True and out["rebuilt_index"]["versions"] == 3
    assert versions(store, "Song") == [1, 2]
