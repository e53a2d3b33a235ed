"""The embedded demo: synthesise a small studio session, archive it, restore it, verify it."""
from __future__ import annotations

import filecmp
import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from .ingest import Ingester
from .restore import Restorer
from .store import Store


def write_wav24(path: Path, samples: np.ndarray, rate: int = 48000, description: str = "") -> None:
    """Write a 24-bit PCM BWF file (bext chunk before fmt/data) from int32 samples (frames, ch)."""
    if samples.ndim == 1:
        samples = samples[:, None]
    frames, ch = samples.shape
    s = samples.astype("<i4").reshape(-1)
    pcm = np.empty((s.size, 3), dtype=np.uint8)
    b = s.view(np.uint8).reshape(-1, 4)
    pcm[:] = b[:, :3]
    data = pcm.tobytes()
    bext = description.encode()[:256].ljust(256, b"\0") + b"archivestore demo".ljust(32, b"\0")
    bext += b"\0" * 32 + b"2026-01-01" + b"12:00:00" + struct.pack("<IIH", 0, 0, 1) + b"\0" * 254
    fmt = struct.pack("<HHIIHH", 1, ch, rate, rate * ch * 3, ch * 3, 24)
    body = (b"WAVE" + b"bext" + struct.pack("<I", len(bext)) + bext
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body) + len(data) + (len(data) & 1)) + body)
        f.write(data)
        if len(data) & 1:
            f.write(b"\0")


def make_session(root: Path, seconds: float = 6.0, seed: int = 7) -> Path:
    """A small session: tracks, a bounce, a session file, notes, an empty folder and a link."""
    rng = np.random.default_rng(seed)
    proj = root / "Demo Session"
    (proj / "Audio Files").mkdir(parents=True)
    (proj / "Bounced Files").mkdir()
    (proj / "Video").mkdir()  # empty on purpose: empty folders come back too
    n = int(48000 * seconds)
    t = np.arange(n) / 48000
    floor = rng.normal(0, 2 ** 23 * 10 ** (-84 / 20), n)
    tracks = {
        "Kick.wav": np.sin(2 * np.pi * 55 * t) * np.exp(-((t % 0.5) * 12)) * 0.6,
        "Bass.wav": np.sin(2 * np.pi * 41.2 * t) * 0.3 * (1 + 0.2 * np.sin(2 * np.pi * 0.5 * t)),
        "Vox Take 3.wav": np.sin(2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 5 * t)) * 0.2
                          * (np.sin(2 * np.pi * 0.25 * t) > 0),
    }
    mix = np.zeros(n)
    for name, sig in tracks.items():
        x = np.clip(sig * 2 ** 23 + floor, -2 ** 23, 2 ** 23 - 1).astype(np.int32)
        write_wav24(proj / "Audio Files" / name, x, description=f"{name[:-4]} recorded in Room A")
        mix += sig
    stereo = np.stack([mix * 0.5, mix * 0.45], axis=1) * 2 ** 23
    write_wav24(proj / "Bounced Files" / "Demo Mix.wav", np.clip(stereo, -2 ** 23, 2 ** 23 - 1).astype(np.int32))
    (proj / "Demo Session.ptx").write_bytes(rng.integers(0, 16, 200_000, dtype=np.uint8).tobytes())
    (proj / "Notes — mix v1.txt").write_text("Vocals up 1 dB in the chorus.\n", encoding="utf-8")
    os.symlink("Bounced Files/Demo Mix.wav", proj / "Latest Mix.wav")
    return proj


def run_demo(store_path: Path | None = None, progress=None) -> dict:
    """Create (or reuse) a store, ingest a generated session twice, restore it and compare."""
    work = Path(tempfile.mkdtemp(prefix="archivestore-demo-"))
    store_path = Path(store_path) if store_path else work / "store"
    t0 = time.monotonic()
    src = make_session(work / "src")
    store = Store.open(store_path) if (store_path / "config.json").exists() else Store.init(store_path)
    with store:
        first = Ingester(store, progress=progress).ingest(src)
        (src / "Notes — mix v1.txt").write_text("Vocals up 1.5 dB in the chorus.\n", encoding="utf-8")
        second = Ingester(store, progress=progress).ingest(src)
        dest = work / "restored"
        res = Restorer(store, progress=progress).restore(first.project, dest)
    cmp = filecmp.dircmp(src, dest)
    same = _same_tree(src, dest)
    return {"store": str(store_path), "source": str(src), "restored_to": str(dest),
            "project": first.project, "versions": [first.version, second.version],
            "bytes_in": first.bytes_in, "bytes_stored_v1": first.bytes_stored,
            "bytes_new_v2": second.bytes_new, "files_restored": res.files,
            "verified": res.ok and same and not cmp.diff_files, "seconds": round(time.monotonic() - t0, 2)}


def _same_tree(a: Path, b: Path) -> bool:
    for dirpath, dirs, files in os.walk(a):
        rel = os.path.relpath(dirpath, a)
        for name in files + dirs:
            pa, pb = os.path.join(dirpath, name), os.path.join(b, rel, name)
            if os.path.islink(pa):
                if not os.path.islink(pb) or os.readlink(pa) != os.readlink(pb):
                    return False
            elif os.path.isfile(pa):
                if not os.path.isfile(pb) or not filecmp.cmp(pa, pb, shallow=False):
                    return False
            elif not os.path.isdir(pb):
                return False
    return True
