"""The index's chunk records (format 2): compact and wide layouts, lookups through the Index
API, bulk loads split into bounded transactions, and refusal of an index of another format."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archivestore import Store
from archivestore import index as index_mod
from archivestore.errors import FormatError
from archivestore.index import (CHUNK_VALUE, COMPACT_LEN, INDEX_FORMAT, Index, Location,
                                pack_chunk, unpack_chunk)
from archivestore.packs import BlobRef

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
    assert sorted(k for k, _ in idx.iter_chunks()) == sorted(ids[:5])
    # data blobs (kind 0) count as chunks: 0, 2 and 3
    assert idx.counter("chunks") == 3
    assert idx.counter("bytes_unique") == (1 << 20) + 100 + (5 << 20)
    with idx.env.begin() as txn:
        sizes = sorted(len(v) for _k, v in txn.cursor(idx.chunks))
    assert sizes == [12, 12, 18, 18, 18]
    # a second pack holding the same id does not move it; a repoint does (wide → compact)
    other = os.urandom(16).hex()
    idx.add_pack(other, 1 << 20, [BlobRef(ids[2], 16, 100, 90, 0, 2)])
    assert idx.lookup(ids[2]).pack == name
    idx.repoint(other, [BlobRef(ids[2], 16, 100, 90, 0, 2)])
    assert idx.lookup(ids[2]) == Location(other, 16, 100, 90, 0, 2)
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


def _make_format_1(index_dir: Path) -> None:
    """Turn an index into what format 1 wrote: 18-byte records and `format` = b"1"."""
    idx = Index(index_dir)
    with idx.env.begin(write=True) as txn:
        for k, v in list(txn.cursor(idx.chunks)):
            txn.put(k, CHUNK_VALUE.pack(*unpack_chunk(v)), db=idx.chunks)
        txn.put(b"format", b"1", db=idx.meta)
    idx.close()


def test_old_format_index_is_refused_then_rebuilt(tmp_path, session):
    store = tmp_path / "store"
    run_cli("init", "--store", store)
    run_json("ingest", session, "--store", store)
    _make_format_1(store / "index")
    before = (store / "index" / "data.mdb").read_bytes()
    with pytest.raises(FormatError) as e:
        Index(store / "index")
    assert str(e.value) == (f"the index at {store / 'index'} has format 1, this version uses "
                            f"{INDEX_FORMAT.decode()}; rebuild it from the packs with: archive "
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
            assert {len(v) for _k, v in txn.cursor(st.index.chunks)} == {12}
    run_cli("restore", "Paper Boats", "--to", tmp_path / "out", "--store", store)
    assert_same_tree(session, tmp_path / "out")
