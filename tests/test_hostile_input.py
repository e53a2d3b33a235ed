"""Hostile and odd input: special files, unreadable entries, files that change or vanish while
read, odd names and shapes, crafted manifests, and CLI argument errors."""
from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

import blake3
import pytest

from archivestore import Store
from archivestore.ingest import Ingester
from archivestore.packs import KIND_SNAPSHOT, KIND_TREE
from archivestore.snapshots import SNAPSHOT_VERSION, encode_snapshot

from .conftest import assert_same_tree, run_cli, run_json
from .faultlib import cli_subprocess, fsck, versions


def _odd_tree(root: Path) -> None:
    """Everything odd that must round-trip."""
    root.mkdir(parents=True)
    (root / "zero.bin").write_bytes(b"")
    with open(root / "sparse.bin", "wb") as f:           # 8 MiB hole with data at both ends
        f.write(b"head")
        f.seek(8 * 1024 * 1024)
        f.write(b"tail")
    os.symlink("zero.bin", root / "rel-link")
    os.symlink("/etc/hostname", root / "abs-link")
    os.symlink("no/such/thing", root / "dangling")
    (root / "orig.txt").write_bytes(b"same inode\n" * 10)
    os.link(root / "orig.txt", root / "hard.txt")
    bdir = os.fsencode(root)
    with open(os.path.join(bdir, b"caf\xe9.wav"), "wb") as f:  # Latin-1 name: not UTF-8
        f.write(b"RIFF not really")
    os.mkdir(os.path.join(bdir, b"d\xff\xfe"))
    with open(os.path.join(bdir, b"d\xff\xfe", b"x\x80y"), "wb") as f:
        f.write(b"inside a non-UTF-8 folder")
    (root / ("n" * 255)).write_bytes(b"255 ascii bytes")
    (root / ("é" * 125 + ".wav")).write_bytes(b"254 bytes of UTF-8 name")
    deep = root
    while len(os.fsencode(deep)) - len(os.fsencode(root)) < 1100:
        deep = deep / ("folder-" + "x" * 90)
    deep.mkdir(parents=True)
    (deep / "deep file.txt").write_bytes(b"over 1000 bytes of path")


def test_odd_files_round_trip(tmp_path, store):
    src = tmp_path / "Odd"
    _odd_tree(src)
    out = run_json("ingest", src, "--store", store, "-q")
    assert out["skipped"] == [] and out["files"] == 9 and out["symlinks"] == 3
    dest = tmp_path / "back"
    r = run_json("restore", "Odd", "--store", store, "--to", dest, "-q")
    assert r["ok"] and r["files"] == 9
    assert_same_tree(src, dest)
    assert os.readlink(dest / "dangling") == "no/such/thing"  # stored as a link, not followed
    assert os.readlink(dest / "abs-link") == "/etc/hostname"
    # hard links come back as hard links (one inode), the content verified once
    assert (dest / "hard.txt").read_bytes() == (dest / "orig.txt").read_bytes()
    assert os.stat(dest / "hard.txt").st_ino == os.stat(dest / "orig.txt").st_ino
    assert r["hardlinks"] == 1
    ls = run_json("ls", "Odd", "--store", store)
    second = [e for e in ls["entries"] if e["path"] == "orig.txt"][0]  # walk order: hard first
    assert second["hardlink"] == "hard.txt"
    assert (dest / "sparse.bin").stat().st_size == 8 * 1024 * 1024 + 4
    # the catalog keeps paths longer than LMDB's 511-byte key limit (key shortened, path kept)
    found = run_json("find", "deep file.txt", "--store", store)
    deep = [os.path.relpath(p, src) for p in src.rglob("deep file.txt")]
    assert [m["path"] for m in found["matches"]] == deep and len(deep[0]) > 1000
    assert fsck(store)["ok"] is True


