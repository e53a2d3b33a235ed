"""audio.probe: every container, sox-made files, and fuzzing of hostile headers."""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archivestore import audio
from archivestore.audio import AudioInfo, probe
from tests.audio_helpers import pcm_bytes, write_aiff, write_wav


def _probe_bytes(b: bytes) -> AudioInfo | None:
    return probe(io.BytesIO(b), len(b))


def _signal(frames: int, channels: int, bits: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lim = 1 << (bits - 1)
    return rng.integers(-lim, lim, size=(frames, channels))


def _check_consistent(info: AudioInfo, size: int) -> None:
    assert info.data_offset >= 0 and info.data_length >= 0
    assert info.data_offset + info.data_length <= size
    assert info.block_align == info.channels * info.bits // 8
    assert info.data_length == info.frames * info.block_align
    assert info.bits in (8, 16, 24, 32)
    assert 1 <= info.channels and info.sample_rate >= 1
    assert not info.is_float or info.bits == 32
    json.dumps(info.to_manifest())


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("extensible", [False, True])
def test_wav_int(tmp_path, bits, channels, extensible):
    s = _signal(1001, channels, bits)
    out = write_wav(tmp_path / "a.wav", s, 44100, bits, extensible=extensible)
    info = _probe_bytes(out)
    assert info is not None
    _check_consistent(info, len(out))
    assert (info.container, info.sample_rate, info.bits, info.channels, info.frames) == (
        "wav", 44100, bits, channels, 1001)
    assert not info.big_endian and not info.is_float
    assert info.pcm_format == (bits, channels, False, False)
    assert out[info.data_offset:info.data_offset + info.data_length] == pcm_bytes(s, bits)
    assert info.duration == pytest.approx(1001 / 44100)


@pytest.mark.parametrize("extensible", [False, True])
def test_wav_float(tmp_path, extensible):
    s = np.random.default_rng(1).standard_normal((500, 2)).astype(np.float32)
    out = write_wav(tmp_path / "f.wav", s, 96000, 32, float=True, extensible=extensible)
    info = _probe_bytes(out)
    assert info is not None and info.is_float and info.bits == 32 and info.frames == 500
    assert out[info.data_offset:info.data_offset + info.data_length] == s.astype("<f4").tobytes()
    assert info.to_manifest()["float"] is True


def test_bwf_bext_and_extra_chunks(tmp_path):
    s = _signal(333, 2, 24)
    out = write_wav(tmp_path / "b.wav", s, 48000, 24,
                    bext=dict(description="Take 7 – vox", originator="ProTools",
                              time_reference=(5 << 32) + 1234),
                    extra_chunks=[(b"iXML", b"<BWFXML/>"), (b"JUNK", b"\0" * 3)],
                    trailing_chunks=[(b"LIST", b"INFOxxxx")])
    info = _probe_bytes(out)
    assert info is not None
    _check_consistent(info, len(out))
    assert info.container == "bwf"
    assert info.description == "Take 7 – vox"
    assert info.originator == "ProTools"
    assert info.time_reference == (5 << 32) + 1234
    m = info.to_manifest()
    assert m["description"] == "Take 7 – vox" and m["time_reference"] == (5 << 32) + 1234
    assert out[info.data_offset:info.data_offset + info.data_length] == pcm_bytes(s, 24)


@pytest.mark.parametrize("magic", [b"RF64", b"BW64"])
def test_rf64(tmp_path, magic):
    s = _signal(777, 3, 24)
    out = write_wav(tmp_path / "r.wav", s, 48000, 24, rf64=True)
    out = magic + out[4:]
    info = _probe_bytes(out)
    assert info is not None
    assert info.container == magic.decode().lower()
    assert info.frames == 777 and info.channels == 3
    assert out[info.data_offset:info.data_offset + info.data_length] == pcm_bytes(s, 24)


def test_rf64_without_ds64_rejected(tmp_path):
    out = write_wav(tmp_path / "w.wav", _signal(10, 1, 16), 48000, 16)
    out = b"RF64" + out[4:]
    i = out.index(b"data")
    out = out[:i + 4] + struct.pack("<I", 0xFFFFFFFF) + out[i + 8:]
    assert _probe_bytes(out) is None


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("aifc", [None, "NONE", "sowt"])
@pytest.mark.parametrize("channels", [1, 2])
def test_aiff(tmp_path, bits, aifc, channels):
    s = _signal(555, channels, bits, seed=bits)
    out = write_aiff(tmp_path / "a.aif", s, 44100, bits, aifc=aifc,
                     extra_chunks=[(b"MARK", b"\0\0\0")])
    info = _probe_bytes(out)
    assert info is not None
    _check_consistent(info, len(out))
    assert info.container == ("aiff" if aifc is None else "aifc")
    assert (info.sample_rate, info.bits, info.channels, info.frames) == (44100, bits, channels, 555)
    assert info.big_endian == (aifc != "sowt" or bits == 8)
    want = pcm_bytes(s, bits, big_endian=aifc != "sowt", unsigned8=False)
    assert out[info.data_offset:info.data_offset + info.data_length] == want


def test_aifc_float(tmp_path):
    s = np.random.default_rng(2).standard_normal(100).astype(np.float32)
    out = write_aiff(tmp_path / "f.aifc", s, 48000, 32, aifc="fl32")
    info = _probe_bytes(out)
    assert info is not None and info.is_float and info.big_endian and info.frames == 100


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 88200, 96000, 192000, 384000])
def test_aiff_rates(tmp_path, rate):
    out = write_aiff(tmp_path / "r.aif", _signal(4, 1, 16), rate, 16)
    assert _probe_bytes(out).sample_rate == rate


