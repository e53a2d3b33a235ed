"""bench/ab.py's report: every round's values, the medians and B/A per step."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import ab  # noqa: E402


def _run(wall: float, cpu: float, rss: float, store: float = 865.2,
         faults: float | None = None) -> dict:
    step = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "store_disk_mb": store}
    if faults is not None:
        step["page_faults_k"] = faults
    return {"ok": True, "steps": {s: dict(step) for s in ("ingest1", "ingest2", "restore", "check")}}


def test_report_gives_rounds_medians_and_ratio():
    runs = {"A": [_run(3.0, 5.0, 110), _run(2.0, 4.0, 100), _run(2.5, 4.5, 120)],
            "B": [_run(2.0, 4.0, 90), _run(2.4, 4.4, 95), _run(1.0, 2.0, 99, store=865.3)]}
    text = ab.report(runs)
    ingest1 = text.split("\ningest1\n")[1].split("\n\n")[0]
    wall = next(line for line in ingest1.splitlines() if "wall s" in line)
    assert "A: 3.00 2.00 2.50 (median 2.50)" in wall and "B: 2.00 2.40 1.00 (median 2.00)" in wall
    assert wall.endswith("B/A 0.800")
    assert "RSS MB" in ingest1 and "(median 110)" in ingest1
    assert "store MB after both deliveries: A [865.2], B [865.2, 865.3]" in text


def test_report_gives_page_faults_when_both_sides_have_them():
    """Page faults (compare.py's page_faults_k) get their own line; a JSON from before they
    were recorded leaves the line out instead of failing."""
    runs = {"A": [_run(3.0, 5.0, 110, faults=41.8), _run(3.1, 5.1, 111, faults=43.7)],
            "B": [_run(3.0, 5.0, 100, faults=28.4), _run(3.1, 5.1, 101, faults=28.6)]}
    line = next(x for x in ab.report(runs).split("\ningest1\n")[1].splitlines() if "faults k" in x)
    assert "A: 41.8 43.7 (median 42.8)" in line and line.endswith("B/A 0.667")
    old = {"A": [_run(3.0, 5.0, 110)], "B": [_run(2.0, 4.0, 90)]}
    assert "faults k" not in ab.report(old)


def test_run_measured_counts_the_childs_page_faults(tmp_path):
    """compare.py's runner sums the child's page faults: 64 MiB touched a page at a time (no
    huge pages) is 16k faults more than a child that touches nothing."""
    import os
    import compare  # noqa: E402  (bench/ is on sys.path above)
    env = dict(os.environ)

    def faults(code: str) -> int:
        cmd = {"argv": [sys.executable, "-c", code], "cwd": None, "env": env}
        return compare.run_measured([cmd], tmp_path, f"f{abs(hash(code))}")["page_faults"]
    big = faults("import mmap\nm = mmap.mmap(-1, 64 << 20)\n"
                 "getattr(m, 'madvise', lambda a: None)(getattr(mmap, 'MADV_NOHUGEPAGE', 0))\n"
                 "for i in range(0, 64 << 20, 4096): m[i] = 1")
    small = faults("import mmap")
    assert big - small >= 16_000
