"""Codec speed, two builds interleaved: each round runs every tree's child process in turn
(alternating the order), a child timing encode / decode / verify (CPU time, the best of REPS
passes) over NCHUNK frame-aligned 4 MiB chunks of real recordings, one from each file in turn,
from a third of the way into its PCM data.

    python bench/codec_ab.py run ROUNDS TREE_A TREE_B    (TREE: a built worktree)

Environment: CORPUS (a glob of WAV/BWF files), NCHUNK (16), REPS (2), FEATS (e.g. 110: the
_cpu_features() switches avx2, bmi2, avx512 to use in each child).
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import time

CORPUS = os.environ.get("CORPUS", "/tmp/archivestore-bench/corpus-1000mb-p3-s1/delivery1/*/Audio Files/*.wav")
CHUNK = 4 << 20
NCHUNK = int(os.environ.get("NCHUNK", "16"))

def chunks():
    from archivestore import audio
    files = sorted(glob.glob(CORPUS))
    out = []
    # take one chunk from the middle of each file, round robin, until NCHUNK
    infos = []
    for f in files:
        with open(f, "rb") as fh:
            info = audio.probe(fh, os.path.getsize(f))
        if info and not info.is_float:
            infos.append((f, info))
    i = 0
    while len(out) < NCHUNK and i < 10 * NCHUNK:
        f, info = infos[i % len(infos)]
        rnd = i // len(infos)
        size = CHUNK - CHUNK % info.block_align
        off = info.data_offset + ((info.data_length // 3 + rnd * size) // info.block_align) * info.block_align
        if off + size <= info.data_offset + info.data_length:
            with open(f, "rb") as fh:
                fh.seek(off); d = fh.read(size)
            out.append((d, info.pcm_format))
        i += 1
    return out

def child(tree):
    sys.path.insert(0, tree)
    from archivestore import _pcm
    assert _pcm.__file__.startswith(tree), _pcm.__file__
    if os.environ.get("FEATS"):
        f = [bool(int(c)) for c in os.environ["FEATS"]]; _pcm._cpu_features(*f[:len(_pcm._cpu_features())])
    cs = chunks()
    tot = sum(len(d) for d, _ in cs)
    reps = int(os.environ.get("REPS", "2"))
    res = {"enc": 1e9, "dec": 1e9, "ver": 1e9}
    size = 0
    for _ in range(reps):
        t = time.process_time(); ps = [_pcm.encode(d, *f) for d, f in cs]; res["enc"] = min(res["enc"], time.process_time() - t)
        size = sum(len(p) for p in ps)
        t = time.process_time(); outs = [_pcm.decode(p, len(d)) for p, (d, f) in zip(ps, cs)]; res["dec"] = min(res["dec"], time.process_time() - t)
        assert all(o == d for o, (d, f) in zip(outs, cs))
        del outs
        t = time.process_time(); ok = [_pcm.verify(p, d) for p, (d, f) in zip(ps, cs)]; res["ver"] = min(res["ver"], time.process_time() - t)
        assert all(ok)
    print(json.dumps({"mb": tot / 1e6, "size": size, **{k: tot / 1e6 / v for k, v in res.items()}}))

def run(rounds, trees):
    rs = {t: [] for t in trees}
    for r in range(rounds):
        for t in (trees if r % 2 == 0 else trees[::-1]):
            o = subprocess.run([sys.executable, __file__, "child", t], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if o.returncode:
                print(o.stderr); sys.exit(1)
            rs[t].append(json.loads(o.stdout))
            print(t, rs[t][-1], flush=True)
    for t in trees:
        v = rs[t]
        print(f"{t}: {v[0]['mb']:.1f} MB in, payload {v[0]['size']} bytes ({v[0]['size']/v[0]['mb']/1e4:.3f}%)")
        for k in ("enc", "dec", "ver"):
            xs = [x[k] for x in v]
            print(f"   {k}: median {statistics.median(xs):.1f}  best {max(xs):.1f}  all {[round(x,1) for x in xs]}")

if __name__ == "__main__":
    if sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        run(int(sys.argv[2]), sys.argv[3:])
