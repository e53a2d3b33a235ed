"""Several folders in one ingest run (Ingester.ingest_many): the next folder is read while the
one before it is committed. Whatever the interleaving, a version is committed only once every
chunk it names is durable and indexed, each chunk is stored once, and an error in a later
folder leaves the earlier versions committed."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from archivestore import Store, ingest
from archivestore.backend import leftover_temps
from archivestore.chunking import ChunkParams
from archivestore.errors import InputError
from archivestore.ingest import Ingester

from .conftest import run_cli, run_json

PARAMS = ChunkParams(4096, 16384, 65536)  # many chunks per test file


class _Checked(Ingester):
    """Records each project's entries and, as its version is indexed, every chunk they name
    that the index does not hold (it must hold them all: the version points at them)."""

    def __init__(self, store, **kw) -> None:
        super().__init__(store, **kw)
        self.entries: dict[str, list[dict]] = {}
        self.missing: dict[str, list[str]] = {}
        self.order: list[str] = []
        index = store.index
        add_pack, add_version = index.add_pack, index.add_version

        def check(project: str) -> None:
            ids = [bytes.fromhex(c) for e in self.entries.get(project, [])
                   for c in e.get("chunks", ())]
            known = index.contains_many(ids)
            self.missing[project] = [i.hex()[:12] for i, k in zip(ids, known) if not k]
            self.order.append(project)

        def pack_then_check(name, size, entries, version=None):
            add_pack(name, size, entries, version)  # the version is indexed with this pack
            if version is not None:
                check(version[0])

        def version_then_check(*version):
            add_version(*version)
            check(version[0])

        index.add_pack, index.add_version = pack_then_check, version_then_check

    def _emit(self, proj, entry):
        self.entries.setdefault(proj.name, []).append(entry)
        super()._emit(proj, entry)


def _project(root: Path, seed: int, shared: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {
        "Audio Files/own.bin": rng.bytes(700_000),
        "Audio Files/shared.bin": shared,  # the same bytes in every project
        "Samples/kick.bin": shared[:200_000],  # a small file (the batch path), also shared
        "notes.txt": f"project {seed}\n".encode(),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _restored(store: Path, project: str, dest: Path) -> dict[str, bytes]:
    run_cli("restore", project, "--store", store, "--to", dest, "-q")
    return {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


def test_many_folders_one_run(tmp_path):
    shared = np.random.default_rng(1).bytes(1_500_000)
    folders = {name: _project(tmp_path / name, i, shared)
               for i, name in enumerate(["Alpha", "Bravo", "Charlie"])}
    store = tmp_path / "store"
    Store.init(store, params=PARAMS).close()
    with Store.open(store) as st:
        ing = _Checked(st)
        results = list(ing.ingest_many((tmp_path / n, None, "delivery") for n in folders))
        stats = st.stats()
        unique = {c for es in ing.entries.values() for e in es for c in e.get("chunks", ())}
    assert [(r.project, r.version) for r in results] == [(n, 1) for n in folders]
    assert ing.order == list(folders)
    assert ing.missing == {n: [] for n in folders}
    assert stats["chunks"] == len(unique)  # each chunk stored once, shared ones included
    assert sum(r.chunks_new for r in results) == len(unique)
    assert all(r.bytes_stored > 0 and r.files == 4 for r in results)
    # the shared files dedup across projects: stored, and counted as new, once in all. Not
    # necessarily by the first project: the next one's files are read while the one before is
    # still in progress, and whichever job claims a shared chunk first stores it.
    assert sum(r.bytes_new for r in results) <= sum(r.bytes_in for r in results) - 2 * len(shared)
    for name, files in folders.items():
        assert _restored(store, name, tmp_path / "out" / name) == files
    assert run_json("fsck", "--read-data", "--store", store)["ok"] is True


@pytest.mark.parametrize("wait_borrowed", [True, False])
def test_a_chunk_claimed_by_the_next_folder_is_stored_before_this_version(
        tmp_path, monkeypatch, wait_borrowed):
    """Force the race: Bravo's reader claims the chunks of a file that Alpha also holds, and
    stores them slowly; Alpha, read later, finds them claimed and not stored. Alpha's version
    must wait for them (`_wait_borrowed`). The variant without that wait shows that the check
    sees the difference."""
    data = np.random.default_rng(2).bytes(300_000)  # a small file: claimed in a batch
    for name in ("Alpha", "Bravo"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "take.bin").write_bytes(data)
    monkeypatch.setattr(ingest, "BATCH_CHUNKS", 1)
    read, enc = Ingester._read_file, Ingester._encode_and_store

    bravo_claimed = threading.Event()

    def slow_read(self, path, rel, base, proj):
        if proj.name == "Alpha":  # Bravo's reader gets there first, however loaded the machine
            assert bravo_claimed.wait(30)
        return read(self, path, rel, base, proj)

    def slow_encode(self, cid, chunk, fmt, res):
        if res.project == "Bravo":  # its batch is claimed whole before the first encode
            bravo_claimed.set()
            time.sleep(0.1)
        return enc(self, cid, chunk, fmt, res)

    monkeypatch.setattr(Ingester, "_read_file", slow_read)
    monkeypatch.setattr(Ingester, "_encode_and_store", slow_encode)
    if not wait_borrowed:
        monkeypatch.setattr(Ingester, "_wait_borrowed", lambda self, proj: None)
    store = tmp_path / "store"
    Store.init(store, params=PARAMS).close()
    with Store.open(store) as st:
        ing = _Checked(st)
        results = list(ing.ingest_many([(tmp_path / "Alpha", None, None),
                                        (tmp_path / "Bravo", None, None)]))
    assert [r.chunks_new for r in results] == [0, len(ing.entries["Bravo"][0]["chunks"])]
    if wait_borrowed:
        assert ing.missing == {"Alpha": [], "Bravo": []}
        assert _restored(store, "Alpha", tmp_path / "out") == {"take.bin": data}
    else:
        assert ing.missing["Alpha"], "the race did not happen: the test proves nothing"


def test_an_error_in_a_later_folder_keeps_the_earlier_versions(tmp_path):
    shared = np.random.default_rng(3).bytes(400_000)
    first = _project(tmp_path / "Alpha", 1, shared)
    _project(tmp_path / "Bravo", 2, shared)
    os.mkfifo(tmp_path / "Bravo" / "pipe")
    store = tmp_path / "store"
    Store.init(store, params=PARAMS).close()
    got = []
    with Store.open(store) as st:
        with pytest.raises(InputError, match="--strict: 1 entry could not be archived, first pipe"):
            for res in Ingester(st, strict=True).ingest_many(
                    [(tmp_path / "Alpha", None, None), (tmp_path / "Bravo", None, None)]):
                got.append(res.project)
        assert st.projects() == ["Alpha"]
    assert got == ["Alpha"]
    assert _restored(store, "Alpha", tmp_path / "out") == first
    assert run_json("fsck", "--store", store)["ok"] is True


def test_stopping_between_folders_commits_nothing_more(tmp_path):
    """A caller that stops iterating (an error while reporting a result) ends the run: the
    next folder, already being read, is not committed and nothing is left half-written."""
    shared = np.random.default_rng(4).bytes(400_000)
    _project(tmp_path / "Alpha", 1, shared)
    _project(tmp_path / "Bravo", 2, shared)
    store = tmp_path / "store"
    Store.init(store, params=PARAMS).close()
    with Store.open(store) as st:
        run = Ingester(st).ingest_many([(tmp_path / "Alpha", None, None),
                                        (tmp_path / "Bravo", None, None)])
        assert next(run).project == "Alpha"
        run.close()
        assert st.projects() == ["Alpha"]
    assert list(leftover_temps(store)) == []  # Bravo's partial pack was removed
    assert run_json("fsck", "--read-data", "--store", store)["ok"] is True


def test_disk_full_in_a_later_folder_names_what_was_committed(tmp_path, monkeypatch):
    import errno

    from archivestore.errors import StoreFull
    shared = np.random.default_rng(5).bytes(400_000)
    for name in ("Alpha", "Bravo", "Charlie"):
        _project(tmp_path / name, ord(name[0]), shared)
    finish = Ingester._finish_project

    def full_at_charlie(self, proj):
        if proj.name == "Charlie":
            raise OSError(errno.ENOSPC, "No space left on device")
        return finish(self, proj)

    monkeypatch.setattr(Ingester, "_finish_project", full_at_charlie)
    store = tmp_path / "store"
    Store.init(store, params=PARAMS).close()
    with Store.open(store) as st:
        with pytest.raises(StoreFull, match="; only Alpha, Bravo were committed — free space"):
            list(Ingester(st).ingest_many((tmp_path / n, None, None)
                                          for n in ("Alpha", "Bravo", "Charlie")))
        assert st.projects() == ["Alpha", "Bravo"]
