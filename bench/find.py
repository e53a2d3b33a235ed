"""Time `archive find` on a store index holding 100,000 file records.

Builds a store whose catalog holds N file records (default 100,000: 40 projects × 5 versions ×
500 files, with BWF-like audio details and descriptions), inserted through the Index API as a
commit would write them, then runs the real CLI (`python -m archivestore find …`, a fresh
process each time, so interpreter start-up is included) for a few typical queries and checks
each answer against a brute-force count over the same records.

    python bench/find.py [--records 100000] [--store DIR [--reuse]]

Each version's bounce paths repeat (10 names for its 100 bounces), so the catalog keeps
0.804 N distinct records: `--records 1250000` gives 1,005,000.

With --reuse and a --store that exists, the store is not built again (it must have been built
with the same --records); only the expected answers are regenerated.

Prints one line per query: the CLI's wall and CPU time and peak RSS (a fresh process,
start-up included) and the search alone; exits 1 if any answer is wrong or a query takes more than 1 s of CPU.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archivestore import Store, catalog  # noqa: E402

try:
    from archivestore import findindex  # noqa: E402
except ImportError:  # an archivestore before the search blocks (for a before/after run)
    findindex = None

TARGET_S = 1.0
ROOMS = ["Room A", "Room B", "Live Room", "Booth"]
INSTR = ["Kick", "Snare", "Hat", "Bass", "Gtr L", "Gtr R", "Vox", "BV", "Keys", "Strings"]


def generate(n: int) -> Iterator[tuple[str, int, list[dict]]]:
    """(project, version, tree entries) of the bench's versions: the same for the same `n`."""
    per_version = 500
    versions = 5
    projects = max(1, n // (per_version * versions))
    for p in range(projects):
        project = f"Project {p:03d}"
        for v in range(1, versions + 1):
            entries = []
            for i in range(per_version):
                instr = INSTR[i % len(INSTR)]
                path = f"Audio Files/{instr} {i:03d}.wav" if i % 5 else f"Bounces/{instr} mix v{v}.wav"
                entries.append({"path": path, "type": "file", "size": 1_000_000 + i * 977,
                                "digest": f"{p:04x}{v:04x}{i:056x}",
                                "audio": {"container": "bwf", "sample_rate": 48000, "bits": 24,
                                          "channels": 1 + (i % 2), "frames": 48000 * 180,
                                          "duration": 180.0, "float": False,
                                          "description": f"{instr} take {i % 7}, {ROOMS[i % 4]}",
                                          "originator": "ProTools" if i % 3 else "Pyramix"}})
            yield project, v, entries


def build(store_dir: Path, n: int, reuse: bool = False) -> list[tuple[str, int, str, dict]]:
    """Make the bench store (or, with `reuse` and an existing store, only regenerate its rows)."""
    rows = []
    write = not (reuse and (store_dir / "config.json").exists())
    if write:
        Store.init(store_dir).close()
    st = Store.open(store_dir) if write else None
    try:
        for project, v, entries in generate(n):
            rows.extend((project, v, e["path"], e) for e in entries)
            if st is not None:
                st.index.add_files(project, v, list(catalog.records_for_tree(entries)))
    finally:
        if st is not None:
            st.close()
    return rows


def expected(rows, pattern=None, desc=None) -> int:
    """Distinct (project, path, digest) among the records matching, computed the slow way."""
    found = set()
    for project, _v, path, e in rows:
        if pattern:
            pat = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
            if not (fnmatch.fnmatch(path.lower(), pat.lower())
                    or fnmatch.fnmatch(path.rsplit("/", 1)[-1].lower(), pat.lower())):
                continue
        if desc:
            a = e["audio"]
            if desc.lower() not in (a["description"] + "\n" + a["originator"]).lower():
                continue
        found.add((project, path, e["digest"][:16]))
    return len(found)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing --store")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="findbench-")
    store = args.store or Path(tmp.name) / "store"
    t0 = time.perf_counter()
    rows = build(store, args.records, reuse=args.reuse)
    print(f"{'opened' if args.reuse else 'built'} an index with {len(rows)} file records in "
          f"{time.perf_counter() - t0:.1f} s ({sum(f.stat().st_size for f in (store / 'index').iterdir()) / 1e6:.1f} MB LMDB)")
    with Store.open(store) as st:  # an index built by an older archivestore: backfill once
        t0, c0 = time.perf_counter(), time.process_time()
        n = findindex.ensure(st.index) if findindex is not None else 0
        if n:
            print(f"built the search blocks for {n} records in {time.perf_counter() - t0:.1f} s "
                  f"({time.process_time() - c0:.1f} s CPU)")
    print(f"index now {sum(f.stat().st_size for f in (store / 'index').iterdir()) / 1e6:.1f} MB")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    queries = [("name glob", ["kick*"], "kick*", None),
               ("substring", ["mix v3"], "mix v3", None),
               ("path glob", ["Bounces/*.wav"], "Bounces/*.wav", None),
               ("rare name", ["Vox 496.wav"], "Vox 496.wav", None),
               ("description", ["--desc", "live room"], None, "live room"),
               ("name + description", ["*snare*", "--desc", "pyramix"], "*snare*", "pyramix")]
    startup = _cli_time(env, ["--version"])
    print(f"CLI start-up alone (archive --version): {startup[0] * 1000:.0f} ms wall, "
          f"{startup[1] * 1000:.0f} ms CPU; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'query':<20} {'wall':>7} {'CPU':>7} {'RSS':>7} {'search':>7}  matches")
    bad = 0
    for label, argv, pat, desc in queries:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                tempfile.NamedTemporaryFile("r") as usage:
            # through a small launcher: a child forked from this process (which holds every
            # expected row) would report this process's RSS as its peak
            proc = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCH, usage.name,
                                   sys.executable, "-m", "archivestore", "find", *argv,
                                   "--store", str(store), "--limit", "1000000", "--json"],
                                  stdout=out, stderr=err, env=env)
            dt, cpu, rss_kib, proc.returncode = json.loads(usage.read() or "[0, 0, 0, 1]")
            rss = rss_kib / 1024
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
        if proc.returncode != 0:
            print(f"{label}: FAILED: {stderr.strip()}")
            bad += 1
            continue
        got = len(json.loads(stdout)["matches"])
        want = expected(rows, pat, desc)
        with Store.open(store) as st:  # the search alone, in this process
            t = time.perf_counter()
            if findindex is not None:
                sum(len(b) for _p, b in findindex.Finder(st.index, pat, desc))
            else:
                catalog.search(st.index.iter_files(), pat, desc)
            search = time.perf_counter() - t
        # The target is on CPU time: wall time on a loaded shared machine measures the others.
        ok = got == want and cpu < TARGET_S
        bad += not ok
        print(f"{label:<20} {dt * 1000:5.0f}ms {cpu * 1000:5.0f}ms {rss:5.0f}MB {search * 1000:5.0f}ms  "
              f"{got:6d}"
              f"{'' if got == want else f' (WRONG, expected {want})'}"
              f"{'' if cpu < TARGET_S else ' (SLOWER than 1 s)'}")
    return 1 if bad else 0


# Runs argv[2:] and writes [wall s, CPU s, peak RSS KiB, exit status] of it to argv[1].
_LAUNCH = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
dt = time.perf_counter() - t
with open(sys.argv[1], "w") as f:
    json.dump([dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, os.waitstatus_to_exitcode(status)], f)
"""


def _children_cpu() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cli_time(env, argv) -> tuple[float, float]:
    t, c = time.perf_counter(), _children_cpu()
    subprocess.run([sys.executable, "-m", "archivestore", *argv], capture_output=True, env=env)
    return time.perf_counter() - t, _children_cpu() - c


if __name__ == "__main__":
    sys.exit(main())
