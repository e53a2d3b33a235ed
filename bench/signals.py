"""Synthetic but realistic studio audio for codec tests and benchmarks (numpy only).

Tonal phrases (harmonic notes with envelopes and vibrato) and drum-like transients (decaying
noise bursts and pitched kicks) over an independent noise floor around -84 dBFS per channel.
"""
from __future__ import annotations

import numpy as np


def music(seconds: float, channels: int = 1, rate: int = 48000, seed: int = 0,
          floor_db: float = -84.0) -> np.ndarray:
    """Float64 samples in [-1, 1], shape (frames, channels)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    mono = np.zeros(n)
    # tonal phrases
    pos = 0
    while pos < n:
        dur = int(rng.uniform(0.25, 1.2) * rate)
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        seg = t[: min(dur, n - pos)]
        vib = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * seg)
        phase = 2 * np.pi * f0 * np.cumsum(vib) / rate
        env = (1 - np.exp(-seg / 0.01)) * np.exp(-seg / rng.uniform(0.2, 0.8))
        note = np.zeros_like(seg)
        for h in range(1, 9):
            if f0 * h < rate / 2.2:
                note += rng.uniform(0.3, 1.0) / h ** 1.5 * np.sin(h * phase + rng.uniform(0, 6.28))
        mono[pos:pos + len(seg)] += 0.25 * env * note
        pos += int(dur * rng.uniform(0.6, 1.0))
    # drums
    pos = int(rng.uniform(0, 0.1) * rate)
    while pos < n:
        m = min(int(0.4 * rate), n - pos)
        seg = t[:m]
        if rng.random() < 0.5:  # snare/hat: filtered noise burst
            noise = rng.standard_normal(m)
            a = rng.uniform(0.2, 0.9)
            filt = np.convolve(noise, a ** np.arange(32) * (1 - a), mode="same")
            hit = 0.3 * filt * np.exp(-seg / rng.uniform(0.02, 0.08))
        else:  # kick: decaying pitch sweep
            f = 50 + 120 * np.exp(-seg / 0.03)
            hit = 0.5 * np.sin(2 * np.pi * np.cumsum(f) / rate) * np.exp(-seg / 0.15)
        mono[pos:pos + m] += hit
        pos += int(rng.choice([0.25, 0.5]) * rate)
    out = np.empty((n, channels))
    floor = 10 ** (floor_db / 20)
    for c in range(channels):
        gain = 1.0 if channels == 1 else rng.uniform(0.7, 1.0)
        delay = 0 if c == 0 else int(rng.integers(0, 24))
        sig = np.roll(mono, delay) * gain
        out[:, c] = sig + rng.normal(0, floor, n)
    return np.clip(out, -1.0, 1.0)


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Float [-1, 1] to signed integers of `bits`."""
    lim = 1 << (bits - 1)
    return np.clip(np.round(x * lim), -lim, lim - 1).astype(np.int64)
