#!/usr/bin/env python3
"""What this machine charges for writing to its disk while both cores are busy.

    python bench/host.py                      # 700 MB per trial, 3 rounds, 2 busy loops
    python bench/host.py --mb 350 --rounds 5 --configs 2:8,16:1

On a virtual machine the host's work for the guest's disk (the virtual device's emulation, the
host's own write path) can run on the CPU time the VM is allowed: it then shows inside the VM
as *steal* on the vCPUs that wanted to run meanwhile. A pipeline that keeps both cores busy and
writes its output pays it on top of its own CPU seconds, so the wall time of a write-heavy step
(a first ingest writes ~0.67 GB of packs per GB of audio) has a floor of

    (own CPU seconds + steal) / cores

Each trial writes `--mb` MB of random bytes through archivestore's `DirectWriter` (O_DIRECT,
`BUF`-sized buffers, `depth` writes in flight) into a temporary file beside `--dir`, while
`--loops` shell busy loops keep the cores busy, and reports from /proc/stat: MB/s, user and
system CPU, steal, steal per second of writing and per MB written. Without busy loops the host's
work goes to idle cores and no steal shows (try `--loops 0`). The configurations alternate
within each round, so that a drift of the host's speed meets each of them.

Session 19 (docs/DESIGN.md) measured ≈ 0.55-0.6 cores stolen for every second the disk was
writing, whatever the buffer size (2-16 MiB) or queue depth: the steal follows the time the
device is busy, not the bytes or the requests.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ("user", "nice", "sys", "idle", "iowait", "irq", "softirq", "steal")


def _cpu() -> dict[str, float]:
    with open("/proc/stat") as f:
        vals = f.readline().split()[1:1 + len(FIELDS)]
    tick = os.sysconf("SC_CLK_TCK")
    return {k: int(v) / tick for k, v in zip(FIELDS, vals)}


def trial(directory: Path, mb: int, buf_mib: int, depth: int, loops: int) -> dict:
    from archivestore import directio  # on sys.path above; imported late so --help is quick
    if directio.BUF != buf_mib << 20:
        directio.BUF = buf_mib << 20
        with directio._free_lock:  # pooled buffers of the previous size
            directio._free.clear()
    block = os.urandom(1 << 20)
    busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(loops)]
    fd, path = tempfile.mkstemp(prefix="host-write-", dir=directory)
    os.close(fd)
    os.unlink(path)  # DirectWriter creates it (O_EXCL)
    try:
        time.sleep(0.2)  # the loops are running
        a, t0 = _cpu(), time.perf_counter()
        w = directio.DirectWriter(path, depth=depth)
        for _ in range(mb * 1_000_000 // len(block)):
            w.write(block)
        w.close(fsync=True)
        wall, b = time.perf_counter() - t0, _cpu()
    finally:
        for p in busy:
            p.kill()
            p.wait()
        if os.path.exists(path):
            os.unlink(path)
    d = {k: b[k] - a[k] for k in FIELDS}
    written = mb * 1_000_000 // len(block) * len(block) / 1e6
    return {"buf_mib": buf_mib, "depth": depth, "wall_s": wall, "mb_s": written / wall,
            "user": d["user"], "sys": d["sys"], "steal": d["steal"],
            "steal_per_s": d["steal"] / wall, "steal_ms_per_mb": 1000 * d["steal"] / written}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=700, help="MB written per trial (default 700)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the configurations")
    ap.add_argument("--configs", default="2:8,4:4,16:1",
                    help="BUF MiB:depth pairs, comma separated (default 2:8,4:4,16:1; "
                         "2:8 is what packs use)")
    ap.add_argument("--loops", type=int, default=os.cpu_count() or 2,
                    help="busy loops beside the writes (default: one per core)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the trial file is written (the disk to measure)")
    args = ap.parse_args(argv)
    try:
        configs = [tuple(int(x) for x in c.split(":")) for c in args.configs.split(",")]
        if any(len(c) != 2 or c[0] < 1 or c[1] < 1 for c in configs):
            raise ValueError
    except ValueError:
        ap.error(f"--configs: expected BUF:depth pairs such as 2:8,16:1, got {args.configs!r}")
    print(f"{args.mb} MB per trial into {args.dir}, {args.loops} busy loops, {args.rounds} rounds")
    print(f"{'BUF':>4s} {'depth':>5s} {'wall s':>7s} {'MB/s':>6s} {'user':>6s} {'sys':>5s} "
          f"{'steal':>6s} {'steal/s':>7s} {'ms/MB':>6s}")
    for _ in range(args.rounds):
        for buf_mib, depth in configs:
            r = trial(args.dir, args.mb, buf_mib, depth, args.loops)
            print(f"{buf_mib:4d} {depth:5d} {r['wall_s']:7.2f} {r['mb_s']:6.0f} {r['user']:6.2f} "
                  f"{r['sys']:5.2f} {r['steal']:6.2f} {r['steal_per_s']:7.2f} "
                  f"{r['steal_ms_per_mb']:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
