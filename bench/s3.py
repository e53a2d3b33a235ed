"""archivestore vs restic on the same S3 server: a Ceph RADOS Gateway started on 127.0.0.1.

Both tools ingest the same folder (random takes: incompressible, no dedup inside) into their own
bucket through their CLIs, then restore it into an empty folder; archivestore's restore runs from
an empty cache (index rebuilt from the bucket's segments) and the output is compared byte for
byte. Client and server share this machine's cores, so the figures are a lower bound.

    python bench/s3.py --mb 512
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ceph_rgw import CephRGW  # noqa: E402


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    return time.perf_counter() - t0


def same_tree(a: Path, b: Path) -> bool:
    c = filecmp.dircmp(a, b)
    return not (c.left_only or c.right_only or c.diff_files) and all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in c.common_files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--dir", default="/tmp/archivestore-s3bench")
    a = ap.parse_args()
    d = Path(a.dir)
    shutil.rmtree(d, ignore_errors=True)
    src = d / "Session"
    src.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(max(1, a.mb // 64)):
        (src / f"take{i:02d}.wav.raw").write_bytes(rng.bytes(64 << 20))
    size = sum(f.stat().st_size for f in src.iterdir())
    rgw = CephRGW(d / "ceph", store_mb=max(4096, a.mb * 8))
    env = dict(os.environ, **rgw.start(), PYTHONPATH=str(ROOT), RESTIC_PASSWORD="bench")
    try:
        import boto3
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
        s3.create_bucket(Bucket="restic-bench")
        arch = [sys.executable, "-m", "archivestore"]
        url = "s3://archive-bench/studio"
        e1 = dict(env, XDG_CACHE_HOME=str(d / "cache-writer"))
        timed(arch + ["init", "--store", url], e1)
        t_ing = timed(arch + ["ingest", str(src), "--store", url, "--quiet"], e1)
        e2 = dict(env, XDG_CACHE_HOME=str(d / "cache-reader"))
        t_res = timed(arch + ["restore", "Session", "--to", str(d / "out-arch"), "--store", url], e2)
        t_res_warm = timed(arch + ["restore", "Session", "--to", str(d / "out-arch2"), "--store", url], e2)
        assert same_tree(src, d / "out-arch") and same_tree(src, d / "out-arch2")

        repo = f"s3:{env['AWS_ENDPOINT_URL']}/restic-bench"
        timed(["restic", "-r", repo, "init"], env)
        t_rbk = timed(["restic", "-r", repo, "backup", "--quiet", "--no-cache", str(src)], env)
        t_rrs = timed(["restic", "-r", repo, "restore", "latest", "--no-cache", "--target",
                       str(d / "out-restic")], env)
        assert same_tree(src, d / "out-restic" / src.relative_to("/"))
        mb = size / 1e6
        out = {"mb": round(mb), "archivestore": {"ingest_mb_s": round(mb / t_ing, 1),
                                                 "restore_cold_cache_mb_s": round(mb / t_res, 1),
                                                 "restore_warm_cache_mb_s": round(mb / t_res_warm, 1)},
               "restic": {"backup_mb_s": round(mb / t_rbk, 1), "restore_mb_s": round(mb / t_rrs, 1)},
               "restic_version": subprocess.run(["restic", "version"], capture_output=True,
                                                text=True).stdout.strip()}
        print(json.dumps(out, indent=2))
    finally:
        rgw.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
