#!/usr/bin/env python3
"""Where a command's threads spend the wall clock: CPU per thread over time, and the stalls.

    python bench/timeline.py -- python -m archivestore ingest DELIVERY/* --store S --json
    python bench/timeline.py --interval 0.05 --stalls -- archive fsck --read-data --store S

Samples /proc/<pid>/task/* every `--interval` seconds and prints, per interval, the cores the
whole machine used and each thread group's CPU (threads grouped by name: `read_0` and `read_1`
are `read`). For a Python command the threads get their Python names (`read_0`, `encode_1`,
`pack-finish_0`, `direct-io_3`) through a sitecustomize put first on PYTHONPATH; Python 3.11
does not name native threads itself.

With `--stalls` it also samples thread states every `--stall-interval` seconds and reports the
fraction of samples in which *no* thread of the command was runnable, with what each thread
waited in at those moments (state and kernel wait channel). A pipeline that should keep two
cores busy and shows stalls is waiting on something: the disk (D state in a write or fsync),
a lock, or an empty queue. Session 12 found the pack-boundary stall this way (docs/DESIGN.md).

The sampler runs on the same cores: keep --stall-interval ≥ 2 ms, and compare builds by
stall fractions and timelines, not by this run's wall time.
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SITE = '''\
import threading
_run = threading.Thread._bootstrap_inner
def _named(self):
    try:  # the native thread's name, for /proc/<pid>/task/<tid>/comm (15 bytes at most)
        with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
            f.write(self.name[:15])
    except OSError:
        pass
    return _run(self)
threading.Thread._bootstrap_inner = _named
'''


def group(name: str) -> str:
    """`read_0` -> `read`, `direct-io_12` -> `direct-io`; other names as they are."""
    base, _, tail = name.rpartition("_")
    return base if base and tail.isdigit() else name


def threads(pid: int) -> dict[str, tuple[str, int, str]]:
    """tid -> (name, CPU ticks, state) of every thread of `pid` (empty once it is gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        out[tid] = (name, int(fields[11]) + int(fields[12]), fields[0])
    return out


def wchan(pid: int, tid: str) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/wchan") as f:
            return f.read().strip() or "-"
    except OSError:
        return "?"


def machine_busy() -> int:
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.1, help="timeline step in seconds")
    ap.add_argument("--stalls", action="store_true", help="also sample thread states")
    ap.add_argument("--stall-interval", type=float, default=0.003)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give a command after --")
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory() as site:
        Path(site, "sitecustomize.py").write_text(SITE)
        env = dict(os.environ)
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        prev, prev_m, last = threads(p.pid), machine_busy(), t0
        rows: list[tuple[float, float, collections.Counter, float]] = []
        total: collections.Counter = collections.Counter()
        samples = stalled = 0
        waits: collections.Counter = collections.Counter()
        runnable: collections.Counter = collections.Counter()  # threads in R -> samples
        waits1: collections.Counter = collections.Counter()  # the others, when one is R
        ran1: collections.Counter = collections.Counter()  # the one in R then
        while p.poll() is None:
            if a.stalls:
                now = threads(p.pid)
                if now:
                    samples += 1
                    r = sum(st == "R" for _n, _t, st in now.values())
                    runnable[min(r, 2)] += 1
                    if r == 0:
                        stalled += 1
                    if r <= 1:
                        for tid, (name, _t, st) in now.items():
                            if st == "R":
                                ran1[group(name)] += 1
                            else:
                                (waits if r == 0 else waits1)[(group(name), st,
                                                               wchan(p.pid, tid))] += 1
                time.sleep(a.stall_interval)
            else:
                time.sleep(a.interval)
            t = time.perf_counter()
            if t - last < a.interval:
                continue
            cur, m = threads(p.pid), machine_busy()
            row: collections.Counter = collections.Counter()
            for tid, (name, ticks, _st) in cur.items():
                d = ticks - prev.get(tid, (name, 0, ""))[1]
                row[group(name)] += d
                total[group(name)] += d
            rows.append((t - t0, (m - prev_m) / hz / (t - last), row, t - last))
            prev, prev_m, last = cur, m, t
        wall = time.perf_counter() - t0
    names = [n for n, _ in total.most_common()]
    print(f"{'t s':>6} {'machine':>7}  " + " ".join(f"{n[:11]:>11}" for n in names))
    for t, mach, row, dt in rows:
        print(f"{t:6.2f} {mach:7.1f}  " + " ".join(f"{row[n] / hz / dt:11.1f}" for n in names))
    print(f"\nwall {wall:.2f} s, exit {p.returncode}; CPU seconds by thread group: "
          + ", ".join(f"{n} {total[n] / hz:.2f}" for n in names))
    if a.stalls and samples:
        print(f"no thread runnable in {stalled} of {samples} samples ({100 * stalled / samples:.1f}%)")
        for (name, st, w), n in waits.most_common(12):
            print(f"  {n:5d}  {name:<14} {st}  {w}")
        print(f"one thread runnable (one core idle) in {runnable[1]} samples "
              f"({100 * runnable[1] / samples:.1f}%), two or more in {runnable[2]} "
              f"({100 * runnable[2] / samples:.1f}%); the one running then: "
              + ", ".join(f"{n} {c}" for n, c in ran1.most_common()) + "; what the others waited in:")
        for (name, st, w), n in waits1.most_common(12):
            print(f"  {n:5d}  {name:<14} {st}  {w}")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
