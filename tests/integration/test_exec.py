"""exec for real: a process joins a running container (runtime), through the daemon (engine, API,
CLI, client), and with the stock docker CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest

pytestmark = pytest.mark.root


# --- the runtime: minicontainer-runtime exec ----------------------------------------------------------


@pytest.fixture
def running(rt, make_bundle):
    """A running busybox container, id "box", whose PID 1 sleeps; deleted afterwards."""
    bundle = make_bundle(["sleep", "1000"], hostname="boxhost")
    r = rt("run", "--detach", "--bundle", str(bundle), "box")
    assert r.returncode == 0, r.stderr
    yield "box"
    rt("delete", "--force", "box")


def test_exec_joins_the_containers_namespaces_and_cgroup(rt, running, tmp_path):
    init_pid = json.loads(rt("state", running).stdout)["pid"]
    r = rt("exec", running, "sh", "-c", "echo $$; hostname; ps -o pid,comm")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert int(lines[0]) < 10  # a small PID: the container's numbering, not the host's
    assert lines[1] == "boxhost"
    assert any(line.split() == ["1", "sleep"] for line in lines)  # the container's PID 1, not the host's
    # Seen from the host: the same namespaces, cgroup and root as init.
    pid_file = tmp_path / "exec.pid"
    r = rt("exec", "--detach", "--pid-file", str(pid_file), running, "sleep", "30")
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    try:
        for ns in ("mnt", "uts", "ipc", "pid", "net", "cgroup"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init_pid}/ns/{ns}")
        with open(f"/proc/{pid}/cgroup") as mine, open(f"/proc/{init_pid}/cgroup") as inits:
            assert mine.read() == inits.read()
        assert os.readlink(f"/proc/{pid}/root") == os.readlink(f"/proc/{init_pid}/root")
    finally:
        os.kill(pid, 9)


def test_exec_exit_codes_env_cwd_user(rt, running):
    assert rt("exec", running, "sh", "-c", "exit 7").returncode == 7
    r = rt("exec", running, "no-such-program")
    assert r.returncode == 127 and "no-such-program" in r.stderr
    assert rt("exec", running, "/etc/passwd").returncode == 126
    r = rt("exec", "-e", "FOO=bar", "--cwd", "/tmp", "-u", "1000:1001", running, "sh", "-c", 'echo "$FOO $(pwd) $(id -u) $(id -g)"')
    assert r.stdout.split() == ["bar", "/tmp", "1000", "1001"], r.stderr
    r = rt("exec", "nope", "true")
    assert r.returncode == 125 and "does not exist" in r.stderr


def test_exec_with_a_process_file(rt, running, tmp_path):
    process = {"args": ["sh", "-c", "echo from-file $X"], "env": ["PATH=/bin", "X=1"], "cwd": "/"}
    (tmp_path / "p.json").write_text(json.dumps(process))
    r = rt("exec", "--process", str(tmp_path / "p.json"), running)
    assert (r.returncode, r.stdout) == (0, "from-file 1\n"), r.stderr
    (tmp_path / "bad.json").write_text(json.dumps({**process, "colour": "blue"}))
    r = rt("exec", "--process", str(tmp_path / "bad.json"), running)
    assert r.returncode == 125 and "process.colour" in r.stderr
    r = rt("exec", "--process", str(tmp_path / "p.json"), "--cwd", "/tmp", running)
    assert r.returncode == 125 and "--cwd" in r.stderr


def test_exec_explain_narrates_the_setns_calls(rt, running):
    r = rt("--explain", "exec", running, "true")
    assert r.returncode == 0, r.stderr
    for ns in ("CLONE_NEWPID", "CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC"):
        assert f"{ns})" in r.stderr and "setns(" in r.stderr
    assert "forked after setns(pid)" in r.stderr


def test_exec_tty_sends_a_terminal_of_the_containers_own(rt, running, tmp_path):
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got: dict = {}

    def receive():
        conn, _ = server.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 100, 1)
            got["fd"] = fds[0]

    t = threading.Thread(target=receive)
    t.start()
    try:
        r = rt("exec", "-t", "--console-socket", path, running, "sh", "-c", "tty; exit 4")
        t.join(10)
        assert r.returncode == 4, r.stderr
        out = b""
        while True:
            try:
                chunk = os.read(got["fd"], 1024)
            except OSError:
                break  # EIO: the slave side is closed
            if not chunk:
                break
            out += chunk
        assert out.strip().startswith(b"/dev/pts/")
    finally:
        server.close()
        if "fd" in got:
            os.close(got["fd"])
    r = rt("exec", "-t", running, "true")
    assert r.returncode == 125 and "--console-socket" in r.stderr


def test_exec_into_a_stopped_container_is_refused(rt, make_bundle):
    bundle = make_bundle(["true"])
    assert rt("create", "--bundle", str(bundle), "short").returncode == 0
    try:
        assert rt("start", "short").returncode == 0
        subprocess.run(["sleep", "0.2"], check=True)
        r = rt("exec", "short", "true")
        assert r.returncode == 125 and "stopped" in r.stderr
    finally:
        rt("delete", "--force", "short")
