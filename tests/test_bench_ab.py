"""bench/ab.py's report: every round's values, the medians and B/A per step."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import ab  # noqa: E402


def _run(wall: float, cpu: float, rss: float, store: float = 865.2) -> dict:
    step = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss, "store_disk_mb": store}
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
