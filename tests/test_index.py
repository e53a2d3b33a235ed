"""The index's chunk records (format 5): compact and wide layouts, the chunk table (runs and
delta, archivestore.chunktable; its own tests are tests/test_chunktable.py) and the `wide` table,
keyed by the first 24 bytes of the id, lookups through the Index API, bulk loads split into
bounded transactions, and refusal of an index of another format."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archivestore import Store
from archivestore import index as index_mod
from archivestore.errors import DamageError, FormatError
from archivestore.index import (CHUNK_VALUE, COMPACT_LEN, INDEX_FORMAT, KEY_LEN, Index,
                                Location, key_of, pack_chunk, unpack_chunk)
from archivestore.packs import BlobRef, pack_object_name, read_footer

from .conftest import assert_same_tree, run_cli, run_json

U32 = st.integers(0, (1 << 32) - 1)


@given(U32, U32, U32, U32, st.integers(0, 255), st.integers(0, 255))
def test_chunk_record_round_trip(num, off, plain, stored, kind, codec):
    raw = pack_chunk(num, off, plain, stored, kind, codec)
    assert unpack_chunk(raw) == (num, off, plain, stored, kind, codec)
    fits = (num < 1 << 23 and off < 1 << 25 and 0 < plain <= 1 << 22 and 0 < stored <= 1 << 22
            and kind < 4 and codec < 4)
    assert len(raw) == (COMPACT_LEN if fits else CHUNK_VALUE.size)


@pytest.mark.parametrize("fields, size", [
    ((0, 16, 1, 1, 0, 0), 12),                                           # smallest
    (((1 << 23) - 1, (1 << 25) - 1, 1 << 22, 1 << 22, 3, 3), 12),         # every field at its top
    ((1 << 23, 16, 100, 90, 0, 1), 18),                                   # pack number too big
    ((5, 1 << 25, 100, 90, 0, 1), 18),                                    # offset past 32 MiB
    ((5, 16, (1 << 22) + 1, 90, 0, 1), 18),                               # chunk over 4 MiB
    ((5, 16, 100, (1 << 22) + 1, 0, 1), 18),
    ((5, 16, 0, 0, 0, 0), 18),                                            # empty blob
    ((5, 16, 100, 90, 4, 1), 18),                                         # unknown kind
    ((5, 16, 100, 90, 0, 4), 18),                                         # unknown codec
])
def test_chunk_record_layout_edges(fields, size):
    raw = pack_chunk(*fields)
    assert len(raw) == size and unpack_chunk(raw) == fields


def test_compact_record_bytes_are_the_documented_bit_layout():
    # pack 1 | offset 2 << 23 | plain-1 = 2 << 48 | stored-1 = 3 << 70 | kind 1 << 92 | codec 2 << 94
    v = 1 | 2 << 23 | 2 << 48 | 3 << 70 | 1 << 92 | 2 << 94
    assert pack_chunk(1, 2, 3, 4, 1, 2) == v.to_bytes(12, "little")


def test_garbled_chunk_record_is_a_format_error():
    with pytest.raises(FormatError, match="rebuild-index"):
        unpack_chunk(b"\0" * 13)


def test_index_round_trip_compact_and_wide(tmp_path):
    idx = Index(tmp_path / "index")
    ids = [os.urandom(32) for _ in range(6)]
    refs = [BlobRef(ids[0], 16, 1 << 20, (1 << 20) - 100, 0, 1),
            BlobRef(ids[1], 16 + (1 << 20), 4096, 4096, 1, 0),
            BlobRef(ids[2], (1 << 25) + 7, 100, 90, 0, 2),            # wide: offset
            BlobRef(ids[3], 64, 5 << 20, 5 << 20, 0, 0),              # wide: 5 MiB chunk
            BlobRef(ids[4], 128, 0, 0, 2, 0)]                         # wide: empty blob
    name = os.urandom(16).hex()
    idx.add_pack(name, 40 << 20, refs)
    for r in refs:
        assert idx.lookup(r.id) == Location(name, r.offset, r.plain_len, r.stored_len, r.kind,
                                            r.codec)
    assert idx.lookup(ids[5]) is None
    assert idx.contains_many(ids) == [True] * 5 + [False]
    assert idx.contains_many([]) == []
    # the index keeps each id's first 24 bytes: iteration yields those keys
    assert KEY_LEN == 24 and key_of(ids[0]) == ids[0][:24]
    assert sorted(k for k, _ in idx.iter_chunks()) == sorted(i[:24] for i in ids[:5])
    for r in refs:
        assert idx.lookup_key(r.id[:24]) == idx.lookup(r.id)
    assert idx.lookup_key(ids[5][:24]) is None and idx.lookup_key(ids[0]) is None
    # data blobs (kind 0) count as chunks: 0, 2 and 3
    assert idx.counter("chunks") == 3
    assert idx.counter("bytes_unique") == (1 << 20) + 100 + (5 << 20)
    with idx.env.begin() as txn:
        compact = list(idx.table.iterate(txn))
        wide = list(txn.cursor(idx.wide))
    # compact records in the chunk table: the id's first 24 bytes → the 12-byte record
    assert compact == sorted((i[:24], pack_chunk(0, r.offset, r.plain_len, r.stored_len, r.kind,
                                                 r.codec)) for i, r in zip(ids[:2], refs[:2]))
    assert sorted(wide) == sorted((r.id[:24], CHUNK_VALUE.pack(0, r.offset, r.plain_len, r.stored_len,
                                                          r.kind, r.codec)) for r in refs[2:])
    # a second pack holding the same id does not move it; a repoint does (wide → compact)
    other = os.urandom(16).hex()
    idx.add_pack(other, 1 << 20, [BlobRef(ids[2], 16, 100, 90, 0, 2)])
    assert idx.lookup(ids[2]).pack == name
    idx.repoint(other, [BlobRef(ids[2], 16, 100, 90, 0, 2)])
    assert idx.lookup(ids[2]) == Location(other, 16, 100, 90, 0, 2)
    # compact first, then a wide copy elsewhere: still one record, the first; a repoint moves it
    idx.add_pack(os.urandom(16).hex(), 1 << 20, [BlobRef(ids[0], 1 << 26, 100, 90, 0, 2)])
    assert idx.lookup(ids[0]) == Location(name, 16, 1 << 20, (1 << 20) - 100, 0, 1)
    idx.repoint(other, [BlobRef(ids[0], 1 << 26, 100, 90, 0, 2)])
    assert idx.lookup(ids[0]) == Location(other, 1 << 26, 100, 90, 0, 2)
    with idx.env.begin() as txn:
        # ids[0]'s old compact record stays in the table, overridden by its wide one
        assert [k for k, _r in idx.table.iterate(txn)] == sorted(i[:24] for i in ids[:3])
        assert txn.stat(idx.wide)["entries"] == 3
    assert sorted(k for k, _ in idx.iter_chunks()) == sorted(i[:24] for i in ids[:5])
    assert idx.counter("chunks") == 3
    idx.close()


def test_ids_sharing_a_prefix(tmp_path):
    """Many ids under one key of `chunks`: neighbours, absent ids between and past them, a key
    with no items, repoints that keep the other items, and iteration in id order."""
    idx = Index(tmp_path / "index")
    base = bytes(range(32))
    near = [base[:23] + bytes([b]) + base[24:] for b in (0, 1, 2, 200, 255)]  # in the last
    near += [base[:1] + bytes([b]) + base[2:] for b in (0, 9, 255)]  # key byte; in the second
    near = sorted(set(near))
    far = [bytes([7]) + os.urandom(31) for _ in range(300)] + [bytes([0xFF]) * 32]
    present = near + far
    name = os.urandom(16).hex()
    idx.add_pack(name, 1 << 20, [BlobRef(c, 16 + i, 100 + i, 90, 0, 1)
                                  for i, c in enumerate(present)])
    absent = [base[:23] + bytes([3]) + base[24:], base[:23] + bytes([254]) + base[24:],
              base[:1] + b"\xff" * 31, base[:1] + b"\0" * 31, bytes([8]) * 32,
              bytes([0xFF]) * 23 + b"\xfe" + bytes([0xFF]) * 8]
    absent = [a for a in absent if a not in present]
    assert len(absent) == 6
    assert idx.contains_many(present + absent) == [True] * len(present) + [False] * 6
    for i, c in enumerate(present):
        assert idx.lookup(c) == Location(name, 16 + i, 100 + i, 90, 0, 1)
    assert all(idx.lookup(a) is None for a in absent)
    assert [k for k, _ in idx.iter_chunks()] == sorted(c[:24] for c in present)
    # repoint one of the neighbours, to a compact and to a wide record
    other = os.urandom(16).hex()
    idx.add_pack(other, 1 << 20, [])
    idx.repoint(other, [BlobRef(near[2], 5, 6, 7, 1, 0), BlobRef(near[3], 5, 0, 0, 2, 0)])
    assert idx.lookup(near[2]) == Location(other, 5, 6, 7, 1, 0)
    assert idx.lookup(near[3]) == Location(other, 5, 0, 0, 2, 0)
    for i, c in enumerate(present):
        if c not in (near[2], near[3]):
            assert idx.lookup(c) == Location(name, 16 + i, 100 + i, 90, 0, 1)
    assert [k for k, _ in idx.iter_chunks()] == sorted(c[:24] for c in present)
    assert idx.contains_many(absent + near) == [False] * 6 + [True] * len(near)
    # only the first 24 bytes are kept: an id differing past them is taken for the same chunk
    # (lookups then check the full id in the blob header, tests/test_core_e2e.py)
    twin = near[0][:24] + bytes(8)
    assert idx.contains_many([twin]) == [True] and idx.lookup(twin) == idx.lookup(near[0])
    # ids that are not 32 bytes are never present
    assert idx.contains_many([base[:31], base + b"x"]) == [False, False]
    assert idx.lookup(base[:31]) is None
    idx.close()


def test_bulk_load_splits_transactions_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(index_mod, "TXN_CHUNKS", 100)
    idx = Index(tmp_path / "index")
    packs, ids = [], []
    for p in range(13):  # 13 packs of 32: transactions of 4, 4, 4 and 1 packs
        ents = [BlobRef(os.urandom(32), 16 + i * 1000, 1000, 900, 0, 1) for i in range(32)]
        ids += [e.id for e in ents]
        packs.append((os.urandom(16).hex(), 1 << 20, ents))
    before = idx.env.info()["last_txnid"]
    idx.add_packs(packs)
    assert idx.env.info()["last_txnid"] - before == 4
    assert idx.contains_many(ids) == [True] * len(ids)
    assert idx.counter("chunks") == 13 * 32 and idx.counter("bytes_stored") == 13 << 20
    assert [n for n, _s, _c in idx.iter_packs()] == [n for n, _s, _e in packs]
    assert idx.lookup(packs[12][2][31].id) == Location(packs[12][0], 16 + 31 * 1000, 1000, 900,
                                                       0, 1)
    idx.close()


def _make_old_format(store: Path, fmt: bytes) -> None:
    """Turn a store's index into what an older format wrote: a DUPSORT|DUPFIXED `chunks` table
    (key = the id's first byte, items = its bytes 1..23 + the compact record) and `wide` in
    format 4; keyed by the full 32-byte ids (from the pack footers) in formats 1–3: a plain
    `chunks` table (no `wide`) of id → record, 18-byte records in format 1, 12 or 18 bytes in
    format 2; in format 3 the layout of format 4 with 31 id bytes in each item and 32-byte
    `wide` keys."""
    with Store.open(store) as st:
        full = {e.id[:24]: e.id for name, size in st.list_pack_files()
                for e in read_footer(st.backend, pack_object_name(name), size)}
    idx = Index(store / "index")
    with idx.env.begin(write=True) as txn:
        records = [(full[k], v) for k, v in idx.table.iterate(txn)]
        records += [(full[bytes(k)], v) for k, v in txn.cursor(idx.wide)]
        for key in (b"chunkdelta", b"chunkruns", b"chunkgen"):
            txn.delete(key, db=idx.meta)
        txn.drop(idx.wide, delete=True)
    for run in (store / "index" / "runs").glob("*.run"):
        run.unlink()
    if fmt in (b"3", b"4"):
        chunks = idx.env.open_db(b"chunks", dupsort=True, dupfixed=True)
        wide = idx.env.open_db(b"wide")
    else:
        chunks = wide = idx.env.open_db(b"chunks")
    with idx.env.begin(write=True) as txn:
        for k, v in records:
            if fmt == b"4":
                k = k[:24]
            if fmt in (b"3", b"4") and len(v) == COMPACT_LEN:
                txn.put(k[:1], k[1:] + v, db=chunks)
            else:
                txn.put(k, CHUNK_VALUE.pack(*unpack_chunk(v)) if fmt == b"1" else v, db=wide)
        txn.put(b"format", fmt, db=idx.meta)
    idx.close()


@pytest.mark.parametrize("old", [b"1", b"2", b"3"])
def test_old_format_index_is_refused_then_rebuilt(tmp_path, session, old):
    store = tmp_path / "store"
    run_cli("init", "--store", store)
    run_json("ingest", session, "--store", store)
    _make_old_format(store, old)
    before = (store / "index" / "data.mdb").read_bytes()
    with pytest.raises(FormatError) as e:
        Index(store / "index")
    assert INDEX_FORMAT == b"5"
    assert str(e.value) == (f"the index at {store / 'index'} has format {old.decode()}, this "
                            f"version uses 5; rebuild it from the packs with: archive "
                            f"fsck --rebuild-index")
    for args in (("stats",), ("versions", "Paper Boats"),
                 ("restore", "Paper Boats", "--to", tmp_path / "x")):
        r = run_cli(*args, "--store", store, expect=3)
        assert r.stderr == f"archive: error: {e.value}\n"
    assert (store / "index" / "data.mdb").read_bytes() == before  # refused, never written
    assert not (tmp_path / "x").exists()
    rb = run_json("fsck", "--rebuild-index", "--read-data", "--store", store)
    assert rb["ok"] is True and rb["rebuilt_index"]["versions"] == 1
    with Store.open(store) as st:
        assert st.index.get_meta(b"format") == INDEX_FORMAT
        with st.index.env.begin() as txn:
            assert {len(v) for _k, v in st.index.table.iterate(txn)} == {COMPACT_LEN}
            assert txn.stat(st.index.wide)["entries"] == 0
    run_cli("restore", "Paper Boats", "--to", tmp_path / "out", "--store", store)
    assert_same_tree(session, tmp_path / "out")


def test_format_4_index_is_upgraded_in_place(tmp_path, session):
    store = tmp_path / "store"
    run_cli("init", "--store", store)
    run_json("ingest", session, "--store", store)
    with Store.open(store) as st:
        before = list(st.index.iter_chunks())
        stats = st.stats()
    _make_old_format(store, b"4")
    assert not list((store / "index" / "runs").glob("*.run"))
    with Store.open(store) as st:
        assert st.index.get_meta(b"format") == INDEX_FORMAT == b"5"
        assert list(st.index.iter_chunks()) == before and st.stats() == stats
        with st.index.env.begin() as txn:
            assert [n for _g, n in st.index.table.run_list(txn)] == [len(before)]
            assert b"chunks" not in [k for k, _v in txn.cursor()]  # the old table is dropped
    assert run_json("fsck", "--read-data", "--store", store)["ok"] is True
    run_cli("restore", "Paper Boats", "--to", tmp_path / "out", "--store", store)
    assert_same_tree(session, tmp_path / "out")


def test_an_id_sharing_a_key_never_reads_the_other_chunk(tmp_path, session):
    """Two ids with the same first 24 bytes are one entry to the index; a read of the one not
    stored finds the other's blob and refuses it on the full id in the blob header."""
    store = tmp_path / "store"
    run_cli("init", "--store", store)
    run_json("ingest", session, "--store", store)
    with Store.open(store) as st:
        cid = next(k for k, _loc in st.index.iter_chunks())
        pack = st.index.lookup_key(cid).pack
        size = dict(st.list_pack_files())[pack]
        full = next(e.id for e in read_footer(st.backend, pack_object_name(pack), size)
                    if key_of(e.id) == cid)
        twin = full[:24] + bytes(b ^ 0xFF for b in full[24:])
        assert st.index.contains_many([twin]) == [True]
        assert st.index.lookup(twin) == st.index.lookup(full)
        st.read_blob(full)
        with pytest.raises(DamageError, match="blob id differs from the index"):
            st.read_blob(twin)


def test_garbled_delta_is_a_format_error(tmp_path):
    idx = Index(tmp_path / "index")
    cid = bytes([5]) + os.urandom(31)
    with idx.env.begin(write=True) as txn:  # a 41-byte entry: 23 id bytes + 18, not 36
        txn.put(b"chunkdelta", cid[:23] + CHUNK_VALUE.pack(0, 16, 100, 90, 0, 1), db=idx.meta)
    with pytest.raises(FormatError, match="chunk table is damaged .*rebuild-index"):
        idx.lookup(cid)
    with pytest.raises(FormatError, match="chunk table is damaged .*rebuild-index"):
        list(idx.iter_chunks())
    with pytest.raises(FormatError, match="chunk table is damaged .*rebuild-index"):
        idx.add_pack(os.urandom(16).hex(), 1 << 20, [BlobRef(cid, 16, 100, 90, 0, 1)])
    idx.close()
