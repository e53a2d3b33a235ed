#!/usr/bin/env python3
"""archivestore vs restic vs borg on the same synthetic studio corpus, same run.

    python bench/compare.py --size-mb 1000
    python bench/compare.py --size-mb 50 --tools restic,borg-zstd3,borg-lz4
    python bench/compare.py --tools archivestore,archivestore-zstd   # audio codec vs zstd alone
    python bench/compare.py --tools archivestore,archivestore-noverify,restic  # cost of verifying

Per tool, in a fresh store: (1) ingest delivery1, (2) ingest delivery2 into the
same store, (3) restore delivery2 to a fresh dir and compare it byte for byte
with the source tree, (4) full read-data check.  For each step: wall seconds,
MB/s, child CPU seconds (user+sys from os.wait4), child peak RSS (ru_maxrss),
store size on disk after the step and its growth.

Throughput definitions (identical for every tool; MB = 10**6 bytes):
  ingest1  logical bytes of delivery1 / wall
  ingest2  logical bytes of delivery2 / wall
  restore  restored bytes (= logical bytes of delivery2) / wall
  check    logical bytes of delivery1 + delivery2 / wall
           (compare.json also has check MB/s over the store's bytes on disk)

Before every step the page cache is warmed the same way for every tool: all
source files of the delivery are read once before an ingest, all files of the
store before a restore or check.

Writes bench/out/compare.json and bench/out/compare.png (Agg backend).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import corpus as corpus_mod  # noqa: E402

MB = 10**6
STEPS = ["ingest1", "ingest2", "restore", "check"]
# archivestore-zstd: the same store with --no-audio-codec (PCM through zstd/raw like any data),
# the "zstd alone" reference of the audio-codec issue
ALL_TOOLS = ["archivestore", "restic", "borg-zstd3", "borg-lz4", "borg-none", "archivestore-zstd"]
# archivestore-noverify: --no-verify-codec, what ingest's decode-and-compare of every codec chunk
# costs (the audio-codec issue keeps that switch on until the codec has earned trust); on request
EXTRA_TOOLS = ["archivestore-noverify"]
BORG_COMPRESSION = {"borg-zstd3": "zstd,3", "borg-lz4": "lz4", "borg-none": "none"}
RESTIC_PASSWORD = "archivestore-bench"


# ----------------------------------------------------------------------------
# measurement helpers
# ----------------------------------------------------------------------------

def tree_bytes(root: Path) -> tuple[int, int, int]:
    """(apparent bytes, bytes on disk from st_blocks, file count)."""
    app = disk = n = 0
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            try:
                st = os.lstat(os.path.join(dp, fn))
            except FileNotFoundError:
                continue
            app += st.st_size
            disk += st.st_blocks * 512
            n += 1
    return app, disk, n


def warm(root: Path) -> int:
    """Read every file under root once (page-cache warm-up)."""
    total = 0
    buf = bytearray(1 << 20)
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb", buffering=0) as f:
                while True:
                    k = f.readinto(buf)
                    if not k:
                        break
                    total += k
    return total


def _files(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            p = os.path.join(dp, fn)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def compare_trees(src: Path, dst: Path) -> dict:
    """Same set of file paths and identical bytes for every file."""
    a, b = _files(src), _files(dst)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    differ = []
    compared = 0
    for rel in sorted(set(a) & set(b)):
        if a[rel].st_size != b[rel].st_size:
            differ.append(rel)
            continue
        with open(src / rel, "rb") as f, open(dst / rel, "rb") as g:
            while True:
                x = f.read(1 << 20)
                y = g.read(1 << 20)
                if x != y:
                    differ.append(rel)
                    break
                if not x:
                    break
        compared += a[rel].st_size
    ok = not (missing or extra or differ)
    return {"identical": ok, "files": len(a), "bytes_compared": compared,
            "missing": missing[:20], "extra": extra[:20], "differ": differ[:20],
            "n_missing": len(missing), "n_extra": len(extra), "n_differ": len(differ)}


class StepFailed(Exception):
    pass


# The child is launched by a tiny, freshly started interpreter (no site, no
# numpy): on Linux a child's ru_maxrss includes the high-water RSS of the
# process it was forked/vforked from (recorded at exec), so spawning straight
# from this (big) process would report our RSS instead of the tool's.  The
# runner's own footprint (~10 MB) is a floor, irrelevant for real tools.
RUNNER = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
fa = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
      (os.POSIX_SPAWN_OPEN, 1, spec["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
      (os.POSIX_SPAWN_OPEN, 2, spec["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
def busy():  # machine-wide (busy CPU seconds: user nice system irq softirq, stolen seconds)
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
if spec["cwd"]:
    os.chdir(spec["cwd"])
b0, s0 = busy()
t0 = time.perf_counter()
pid = os.posix_spawnp(spec["argv"][0], spec["argv"], os.environ, file_actions=fa)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
b1, s1 = busy()
cpu = ru.ru_utime + ru.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu, "maxrss_kb": ru.ru_maxrss, "others_cpu": max(0.0, b1 - b0 - cpu),
                  "steal": s1 - s0, "faults": ru.ru_minflt + ru.ru_majflt,
                  "rc": os.waitstatus_to_exitcode(status)}))
"""


