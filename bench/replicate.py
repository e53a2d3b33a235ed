"""Replication throughput: MB/s to a local folder and to an SFTP remote (real sshd + rclone).

    python bench/replicate.py [--mb 300] [--work /tmp/bench-replicate]

Generates ~MB of 24-bit WAVs (tones over noise, so the PCM codec cannot shrink them much),
ingests them, replicates to a local folder and to `rclone:mysftp:` on an OpenSSH server started
on 127.0.0.1, checks both replicas restore byte-identically, and prints MB/s (bytes of packs
moved per second of wall time, verification included).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import sshd  # noqa: E402
from tests.conftest import make_tracks  # noqa: E402


def archive(*args, env=None) -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    p = subprocess.run([sys.executable, "-m", "archivestore", *map(str, args), "--json"],
                       capture_output=True, text=True, env=e)
    if p.returncode != 0:
        raise SystemExit(f"archive {args[0]} failed: {p.stderr}")
    return json.loads(p.stdout)


def same_tree(a: Path, b: Path) -> bool:
    return subprocess.run(["diff", "-r", str(a), str(b)], capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--work", default="/tmp/bench-replicate")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {"XDG_CACHE_HOME": str(work / "cache")}
    os.environ.update(env)
    seconds = 60.0  # one 60 s mono 24-bit track = 8.64 MB
    n = max(1, round(a.mb * 1e6 / (48000 * 3 * seconds)))
    make_tracks(work / "Session" / "Audio Files", n=n, seconds=seconds, seed=11)
    src = work / "store"
    archive("init", "--store", src)
    ing = archive("ingest", work / "Session", "--store", src, "-q")
    print(f"ingested {ing['bytes_in'] / 1e6:.0f} MB in {n} WAVs, stored {ing['bytes_stored'] / 1e6:.0f} MB")
    results = {}
    t = time.monotonic()
    loc = archive("replicate", "--store", src, "--to", work / "local-replica", "--init", "-q")
    results["local folder"] = (loc["bytes_copied"], time.monotonic() - t)
    with sshd.sftp_server(work / "ssh") as sftp_env:
        os.environ.update(sftp_env)
        url = f"rclone:mysftp:{work / 'sftp-replica'}"
        t = time.monotonic()
        rem = archive("replicate", "--store", src, "--to", url, "--init", "-q")
        results["SFTP (rclone, sshd on 127.0.0.1)"] = (rem["bytes_copied"], time.monotonic() - t)
        shutil.rmtree(work / "cache")
        archive("restore", "Session", "--store", url, "--to", work / "r-sftp", "-q")
        assert same_tree(work / "Session", work / "r-sftp"), "SFTP replica restore differs"
    archive("restore", "Session", "--store", work / "local-replica", "--to", work / "r-local", "-q")
    assert same_tree(work / "Session", work / "r-local"), "local replica restore differs"
    for name, (nbytes, secs) in results.items():
        print(f"replicate to {name}: {nbytes / 1e6:.0f} MB in {secs:.1f} s = {nbytes / 1e6 / secs:.0f} MB/s")
    print("both replicas restored byte-identically")


if __name__ == "__main__":
    main()
