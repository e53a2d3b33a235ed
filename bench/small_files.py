"""Many small files: archivestore vs restic and borg on session folders full of fades.

    python bench/small_files.py [--files 10000] [--projects 2] [--repeat 2] [--tools ...]

A Pro Tools session keeps a "Fade Files" folder of thousands of files of a few KiB, and
waveform caches and plug-in presets are much the same; where per-file work dominates, the
overheads of threads, system calls and crash-safe writes decide the speed, not the codecs. The
corpus (seeded): per project `--files` files of 1-20 KB in folders of 200 (a third short WAV
fades, the rest binary), a few presets of 100-600 KB, one 3 MB bounce. Delivery 2 has 5% of the
small files rewritten and 2% new. The steps, tools, measurements and table are
bench/compare.py's (same definitions, page cache warmed the same way for every tool).
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import compare  # noqa: E402  (the harness: tools, steps, measurement, table)


def _wav(rng: np.random.Generator, frames: int) -> bytes:
    x = (rng.normal(0, 2000, frames) * np.linspace(1, 0, frames)).astype("<i4")
    data = x.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 48000, 48000 * 3, 3, 24)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", len(data)) + data)


def _small(rng: np.random.Generator, i: int) -> bytes:
    if i % 3 == 0:
        return _wav(rng, int(rng.integers(300, 6000)))
    return rng.bytes(int(rng.integers(1000, 20000)))


def generate(root: Path, files: int, projects: int, seed: int) -> None:
    """delivery1 and delivery2 under root."""
    rng = np.random.default_rng(seed)
    d1, d2 = root / "delivery1", root / "delivery2"
    for p in range(projects):
        proj = d1 / f"Session {p + 1}"
        for i in range(files):
            f = proj / "Fade Files" / f"{i // 200:03d}" / f"fade_{i:05d}.{'wav' if i % 3 == 0 else 'bin'}"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(_small(rng, i))
        (proj / "Presets").mkdir()
        for i in range(8):
            (proj / "Presets" / f"preset_{i}.bin").write_bytes(rng.bytes(int(rng.integers(100_000, 600_000))))
        (proj / "Bounced Files").mkdir()
        (proj / "Bounced Files" / "mix.wav").write_bytes(_wav(rng, 1_000_000))
    shutil.copytree(d1, d2)
    for proj in sorted(d2.iterdir()):
        smalls = sorted((proj / "Fade Files").rglob("fade_*"))
        for f in smalls[:: 20]:
            f.write_bytes(_small(rng, 1))
        for i in range(len(smalls) // 50):
            (proj / "Fade Files" / "new").mkdir(exist_ok=True)
            (proj / "Fade Files" / "new" / f"fade_new_{i:05d}.bin").write_bytes(_small(rng, 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10000, help="small files per project")
    ap.add_argument("--projects", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tools", default="archivestore,restic,borg-zstd3")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "archivestore-bench-small"))
    a = ap.parse_args(argv)
    work = Path(a.workdir)
    corpus = work / f"corpus-f{a.files}-p{a.projects}-s{a.seed}"
    if not (corpus / "done").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        print(f"generating {a.projects} x {a.files} small files in {corpus} ...", flush=True)
        generate(corpus, a.files, a.projects, a.seed)
        (corpus / "done").write_text("")
    d1, d2 = corpus / "delivery1", corpus / "delivery2"
    logical = {"delivery1": compare.tree_bytes(d1)[0], "delivery2": compare.tree_bytes(d2)[0]}
    logical["ingest1"], logical["ingest2"] = logical["delivery1"], logical["delivery2"]
    nfiles = sum(1 for p in d1.rglob("*") if p.is_file())
    print(f"delivery1 {logical['delivery1'] / compare.MB:.1f} MB in {nfiles} files", flush=True)
    tools = []
    for name in a.tools.split(","):
        t = compare.make_tool(name.strip(), work / "run" / name.strip(), compare.REPO_ROOT)
        why = t.available()
        if why:
            print(f"== {name}: SKIPPED ({why})")
            continue
        tools.append(t)
    results = compare.run_tools(tools, d1, d2, logical, a.repeat)
    print()
    print(compare.print_table(results))
    for t, d in compare.ratios(results).items():
        print(f"  {t:12s} " + "  ".join(f"{k} {v:.2f}" for k, v in d.items()))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