def run_measured(cmds: list[dict], logdir: Path, label: str) -> dict:
    """Run commands one after the other: summed wall and child CPU, max child
    ru_maxrss.  cmds: {argv, cwd, env}."""
    cpu = wall = others = steal = 0.0
    rss_kb = faults = 0
    outs = []
    for i, c in enumerate(cmds):
        out_p = logdir / f"{label}.{i}.out"
        err_p = logdir / f"{label}.{i}.err"
        spec = {"argv": c["argv"], "cwd": c.get("cwd"), "out": str(out_p), "err": str(err_p)}
        r = subprocess.run([sys.executable, "-I", "-S", "-c", RUNNER, json.dumps(spec)],
                           env=c["env"], capture_output=True, text=True)
        if r.returncode != 0:
            raise StepFailed(f"runner failed for {c['argv']}: {r.stderr[-2000:]}")
        m = json.loads(r.stdout)
        wall += m["wall"]
        cpu += m["cpu"]
        others += m["others_cpu"]
        steal += m["steal"]
        rss_kb = max(rss_kb, m["maxrss_kb"])
        faults += m["faults"]
        outs.append(out_p.read_text(errors="replace"))
        if m["rc"] != 0:
            tail = err_p.read_text(errors="replace")[-2000:]
            raise StepFailed(f"{' '.join(map(str, c['argv']))} exited {m['rc']}:\n{tail}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss_kb * 1024 / MB, "others_cpu_s": others,
            "steal_s": steal, "page_faults": faults, "stdout": outs}


# ----------------------------------------------------------------------------
# tools
# ----------------------------------------------------------------------------

class Tool:
    name = "?"

    def __init__(self, name: str, base: Path):
        self.name = name
        self.base = base
        self.store = base / "store"
        self.env = dict(os.environ)

    def available(self) -> str | None:  # None = ok, else reason
        return None

    def version(self) -> str:
        return ""

    def init(self) -> list[dict]:
        raise NotImplementedError

    def ingest(self, delivery: Path, label: str) -> list[dict]:
        raise NotImplementedError

    def restore(self, label: str, dest: Path) -> list[dict]:
        raise NotImplementedError

    def restored_root(self, dest: Path, delivery: Path) -> Path:
        return dest

    def check(self) -> list[dict]:
        raise NotImplementedError

    def cmd(self, *argv, cwd=None) -> dict:
        return {"argv": [str(a) for a in argv], "cwd": str(cwd) if cwd else None, "env": self.env}


