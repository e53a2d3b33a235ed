"""`Store`: the Python API over one archive store (packs + index + config).

Ingest, restore and check are built on the few calls here: add blobs through a `BlobSink`,
read a verified blob by id, list projects and versions, walk a version's tree.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from . import codecs, faults, hashing
from .backend import LocalBackend, open_backend, write_atomic
from .locations import on_network_fs
from .chunking import ChunkParams
from .errors import DamageError, FormatError, NotFound, StoreExists, StoreNotFound
from .index import Index, Location
from .locks import StoreLock
from .packs import (BLOB_HEADER, KIND_DATA, KIND_SNAPSHOT, KIND_TREE, PACK_TARGET, BlobRef,
                    PackWriter, pack_object_name, parse_blob, read_footer, scan_blobs)
from .snapshots import parse_snapshot, parse_tree_part

if TYPE_CHECKING:  # segments: S3 and NAS stores only, imported where they are opened
    from .segments import SharedCatalog

STORE_FORMAT = 1
CONFIG = "config.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_s3(location) -> bool:
    """An `s3://` address or an S3Backend (s3.py imports without boto3 installed)."""
    from .s3 import S3Backend
    return isinstance(location, S3Backend) or str(location).startswith("s3://")


class BlobSink:
    """Writes blobs into packs of ~`pack_target` bytes and indexes each pack once durable.

    Thread-safe. A full pack is finished (footer, fsync, rename, index commit) on a background
    thread while new blobs go to the next pack, so fsync never stalls the encoders.
    """

    def __init__(self, store: "Store") -> None:
        self.store = store
        self._writer: PackWriter | None = None
        self._lock = threading.Lock()
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="pack-finish")
        self._finishing: list[Future] = []
        self.on_indexed: Callable[[list[BlobRef]], None] | None = None
        self._failed: BaseException | None = None

    def add(self, blob_id: bytes, kind: int, codec: int, plain_len: int, stored) -> int:
        """Append a blob to the current pack; returns the bytes it adds to the store."""
        nbytes = BLOB_HEADER.size + len(stored)
        with self._lock:
            if self._failed is not None:
                raise self._failed
            try:
                if self._writer is None:
                    self._writer = PackWriter(self.store.backend)
                self._writer.add(blob_id, kind, codec, plain_len, stored)
            except BaseException as e:
                # the pack may now miss what this call wrote: it is never finished, and no
                # later blob goes anywhere (the ingest is failing anyway)
                self._failed = e
                w, self._writer = self._writer, None
                if w is not None:
                    w.abort()
                raise
            if self._writer.offset < self.store.pack_target:
                return nbytes
            w, self._writer = self._writer, None
            for f in self._finishing:
                if f.done() and f.exception() is not None:
                    w.abort()
                    raise f.exception()  # e.g. the disk filled while finishing a pack
            self._finishing = [f for f in self._finishing if not f.done()]
            if len(self._finishing) >= 2:  # bound memory and unindexed data: wait for the oldest
                try:
                    self._finishing.pop(0).result()
                except BaseException:
                    w.abort()  # it failed (disk full?): do not leave this one behind in tmp/
                    raise
            self._finishing.append(self._finisher.submit(self._finish, w, None))
        return nbytes

    def add_plain(self, kind: int, plain: bytes) -> tuple[bytes, int]:
        """Encode and add a metadata blob (tree part or snapshot); returns its id and the bytes
        it adds to the store."""
        blob_id = hashing.chunk_id(plain)
        codec, stored = codecs.encode(plain)
        return blob_id, self.add(blob_id, kind, codec, len(plain), stored)

    def _finish(self, w: PackWriter, version) -> None:
        name, size, entries = w.finish()
        faults.hit("index_commit")
        if version is not None:
            faults.hit("commit_index")
        self.store.index.add_pack(name, size, entries, version)
        if self.store.shared is not None:
            self.store.shared.note_pack(name, size, entries)
        if self.on_indexed is not None:
            self.on_indexed(entries)

    def flush(self, version: tuple[str, int, dict] | None = None) -> None:
        """Make every pack durable and indexed (then the snapshot record, if given)."""
        with self._lock:
            w, self._writer = self._writer, None
            pending, self._finishing = self._finishing, []
            failed = self._failed
        try:
            if failed is not None:
                raise failed
            for f in pending:
                f.result()
        except BaseException:
            if w is not None:
                w.abort()  # an earlier pack failed (disk full?): leave nothing in tmp/
            raise
        if w is not None:
            self._finish(w, version)
        elif version is not None:
            self.store.index.add_version(*version)
        if self.store.shared is not None:  # shared stores: tell other writers (segments.py)
            if version is not None:
                self.store.shared.note_snapshot(version[2])
            self.store.shared.publish(self.store.index)

    def abort(self) -> None:
        with self._lock:
            w, self._writer = self._writer, None
            pending, self._finishing = self._finishing, []
        for f in pending:
            try:
                f.result()
            except Exception:  # noqa: BLE001 - aborting anyway; the first error is reported
                pass
        if w is not None:
            w.abort()

    def close(self) -> None:
        self._finisher.shutdown(wait=True)


class Store:
    """An open store. Use `Store.init` to create one and `Store.open` to open it."""

    def __init__(self, root: Path, config: dict, index_path: Path | None = None,
                 backend=None, url: str | None = None,
                 shared: SharedCatalog | None = None, fresh_index: bool = False) -> None:
        self.root = Path(root)  # local folder for index/, tmp/, locks/ (a cache dir for remotes)
        self.config = config
        self.backend = backend if backend is not None else LocalBackend(self.root)
        self.url = url or str(self.root)
        # S3 and NAS stores: index segments and version claims shared by several writers
        self.shared = shared
        self.params = ChunkParams.from_dict(config["chunker"])
        self.pack_target = int(config.get("pack_target", PACK_TARGET))
        self.index_path = index_path or self.root / "index"
        if fresh_index:  # about to be rebuilt: never open what may be a damaged file
            Index.destroy(self.index_path)
        self.index = Index(self.index_path)
        if not fresh_index and backend is None:  # a remote's cache index refills from packs
            self._check_index()

    def _check_index(self) -> None:
        """Refuse an index that was lost (created empty beside existing packs) or whose
        rebuild was interrupted: either would make the store look emptier than it is."""
        why = None
        if self.index.rebuilding:
            why = "an index rebuild was interrupted"
        elif self.index.created and next(self.list_pack_files(), None) is not None:
            why = f"the index at {self.index_path} is missing but the store holds packs"
        if why is None:
            return
        self.index.close()
        if self.index.created:
            Index.destroy(self.index_path)  # what this open just created: leave it missing
        raise FormatError(f"{why}; rebuild it from the packs with: archive fsck --rebuild-index")

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | os.PathLike, params: ChunkParams | None = None,
             pack_target: int = PACK_TARGET) -> "Store":
        if _is_s3(root):
            return cls._init_remote(str(root), params or ChunkParams(), pack_target)
        root = Path(root)
        if (root / CONFIG).exists():
            raise StoreExists(f"{root} already holds an archive store")
        if root.exists() and any(root.iterdir()):
            raise StoreExists(f"{root} exists and is not empty; choose an empty or new folder")
        params = params or ChunkParams()
        root.mkdir(parents=True, exist_ok=True)
        for d in ("packs", "tmp", "index", "locks"):
            (root / d).mkdir(exist_ok=True)
        config = cls._new_config(params, pack_target)
        write_atomic(root / CONFIG, json.dumps(config, indent=2).encode())
        return cls._local(root, config)

    @staticmethod
    def _new_config(params: ChunkParams, pack_target: int) -> dict:
        return {"format": "archivestore", "version": STORE_FORMAT,
                "store_id": os.urandom(16).hex(), "created": _now(),
                "hash": hashing.ALGORITHM,
                "chunker": params.to_dict(),
                "pack_target": pack_target}

    @classmethod
    def _init_remote(cls, url: str, params: ChunkParams, pack_target: int) -> "Store":
        from .remotes import attach_remote
        from .segments import create_once
        backend = open_backend(url)
        backend.ensure_bucket()
        config = cls._new_config(params, pack_target)
        if backend.exists(CONFIG) or not create_once(backend, CONFIG, json.dumps(config, indent=2).encode()):
            raise StoreExists(f"{url} already holds an archive store")
        backend, local = attach_remote(backend, config)
        return cls._shared(backend, config, local, url)

    @classmethod
    def _shared(cls, backend, config: dict, cache: Path, url: str, root: Path | None = None) -> "Store":
        """A store whose index lives in the local `cache` and is merged from published segments
        (docs/FORMAT.md section 14); `root` is the store folder of a NAS store."""
        from .segments import SharedCatalog
        inner = getattr(backend, "inner", backend)  # an EncryptedBackend writes through it
        if root is None and hasattr(inner, "tmp_dir"):
            inner.tmp_dir = cache / "tmp"
        store = cls(root or cache, config, cache / "index", backend, url,
                    shared=SharedCatalog(backend, cache))
        if getattr(backend, "unlocked", True):  # an encrypted one catches up once unlocked
            try:
                store.catch_up()
            except BaseException:
                store.close()
                raise
        return store

    def catch_up(self) -> None:
        """Bring the local index up to what the store holds: a shared store merges every
        writer's published segments first; an empty index is rebuilt from the packs."""
        if self.shared is not None:
            self.shared.refresh(self.index)
            # versions merged from other writers (here or during a version claim) get their file
            # records from their trees; a version that already has them costs one index read
            from . import catalog
            catalog.fill_missing(self)
        self.sync_index(only_if_empty=True)  # packs of writers that predate segments

    @classmethod
    def _local(cls, root: Path, config: dict, fresh_index: bool = False) -> "Store":
        if on_network_fs(root):  # NAS: LMDB locking is unsafe on NFS/SMB, index goes local
            from .remotes import remote_cache_root
            cache = remote_cache_root(config["store_id"])
            if fresh_index:
                Index.destroy(cache / "index")
            return cls._shared(LocalBackend(root), config, cache, str(root), root=root)
        return cls(root, config, fresh_index=fresh_index)

    @classmethod
    def open(cls, root: str | os.PathLike, fresh_index: bool = False) -> "Store":
        """Open the store at a folder path or a remote address (`rclone:REMOTE:path`,
        `s3://bucket/prefix`); `fresh_index` discards the index unopened (for
        `fsck --rebuild-index`)."""
        url = str(root)
        backend = open_backend(url)
        try:
            raw = backend.get(CONFIG)
        except DamageError:
            raw = None
        if raw is None:
            raise StoreNotFound(f"no archive store at {url} (create one with: archive init --store {url})")
        try:
            config = json.loads(raw)
        except ValueError as e:
            raise FormatError(f"{url}/{CONFIG} is unreadable: {e}") from None
        if not isinstance(config, dict) or config.get("format") != "archivestore":
            raise FormatError(f"{url}/{CONFIG} is not an archivestore config")
        if not isinstance(config.get("version"), int) or config["version"] > STORE_FORMAT:
            raise FormatError(f"{url} uses store format {config.get('version')}; "
                              f"this archivestore reads up to {STORE_FORMAT}")
        if isinstance(backend, LocalBackend) and "encryption" not in config:
            backend.close()  # it kept config.json open; the store opens its own backend
            return cls._local(Path(root), config, fresh_index)
        from .remotes import attach_remote  # remote or encrypted: index kept in the local cache
        inner = backend
        backend, local = attach_remote(backend, config)
        if _is_s3(inner):
            if fresh_index:
                Index.destroy(local / "index")
            return cls._shared(backend, config, local, url)
        st = cls(local, config, local / "index", backend, url, fresh_index=fresh_index)
        if getattr(backend, "unlocked", True) and not fresh_index:
            st.catch_up()  # an encrypted one catches up once unlocked (cli.copies.unlock_store)
        return st

    def close(self) -> None:
        self.index.close()
        self.backend.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- blobs ----------------------------------------------------------------------------
    def sink(self) -> BlobSink:
        return BlobSink(self)

    def read_location(self, blob_id: bytes, loc: Location | None, check_crc: bool = False) -> bytes:
        """Read, decode and verify one blob; raises DamageError naming the pack on any fault
        (and the chunk, when the index had no location for it: `loc` None)."""
        if loc is None:
            raise DamageError(f"chunk {blob_id.hex()[:16]} is not in the store")
        obj = pack_object_name(loc.pack)
        try:
            raw = self.backend.get(obj, loc.offset, 52 + loc.stored_len)
            kind, codec, plain_len, _bid, stored = parse_blob(raw, blob_id, check_crc)
            plain = codecs.decode(codec, stored, plain_len)
        except FormatError as e:
            raise DamageError(f"chunk {blob_id.hex()[:16]} in pack {loc.pack}: {e}") from None
        if hashing.chunk_id(plain) != blob_id:
            raise DamageError(f"chunk {blob_id.hex()[:16]} in pack {loc.pack}: hash mismatch")
        return plain

    def read_blob(self, blob_id: bytes) -> bytes:
        return self.read_location(blob_id, self.index.lookup(blob_id))

    # -- projects and versions ------------------------------------------------------------
    def projects(self) -> list[str]:
        return self.index.list_projects()

    def versions(self, project: str) -> list[tuple[int, dict]]:
        v = self.index.list_versions(project)
        if not v:
            raise NotFound(f"no project named {project!r} in the store (see: archive projects)")
        return v

    def version(self, project: str, version: int | None = None) -> tuple[int, dict]:
        """The record of `version` of `project` (the latest when None)."""
        vs = self.versions(project)
        if version is None:
            return vs[-1]
        for n, rec in vs:
            if n == version:
                return n, rec
        raise NotFound(f"{project!r} has no version {version} (it has {vs[0][0]}..{vs[-1][0]})")

    def iter_tree(self, record: dict, keep: Callable[[bytes], bool] | None = None) -> Iterator[dict]:
        """Entries of a version's tree, in path order, part by part (`keep`: see
        snapshots.parse_tree_part)."""
        for part in record["tree"]:
            try:
                data = self.read_blob(bytes.fromhex(part))
            except ValueError:
                raise FormatError("bad tree part id in snapshot") from None
            yield from parse_tree_part(data, keep)

    def claim_version(self, project: str, first: int, hint: str = "") -> int:
        """The version number a commit may use: `first`, or the next free one in a shared store."""
        if self.shared is None:
            return first
        return self.shared.claim_version(self.index, project, first, hint)

    def stats(self) -> dict:
        """Counts and sizes, and the audio codec's record at ingest summed over every version
        (`codec`: payloads checked, failed and stored unchecked; `versions_unrecorded`:
        versions made before snapshot records kept it)."""
        s = self.index.stats()
        projects = self.projects()
        logical = 0
        codec = {"checked": 0, "failed": 0, "unchecked": 0, "versions_unrecorded": 0}
        for _p, _n, rec in self.index.iter_versions():
            logical += rec.get("bytes", 0)
            if "codec_checked" not in rec:
                codec["versions_unrecorded"] += 1
                continue
            codec["checked"] += rec["codec_checked"]
            codec["failed"] += rec.get("codec_failed_count", 0)
            codec["unchecked"] += rec.get("codec_unchecked", 0)
        return {"projects": len(projects), "versions": s["versions"], "chunks": s["chunks"],
                "bytes_logical": logical, "bytes_unique": s["bytes_unique"],
                "bytes_stored": s["bytes_stored"], "packs": s["packs"], "codec": codec}

    # -- packs ----------------------------------------------------------------------------
    def list_pack_files(self) -> Iterator[tuple[str, int]]:
        """(pack name, size) of every pack file present in packs/."""
        for obj, size in self.backend.list("packs"):
            base = obj.rsplit("/", 1)[-1]
            if base.endswith(".pack") and len(base) == 37:
                yield base[:-5], size

    def index_pack(self, name: str, size: int, entries: list[BlobRef],
                   records: dict[bytes, dict] | None = None,
                   errors: list[str] | None = None) -> list[dict]:
        """Enter a pack's blobs into the index, with any snapshot records it holds.

        `records` may supply already verified snapshot records by blob id (saves a read).
        A (project, version) already bound to a different snapshot is never rebound: such a
        record is returned with `"conflict": True` and is not listed as a version.
        A snapshot record that cannot be read is left out (named in `errors`, or raised as
        DamageError when `errors` is None); the pack's other blobs are still indexed.
        """
        snaps = []
        keep = []
        for e in entries:
            if e.kind == KIND_SNAPSHOT:
                rec = (records or {}).get(e.id)
                if rec is None:
                    try:
                        rec = parse_snapshot(self.read_location(
                            e.id, Location(name, e.offset, e.plain_len, e.stored_len, e.kind,
                                           e.codec)))
                    except (DamageError, FormatError) as exc:
                        if errors is None:
                            raise
                        errors.append(f"{name}: snapshot record {e.id.hex()[:16]} unreadable: {exc}")
                        continue
                rec = dict(rec, id=e.id.hex())
                snaps.append(rec)
            keep.append(e)
        self.index.add_pack(name, size, keep)
        if snaps:
            # an ingest binds its version under commit.lock: bind found ones under it too
            with StoreLock(self.root, "commit", "index pack"):
                for rec in snaps:
                    if self.index.has_snapshot(bytes.fromhex(rec["id"])):
                        continue
                    held = self.index.get_version(rec["project"], rec["version"])
                    if held is not None and held.get("id") != rec["id"]:
                        rec["conflict"] = True
                        continue
                    self.index.add_version(rec["project"], rec["version"], rec)
        from . import catalog
        catalog.fill_versions(self, [r for r in snaps if not r.get("conflict")])
        return snaps

    def scan_pack(self, name: str, size: int) -> list[BlobRef]:
        """The intact blobs of a pack whose footer is damaged, found by scanning blob headers;
        each is kept only if it decodes to bytes with its id."""
        data = self.backend.get(pack_object_name(name), 0, size)
        found = []
        for off, parsed in scan_blobs(data):
            if isinstance(parsed, FormatError):
                continue
            kind, codec, plain_len, bid, stored = parsed
            try:
                plain = codecs.decode(codec, stored, plain_len)
            except FormatError:
                continue
            if hashing.chunk_id(plain) == bid:
                found.append(BlobRef(bid, off, plain_len, len(stored), kind, codec))
        return found

    def sync_index(self, only_if_empty: bool = False) -> list[str]:
        """Index every readable pack present in the store but not in the index; their names.
        (An unreadable one stays unindexed: `fsck` reports it.)"""
        if only_if_empty and self.index.stats()["packs"]:
            return []
        done = []
        for name, size in sorted(self.list_pack_files()):
            if not self.index.has_pack(name):
                try:
                    entries = read_footer(self.backend, pack_object_name(name), size)
                    self.index_pack(name, size, entries)
                except (FormatError, DamageError):
                    continue
                done.append(name)
        return done

    def rebuild_index(self, progress: Callable[[str, int], None] | None = None) -> dict:
        """Discard the index and rebuild it from the pack footers (or, where a footer is
        damaged, from the intact blobs a scan of the pack finds)."""
        self.index.close()
        Index.destroy(self.index_path)
        self.index = Index(self.index_path)
        self.index.set_rebuilding(True)
        packs = versions = 0
        bad: list[str] = []
        for name, size in sorted(self.list_pack_files()):
            try:
                try:
                    entries = read_footer(self.backend, pack_object_name(name), size)
                except FormatError as e:
                    entries = self.scan_pack(name, size)
                    bad.append(f"{name}: {e}; {len(entries)} intact blobs recovered by scanning")
                versions += len(self.index_pack(name, size, entries, errors=bad))
                packs += 1
            except (FormatError, DamageError) as e:
                bad.append(f"{name}: {e}")
            if progress:
                progress(name, size)
        from . import catalog
        catalog.fill_missing(self)  # tree parts may sit in packs indexed after their snapshot
        self.index.set_rebuilding(False)
        return {"packs": packs, "versions": versions, "unreadable_packs": bad}

__all__ = ["Store", "BlobSink", "KIND_DATA", "KIND_TREE", "KIND_SNAPSHOT"]
