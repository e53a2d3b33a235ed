"""A project's previous version guides its next ingest (ingest._Guide, chunking.GuidedChunks):
unchanged chunks are taken without a scan and an unchanged file's digest is its old one. None
of that may show: every tree entry must be what a plain ingest into a fresh store records."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xxhash

from archivestore import Store, hashing, ingest, locations
from archivestore.chunking import ChunkParams
from archivestore.ingest import Ingester

from .audio_helpers import write_wav
from .conftest import run_cli

PARAMS = ChunkParams(4096, 16384, 65536)  # many chunks per test file


def _wav(path: Path, frames: int, seed: int, description: str = "take") -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 48000
    sig = np.sin(2 * np.pi * 220 * t) * 0.3 * 2 ** 23 + rng.normal(0, 30, frames)
    write_wav(path, sig.astype(np.int32), 48000, 24,
              bext={"description": description, "originator": "test", "time_reference": 0})


def _delivery1(root: Path) -> None:
    (root / "Audio Files").mkdir(parents=True)
    for i, name in enumerate(["Kick", "Vox", "Pad", "Bass", "Keys", "Gtr", "Same"]):
        _wav(root / "Audio Files" / f"{name}_01.wav", 96000, i)
    rng = np.random.default_rng(50)
    (root / "Song.ptx").write_bytes(rng.bytes(300_000))
    (root / "notes.txt").write_text("mix notes\n")


def _delivery2(d1: Path, root: Path) -> set[str]:
    """A revision of d1; returns the paths whose bytes changed."""
    shutil.copytree(d1, root)
    a = root / "Audio Files"
    vox = bytearray((a / "Vox_01.wav").read_bytes())  # punched in: same length
    vox[100_000:160_000] = np.random.default_rng(60).bytes(60_000)
    (a / "Vox_01.wav").write_bytes(bytes(vox))
    _wav(a / "Pad_01.wav", 120000, 2)  # extended: the same first 96000 frames, then more
    _wav(a / "Bass_01.wav", 96000, 3, description="a much longer description, coding history")
    _wav(a / "Gtr_01.wav", 70000, 5)  # cut short
    (a / "Keys_01.wav").rename(a / "Keys Rhodes_01.wav")
    _wav(a / "Kick_01.wav", 96000, 99)  # another take over the same name, same size
    ptx = bytearray((root / "Song.ptx").read_bytes())
    ptx[1000:1010] = b"0123456789"
    (root / "Song.ptx").write_bytes(bytes(ptx))
    with open(root / "notes.txt", "a") as f:
        f.write("v2\n")
    return {"Audio Files/Vox_01.wav", "Audio Files/Pad_01.wav", "Audio Files/Bass_01.wav",
            "Audio Files/Gtr_01.wav", "Audio Files/Keys Rhodes_01.wav", "Audio Files/Kick_01.wav",
            "Song.ptx", "notes.txt"}


RENAMED = "Audio Files/Keys Rhodes_01.wav"  # was Keys_01.wav


def _files(store: Store, project: str) -> dict[str, dict]:
    _n, rec = store.version(project)
    return {e["path"]: e for e in store.iter_tree(rec) if e["type"] == "file"}


@pytest.fixture
def deliveries(tmp_path: Path):
    d1 = tmp_path / "d1" / "Song"
    _delivery1(d1)
    d2 = tmp_path / "d2" / "Song"
    changed = _delivery2(d1, d2)
    return d1, d2, changed


def _count_digest_bytes(monkeypatch) -> dict:
    fed = {"bytes": 0}
    update = hashing.FileDigest.update

    def counting(self, data):
        fed["bytes"] += len(data)
        update(self, data)
    monkeypatch.setattr(hashing.FileDigest, "update", counting)
    return fed


def _guided_and_plain(tmp_path: Path, before: Path, after: Path, monkeypatch):
    """`after` ingested guided by `before` and into a fresh store: (the guided store, its
    entries, the plain store's, the digest bytes the guided ingest fed)."""
    plain = Store.init(tmp_path / "plain", params=PARAMS)
    Ingester(plain).ingest(after)
    guided = Store.init(tmp_path / "guided", params=PARAMS)
    Ingester(guided).ingest(before)
    fed = _count_digest_bytes(monkeypatch)
    Ingester(guided).ingest(after)
    return guided, _files(guided, "Song"), _files(plain, "Song"), fed


def test_guided_ingest_records_what_a_plain_one_does(tmp_path, deliveries, monkeypatch):
    d1, d2, changed = deliveries
    guided, g, p, fed = _guided_and_plain(tmp_path, d1, d2, monkeypatch)
    assert g.keys() == p.keys()
    for path, e in g.items():
        data = (d2 / path).read_bytes()
        assert e["chunks"] == p[path]["chunks"], path
        assert e["digest"] == p[path]["digest"] == xxhash.xxh3_128(data).hexdigest(), path
    # unchanged files were not hashed a second time, nor the renamed one (its first chunks named
    # the file it was: one of seven takes of one length, all with the same header); changed ones
    # were, some from a re-read
    edited = changed - {RENAMED}
    unchanged = sum(e["size"] for path, e in g.items() if path not in edited)
    assert unchanged > 250_000
    total = sum(e["size"] for e in g.values())
    assert fed["bytes"] <= total - unchanged + 4096  # + the renamed file's header, dropped
    assert fed["bytes"] >= sum(g[c]["size"] for c in edited) - 1

    guided.close()
    out = tmp_path / "out"
    run_cli("restore", "Song", "--store", tmp_path / "guided", "--to", out)
    for path, e in g.items():
        assert (out / path).read_bytes() == (d2 / path).read_bytes()


def test_unguided_where_a_reread_would_cost(tmp_path, deliveries, monkeypatch):
    """From a network folder every file is hashed as it is read (no second read for a digest)."""
    d1, d2, _changed = deliveries
    s = Store.init(tmp_path / "s", params=PARAMS)
    Ingester(s).ingest(d1)
    monkeypatch.setattr(locations, "on_network_fs", lambda *a, **k: True)
    fed = _count_digest_bytes(monkeypatch)
    reread = []
    monkeypatch.setattr(ingest, "_digest_prefix", lambda *a: reread.append(a))
    Ingester(s).ingest(d2)
    files = _files(s, "Song")
    assert fed["bytes"] == sum(e["size"] for e in files.values())
    assert not reread
    for path, e in files.items():
        assert e["digest"] == xxhash.xxh3_128((d2 / path).read_bytes()).hexdigest()


def test_a_damaged_previous_version_only_costs_the_guidance(tmp_path, deliveries, monkeypatch):
    from archivestore.errors import DamageError
    d1, d2, _changed = deliveries
    s = Store.init(tmp_path / "s", params=PARAMS)
    Ingester(s).ingest(d1)

    def broken(record):
        raise DamageError("tree part damaged")
        yield  # pragma: no cover
    monkeypatch.setattr(s, "iter_tree", broken)
    Ingester(s).ingest(d2)
    monkeypatch.undo()
    plain = Store.init(tmp_path / "plain", params=PARAMS)
    Ingester(plain).ingest(d2)
    got, want = _files(s, "Song"), _files(plain, "Song")
    assert {k: (e["chunks"], e["digest"]) for k, e in got.items()} == \
        {k: (e["chunks"], e["digest"]) for k, e in want.items()}


def test_guide_memory_is_capped(tmp_path, deliveries, monkeypatch):
    d1, d2, _changed = deliveries
    s = Store.init(tmp_path / "s", params=PARAMS)
    Ingester(s).ingest(d1)
    monkeypatch.setattr(ingest, "GUIDE_MAX_CHUNKS", 30)
    ing = Ingester(s)
    guides = ing._load_guides("Song")
    assert 0 < sum(len(g[2]) // 32 for g in guides.values()) <= 30
    assert len(guides) < len(_files(s, "Song"))


def test_larger_than_reads_the_size_key_not_a_path():
    from archivestore.snapshots import TreeBuilder, larger_than, parse_tree_part
    tb = TreeBuilder()
    entries = [
        {"path": 'odd,"size":999999999.wav', "type": "file", "mode": 420, "mtime_ns": 1,
         "size": 10, "chunks": ["00" * 32], "digest": "00" * 32},
        {"path": "big.wav", "type": "file", "mode": 420, "mtime_ns": 1, "size": 5000,
         "chunks": ["11" * 32], "digest": "11" * 32},
        {"path": "dir", "type": "dir", "mode": 493, "mtime_ns": 1},
    ]
    for e in entries:
        tb.add(e)
    part = tb.flush_part()
    assert [e["path"] for e in parse_tree_part(part, larger_than(100))] == ["big.wav"]
    assert len(list(parse_tree_part(part))) == 3


def test_moved_files_follow_the_file_they_were(tmp_path, deliveries, monkeypatch):
    """A folder renamed, a file moved and edited, and a new take of the same length and header
    as the old ones: each entry is what a plain ingest records; only the moved-and-edited file
    and the new take are hashed for their digests."""
    d1, _d2, _changed = deliveries
    d3 = tmp_path / "d3" / "Song"
    shutil.copytree(d1, d3)
    (d3 / "Audio Files").rename(d3 / "Tracks")  # every track at a new path, bytes unchanged
    vox = bytearray((d3 / "Tracks" / "Vox_01.wav").read_bytes())
    vox[200_000:210_000] = bytes(10_000)  # and one of them edited too
    (d3 / "Tracks" / "Vox_01.wav").unlink()
    (d3 / "Tracks" / "Vox comp.wav").write_bytes(bytes(vox))
    _wav(d3 / "Tracks" / "Vox_02.wav", 96000, 98)  # new: same size and header as the takes
    _guided, g, p, fed = _guided_and_plain(tmp_path, d1, d3, monkeypatch)
    assert {k: (e["chunks"], e["digest"]) for k, e in g.items()} == \
        {k: (e["chunks"], e["digest"]) for k, e in p.items()}
    for path, e in g.items():
        assert e["digest"] == xxhash.xxh3_128((d3 / path).read_bytes()).hexdigest(), path
    new_or_edited = {"Tracks/Vox comp.wav", "Tracks/Vox_02.wav"}
    # and the first chunk (the header) of each moved file, fed to a digest that was then dropped
    assert sum(g[c]["size"] for c in new_or_edited) - 1 <= fed["bytes"] \
        <= sum(g[c]["size"] for c in new_or_edited) + 7 * 4096


def test_streamed_files_skip_the_index_only_for_their_own_chunks(tmp_path, deliveries,
                                                                  monkeypatch):
    """Files read in a stream (not batched as small files) take a chunk their guide knows
    without an index read, and claim every other one: the version restores, and only the
    previous version's chunks went unclaimed."""
    monkeypatch.setattr(ingest, "SMALL_FILE", 1024)
    monkeypatch.setattr(ingest, "INLINE_FILE", 1024)
    d1, d2, _changed = deliveries
    s = Store.init(tmp_path / "s", params=PARAMS)
    Ingester(s).ingest(d1)
    before = {c for e in _files(s, "Song").values() for c in e["chunks"]}
    claimed: list[bytes] = []
    claim = Ingester._claim

    def counting(self, cids, proj):
        claimed.extend(cids)
        return claim(self, cids, proj)
    monkeypatch.setattr(Ingester, "_claim", counting)
    Ingester(s).ingest(d2)
    after = _files(s, "Song")
    refs = [c for e in after.values() for c in e["chunks"]]
    unclaimed = {c for c in refs if bytes.fromhex(c) not in claimed}
    assert unclaimed and unclaimed <= before  # some skipped, all of them the old version's
    assert {c for c in refs if c not in before} <= {c.hex() for c in claimed}
    assert all(s.index.contains_many([bytes.fromhex(c) for c in refs]))
    s.close()
    out = tmp_path / "out"
    run_cli("restore", "Song", "--store", tmp_path / "s", "--to", out)
    for path in after:
        assert (out / path).read_bytes() == (d2 / path).read_bytes()