def test_aifc_compressed_rejected(tmp_path):
    out = bytearray(write_aiff(tmp_path / "c.aifc", _signal(10, 1, 16), 48000, 16, aifc="NONE"))
    i = out.index(b"NONE")
    out[i:i + 4] = b"ulaw"
    assert _probe_bytes(bytes(out)) is None


def test_truncated_data_clamped_to_whole_frames(tmp_path):
    out = write_wav(tmp_path / "t.wav", _signal(100, 2, 24), 48000, 24)
    cut = out[:-7]  # 100 frames of 6 bytes; drop 7 bytes -> 98 whole frames
    info = _probe_bytes(cut)
    assert info is not None and info.frames == 98 and info.data_length == 98 * 6
    _check_consistent(info, len(cut))


def test_odd_chunk_padding(tmp_path):
    s = _signal(3, 1, 8)  # 3-byte data chunk, padded
    out = write_wav(tmp_path / "o.wav", s, 8000, 8, extra_chunks=[(b"abcd", b"x")],
                    trailing_chunks=[(b"LIST", b"abc")])
    info = _probe_bytes(out)
    assert info is not None and info.frames == 3 and info.data_length == 3


def test_not_audio():
    for b in [b"", b"RIFF", b"RIFF\0\0\0\0WAVE", b"hello world, this is text" * 10,
              b"RIFF\x10\0\0\0AVI LIST\0\0\0\0", b"FORM\0\0\0\x04AIFF"]:
        assert _probe_bytes(b) is None


def test_bad_fmt_rejected(tmp_path):
    out = bytearray(write_wav(tmp_path / "x.wav", _signal(10, 2, 16), 48000, 16))
    i = out.index(b"fmt ") + 8
    bad = bytearray(out)
    bad[i + 12:i + 14] = struct.pack("<H", 3)  # block align != channels * bytes
    assert _probe_bytes(bytes(bad)) is None
    bad = bytearray(out)
    bad[i:i + 2] = struct.pack("<H", 0x55)  # MP3
    assert _probe_bytes(bytes(bad)) is None
    bad = bytearray(out)
    bad[i + 2:i + 4] = struct.pack("<H", 0)  # no channels
    assert _probe_bytes(bytes(bad)) is None


def test_chunk_count_bounded(tmp_path):
    junk = [(b"JUNK", b"")] * (audio.MAX_CHUNKS + 5)
    out = write_wav(tmp_path / "j.wav", _signal(10, 1, 16), 48000, 16, extra_chunks=junk)
    assert _probe_bytes(out) is None


class _CountingIO(io.BytesIO):
    def __init__(self, b):
        super().__init__(b)
        self.nread = 0

    def read(self, n=-1):
        assert n is not None and n >= 0, "probe must never read unbounded"
        b = super().read(n)
        self.nread += len(b)
        self.calls = getattr(self, "calls", 0) + 1
        return b


def test_reads_only_header(tmp_path):
    s = _signal(200_000, 2, 24)
    out = write_wav(tmp_path / "big.wav", s, 48000, 24, trailing_chunks=[(b"iXML", b"<x/>")])
    f = _CountingIO(out)
    info = probe(f, len(out))
    assert info is not None and info.frames == 200_000
    assert f.nread < 4096


# --- files made by sox -------------------------------------------------------------------

sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")


