"""The benchmark corpus generator: determinism, delivery-2 revisions, BWF layout."""
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import corpus  # noqa: E402

SIZE_MB, PROJECTS, SEED = 2, 2, 7


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    a = tmp_path_factory.mktemp("a")
    b = tmp_path_factory.mktemp("b")
    da = corpus.generate(a, SIZE_MB, PROJECTS, SEED)
    db = corpus.generate(b, SIZE_MB, PROJECTS, SEED)
    return a, b, da, db


def test_same_seed_same_bytes(gen):
    a, b, da, db = gen
    for d in ("delivery1", "delivery2"):
        ta, tb = _tree(a / d), _tree(b / d)
        assert ta.keys() == tb.keys()
        assert all(ta[k] == tb[k] for k in ta), [k for k in ta if ta[k] != tb[k]]
    assert da["changes"] == db["changes"]


def test_other_seed_other_bytes(tmp_path):
    d = corpus.generate(tmp_path, 1, 1, SEED + 1)
    name = d["projects"][0]["name"]
    wav = next((tmp_path / "delivery1" / name / "Audio Files").glob("Kick_01.wav"))
    other = corpus.generate(tmp_path / "x", 1, 1, SEED + 2)
    wav2 = tmp_path / "x" / "delivery1" / other["projects"][0]["name"] / "Audio Files" / "Kick_01.wav"
    assert wav.read_bytes() != wav2.read_bytes()


def test_size_roughly_matches(gen):
    _, _, d, _ = gen
    assert 0.85 * SIZE_MB * 1e6 <= d["delivery1"]["bytes"] <= 1.15 * SIZE_MB * 1e6
    assert d["delivery2"]["bytes"] > d["delivery1"]["bytes"]


def _check_wav(path: Path, bwf: bool):
    raw = path.read_bytes()
    chunks = corpus.parse_riff(raw)
    ids = [c[0] for c in chunks]
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    assert ids[-1] == "data" and "fmt " in ids
    if bwf:
        assert ids.index("bext") < ids.index("fmt ") < ids.index("data"), ids
        _, off, size = chunks[ids.index("bext")]
        assert size >= 602
        version = struct.unpack_from("<H", raw, off + 256 + 32 + 32 + 10 + 8 + 8)[0]
        assert version == 1
        assert raw[off + 602: off + size].startswith(b"A=PCM,F=48000,W=24")
    _, foff, fsize = chunks[ids.index("fmt ")]
    fmt_tag, ch, rate, _, block, bits = struct.unpack_from("<HHIIHH", raw, foff)
    assert fmt_tag == 1 and bits in (16, 24) and block == ch * bits // 8
    _, doff, dsize = chunks[-1]
    assert doff + dsize + dsize % 2 == len(raw) and dsize % block == 0
    return ch, bits, rate, doff, dsize


def test_bwf_layout(gen):
    a, _, _, _ = gen
    for d in ("delivery1", "delivery2"):
        for p in (a / d).glob("*/Audio Files/*.wav"):
            assert _check_wav(p, bwf=True)[:3] == (1, 24, 48000)
        for p in (a / d).glob("*/Bounced Files/*.wav"):
            assert _check_wav(p, bwf=True)[:3] == (2, 24, 48000)
        for p in (a / d).glob("*/Samples/*.wav"):
            _check_wav(p, bwf=False)


def test_delivery2_differences(gen):
    a, _, desc, _ = gen
    t1, t2 = _tree(a / "delivery1"), _tree(a / "delivery2")
    kinds = {}
    for c in desc["changes"]:
        kinds.setdefault(c["kind"], []).append(c)
    for k in ("new_take", "punch_in", "extended", "bext_edited", "renamed", "deleted", "new_bounce",
              "session_edited"):
        assert k in kinds, k
    assert len(kinds["new_take"]) == 2 * PROJECTS
    touched = set()
    for c in desc["changes"]:
        p = c["path"]
        touched.add(p)
        if c["kind"] in ("new_take", "new_bounce", "session_backup_added"):
            assert p in t2 and p not in t1
        elif c["kind"] == "deleted":
            assert p in t1 and p not in t2
        elif c["kind"] == "renamed":
            touched.add(c["from"])
            assert c["from"] in t1 and c["from"] not in t2 and p not in t1 and t2[p] == t1[c["from"]]
        elif c["kind"] == "punch_in":
            old, new = t1[p], t2[p]
            lo, hi = c["replaced_bytes"]
            assert len(old) == len(new) and old[:lo] == new[:lo] and old[hi:] == new[hi:]
            assert old[lo:hi] != new[lo:hi]
            assert (hi - lo) * 3 >= len(old) * 0.9  # about a third of the file
        elif c["kind"] == "extended":
            old, new = t1[p], t2[p]
            assert len(new) > len(old)
            _, _, _, doff, dsize = _check_wav(a / "delivery2" / p, bwf=True)
            assert dsize == 3 * c["new_frames"]
            old_dsize = 3 * c["old_frames"]
            assert new[doff:doff + old_dsize] == old[doff:doff + old_dsize]  # audio kept, appended after
            assert new[:4] == old[:4] and new[8:doff - 4] == old[8:doff - 4]  # only sizes changed
        elif c["kind"] == "bext_edited":
            old, new = t1[p], t2[p]
            c1 = dict((k, (o, s)) for k, o, s in corpus.parse_riff(old))
            c2 = dict((k, (o, s)) for k, o, s in corpus.parse_riff(new))
            assert c2["data"][0] - c1["data"][0] == c["data_shift"] == corpus.BEXT_SHIFT
            assert c["data_shift"] % 3 != 0
            assert old[c1["data"][0]:] == new[c2["data"][0]:]
            ob, nb = c1["bext"][0], c2["bext"][0]
            assert old[ob:ob + 256] != new[nb:nb + 256]  # description edited
        elif c["kind"] == "session_edited":
            old, new = t1[p], t2[p]
            assert len(old) == len(new)
            ndiff = sum(x != y for x, y in zip(old, new))
            assert 0 < ndiff < 100
        elif c["kind"] in ("wavecache_regenerated", "notes_appended"):
            assert t1[p] != t2[p]
    # everything not listed as changed is byte-identical
    for p in set(t1) & set(t2):
        if p not in touched:
            assert t1[p] == t2[p], p
    assert set(t2) - set(t1) <= touched and set(t1) - set(t2) <= touched


def test_layout_and_shared_samples(gen):
    a, _, desc, _ = gen
    names = [p["name"] for p in desc["projects"]]
    assert len(names) == PROJECTS
    samples = []
    for n in names:
        root = a / "delivery1" / n
        assert (root / f"{n}.ptx").is_file() and (root / "WaveCache.wfm").is_file()
        assert (root / "notes.txt").is_file()
        assert len(list((root / "Session File Backups").glob("*.ptx"))) >= 3
        assert len(list((root / "Bounced Files").glob("*.wav"))) >= 1
        samples.append(_tree(root / "Samples"))
    assert samples[0] and all(s == samples[0] for s in samples)
