"""A throwaway OpenSSH server on 127.0.0.1 (own config, host key and client key in a temp
folder) and the rclone environment for an SFTP remote named `mysftp` pointing at it."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why an SFTP server cannot be started here, or None."""
    if not os.path.exists(shutil.which("sshd") or "/usr/sbin/sshd") or not shutil.which("ssh-keygen"):
        return "OpenSSH server is not installed"
    if shutil.which("rclone") is None:
        return "rclone is not installed"
    if os.geteuid() != 0:
        return "the test sshd logs in as root"
    return None


@contextlib.contextmanager
def sftp_server(d: Path) -> Iterator[dict[str, str]]:
    """Run sshd until the block ends; yields the RCLONE_CONFIG_MYSFTP_* variables."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    d.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n")
    os.makedirs("/run/sshd", exist_ok=True)
    with open(d / "sshd.log", "wb") as log:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(d / "sshd_config")],
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        else:
            raise RuntimeError("sshd did not start")
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()[-300:]}")
        yield {f"RCLONE_CONFIG_MYSFTP_{k}": v for k, v in
               {"TYPE": "sftp", "HOST": "127.0.0.1", "PORT": str(port), "USER": "root",
                "KEY_FILE": str(d / "client_key"), "SHELL_TYPE": "unix"}.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