def _specials(root: Path) -> list:
    os.mkfifo(root / "a-fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(root / "a-socket"))
    os.mknod(root / "a-chardev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    return [s]


def test_special_files_skipped_with_reasons(tmp_path, store):
    src = tmp_path / "Specials"
    src.mkdir()
    (src / "take.wav").write_bytes(b"audio" * 100)
    keep = _specials(src)
    r = cli_subprocess("ingest", src, "--store", store, timeout=60)  # a FIFO must not hang it
    assert r.returncode == 0, r.stderr
    skipped = [ln for ln in r.stderr.splitlines() if "skipped" in ln or "not archived:" in ln]
    assert skipped == ["  3 entries not archived:",
                       "    skipped a-chardev: is a device, not archived",
                       "    skipped a-fifo: is a FIFO, not archived",
                       "    skipped a-socket: is a socket, not archived"], r.stderr
    rec = run_json("versions", "Specials", "--store", store)["versions"]
    assert rec[0]["skipped"] == 3 and rec[0]["files"] == 1
    # --strict: any skip fails the ingest and nothing is committed
    r = cli_subprocess("ingest", src, "--store", store, "--project", "Strict", "--strict")
    assert r.returncode == 3
    assert r.stderr.strip() == ("archive: error: --strict: 3 entries could not be archived, "
                                "first a-chardev: is a device, not archived")
    assert versions(store, "Strict") == []
    keep[0].close()


def _as_nobody(fn):
    """Run fn() in a forked child as `nobody` (tests run as root, who may read anything)."""
    nobody = pwd.getpwnam("nobody")
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        code = 0
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(wfd, json.dumps(fn()).encode())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(wfd, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
            code = 1
        finally:
            os.close(wfd)
            os._exit(code)
    os.close(wfd)
    chunks = []
    deadline = time.monotonic() + 120
    with os.fdopen(rfd, "rb") as f:
        while True:  # bounded: a child stuck after fork is killed, not waited for forever
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise AssertionError("the process running as nobody did not finish")
            b = os.read(f.fileno(), 65536)
            if not b:
                break
            chunks.append(b)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


def test_permission_denied_is_skipped_and_named():
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    base = Path(tempfile.mkdtemp(prefix="perm-"))
    try:
        os.chmod(base, 0o755)
        src = base / "Perm"
        (src / "open").mkdir(parents=True)
        (src / "open" / "ok.txt").write_bytes(b"readable")
        (src / "secret.txt").write_bytes(b"not for nobody")
        os.chmod(src / "secret.txt", 0o000)
        (src / "locked").mkdir()
        (src / "locked" / "inner.txt").write_bytes(b"x")
        os.chmod(src / "locked", 0o000)
        store = base / "store"
        Store.init(store).close()
        for p in [store, *store.rglob("*")]:
            os.chown(p, 65534, 65534)

        def ingest():
            with Store.open(store) as st:
                res = Ingester(st).ingest(src)
            return res.to_json()
        out = _as_nobody(ingest)
        assert "error" not in out, out
        assert out["files"] == 1 and out["version"] == 1
        assert sorted((s["path"], s["reason"]) for s in out["skipped"]) == [
            ("locked", "cannot list folder: Permission denied"),
            ("secret.txt", "cannot open: Permission denied")]

        def strict():
            with Store.open(store) as st:
                Ingester(st, strict=True).ingest(src, "Strict")
            return {}
        out = _as_nobody(strict)
        assert out["error"].startswith("InputError: --strict: 2 entries could not be archived")
        assert versions(store, "Strict") == []
    finally:
        for p in (base / "Perm" / "locked", base / "Perm" / "secret.txt"):
            if p.exists():
                os.chmod(p, 0o700)
        shutil.rmtree(base)


class _Meddler(Ingester):
    """Changes a file while it is being read, `times` times (a writer racing the ingest)."""

    def __init__(self, store, victim: str, times: int, how: str) -> None:
        super().__init__(store)
        self.victim, self.times, self.how = victim, times, how

    def _chunk_file(self, proj, f, rel, st, small=False):
        entry = super()._chunk_file(proj, f, rel, st, small)
        if rel == self.victim and self.times > 0:
            self.times -= 1
            fd = f.fileno()
            if self.how == "grow":
                os.write(os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_APPEND), b"more")
            else:  # same size, same mtime put back: only ctime tells
                s = os.fstat(fd)
                os.pwrite(fd2 := os.open(f"/proc/self/fd/{fd}", os.O_WRONLY), b"X", 0)
                os.close(fd2)
                os.utime(f"/proc/self/fd/{fd}", ns=(s.st_atime_ns, s.st_mtime_ns))
        return entry


@pytest.mark.parametrize("how", ["grow", "inplace"])
def test_file_changing_while_read(tmp_path, store, how):
    src = tmp_path / "Live"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a" * 5000)
    (src / "rec.wav").write_bytes(b"r" * 5000)
    with Store.open(store) as st:  # changes once: re-read, stored as it is after the change
        res = _Meddler(st, "rec.wav", 1, how).ingest(src, "Once")
    assert res.skipped == [] and res.files == 2
    dest = tmp_path / "once"
    run_cli("restore", "Once", "--store", store, "--to", dest, "-q")
    assert (dest / "rec.wav").read_bytes() == (src / "rec.wav").read_bytes()
    with Store.open(store) as st:  # never settles: skipped, never stored torn
        res = _Meddler(st, "rec.wav", 99, how).ingest(src, "Never")
    assert res.skipped == [{"path": "rec.wav", "reason": "changed while it was being read"}]
    assert [e["path"] for e in run_json("ls", "Never", "--store", store)["entries"]] == ["a.txt"]


def test_file_appended_by_another_writer_during_ingest(tmp_path, store):
    """A real concurrent writer (a recorder still appending): the file is either skipped as
    changing, or stored as one consistent state of it (a prefix of what it became), never torn."""
    src = tmp_path / "Rec"
    src.mkdir()
    (src / "done.wav").write_bytes(os.urandom(200_000))
    live = src / "live.wav"
    live.write_bytes(os.urandom(3_000_000))
    stop = threading.Event()

    def writer():
        with open(live, "ab") as f:
            while not stop.is_set():
                f.write(os.urandom(512))
                f.flush()
                time.sleep(0.0005)
    t = threading.Thread(target=writer)
    t.start()
    try:
        r = cli_subprocess("ingest", src, "--store", store, "--json", "-q", timeout=120)
    finally:
        stop.set()
        t.join()
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    print("live writer outcome:", out["skipped"] or "stored a consistent prefix")
    dest = tmp_path / "back"
    run_cli("restore", "Rec", "--store", store, "--to", dest, "-q")
    assert (dest / "done.wav").read_bytes() == (src / "done.wav").read_bytes()
    if out["skipped"]:
        assert out["skipped"] == [{"path": "live.wav", "reason": "changed while it was being read"}]
        assert not (dest / "live.wav").exists()
    else:
        got = (dest / "live.wav").read_bytes()
        assert len(got) >= 3_000_000 and live.read_bytes()[:len(got)] == got


class _Vanisher(Ingester):
    def _read_file(self, path, rel, base, proj):
        if rel == "gone.txt":
            os.unlink(path)
        return super()._read_file(path, rel, base, proj)


def test_file_vanishing_before_read(tmp_path, store):
    src = tmp_path / "Vanish"
    src.mkdir()
    (src / "gone.txt").write_bytes(b"here at walk time")
    (src / "stays.txt").write_bytes(b"stays")
    with Store.open(store) as st:
        res = _Vanisher(st).ingest(src)
    assert res.skipped == [{"path": "gone.txt", "reason": "vanished before it could be read"}]
    assert res.files == 1


# -- crafted manifests -------------------------------------------------------------------
def _craft_version(store: Path, project: str, entries: list[dict]) -> None:
    """Commit a version whose tree part is written by hand (bypassing ingest)."""
    part = b"".join(json.dumps(e).encode() + b"\n" for e in entries)
    with Store.open(store) as st:
        sink = st.sink()
        tree_id, _ = sink.add_plain(KIND_TREE, part)
        rec = {"v": SNAPSHOT_VERSION, "project": project, "version": 1, "time": "t", "host": "h",
               "user": "u", "source": "/", "message": "", "files": 1, "dirs": 0, "symlinks": 0,
               "bytes": 5, "tree": [tree_id.hex()], "skipped": []}
        rec["id"] = sink.add_plain(KIND_SNAPSHOT, encode_snapshot(rec))[0].hex()
        sink.flush(version=(project, 1, rec))
        sink.close()


def _file(path: str, store: Path) -> dict:
    """A valid file entry for `path` whose one chunk is really in the store."""
    data = b"pwned"
    with Store.open(store) as st:
        sink = st.sink()
        cid, _ = sink.add_plain(0, data)
        sink.flush()
        sink.close()
    return {"path": path, "type": "file", "mode": 0o644, "mtime_ns": 0, "size": len(data),
            "chunks": [cid.hex()], "digest": blake3.blake3(data).hexdigest()}


@pytest.mark.parametrize("case", ["absolute", "dotdot", "via-symlink", "dot"])
def test_restore_refuses_hostile_manifest(tmp_path, store, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    if case == "absolute":
        entries = [_file(str(outside / "evil.txt"), store)]
        msg = "absolute or invalid path in manifest"
    elif case == "dotdot":
        entries = [_file("a/../../outside/evil.txt", store)]
        msg = "'..' component"
    elif case == "dot":
        entries = [_file("./evil.txt", store)]
        msg = "'.' or '..' component"
    else:
        entries = [{"path": "link", "type": "symlink", "mode": 0o777, "mtime_ns": 0,
                    "target": str(outside)}, _file("link/evil.txt", store)]
        msg = "lies under the symlink 'link'"
    _craft_version(store, "Evil", entries)
    dest = tmp_path / "target"
    r = run_cli("restore", "Evil", "--store", store, "--to", dest, expect=3)
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(outside.iterdir()) == []
    assert not dest.exists() or [p for p in dest.rglob("*")] == []


def test_restore_refuses_existing_symlink_in_target(tmp_path, store, session):
    """A symlink already in the target folder is never followed out of it."""
    run_json("ingest", session, "--store", store, "-q")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "target"
    dest.mkdir()
    os.symlink(outside, dest / "Audio Files")
    r = run_cli("restore", "Paper Boats", "--store", store, "--to", dest, "--overwrite",
                expect=3)
    assert "symlink" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(outside.iterdir()) == []


# -- CLI argument errors -----------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["ingest"], ["ingest", "--bogus", "x"], ["restore", "P"], ["restore", "P", "--to", "d",
    "--version", "abc"], ["nocmd"], ["fsck", "--read-dat"], ["-Z"], ["ls"],
    ["init", "--chunk-avg", "x"], ["versions", "a", "b"]])
