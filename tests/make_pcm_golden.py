"""Write the frozen payloads of a payload format version (only when a new version appears!).

    python tests/make_pcm_golden.py [VERSION] [--force]

Version 1 goes to tests/data/pcm_golden.json, version N >= 2 to pcm_golden_vN.json; an
existing file is kept unless --force. Stored payloads live on disk for years: every future
decoder must decode these exactly.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archivestore import _pcm  # noqa: E402
from bench.signals import music, quantize  # noqa: E402
from tests.audio_helpers import pcm_bytes  # noqa: E402


def cases():
    rng = np.random.default_rng(2024)
    m1 = music(0.02, 1, seed=1)
    m2 = music(0.02, 2, seed=2)
    yield "u8 mono music", pcm_bytes(quantize(m1, 8), 8), 8, 1, False, False
    yield "s8 aiff stereo", pcm_bytes(quantize(m2, 8), 8, big_endian=True, unsigned8=False), 8, 2, True, False
    yield "s16le stereo music", pcm_bytes(quantize(m2, 16), 16), 16, 2, False, False
    yield "s24be mono music", pcm_bytes(quantize(m1, 24), 24, big_endian=True), 24, 1, True, False
    yield "s32le 3ch walk", pcm_bytes(np.cumsum(rng.integers(-9999, 9999, (300, 3)), axis=0), 32), 32, 3, False, False
    sil = np.zeros((4100, 1), dtype=np.int64)
    sil[4096:] = 5
    yield "s16 two blocks const", pcm_bytes(sil, 16), 16, 1, False, False
    yield "s24 wasted bits", pcm_bytes(quantize(m1, 24) & ~0xFF, 24), 24, 1, False, False
    yield "s16 noise verbatim", pcm_bytes(rng.integers(-32768, 32768, (200, 1)), 16), 16, 1, False, False
    yield "f32 mode2 stereo", m2.astype("<f4").tobytes(), 32, 2, False, True
    yield "f32be mode1 int24", (quantize(m1, 24) / 2.0 ** 23).astype(">f4").tobytes(), 32, 1, True, True
    sp = np.array([np.nan, np.inf, -0.0, 1e-45, 0.5] * 20, dtype="<f4")
    yield "f32 mode0 specials", sp.tobytes(), 32, 1, False, True


def golden_path(version: int) -> Path:
    name = "pcm_golden.json" if version == 1 else f"pcm_golden_v{version}.json"
    return Path(__file__).resolve().parent / "data" / name


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--force"]
    version = int(args[0]) if args else _pcm.FORMAT_VERSION
    path = golden_path(version)
    if path.exists() and "--force" not in sys.argv:
        sys.exit(f"{path} exists: frozen payloads are not rewritten (--force to do it anyway)")
    out = []
    for name, data, bits, ch, be, flt in cases():
        p = _pcm.encode(data, bits, ch, be, flt, version=version)
        assert p[0] == version
        assert _pcm.decode(p, len(data)) == data
        out.append({"name": name, "bits": bits, "channels": ch, "big_endian": be, "float": flt,
                    "plain_len": len(data), "plain_sha256": hashlib.sha256(data).hexdigest(),
                    "payload": p.hex()})
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(out)} payloads, {sum(len(o['payload']) // 2 for o in out)} bytes, to {path}")


if __name__ == "__main__":
    main()
