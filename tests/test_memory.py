"""The allocator tuning used by restore and fsck takes on glibc and leaves results unchanged."""
from __future__ import annotations

import subprocess
import sys

from archivestore import memory


def test_tune_allocator_takes_on_glibc():
    # in a child: the setting is process-wide and must not leak into the test process
    code = "from archivestore.memory import tune_allocator; print(tune_allocator())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=str(__import__('pathlib').Path(memory.__file__).parents[1]))
    assert r.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")
