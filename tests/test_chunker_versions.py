"""A store chunks with the algorithm its config names: v1 stores keep v1 (their dedup depends on
it), new stores get v2 (24-bit PCM scanned one byte per sample). FORMAT.md section 8."""
from __future__ import annotations

import json

import numpy as np
import pytest

from archivestore import Store, audio
from archivestore.chunking import V1, V2, ChunkParams, find_cuts
from archivestore.errors import FormatError
from archivestore.ingest import Ingester

from .audio_helpers import write_wav


def _take(path, frames: int, bits: int, channels: int = 1) -> None:
    rng = np.random.default_rng(frames + bits)
    t = np.arange(frames) / 48000
    sig = np.sin(2 * np.pi * 110 * t) * 0.2 * 2 ** (bits - 1) + rng.normal(0, 40, frames)
    sig = np.stack([sig] * channels, axis=1) if channels > 1 else sig
    write_wav(path, sig.astype(np.int32), 48000, bits,
              bext={"description": "take", "originator": "test", "time_reference": 0})


def _chunk_lengths(st: Store, project: str, rel: str) -> list[int]:
    _n, record = st.version(project)
    entry = next(e for e in st.iter_tree(record) if e["path"] == rel)
    return [st.index.lookup(bytes.fromhex(c)).plain_len for c in entry["chunks"]]


@pytest.mark.parametrize("algorithm", [V1, V2])
@pytest.mark.parametrize("bits,channels", [(24, 1), (24, 2), (16, 2)])
def test_ingest_cuts_audio_as_the_store_config_says(tmp_path, algorithm, bits, channels):
    params = ChunkParams(4096, 16384, 65536, algorithm)
    src = tmp_path / "Song"
    src.mkdir()
    _take(src / "take.wav", 150_000, bits, channels)
    st = Store.init(tmp_path / "store", params)
    st.close()
    assert json.loads((tmp_path / "store" / "config.json").read_text())["chunker"]["algorithm"] \
        == algorithm
    with Store.open(tmp_path / "store") as st:
        assert st.params == params
        Ingester(st).ingest(src)
        got = _chunk_lengths(st, "Song", "take.wav")
    raw = (src / "take.wav").read_bytes()
    with open(src / "take.wav", "rb") as f:
        info = audio.probe(f, len(raw))
    pcm = raw[info.data_offset:info.data_offset + info.data_length]
    stride = 3 if algorithm == V2 and bits == 24 else 1
    expect = find_cuts(pcm, 0, len(pcm), True, params, info.block_align, stride)[0]
    # header | PCM data chunks | trailer (none here)
    assert got[0] == info.data_offset and got[1:] == expect
    if bits == 24:
        other = find_cuts(pcm, 0, len(pcm), True, params, info.block_align, 4 - stride)[0]
        assert other != expect  # the two algorithms do cut 24-bit audio differently


def test_a_config_without_a_known_chunker_is_refused(tmp_path):
    Store.init(tmp_path / "s").close()
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["chunker"]["algorithm"] == V2  # new stores
    cfg["chunker"]["algorithm"] = "fastcdc-gear-v7"
    (tmp_path / "s" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FormatError, match="unknown chunker"):
        Store.open(tmp_path / "s")


def test_a_v1_store_keeps_deduplicating_against_its_old_versions(tmp_path, monkeypatch):
    """The upgrade case: a store whose versions were cut by code that knew only v1 (every byte
    hashed), ingested again by this code, finds every chunk of the unchanged delivery already
    stored, a moved file's too."""
    src = tmp_path / "Song"
    (src / "Audio Files").mkdir(parents=True)
    for i in range(3):
        _take(src / "Audio Files" / f"take_{i}.wav", 120_000 + 1000 * i, 24, 1 + i % 2)
    Store.init(tmp_path / "store", ChunkParams(4096, 16384, 65536, V1)).close()
    with Store.open(tmp_path / "store") as st:
        with monkeypatch.context() as m:  # the old code: no sampled scan anywhere
            m.setattr(ChunkParams, "stride_for", lambda self, fmt: 1)
            first = Ingester(st).ingest(src)
        (src / "Audio Files" / "take_1.wav").rename(src / "Audio Files" / "take_1 renamed.wav")
        again = Ingester(st).ingest(src)
        assert st.params.algorithm == V1
    assert first.bytes_new > 0 and again.chunks_new == 0 and again.bytes_new == 0
