"""_pcm codec: bit-exact round trips for every format, and hostile payloads."""
from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archivestore import _pcm
from bench.signals import music, quantize
from tests.audio_helpers import pcm_bytes

INT_FORMATS = [(b, be) for b in (8, 16, 24, 32) for be in (False, True)]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# run-time clones as _cpu_features(avx2, bmi2, avx512) (one the CPU lacks stays off; the AVX-512
# ones run only with AVX2 and BMI2 on)
FEATURE_SETS = [(False, False, False), (True, False, False), (False, True, False),
                (True, True, False), (True, True, True)]
# writers: the same, with both AVX2 version 2 writers (fast_pext off: vector prefix sums; on:
# pext packing, forced on wherever the CPU has pext)
WRITER_SETS = [(False, False, False, False), (True, False, False, False), (False, True, False, False),
               (True, True, False, False), (True, True, False, True), (True, True, True, True)]


def roundtrip(data: bytes, bits: int, ch: int, be: bool, flt: bool = False) -> bytes:
    p = _pcm.encode(data, bits, ch, be, flt)
    assert p is not None
    assert p == _pcm.encode(data, bits, ch, be, flt)  # deterministic
    out = _pcm.decode(p, len(data))
    assert out == data
    assert _pcm.verify(p, data) is True
    return p


