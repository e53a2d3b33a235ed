"""A throw-away Ceph cluster with a RADOS Gateway on 127.0.0.1, for the `s3` tests and bench/s3.py.

One monitor, one memstore OSD (data in RAM), radosgw; no mgr, no cephx. Needs Debian's
`ceph-mon ceph-osd radosgw ceph-common` packages. `CephRGW(scratch).start()` returns the
environment (AWS_* variables) clients need; `stop()` kills the daemons it started by pid.

    python3 tests/ceph_rgw.py /tmp/rgw        # start, print `export` lines, wait for Ctrl-C
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")


def available() -> bool:
    return all(shutil.which(p) for p in PACKAGES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class CephRGW:
    """One single-node cluster under `scratch`; ports are picked free at start."""

    def __init__(self, scratch: Path, store_mb: int = 6144) -> None:
        self.dir = Path(scratch)
        self.store_mb = store_mb
        self.procs: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}

    def _conf(self, mon_port: int, rgw_port: int, osd_min: int) -> str:
        d = self.dir
        return f"""[global]
fsid = {uuid.uuid4()}
mon host = [v2:127.0.0.1:{mon_port}]
public addr = 127.0.0.1
public network = 127.0.0.1/32
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = {osd_min}
ms bind port max = {osd_min + 60}
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
run dir = {d}/run
log file = {d}/log/$name.log
crash dir = {d}/log/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
[client]
admin socket =
client mount timeout = 30
rados mon op timeout = 30
[mon]
mon data = {d}/mon
admin socket = {d}/run/$name.asok
[osd]
osd data = {d}/osd
admin socket = {d}/run/$name.asok
osd objectstore = memstore
memstore device bytes = {self.store_mb << 20}
[client.rgw.t]
admin socket = {d}/run/$name.asok
rgw data = {d}/rgw
# tcp_nodelay: without it small GETs wait ~40 ms for Nagle
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw thread pool size = 64
auth client required = none
ms mon client mode = crc
"""

    def _run(self, *args: str, timeout: float = 60) -> str:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()[-800:]}")
        return r.stdout

    def _daemon(self, name: str, *args: str) -> None:
        log = open(self.dir / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def _wait(self, what: str, ok, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited ({p.returncode}) while waiting for {what}; "
                                       f"see {self.dir}/log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {self.dir}/log")
            time.sleep(0.1)

    def start(self) -> dict[str, str]:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for sub in ("mon", "osd", "rgw", "run", "log"):
            (self.dir / sub).mkdir(parents=True)
        mon_port, rgw_port = _free_port(), _free_port()
        osd_min = 20000 + (os.getpid() % 200) * 100
        conf = str(self.dir / "ceph.conf")
        Path(conf).write_text(self._conf(mon_port, rgw_port, osd_min))
        try:
            self._run("monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]",
                      "--fsid", Path(conf).read_text().split("fsid = ")[1].split()[0],
                      str(self.dir / "monmap"))
            self._run("ceph-mon", "-c", conf, "--mkfs", "-i", "a", "--monmap", str(self.dir / "monmap"))
            self._daemon("mon", "ceph-mon", "-f", "-c", conf, "-i", "a")
            self._wait("the monitor", lambda: _listening(mon_port))
            ceph = ("ceph", "-c", conf, "--connect-timeout", "30")
            osd_uuid = str(uuid.uuid4())
            osd_id = json.loads(self._run(*ceph, "osd", "new", osd_uuid, "--format", "json"))["osdid"]
            self._run("ceph-osd", "-c", conf, "-i", str(osd_id), "--mkfs", "--osd-uuid", osd_uuid,
                      timeout=120)
            self._daemon("osd", "ceph-osd", "-f", "-c", conf, "-i", str(osd_id))
            self._wait("the OSD", lambda: json.loads(self._run(*ceph, "osd", "stat", "--format",
                                                                "json")).get("num_up_osds", 0) >= 1)
            access, secret = secrets.token_hex(10).upper(), secrets.token_urlsafe(30)[:40]
            self._run("radosgw-admin", "-c", conf, "user", "create", "--uid=tester",
                      "--display-name=tester", f"--access-key={access}", f"--secret-key={secret}",
                      timeout=180)
            self._daemon("rgw", "radosgw", "-f", "-c", conf, "-n", "client.rgw.t")
            endpoint = f"http://127.0.0.1:{rgw_port}"

            def answers() -> bool:
                try:
                    urllib.request.urlopen(endpoint + "/", timeout=2).read()
                    return True
                except Exception:  # noqa: BLE001 - not up yet
                    return False
            self._wait("radosgw", answers, timeout=120)
        except BaseException:
            self.stop(keep_logs=True)
            raise
        self.env = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                    # RGW in Debian 12 predates the default CRC32 checksums of new boto3
                    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}
        return self.env

    def stop(self, keep_logs: bool = False) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()
        if not keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    rgw = CephRGW(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/archivestore-rgw"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill PID` stops the daemons too
    env = rgw.start()
    print("\n".join(f"export {k}={v}" for k, v in env.items()), flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        rgw.stop()
