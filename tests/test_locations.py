"""Network-filesystem detection and the index-in-cache mechanism for NAS stores."""
from __future__ import annotations

import os

import pytest

from archivestore import store as store_mod
from archivestore.backend import is_local_url
from archivestore.locations import fs_type, on_network_fs
from archivestore.store import Store

from .conftest import assert_same_tree, make_tracks, run_cli, run_json

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
41 40 0:36 / /mnt/nas/local rw,relatime shared:21 - ext4 /dev/vdb rw
42 22 0:37 / /Volumes/Studio\\040Archive rw - cifs //fs/archive rw,vers=3.0
43 22 0:38 / /srv/sshfs rw - fuse.sshfs me@host:/data rw
44 22 0:39 / /mnt/nasty rw - ext4 /dev/vdc rw
"""


@pytest.mark.parametrize("path,expect", [
    ("/mnt/nas/store", "nfs4"),
    ("/mnt/nas", "nfs4"),
    ("/mnt/nas/local/store", "ext4"),          # a local disk mounted inside the NFS mount
    ("/mnt/nasty/store", "ext4"),              # prefix of a name is not a parent folder
    ("/Volumes/Studio Archive/store", "cifs"),  # \040 in mountinfo is a space
    ("/srv/sshfs/x", "fuse.sshfs"),
    ("/home/me/store", "ext4"),
])
def test_fs_type_from_mountinfo(path, expect, monkeypatch):
    monkeypatch.setattr(os.path, "realpath", lambda p: str(p))
    assert fs_type(path, MOUNTINFO) == expect
    assert on_network_fs(path, MOUNTINFO) == (expect in ("nfs4", "cifs", "fuse.sshfs"))


def test_later_mount_over_same_point_wins(monkeypatch):
    monkeypatch.setattr(os.path, "realpath", lambda p: str(p))
    info = MOUNTINFO + "50 40 0:40 / /mnt/nas rw - ext4 /dev/vdd rw\n"
    assert fs_type("/mnt/nas/store", info) == "ext4"


def test_real_mountinfo_for_tmp_is_local(tmp_path):
    assert fs_type(tmp_path) != ""
    assert not on_network_fs(tmp_path)


def test_s3_addresses_are_not_local():
    assert not is_local_url("s3://bucket/x") and is_local_url("/mnt/nas/store")


def test_nas_store_keeps_index_in_local_cache(tmp_path, monkeypatch):
    """On a network filesystem the LMDB index lives in the cache; two machines (two caches)
    see each other's versions through the published segments."""
    nas = tmp_path / "nas" / "store"
    monkeypatch.setattr(store_mod, "on_network_fs", lambda p: str(p).startswith(str(tmp_path / "nas")))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-a"))
    run_cli("init", "--store", nas)
    src = tmp_path / "Song"
    make_tracks(src, n=2, seconds=2.0)
    run_cli("ingest", src, "--store", nas)
    assert not (nas / "index" / "data.mdb").exists()
    (sid,) = os.listdir(tmp_path / "cache-a" / "archivestore" / "remotes")
    assert (tmp_path / "cache-a" / "archivestore" / "remotes" / sid / "index" / "data.mdb").is_file()
    assert {p.suffix for p in (nas / "index").rglob("*") if p.is_file()} == {".seg"}

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-b"))  # the second machine
    (src / "mix.txt").write_text("mix 2")
    assert run_json("ingest", src, "--store", nas)["version"] == 2
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-a"))  # the first sees it
    with Store.open(nas) as st:
        assert [n for n, _ in st.versions("Song")] == [1, 2]
    run_cli("restore", "Song", "--to", tmp_path / "out", "--store", nas)
    assert_same_tree(src, tmp_path / "out")
    assert run_json("fsck", "--store", nas)["problems"] == []


def test_index_grows_when_the_map_is_full(tmp_path, monkeypatch):
    """A full LMDB map is doubled and the write retried: no 'map full' reaches the user."""
    from archivestore import index as index_mod
    from archivestore.packs import BlobRef
    monkeypatch.setattr(index_mod, "MAP_SIZE", 256 * 1024)
    idx = index_mod.Index(tmp_path / "index")
    ids = [os.urandom(32) for _ in range(20_000)]
    for p in range(0, len(ids), 500):
        idx.add_pack(os.urandom(16).hex(), 1 << 20,
                     [BlobRef(i, 16, 100, 90, 0, 1) for i in ids[p:p + 500]])
    assert idx.env.info()["map_size"] > 256 * 1024
    assert idx.contains_many(ids + [b"\0" * 32]) == [True] * len(ids) + [False]
    assert idx.counter("chunks") == len(ids)
    idx.close()
