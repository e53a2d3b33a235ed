"""Known copies of a store and the 3-2-1 rule: three copies, two media, one offsite.

The primary store lists its copies in `copies.json` (name, address, media, offsite); every
store (or, for a remote one, its local cache folder) keeps `state.json` with the time of its
last successful `fsck --read-data` and last replication into it. `status` combines them: per
project, which stores hold its latest version, on which media, and whether 3-2-1 holds.
Both files are small JSON documents written atomically (docs/FORMAT.md section 12).
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .backend import is_local_url, write_atomic
from .errors import ArchiveError, FormatError, UsageError
from .store import Store

COPIES = "copies.json"
STATE = "state.json"
MEDIA = ("local", "nas", "remote")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_json(path: Path, default: dict) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as e:
        raise FormatError(f"{path} is unreadable: {e}") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path} is not a JSON object")
    return data


def load_copies(store: Store) -> dict:
    data = _read_json(store.root / COPIES, {})
    data.setdefault("v", 1)
    data.setdefault("primary", {"media": "local", "offsite": False})
    data.setdefault("copies", [])
    return data


def save_copies(store: Store, data: dict) -> None:
    if not is_local_url(store.url):
        raise UsageError("copies are recorded in a local primary store, not a remote one")
    write_atomic(store.root / COPIES, json.dumps(data, indent=2).encode())


def add_copy(store: Store, name: str, url: str, media: str, offsite: bool) -> dict:
    """Record a known copy of `store` (replace the entry of the same name)."""
    if media not in MEDIA:
        raise UsageError(f"media must be one of {', '.join(MEDIA)}")
    if not name or "/" in name:
        raise UsageError("a copy's name must be non-empty and contain no '/'")
    if is_local_url(url):
        url = str(Path(url).expanduser().absolute())
    data = load_copies(store)
    entry = {"name": name, "url": url, "media": media, "offsite": offsite, "added": _now()}
    data["copies"] = [c for c in data["copies"] if c["name"] != name] + [entry]
    save_copies(store, data)
    return entry


def remove_copy(store: Store, name: str) -> None:
    """Forget a copy (its data is untouched)."""
    data = load_copies(store)
    left = [c for c in data["copies"] if c["name"] != name]
    if len(left) == len(data["copies"]):
        raise UsageError(f"no copy named {name!r} (see: archive store list)")
    data["copies"] = left
    save_copies(store, data)


def set_primary(store: Store, media: str, offsite: bool) -> None:
    if media not in MEDIA:
        raise UsageError(f"media must be one of {', '.join(MEDIA)}")
    data = load_copies(store)
    data["primary"] = {"media": media, "offsite": offsite}
    save_copies(store, data)


def find_copy(store: Store, name_or_url: str) -> dict | None:
    for c in load_copies(store)["copies"]:
        if name_or_url in (c["name"], c["url"]):
            return c
    return None


def read_state(store: Store) -> dict:
    return _read_json(store.root / STATE, {})


def record_state(store: Store, **fields: str) -> None:
    """Merge `fields` (e.g. last_verified=time) into the store's local state.json."""
    state = read_state(store)
    state.update(fields)
    store.root.mkdir(parents=True, exist_ok=True)
    write_atomic(store.root / STATE, json.dumps(state, indent=2).encode())


def status(store: Store) -> dict:
    """Per project: copies of its latest version, their media, offsite, and 3-2-1 verdicts."""
    reg = load_copies(store)
    pstate = read_state(store)
    stores = [{"name": "primary", "url": store.url, "media": reg["primary"]["media"],
               "offsite": bool(reg["primary"].get("offsite")), "reachable": True,
               "store_id": store.config["store_id"], "last_verified": pstate.get("last_verified"),
               "last_replicate": pstate.get("last_replicate")}]
    opened: list[Store | None] = [store]
    for c in reg["copies"]:
        row = {"name": c["name"], "url": c["url"], "media": c["media"],
               "offsite": bool(c.get("offsite")), "reachable": False, "store_id": None,
               "last_verified": None, "last_replicate": None}
        try:
            st = Store.open(c["url"])
            state = read_state(st)
            row.update(reachable=True, store_id=st.config["store_id"],
                       last_verified=state.get("last_verified"),
                       last_replicate=state.get("last_replicate"))
            if not getattr(st.backend, "unlocked", True) and not st.index.stats()["packs"]:
                row["error"] = ("encrypted, and its index is not cached on this machine: set "
                                "ARCHIVE_KEY_FILE or ARCHIVE_PASSPHRASE to read it")
            opened.append(st)
        except (ArchiveError, OSError) as e:
            row["error"] = str(e)
            opened.append(None)
        stores.append(row)
    projects = []
    try:
        for p in store.projects():
            n, rec = store.version(p)
            sid = bytes.fromhex(rec["id"])
            held = [s for s, st in zip(stores, opened)
                    if st is not None and (st is store or st.index.has_snapshot(sid))]
            media = sorted({s["media"] for s in held})
            offsite = any(s["offsite"] for s in held)
            issues = []
            if len(held) < 3:
                issues.append(f"{len(held)} {'copy' if len(held) == 1 else 'copies'} (3 needed)")
            if len(media) < 2:
                issues.append(f"{len(media)} media type (2 needed)")
            if not offsite:
                issues.append("no offsite copy")
            projects.append({"project": p, "version": n, "copies": len(held),
                             "stores": [s["name"] for s in held], "media": media,
                             "offsite": offsite, "ok": not issues, "issues": issues})
    finally:
        for st in opened[1:]:
            if st is not None:
                st.close()
    return {"ok": all(p["ok"] for p in projects), "stores": stores, "projects": projects}


__all__ = ["add_copy", "remove_copy", "set_primary", "find_copy", "load_copies", "status",
           "record_state", "read_state", "MEDIA"]
