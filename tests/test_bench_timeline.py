"""bench/timeline.py: a command's threads by their Python names, and the stall sampler."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import timeline  # noqa: E402

BUSY = """
import threading, time
def spin():
    t = time.perf_counter()
    while time.perf_counter() - t < 0.4:
        pass
ts = [threading.Thread(target=spin, name=f"worker_{i}") for i in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
time.sleep(0.2)  # only the main thread, asleep: no thread runnable
"""


def test_group_names():
    assert timeline.group("read_0") == "read" and timeline.group("direct-io_12") == "direct-io"
    assert timeline.group("python3.11") == "python3.11" and timeline.group("a_b") == "a_b"


def test_timeline_names_python_threads_and_finds_stalls(capsys):
    code = timeline.main(["--interval", "0.1", "--stalls", "--", sys.executable, "-c", BUSY])
    out = capsys.readouterr().out
    assert code == 0
    assert "worker" in out.splitlines()[0]  # the threads' Python name, grouped
    summary = next(line for line in out.splitlines() if line.startswith("wall "))
    cpu = float(summary.split("worker ")[1].split(",")[0])
    assert cpu > 0.2  # two threads spinning 0.4 s (sharing the GIL: about one core)
    stalls = next(line for line in out.splitlines() if line.startswith("no thread runnable"))
    assert not stalls.startswith("no thread runnable in 0 of")
    # the spinners share the GIL: mostly one of them runnable, i.e. one core idle
    one = next(line for line in out.splitlines() if line.startswith("one thread runnable"))
    assert not one.startswith("one thread runnable (one core idle) in 0 samples")
