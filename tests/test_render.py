"""cli.render: the ingest summary's lists (skipped entries, codec-check failures) and the
codec's record in `archive stats`."""
from __future__ import annotations

from archivestore.cli.render import LIST_MAX, codec_record, ingest_summary
from archivestore.ingest import IngestResult


def _result(n: int) -> IngestResult:
    res = IngestResult(project="P", version=1, files=1, bytes_in=1, seconds=1.0)
    res.skipped = [{"path": f"f{i}", "reason": "is a FIFO, not archived"} for i in range(n)]
    res.codec_failed = [{"chunk": f"{i:064x}", "bytes": 1000, "bits": 24, "channels": 2,
                         "big_endian": False, "float": False} for i in range(n)]
    res.codec_failed_count = n
    return res


def test_long_lists_are_cut_unless_verbose():
    n = LIST_MAX + 2
    _out, err = ingest_summary(_result(n))
    assert sum(ln.startswith("    skipped f") for ln in err) == LIST_MAX
    assert sum(ln.startswith("    chunk ") for ln in err) == LIST_MAX
    assert err.count("    … and 2 more (-v lists all)") == 2
    _out, err = ingest_summary(_result(n), verbose=1)
    assert sum(ln.startswith("    skipped f") for ln in err) == n
    assert sum(ln.startswith("    chunk ") for ln in err) == n
    assert not any("more (-v lists all)" in ln for ln in err)
    assert f"    chunk {0:064x} (1000 bytes, 24-bit, 2 channels)" in err


def test_short_lists_are_whole():
    _out, err = ingest_summary(_result(1))
    assert "  1 entry not archived:" in err and "    skipped f0: is a FIFO, not archived" in err
    assert any("failed its own check on 1 chunk " in ln for ln in err)
    assert not any("more (-v lists all)" in ln for ln in err)


def test_failures_past_the_kept_ones_are_counted_not_listed():
    """Ingest keeps the first CODEC_FAILED_KEEP failures and counts all: the summary gives the
    count, lists what was kept, and does not promise that -v lists the rest."""
    res = _result(LIST_MAX + 2)
    res.skipped = []
    res.codec_failed_count = 5000
    _out, err = ingest_summary(res)
    assert any("failed its own check on 5000 chunks" in ln for ln in err)
    assert f"    … and {5000 - LIST_MAX} more (-v lists the first {LIST_MAX + 2})" in err
    _out, err = ingest_summary(res, verbose=1)
    assert sum(ln.startswith("    chunk ") for ln in err) == LIST_MAX + 2
    assert "    … and 4988 more" in err


def test_codec_record_says_what_was_checked():
    c = {"checked": 1, "failed": 0, "unchecked": 0, "versions_unrecorded": 0}
    assert codec_record(c) == ["  1 audio payload decoded and checked at ingest, none failed"]
    c = {"checked": 40, "failed": 2, "unchecked": 7, "versions_unrecorded": 3}
    lines = codec_record(c)
    assert lines[0].startswith("  40 audio payloads decoded and checked at ingest, 2 FAILED")
    assert lines[1].startswith("  7 audio payloads stored without that check (--no-verify-codec)")
    assert lines[2] == "  3 versions made before archivestore recorded this check"
    assert codec_record({"checked": 0, "failed": 0, "unchecked": 0, "versions_unrecorded": 0}) == []