@sox
@pytest.mark.parametrize("name,args,expect", [
    ("a.wav", ["-r", "48000", "-b", "24"], ("wav", 48000, 24, 1, False, False)),
    ("a.wav", ["-r", "44100", "-b", "16", "-c", "2"], ("wav", 44100, 16, 2, False, False)),
    ("a.wav", ["-r", "44100", "-b", "8"], ("wav", 44100, 8, 1, False, False)),
    ("a.wav", ["-r", "96000", "-e", "floating-point", "-b", "32"], ("wav", 96000, 32, 1, False, True)),
    ("a.wav", ["-r", "48000", "-b", "32", "-c", "4"], ("wav", 48000, 32, 4, False, False)),
    ("a.aiff", ["-r", "48000", "-b", "24"], ("aiff", 48000, 24, 1, True, False)),
    ("a.aiff", ["-r", "44100", "-b", "16", "-c", "2"], ("aiff", 44100, 16, 2, True, False)),
    ("a.aifc", ["-r", "44100", "-b", "16"], ("aifc", 44100, 16, 1, True, False)),
])
def test_sox_files(tmp_path, name, args, expect):
    p = tmp_path / name
    subprocess.run(["sox", "-n", *args, str(p), "synth", "0.25", "sine", "440"], check=True)
    b = p.read_bytes()
    info = _probe_bytes(b)
    assert info is not None
    _check_consistent(info, len(b))
    got = (info.container, info.sample_rate, info.bits, info.channels, info.big_endian,
           info.is_float)
    assert got == expect
    assert info.frames == int(round(info.sample_rate * 0.25))
    # the data region must be exactly what sox decodes as raw samples
    raw = tmp_path / "raw.raw"
    enc = ["-e", "floating-point"] if info.is_float else (
        ["-e", "unsigned-integer"] if info.bits == 8 and not info.big_endian else ["-e", "signed-integer"])
    subprocess.run(["sox", str(p), "-t", "raw", "-b", str(info.bits), *enc,
                    "-B" if info.big_endian else "-L", str(raw)], check=True)
    assert b[info.data_offset:info.data_offset + info.data_length] == raw.read_bytes()


# --- fuzzing -----------------------------------------------------------------------------

def _valid_headers() -> list[bytes]:
    import tempfile
    out = []
    with tempfile.TemporaryDirectory() as d:
        s = _signal(16, 2, 16)
        out.append(write_wav(f"{d}/1", s, 48000, 16))
        out.append(write_wav(f"{d}/2", s, 48000, 16, bext=dict(description="d", originator="o"),
                             extensible=True, trailing_chunks=[(b"LIST", b"abc")]))
        out.append(write_wav(f"{d}/3", s, 48000, 16, rf64=True))
        out.append(write_aiff(f"{d}/4", s, 48000, 16))
        out.append(write_aiff(f"{d}/5", s, 48000, 16, aifc="sowt"))
    return out


VALID = _valid_headers()
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _fuzz_one(b: bytes) -> None:
    info = _probe_bytes(b)
    if info is not None:
        _check_consistent(info, len(b))


def test_truncations_at_every_length():
    for v in VALID:
        for n in range(len(v) + 1):
            _fuzz_one(v[:n])


@FAST
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(b):
    _fuzz_one(b)


@FAST
@given(st.sampled_from(VALID), st.binary(min_size=1, max_size=4), st.data())
def test_fuzz_prefixed_magic(v, junk, data):
    _fuzz_one(v[:12] + data.draw(st.binary(max_size=200)))


@FAST
@given(st.sampled_from(VALID), st.data())
def test_fuzz_mutated_size_fields(v, data):
    b = bytearray(v)
    # every 4-byte big/little size field position that follows a chunk id
    positions = [i + 4 for i in range(len(b) - 8) if bytes(b[i:i + 4]).isalnum() or
                 bytes(b[i:i + 4]) in (b"fmt ", b"ds64")]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.sampled_from(positions)) if positions else 4
        val = data.draw(st.sampled_from([0, 1, 2, 3, 7, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFE,
                                         len(b), len(b) + 1]) | st.integers(0, 2 ** 32 - 1))
        b[pos:pos + 4] = struct.pack(data.draw(st.sampled_from(["<I", ">I"])), val)
    _fuzz_one(bytes(b))


@FAST
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                        max_size=8))
def test_fuzz_byte_mutations(v, muts):
    b = bytearray(v)
    for i, x in muts:
        if i < len(b):
            b[i] = x
    _fuzz_one(bytes(b))