def _verify_rejects_changes(p: bytes, data: bytes) -> None:
    """verify() compares every byte: flipping the first, a middle or the last byte (and a
    wrong length) of the plain side must make it fail, never raise."""
    n = len(data)
    for i in sorted({0, n // 2, n - 1}) if n else []:
        b = bytearray(data)
        b[i] ^= 1
        assert _pcm.verify(p, bytes(b)) is False
    assert _pcm.verify(p, data + b"\0" * 4) is False
    if n:
        assert _pcm.verify(p, data[:-1]) is False


def _ints(x: np.ndarray, bits: int, be: bool) -> bytes:
    return pcm_bytes(x, bits, big_endian=be, unsigned8=not be)


def _signals(n: int, ch: int, bits: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    sq = np.where((np.arange(n) // 37) % 2 == 0, hi, lo)
    return {
        "noise": rng.integers(lo, hi + 1, size=(n, ch)),
        "silence": np.zeros((n, ch), dtype=np.int64),
        "square": np.repeat(sq[:, None], ch, axis=1),
        "dc": np.full((n, ch), rng.integers(lo, hi + 1)),
        "min": np.full((n, ch), lo),
        "max": np.full((n, ch), hi),
        "alternate": np.where(np.arange(n * ch).reshape(n, ch) % 2 == 0, lo, hi),
        "clipped": np.clip(rng.normal(0, hi, size=(n, ch)), lo, hi).astype(np.int64),
        "music": quantize(music(n / 48000 + 0.001, ch, seed=seed)[:n], bits),
        "quiet": rng.integers(-3, 4, size=(n, ch)),
        "shifted": rng.integers(lo >> 4, (hi >> 4) + 1, size=(n, ch)) << 4,
    }


@pytest.mark.parametrize("bits,be", INT_FORMATS)
@pytest.mark.parametrize("ch", [1, 2, 3, 8])
def test_int_signals(bits, be, ch):
    for n in (1, 2, 7, 4095, 4097):
        for name, x in _signals(n, ch, bits, seed=n).items():
            roundtrip(_ints(x, bits, be), bits, ch, be)


@pytest.mark.parametrize("ch", range(1, 9))
def test_channel_counts_block_edges(ch):
    for n in (4096, 8191, 8192, 8193):
        x = _signals(n, ch, 24, seed=ch)["music"]
        roundtrip(_ints(x, 24, False), 24, ch, False)


@pytest.mark.parametrize("bits,be", INT_FORMATS)
@pytest.mark.parametrize("ch", [1, 2])
def test_grouped_blocks_roundtrip(bits, be, ch):
    """Whole blocks decoded together (four mono or two stereo at a time, then the rest one
    by one), under every clone, in both byte orders."""
    saved = _pcm._cpu_features()
    try:
        for n in (5 * 4096, 5 * 4096 + 17):
            data = _ints(_signals(n, ch, bits, seed=n + ch)["music"], bits, be)
            for feats in FEATURE_SETS:
                _pcm._cpu_features(*feats)
                roundtrip(data, bits, ch, be)
    finally:
        _pcm._cpu_features(*saved)


def test_music_compresses():
    x = quantize(music(2.0, 2, seed=3), 24)
    d = _ints(x, 24, False)
    p = roundtrip(d, 24, 2, False)
    assert len(p) < 0.8 * len(d)
    x = quantize(music(2.0, 1, seed=3), 16)
    d = _ints(x, 16, False)
    assert len(roundtrip(d, 16, 1, False)) < 0.6 * len(d)


def test_silence_is_tiny():
    d = bytes(4 * 48000 * 2)
    assert len(roundtrip(d, 16, 2, False)) < 200


def _float_specials() -> np.ndarray:
    f = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, 3.4e38, -3.4e38,
                  1.0, -1.0, 0.5, 1.17549435e-38], dtype=np.float32)
    odd_nan = np.array([0x7FC00001, 0xFFFFFFFF, 0x7F800001], dtype=np.uint32).view(np.float32)
    return np.concatenate([f, odd_nan])


@pytest.mark.parametrize("be", [False, True])
@pytest.mark.parametrize("ch", [1, 2, 5])
def test_float(be, ch):
    rng = np.random.default_rng(ch)
    dt = ">f4" if be else "<f4"
    for n in (1, 3, 4096, 5000):
        cases = [
            rng.standard_normal((n, ch)),
            music(n / 48000 + 0.001, ch)[:n],  # float mixes: full mantissas
            quantize(music(n / 48000 + 0.001, ch)[:n], 24) / 2.0 ** 23,  # int24 in float
            quantize(music(n / 48000 + 0.001, ch)[:n], 16) / 2.0 ** 15 * 8,
            np.zeros((n, ch)),
            np.full((n, ch), -0.0),
            rng.standard_normal((n, ch)) * 1e-39,  # denormals
        ]
        for x in cases:
            d = x.astype(dt).tobytes()
            roundtrip(d, 32, ch, be, True)
        sp = np.resize(_float_specials(), n * ch).reshape(n, ch)
        roundtrip(sp.astype(dt).tobytes(), 32, ch, be, True)
        mixed = quantize(music(n / 48000 + 0.001, ch)[:n], 24) / 2.0 ** 23
        mixed.reshape(-1)[:: max(1, n // 3)] = -0.0
        roundtrip(mixed.astype(dt).tobytes(), 32, ch, be, True)


def test_int24_in_float_compresses_like_int():
    x = quantize(music(1.0, 2, seed=5), 24)
    f = (x / 2.0 ** 23).astype("<f4").tobytes()
    pi = roundtrip(_ints(x, 24, False), 24, 2, False)
    pf = roundtrip(f, 32, 2, False, True)
    assert len(pf) < len(pi) * 1.02


def test_unsupported_and_bad_lengths():
    assert _pcm.encode(b"\0" * 12, 12, 1, False, False) is None
    assert _pcm.encode(b"\0" * 12, 16, 0, False, False) is None
    assert _pcm.encode(b"\0" * 512, 16, 256, False, False) is None
    assert _pcm.encode(b"\0" * 12, 16, 1, False, True) is None  # float must be 32-bit
    assert _pcm.encode(b"\0" * 13, 16, 1, False, False) is None
    assert _pcm.encode(b"\0" * 12, 24, 3, False, False) is None
    p = roundtrip(b"", 16, 2, False)
    with pytest.raises(ValueError):
        _pcm.decode(p, 4)
    p = _pcm.encode(b"\1\2" * 100, 16, 1, False, False)
    for bad_len in (198, 202, 201, 0, -1, 1 << 40):
        with pytest.raises(ValueError):
            _pcm.decode(p, bad_len)


def test_accepts_buffers():
    a = np.arange(1000, dtype="<i2")
    p = _pcm.encode(memoryview(a), 16, 1, False, False)
    assert _pcm.decode(bytearray(p), 2000) == a.tobytes()


def test_output_larger_than_the_first_guess():
    """The encoder writes into the bytes object it returns, sized len * 9/8 + 4096; floats of
    wildly varying magnitude code larger than that, so it must move to memory of its own and
    still return exactly the payload (decode rejects trailing bytes)."""
    rng = np.random.default_rng(7)
    for n in (50_000, 400_000):
        x = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 5, n))).astype("<f4").tobytes()
        out = _pcm.encode(x, 32, 1, False, True)
        assert len(out) > len(x) * 9 // 8 + 4096
        assert type(out) is bytes and _pcm.decode(out, len(x)) == x
    y = _ints(quantize(music(2.0, 1, seed=3), 24), 24, False)
    out = _pcm.encode(y, 24, 1, False, False)
    assert len(out) < len(y) and _pcm.decode(out, len(y)) == y


def test_encode_into_a_caller_buffer():
    """`out=`: the payload is written into the caller's buffer and returned as a view of it,
    byte for byte what encode returns on its own; a buffer used again holds the new payload;
    one smaller than encode_bound is refused; a payload that outgrows even the bound (floats
    of wildly varying magnitude) comes back as bytes, still exact."""
    from archivestore._bulk import empty
    y = _ints(quantize(music(1.0, 2, seed=5), 24), 24, False)
    z = _ints(quantize(music(0.5, 2, seed=6), 24), 24, False)
    out = empty(_pcm.encode_bound(len(y)))
    for data in (y, z, y):
        got = _pcm.encode(data, 24, 2, False, False, out=out)
        assert isinstance(got, memoryview) and got.obj is out
        assert got == _pcm.encode(data, 24, 2, False, False)
        assert _pcm.decode(got, len(data)) == data
        del got
    with pytest.raises(ValueError, match="encode_bound"):
        _pcm.encode(y, 24, 2, False, False, out=bytearray(_pcm.encode_bound(len(y)) - 1))
    with pytest.raises(BufferError):  # read-only
        _pcm.encode(y, 24, 2, False, False, out=bytes(_pcm.encode_bound(len(y))))
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(400_000) * np.exp(rng.uniform(-20, 5, 400_000))).astype("<f4")
    x = x.tobytes()
    big = _pcm.encode(x, 32, 1, False, True, out=empty(_pcm.encode_bound(len(x))))
    assert len(big) > _pcm.encode_bound(len(x))
    assert type(big) is bytes and big == _pcm.encode(x, 32, 1, False, True)
    assert _pcm.encode(y[:-1], 24, 2, False, False, out=out) is None  # not whole frames


def test_threads_share_nothing():
    datas = [_ints(quantize(music(0.5, 2, seed=s), 24), 24, False) for s in range(4)]
    want = [_pcm.encode(d, 24, 2, False, False) for d in datas]
    got = [None] * 4

    def work(i):
        for _ in range(3):
            p = _pcm.encode(datas[i], 24, 2, False, False)
            assert _pcm.decode(p, len(datas[i])) == datas[i]
        got[i] = p

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert got == want


# --- hypothesis: arbitrary sample values -------------------------------------------------

@st.composite
def pcm_input(draw):
    bits = draw(st.sampled_from([8, 16, 24, 32]))
    flt = bits == 32 and draw(st.booleans())
    ch = draw(st.integers(1, 8))
    be = draw(st.booleans())
    frames = draw(st.integers(0, 300) | st.sampled_from([4095, 4096, 4097]))
    kind = draw(st.sampled_from(["bytes", "walk", "repeat"]))
    align = ch * bits // 8
    if kind == "bytes":
        seed = draw(st.integers(0, 2 ** 32 - 1))
        data = np.random.default_rng(seed).integers(0, 256, frames * align, dtype=np.uint8).tobytes()
    elif kind == "repeat":
        unit = draw(st.binary(min_size=align, max_size=align))
        data = unit * frames
    else:  # random walk: predictable signal with occasional jumps
        seed = draw(st.integers(0, 2 ** 32 - 1))
        rng = np.random.default_rng(seed)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        step = draw(st.sampled_from([1, 16, 1 << (bits - 4)]))
        x = np.cumsum(rng.integers(-step, step + 1, size=(frames, ch)), axis=0)
        x = np.clip(x, lo, hi)
        data = _ints(x, bits, be) if not flt else (x.astype(np.float64) / (hi + 1)).astype(
            ">f4" if be else "<f4").tobytes()
    return data, bits, ch, be, flt


@FAST
@given(pcm_input())
def test_hypothesis_roundtrip(inp):
    data, bits, ch, be, flt = inp
    p = roundtrip(data, bits, ch, be, flt)
    _verify_rejects_changes(p, data)


@FAST
@given(pcm_input())
def test_hypothesis_encode_into_equals_encode(inp):
    from archivestore._bulk import empty
    data, bits, ch, be, flt = inp
    got = _pcm.encode(data, bits, ch, be, flt, out=empty(_pcm.encode_bound(len(data))))
    assert bytes(got) == _pcm.encode(data, bits, ch, be, flt)


@FAST
@given(pcm_input())
def test_hypothesis_simd_clones_agree(inp):
    """The AVX-512 / AVX2 / BMI2 clones and the baseline code write the same bytes and
    decode each other's payloads."""
    data, bits, ch, be, flt = inp
    saved = _pcm._cpu_features()
    try:
        _pcm._cpu_features(False, False, False)
        p0 = _pcm.encode(data, bits, ch, be, flt)
        assert _pcm.decode(p0, len(data)) == data
        for feats in WRITER_SETS[3:]:
            _pcm._cpu_features(*feats)
            p1 = _pcm.encode(data, bits, ch, be, flt)
            assert _pcm.decode(p0, len(data)) == data
            assert p0 == p1
    finally:
        _pcm._cpu_features(*saved)


@pytest.mark.parametrize("bits,ch", [(16, 1), (16, 2), (24, 1), (24, 2), (32, 2)])
def test_simd_clones_agree_on_music(bits, ch):
    x = quantize(music(1.0, ch, seed=bits * ch), bits)
    outs = _clone_payloads(_ints(x, bits, False), bits, ch, False)
    assert all(o == outs[0] for o in outs)


def _clone_payloads(data: bytes, bits: int, ch: int, be: bool, flt: bool = False) -> list[bytes]:
    saved = _pcm._cpu_features()
    outs = []
    try:
        for feats in WRITER_SETS:
            _pcm._cpu_features(*feats)
            p = _pcm.encode(data, bits, ch, be, flt)
            assert _pcm.decode(p, len(data)) == data
            outs.append(p)
    finally:
        _pcm._cpu_features(*saved)
    return outs


@pytest.mark.parametrize("bits", [16, 24])
def test_simd_clones_agree_autocorrelation_lengths(bits):
    """The LPC autocorrelation runs in float lanes eight samples wide with zero padding on both
    sides and a different code path for the last 0-3 steps of a flush: every block length
    from 32 (the smallest LPC block) to 48, and short last blocks after a full one, must give
    the same bytes on every clone."""
    x = quantize(music(0.2, 1, seed=7), bits)
    for n in list(range(32, 49)) + [4096 + 29, 4096 + 131, 2 * 4096 - 1]:
        data = _ints(x[:n], bits, False)
        outs = _clone_payloads(data, bits, 1, False)
        assert all(o == outs[0] for o in outs), n


@pytest.mark.parametrize("bits,ch", [(24, 1), (16, 1), (16, 2)])
def test_simd_clones_agree_float_and_double_autocorrelation(bits, ch):
    """Very predictable blocks (bench/signals' music) take the double-precision
    autocorrelation, music with a little noise the float one (this input uses both: its bytes
    differ from an all-double and an all-float build); every clone writes the same bytes, and
    they decode."""
    rng = np.random.default_rng(5)
    m = music(0.4, 1, seed=3)[:, 0]
    noisy = music(0.4, 1, seed=4)[:, 0] + 1e-3 * rng.standard_normal(len(m))
    x = 0.7 * np.concatenate([noisy, m, noisy])
    x = np.stack([x, np.roll(x, 7) * 0.8], axis=1) if ch == 2 else x[:, None]
    data = _ints(quantize(x, bits), bits, False)
    outs = _clone_payloads(data, bits, ch, False)
    assert all(o == outs[0] for o in outs)


@pytest.mark.parametrize("ch", [1, 2])
def test_simd_clones_agree_24bit_load_edges(ch):
    """The vector loader of little-endian 24-bit mono/stereo hands over to the scalar one at
    every offset: every frame count near a block start and end."""
    rng = np.random.default_rng(ch)
    for n in list(range(0, 70)) + list(range(4086, 4106)) + [8192 + 13]:
        x = np.cumsum(rng.integers(-3000, 3001, size=(n, ch)), axis=0)
        x = np.clip(x, -(1 << 23), (1 << 23) - 1)
        outs = _clone_payloads(_ints(x, 24, False), 24, ch, False)
        assert all(o == outs[0] for o in outs), n


@FAST
@given(st.integers(1, 2), st.integers(0, 9000), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1, 8, 300, 20000, 1 << 22]), st.floats(0.0, 0.05))
def test_hypothesis_24bit_clones_agree(ch, frames, seed, step, spikes):
    """24-bit little-endian mono and stereo (the vector loader, fused stereo sums, windowed
    autocorrelation and vector Rice writer): every clone writes the same bytes."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(-step, step + 1, size=(frames, ch)), axis=0)
    hit = rng.random(x.shape) < spikes
    x[hit] = rng.integers(-(1 << 23), 1 << 23, size=int(hit.sum()))
    x = np.clip(x, -(1 << 23), (1 << 23) - 1)
    outs = _clone_payloads(_ints(x, 24, False), 24, ch, False)
    assert all(o == outs[0] for o in outs)


def _block_choices(p: bytes, ch: int) -> tuple[int | None, list[tuple[int, int]]]:
    """The first block's stereo mode (None for mono) and its first subframe's (type, order)."""
    v = int.from_bytes(p[13:40], "little")
    pos = 0
    mode = None
    if ch == 2:
        mode, pos = v & 3, 2
    typ = (v >> pos) & 3
    pos += 8
    order = (v >> pos) & 7 if typ == 2 else ((v >> pos) & 31) + 1 if typ == 3 else 0
    return mode, [(typ, order)]


def _shaped(rng, n: int, kind: int, bits: int) -> np.ndarray:
    """Signals that different predictors win on: small white noise summed kind (0..4) times
    (fixed order kind where it stays in range, clipped where not), or resonances of
    kind - 4 poles (LPC orders)."""
    hi = (1 << (bits - 1)) - 1
    if kind <= 4:
        x = rng.integers(-1, 2, size=n)
        for _ in range(kind):
            x = np.cumsum(x)
    else:
        e = rng.standard_normal(n + 64)
        x = np.zeros(n + 64)
        poles = [rng.uniform(0.5, 0.999) * np.exp(1j * rng.uniform(0.01, 3.0)) for _ in range((kind - 3) // 2)]
        a = np.real(np.poly(poles + [np.conj(q) for q in poles]))
        for i in range(len(a), n + 64):
            x[i] = e[i] - a[1:] @ x[i - 1:i - len(a):-1]
        x = x[64:] / max(1e-9, np.abs(x[64:]).max()) * hi * 0.5
    return np.clip(np.round(x), -hi - 1, hi).astype(np.int64)


@pytest.mark.parametrize("bits", [16, 24])
def test_simd_clones_agree_fused_residual_sums(bits):
    """The LPC (FMA clone) and fixed (AVX2 clone) residuals are worked out together with their
    partition sums, partition by partition with each partition's last 0-3 samples one by one:
    every fixed order, LPC orders, and block lengths whose partitions are not multiples of
    four (4000: 32 of 125; 4095: one; 200: 8 of 25; 96: 32 of 3) give the same bytes on
    every clone, and the inputs do reach those predictors."""
    rng = np.random.default_rng(bits)
    seen = set()
    for n in (4096, 4000, 4095, 1000, 200, 96, 37):
        for kind in range(12):
            x = _shaped(rng, n, kind, bits)
            outs = _clone_payloads(_ints(x[:, None], bits, False), bits, 1, False)
            assert all(o == outs[0] for o in outs), (n, kind)
            seen.update(_block_choices(outs[0], 1)[1])
    assert {(2, o) for o in range(5)} <= seen
    assert len({o for t, o in seen if t == 3}) >= 4


@pytest.mark.parametrize("bits", [16, 24])
def test_simd_clones_agree_stereo_modes(bits):
    """Stereo analysis from the loader's int32 copies (overwritten with M and S, which the M/S
    and side subframes then use): every channel mode occurs, and every clone writes the same
    bytes."""
    rng = np.random.default_rng(bits + 1)
    hi = (1 << (bits - 1)) - 1
    modes = set()
    for i in range(24):
        n = int(rng.choice([4096, 4000, 333]))
        s1 = np.cumsum(rng.integers(-200, 201, size=n)).astype(float)
        s2 = np.cumsum(rng.integers(-200, 201, size=n)).astype(float)
        c = rng.uniform(-1, 1, size=4) * (rng.random(4) < 0.8)
        L = c[0] * s1 + c[1] * s2 + rng.integers(-8, 9, size=n) * (i % 3)
        R = c[2] * s1 + c[3] * s2 if i % 4 else L + rng.integers(-3, 4, size=n) * (i % 5)
        x = np.clip(np.round(np.stack([L, R], axis=1)).astype(np.int64) << max(0, bits - 16), -hi - 1, hi)
        outs = _clone_payloads(_ints(x, bits, False), bits, 2, False)
        assert all(o == outs[0] for o in outs), i
        modes.add(_block_choices(outs[0], 2)[0])
    assert modes == {0, 1, 2, 3}


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_simd_clones_agree_rice_edges(bits):
    """Rice codes of every length: quiet partitions (small k, codes joined 2-4 per write) with
    rare spikes (long quotients, codes that do not fit a joined write)."""
    rng = np.random.default_rng(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for scale in (1, 4, 64, 1 << (bits // 2), 1 << (bits - 3)):
        x = rng.integers(-scale, scale + 1, size=(3 * 4096 + 5, 2))
        spikes = rng.random(x.shape) < rng.choice([0.0005, 0.01, 0.1])
        x[spikes] = rng.integers(lo, hi + 1, size=int(spikes.sum()))
        x = np.clip(x, lo, hi)
        for ch in (1, 2):
            d = _ints(x[:, :ch], bits, False)
            outs = _clone_payloads(d, bits, ch, False)
            assert all(o == outs[0] for o in outs), scale


def test_verify():
    for bits, ch, be in [(16, 2, False), (24, 1, False), (24, 2, True), (8, 3, False)]:
        for n in (1, 4095, 4097, 9000):
            x = quantize(music(n / 48000 + 0.001, ch, seed=n)[:n], bits)
            d = _ints(x, bits, be)
            p = roundtrip(d, bits, ch, be)
            _verify_rejects_changes(p, d)
            assert _pcm.verify(bytearray(p), memoryview(d)) is True
    f = music(0.2, 2).astype("<f4").tobytes()
    p = roundtrip(f, 32, 2, False, True)
    _verify_rejects_changes(p, f)
    assert _pcm.verify(_pcm.encode(b"", 16, 1, False, False), b"") is True
    for p, n in HOSTILE:  # malformed payloads are False, not an exception
        assert _pcm.verify(p[: len(p) // 2], bytes(n)) is False
        assert _pcm.verify(b"\xff" * 40, bytes(n)) is False


def test_verify_compares_every_byte():
    """verify() compares every byte: a change of any one byte, in the vector steps or the
    scalar ends of any block of a group (four blocks decoded together, then a short one),
    with and without the SIMD clones, fails it."""
    rng = np.random.default_rng(7)
    saved = _pcm._cpu_features()
    try:
        for bits, ch in [(16, 1), (16, 2), (24, 1), (24, 2)]:
            n = 4096 * 4 + 4096 // 2 + 3  # a group of four blocks, then a short one
            x = quantize(music(n / 48000 + 0.001, ch, seed=bits + ch)[:n], bits)
            d = _ints(x, bits, False)
            p = _pcm.encode(d, bits, ch, False, False)
            align = ch * bits // 8
            edges = {0, len(d)}
            edges.update(b * 4096 * align for b in range(1, 5))
            where = {i for e in edges for i in range(e - 40, e + 40) if 0 <= i < len(d)}
            where.update(int(i) for i in rng.integers(0, len(d), 300))
            for feats in [(False, False, False), (True, True, False)]:
                _pcm._cpu_features(*feats)
                assert _pcm.verify(p, d) is True
                for i in sorted(where):
                    b = bytearray(d)
                    b[i] ^= 1 << int(rng.integers(0, 8))
                    assert _pcm.verify(p, bytes(b)) is False, (bits, ch, feats, i)
    finally:
        _pcm._cpu_features(*saved)


# --- hostile payloads --------------------------------------------------------------------

def _decode_hostile(p: bytes, n: int) -> None:
    try:
        out = _pcm.decode(p, n)
    except ValueError:
        return
    assert len(out) == n


def _samples_for_hostile() -> list[tuple[bytes, int]]:
    out = []
    for bits, ch, flt in [(16, 1, False), (24, 2, False), (8, 3, False), (32, 2, True),
                          (32, 1, False)]:
        if flt:
            d = music(0.03, ch).astype("<f4").tobytes()
        else:
            d = _ints(quantize(music(0.03, ch), bits), bits, False)
        out.append((_pcm.encode(d, bits, ch, False, flt), len(d)))
    return out


HOSTILE = _samples_for_hostile()


def test_truncated_at_every_length():
    for p, n in HOSTILE:
        for cut in range(len(p)):
            with pytest.raises(ValueError):
                _pcm.decode(p[:cut], n)
        with pytest.raises(ValueError):
            _pcm.decode(p + b"\0", n)


def test_header_mutations():
    p, n = HOSTILE[1]
    for i in range(13):
        for v in (0, 1, 0x7F, 0x80, 0xFF):
            b = bytearray(p)
            b[i] = v
            _decode_hostile(bytes(b), n)


@FAST
@given(st.sampled_from(range(len(HOSTILE))), st.lists(
    st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=6))
def test_random_mutations(which, muts):
    p, n = HOSTILE[which]
    b = bytearray(p)
    for i, v in muts:
        b[i % len(b)] = v
    _decode_hostile(bytes(b), n)


def _big_payloads() -> list[tuple[bytes, bytes, tuple]]:
    """Payloads of more than 64 KiB (decoded in place up to their last 64 KiB)."""
    out = []
    for bits, ch, flt, secs in [(16, 1, False, 2.0), (24, 2, False, 1.0), (32, 2, True, 0.5)]:
        x = music(secs, ch, seed=7)
        d = x.astype("<f4").tobytes() if flt else _ints(quantize(x, bits), bits, False)
        p = _pcm.encode(d, bits, ch, False, flt)
        assert len(p) > 70000
        out.append((p, d, (bits, ch, flt)))
    return out


def test_large_payload_in_place_and_tail():
    """Decoding reads a large payload in place while it is 64 bytes short of the end, and the
    blocks of its last 64 KiB (and any block that fails in place) from a padded copy: cuts,
    trailing bytes and flipped bits around both boundaries give ValueError or the same bytes
    under every clone, never a crash; verify() stays True/False."""
    rng = random.Random(5)
    saved = _pcm._cpu_features()
    try:
        for p, d, _ in _big_payloads():
            n = len(d)
            for buf in (p, bytearray(p), memoryview(p)):
                assert _pcm.decode(buf, n) == d
            assert _pcm.verify(p, d) is True
            body = len(p) - 13
            cuts = list(range(len(p) - 200, len(p))) + [13 + body - 65536 + j for j in range(-70, 70, 7)]
            for cut in cuts:
                with pytest.raises(ValueError):
                    _pcm.decode(p[:cut], n)
                assert _pcm.verify(p[:cut], d) is False
            for extra in (1, 63, 64, 65, 200, 70000):
                with pytest.raises(ValueError):
                    _pcm.decode(p + bytes(extra), n)
            spots = ([len(p) - 1 - j for j in range(100)] + [13 + body - 65536 + j for j in range(-64, 64)]
                     + [rng.randrange(13, len(p)) for _ in range(30)])
            for i in spots:
                b = bytearray(p)
                b[i] ^= 1 << rng.randrange(8)
                outs = []
                for feats in FEATURE_SETS:
                    _pcm._cpu_features(*feats)
                    outs.append(_outcome(bytes(b), n))
                    assert _pcm.verify(bytes(b), d) in (True, False)
                assert all(o == outs[0] for o in outs), i
                assert outs[0] is ValueError or len(outs[0]) == n
    finally:
        _pcm._cpu_features(*saved)


@FAST
@given(st.binary(max_size=400), st.integers(0, 5000))
def test_random_payloads(b, n):
    _decode_hostile(b, n)
    _decode_hostile(bytes([1, 1, 2, 0, 16]) + (n // 4).to_bytes(8, "little") + b, n)
    _decode_hostile(bytes([2, 1, 2, 0, 16]) + (n // 4).to_bytes(8, "little") + b, n)


@pytest.mark.slow
def test_mutation_soak():
    rnd = random.Random(1)
    for _ in range(20000):
        p, n = rnd.choice(HOSTILE)
        b = bytearray(p)
        for _ in range(rnd.randint(1, 8)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        _decode_hostile(bytes(b), n)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(pcm_input())
def test_hypothesis_roundtrip_long(inp):
    data, bits, ch, be, flt = inp
    roundtrip(data, bits, ch, be, flt)


def test_float_block_modes():
    """Exercise each float block mode and their edges inside one payload."""
    rng = np.random.default_rng(9)
    n = 4096
    full = music(n / 48000 + 0.01, 1, seed=2)[:n, 0].astype(np.float32)  # mode 2
    blocks = [
        full,
        (quantize(full[:, None], 24)[:, 0] / 2.0 ** 23).astype(np.float32),  # mode 1
        np.where(np.arange(n) % 7 == 0, np.float32(np.nan), full),  # mode 0
        np.where(np.arange(n) % 5 == 0, np.float32(-0.0), full),  # -0.0 in mode 2
        np.concatenate([[3.4e38, -3.4e38], rng.standard_normal(n - 2) * 1e-30]).astype(np.float32),
        (rng.standard_normal(n) * 1e-40).astype(np.float32),  # denormals only
        np.concatenate([[1e-38], rng.standard_normal(n - 1) * 1e-44]).astype(np.float32),
        np.zeros(n, np.float32),
        np.full(n, -0.0, np.float32),
        np.full(n, np.inf, np.float32),
        np.float32(2.0) ** rng.integers(-149, 127, n).astype(np.float32),
    ]
    x = np.concatenate(blocks)
    for ch in (1, 2, 3):
        m = len(x) // ch * ch
        d = x[:m].astype("<f4").tobytes()
        roundtrip(d, 32, ch, False, True)
    d = full.astype("<f4").tobytes()
    assert len(roundtrip(d, 32, 1, False, True)) < 0.8 * len(d)


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_many_channels(bits):
    rng = np.random.default_rng(bits)
    for ch in (9, 64, 255):
        x = np.cumsum(rng.integers(-50, 51, size=(300, ch)), axis=0)
        x = np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        roundtrip(_ints(x, bits, False), bits, ch, False)
    f = rng.standard_normal((50, 255)).astype("<f4").tobytes()
    roundtrip(f, 32, 255, False, True)


def test_golden_payloads_still_decode():
    """Payloads written by versions 1 and 2 of the format: stored data must stay readable
    forever (under every run-time clone; the store now writes version 2)."""
    import hashlib
    import json
    from pathlib import Path

    gold = []
    for version, name in [(1, "pcm_golden.json"), (2, "pcm_golden_v2.json")]:
        g = json.loads((Path(__file__).parent / "data" / name).read_text())
        assert len(g) >= 10 and all(bytes.fromhex(x["payload"])[0] == version for x in g)
        gold += g
    saved = _pcm._cpu_features()
    try:
        for feats in FEATURE_SETS:
            _pcm._cpu_features(*feats)
            for g in gold:
                p = bytes.fromhex(g["payload"])
                out = _pcm.decode(p, g["plain_len"])
                assert hashlib.sha256(out).hexdigest() == g["plain_sha256"], g["name"]
                assert _pcm.verify(p, out) is True
    finally:
        _pcm._cpu_features(*saved)


# ------------------------------------------------------------------------------------------
# Hand-built payloads against a reference decoder written in Python: every predictor order
# (fixed 0..4, LPC 1..8 with any precision and shift, so both predictor formulas and the
# double-precision taps), Rice parameters from the smallest that keeps codes short to large,
# partitions, wasted bits; under every run-time clone.


class _Bits:
    def __init__(self) -> None:
        self.v = 0
        self.n = 0

    def put(self, val: int, k: int) -> None:
        self.v |= (val & ((1 << k) - 1)) << self.n
        self.n += k

    def rice(self, r: int, k: int) -> None:
        u = 2 * r if r >= 0 else -2 * r - 1
        self.put(0, u >> k)
        self.put(1, 1)
        self.put(u, k)

    def rice2(self, part: list[int], k: int) -> None:
        """A version 2 partition's codes: the unary stream, then the k-bit low parts."""
        us = [2 * r if r >= 0 else -2 * r - 1 for r in part]
        for u in us:
            self.put(0, u >> k)
            self.put(1, 1)
        for u in us:
            self.put(u, k)

    def tobytes(self) -> bytes:
        return self.v.to_bytes((self.n + 7) // 8, "little")


def _predict(x: list[int], i: int, fixed: bool, q: list[int], sh: int) -> int:
    """Prediction of x[i]: fixed polynomial of order len(q) (q unused), or LPC."""
    h = [x[i - 1 - j] for j in range(len(q))]
    if fixed:
        return [0, h[0] if h else 0, 2 * h[0] - h[1] if len(h) > 1 else 0,
                3 * h[0] - 3 * h[1] + h[2] if len(h) > 2 else 0,
                4 * h[0] - 6 * h[1] + 4 * h[2] - h[3] if len(h) > 3 else 0][len(h)]
    return sum(c * v for c, v in zip(q, h)) >> sh


def _draw_subframe(draw, b: _Bits, n: int, bits: int, version: int,
                   lpc: bool = False) -> tuple[list[int], int, bool]:
    """One predicted subframe (LPC when lpc) of n samples appended to b: (the signal, its
    wasted bits, bad: a value leaves the sample range, or, in version 2, a quotient is above
    63)."""
    w = draw(st.sampled_from([0, 0, 0, 1, 5]))
    eff = bits - w
    lo, hi = -(1 << (eff - 1)), (1 << (eff - 1)) - 1
    fixed = not lpc and draw(st.booleans())
    order = draw(st.integers(0, min(4, n))) if fixed else draw(st.integers(1, min(8, n)))
    P = draw(st.sampled_from([p for p in range(5) if n % (1 << p) == 0 and (n >> p) >= order]))
    if fixed:
        q, prec, sh = [0] * order, 0, 0
    else:
        prec = draw(st.integers(1, 16))
        sh = draw(st.integers(0, 31) | st.just(31))  # 31 with 32 bits: the plain formula
        q = draw(st.lists(st.integers(-(1 << (prec - 1)), (1 << (prec - 1)) - 1),
                          min_size=order, max_size=order))
    kind = draw(st.sampled_from(["noise", "walk", "quiet", "edge"]))
    rnd = random.Random(draw(st.integers(0, 2 ** 32)))
    if kind == "noise":
        x = [rnd.randint(lo, hi) for _ in range(n)]
    elif kind == "walk":
        x, v = [], 0
        for _ in range(n):
            v = min(hi, max(lo, v + rnd.randint(-(1 << (eff // 2)), 1 << (eff // 2))))
            x.append(v)
    elif kind == "quiet":
        x = [rnd.randint(-2, 2) for _ in range(n)]
    else:
        x = [rnd.choice([lo, hi, 0, -1]) for _ in range(n)]
    r = [0] * n
    for i in range(order, n):
        r[i] = x[i] - _predict(x, i, fixed, q, sh)
    spoil = draw(st.booleans()) and n > order
    if spoil:  # push one sample just out of range, then carry on with the same residuals
        i0 = draw(st.integers(order, n - 1))
        r[i0] += (hi - x[i0] + 1) if draw(st.booleans()) else (lo - x[i0] - 1)
        y = x[:order] + [0] * (n - order)
        for i in range(order, n):
            y[i] = r[i] + _predict(y, i, fixed, q, sh)
        assert not all(lo <= v <= hi for v in y)
    def pick_k(umax: int) -> int:
        # bit_length - 6 keeps every quotient <= 63 (as the encoder does); - 7 and - 12 may not
        kmin = max(0, umax.bit_length() - draw(st.sampled_from([0, 2, 6, 6, 7, 12])))
        return min(56, kmin + draw(st.integers(0, 4)))

    long_q = _put_subframe(b, x, r, fixed, q, prec, sh, w, eff, P, version, pick_k)
    return x, w, spoil or (version == 2 and long_q)


def _put_subframe(b: _Bits, x: list[int], r: list[int], fixed: bool, q: list[int], prec: int,
                  sh: int, w: int, eff: int, P: int, version: int, pick_k) -> bool:
    """A predicted subframe (fixed of order len(q), else LPC) of the warm-up samples
    x[:len(q)] and the residuals r[len(q):], in 2**P partitions of Rice parameter
    pick_k(the partition's largest zigzag value); True when a quotient is above 63."""
    order = len(q)
    b.put((2 if fixed else 3) | (w << 2), 8)
    if fixed:
        b.put(order, 3)
    else:
        b.put(order - 1, 5)
        b.put(prec - 1, 4)
        b.put(sh, 5)
        for c in q:
            b.put(c, prec)
    for i in range(order):
        b.put(x[i], eff)
    b.put(P, 4)
    ps = len(r) >> P
    long_q = False
    for j in range(1 << P):
        part = r[max(j * ps, order):(j + 1) * ps]
        umax = max([2 * v if v >= 0 else -2 * v - 1 for v in part], default=0)
        k = pick_k(umax)
        long_q |= (umax >> k) > 63
        b.put(k, 6)
        if version == 1:
            for v in part:
                b.rice(v, k)
        else:
            b.rice2(part, k)
    return long_q


@st.composite
def predicted_block(draw, group: bool = False):
    """(payload, plain length, plain bytes or None when a value leaves the sample range, or, in
    version 2, a quotient is above 63): mono blocks of one predicted subframe each (one to six
    blocks: the decoder runs up to four whole blocks' predictions together; the last block may
    be shorter), residuals chosen so that the output is a drawn signal (or, when spoiled,
    leaves the range at a drawn place), in payload version 1 or 2. group: two to four whole
    blocks of LPC subframes, at least 16 samples each (what the decoder runs together)."""
    version = draw(st.sampled_from([1, 2]))
    bits = draw(st.sampled_from([16, 24, 32]))
    nblocks = draw(st.integers(2, 4)) if group else draw(st.sampled_from([1, 1, 2, 3, 4, 5, 6]))
    n = draw(st.sampled_from([1, 2, 4, 8, 16])) * draw(st.integers(16 if group else 1, 40))
    last = n if nblocks == 1 or group or draw(st.booleans()) else draw(st.integers(1, n))
    frames = n * (nblocks - 1) + last
    b = _Bits()
    plain, bad = b"", False
    for blk in range(nblocks):
        x, w, spoilt = _draw_subframe(draw, b, n if blk < nblocks - 1 else last, bits, version,
                                      lpc=group)
        bad |= spoilt
        plain += pcm_bytes(np.array(x, dtype=np.int64)[:, None] << w, bits)
    payload = bytes([version, bits // 8 - 1, 1]) + n.to_bytes(2, "little") + frames.to_bytes(8, "little")
    payload += b.tobytes()
    return payload, frames * (bits // 8), None if bad else plain


@FAST
@given(st.one_of(predicted_block(), predicted_block(group=True)))
def test_hypothesis_reference_decoder(blk):
    payload, n, plain = blk
    saved = _pcm._cpu_features()
    try:
        for feats in FEATURE_SETS:
            _pcm._cpu_features(*feats)
            if plain is None:
                with pytest.raises(ValueError):
                    _pcm.decode(payload, n)
            else:
                assert _pcm.decode(payload, n) == plain
                assert _pcm.verify(payload, plain) is True
    finally:
        _pcm._cpu_features(*saved)


def _lpc_blocks(xs: list[list[int]], orders: list[int], q: list[int], sh: int, bits: int,
                spoil: tuple[int, int] | None = None) -> bytes:
    """A version 2 mono payload of one LPC subframe (coefficients q[:order], one partition)
    per signal in xs (all of one length); spoil (block, sample): that residual pushed so the
    sample leaves the range."""
    n = len(xs[0])
    b = _Bits()
    for blk, (x, order) in enumerate(zip(xs, orders)):
        r = [0] * n
        for i in range(order, n):
            r[i] = x[i] - _predict(x, i, False, q[:order], sh)
        if spoil and spoil[0] == blk:
            r[spoil[1]] += 1 << bits
        _put_subframe(b, x, r, False, q[:order], 16, sh, 0, bits, 0, 2,
                      lambda umax: max(0, umax.bit_length() - 6))
    frames = n * len(xs)
    return (bytes([2, bits // 8 - 1, 1]) + n.to_bytes(2, "little") + frames.to_bytes(8, "little")
            + b.tobytes())


@pytest.mark.parametrize("nblocks", [2, 3, 4, 5])
def test_grouped_blocks_each_checked(nblocks):
    """Blocks decoded together (mono, up to four whole blocks a group): each block's own
    orders and range check count, wherever it sits in the group, under every clone."""
    rnd = random.Random(nblocks)
    bits, sh, n = 24, 12, 200
    q = [1800, -900, 400, -200, 100, -50, 25, -12]
    xs = [[rnd.randint(-(1 << 22), 1 << 22) for _ in range(n)] for _ in range(nblocks)]
    orders = [8 - (i % 3) * 3 for i in range(nblocks)]  # 8, 5, 2, ...
    plain = b"".join(pcm_bytes(np.array(x, dtype=np.int64)[:, None], bits) for x in xs)
    saved = _pcm._cpu_features()
    try:
        for feats in FEATURE_SETS:
            _pcm._cpu_features(*feats)
            assert _pcm.decode(_lpc_blocks(xs, orders, q, sh, bits), len(plain)) == plain
            for blk in range(nblocks):
                for i in (8, 100, n - 1):  # first, middle and last (a scalar tail) samples
                    bad = _lpc_blocks(xs, orders, q, sh, bits, spoil=(blk, i))
                    with pytest.raises(ValueError):
                        _pcm.decode(bad, len(plain))
                    assert _pcm.verify(bad, plain) is False
    finally:
        _pcm._cpu_features(*saved)


def _outcome(p: bytes, n: int):
    try:
        return _pcm.decode(p, n)
    except ValueError:
        return ValueError


@FAST
@given(st.one_of(predicted_block(), predicted_block(group=True)), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 7)),
                                   min_size=1, max_size=4), st.integers(0, 10 ** 6))
def test_hypothesis_damaged_blocks_agree(blk, flips, cut):
    """Flipped bits and truncation: every clone gives the same bytes or ValueError, never a
    crash; verify() is False, never raises."""
    payload, n, plain = blk
    b = bytearray(payload)
    for i, bit in flips:
        b[13 + i % (len(b) - 13)] ^= 1 << bit
    for p in (bytes(b), payload[:13 + cut % (len(payload) - 12)]):
        saved = _pcm._cpu_features()
        try:
            outs = []
            for feats in FEATURE_SETS:
                _pcm._cpu_features(*feats)
                outs.append(_outcome(p, n))
                if plain is not None and p != payload:
                    assert _pcm.verify(p, plain) in (True, False)
        finally:
            _pcm._cpu_features(*saved)
        assert all(o == outs[0] for o in outs)
        assert outs[0] is ValueError or len(outs[0]) == n


# ------------------------------------------------------------------------------------------
# Payload version 2 (two-stream residual partitions): the same bits as version 1, which is
# still read (and can still be written, for these comparisons).

def test_version_byte_and_v1_writer():
    x = quantize(music(0.3, 2, seed=3), 24)
    d = _ints(x, 24, False)
    p2 = _pcm.encode(d, 24, 2, False, False)
    p1 = _pcm.encode(d, 24, 2, False, False, version=1)
    assert p2[0] == 2 == _pcm.FORMAT_VERSION and p1[0] == 1
    assert p1[1:13] == p2[1:13] and p1 != p2
    assert len(p1) == len(p2)
    assert _pcm.decode(p1, len(d)) == d == _pcm.decode(p2, len(d))
    assert _pcm.verify(p1, d) is True and _pcm.verify(p2, d) is True
    with pytest.raises(ValueError):
        _pcm.encode(d, 24, 2, False, False, version=3)
    for v in (0, 3, 255):
        with pytest.raises(ValueError):
            _pcm.decode(bytes([v]) + p2[1:], len(d))
        assert _pcm.verify(bytes([v]) + p2[1:], d) is False


@pytest.mark.parametrize("bits,be", INT_FORMATS)
@pytest.mark.parametrize("ch", [1, 2, 3])
def test_v2_same_size_as_v1(bits, be, ch):
    """Version 2 only reorders the bits of each partition: every payload is as long as the
    version 1 one (every signal kind, block edges, partition orders from the encoder)."""
    for n in (1, 7, 4097):
        for name, x in _signals(n, ch, bits, seed=n + 1).items():
            d = _ints(x, bits, be)
            p2 = roundtrip(d, bits, ch, be)
            p1 = _pcm.encode(d, bits, ch, be, False, version=1)
            assert len(p1) == len(p2), (name, n)
            assert _pcm.decode(p1, len(d)) == d


@FAST
@given(pcm_input())
def test_hypothesis_v2_same_size_as_v1(inp):
    data, bits, ch, be, flt = inp
    p2 = _pcm.encode(data, bits, ch, be, flt)
    p1 = _pcm.encode(data, bits, ch, be, flt, version=1)
    assert len(p1) == len(p2)
    saved = _pcm._cpu_features()
    try:
        for feats in FEATURE_SETS:
            _pcm._cpu_features(*feats)
            assert _pcm.decode(p1, len(data)) == data
            assert _pcm.decode(p2, len(data)) == data
    finally:
        _pcm._cpu_features(*saved)


def _unzigzag(us: list[int]) -> list[int]:
    """The residuals whose zigzag values are us."""
    return [u >> 1 if u % 2 == 0 else -(u >> 1) - 1 for u in us]


def _fixed0_block(us: list[int], k: int, version: int = 2) -> tuple[bytes, bytes]:
    """One 32-bit mono block, fixed predictor of order 0 (the samples are the residuals), one
    partition of Rice parameter k coding the zigzag values us."""
    n = len(us)
    r = _unzigzag(us)
    b = _Bits()
    b.put(2, 8)
    b.put(0, 3)
    b.put(0, 4)
    b.put(k, 6)
    if version == 2:
        b.rice2(r, k)
    else:
        for v in r:
            b.rice(v, k)
    payload = bytes([version, 3, 1]) + n.to_bytes(2, "little") + n.to_bytes(8, "little") + b.tobytes()
    return payload, pcm_bytes(np.array(r, dtype=np.int64)[:, None], 32)


def test_v2_every_k_and_quotients_up_to_63():
    """Every k from 0 to 56, quotients 0..63 (the unary stream crossing word boundaries with
    runs of up to 63 zeros), lengths around the groups of eight; a quotient of 64 is corrupt
    in version 2 (it is fine in version 1)."""
    rng = random.Random(1)
    saved = _pcm._cpu_features()
    try:
        for k in range(57):
            qmax = min(63, (1 << max(0, 32 - k)) - 1)
            for n in (1, 7, 8, 9, 63, 64, 65, 200):
                us = []
                for i in range(n):
                    q = rng.choice([0, 0, 1, qmax, qmax - 1 if qmax else 0, rng.randint(0, qmax)])
                    us.append((q << k) | rng.getrandbits(k) if k else q)
                us = [u for u in us if u < 1 << 32] or [0]
                p, plain = _fixed0_block(us, k)
                for feats in FEATURE_SETS:
                    _pcm._cpu_features(*feats)
                    assert _pcm.decode(p, len(plain)) == plain, (k, n, feats)
                    assert _pcm.verify(p, plain) is True
            if 64 << k < 1 << 32:
                for pos in (0, 1, 5):
                    us = [1] * 6
                    us[pos] = 64 << k
                    p1, plain = _fixed0_block(us, k, version=1)
                    p2, _ = _fixed0_block(us, k, version=2)
                    for feats in FEATURE_SETS:
                        _pcm._cpu_features(*feats)
                        assert _pcm.decode(p1, len(plain)) == plain
                        with pytest.raises(ValueError):
                            _pcm.decode(p2, len(plain))
                        assert _pcm.verify(p2, plain) is False
    finally:
        _pcm._cpu_features(*saved)


def test_v2_partition_running_past_the_end():
    """A partition whose unary stream or low parts run past the end of the payload is corrupt,
    under every clone, at every cut (including cuts inside the padding of the last byte)."""
    rng = random.Random(2)
    saved = _pcm._cpu_features()
    try:
        for k in (0, 3, 12, 30):
            us = [(rng.randint(0, 3) << k) | rng.getrandbits(k) for _ in range(300)]
            p, plain = _fixed0_block(us, k)
            for feats in FEATURE_SETS:
                _pcm._cpu_features(*feats)
                assert _pcm.decode(p, len(plain)) == plain
                for cut in range(13, len(p)):
                    with pytest.raises(ValueError):
                        _pcm.decode(p[:cut], len(plain))
                    assert _pcm.verify(p[:cut], plain) is False
                # all ones after the header: the unary stream ends early, the low parts and
                # the trailing-bytes check do not fit
                with pytest.raises(ValueError):
                    _pcm.decode(p[:13] + b"\xff" * (len(p) - 13), len(plain))
                with pytest.raises(ValueError):  # no one bit at all
                    _pcm.decode(p[:15] + b"\0" * (len(p) - 15), len(plain))
    finally:
        _pcm._cpu_features(*saved)


@FAST
@given(st.integers(0, 56), st.lists(st.integers(0, 63), min_size=1, max_size=300),
       st.integers(0, 2 ** 64 - 1), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 7)),
                                             max_size=3), st.integers(0, 10 ** 6))
def test_hypothesis_v2_partitions(k, qs, seed, flips, cut):
    """Random quotients and low parts of any k: decodes right; flipped bits and cuts give the
    same outcome under every clone (bytes or ValueError) and never crash."""
    rng = random.Random(seed)
    us = [((q << k) | rng.getrandbits(k)) & 0xFFFFFFFF for q in qs]
    p, plain = _fixed0_block(us, k)
    b = bytearray(p)
    for i, bit in flips:
        b[13 + i % (len(b) - 13)] ^= 1 << bit
    saved = _pcm._cpu_features()
    try:
        for q in (p, bytes(b), p[:13 + cut % (len(p) - 12)]):
            outs = []
            for feats in FEATURE_SETS:
                _pcm._cpu_features(*feats)
                outs.append(_outcome(q, len(plain)))
                assert _pcm.verify(q, plain) in (True, False)
            assert all(o == outs[0] for o in outs)
            if q == p:
                assert outs[0] == plain
    finally:
        _pcm._cpu_features(*saved)


# ------------------------------------------------------------------------------------------
# The version 2 partition writer on its own (_rice2_codes): every clone writes the reference
# bits, for any k and quotient, at every length (the 16-code steps and their tails).

def _rice2_ref(us: list[int], k: int) -> bytes:
    b = _Bits()
    b.rice2(_unzigzag(us), k)
    return b.tobytes()


def _rice2_all_writers(us: list[int], k: int) -> None:
    r = np.array(_unzigzag(us), dtype=np.int64)
    want = _rice2_ref(us, k)
    saved = _pcm._cpu_features()
    try:
        for feats in WRITER_SETS:
            _pcm._cpu_features(*feats)
            assert _pcm._rice2_codes(r, k) == (want, False), (feats, k, len(us))
    finally:
        _pcm._cpu_features(*saved)


def test_fast_pext_switch():
    saved = _pcm._cpu_features()
    try:
        assert len(saved) == 4
        on = _pcm._cpu_features(fast_pext=True)  # stays off only where the CPU lacks pext
        assert on[:3] == saved[:3]
        assert _pcm._cpu_features(fast_pext=False) == saved[:3] + (False,)
        assert _pcm._cpu_features(False, False, False) == (False, False, False, False)
    finally:
        _pcm._cpu_features(*saved)


def test_v2_writer_every_k_and_quotient():
    """Every k 0..56 with quotients 0..63 (runs of each length, steps where every q < 8 and
    where some are 8..63, totals just over 56 and 120 bits), lengths 0..40 and around the
    steps of 8 and 16; low parts all ones, zeros and random."""
    rng = random.Random(11)
    lengths = list(range(41)) + [47, 48, 49, 63, 64, 65, 127, 128, 129, 255, 301]
    for k in range(57):
        low = [lambda: (1 << k) - 1, lambda: 0, lambda: rng.getrandbits(k)]
        for n in lengths:
            for qs in ([rng.randint(0, 7) for _ in range(n)], [rng.randint(0, 2) for _ in range(n)],
                       [rng.choice([0, 1, 7, 8, 15, 16, 63, rng.randint(0, 63)]) for _ in range(n)],
                       [7] * n, [63] * n):
                us = [(q << k) | rng.choice(low)() for q in qs]
                us = [u for u in us if u < 1 << 64]
                _rice2_all_writers(us, k)


def test_v2_writer_long_quotient_flagged():
    """A quotient above 63 cannot be written in version 2: every writer flags it."""
    saved = _pcm._cpu_features()
    try:
        for k in (0, 5, 12, 20):
            for n, at in ((1, 0), (16, 3), (40, 37), (33, 15)):
                us = [1 << k] * n
                us[at] = 64 << k
                r = np.array(_unzigzag(us), dtype=np.int64)
                for feats in WRITER_SETS:
                    _pcm._cpu_features(*feats)
                    assert _pcm._rice2_codes(r, k)[1] is True, (feats, k, n)
    finally:
        _pcm._cpu_features(*saved)


@FAST
@given(st.integers(0, 56), st.lists(st.integers(0, 63) | st.integers(0, 7) | st.integers(0, 2), max_size=300),
       st.integers(0, 2 ** 64 - 1))
def test_hypothesis_v2_writer(k, qs, seed):
    rng = random.Random(seed)
    us = [(q << k) | rng.getrandbits(k) for q in qs]
    _rice2_all_writers([u for u in us if u < 1 << 64], k)
