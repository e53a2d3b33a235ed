#!/usr/bin/env python3
"""Who holds the GIL, and how long the other threads wait for it, in a Python command.

    python bench/gil.py -- python -m archivestore ingest DELIVERY/* --store S --json
    python bench/gil.py --sites 20 -- python -m archivestore restore --all --to T --store S

Puts uprobes (`perf probe -x libpython…`) on PyEval_SaveThread (a thread lets the GIL go before
blocking or before GIL-free C work) and on the entry and return of PyEval_RestoreThread (it asks
for the GIL back / has it), records the command under `perf record`, and reports:

- the time the GIL was held (return of RestoreThread to the next SaveThread, per thread);
- the time threads waited for it (entry to return of RestoreThread), and how much of that was
  in waits over 1 ms: a waiting thread cannot start its next GIL-free work even with a core
  idle, and a holder that the hypervisor or the scheduler takes off its core stalls them all;
- per thread group (Python thread names, as in timeline.py);
- with `--sites N`: the N largest holds by (C function that took the GIL back -> C function
  that let it go), e.g. `copy_into -> encode` is an encode thread's Python between a pack copy
  and its next encode. That is how session 13 found the pack-buffer copies done under the GIL.

Needs root (uprobes) and a Python whose libpython (or binary) has symbols; the probes stay
defined (`perf probe -d 'probe_libpython*:*'` removes them). The probes cost ~1-2 µs each: the
command runs slower; compare builds by these totals, not by its wall time.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timeline  # noqa: E402  (thread names and groups)

FUNCS = ("PyEval_RestoreThread", "PyEval_RestoreThread%return", "PyEval_SaveThread")


def libpython(python: str) -> str:
    """The file that holds PyEval_SaveThread for this interpreter: libpython, or the binary."""
    out = subprocess.run([python, "-c", "import sys, sysconfig; v = sysconfig.get_config_var;"
                          "print(v('LIBDIR') or '', v('INSTSONAME') or '', sys.executable, sep='\\n')"],
                         capture_output=True, text=True, check=True).stdout
    libdir, soname, exe = out.split("\n")[:3]
    lib = Path(libdir, soname)
    return str(lib) if soname and lib.exists() else os.path.realpath(exe)


def add_probes(lib: str) -> str:
    """Define the probes (once; an existing one is kept); returns their perf group name."""
    for fn in FUNCS:
        r = subprocess.run(["perf", "probe", "-x", lib, "-a", fn], capture_output=True, text=True)
        if r.returncode and "already exists" not in r.stderr + r.stdout:
            raise SystemExit(f"perf probe {fn} failed (root and a libpython with symbols are "
                             f"needed): {r.stderr.strip()[-300:]}")
    listed = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.endswith(":PyEval_SaveThread") and lib in line:
            return name.split(":")[0]
    raise SystemExit("perf probe: the probes were not listed after adding them")


_EVENT = re.compile(r"^\s*(.*?)\s+(\d+)\s+([\d.]+):\s+\S+:PyEval_(\w+):")


def parse(script: str) -> list[tuple[str, str, float, str, list[str]]]:
    """perf script text -> [(tid, comm, time, kind R/r/S, frames)]; R = asks, r = has it."""
    events: list = []
    for line in script.splitlines():
        if not line.strip():
            continue
        m = _EVENT.match(line)
        if m:
            comm, tid, t, fn = m.groups()
            kind = "r" if fn.endswith("__return") else "R" if fn.startswith("Restore") else "S"
            events.append((tid, comm, float(t), kind, []))
        elif events:
            frame = line.split(None, 1)
            events[-1][4].append(frame[1] if len(frame) > 1 else frame[0])
    return events


def site(frames: list[str]) -> str:
    rest = [f for f in frames if "PyEval_" not in f]
    return rest[0].split("+")[0][:40] if rest else "?"


def report(events, sites: int) -> str:
    asked: dict[str, float] = {}
    got: dict[str, tuple[float, str]] = {}
    held = collections.Counter()
    waited = collections.Counter()
    long_wait = collections.Counter()
    by_site = collections.Counter()
    n_site = collections.Counter()
    names: dict[str, str] = {}
    for tid, comm, t, kind, frames in events:
        names[tid] = comm
        if kind == "R":
            asked[tid] = t
        elif kind == "r":
            if tid in asked:
                d = t - asked.pop(tid)
                waited[tid] += d
                if d > 0.001:
                    long_wait[tid] += d
            got[tid] = (t, site(frames))
        elif tid in got:
            t0, where = got.pop(tid)
            held[tid] += t - t0
            key = f"{where} -> {site(frames)}"
            by_site[key] += t - t0
            n_site[key] += 1
    span = events[-1][2] - events[0][2] if events else 0.0
    out = [f"span {span:.2f} s: GIL held {sum(held.values()):.3f} s, waited for "
           f"{sum(waited.values()):.3f} thread-s ({sum(long_wait.values()):.3f} in waits over 1 ms)"]
    groups = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for tid in set(held) | set(waited):
        g = groups[timeline.group(names.get(tid, tid))]
        g[0] += held[tid]
        g[1] += waited[tid]
        g[2] += long_wait[tid]
        g[3] += 1
    out.append(f"  {'threads':<16} {'n':>3} {'held s':>8} {'waited s':>9} {'>1 ms':>7}")
    for name, (h, w, lw, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        out.append(f"  {name:<16} {n:>3} {h:8.3f} {w:9.3f} {lw:7.3f}")
    if sites:
        out.append(f"largest holds by site (took it back in -> let it go in), ms, count:")
        for key, d in by_site.most_common(sites):
            out.append(f"  {d * 1000:8.1f} {n_site[key]:6d}  {key}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=0, help="list the N largest holds by call site")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then a python command")
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give a python command after --")
    group = add_probes(libpython(cmd[0]))
    evs = [f"{group}:PyEval_RestoreThread", f"{group}:PyEval_RestoreThread__return",
           f"{group}:PyEval_SaveThread"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "sitecustomize.py").write_text(timeline.SITE)  # threads by their Python names
        env = dict(os.environ)
        env["PYTHONPATH"] = tmp + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        data = str(Path(tmp, "perf.data"))
        rec = ["perf", "record", "-q", "-o", data] + sum((["-e", e] for e in evs), [])
        if a.sites:
            rec.append("-g")
        r = subprocess.run(rec + ["--"] + cmd, env=env, stdout=subprocess.DEVNULL)
        fields = "comm,tid,time,event" + (",ip,sym" if a.sites else "")
        script = subprocess.run(["perf", "script", "-i", data, "-F", fields],
                                capture_output=True, text=True).stdout
    print(report(parse(script), a.sites))
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