class Restic(Tool):
    def __init__(self, name, base):
        super().__init__(name, base)
        self.env.update(RESTIC_PASSWORD=RESTIC_PASSWORD, RESTIC_CACHE_DIR=str(base / "cache"),
                        RESTIC_REPOSITORY=str(self.store))
        self.env.pop("RESTIC_PASSWORD_FILE", None)

    def available(self):
        return None if shutil.which("restic") else "restic not found"

    def version(self):
        return subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        return [self.cmd("restic", "init", "--repository-version", "2")]

    def ingest(self, delivery, label):
        return [self.cmd("restic", "backup", "--compression", "auto", "--host", "bench",
                         "--tag", label, str(delivery))]

    def restore(self, label, dest):
        return [self.cmd("restic", "restore", "latest", "--tag", label, "--target", str(dest))]

    def restored_root(self, dest, delivery):
        return dest / str(delivery.resolve()).lstrip("/")

    def check(self):
        return [self.cmd("restic", "check", "--read-data")]


class Borg(Tool):
    def __init__(self, name, base):
        super().__init__(name, base)
        self.compression = BORG_COMPRESSION[name]
        self.env.update(BORG_BASE_DIR=str(base / "borgbase"),
                        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                        BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        for k in ("BORG_REPO", "BORG_PASSPHRASE", "BORG_PASSCOMMAND"):
            self.env.pop(k, None)

    def available(self):
        return None if shutil.which("borg") else "borg not found"

    def version(self):
        return subprocess.run(["borg", "--version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        return [self.cmd("borg", "init", "-e", "none", str(self.store))]

    def ingest(self, delivery, label):
        # archive paths relative to the delivery root
        return [self.cmd("borg", "create", "--compression", self.compression,
                         f"{self.store}::{label}", ".", cwd=delivery)]

    def restore(self, label, dest):
        dest.mkdir(parents=True, exist_ok=True)
        return [self.cmd("borg", "extract", f"{self.store}::{label}", cwd=dest)]

    def check(self):
        return [self.cmd("borg", "check", "--verify-data", str(self.store))]


class ArchiveStore(Tool):
    """Through its CLI: python -m archivestore ... with the repo root on PYTHONPATH."""

    def __init__(self, name, base, root: Path, ingest_flags: tuple[str, ...] = ()):
        super().__init__(name, base)
        self.root = root
        self.ingest_flags = ingest_flags
        pp = self.env.get("PYTHONPATH")
        self.env["PYTHONPATH"] = str(root) + (os.pathsep + pp if pp else "")
        # run as installed: pip byte-compiles a package at install (borg's Debian package ships
        # its .pyc too); without them every command would spend ~65 ms compiling sources
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.projects: list[str] = []
        self.launcher = [sys.executable, "-m", "archivestore"]
        self.ingest_json: list[dict] = []

    CLI_MAIN = "import sys; from archivestore.cli import main; sys.argv[0] = 'archive'; sys.exit(main())"

    def available(self):
        # preferred: python -m archivestore (archivestore/__main__.py); fallback:
        # the console-script entry point archivestore.cli:main via python -c
        def probe(code):
            return subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                                  text=True, cwd=tempfile.gettempdir())
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(self.root / "archivestore")],
                       env=self.env, capture_output=True)
        r = probe("import importlib.util as u, sys; sys.exit(0 if u.find_spec('archivestore.__main__') else 3)")
        if r.returncode == 0:
            self.launcher = [sys.executable, "-m", "archivestore"]
            return None
        r2 = probe("from archivestore.cli import main")
        if r2.returncode == 0:
            self.launcher = [sys.executable, "-c", self.CLI_MAIN]
            return None
        err = (r2.stderr.strip().splitlines() or ["?"])[-1]
        return f"archivestore CLI not importable from {self.root} (neither archivestore.__main__ " \
               f"nor archivestore.cli:main): {err}"

    def version(self):
        r = subprocess.run([sys.executable, "-c", "import archivestore; print(archivestore.__version__)"],
                           env=self.env, capture_output=True, text=True, cwd=tempfile.gettempdir())
        return r.stdout.strip()

    def a(self, *argv):
        # cwd outside any checkout: `python -m` puts the cwd first on sys.path,
        # which would shadow PYTHONPATH when run from another worktree
        return self.cmd(*self.launcher, *argv, cwd=self.base)

    def init(self):
        return [self.a("init", "--store", self.store)]

    def ingest(self, delivery, label):
        self.projects = sorted(p.name for p in delivery.iterdir() if p.is_dir())
        # one command per delivery, as for restic and borg: every project folder in one run
        return [self.a("ingest", *[delivery / p for p in self.projects], "--store", self.store,
                       *self.ingest_flags, "--json")]

    def restore(self, label, dest):
        dest.mkdir(parents=True, exist_ok=True)
        return [self.a("restore", "--all", "--store", self.store, "--to", dest, "--json")]

    def check(self):
        return [self.a("fsck", "--read-data", "--store", self.store, "--json")]


