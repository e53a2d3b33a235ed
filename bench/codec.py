"""Benchmark the PCM codec against flac -5, zstd -3 and (for float) wavpack.

    python bench/codec.py [--seconds 30] [--chunk 1048576]

Prints a table and writes bench/out/codec.json. Speeds are single-threaded CPU time (best of
--reps, so that a busy shared machine distorts them less), counted in input PCM bytes per
second; ours is measured on store-sized chunks (frame aligned), flac/wavpack by the CPU time of
the command-line tools on a WAV file (including their file I/O and process start-up).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import zstandard

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from archivestore import _pcm  # noqa: E402
from signals import music, quantize  # noqa: E402
from tests.audio_helpers import pcm_bytes, write_wav  # noqa: E402

FORMATS = [  # name, bits, channels, float
    ("16-bit mono", 16, 1, False),
    ("16-bit stereo", 16, 2, False),
    ("24-bit mono", 24, 1, False),
    ("24-bit stereo", 24, 2, False),
    ("32-bit float stereo", 32, 2, True),
]


def _best(fn, reps):
    """Best-of-reps CPU seconds of fn() in this process (robust on a shared machine)."""
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _tool(cmd, reps=3):
    """Best-of-reps CPU seconds (user + system) of an external command."""
    best = float("inf")
    for _ in range(reps):
        t = _child_cpu()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, _child_cpu() - t)
    return best


def run(seconds: float, chunk: int, reps: int) -> list[dict]:
    rows = []
    zc = zstandard.ZstdCompressor(level=3)
    with tempfile.TemporaryDirectory() as d:
        for name, bits, ch, flt in FORMATS:
            x = music(seconds, ch, seed=bits + ch)
            if flt:
                s = x.astype(np.float32)
                data = s.tobytes()
            else:
                s = quantize(x, bits)
                data = pcm_bytes(s, bits)
            align = ch * bits // 8
            step = chunk - chunk % align
            chunks = [data[i:i + step] for i in range(0, len(data), step)]
            enc = [None] * len(chunks)

            def do_enc():
                for i, c in enumerate(chunks):
                    enc[i] = _pcm.encode(c, bits, ch, False, flt)

            def do_dec():
                for c, p in zip(chunks, enc):
                    _pcm.decode(p, len(c))

            t_enc = _best(do_enc, reps)
            t_dec = _best(do_dec, reps)
            for c, p in zip(chunks, enc):
                assert _pcm.decode(p, len(c)) == c
            ours = sum(len(p) for p in enc)
            zs = sum(len(zc.compress(c)) for c in chunks)
            wav = os.path.join(d, "in.wav")
            write_wav(wav, s, 48000, bits, float=flt)
            row = {"format": name, "pcm_bytes": len(data), "ours_bytes": ours, "zstd3_bytes": zs,
                   "ours_ratio": ours / len(data), "zstd3_ratio": zs / len(data),
                   "ours_enc_MBps": len(data) / t_enc / 1e6, "ours_dec_MBps": len(data) / t_dec / 1e6}
            if not flt:
                out = os.path.join(d, "o.flac")
                t = _tool(["flac", "-5", "-f", "-s", "--no-padding", "--no-seektable", "-o", out, wav], reps)
                fsize = os.path.getsize(out)
                td = _tool(["flac", "-d", "-f", "-s", "-o", os.path.join(d, "d.wav"), out], reps)
                row.update(ref="flac -5", ref_bytes=fsize, ref_ratio=fsize / len(data),
                           ref_enc_MBps=len(data) / t / 1e6, ref_dec_MBps=len(data) / td / 1e6)
            else:
                out = os.path.join(d, "o.wv")
                t = _tool(["wavpack", "-q", "-y", "-o", out, wav], reps)
                fsize = os.path.getsize(out)
                td = _tool(["wvunpack", "-q", "-y", "-o", os.path.join(d, "d.wav"), out], reps)
                row.update(ref="wavpack", ref_bytes=fsize, ref_ratio=fsize / len(data),
                           ref_enc_MBps=len(data) / t / 1e6, ref_dec_MBps=len(data) / td / 1e6)
            row["ours_vs_ref"] = ours / row["ref_bytes"]
            rows.append(row)
            print(f"{name:20s} ours {row['ours_ratio']:.4f}  {row['ref']} {row['ref_ratio']:.4f}  "
                  f"zstd {row['zstd3_ratio']:.4f}  ours/ref {row['ours_vs_ref']:.4f}  "
                  f"enc {row['ours_enc_MBps']:7.1f} MB/s  dec {row['ours_dec_MBps']:7.1f} MB/s  "
                  f"ref enc {row['ref_enc_MBps']:6.1f} dec {row['ref_dec_MBps']:6.1f}", flush=True)
    return rows


SOX_CASES = {  # name: sox arguments after `sox -n` (output file goes where {o} is)
    "pink noise 16/2": "-r 44100 -b 16 -c 2 {o} synth 10 pinknoise vol 0.3",
    "sine 24/1": "-r 48000 -b 24 {o} synth 10 sine 440 vol 0.5",
    "quiet dithered 16/2": "-r 48000 -b 16 -c 2 {o} synth 10 sine 1000 vol 0.001 dither",
    "square 16/1": "-r 44100 -b 16 {o} synth 10 square 100 vol 0.5",
    "sweep 24/2 96k": "-r 96000 -b 24 -c 2 {o} synth 10 sine 20-20000 vol 0.7",
    "brown noise 24/1": "-r 48000 -b 24 {o} synth 10 brownnoise vol 0.5",
    "plucks 16/2": "-r 44100 -b 16 -c 2 {o} synth 10 pluck C3 pluck E3 vol 0.5",
}


def run_sox(chunk: int) -> list[dict]:
    """Sizes only, ours vs flac -5, on sox-synthesised files (probed with audio.probe)."""
    from archivestore import audio

    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, args in SOX_CASES.items():
            wav = os.path.join(d, "s.wav")
            subprocess.run(["sox", "-n", *args.format(o=wav).split()], check=True)
            with open(wav, "rb") as f:
                b = f.read()
                info = audio.probe(f, len(b))
            data = b[info.data_offset:info.data_offset + info.data_length]
            step = chunk - chunk % info.block_align
            ours = sum(len(_pcm.encode(data[i:i + step], *info.pcm_format))
                       for i in range(0, len(data), step))
            out = os.path.join(d, "s.flac")
            subprocess.run(["flac", "-5", "-f", "-s", "--no-padding", "--no-seektable", "-o", out,
                            wav], check=True, capture_output=True)
            fl = os.path.getsize(out)
            row = {"signal": name, "pcm_bytes": len(data), "ours_ratio": ours / len(data),
                   "flac5_ratio": fl / len(data), "ours_vs_flac": ours / fl}
            rows.append(row)
            print(f"{name:22s} ours {row['ours_ratio']:.4f}  flac -5 {row['flac5_ratio']:.4f}  "
                  f"ours/flac {row['ours_vs_flac']:.4f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    rows = run(a.seconds, a.chunk, a.reps)
    print()
    sox_rows = run_sox(a.chunk)
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "codec.json").write_text(json.dumps(
        {"seconds": a.seconds, "chunk": a.chunk, "rows": rows, "sox": sox_rows}, indent=1))


if __name__ == "__main__":
    main()
