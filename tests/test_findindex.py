"""The search blocks behind `archive find` (archivestore.findindex): answers and output byte
for byte equal to the per-record reference (`catalog.search` + `Match.to_json`), blocks kept in
step with the catalog, and old indexes backfilled."""
from __future__ import annotations

import json

import pytest

from archivestore import Store, catalog, findindex
from archivestore.cli.common import _SURROGATE
from archivestore.index import file_key

from .conftest import run_cli


def _entry(path: str, digest: str, desc: str | None = None, orig: str | None = None,
           size: int = 1000) -> dict:
    e = {"path": path, "type": "file", "size": size, "digest": digest * 4}
    if desc is not None or orig is not None:
        e["audio"] = {"container": "bwf", "sample_rate": 48000, "bits": 24, "channels": 2,
                      "frames": 100, "duration": 62.5, "float": False,
                      "description": desc or "", "originator": orig or ""}
    return e


LONG = "Deep/" + "x" * 600 + "/Kick long.wav"
TREE = [
    _entry("Audio Files/Kick In.wav", "a" * 16, "Kick in, Room A", "Pyramix"),
    _entry("Audio Files/kick out.WAV", "b" * 16, "kick out", "ProTools"),
    _entry("Audio Files/Snare.wav", "c" * 16, "Straße take 2", "PT"),
    _entry("Bounces/[draft] Mix v3.wav", "d" * 16, "mix", None),
    _entry("Bounces/Mix v3.wav", "e" * 16),
    _entry("café/Kick.wav", "f" * 16, "Café Room", "Pyramix"),
    _entry("K\u212aelvin/\u212aick.wav", "1" * 16, "kelvin", None),  # KELVIN SIGN folds to k
    _entry("bad \udcff name.wav", "2" * 16, "bytes desc", None),
    _entry("Vox 12.wav", "3" * 16, "ends with li", "ve room start"),  # "live room" spans \n
    _entry("Vox 1x.wav", "4" * 16, "nul\0inside room", None),
    _entry("a?b.txt", "5" * 16),
    _entry(LONG, "6" * 16, "long path", None),
    {"path": "Audio Files", "type": "dir"},
]


def _store(store, tree_for):
    """Three projects, a few versions each; `tree_for(p, v)` gives the entries."""
    with Store.open(store) as st:
        for p in ("Alpha", "Beta Proj", "Zeta"):
            for v in (1, 2, 3):
                st.index.add_files(p, v, catalog.records_for_tree(tree_for(p, v)))


def _tree(p: str, v: int) -> list[dict]:
    out = []
    for e in TREE:
        if e["type"] == "file":
            e = dict(e)
            if v == 3 and "Snare" in e["path"]:
                e["digest"] = "9" * 64  # new bytes in v3: a second match for the same path
            if p == "Zeta" and "Vox" in e["path"]:
                continue
        out.append(e)
    return out