def test_cli_argument_errors_are_one_line(args):
    r = cli_subprocess(*args, "--store", "/nonexistent-store")
    assert r.returncode == 2, (args, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archive: error: archive"), r.stderr
    assert r.stdout == ""


def test_hard_links_restore_as_links_or_files(tmp_path, store, monkeypatch):
    src = tmp_path / "Links"
    (src / "Audio Files").mkdir(parents=True)
    take = src / "Audio Files" / "Take 1.wav"
    take.write_bytes(os.urandom(300_000))
    for name in ("a.wav", "m.wav", "z.wav"):  # three more names of one inode, either side of it
        os.link(take, src / "Audio Files" / name)
    (src / "other.txt").write_text("not linked")
    run_json("ingest", src, "--store", store, "-q")

    out = tmp_path / "all"
    r = run_json("restore", "Links", "--store", store, "--to", out, "-q")
    assert r["ok"] and r["files"] == 5 and r["hardlinks"] == 3
    inodes = {os.stat(p).st_ino for p in (out / "Audio Files").iterdir()}
    assert len(inodes) == 1 and os.stat(out / "Audio Files" / "a.wav").st_nlink == 4
    assert_same_tree(src, out)

    # only some of the names: the first one recorded may be outside the selection
    ls = run_json("ls", "Links", "--store", store)
    linked = sorted(e["path"] for e in ls["entries"] if "hardlink" in e)
    one = linked[0]
    r = run_json("restore", "Links", one, "--store", store, "--to", tmp_path / "one", "-q")
    assert r["ok"] and r["files"] == 1 and r["hardlinks"] == 0
    assert (tmp_path / "one" / one).read_bytes() == take.read_bytes()

    # a filesystem without hard links (exFAT, some NAS shares): separate identical files
    def no_links(*a, **k):
        raise PermissionError("operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    r = run_json("restore", "Links", "--store", store, "--to", tmp_path / "copies", "-q")
    assert r["ok"] and r["files"] == 5 and r["hardlinks"] == 0
    assert len({os.stat(p).st_ino for p in (tmp_path / "copies" / "Audio Files").iterdir()}) == 4
    assert_same_tree(src, tmp_path / "copies")