def make_tool(name: str, base: Path, as_root: Path) -> Tool:
    if name == "restic":
        return Restic(name, base)
    if name in BORG_COMPRESSION:
        return Borg(name, base)
    if name == "archivestore":
        return ArchiveStore(name, base, as_root)
    if name == "archivestore-zstd":
        return ArchiveStore(name, base, as_root, ingest_flags=("--no-audio-codec",))
    if name == "archivestore-noverify":
        return ArchiveStore(name, base, as_root, ingest_flags=("--no-verify-codec",))
    raise SystemExit(f"unknown tool {name!r}; choose from {','.join(ALL_TOOLS + EXTRA_TOOLS)}")


def _parse_json_lines(outs: list[str]) -> list:
    res = []
    for s in outs:
        s = s.strip()
        if not s:
            continue
        try:
            res.append(json.loads(s))
        except json.JSONDecodeError:
            # tolerate one JSON object per line or trailing noise
            for line in s.splitlines():
                try:
                    res.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return res


# ----------------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------------

def bench_tool(tool: Tool, d1: Path, d2: Path, logical: dict, keep: bool) -> dict:
    logdir = tool.base / "logs"
    if tool.base.exists():
        shutil.rmtree(tool.base)
    logdir.mkdir(parents=True)
    res = {"version": tool.version(), "steps": {}, "ok": True, "error": None}
    print(f"\n== {tool.name}  ({res['version'].splitlines()[0] if res['version'] else ''})", flush=True)
    try:
        run_measured(tool.init(), logdir, "init")
        prev_disk = tree_bytes(tool.store)[1]
        restore_dir = tool.base / "restore"
        for step in STEPS:
            if step in ("ingest1", "ingest2"):
                src = d1 if step == "ingest1" else d2
                warm(src)
                cmds = tool.ingest(src, "d1" if step == "ingest1" else "d2")
                nbytes = logical[step]
            elif step == "restore":
                warm(tool.store)
                if restore_dir.exists():
                    shutil.rmtree(restore_dir)
                restore_dir.mkdir()
                cmds = tool.restore("d2", restore_dir)
                nbytes = logical["delivery2"]
            else:
                warm(tool.store)
                cmds = tool.check()
                nbytes = logical["delivery1"] + logical["delivery2"]
            m = run_measured(cmds, logdir, step)
            app, disk, nfiles = tree_bytes(tool.store)
            r = {"wall_s": round(m["wall_s"], 3), "mb": nbytes / MB,
                 "mb_s": nbytes / MB / m["wall_s"] if m["wall_s"] > 0 else None,
                 "cpu_s": round(m["cpu_s"], 3), "peak_rss_mb": round(m["peak_rss_mb"], 1),
                 "others_cpu_s": round(m["others_cpu_s"], 2), "steal_s": round(m["steal_s"], 2),
                 "page_faults_k": round(m["page_faults"] / 1000, 1),
                 "store_disk_mb": disk / MB, "store_apparent_mb": app / MB, "store_files": nfiles,
                 "growth_mb": (disk - prev_disk) / MB}
            prev_disk = disk
            if step == "check":
                r["mb_s_store"] = disk / MB / m["wall_s"] if m["wall_s"] > 0 else None
            if isinstance(tool, ArchiveStore):
                r["json"] = _parse_json_lines(m["stdout"])
                r["launcher"] = ("python -m archivestore" if "-m" in tool.launcher
                                 else "python -c <archivestore.cli:main>")
                if step in ("ingest1", "ingest2"):
                    bi = sum(j.get("bytes_in", 0) for j in r["json"] if isinstance(j, dict))
                    r["reported_bytes_in"] = bi
                    if bi != nbytes:
                        print(f"   WARNING: archivestore reported bytes_in {bi} != {nbytes} logical bytes",
                              flush=True)
            if step == "restore":
                r["restored_mb"] = tree_bytes(tool.restored_root(restore_dir, d2))[0] / MB
                v = compare_trees(d2, tool.restored_root(restore_dir, d2))
                r["verify"] = v
                if not v["identical"]:
                    res["ok"] = False
                    res["error"] = f"restore differs: {v['n_missing']} missing, {v['n_extra']} extra, " \
                                   f"{v['n_differ']} differ (e.g. {(v['missing'] + v['extra'] + v['differ'])[:3]})"
                if not keep:
                    shutil.rmtree(restore_dir, ignore_errors=True)
            res["steps"][step] = r
            extra = ""
            if r["others_cpu_s"] > 0.25 * r["wall_s"]:
                extra += f"  [other processes used {r['others_cpu_s'] / r['wall_s']:.1f} cores]"
            if step == "restore":
                extra = "  verified identical" if r["verify"]["identical"] else "  RESTORE DIFFERS"
            print(f"   {step:8s} {r['wall_s']:8.2f} s {r['mb_s']:8.1f} MB/s  cpu {r['cpu_s']:7.1f} s  "
                  f"rss {r['peak_rss_mb']:7.1f} MB  store {r['store_disk_mb']:9.1f} MB{extra}", flush=True)
    except StepFailed as e:
        res["ok"] = False
        res["error"] = str(e)
        print(f"   FAILED: {e}", flush=True)
    finally:
        if not keep:
            shutil.rmtree(tool.base, ignore_errors=True)
    return res


