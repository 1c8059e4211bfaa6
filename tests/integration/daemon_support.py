"""Starting and stopping a minicontainerd of a test's own (a subprocess, with its own roots)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from minicontainer.client.api import wait_for_daemon


def start_daemon(env: dict, run_dir: Path, *args: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / "minicontainer.sock"
    sock.unlink(missing_ok=True)  # a crashed daemon's socket file: wait for the new one to answer
    env = dict(env, MINICONTAINER_AUTOSTART="0")  # a test's CLI never starts a daemon of its own
    if "MINICONTAINER_DAEMON_CONFIG" not in env:
        env["MINICONTAINER_DAEMON_CONFIG"] = str(write_network_settings(run_dir))
    log = open(run_dir / "daemon.log", "ab")  # noqa: SIM115 - the daemon writes it while it runs
    proc = subprocess.Popen([sys.executable, "-m", "minicontainer.daemon.main", "--host", f"unix://{sock}",
                             "--data-root", env["MINICONTAINER_ROOT"], "--exec-root", str(run_dir), *args],
                            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    proc.log = log  # closed by stop_daemon
    if not wait_for_daemon(str(sock), proc, timeout=15):
        stop_daemon(proc)
        raise AssertionError(f"minicontainerd did not start: {(run_dir / 'daemon.log').read_text()}")
    return proc


# The test daemons' networks: subnets from a pool of their own (each daemon skips the subnets that
# another's bridges already route), never the 172.17/16 of a learner's Docker.
TEST_POOLS = [{"base": "10.240.0.0/12", "size": 24}]


def daemon_bridge_name(run_dir: Path) -> str:
    """A default bridge of the daemon's own (the same again after a restart): two daemons running at
    once never share one."""
    return "mct" + hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]


def write_network_settings(run_dir: Path, **extra: object) -> Path:
    path = run_dir / "daemon.json"
    path.write_text(json.dumps({"bridge": daemon_bridge_name(run_dir), "default-address-pools": TEST_POOLS, **extra}))
    return path


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

