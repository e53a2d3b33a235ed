"""The chunk table (archivestore.chunktable, _ext/_runs.pyx): sorted runs and the LMDB delta.

The kernels are checked against a dict model with hypothesis; the table through the Index API
with a tiny delta so that every few packs merge runs; crash, concurrency and damage cases.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archivestore import _runs, chunktable
from archivestore.chunktable import ENTRY, StaleRuns, fence_bits
from archivestore.errors import FormatError
from archivestore.index import Index, Location
from archivestore.packs import BlobRef

from .conftest import assert_same_tree, run_cli, run_json

ROOT = Path(__file__).resolve().parents[1]

# keys from a small alphabet collide across tables and share long prefixes
KEYS = st.binary(min_size=24, max_size=24) | st.builds(
    lambda a, b: bytes([a]) * 23 + bytes([b]), st.integers(0, 3), st.integers(0, 255))
RECS = st.binary(min_size=12, max_size=12)
TABLE = st.dictionaries(KEYS, RECS, max_size=40)


def table_bytes(d: dict) -> bytes:
    return b"".join(k + d[k] for k in sorted(d))


def fps_of(raw: bytes, n: int) -> bytes:
    """The fingerprints of a table: byte 8 of each key."""
    return bytes(raw[i * ENTRY + 8] for i in range(n))


def fence_of(raw: bytes, n: int, bits: int) -> bytes:
    counts = np.zeros(1 << bits, dtype=np.int64)
    for i in range(n):
        top = int.from_bytes(raw[i * ENTRY:i * ENTRY + 8], "big")
        counts[top >> (64 - bits) if bits else 0] += 1
    fence = np.zeros((1 << bits) + 1, dtype="<u4")
    fence[1:] = np.cumsum(counts)
    return fence.tobytes()


@settings(max_examples=200, deadline=None)
@given(st.lists(TABLE, min_size=1, max_size=5), st.lists(KEYS, max_size=30),
       st.lists(st.integers(0, 6), min_size=5, max_size=5))
def test_find_is_the_newest_tables_record(tables, extra, bits):
    model: dict = {}
    for d in reversed(tables):  # newest first: the first table wins
        model.update(d)
    args = []
    for d, b in zip(tables, bits):
        raw = table_bytes(d)
        fence = fence_of(raw, len(d), b) if b < 6 else None  # 6: a table without a fence
        fps = fps_of(raw, len(d)) if b % 2 else None  # fingerprints on some tables
        args.append((raw, len(d), fence, b if fence is not None else 0, fps))
    queries = list(model) + extra
    found, recs = bytearray(len(queries)), bytearray(12 * len(queries))
    hits = _runs.find(b"".join(queries), args, found, recs)
    assert hits == sum(q in model for q in queries)
    for i, q in enumerate(queries):
        if q in model:
            assert found[i] == 1 + next(t for t, d in enumerate(tables) if q in d)
            assert recs[12 * i:12 * i + 12] == model[q]
        else:
            assert found[i] == 0
    # the same tables read from files with pread: the same answers
    with tempfile.TemporaryFile() as f:
        file_args, pos = [], 0
        for raw, n, fence, b, _fps in args:
            f.write(b"x" * 7 + raw)  # entries at an offset, as in a run file
            file_args.append((None, n, fence, b, fps_of(raw, n), f.fileno(), pos + 7))
            pos += 7 + len(raw)
        f.flush()
        found_f, recs_f = bytearray(len(queries)), bytearray(12 * len(queries))
        assert _runs.find(b"".join(queries), file_args, found_f, recs_f) == hits
        assert found_f == found
        assert all(recs_f[12 * i:12 * i + 12] == recs[12 * i:12 * i + 12]
                   for i in range(len(queries)) if found[i])
        if any(a[1] for a in args):  # a file shorter than its entries
            f.truncate(0)
            with pytest.raises(OSError):
                _runs.find(b"".join(queries), file_args, found_f, recs_f)
    # full 32-byte ids, 32 bytes apart, are looked up by their first 24
    ids = b"".join(q + os.urandom(8) for q in queries)
    found32 = bytearray(len(queries))
    _runs.find(ids, args, found32, bytearray(12 * len(queries)), 32)
    assert found32 == found


@settings(max_examples=200, deadline=None)
@given(st.lists(TABLE, max_size=5), st.integers(1, 7), st.integers(0, 4))
def test_merge_is_sorted_unique_newest_wins(tables, step, bits):
    model: dict = {}
    for d in reversed(tables):
        model.update(d)
    m = _runs.Merger([(table_bytes(d), len(d)) for d in tables])
    out, counts = b"", np.zeros(1 << bits, dtype=np.uint32)
    buf = bytearray(ENTRY * step + 5)  # room for `step` entries and a few stray bytes
    while w := m.fill(buf, counts, bits):
        out += bytes(buf[:w * ENTRY])
    assert m.fill(buf) == 0 and m.written == len(model)
    assert out == table_bytes(model)
    fence = np.zeros((1 << bits) + 1, dtype="<u4")
    fence[1:] = np.cumsum(counts)
    assert fence.tobytes() == fence_of(out, len(model), bits)
    assert _runs.check(out, len(model), fence.tobytes(), bits) == -1
    for t, d in enumerate(tables):
        assert m.position(t) == len(d)


@given(TABLE.filter(lambda d: len(d) >= 2), st.data())
def test_check_and_merge_refuse_disorder(d, data):
    raw = bytearray(table_bytes(d))
    n = len(d)
    i = data.draw(st.integers(1, n - 1))
    a, b = raw[(i - 1) * ENTRY:i * ENTRY], raw[i * ENTRY:(i + 1) * ENTRY]
    raw[(i - 1) * ENTRY:i * ENTRY], raw[i * ENTRY:(i + 1) * ENTRY] = b, a  # swap two neighbours
    assert _runs.check(bytes(raw), n, None, 0) == i
    with pytest.raises(ValueError, match="out of key order"):
        m = _runs.Merger([(bytes(raw), n)])
        while m.fill(bytearray(ENTRY * 64)):
            pass


def test_file_search_of_a_bucket_larger_than_one_read():
    """A bucket of 1000 entries (keys sharing their top bits) is halved an entry at a time."""
    d = {bytes(8) + os.urandom(16): os.urandom(12) for _ in range(1000)}
    raw = table_bytes(d)
    fence = fence_of(raw, len(d), 3)
    keys = list(d) + [bytes(8) + os.urandom(16) for _ in range(50)]
    with tempfile.TemporaryFile() as f:
        f.write(raw)
        f.flush()
        found, recs = bytearray(len(keys)), bytearray(12 * len(keys))
        assert _runs.find(b"".join(keys), [(None, len(d), fence, 3, None, f.fileno(), 0)],
                          found, recs) == 1000
    assert list(found) == [1] * 1000 + [0] * 50
    assert all(recs[12 * i:12 * i + 12] == d[k] for i, k in enumerate(keys[:1000]))


def test_check_finds_a_wrong_fence_slot():
    d = {bytes([i]) * 24: bytes(12) for i in range(0, 256, 16)}
    raw = table_bytes(d)
    fence = bytearray(fence_of(raw, len(d), 4))
    assert _runs.check(raw, len(d), bytes(fence), 4) == -1
    fence[4 * 3] += 1
    assert _runs.check(raw, len(d), bytes(fence), 4) == -2 - 3


def test_kernels_refuse_bad_tables():
    raw = bytes(36)
    for bad in [(raw, 1, None), (raw, 1, None, 0, None, 3), (raw, 1, None, 0, None, 3, 0),
                (None, 1, None, 0, None), (raw, 1, None, 40)]:
        with pytest.raises(ValueError):
            _runs.find(bytes(24), [bad], bytearray(1), bytearray(12))
    with pytest.raises(ValueError):
        _runs.Merger([(raw, 1, None)])
    d = {bytes([i]) * 24: bytes(12) for i in range(0, 256, 16)}
    t = table_bytes(d)
    fps = bytearray(fps_of(t, len(d)))
    assert _runs.check(t, len(d), None, 0, bytes(fps)) == -1
    fps[5] ^= 1
    assert _runs.check(t, len(d), None, 0, bytes(fps)) == 5
    with pytest.raises(ValueError):
        _runs.find(bytes(24), [(t, len(d), fence_of(t, len(d), 2), 2, bytes(3))],
                   bytearray(1), bytearray(12))


def test_kernels_refuse_short_buffers():
    with pytest.raises(ValueError):
        _runs.find(bytes(24), [(bytes(35), 1, None, 0)], bytearray(1), bytearray(12))
    with pytest.raises(ValueError):
        _runs.find(bytes(24), [(bytes(36), 1, bytes(7), 1)], bytearray(1), bytearray(12))
    with pytest.raises(ValueError):
        _runs.find(bytes(25), [], bytearray(1), bytearray(12))
    with pytest.raises(ValueError):
        _runs.find(bytes(48), [], bytearray(1), bytearray(24))
    assert _runs.find(b"", [], bytearray(), bytearray()) == 0


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=64).filter(
    lambda c: (len(c) & (len(c) - 1)) == 0))
def test_fence_from_counts_and_fence_ok(counts):
    bits = len(counts).bit_length() - 1
    fence = _runs.fence_from_counts(np.array(counts, dtype=np.uint32).tobytes(), bits)
    want = np.zeros(len(counts) + 1, dtype="<u4")
    want[1:] = np.cumsum(counts)
    assert fence == want.tobytes()
    assert _runs.fence_ok(fence, sum(counts), bits)
    assert not _runs.fence_ok(fence, sum(counts) + 1, bits)
    assert not _runs.fence_ok(fence[:-4], sum(counts), bits)
    if len(counts) >= 2:
        bad = bytearray(fence)
        bad[4:8] = (int(want[2]) + 1).to_bytes(4, "little")  # slot 1 past slot 2
        assert not _runs.fence_ok(bytes(bad), sum(counts), bits)


def test_the_cli_does_not_import_numpy():
    """numpy (and OpenBLAS's threads) cost every command ≈ 0.2 s of start-up; only `demo` and
    the tests need it."""
    code = "import sys, archivestore.cli; assert 'numpy' not in sys.modules, 'numpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_fence_bits():
    assert [fence_bits(n) for n in (0, 7, 8, 16, 20_000_000)] == [0, 0, 0, 1, 21]


# -- through the Index ------------------------------------------------------------------------

def ref(cid: bytes, i: int) -> BlobRef:
    return BlobRef(cid, 16 + 100 * i, 1000 + i, 900 + i, 0, 1)


def run_files(idx: Index) -> list[str]:
    return sorted(p.name for p in idx.table.dir.iterdir()) if idx.table.dir.exists() else []


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_index_matches_a_model_through_merges(tmp_path_factory, data):
    chunktable.DELTA_MAX, old = 8, chunktable.DELTA_MAX
    try:
        idx = Index(tmp_path_factory.mktemp("ix") / "index")
        model: dict[bytes, Location] = {}
        pool = [os.urandom(32) for _ in range(120)]
        for step in range(data.draw(st.integers(1, 25))):
            name = os.urandom(16).hex()
            picks = data.draw(st.lists(st.sampled_from(pool), max_size=14))
            if model and data.draw(st.booleans()) and step % 3 == 2:
                # a repoint of stored chunks, to compact or wide records
                idx.add_pack(name, 1 << 20, [])
                moved = [c for c in picks if c[:24] in model]
                wide = data.draw(st.booleans())
                ents = [BlobRef(c, (1 << 26 if wide else 64) + i, 10, 9, 0, 2)
                        for i, c in enumerate(moved)]
                idx.repoint(name, ents)
                for e in ents:
                    model[e.id[:24]] = Location(name, e.offset, 10, 9, 0, 2)
            else:
                ents = [ref(c, i) for i, c in enumerate(picks)]
                idx.add_pack(name, 1 << 20, ents)
                for e in ents:
                    model.setdefault(e.id[:24], Location(name, e.offset, e.plain_len,
                                                         e.stored_len, 0, 1))
        for file_search in (chunktable.FILE_SEARCH, 0):  # runs read with pread, then mapped
            chunktable.FILE_SEARCH, saved = file_search, chunktable.FILE_SEARCH
            try:
                assert idx.contains_many(pool) == [c[:24] in model for c in pool]
                assert idx.lookup_many(pool) == [model.get(c[:24]) for c in pool]
            finally:
                chunktable.FILE_SEARCH = saved
        for c in pool:
            assert idx.lookup(c) == model.get(c[:24])
        assert idx.lookup_many([pool[0][:31], pool[1]]) == [None, model.get(pool[1][:24])]
        assert list(idx.iter_chunks()) == sorted(model.items())
        with idx.env.begin() as txn:
            runs = idx.table.run_list(txn)
        # run sizes grow geometrically; only the named runs are on disk
        assert all(a > chunktable.RATIO * b for (_g, a), (_h, b) in zip(runs, runs[1:]))
        assert run_files(idx) == sorted(chunktable.run_name(g) for g, _n in runs)
        idx.close()
    finally:
        chunktable.DELTA_MAX = old


def test_merges_keep_few_runs(tmp_path, small_delta):
    idx = Index(tmp_path / "index")
    ids = [os.urandom(32) for _ in range(2000)]
    for p in range(0, len(ids), 10):
        idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(ids[p:p + 10])])
    with idx.env.begin() as txn:
        runs = idx.table.run_list(txn)
        delta = len(idx.table.delta(txn)) // ENTRY
    assert sum(n for _g, n in runs) + delta == 2000
    assert len(runs) <= 6 and delta < 8
    assert all(a > chunktable.RATIO * b for (_g, a), (_h, b) in zip(runs, runs[1:]))
    assert idx.contains_many(ids) == [True] * 2000
    assert idx.contains_many([os.urandom(32) for _ in range(500)]) == [False] * 500
    assert [k for k, _ in idx.iter_chunks()] == sorted(c[:24] for c in ids)
    for gen, _n in runs:
        run = idx.table._run(gen, _n)
        assert run.verify() is None
    idx.close()


def test_a_reader_whose_run_was_merged_away_retries(tmp_path, small_delta):
    idx = Index(tmp_path / "index")
    ids = [os.urandom(32) for _ in range(16)]
    idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(ids)])
    old = idx.env.begin()  # names the first run
    more = [os.urandom(32) for _ in range(64)]
    for p in range(0, 64, 8):  # merges replace the first run; its file is deleted
        idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(more[p:p + 8])])
    idx.table._runs.clear()  # as a process that had not mapped it yet
    with pytest.raises(StaleRuns):
        idx.table.find(old, ids[0][:24])
    old.abort()
    assert idx.contains_many(ids + more) == [True] * 80


def test_a_merge_killed_before_its_commit_loses_nothing(tmp_path):
    """SIGKILL after the new run is renamed into place, before the transaction naming it
    commits: the index keeps the old runs and delta; the next open deletes the orphan."""
    path = tmp_path / "index"
    script = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
from archivestore import chunktable
chunktable.DELTA_MAX = 8
from archivestore.index import Index
from archivestore.packs import BlobRef
idx = Index({str(path)!r})
for p in range(6):
    ids = [bytes([p, i]) + bytes(30) for i in range(5)]
    idx.add_pack(os.urandom(16).hex(), 1 << 20, [BlobRef(c, 16, 10, 9, 0, 1) for c in ids])
"""
    env = dict(os.environ, ARCHIVESTORE_FAULT="run_written:2")
    r = subprocess.run([sys.executable, "-c", script], env=env)
    assert r.returncode == -9
    chunktable.DELTA_MAX, old = 8, chunktable.DELTA_MAX
    try:
        orphan = sorted(p.name for p in (path / "runs").iterdir())
        assert len(orphan) == 2  # the named run and the killed merge's
        idx = Index(path)
        with idx.env.begin() as txn:
            runs = idx.table.run_list(txn)
        assert len(runs) == 1 and runs[0][1] == 10  # packs 0 and 1; pack 3's merge was killed
        assert run_files(idx) == [chunktable.run_name(runs[0][0])]  # opening removed the orphan
        stored = [bytes([p, i]) + bytes(30) for p in range(3) for i in range(5)]
        assert idx.contains_many(stored) == [True] * 15  # packs 0-2 committed
        assert idx.contains_many([bytes([3, 0]) + bytes(30)]) == [False]
        idx.add_pack(os.urandom(16).hex(), 1 << 20,
                     [BlobRef(bytes([9, i]) + bytes(30), 16, 10, 9, 0, 1) for i in range(8)])
        with idx.env.begin() as txn:
            runs = idx.table.run_list(txn)
        assert run_files(idx) == sorted(chunktable.run_name(g) for g, _n in runs)
        assert idx.contains_many(stored) == [True] * 15
        idx.close()
    finally:
        chunktable.DELTA_MAX = old


def _one_run(tmp_path) -> tuple[Index, list[bytes], Path]:
    idx = Index(tmp_path / "index")
    ids = [os.urandom(32) for _ in range(40)]
    chunktable.DELTA_MAX, old = 8, chunktable.DELTA_MAX
    try:
        idx.add_pack(os.urandom(16).hex(), 1 << 20, [ref(c, i) for i, c in enumerate(ids)])
    finally:
        chunktable.DELTA_MAX = old
    (run,) = idx.table.dir.glob("*.run")
    idx.close()
    return idx, ids, run


@pytest.mark.parametrize("damage", ["truncate", "header", "fence", "missing"])
def test_a_damaged_run_is_refused_with_the_rebuild_pointer(tmp_path, damage):
    _idx, ids, run = _one_run(tmp_path)
    raw = bytearray(run.read_bytes())
    if damage == "truncate":
        run.write_bytes(raw[:-1])
    elif damage == "header":
        raw[9] ^= 1
        run.write_bytes(raw)
    elif damage == "fence":
        raw[-8:-4] = (1000).to_bytes(4, "little")
        run.write_bytes(raw)
    else:
        run.unlink()
    idx = Index(tmp_path / "index")
    with pytest.raises(FormatError, match="rebuild-index"):
        idx.contains_many(ids)
    idx.close()


def test_fsck_finds_a_run_out_of_order(tmp_path):
    _idx, ids, run = _one_run(tmp_path)
    raw = bytearray(run.read_bytes())
    first = chunktable.HEADER_LEN
    raw[first:first + ENTRY], raw[first + ENTRY:first + 2 * ENTRY] = \
        raw[first + ENTRY:first + 2 * ENTRY], raw[first:first + ENTRY]
    run.write_bytes(raw)
    idx = Index(tmp_path / "index")
    problems = idx.check_table()
    assert len(problems) == 1 and "is out of key order" in problems[0]
    idx.close()


def test_fsck_reports_a_damaged_run_and_rebuild_index_mends_it(tmp_path, session):
    store = tmp_path / "store"
    run_cli("init", "--store", store)
    chunktable.DELTA_MAX, old = 8, chunktable.DELTA_MAX
    try:
        run_json("ingest", session, "--store", store)
    finally:
        chunktable.DELTA_MAX = old
    runs = sorted((store / "index" / "runs").glob("*.run"))
    assert runs
    raw = bytearray(runs[0].read_bytes())
    raw[chunktable.HEADER_LEN + 30] ^= 0x40  # a bit of a record's offset: the CRC fails
    runs[0].write_bytes(raw)
    r = run_cli("fsck", "--store", store, "--json", expect=1)
    rep = json.loads(r.stdout)
    # and the chunk's pack disagrees with the record
    assert [p["kind"] for p in rep["problems"]] == ["damaged_index", "index_mismatch"]
    assert "fails its CRC" in rep["problems"][0]["detail"]
    assert "--rebuild-index" in rep["problems"][0]["detail"]
    rb = run_json("fsck", "--rebuild-index", "--read-data", "--store", store)
    assert rb["ok"] is True
    run_cli("restore", "Paper Boats", "--to", tmp_path / "out", "--store", store)
    assert_same_tree(session, tmp_path / "out")


READER = """
import sys, time
sys.path.insert(0, {root!r})
from archivestore.index import Index
idx = Index({path!r})
ids = [bytes([p, i]) + bytes(30) for p in range({first}) for i in range(8)]
loops = 0
t0 = time.monotonic()
while time.monotonic() - t0 < {seconds}:
    # ids of packs committed before this process started: always present, merges or not
    assert all(idx.contains_many(ids)), "a committed chunk was missing (bulk)"
    assert idx.lookup(ids[loops % len(ids)]) is not None, "a committed chunk was missing"
    loops += 1
print(loops)
"""


def test_readers_beside_a_merging_writer(tmp_path):
    """A writer process commits packs with a 8-entry delta (a merge every pack, runs replaced
    and deleted) while two reader processes look up committed ids all along: every answer is
    right (a reader whose run vanished retries with a new transaction)."""
    path = tmp_path / "index"
    chunktable.DELTA_MAX, old = 8, chunktable.DELTA_MAX
    try:
        idx = Index(path)
        for p in range(20):
            idx.add_pack(os.urandom(16).hex(), 1 << 20,
                         [BlobRef(bytes([p, i]) + bytes(30), 16, 10, 9, 0, 1) for i in range(8)])
        idx.close()
    finally:
        chunktable.DELTA_MAX = old
    writer = f"""
import os, sys, time
sys.path.insert(0, {str(ROOT)!r})
from archivestore.index import Index
from archivestore.packs import BlobRef
idx = Index({str(path)!r})
t0 = time.monotonic()
p = 20
while time.monotonic() - t0 < 3 and p < 250:
    idx.add_pack(os.urandom(16).hex(), 1 << 20,
                 [BlobRef(bytes([p, i]) + bytes(30), 16, 10, 9, 0, 1) for i in range(8)])
    p += 1
print(p)
"""
    env = dict(os.environ, ARCHIVESTORE_DELTA_MAX="8")
    w = subprocess.Popen([sys.executable, "-c", writer], env=env, stdout=subprocess.PIPE, text=True)
    readers = [subprocess.Popen([sys.executable, "-c", READER.format(
        root=str(ROOT), path=str(path), first=20, seconds=3)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for _ in range(2)]
    out_w = w.communicate(timeout=60)[0]
    assert w.returncode == 0
    for r in readers:
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        assert int(out) > 10
    written = int(out_w)
    assert written > 40  # many merges happened under the readers
    idx = Index(path)
    ids = [bytes([p, i]) + bytes(30) for p in range(written) for i in range(8)]
    assert idx.contains_many(ids) == [True] * len(ids)
    assert idx.check_table() == []
    with idx.env.begin() as txn:
        runs = idx.table.run_list(txn)
    assert run_files(idx) == sorted(chunktable.run_name(g) for g, _n in runs)
    idx.close()


def test_small_searches_map_nothing(tmp_path):
    """Single lookups read runs with pread: the process's file-backed RSS does not grow with
    the number of lookups or the size of the runs."""
    idx = Index(tmp_path / "index")
    keys = sorted(os.urandom(24) for _ in range(200_000))
    batches = (b"".join(k + bytes(12) for k in keys[i:i + 50_000]) for i in range(0, 200_000, 50_000))
    with idx.env.begin(write=True) as txn:
        idx.table.load_sorted(txn, batches, len(keys))

    def rss_file_kb() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1])
        return 0
    idx.contains_many([keys[0] + bytes(8)])  # opens the run
    before = rss_file_kb()
    for k in keys[::40]:  # 5000 lookups spread over the 7 MB run
        assert idx.contains_many([k + bytes(8)]) == [True]
    assert rss_file_kb() - before < 1024
    # a big batch maps the run, and gives its pages back when told to
    assert all(idx.contains_many([k + bytes(8) for k in keys[::20]]))
    assert rss_file_kb() - before > 1024
    with idx.env.begin() as txn:
        for r in idx.table.runs(txn):
            r.trim()
    assert rss_file_kb() - before < 1024
    idx.close()