def run_tools(tools: list[Tool], d1: Path, d2: Path, logical: dict, repeat: int,
              keep: bool = False) -> dict:
    """{tool name: best_of its `repeat` runs}. Repeats go round the tools, in reverse order
    every other round: this host's speed drifts by more than the differences measured, and a
    tool's runs all in a row would meet one stretch of it; interleaved, every tool meets every
    stretch."""
    runs: dict[str, list] = {t.name: [] for t in tools}
    for rep in range(repeat):
        for tool in (tools if rep % 2 == 0 else tools[::-1]):
            if repeat > 1:
                print(f"\n-- {tool.name} run {rep + 1}/{repeat}", flush=True)
            runs[tool.name].append(bench_tool(tool, d1, d2, logical, keep and rep == repeat - 1))
    return {t.name: best_of(runs[t.name]) for t in tools}


def best_of(runs: list[dict]) -> dict:
    """Per step, the run with the smallest wall time (a shared machine only ever
    makes a step slower).  All runs' wall times are kept in `walls_s`."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    out["ok"] = all(r["ok"] for r in runs)
    out["error"] = next((r["error"] for r in runs if r["error"]), None)
    out["steps"] = {}
    out["repeats"] = len(runs)
    for step in STEPS:
        have = [r["steps"][step] for r in runs if step in r["steps"]]
        if have:
            best = dict(min(have, key=lambda s: s["wall_s"]))
            best["walls_s"] = [s["wall_s"] for s in have]
            out["steps"][step] = best
    return out


def print_table(results: dict) -> str:
    hdr = (f"{'tool':13s} {'step':8s} {'wall s':>8s} {'MB/s':>8s} {'CPU s':>8s} {'RSS MB':>8s} "
           f"{'store MB':>9s} {'growth MB':>9s} {'others':>6s} {'steal':>6s}")
    lines = ["(others: cores used by other processes on the machine during the step; > 0.25 = disturbed."
             " steal: cores the hypervisor took from this VM meanwhile)",
             hdr, "-" * len(hdr)]
    for tname, r in results.items():
        for step in STEPS:
            s = r["steps"].get(step)
            if not s:
                lines.append(f"{tname:13s} {step:8s} {'(failed)' if not r['ok'] else '':>8s}")
                continue
            lines.append(f"{tname:13s} {step:8s} {s['wall_s']:8.2f} {s['mb_s']:8.1f} {s['cpu_s']:8.1f} "
                         f"{s['peak_rss_mb']:8.1f} {s['store_disk_mb']:9.1f} {s['growth_mb']:9.1f} "
                         f"{s['others_cpu_s'] / s['wall_s'] if s['wall_s'] else 0:6.2f} "
                         f"{s.get('steal_s', 0.0) / s['wall_s'] if s['wall_s'] else 0:6.2f}")
        if r.get("error"):
            lines.append(f"{'':13s} ERROR: {r['error'].splitlines()[0]}")
    return "\n".join(lines)


def ratios(results: dict, ref: str = "archivestore") -> dict:
    """ref / other for MB/s per step (>1: ref faster), final store size and peak RSS (<1: ref smaller)."""
    out = {}
    a = results.get(ref)
    if not a or not a["ok"]:
        return out
    for t, r in results.items():
        if t == ref or not r["ok"]:
            continue
        d = {}
        for step in STEPS:
            d[f"{step} MB/s"] = a["steps"][step]["mb_s"] / r["steps"][step]["mb_s"]
        d["store size"] = a["steps"]["check"]["store_disk_mb"] / r["steps"]["check"]["store_disk_mb"]
        d["peak RSS"] = (max(s["peak_rss_mb"] for s in a["steps"].values())
                         / max(s["peak_rss_mb"] for s in r["steps"].values()))
        out[t] = d
    return out


def draw(results: dict, rat: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(11, 5.5))
    if rat:
        cats = list(next(iter(rat.values())).keys())
        others = list(rat)
        w = 0.8 / len(others)
        x = np.arange(len(cats))
        for i, t in enumerate(others):
            vals = [rat[t][c] for c in cats]
            bars = ax.bar(x + (i - (len(others) - 1) / 2) * w, vals, w, label=f"archivestore / {t}")
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, cats)
        ax.set_ylabel("ratio archivestore / other")
        ax.set_title(f"{title}\nMB/s ratios: >1 = archivestore faster;  store size, RSS: <1 = archivestore smaller")
    else:
        ok = {t: r for t, r in results.items() if r["ok"]}
        tools = list(ok)
        w = 0.8 / max(1, len(tools))
        x = np.arange(len(STEPS))
        for i, t in enumerate(tools):
            vals = [ok[t]["steps"][s]["mb_s"] for s in STEPS]
            bars = ax.bar(x + (i - (len(tools) - 1) / 2) * w, vals, w, label=t)
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, STEPS)
        ax.set_ylabel("MB/s")
        ax.set_title(f"{title}\n(archivestore not in this run: absolute MB/s per tool)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def corpus_for(work: Path, size_mb: float, projects: int, seed: int) -> tuple[Path, dict, dict]:
    """The corpus under `work` for these parameters (generated unless a complete one is there):
    its folder, its description, and the logical bytes each step's MB/s is measured over."""
    work.mkdir(parents=True, exist_ok=True)
    cdir = work / f"corpus-{size_mb:g}mb-p{projects}-s{seed}"
    desc = corpus_mod.load_if_matches(cdir, size_mb, projects, seed)
    if desc is None:
        print(f"generating corpus in {cdir} ...", flush=True)
        desc = corpus_mod.generate(cdir, size_mb, projects, seed)
        print(f"   {desc['seconds']} s", flush=True)
    else:
        print(f"reusing corpus {cdir}", flush=True)
    logical = {"delivery1": desc["delivery1"]["bytes"], "delivery2": desc["delivery2"]["bytes"]}
    logical["ingest1"], logical["ingest2"] = logical["delivery1"], logical["delivery2"]
    return cdir, desc, logical


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--size-mb", type=float, default=1000, help="delivery-1 size in MB (10^6 bytes)")
    ap.add_argument("--projects", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "archivestore-bench"),
                    help="corpus (cached, reused if same params) and stores live here")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma list from " + ",".join(ALL_TOOLS + EXTRA_TOOLS))
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each tool N times (fresh store each time); per step keep the fastest run")
    ap.add_argument("--keep", action="store_true", help="keep stores, restores and logs")
    ap.add_argument("--archivestore-root", default=str(REPO_ROOT),
                    help="directory put on PYTHONPATH for `python -m archivestore` (default: this repo)")
    ap.add_argument("--out", default=str(HERE / "out"), help="where compare.json/compare.png go")
    a = ap.parse_args(argv)

    work = Path(a.workdir).resolve()
    cdir, desc, logical = corpus_for(work, a.size_mb, a.projects, a.seed)
    d1, d2 = cdir / "delivery1", cdir / "delivery2"
    new_audio = corpus_mod.new_audio_bytes(desc, cdir)
    print(f"delivery1 {logical['delivery1'] / MB:.1f} MB in {desc['delivery1']['files']} files, "
          f"delivery2 {logical['delivery2'] / MB:.1f} MB in {desc['delivery2']['files']} files; "
          f"new audio in delivery2 {new_audio / MB:.1f} MB", flush=True)

    run_dir = work / f"run-{os.getpid()}"
    results, skipped = {}, {}
    tools = []
    for name in [t.strip() for t in a.tools.split(",") if t.strip()]:
        tool = make_tool(name, run_dir / name, Path(a.archivestore_root).resolve())
        why = tool.available()
        if why:
            print(f"\n== {name}: SKIPPED ({why})", flush=True)
            skipped[name] = why
            continue
        tools.append(tool)
    results = run_tools(tools, d1, d2, logical, a.repeat, a.keep)
    if not a.keep:
        shutil.rmtree(run_dir, ignore_errors=True)

    print()
    table = print_table(results)
    print(table)
    print(f"\ningest2 growth floor: {new_audio / MB:.1f} MB of new audio in delivery2 (uncompressed)")
    rat = ratios(results)
    if rat:
        print("\narchivestore / other  (MB/s: >1 faster; store, RSS: <1 smaller)")
        for t, d in rat.items():
            print(f"  {t:12s} " + "  ".join(f"{k} {v:.2f}" for k, v in d.items()))

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "corpus": {"dir": str(cdir), "params": desc["params"], "delivery1": desc["delivery1"],
                   "delivery2": desc["delivery2"], "generator_version": desc["generator_version"],
                   "delivery2_new_audio_bytes": new_audio},
        "definitions": {
            "MB": "10**6 bytes",
            "ingest1 mb_s": "logical bytes of delivery1 / wall",
            "ingest2 mb_s": "logical bytes of delivery2 / wall",
            "restore mb_s": "logical bytes of delivery2 (= restored bytes) / wall",
            "check mb_s": "logical bytes of delivery1 + delivery2 / wall (mb_s_store: store bytes on disk / wall)",
            "cpu_s": "user+sys of the child process(es) from os.wait4",
            "peak_rss_mb": "max ru_maxrss of the child process(es)",
            "page_faults_k": "thousands of page faults (ru_minflt + ru_majflt) of the child "
                             "process(es): memory first touched; unlike time, it does not drift "
                             "with the host",
            "store_disk_mb": "sum of st_blocks*512 over the store dir after the step (restic/borg caches excluded)",
            "delivery2_new_audio_bytes": "new takes + new bounce + punched range + appended frames: "
                                         "floor for ingest2 growth before compression",
            "warm-up": "source files read once before ingest; store files read once before restore/check",
        },
        "tools": results, "skipped": skipped, "ratios_archivestore_over_other": rat,
    }
    (out / "compare.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    draw(results, rat, out / "compare.png",
         f"{desc['delivery1']['bytes'] / MB:.0f} MB corpus, {a.projects} projects, seed {a.seed}")
    print(f"\nwrote {out / 'compare.json'} and {out / 'compare.png'}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
