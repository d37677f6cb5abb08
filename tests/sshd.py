"""A real sshd on 127.0.0.1 for ssh:// engine tests: the docker SDK (use_ssh_client) runs
`ssh [-l user] [-p port] -- host docker system dial-stdio` from PATH, as the docker CLI does,
so the test reaches the local engine through a real OpenSSH client and server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


@contextlib.contextmanager
def ssh_engine() -> Iterator[tuple[str, dict[str, str]]]:
    """Yields (ssh://root@127.0.0.1:PORT, environment overrides that make `ssh` on PATH
    reach it); stops sshd and removes its folder afterwards, also when the test fails."""
    sshd = shutil.which("sshd", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
    ssh = shutil.which("ssh")
    require(sshd is not None and ssh is not None and shutil.which("ssh-keygen") is not None,
            "an ssh:// engine needs sshd, ssh and ssh-keygen (openssh-server, openssh-client)")
    require(shutil.which("docker") is not None,
            "an ssh:// engine needs the docker CLI: the remote side runs docker system dial-stdio")
    require(os.geteuid() == 0, "a test sshd logs in as root, so it must run as root")
    assert sshd is not None and ssh is not None
    folder = Path(tempfile.mkdtemp(prefix="gb-ssh-", dir="/tmp"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        host_key = _keygen(folder / "host_key")
        (folder / "authorized_keys").write_text(_keygen(folder / "client_key") + "\n")
        port = free_port()
        # The remote side's `docker` must reach the engine this test compares with.
        setenv = f"SetEnv DOCKER_HOST={os.environ['DOCKER_HOST']}\n" \
            if os.environ.get("DOCKER_HOST") else ""
        (folder / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder}/host_key\n"
            f"AuthorizedKeysFile {folder}/authorized_keys\nPidFile {folder}/sshd.pid\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\n" + setenv)
        # OpenSSH finds ~/.ssh through the passwd entry, not $HOME, and the SDK passes no
        # -F: a wrapper first on PATH points the real ssh at this folder's config instead.
        (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
        (folder / "ssh_config").write_text(
            f"Host *\n  IdentityFile {folder}/client_key\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {folder}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n"
            "  LogLevel ERROR\n")
        (folder / "bin").mkdir()
        wrapper = folder / "bin" / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec {ssh} -F {folder}/ssh_config "$@"\n')
        wrapper.chmod(0o755)
        # sshd refuses to start without its privilege-separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = folder / "sshd.log"
        with log.open("wb") as out:  # sshd re-execs itself, so it needs an absolute path
            proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")],
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("sshd did not start: "
                                         + log.read_text(errors="replace")[-2000:]) from None
                time.sleep(0.1)
        path = f"{folder}/bin:{os.environ.get('PATH', '')}"
        yield f"ssh://root@127.0.0.1:{port}", {"PATH": path}
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()  # its per-connection children end with their connections
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
