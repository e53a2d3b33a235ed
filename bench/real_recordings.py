"""Stored bytes on real recordings from Debian's packages: archivestore vs flac -5, restic, zstd.

Real audio: the drum kits of `hydrogen-drumkits` (677 multi-sampled acoustic and electronic kits,
16/24-bit, mono/stereo; FLAC ones decoded to WAV) and the `alsa-utils` speech samples.

    apt-get install hydrogen-drumkits alsa-utils flac restic
    python bench/real_recordings.py [--workdir /tmp/real] [--archivestore-root .]

Prints a table and writes bench/out/real_recordings.json.
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

SOURCES = [Path("/usr/share/hydrogen/data/drumkits"), Path("/usr/share/sounds/alsa")]


def collect(dst: Path) -> int:
    """Copy every WAV and decode every FLAC of the sources into `dst`; the file count."""
    if dst.exists():
        shutil.rmtree(dst)
    n = 0
    for src in SOURCES:
        for p in sorted(src.rglob("*")):
            if p.suffix.lower() not in (".wav", ".flac"):
                continue
            out = dst / src.name / p.relative_to(src).with_suffix(".wav")
            out.parent.mkdir(parents=True, exist_ok=True)
            if p.suffix.lower() == ".flac":
                if subprocess.run(["flac", "-d", "-s", "-f", "-o", str(out), str(p)]).returncode:
                    continue
            else:
                shutil.copyfile(p, out)
            n += 1
    return n


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def flac_bytes(root: Path, scratch: Path) -> int:
    total = 0
    for p in sorted(root.rglob("*.wav")):
        out = scratch / "x.flac"
        if subprocess.run(["flac", "-5", "-s", "-f", "-o", str(out), str(p)],
                          capture_output=True).returncode == 0:
            total += out.stat().st_size
        else:
            total += p.stat().st_size  # flac cannot store it: count it uncompressed
    return total


def archivestore_bytes(root: Path, store: Path, repo_root: Path, *extra: str) -> tuple[int, float]:
    if store.exists():
        shutil.rmtree(store)
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    cli = [sys.executable, "-m", "archivestore"]
    subprocess.run([*cli, "init", "--store", str(store)], env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    r = subprocess.run([*cli, "ingest", str(root), "--store", str(store), "--json", *extra], env=env,
                       check=True, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    out = json.loads(r.stdout)
    rr = subprocess.run([*cli, "restore", out["project"], "--store", str(store), "--to",
                         str(store.parent / (store.name + "-restored")), "--json"], env=env,
                        capture_output=True, text=True)
    assert rr.returncode == 0 and json.loads(rr.stdout)["ok"], rr.stderr
    shutil.rmtree(store.parent / (store.name + "-restored"))
    return du(store / "packs"), seconds


def restic_bytes(root: Path, repo: Path) -> int:
    if repo.exists():
        shutil.rmtree(repo)
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=str(repo) + "-cache")
    subprocess.run(["restic", "init", "-q", "-r", str(repo)], env=env, check=True)
    subprocess.run(["restic", "-r", str(repo), "backup", "-q", "--compression", "auto", str(root)],
                   env=env, check=True)
    return du(repo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/archivestore-real"))
    ap.add_argument("--archivestore-root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = ap.parse_args()
    if not SOURCES[0].is_dir():
        sys.exit("install hydrogen-drumkits (and alsa-utils) first")
    w = args.workdir
    w.mkdir(parents=True, exist_ok=True)
    root = w / "Recordings"
    files = collect(root)
    wav = du(root)
    ours, secs = archivestore_bytes(root, w / "store", args.archivestore_root)
    zstd_only, _ = archivestore_bytes(root, w / "store-zstd", args.archivestore_root, "--no-audio-codec")
    rows = {"files": files, "wav_bytes": wav, "archivestore": ours, "archivestore_seconds": secs,
            "archivestore_zstd_only": zstd_only, "flac_5": flac_bytes(root, w),
            "restic": restic_bytes(root, w / "restic")}
    print(f"{files} real recordings, {wav / 1e6:.1f} MB of WAV")
    for k in ("archivestore", "archivestore_zstd_only", "flac_5", "restic"):
        print(f"  {k:24s} {rows[k] / 1e6:8.1f} MB  {rows[k] / wav:6.3f} of WAV")
    print(f"  archivestore / flac -5  {ours / rows['flac_5']:.3f}")
    print(f"  archivestore / restic   {ours / rows['restic']:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_recordings.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
