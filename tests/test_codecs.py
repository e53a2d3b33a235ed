"""codecs: the zstd path of blobs that are not audio."""
from __future__ import annotations

import os

from archivestore import codecs

from .conftest import ticks_inside


def test_zstd_round_trip_and_raw_fallback():
    text = b"session notes, take 3: keep the second chorus\n" * 4000
    codec, stored = codecs.encode(text)
    assert codec == codecs.ZSTD and len(stored) < len(text) // 10
    assert codecs.decode(codec, stored, len(text)) == text
    noise = os.urandom(300_000)  # incompressible: stored as it is
    codec, stored = codecs.encode(noise)
    assert codec == codecs.RAW and stored == noise


def test_other_threads_run_during_a_large_zstd_compress():
    """Ingest compresses non-audio chunks on its encode threads while the read threads hash:
    `codecs._zstd` must not hold the GIL through the compression (python-zstandard 0.25's
    one-shot `compress` does not; the stream writer used before held it while it grew its
    output)."""
    data = b"".join(os.urandom(64) * (i % 7 + 1) for i in range(60_000))  # ~15 MB, compressible
    assert ticks_inside(lambda: codecs._zstd(codecs.ZSTD_LEVEL, data)) > 0
