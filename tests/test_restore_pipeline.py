"""Several versions in one restore run (Restorer.restore_many, `restore --all`): the next
version's files start while the last files of the one before are written. Results come in
order; an error in a later version comes after the earlier ones are complete; a run stopped
early leaves no partial file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archivestore import Store
from archivestore.chunking import ChunkParams
from archivestore.errors import UsageError
from archivestore.ingest import Ingester
from archivestore.restore import Restorer

from .conftest import run_cli

PARAMS = ChunkParams(4096, 16384, 65536)
NAMES = ["Alpha", "Bravo", "Charlie"]


def _tree(root: Path, seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {f"Audio Files/t{i}.bin": rng.bytes(300_000 + 70_000 * i) for i in range(4)}
    files["notes.txt"] = f"project {seed}\n".encode()  # restored inline, not by a writer
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.fixture
def three(tmp_path):
    store = tmp_path / "store"
    Store.init(store, params=PARAMS).close()
    trees = {n: _tree(tmp_path / "src" / n, i) for i, n in enumerate(NAMES)}
    with Store.open(store) as st:
        list(Ingester(st).ingest_many((tmp_path / "src" / n, None, None) for n in NAMES))
    return store, trees


def _read(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_versions_restored_in_order_each_whole(three, tmp_path):
    store, trees = three
    events = []
    with Store.open(store) as st:
        results = list(Restorer(st, progress=events.append).restore_many(
            (n, tmp_path / "out" / n, None, ()) for n in NAMES))
    assert [(r.project, r.version, r.ok, r.files) for r in results] == [(n, 1, True, 5) for n in NAMES]
    for n in NAMES:
        assert _read(tmp_path / "out" / n) == trees[n]
    assert {e["project"] for e in events} == set(NAMES)


def test_an_error_in_a_later_version_comes_after_the_earlier_ones(three, tmp_path):
    store, trees = three
    out = tmp_path / "out"
    (out / "Charlie" / "Audio Files").mkdir(parents=True)
    (out / "Charlie" / "Audio Files" / "t2.bin").write_bytes(b"mine")  # a clash: refused
    got = []
    with Store.open(store) as st:
        with pytest.raises(UsageError, match="t2.bin exists"):
            for res in Restorer(st).restore_many((n, out / n, None, ()) for n in NAMES):
                got.append(res.project)
    assert got == ["Alpha", "Bravo"]
    assert _read(out / "Alpha") == trees["Alpha"] and _read(out / "Bravo") == trees["Bravo"]
    assert _read(out / "Charlie") == {"Audio Files/t2.bin": b"mine"}  # nothing else written


def test_a_run_stopped_early_leaves_no_partial_file(three, tmp_path):
    store, trees = three
    out = tmp_path / "out"
    with Store.open(store) as st:
        run = Restorer(st).restore_many((n, out / n, None, ()) for n in NAMES)
        assert next(run).project == "Alpha"
        run.close()
    assert _read(out / "Alpha") == trees["Alpha"]
    for n in NAMES[1:]:  # whatever was written of Bravo is whole and verified
        for rel, data in _read(out / n).items():
            assert not rel.endswith(".partial") and data == trees[n][rel], rel
    assert not list(out.rglob("*.partial"))


def test_restore_all_reports_every_project(three, tmp_path):
    store, trees = three
    r = run_cli("restore", "--all", "--store", store, "--to", tmp_path / "all")
    lines = r.output.splitlines()
    assert [line.split(":")[0] for line in lines] == NAMES
    assert all("version 1 restored to" in line and "all verified" in line for line in lines)
    for n in NAMES:
        assert _read(tmp_path / "all" / n) == trees[n]


def test_chunk_locations_looked_up_in_batches(three, tmp_path, monkeypatch):
    """Restore looks chunk locations up a batch at a time (restore.LOOKUP_BATCH): with batches
    of 3, files of 20-30 chunks restore whole; a chunk the index no longer knows, in a later
    batch, fails its file alone, named, and leaves no partial file."""
    from archivestore import restore as restore_mod
    store, trees = three
    monkeypatch.setattr(restore_mod, "LOOKUP_BATCH", 3)
    with Store.open(store) as st:
        entry = next(e for e in st.iter_tree(st.version("Bravo")[1])
                     if e["path"] == "Audio Files/t3.bin")
        gone = bytes.fromhex(entry["chunks"][7])
        real = st.index.lookup_many
        calls = []

        def lookup_many(ids):
            calls.append(len(ids))
            return [None if i == gone else loc for i, loc in zip(ids, real(ids))]
        monkeypatch.setattr(st.index, "lookup_many", lookup_many)
        results = {r.project: r for r in Restorer(st).restore_many(
            (n, tmp_path / "out" / n, None, ()) for n in NAMES)}
    assert max(calls) == 3 and len(calls) > 3 * 4
    for n in NAMES:
        got = _read(tmp_path / "out" / n)
        want = dict(trees[n])
        if n == "Bravo":
            [failed] = results[n].failed
            assert failed["path"] == "Audio Files/t3.bin" and "not in the store" in failed["error"]
            del want["Audio Files/t3.bin"]
        else:
            assert not results[n].failed
        assert got == want
