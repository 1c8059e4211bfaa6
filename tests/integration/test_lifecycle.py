"""The OCI lifecycle for real: exit codes, signals, and the created -> running -> stopped states."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def state(rt, cid: str) -> dict:
    r = rt("state", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 0), ("sleep 0 & exit 200", 200)])
def test_exit_codes_propagate(rt, make_bundle, script, code):
    # `kill -TERM $$`: sh is PID 1 of its namespace with no handler for TERM, so the kernel drops the
    # signal and sh goes on to exit 0.  That is the PID 1 rule Docker users meet as a slow `stop`.
    bundle = make_bundle(["sh", "-c", script])
    r = rt("run", "--bundle", str(bundle), "codes")
    assert r.returncode == code, r.stderr


def test_sigkill_from_outside_gives_137(rt, make_bundle, runtime_root):
    import subprocess
    import sys

    bundle = make_bundle(["sleep", "60"])
    proc = subprocess.Popen([sys.executable, "-m", "minicontainer.runtime.cli", "--root", str(runtime_root),
                             "run", "--bundle", str(bundle), "killed"], stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: (runtime_root / "killed" / "state.json").exists()
                 and state(rt, "killed")["status"] == "running")
        assert rt("kill", "killed", "KILL").returncode == 0
        assert proc.wait(timeout=10) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_program_not_found_is_127_with_the_name(rt, make_bundle, runtime_root):
    bundle = make_bundle(["no-such-program", "x"])
    r = rt("run", "--bundle", str(bundle), "nf")
    assert r.returncode == 127
    assert "no-such-program" in r.stderr and "not found" in r.stderr
    assert not (runtime_root / "nf").exists()


def test_program_not_executable_is_126(rt, make_bundle):
    bundle = make_bundle(["/etc/passwd"])
    r = rt("run", "--bundle", str(bundle), "nx")
    assert r.returncode == 126
    assert "/etc/passwd" in r.stderr and "permission denied" in r.stderr


def test_create_start_state_kill_delete(rt, make_bundle, runtime_root, tmp_path):
    # The program handles SIGUSR1, prints that it did, and exits 42 on it.
    script = "trap 'echo got-usr1; exit 42' USR1; echo started; while true; do sleep 0.05; done"
    bundle = make_bundle(["sh", "-c", script])
    out = tmp_path / "out.txt"
    pid_file = tmp_path / "pid"
    with open(out, "w") as f:
        r = rt("create", "--bundle", str(bundle), "--pid-file", str(pid_file), "life", stdout=f)
    assert r.returncode == 0, r.stderr
    st = state(rt, "life")
    assert st["status"] == "created"
    assert st["pid"] == int(pid_file.read_text()) > 0
    assert st["bundle"] == str(bundle)
    assert out.read_text() == ""  # created: the program has not run yet

    assert rt("start", "life").returncode == 0
    assert state(rt, "life")["status"] == "running"
    wait_for(lambda: "started" in out.read_text())

    # A second start is refused.
    r = rt("start", "life")
    assert r.returncode == 125 and "running" in r.stderr

    # Delete without --force is refused while it runs.
    r = rt("delete", "life")
    assert r.returncode == 125 and "running" in r.stderr

    assert rt("kill", "life", "USR1").returncode == 0
    wait_for(lambda: state(rt, "life")["status"] == "stopped")
    assert "got-usr1" in out.read_text()

    assert rt("delete", "life").returncode == 0
    assert not (runtime_root / "life").exists()
    r = rt("state", "life")
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_kill_with_sigkill_number_and_delete_force(rt, make_bundle):
    bundle = make_bundle(["sleep", "60"])
    assert rt("run", "--detach", "--bundle", str(bundle), "sleeper").returncode == 0
    st = state(rt, "sleeper")
    assert st["status"] == "running"
    # sleep as PID 1 has no handler for SIGTERM, and the kernel drops unhandled signals sent to a
    # namespace's init from inside it -- but not SIGKILL from outside.
    assert rt("kill", "sleeper", "9").returncode == 0
    wait_for(lambda: state(rt, "sleeper")["status"] == "stopped")
    assert rt("delete", "sleeper").returncode == 0


def test_delete_force_kills_a_running_container(rt, make_bundle):
    bundle = make_bundle(["sleep", "60"])
    assert rt("run", "-d", "--bundle", str(bundle), "forced").returncode == 0
    pid = state(rt, "forced")["pid"]
    assert rt("delete", "--force", "forced").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or ") Z" in Path(f"/proc/{pid}/stat").read_text()


def test_delete_of_a_created_container(rt, make_bundle):
    bundle = make_bundle(["true"])
    assert rt("create", "--bundle", str(bundle), "c1").returncode == 0
    assert rt("delete", "c1").returncode == 0
    assert rt("list").stdout.count("\n") == 1  # only the header


def test_list_and_events(rt, make_bundle):
    bundle = make_bundle(["true"])
    assert rt("create", "--bundle", str(bundle), "listed").returncode == 0
    r = rt("list")
    assert "listed" in r.stdout and "created" in r.stdout
    r = rt("events", "listed")
    assert "pivot_root" in r.stdout and "unshare" in r.stdout
    assert rt("delete", "listed").returncode == 0


def test_explain_narrates_the_kernel_steps(rt, make_bundle, cgroup_join_file):
    bundle = make_bundle(["true"])
    r = rt("--explain", "run", "--bundle", str(bundle), "explained")
    assert r.returncode == 0, r.stderr
    for step in ("unshare(CLONE_NEWNS", "CLONE_NEWPID", "pivot_root(., .)", "mount(proc", "sethostname",
                 cgroup_join_file, "start: open"):
        assert step in r.stderr, step
    assert "stage1" in r.stderr and "init" in r.stderr


def test_run_forwards_signals_to_the_container(rt, make_bundle, runtime_root):
    import signal
    import subprocess
    import sys

    bundle = make_bundle(["sh", "-c", "trap 'echo term; exit 7' TERM; while true; do sleep 0.05; done"])
    proc = subprocess.Popen([sys.executable, "-m", "minicontainer.runtime.cli", "--root", str(runtime_root),
                             "run", "--bundle", str(bundle), "fwd"], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (runtime_root / "fwd" / "state.json").exists() and not (runtime_root / "fwd" /
                                                                                "exec.fifo").exists())
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 7
        assert "term" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_terminal_of_the_containers_own_through_a_console_socket(rt, make_bundle, tmp_path):
    """process.terminal, as runc does it: init makes a pseudo-terminal from the container's /dev/ptmx
    and the master side reaches whoever listens on --console-socket."""
    import socket as socketlib

    bundle = make_bundle(["sh", "-c", "tty; stty size; read line; echo got $line"],
                         process={"terminal": True, "consoleSize": {"height": 24, "width": 100}})
    refused = rt("create", "--bundle", str(bundle), "noconsole")
    assert refused.returncode != 0 and "--console-socket" in refused.stderr
    assert rt("state", "noconsole").returncode != 0  # deleted: nobody could have used it
    refused = rt("run", "--bundle", str(bundle), "noconsole2")
    assert refused.returncode != 0 and "--console-socket" in refused.stderr, refused.stderr
    path = str(tmp_path / "console.sock")
    with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        created = rt("create", "--console-socket", path, "--bundle", str(bundle), "termbox")
        assert created.returncode == 0, created.stderr
        conn, _ = server.accept()
        with conn:
            _msg, fds, _flags, _addr = socketlib.recv_fds(conn, 100, 1)
    master = fds[0]
    try:
        assert rt("start", "termbox").returncode == 0
        os.write(master, b"hello\n")  # typed at the terminal
        out = b""
        while b"got hello" not in out:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the program has exited, the terminal is gone
                break
            if not data:
                break
            out += data
        text = out.decode().replace("\r\n", "\n")
        assert "/dev/pts/0\n24 100\n" in text and "got hello" in text, text  # its own devpts, and its size
    finally:
        os.close(master)
        rt("delete", "--force", "termbox")
