"""fsck --read-data's pipeline (runs of adjacent blobs read with one pread into a reused buffer,
spread over worker threads) must give exactly the verdicts of checking each blob on its own,
however the packs are cut into runs, with or without the CRC extension, on any backend."""
from __future__ import annotations

import shutil

import pytest

from archivestore import Store, check, codecs, hashing, packs
from archivestore.errors import FormatError
from archivestore.packs import KIND_DATA, pack_object_name, parse_blob, read_footer

from .conftest import run_json
from .faultlib import make_session, make_store


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A store of 128 KiB packs (many blobs per run) with damage of every kind in its packs:
    flipped bits in a header, in stored bytes, in the last stored byte and in a CRC field, a
    zeroed range over two blobs, a truncated pack and a pack whose footer is gone."""
    d = tmp_path_factory.mktemp("pipeline")
    store = make_store(d / "store")
    run_json("ingest", make_session(d / "Song", seed=4), "--store", store, "-q")
    with Store.open(store) as st:
        packs = sorted(st.list_pack_files())
        entries = {n: read_footer(st.backend, pack_object_name(n), size) for n, size in packs}
    multi = [n for n, _s in packs if len(entries[n]) >= 3]  # every role needs blobs 0-2
    assert len(multi) >= 6  # roles below use six of them
    path = {n: store / pack_object_name(n) for n, _s in packs}

    def flip(name, off, bit=0):
        data = bytearray(path[name].read_bytes())
        data[off] ^= 1 << bit
        path[name].write_bytes(bytes(data))

    e = entries[multi[0]]
    flip(multi[0], e[1].offset + 8)                       # plain length field of blob 1
    flip(multi[0], e[2].offset + 52 + e[2].stored_len // 2, 3)  # middle of blob 2's payload
    e = entries[multi[1]]
    flip(multi[1], e[-1].offset + e[-1].size - 1, 7)      # last stored byte of the last blob
    flip(multi[1], e[0].offset + 49)                      # CRC field of blob 0
    e = entries[multi[2]]
    data = bytearray(path[multi[2]].read_bytes())
    # end of blob 1 (not its magic), start of blob 2 (its magic, not past its end: a tiny
    # blob 2 must not let the range wipe blob 3's magic as well)
    back, ahead = min(100, e[1].size - 4), min(100, e[2].size - 1)
    lo = e[1].offset + e[1].size - back
    data[lo:lo + back + ahead] = bytes(back + ahead)
    path[multi[2]].write_bytes(bytes(data))
    e = entries[multi[3]]
    data = path[multi[3]].read_bytes()
    path[multi[3]].write_bytes(data[:e[2].offset + 70])   # truncated inside blob 2
    e = entries[multi[4]]
    flip(multi[4], e[1].offset + 60)                      # a blob in the pack ...
    data = path[multi[4]].read_bytes()
    path[multi[4]].write_bytes(data[:-8] + b"XXXXXXXX")  # ... whose trailer magic is gone
    flip(multi[5], 3)                                     # pack header magic
    return store, {"truncated": (multi[3], {x.id.hex() for x in entries[multi[3]]}),
                   "footer": multi[4], "footer_hit": e[1].id.hex(), "header": multi[5]}


def _verdicts(store) -> dict:
    if isinstance(store, tuple):
        store = store[0]
    out = run_json("fsck", "--store", store, "--read-data", expect=1)
    out.pop("seconds")
    return out


def _fsck_name(store, out):
    """How fsck names a chunk it knows only from the index (a truncated pack, a lost footer):
    by the full id when a version record or a readable manifest names it, else by the 24-byte
    index key, 48 hex digits (index format 4)."""
    lost = {(a["project"], a["version"]) for p in out["problems"] if p["kind"] == "damaged_tree"
            for a in p["affected"]}
    known = set()
    with Store.open(store) as st:
        for proj in st.projects():
            for n, rec in st.versions(proj):
                known |= {rec["id"], *rec["tree"]}
                if (proj, n) not in lost:
                    for e in st.iter_tree(rec):
                        known.update(e.get("chunks", []))
    return lambda c: c if c in known else c[:48]


def _reference(store) -> set:
    """Each blob of each pack with a readable footer, checked alone the straightforward way."""
    bad = set()
    with Store.open(store) as st:
        for name, size in st.list_pack_files():
            obj = pack_object_name(name)
            try:
                entries = read_footer(st.backend, obj, size)
            except FormatError:
                continue
            for ent in entries:
                raw = st.backend.get(obj, ent.offset, ent.size)
                try:
                    kind, codec, plain_len, _bid, stored = parse_blob(raw, ent.id)
                    ok = ((kind, codec, plain_len) == (ent.kind, ent.codec, ent.plain_len)
                          and hashing.chunk_id(codecs.decode(codec, stored, plain_len)) == ent.id)
                except FormatError:
                    ok = False
                if not ok:
                    bad.add((name, ent.id.hex()))
    return bad


def test_verdicts_match_blob_by_blob_reference(damaged):
    store, roles = damaged
    out = _verdicts(store)
    named = {(p["pack"], p["chunk"]) for p in out["problems"]
             if p["kind"] == "damaged_blob" and p["detail"] != "blob unreadable (pack footer damaged)"}
    assert named == _reference(store)
    # the zeroed range wipes blob 2's magic; every other hit fails its CRC first
    assert sorted(p["detail"] for p in out["problems"] if (p["pack"], p["chunk"]) in named) == \
        ["bad blob magic"] + ["blob checksum mismatch"] * (len(named) - 1)
    truncated, its_chunks = roles["truncated"]
    packs = sorted((p["pack"], p["chunk"] or "", p["detail"].split(":")[0])
                   for p in out["problems"] if p["kind"] == "damaged_pack")
    size = (store / pack_object_name(truncated)).stat().st_size
    name = _fsck_name(store, out)
    assert packs == sorted([(roles["footer"], "", "pack footer"), (roles["header"], "", "pack header")]
                           + [(truncated, name(c), f"pack is {size} bytes, the index says "
                               f"{_indexed_size(store, truncated)}") for c in its_chunks])
    # the pack whose footer is lost is scanned whole: it names the one blob hit there
    assert [(p["detail"], p["chunk"]) for p in out["problems"] if p["pack"] == roles["footer"]] == [
        ("pack footer: bad pack trailer", None),
        ("blob unreadable (pack footer damaged)", name(roles["footer_hit"]))]


def _indexed_size(store, name) -> int:
    with Store.open(store) as st:
        return {n: size for n, size, _c in st.index.iter_packs()}[name]


@pytest.mark.parametrize("segment", [1, 60_000, 1 << 30])
def test_same_verdicts_whatever_the_run_size(damaged, monkeypatch, segment):
    want = _verdicts(damaged)
    monkeypatch.setattr(check, "SEGMENT", segment)
    assert _verdicts(damaged) == want


def test_same_verdicts_without_the_crc_extension_and_through_backend_get(damaged, monkeypatch):
    want = _verdicts(damaged)

    def zlib_blob_crc(data, start, stored_len):
        import zlib
        view = memoryview(data)
        return (int.from_bytes(view[start + 48:start + 52], "little"),
                zlib.crc32(view[start + 52:start + 52 + stored_len], zlib.crc32(view[start:start + 48])))

    monkeypatch.setattr(packs, "blob_crc", zlib_blob_crc)  # what parse_blob checks with
    assert _verdicts(damaged) == want
    monkeypatch.setattr(check, "LocalBackend", type("NotLocal", (), {}))  # every read via get()
    assert _verdicts(damaged) == want


def test_one_worker_and_a_tiny_queue(damaged, monkeypatch):
    want = _verdicts(damaged)
    monkeypatch.setattr(check, "WORKERS", 1)
    monkeypatch.setattr(check, "INFLIGHT", 1)
    assert _verdicts(damaged) == want


def test_a_clean_store_counts_every_chunk_and_byte(tmp_path, monkeypatch):
    store = make_store(tmp_path / "store")
    run_json("ingest", make_session(tmp_path / "Song", seed=2, tracks=1), "--store", store, "-q")
    with Store.open(store) as st:
        plain = [e.plain_len for n, s in st.list_pack_files()
                 for e in read_footer(st.backend, pack_object_name(n), s)]
    for segment in (1, 1 << 22):
        monkeypatch.setattr(check, "SEGMENT", segment)
        out = run_json("fsck", "--store", store, "--read-data")
        assert (out["ok"], out["chunks_checked"], out["bytes_checked"]) == (True, len(plain), sum(plain))
    shutil.rmtree(store)


def test_a_pack_that_cannot_be_opened_is_named_not_fatal(tmp_path, monkeypatch):
    store = make_store(tmp_path / "store")
    run_json("ingest", make_session(tmp_path / "Song", seed=2, tracks=1), "--store", store, "-q")
    with Store.open(store) as st:  # a pack of data chunks only: the manifest pass reads no blob there
        name = min(n for n, size in st.list_pack_files()
                   if {e.kind for e in read_footer(st.backend, pack_object_name(n), size)} == {KIND_DATA})
    real_open = check.os.open

    def failing_open(path, *a, **kw):
        if str(path).endswith(f"{name}.pack"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(check.os, "open", failing_open)
    out = run_json("fsck", "--store", store, "--read-data", expect=1)
    assert [(p["kind"], p["pack"], p["detail"].split(":")[0]) for p in out["problems"]] == [
        ("damaged_pack", name, "unreadable")]
    assert out["packs_checked"] == len(list((store / "packs").rglob("*.pack")))
