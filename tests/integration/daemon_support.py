"""Starting and stopping a minicontainerd of a test's own (a subprocess, with its own roots)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from minicontainer.client.api import wait_for_daemon


def start_daemon(env: dict, run_dir: Path, *args: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / "minicontainer.sock"
    sock.unlink(missing_ok=True)  # a crashed daemon's socket file: wait for the new one to answer
    env = dict(env, MINICONTAINER_AUTOSTART="0")  # a test's CLI never starts a daemon of its own
    log = open(run_dir / "daemon.log", "ab")  # noqa: SIM115 - the daemon writes it while it runs
    proc = subprocess.Popen([sys.executable, "-m", "minicontainer.daemon.main", "--host", f"unix://{sock}",
                             "--data-root", env["MINICONTAINER_ROOT"], "--exec-root", str(run_dir), *args],
                            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    proc.log = log  # closed by stop_daemon
    if not wait_for_daemon(str(sock), proc, timeout=15):
        stop_daemon(proc)
        raise AssertionError(f"minicontainerd did not start: {(run_dir / 'daemon.log').read_text()}")
    return proc


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if hasattr(proc, "log"):
        proc.log.close()