def _reference(store, pattern, desc, project, limit) -> tuple[bytes, list[str]]:
    """What `archive find` printed before the search blocks (JSON bytes, text lines)."""
    with Store.open(store) as st:
        prefix = project.encode() + b"\0" if project else b""
        matches, truncated = catalog.search(st.index.iter_files(prefix), pattern, desc,
                                            project, limit)
    text = json.dumps({"matches": [m.to_json() for m in matches], "truncated": truncated,
                       "uncatalogued_versions": 0}, ensure_ascii=False)
    lines = []
    for m in matches:
        j = m.to_json()
        extra = f"  {j['format']}" if j["format"] else ""
        if j["description"]:
            extra += f"  “{j['description']}”"
        if j["originator"]:
            extra += f"  ({j['originator']})"
        from archivestore.cli.common import human
        lines.append(f"{m.project}  {catalog.format_versions(m.versions)}  {m.path}  "
                     f"{human(j['size'])}{extra}")
    raw = (_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n").encode()
    return raw, lines


QUERIES = [("kick*", None), ("*.wav", None), ("[kK]ick*", None), ("Vox 1?.wav", None),
           ("Vox [0-9][0-9].wav", None), ("a?b*", None), ("[draft]*", None),
           ("[[]draft]*", None), ("mix v3", None), ("caf?/*", None), ("[abc", None),
           ("*", None), ("*KICK*", None), ("*mix*", None), ("**mix**", None), ("?ick.wav", None), ("k*", None), ("*\udcff*", None),
           ("bad ? name.wav", None), ("deep/*", None), ("*long*", None), ("bounces/*", None),
           (None, "room a"), (None, "ROOM"), (None, "strasse"), (None, "straße"),
           (None, "live room"), (None, "pyramix"), (None, "café"),
           ("*.wav", "room"), ("kick*", "pyramix"), ("*snare*", "take"), ("kick*", "nothing")]


@pytest.mark.parametrize("block", [1024, 3])
def test_answers_and_output_equal_the_reference(store, monkeypatch, block):
    monkeypatch.setattr(findindex, "BLOCK_RECORDS", block)
    _store(store, _tree)
    for pattern, desc in QUERIES:
        for project, limit in ((None, None), ("Beta Proj", None), (None, 5), (None, 13)):
            args = ([pattern] if pattern else []) + (["--desc", desc] if desc else [])
            args += ["--project", project] if project else []
            args += ["--limit", str(limit if limit is not None else 10**6), "--store", store]
            want_json, want_lines = _reference(store, pattern, desc, project, limit or 10**6)
            got = run_cli("find", *args, "--json")
            assert got.stdout_bytes == want_json, (pattern, desc, project, limit)
            if any("\udcff" in line for line in want_lines):
                continue  # CliRunner's stdout is strict UTF-8 (archive's own is surrogateescape)
            text = run_cli("find", *args)
            assert text.stdout.splitlines() == want_lines, (pattern, desc, project, limit)
    # the shortened key of a long path still finds and prints the full path
    hits = json.loads(run_cli("find", "*long*", "--json", "--store", store).stdout)["matches"]
    assert [(h["project"], h["path"], h["versions"]) for h in hits] == \
        [(p, LONG, [1, 2, 3]) for p in ("Alpha", "Beta Proj", "Zeta")]


def test_text_summary_counts_projects(store):
    _store(store, _tree)
    r = run_cli("find", "snare", "--store", store)
    assert r.stdout.splitlines()[0].startswith("Alpha  v1-2  Audio Files/Snare.wav  1.0 kB  BWF")
    assert "6 files found in 3 projects" in r.stderr
    r = run_cli("find", "snare", "--limit", "3", "--store", store)
    assert "3 files found in 2 projects (showing the first 3; use --limit)" in r.stderr


def _blocks(store) -> dict[str, int]:
    with Store.open(store) as st, st.index.env.begin() as txn:
        return {name: txn.stat(getattr(st.index, name))["entries"]
                for name in ("files", "find_names", "find_text", "find_out")} | {
            "records": findindex._records(txn, st.index)}


def test_blocks_follow_the_catalog(store, monkeypatch):
    monkeypatch.setattr(findindex, "BLOCK_RECORDS", 4)
    entries = [_entry(f"f{i:02d}.wav", f"{i:016x}") for i in range(10)]
    with Store.open(store) as st:
        st.index.add_files("P", 1, catalog.records_for_tree(entries))
    assert _blocks(store) == {"files": 10, "find_names": 3, "find_text": 3, "find_out": 3,
                              "records": 10}
    with Store.open(store) as st:  # the same version written again with fewer files
        st.index.add_files("P", 1, catalog.records_for_tree(entries[:5]))
    # files still holds the other 5 (records are only added): the blocks are rebuilt from it
    assert _blocks(store) == {"files": 10, "find_names": 3, "find_text": 3, "find_out": 3,
                              "records": 10}
    with Store.open(store) as st:
        assert findindex.is_current(st.index)
        st.index.add_files("P", 2, catalog.records_for_tree(entries[:2]))
        assert findindex.is_current(st.index)
    assert _blocks(store)["records"] == 12 and _blocks(store)["find_names"] == 4


def test_a_new_index_needs_no_rebuild(tmp_path, store):
    from .conftest import make_tracks
    make_tracks(tmp_path / "Job" / "Audio", n=2, seconds=0.1)
    run_cli("ingest", tmp_path / "Job", "--store", store)
    with Store.open(store) as st:
        assert findindex.is_current(st.index) and findindex.ensure(st.index) == 0
    assert _blocks(store)["records"] == 2


def _strip_blocks(store) -> None:
    """Make the index look like one written before the search blocks existed."""
    with Store.open(store) as st, st.index.env.begin(write=True) as txn:
        for db in (st.index.find_names, st.index.find_text, st.index.find_out):
            txn.drop(db, delete=False)
        txn.delete(findindex.META_LAYOUT, db=st.index.meta)
        txn.delete(findindex.META_RECORDS, db=st.index.meta)


def test_old_index_is_backfilled_by_find(store):
    _store(store, _tree)
    before = run_cli("find", "*", "--json", "--store", store).stdout_bytes
    full = _blocks(store)
    _strip_blocks(store)
    assert _blocks(store)["find_names"] == 0
    assert run_cli("find", "*", "--json", "--store", store).stdout_bytes == before
    assert _blocks(store) == full
    with Store.open(store) as st:
        assert findindex.is_current(st.index) and findindex.ensure(st.index) == 0


def test_records_written_without_blocks_trigger_a_rebuild(store):
    """An older archivestore adding a version to this index writes `files` only."""
    _store(store, _tree)
    with Store.open(store) as st, st.index.env.begin(write=True) as txn:
        rec = catalog.encode_record(catalog.file_record(_entry("New/Kick.wav", "7" * 16)))
        txn.put(file_key("Old", 1, "New/Kick.wav"), rec, db=st.index.files)
    hits = json.loads(run_cli("find", "kick.wav", "--json", "--store", store).stdout)["matches"]
    assert ("Old", "New/Kick.wav") in {(h["project"], h["path"]) for h in hits}


def test_interrupted_backfill_is_done_again(store, monkeypatch):
    _store(store, _tree)
    before = run_cli("find", "*", "--json", "--store", store).stdout_bytes
    _strip_blocks(store)
    monkeypatch.setattr(findindex, "BACKFILL_RECORDS", 5)  # one version per transaction
    calls = []
    real = findindex.index_version

    def dying(index, txn, vkey):
        calls.append(vkey)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed in the third transaction
        real(index, txn, vkey)
    monkeypatch.setattr(findindex, "index_version", dying)
    with Store.open(store) as st, pytest.raises(KeyboardInterrupt):
        findindex.ensure(st.index)
    with Store.open(store) as st:
        assert not findindex.is_current(st.index)  # two versions done, no layout mark
    monkeypatch.setattr(findindex, "index_version", real)
    assert run_cli("find", "*", "--json", "--store", store).stdout_bytes == before


def test_opening_a_store_leaves_no_descriptor_open(store):
    """Store.open read config.json through a probe backend that kept its descriptor: one fd
    per open, which broke select() in later tests after this file's ~500 CLI runs."""
    import os
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with Store.open(store):
            pass
        run_cli("find", "x", "--store", store)
    assert len(os.listdir("/proc/self/fd")) == before
