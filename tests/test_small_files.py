"""Folders of many small files (fades, waveform caches, presets) take their own paths through
ingest and restore (ingest.INLINE_FILE / SMALL_FILE, restore.INLINE_FILE / DIRECT_MIN): the
same bytes must come back as through the big-file paths, whatever mix of sizes a tree has."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from archivestore import ingest, restore

from .conftest import make_tracks, run_json


def _tree(root: Path, seed: int = 5) -> dict[str, bytes]:
    """Tiny, mid-size and big files in nested folders, with duplicates across folders."""
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    shared = rng.bytes(3000)
    for d in range(6):
        for i in range(40):
            n = int(rng.integers(0, 9000))
            data = shared if i % 13 == 0 else rng.bytes(n)
            files[f"Fade Files/{d}/fade_{i:03d}.wav"] = data
    for i in range(6):  # between INLINE_FILE and SMALL_FILE, and one just across each
        files[f"Presets/p{i}.bin"] = rng.bytes(int(rng.integers(70_000, 600_000)))
    files["Presets/edge_inline.bin"] = rng.bytes(ingest.INLINE_FILE)
    files["Presets/edge_small.bin"] = rng.bytes(ingest.SMALL_FILE)
    files["Presets/edge_direct.bin"] = rng.bytes(restore.DIRECT_MIN + 4097)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for p in make_tracks(root / "Audio Files", n=2, seconds=12.0, seed=seed):  # > DIRECT_MIN
        files[p.relative_to(root).as_posix()] = p.read_bytes()
    make_tracks(root / "Fades WAV", n=3, seconds=0.2, seed=seed + 1)  # small PCM files
    for p in (root / "Fades WAV").iterdir():
        files[p.relative_to(root).as_posix()] = p.read_bytes()
    return files


def test_many_small_files_round_trip(tmp_path, store):
    src = tmp_path / "Session"
    files = _tree(src)
    os.utime(src / "Presets" / "p0.bin", ns=(1_000_000_000, 1_500_000_000))
    (src / "Presets" / "p1.bin").chmod(0o600)
    res = run_json("ingest", src, "--store", store, "-q")
    assert res["files"] == len(files) and res["skipped"] == []
    dest = tmp_path / "out"
    out = run_json("restore", "Session", "--store", store, "--to", dest, "-q")
    assert out["ok"] and out["files"] == len(files)
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data, rel
    got = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert got == sorted(files)
    assert (dest / "Presets" / "p0.bin").stat().st_mtime_ns == 1_500_000_000
    assert (dest / "Presets" / "p1.bin").stat().st_mode & 0o777 == 0o600
    assert run_json("fsck", "--read-data", "--store", store)["ok"] is True
    # a second version with one small file changed stores only that
    (src / "Fade Files" / "2" / "fade_005.wav").write_bytes(b"edited")
    res2 = run_json("ingest", src, "--store", store, "-q")
    assert res2["bytes_new"] == len(b"edited")


def test_small_file_damage_names_only_that_file(tmp_path, store):
    """A damaged chunk of a small file (restored by the calling thread) fails that file alone."""
    from archivestore import Store
    from archivestore.packs import pack_object_name
    src = tmp_path / "S"
    src.mkdir()
    (src / "a.txt").write_bytes(b"A" * 2000)
    (src / "b.txt").write_bytes(os.urandom(2000))
    (src / "c.txt").write_bytes(b"C" * 2000)
    run_json("ingest", src, "--store", store, "-q")
    with Store.open(store) as st:
        _, rec = st.version("S")
        entry = next(e for e in st.iter_tree(rec) if e.get("path") == "b.txt")
        loc = st.index.lookup(bytes.fromhex(entry["chunks"][0]))
        path = Path(store) / pack_object_name(loc.pack)
    with open(path, "r+b") as f:
        f.seek(loc.offset + 60)
        b = f.read(1)
        f.seek(loc.offset + 60)
        f.write(bytes([b[0] ^ 0x40]))
    out = run_json("restore", "S", "--store", store, "--to", tmp_path / "r", "-q", expect=None)
    assert [x["path"] for x in out["failed"]] == ["b.txt"]
    assert (tmp_path / "r" / "a.txt").read_bytes() == b"A" * 2000
    assert not (tmp_path / "r" / "b.txt").exists()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["a.txt", "c.txt"]


def test_one_chunk_segment_reads_what_fstat_promised():
    """A segment no longer than the minimum chunk is read whole (ingest._OneChunk); to the end
    of the file it must end where fstat said, else the file changed under the reader."""
    import io

    import pytest

    one = ingest._OneChunk(io.BytesIO(b"abcdef"), 6, to_eof=True)
    chunk, guessed = one.next()
    assert bytes(chunk) == b"abcdef" and not guessed and one.next() is None
    assert one.next() is None
    part = io.BytesIO(b"abcdef")
    assert bytes(ingest._OneChunk(part, 4, to_eof=False).next()[0]) == b"abcd"
    assert part.read() == b"ef"  # the next segment starts where this one ended
    assert ingest._OneChunk(io.BytesIO(b""), 0, to_eof=True).next() is None
    for data in (b"abcdefg", b"abcde"):  # grew, shrank
        with pytest.raises(ingest._Skip, match="changed while"):
            ingest._OneChunk(io.BytesIO(data), 6, to_eof=True)
    with pytest.raises(ingest._Skip, match="changed while"):
        ingest._OneChunk(io.BytesIO(b"abc"), 6, to_eof=False)


def test_small_files_claimed_in_batches(tmp_path, store, monkeypatch):
    """Small files' chunks are claimed and stored in batches (ingest.BATCH_CHUNKS): each new
    chunk is stored exactly once, duplicates inside a batch and across batches included, and
    the last, partial batch before the version is committed."""
    from archivestore import Store
    monkeypatch.setattr(ingest, "BATCH_CHUNKS", 3)
    src = tmp_path / "Fades"
    files = _tree(src, seed=8)
    res = run_json("ingest", src, "--store", store, "-q")
    assert res["files"] == len(files)
    with Store.open(store) as st:
        _, rec = st.version("Fades")
        ids = {c for e in st.iter_tree(rec) if e["type"] == "file" for c in e["chunks"]}
        assert st.stats()["chunks"] == len(ids)  # nothing missing, nothing stored twice
    assert res["chunks_new"] == len(ids)
    assert run_json("fsck", "--read-data", "--store", store)["ok"] is True
    dest = tmp_path / "out"
    run_json("restore", "Fades", "--store", store, "--to", dest, "-q")
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data, rel
