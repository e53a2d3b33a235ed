"""Restore of one very large file streams with flat memory.

Generates a sparse file of `--gb` GiB (holes, with a distinct 4 KiB stamp every MiB so every
chunk is unique yet the source takes little disk), ingests it, then restores it while sampling
RSS every GiB. The restored file is checked by the Restorer (whole-file digest) and removed.

    python bench/restore_big.py --gb 20
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archivestore.ingest import Ingester  # noqa: E402
from archivestore.restore import Restorer  # noqa: E402
from archivestore.store import Store  # noqa: E402
from bench.longrun import status_mb as rss  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gb", type=int, default=20)
    ap.add_argument("--dir", default="/tmp/archivestore-bigrestore")
    a = ap.parse_args()
    d = Path(a.dir)
    shutil.rmtree(d, ignore_errors=True)
    src = d / "Mixdown"
    src.mkdir(parents=True)
    size = a.gb << 30
    with open(src / "stems.raw", "wb") as f:
        f.truncate(size)
        for mib in range(size >> 20):
            f.seek(mib << 20)
            f.write(mib.to_bytes(8, "little") * 512)
    store = Store.init(d / "store")
    r0 = rss()
    ing = Ingester(store).ingest(src)
    r1 = rss()
    samples = []
    state = {"bytes": 0, "next": 1 << 30}

    def progress(ev: dict) -> None:
        state["bytes"] += ev.get("bytes", 0)
        if state["bytes"] >= state["next"]:
            state["next"] += 1 << 30
            samples.append(round(rss()[0]))

    t0 = time.perf_counter()
    res = Restorer(store, progress).restore("Mixdown", d / "out")
    dt = time.perf_counter() - t0
    assert res.ok and res.files == 1 and res.bytes == size, res
    out = {"gb": a.gb, "ingest_mb_s": round(size / 1e6 / ing.seconds),
           "stored_mb": round(ing.bytes_stored / 1e6, 1),
           "restore_mb_s": round(size / 1e6 / dt), "restore_seconds": round(dt, 1),
           "rss_before_ingest_mb": round(r0[0]), "rss_after_ingest_mb": round(r1[0]),
           "rss_per_gib_during_restore_mb": samples, "peak_rss_mb": round(rss()[1])}
    print(json.dumps(out))
    store.close()
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
