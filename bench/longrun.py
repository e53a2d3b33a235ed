"""Long-run ingest: ≥ 100 GB of logical data into one store, throughput and RSS per round.

A corpus of `--corpus-mb` of random files is generated once (it stays in the page cache, so the
disk is not the limit). Each round rewrites `--new-percent` of it with fresh bytes at random
places and ingests the folder as a new version, so most of every round is duplicate data and a
small part is new: the store grows slowly while the index and pending sets are exercised. The
per-round table must stay flat from the first to the last GB.

    python bench/longrun.py                         # 100 rounds x 1 GiB = 100 GiB
    python bench/longrun.py --rounds 5 --corpus-mb 256
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archivestore.ingest import Ingester  # noqa: E402
from archivestore.store import Store  # noqa: E402

FILE_MB = 64


def status_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    v = {}
    for line in open("/proc/self/status"):
        k, _, rest = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            v[k] = int(rest.split()[0]) / 1024
    return v["VmRSS"], v["VmHWM"]


def make_corpus(src: Path, mb: int, rng: np.random.Generator) -> list[Path]:
    src.mkdir(parents=True)
    files = []
    for i in range(max(1, mb // FILE_MB)):
        p = src / f"take{i:03d}.bin"
        p.write_bytes(rng.bytes(FILE_MB << 20))
        files.append(p)
    return files


def mutate(files: list[Path], percent: float, rng: np.random.Generator) -> int:
    """Overwrite `percent` of the corpus with new random bytes, in 1 MiB patches."""
    total = len(files) * FILE_MB
    patches = max(1, int(total * percent / 100))
    for _ in range(patches):
        f = files[int(rng.integers(len(files)))]
        off = int(rng.integers(0, (FILE_MB - 1) << 20))
        with open(f, "r+b") as fh:
            fh.seek(off)
            fh.write(rng.bytes(1 << 20))
    return patches << 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--corpus-mb", type=int, default=1024)
    ap.add_argument("--new-percent", type=float, default=2.0)
    ap.add_argument("--dir", default="/tmp/archivestore-longrun")
    a = ap.parse_args()
    d = Path(a.dir)
    shutil.rmtree(d, ignore_errors=True)
    rng = np.random.default_rng(11)
    files = make_corpus(d / "Session", a.corpus_mb, rng)
    store = Store.init(d / "store")
    gc.collect()
    gc.freeze()
    rows = []
    total = 0
    print(f"{'round':>5} {'GB in':>7} {'MB/s':>7} {'new MB':>7} {'stored MB':>9} "
          f"{'RSS MB':>7} {'peak MB':>7} {'index MB':>8}", flush=True)
    t_all = time.perf_counter()
    for r in range(1, a.rounds + 1):
        new = mutate(files, a.new_percent, rng) if r > 1 else a.corpus_mb << 20
        res = Ingester(store).ingest(d / "Session", project="Session")
        total += res.bytes_in
        rss, peak = status_mb()
        idx = (d / "store" / "index" / "data.mdb").stat().st_blocks * 512
        row = {"round": r, "gb_in": total / 1e9, "mb_s": res.bytes_in / 1e6 / res.seconds,
               "new_mb": new / 1e6, "stored_mb": res.bytes_stored / 1e6, "rss_mb": rss,
               "peak_mb": peak, "index_mb": idx / 1e6, "version": res.version}
        rows.append(row)
        print(f"{r:5d} {row['gb_in']:7.1f} {row['mb_s']:7.0f} {row['new_mb']:7.0f} "
              f"{row['stored_mb']:9.1f} {rss:7.0f} {peak:7.0f} {row['index_mb']:8.1f}", flush=True)
        assert res.version == r
    store.close()
    first, last = rows[: max(1, len(rows) // 10)], rows[-max(1, len(rows) // 10):]
    mean = lambda rs, k: sum(x[k] for x in rs) / len(rs)  # noqa: E731
    summary = {"rounds": a.rounds, "logical_gb": round(total / 1e9, 1),
               "seconds": round(time.perf_counter() - t_all),
               "first_decile_mb_s": round(mean(first[1:] or first, "mb_s")),
               "last_decile_mb_s": round(mean(last, "mb_s")),
               "first_decile_rss_mb": round(mean(first, "rss_mb")),
               "last_decile_rss_mb": round(mean(last, "rss_mb")),
               "peak_rss_mb": round(max(x["peak_mb"] for x in rows)),
               "store_mb": round(sum(f.stat().st_size for f in (d / "store" / "packs").rglob("*.pack")) / 1e6)}
    print(json.dumps(summary, indent=2))
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