@pytest.mark.slow
@settings(max_examples=20000, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)),
                                        max_size=16), st.integers(0, 400))
def test_fuzz_long(v, muts, cut):
    b = bytearray(v)
    for i, x in muts:
        if i < len(b):
            b[i] = x
    _fuzz_one(bytes(b[:cut]))


# --- probe + codec, the way ingest uses them ---------------------------------------------

def _ingest_roundtrip(b: bytes) -> AudioInfo:
    from archivestore import _pcm
    info = _probe_bytes(b)
    assert info is not None
    data = b[info.data_offset:info.data_offset + info.data_length]
    align = info.block_align
    step = 4103 * align  # frame aligned, not block aligned
    for i in range(0, len(data), step):
        chunk = data[i:i + step]
        p = _pcm.encode(chunk, *info.pcm_format)
        assert p is not None
        assert _pcm.decode(p, len(chunk)) == chunk
    return info


@sox
@pytest.mark.parametrize("name,args", [
    ("a.wav", ["-r", "48000", "-b", "24", "-c", "2"]),
    ("a.wav", ["-r", "44100", "-b", "16"]),
    ("a.wav", ["-r", "44100", "-b", "8", "-c", "2"]),
    ("a.wav", ["-r", "96000", "-e", "floating-point", "-b", "32", "-c", "2"]),
    ("a.aiff", ["-r", "48000", "-b", "24", "-c", "2"]),
    ("a.aiff", ["-r", "44100", "-b", "8"]),
    ("a.aifc", ["-r", "44100", "-b", "16", "-c", "3"]),
])
def test_sox_files_through_codec(tmp_path, name, args):
    p = tmp_path / name
    subprocess.run(["sox", "-n", *args, str(p), "synth", "0.5", "pinknoise", "mix", "sine",
                    "440", "vol", "0.5"], check=True)
    _ingest_roundtrip(p.read_bytes())


@pytest.mark.parametrize("kind", ["wav8", "wav24x", "bwf", "rf64", "aiff8", "sowt16", "fl32"])
def test_writers_through_codec(tmp_path, kind):
    s = _signal(9000, 2, 24)
    f = tmp_path / "x"
    if kind == "wav8":
        b = write_wav(f, _signal(9000, 2, 8), 48000, 8)
    elif kind == "wav24x":
        b = write_wav(f, s, 48000, 24, extensible=True)
    elif kind == "bwf":
        b = write_wav(f, s, 48000, 24, bext=dict(description="x"))
    elif kind == "rf64":
        b = write_wav(f, s, 48000, 24, rf64=True)
    elif kind == "aiff8":
        b = write_aiff(f, _signal(9000, 1, 8), 48000, 8)
    elif kind == "sowt16":
        b = write_aiff(f, _signal(9000, 2, 16), 48000, 16, aifc="sowt")
    else:
        b = write_aiff(f, np.random.default_rng(0).standard_normal((9000, 2)), 48000, 32,
                       aifc="fl32")
    _ingest_roundtrip(b)


def test_trailing_garbage_after_data_is_tolerated(tmp_path):
    s = _signal(100, 2, 16)
    out = write_wav(tmp_path / "t.wav", s, 48000, 16, trailing_chunks=[(b"LIST", b"abcd")])
    for tail in (b"ID3\x04\x00\x00\x00\x00\x00\x21" + b"\xff" * 40, b"\x00" * 3, b"JUNK\xff\xff\xff\x7f"):
        info = _probe_bytes(out + tail)
        assert info is not None and info.frames == 100
        _check_consistent(info, len(out + tail))
    a = write_aiff(tmp_path / "t.aif", s, 48000, 16)
    info = _probe_bytes(a + b"ID3\x04" + b"\xff" * 30)
    assert info is not None and info.frames == 100
    # before the data chunk the parser stays strict
    i = out.index(b"data")
    assert _probe_bytes(out[:i] + b"\x01\x02\x03\x04\xff\xff\xff\xff" + out[i:]) is None


def test_a_bwf_header_is_one_read(tmp_path):
    """RIFF, bext, fmt and the data header come from one read (a folder of fades pays a system
    call per read)."""
    s = _signal(2_000, 1, 24)
    out = write_wav(tmp_path / "fade.wav", s, 48000, 24,
                    bext={"description": "fade", "originator": "x", "time_reference": 0})
    f = _CountingIO(out)
    info = probe(f, len(out))
    assert info is not None and info.frames == 2_000
    assert f.calls == 1
