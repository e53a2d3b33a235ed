#!/usr/bin/env python3
"""Before and after: two archivestore checkouts on the same corpus, alternating, N rounds.

    git worktree add /tmp/before HEAD~3 && (cd /tmp/before && python setup.py build_ext --inplace)
    python bench/ab.py /tmp/before . --rounds 4
    python bench/ab.py /tmp/before . --size-mb 50 --rounds 2      # a quick look

Each round runs compare.py's four steps for A, then for B (B first in every other round):
ingest delivery 1, ingest delivery 2, restore delivery 2 (checked byte for byte) and
fsck --read-data, each tool in a fresh store, the page cache warmed the same way. This host's
speed drifts by more than most changes move a step, so one run of each says little; what
counts is how the alternating rounds line up. Prints every round's wall seconds, CPU seconds
and peak RSS per step, the medians, B's median over A's, and the store sizes (equal when the
change leaves the stored bytes alone; index pages differ by a few kB).

Both checkouts need their extensions built in place. Exit status 1 if a restore differs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import compare  # noqa: E402

# page faults do not drift with the host as time does: a change in memory use shows in one pair
FIELDS = (("wall_s", "wall s", 2), ("cpu_s", "CPU s", 2), ("peak_rss_mb", "RSS MB", 0),
          ("page_faults_k", "faults k", 1))


def run_rounds(roots: dict[str, Path], d1: Path, d2: Path, logical: dict, rounds: int,
               work: Path, flags: tuple[str, ...]) -> dict[str, list[dict]]:
    """{label: [one compare.bench_tool result per round]}, A and B alternating."""
    tools = [compare.ArchiveStore(label, work / label, root, ingest_flags=flags)
             for label, root in roots.items()]
    for t in tools:
        why = t.available()
        if why:
            raise SystemExit(f"{t.name}: {why}")
    runs: dict[str, list[dict]] = {t.name: [] for t in tools}
    for r in range(rounds):
        for t in (tools if r % 2 == 0 else tools[::-1]):
            print(f"\n-- round {r + 1}/{rounds}: {t.name} ({t.root})", flush=True)
            runs[t.name].append(compare.bench_tool(t, d1, d2, logical, keep=False))
    return runs


def report(runs: dict[str, list[dict]]) -> str:
    """Per step and measure: every round's value for A and B, the medians and B/A."""
    a, b = list(runs)
    lines = []
    for step in compare.STEPS:
        lines.append(f"\n{step}")
        for key, label, nd in FIELDS:
            vals = {n: [r["steps"][step][key] for r in runs[n]
                        if key in r["steps"].get(step, {})] for n in runs}
            if not vals[a] or not vals[b]:
                continue
            med = {n: statistics.median(v) for n, v in vals.items()}
            ratio = med[b] / med[a] if med[a] else float("nan")
            lines.append(f"  {label:7s} " + "   ".join(
                f"{n}: {' '.join(f'{x:.{nd}f}' for x in vals[n])} (median {med[n]:.{nd}f})"
                for n in (a, b)) + f"   {b}/{a} {ratio:.3f}")
    sizes = {n: sorted({round(r["steps"]["check"]["store_disk_mb"], 2) for r in runs[n]
                        if "check" in r["steps"]}) for n in runs}
    lines.append("\nstore MB after both deliveries: " + ", ".join(f"{n} {sizes[n]}" for n in runs))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("a", help="checkout A (before), its extensions built")
    ap.add_argument("b", help="checkout B (after)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--size-mb", type=float, default=1000, help="delivery-1 size in MB (10^6 bytes)")
    ap.add_argument("--projects", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ingest-flag", action="append", default=[], metavar="FLAG",
                    help="pass to both ingests, e.g. --ingest-flag=--no-verify-codec (repeatable)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "archivestore-bench"),
                    help="the corpus (shared with compare.py) and the stores live here")
    a = ap.parse_args(argv)

    roots = {"A": Path(a.a).resolve(), "B": Path(a.b).resolve()}
    for label, root in roots.items():
        if not (root / "archivestore" / "__init__.py").is_file():
            raise SystemExit(f"{label}: {root} is not an archivestore checkout")
    work = Path(a.workdir).resolve()
    cdir, _desc, logical = compare.corpus_for(work, a.size_mb, a.projects, a.seed)
    run_dir = work / f"ab-{os.getpid()}"
    try:
        runs = run_rounds(roots, cdir / "delivery1", cdir / "delivery2", logical, a.rounds,
                          run_dir, tuple(a.ingest_flag))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\nA = {roots['A']}\nB = {roots['B']}")
    print(report(runs))
    return 0 if all(r["ok"] for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
