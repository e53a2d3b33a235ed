"""Archive-scale index benchmark: fill a store's index with N chunk entries (default 20 million,
a 20 TB store at 1 MiB chunks) through the `Index` API, then measure what a studio feels.

No chunk data is written: ids are random 32-byte values, packs are fake entries of 32 chunks
(a 32 MiB pack of 1 MiB chunks). Reports index bytes per chunk, insert rate, batched lookups per
second for present and absent ids, peak RSS, and `archive stats` / `archive projects` (and
`archive find` if installed) latency as separate processes.

    python bench/scale.py                 # 20M chunks (~10 min on 2 cores)
    python bench/scale.py --chunks 1000000 --dir /tmp/scale1m
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archivestore import catalog, chunktable  # noqa: E402
from archivestore.index import Index  # noqa: E402
from archivestore.packs import BlobRef  # noqa: E402
from archivestore.store import Store  # noqa: E402

CHUNKS_PER_PACK = 32
PACKS_PER_TXN = 4096          # 131k chunks per add_packs call (it commits every TXN_CHUNKS)
BATCH = 4096                  # ids per contains_many call (ingest checks a buffer at a time)
SEED = 20261126


def ids_block(k: int, n: int) -> bytes:
    """The ids of block k (deterministic, so present ids can be regenerated without storing)."""
    return np.random.default_rng([SEED, k]).bytes(32 * n)


def rss_mb() -> tuple[float, float, float]:
    """(peak RSS, current anonymous RSS, current file-backed RSS) in MB from /proc."""
    vals = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "RssAnon", "RssFile"):
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmHWM"], vals["RssAnon"], vals["RssFile"]


def fill(index: Index, n: int, packs_per_txn: int = PACKS_PER_TXN) -> float:
    t0 = time.perf_counter()
    per_block = PACKS_PER_TXN * CHUNKS_PER_PACK
    done = k = 0
    while done < n:
        m = min(per_block, n - done)
        raw = ids_block(k, m)
        packs = []
        for p in range(0, m, CHUNKS_PER_PACK):
            ents = [BlobRef(raw[32 * i:32 * i + 32], 16 + (i - p) * (1 << 20), 1 << 20,
                            (1 << 20) - 100, 0, 1) for i in range(p, min(p + CHUNKS_PER_PACK, m))]
            packs.append((os.urandom(16).hex(), 32 << 20, ents))
        for i in range(0, len(packs), packs_per_txn):
            index.add_packs(packs[i:i + packs_per_txn])
        done += m
        k += 1
        if k % 20 == 0:
            el = time.perf_counter() - t0
            print(f"  inserted {done / 1e6:6.1f}M  {done / el / 1e3:7.0f}k/s  "
                  f"peak RSS {rss_mb()[0]:.0f} MB", file=sys.stderr)
    return time.perf_counter() - t0


def lookups(index: Index, n_total: int, count: int, present: bool) -> tuple[float, float]:
    """(contains_many ids/s, single lookup ids/s) over `count` ids."""
    per_block = PACKS_PER_TXN * CHUNKS_PER_PACK
    rng = np.random.default_rng(7)
    if present:
        blocks = max(1, (n_total + per_block - 1) // per_block)
        ids: list[bytes] = []
        while len(ids) < count:
            k = int(rng.integers(blocks))
            m = min(per_block, n_total - k * per_block)
            raw = ids_block(k, m)
            pick = rng.integers(0, m, size=min(count - len(ids), 65536))
            ids.extend(raw[32 * i:32 * i + 32] for i in pick)
    else:
        raw = rng.bytes(32 * count)
        ids = [raw[32 * i:32 * i + 32] for i in range(count)]
    t0 = time.perf_counter()
    hits = 0
    for i in range(0, len(ids), BATCH):
        hits += sum(index.contains_many(ids[i:i + BATCH]))
    t_many = time.perf_counter() - t0
    assert hits == (len(ids) if present else 0), (hits, present)
    sub = ids[:min(len(ids), 200_000)]
    t0 = time.perf_counter()
    found = sum(index.lookup(i) is not None for i in sub)
    t_one = time.perf_counter() - t0
    assert found == (len(sub) if present else 0)
    return len(ids) / t_many, len(sub) / t_one


def file_records(p: int, v: int, n: int) -> list[tuple[str, bytes]]:
    """Catalog records of a version: n WAV tracks, one of them changed in each version."""
    out = []
    for i in range(n):
        rec = {"size": 48_000 * 3 * 240, "digest": f"{p:06x}{i:04x}{(v if i == 0 else 0):06x}",
               "audio": {"container": "wav", "sample_rate": 48000, "bits": 24, "channels": 1,
                         "duration": 240.0, "float": False}}
        out.append((f"Audio Files/Track {i:03d}.wav", catalog.encode_record(rec)))
    return out


def add_versions(store: Store, projects: int, versions: int, files: int) -> None:
    with store.index.env.begin(write=True) as txn:
        for p in range(projects):
            for v in range(1, versions + 1):
                rec = {"v": 1, "project": f"Project {p:04d}", "version": v,
                       "time": "2026-11-26T00:00:00Z", "host": "studio", "user": "eng",
                       "source": f"/Volumes/Sessions/Project {p:04d}", "message": "",
                       "files": 120, "dirs": 4, "symlinks": 0, "bytes": 40 << 30,
                       "tree": [os.urandom(32).hex()], "skipped": [], "id": os.urandom(32).hex()}
                store.index._put_version(txn, rec["project"], v, rec, file_records(p, v, files))


CHILD = """
import atexit, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("VMHWM_KB " + line.split()[1] + "\\n")
atexit.register(hwm)
from archivestore.cli import main
sys.argv = ["archive"] + sys.argv[1:]
main()
"""


def cli_latency(store_dir: Path, *args: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one `archive ...` run in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, *args, "--store", str(store_dir)],
                       env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    kb = [int(x.split()[1]) for x in p.stderr.splitlines() if x.startswith("VMHWM_KB")]
    return dt, (kb[-1] if kb else 0) / 1024, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=20_000_000)
    ap.add_argument("--dir", default="/tmp/archivestore-scale")
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--projects", type=int, default=400)
    ap.add_argument("--versions", type=int, default=25)
    ap.add_argument("--files", type=int, default=100, help="catalog records per version")
    ap.add_argument("--packs-per-txn", type=int, default=PACKS_PER_TXN,
                    help="1 = one transaction per pack, as ingest commits")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    d = Path(a.dir)
    shutil.rmtree(d, ignore_errors=True)
    store = Store.init(d)
    print(f"filling {a.chunks:,} chunk entries in {d}", file=sys.stderr)
    t_fill = fill(store.index, a.chunks, a.packs_per_txn)
    add_versions(store, a.projects, a.versions, a.files)
    store.index.env.sync(True)
    data = d / "index" / "data.mdb"
    runs_bytes = store.index.table.file_bytes()
    size = data.stat().st_blocks * 512 + runs_bytes
    env = store.index.env
    ix = store.index
    tables = {"wide": ix.wide, "packs": ix.packs, "packnames": ix.packnames,
              "versions": ix.versions, "snapids": ix.snapids, "meta": ix.meta, "files": ix.files,
              "find_names": ix.find_names, "find_text": ix.find_text, "find_out": ix.find_out}
    with env.begin() as txn:
        psize = txn.stat(ix.meta)["psize"]
        per_table = {name: sum(txn.stat(db)[k] for k in ("branch_pages", "leaf_pages",
                                                         "overflow_pages")) * psize
                     for name, db in tables.items()}
        runs = ix.table.run_list(txn)
        delta = len(ix.table.delta(txn)) // chunktable.ENTRY
    per_table["chunk runs (files)"] = runs_bytes
    live = sum(per_table.values())
    out = {"chunks": a.chunks, "packs_per_txn": a.packs_per_txn, "index_bytes": size,
           "bytes_per_chunk": round(size / a.chunks, 1),
           # data.mdb's used pages plus the run files (the rest of data.mdb is LMDB's free list)
           "live_bytes_per_chunk": round(live / a.chunks, 1),
           "chunk_table_bytes_per_chunk": round(runs_bytes / a.chunks, 1),
           "chunk_runs": [n for _g, n in runs], "chunk_delta": delta,
           "table_bytes_per_chunk": {k: round(v / a.chunks, 2) for k, v in per_table.items()},
           "insert_per_s": round(a.chunks / t_fill), "insert_seconds": round(t_fill, 1)}
    # read from a cold-ish page cache state is not forced: the index file fits in RAM here
    out["present_per_s"], out["present_single_per_s"] = map(round, lookups(store.index, a.chunks, a.lookups, True))
    out["absent_per_s"], out["absent_single_per_s"] = map(round, lookups(store.index, a.chunks, a.lookups, False))
    peak, anon, filem = rss_mb()
    out.update({"bench_peak_rss_mb": round(peak), "bench_anon_rss_mb": round(anon),
                "bench_file_rss_mb": round(filem)})
    store.close()
    # an ingest into the full index: 256 MiB of new random takes, as a child process
    src = d.parent / (d.name + "-src") / "New Session"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(4):
        (src / f"take{i}.raw").write_bytes(rng.bytes(64 << 20))
    dt, rss, rc = cli_latency(d, "ingest", str(src), "--quiet")
    out.update({"ingest_into_full_index_mb_s": round(256 * 1.048576 / dt, 1),
                "ingest_peak_rss_mb": round(rss), "ingest_exit": rc})
    shutil.rmtree(src.parent, ignore_errors=True)
    for cmd in (["stats"], ["projects"], ["find", "Track 042.wav"]):
        dt, rss, rc = cli_latency(d, *cmd)
        if rc == 2 and cmd[0] == "find":
            out["find"] = "not available"
            continue
        out[f"{cmd[0]}_seconds"] = round(dt, 3)
        out[f"{cmd[0]}_peak_rss_mb"] = round(rss)
        out[f"{cmd[0]}_exit"] = rc
    targets = {"lookups >= 1M/s": out["present_per_s"] >= 1e6 and out["absent_per_s"] >= 1e6,
               "index <= 80 B/chunk": out["bytes_per_chunk"] <= 80,
               "listing commands < 1 s": all(out[k] < 1 for k in ("stats_seconds", "projects_seconds",
                                                                 "find_seconds") if k in out),
               "peak RSS <= 300 MB (commands, ingest)": all(
                   out[k] <= 300 for k in out if k.endswith("_peak_rss_mb") and k != "bench_peak_rss_mb")}
    out["targets"] = targets
    print(json.dumps(out, indent=2))
    if not a.keep:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
