"""bench/gil.py: GIL hold and wait totals from uprobes (skipped where perf probes cannot run)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gil  # noqa: E402

SCRIPT = """\
python3.11 101 10.000000: probe_libpython3:PyEval_SaveThread:
python3.11 101 10.000100: probe_libpython3:PyEval_RestoreThread:
read_0 102 10.000200: probe_libpython3:PyEval_RestoreThread:
python3.11 101 10.000300: probe_libpython3:PyEval_RestoreThread__return:
python3.11 101 10.004300: probe_libpython3:PyEval_SaveThread:
read_0 102 10.004400: probe_libpython3:PyEval_RestoreThread__return:
read_0 102 10.004500: probe_libpython3:PyEval_SaveThread:
"""


def test_report_counts_holds_and_waits():
    events = gil.parse(SCRIPT)
    assert [e[3] for e in events] == ["S", "R", "R", "r", "S", "r", "S"]
    out = gil.report(events, 0)
    # main held 4.0 ms (10.0003-10.0043), read_0 0.1 ms; main waited 0.2 ms, read_0 4.2 ms (> 1 ms)
    assert out.startswith("span 0.00 s: GIL held 0.004 s, waited for 0.004 thread-s (0.004 in")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["read"][1:] == ["1", "0.000", "0.004", "0.004"]
    assert rows["python3.11"][1:] == ["1", "0.004", "0.000", "0.000"]


def _probes_work() -> bool:
    if shutil.which("perf") is None:
        return False
    try:
        gil.add_probes(gil.libpython(sys.executable))
    except (SystemExit, subprocess.CalledProcessError, OSError):
        return False
    return True


@pytest.mark.skipif(not _probes_work(), reason="perf uprobes unavailable (root, perf, symbols)")
def test_gil_of_a_real_command(capsys):
    code = "import threading\n" \
           "def f():\n    s = 0\n    for i in range(300000): s += i\n" \
           "ts = [threading.Thread(target=f, name=f'spin_{i}') for i in range(2)]\n" \
           "[t.start() for t in ts]; [t.join() for t in ts]\n"
    assert gil.main(["--sites", "3", "--", sys.executable, "-c", code]) == 0
    out = capsys.readouterr().out
    assert out.startswith("span ") and "spin" in out and "largest holds" in out
