"""exec for real: a process joins a running container (runtime), through the daemon (engine, API,
CLI, client), and with the stock docker CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import test_engine

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
        # If an earlier test ran a container in this process (engine.run), this process is a child
        # subreaper and the orphaned sleep is its child: reap it, or its zombie keeps the cgroup busy.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


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
    # An unknown property is ignored, as the runtime spec says a runtime must (runc's exec too).
    (tmp_path / "newer.json").write_text(json.dumps({**process, "colour": "blue"}))
    r = rt("exec", "--process", str(tmp_path / "newer.json"), running)
    assert (r.returncode, r.stdout) == (0, "from-file 1\n"), r.stderr
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


# --- through the daemon: the engine, the API, the CLI, the Python client ---------------------------------

engine = test_engine.engine  # the fixture: a daemon of the test's own, with the starter busybox image
_interactive = test_engine._interactive  # a command on a pseudo-terminal of ours, keys typed into it


def _sleeper(engine, *flags: str) -> str:
    r = engine.mc("run", "-d", *flags, "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_exec_user_gets_the_home_of_its_passwd_entry(engine):
    """As runc does for Docker: HOME from the exec's user's /etc/passwd entry unless the container's
    or the exec's Env names one (busybox: root's home is /root, nobody's is /)."""
    _sleeper(engine, "--name", "homes", "-u", "nobody")
    _sleeper(engine, "--name", "homeset", "-e", "HOME=/srv")
    for user, home in (("", "/"), ("root", "/root"), ("0", "/root"), ("nobody", "/"), ("65534:0", "/"), ("4242", "/")):
        r = engine.mc("exec", *(["-u", user] if user else []), "homes", "sh", "-c", 'echo "$HOME"')
        assert r.stdout == f"{home}\n", (user, r.stdout, r.stderr)
    for cli in (engine.mc, engine.docker):
        assert cli("exec", "-u", "root", "homes", "sh", "-c", 'echo "$HOME"').stdout == "/root\n"
        assert cli("exec", "-u", "nobody", "homeset", "sh", "-c", 'echo "$HOME"').stdout == "/srv\n"
        assert cli("exec", "-u", "nobody", "-e", "HOME=/x", "homes", "sh", "-c", 'echo "$HOME"').stdout == "/x\n"
    assert engine.mc("rm", "-f", "homes", "homeset").returncode == 0


def test_minicontainer_exec(engine):
    cid = _sleeper(engine, "--name", "box", "-h", "boxhost")
    r = engine.mc("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    # The container's processes, hostname, environment, mounts and cgroup: not the host's.
    r = engine.mc("exec", "box", "sh", "-c", "ps -o pid,comm; hostname; echo $HOSTNAME; cat /proc/1/cgroup | "
                                             "cmp - /proc/self/cgroup && echo same-cgroup; cat /proc/mounts")
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in lines[1:3]] == [["1", "sleep"], [lines[2].split()[0], "ps"]] or \
        ["1", "sleep"] in [line.split() for line in lines]
    assert "boxhost" in lines and lines.count("boxhost") == 2 and "same-cgroup" in lines
    assert any(line.startswith("overlay / overlay") for line in lines)  # its own root, not the host's
    # stdin through a pipe; exit codes as docker's
    assert engine.mc("exec", "-i", "box", "cat", input="hello\n").stdout == "hello\n"
    assert engine.mc("exec", "box", "sh", "-c", "cat; echo end", input="ignored").stdout == "end\n"  # no -i: no stdin
    r = engine.mc("exec", "box", "no-such-program")
    assert r.returncode == 127 and "no-such-program" in r.stdout + r.stderr
    assert engine.mc("exec", "box", "/etc/passwd").returncode == 126
    r = engine.mc("exec", "-u", "nobody", "-w", "/tmp", "-e", "X=1", "box", "sh", "-c", "id -un; pwd; echo $X")
    assert r.stdout.split() == ["nobody", "/tmp", "1"], r.stderr
    assert engine.mc("exec", "-u", "nosuchuser", "box", "true").returncode == 1
    # --explain narrates the daemon's kernel steps: the cgroup join, each setns, the fork into the PID namespace
    r = engine.mc("exec", "--explain", "box", "true")
    assert r.returncode == 0 and "setns(/proc/" in r.stderr and "CLONE_NEWPID" in r.stderr, r.stderr
    assert "forked after setns(pid)" in r.stderr
    # -d: back at once; the process runs on in the container
    assert engine.mc("exec", "-d", "box", "sh", "-c", "sleep 0.3; touch /tmp/done").returncode == 0
    assert engine.mc("exec", "box", "ls", "/tmp/done").returncode == 1
    time.sleep(0.6)
    assert engine.mc("exec", "box", "ls", "/tmp/done").returncode == 0
    # Paused, then not running: docker's 409s, and the CLI's exit 1
    from minicontainer.client.api import APIClient

    api = APIClient(os.path.join(engine.env["MINICONTAINER_RUN"], "minicontainer.sock"), autostart=False)
    api.request("POST", f"/containers/{cid}/pause").read()
    r = engine.mc("exec", "box", "true")
    assert r.returncode == 1 and f"Container {cid} is paused, unpause the container before exec" in r.stderr
    api.request("POST", f"/containers/{cid}/unpause").read()
    assert engine.mc("exec", "box", "true").returncode == 0
    assert engine.mc("stop", "-t", "0", "box").returncode == 0
    r = engine.mc("exec", "box", "true")
    assert r.returncode == 1 and f"container {cid} is not running" in r.stderr
    assert engine.mc("rm", "box").returncode == 0


def test_exec_api_inspect_and_errors(engine):
    from minicontainer.client.api import APIClient, APIError

    cid = _sleeper(engine)
    api = APIClient(os.path.join(engine.env["MINICONTAINER_RUN"], "minicontainer.sock"), autostart=False)
    exec_id = api.json("POST", f"/containers/{cid}/exec", None, {"Cmd": ["sh", "-c", "exit 5"],
                                                                 "AttachStdout": True})["Id"]
    before = api.json("GET", f"/exec/{exec_id}/json")
    assert (before["Running"], before["ExitCode"], before["ContainerID"]) == (False, None, cid)
    assert before["ProcessConfig"] == {"tty": False, "entrypoint": "sh", "arguments": ["-c", "exit 5"],
                                       "privileged": False, "user": ""}
    stream = api.exec_start(exec_id, tty=False)
    assert list(api.frames(stream)) == []
    after = api.json("GET", f"/exec/{exec_id}/json")
    assert (after["Running"], after["ExitCode"]) == (False, 5) and after["Pid"] > 0
    events = list(api.stream_json("GET", "/events", {"since": "0", "until": f"{time.time():.3f}"}))
    assert [(e["Action"], e["Actor"]["Attributes"].get("exitCode")) for e in events
            if e["Actor"]["Attributes"].get("execID") == exec_id] == \
        [("exec_create: sh -c exit 5", None), ("exec_start: sh -c exit 5", None), ("exec_die", "5")]
    for method, path, body, status in (
            ("POST", f"/containers/{cid}/exec", {"Cmd": []}, 400),             # No exec command specified
            ("POST", f"/containers/{cid}/exec", {"Cmd": ["x"], "Colour": 1}, 400),  # nothing ignored
            ("POST", f"/containers/{cid}/exec", {"Cmd": ["x"], "Privileged": True}, 400),
            ("POST", "/containers/nope/exec", {"Cmd": ["x"]}, 404),
            ("POST", f"/exec/{exec_id}/start", {"Detach": True}, 409),          # it has run
            ("GET", "/exec/nope/json", None, 404),
            ("POST", f"/exec/{exec_id}/resize?h=0&w=0", None, 400)):
        with pytest.raises(APIError) as refused:
            api.request(method, path, None, body).read()
        assert refused.value.status == status, (path, body, refused.value)
    assert engine.mc("rm", "-f", cid).returncode == 0


def test_exec_it_on_a_real_terminal(engine):
    cid = _sleeper(engine)
    code, shown = _interactive([sys.executable, "-m", "minicontainer.cli.main", "exec", "-it", cid, "sh"], engine.env,
                               [b"echo $((6*7)); tty; stty size; echo $TERM\r", b"exit 3\r"], rows=33, columns=91)
    assert code == 3, shown
    assert "\n42\n/dev/pts/" in shown and "\n33 91\nxterm\n" in shown, shown
    assert engine.mc("rm", "-f", cid).returncode == 0


def test_exec_resize_follows_the_clients_terminal(engine):
    from minicontainer.client.api import APIClient

    cid = _sleeper(engine)
    api = APIClient(os.path.join(engine.env["MINICONTAINER_RUN"], "minicontainer.sock"), autostart=False)
    exec_id = api.json("POST", f"/containers/{cid}/exec", None, {"Cmd": ["sh", "-c", "sleep 0.5; stty size"],
                                                                 "AttachStdout": True, "Tty": True})["Id"]
    stream = api.exec_start(exec_id, tty=True, console_size=[10, 20])
    api.request("POST", f"/exec/{exec_id}/resize", {"h": 40, "w": 120}).read()
    assert b"".join(data for _k, data in api.frames(stream)) == b"40 120\r\n"
    assert engine.mc("rm", "-f", cid).returncode == 0


def test_exec_run_from_the_python_client(engine, monkeypatch):
    monkeypatch.setenv("MINICONTAINER_RUN", engine.env["MINICONTAINER_RUN"])
    monkeypatch.setenv("MINICONTAINER_AUTOSTART", "0")
    import minicontainer

    client = minicontainer.from_env()
    box = client.containers.get(_sleeper(engine))
    assert box.exec_run("sh -c 'echo out; echo err >&2; exit 3'") == (3, b"out\nerr\n")
    assert box.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True) == (0, (b"out\n", b"err\n"))
    assert box.exec_run("tty", tty=True) == (0, b"/dev/pts/0\r\n")
    assert box.exec_run("sh -c 'echo $A; pwd; id -u'", environment={"A": "x"}, workdir="/tmp", user="nobody") == \
        (0, b"x\n/tmp\n65534\n")
    assert b"".join(box.exec_run("sh -c 'echo 1; echo 2'", stream=True).output) == b"1\n2\n"
    assert box.exec_run("sleep 1", detach=True) == (None, b"")
    box.remove(force=True)


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_the_docker_cli_exec(engine):
    cid = _sleeper(engine)
    r = engine.docker("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "err\n")
    r = subprocess.run(["docker", "exec", "-i", cid, "cat"], env=engine.env, input="piped\n", text=True,
                       capture_output=True, timeout=30, check=False)
    assert (r.returncode, r.stdout) == (0, "piped\n")
    assert engine.docker("exec", "-d", cid, "touch", "/tmp/d").returncode == 0
    assert engine.docker("exec", cid, "no-such").returncode == 127
    code, shown = _interactive(["docker", "exec", "-it", cid, "sh"], engine.env,
                               [b"echo $((6*7)); stty size\r", b"exit 5\r"], rows=26, columns=92)
    assert code == 5 and "\n42\n26 92\n" in shown, shown
    assert engine.docker("rm", "-f", cid).returncode == 0


# --- attach, detach keys, signals -------------------------------------------------------------------------


class OnATerminal:
    """A command on a pseudo-terminal of ours: wait for what it shows, type into it, see how it ends."""

    def __init__(self, argv: list[str], env: dict, rows: int = 24, columns: int = 80) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.modes = termios.tcgetattr(slave)  # what the terminal is before the command: restored after?
        self.slave = os.dup(slave)             # kept, to look at the terminal's modes afterwards
        self.proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.shown = b""

    def expect(self, marker: bytes, seconds: float = 10) -> None:
        import select

        deadline = time.monotonic() + seconds
        while marker not in self.shown:
            assert time.monotonic() < deadline, f"{marker!r} not shown; the terminal shows {self.shown!r}"
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.shown += os.read(self.master, 4096)
                except OSError:  # EIO: the command ended, its terminal with it
                    assert marker in self.shown, f"{marker!r} not shown; the terminal showed {self.shown!r}"

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self) -> int:
        import termios

        code = self.proc.wait(timeout=15)
        assert termios.tcgetattr(self.slave) == self.modes, "the terminal was not restored"
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def test_detach_keys_leave_the_container_running_and_attach_comes_back(engine):
    cli = [sys.executable, "-m", "minicontainer.cli.main"]
    term = OnATerminal([*cli, "run", "-it", "--name", "detachable", "busybox", "sh"], engine.env)
    try:
        term.expect(b"# ")
        term.type(b"echo $((6*7))\r")
        term.expect(b"42")
        term.type(b"\x10\x11")  # ctrl-p ctrl-q
        assert term.wait() == 0  # run -it: detached is a success
    finally:
        term.close()
    assert engine.mc("inspect", "-f", "{{.State.Running}}", "detachable").stdout.strip() == "true"
    # attach again, with other keys; leave with them; then attach and exit the shell
    term = OnATerminal([*cli, "attach", "--detach-keys", "ctrl-a,x", "detachable"], engine.env)
    try:
        term.type(b"echo again $((2*3))\r")
        term.expect(b"again 6")
        term.type(b"\x10\x11\x01x")  # the default keys mean nothing now: they reach the shell (which ignores them)
        assert term.wait() == 1
        term.expect(b"read escape sequence")  # docker's words
    finally:
        term.close()
    term = OnATerminal([*cli, "attach", "detachable"], engine.env)
    try:
        term.type(b"\rexit 3\r")
        assert term.wait() == 3
    finally:
        term.close()
    assert engine.mc("inspect", "-f", "{{.State.Running}}", "detachable").stdout.strip() == "false"
    # an exec's terminal session too: the exec'd process keeps running
    cid = _sleeper(engine)
    term = OnATerminal([*cli, "exec", "-it", cid, "sh"], engine.env)
    try:
        term.expect(b"# ")
        term.type(b"\x10\x11")
        assert term.wait() == 1
        term.expect(b"read escape sequence")
    finally:
        term.close()
    assert "sh" in engine.mc("exec", cid, "ps", "-o", "comm").stdout.split()
    assert engine.mc("rm", "-f", cid, "detachable").returncode == 0


def test_ctrl_c_stops_a_foreground_container_without_a_terminal(engine):
    """--sig-proxy (on by default): the signals the client gets go to the container."""
    proc = subprocess.Popen([sys.executable, "-m", "minicontainer.cli.main", "run", "--name", "fg", "busybox", "sh", "-c",
                             "trap 'echo got INT; exit 7' INT; echo ready; while true; do sleep 0.05; done"],
                            env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 7
        assert proc.stdout.read() == b"got INT\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert engine.mc("inspect", "-f", "{{.State.Status}}", "fg").stdout.strip() == "exited"
    # --sig-proxy=false: Ctrl-C leaves the client only
    proc = subprocess.Popen([sys.executable, "-m", "minicontainer.cli.main", "run", "--sig-proxy=false", "--name", "fg2",
                             "busybox", "sh", "-c", "echo ready; sleep 1000"],
                            env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert engine.mc("inspect", "-f", "{{.State.Status}}", "fg2").stdout.strip() == "running"
    assert engine.mc("rm", "-f", "fg", "fg2").returncode == 0


# --- the course's redis example, offline ------------------------------------------------------------------


def test_the_starter_redis_image_answers_redis_cli_through_exec(engine):
    """`run -d redis`, then `exec -it ID redis-cli`: the starter image holds redis-cli and a shell.
    (Through redis's unix socket: the TCP one needs the container's lo up, which is the networks'.)"""
    assert engine.mc("starter", "redis").returncode == 0
    r = engine.mc("run", "-d", "redis", "redis-server", "--protected-mode", "no", "--unixsocket", "/tmp/redis.sock")
    assert r.returncode == 0, r.stderr
    rid = r.stdout.strip()
    try:
        cli = ["exec", rid, "redis-cli", "-s", "/tmp/redis.sock"]
        deadline = time.monotonic() + 10
        while engine.mc(*cli, "ping").stdout != "PONG\n":
            assert time.monotonic() < deadline, "redis never answered PONG"
            time.sleep(0.05)
        assert engine.mc(*cli, "set", "greeting", "hello").stdout == "OK\n"
        assert engine.mc(*cli, "get", "greeting").stdout == "hello\n"
        term = OnATerminal([sys.executable, "-m", "minicontainer.cli.main", "exec", "-it", rid, "redis-cli", "-s",
                            "/tmp/redis.sock"], engine.env)
        try:
            term.expect(b"> ")
            term.type(b"get greeting\r")
            term.expect(b'"hello"')
            term.type(b"quit\r")
            assert term.wait() == 0
        finally:
            term.close()
        assert engine.mc("exec", rid, "sh", "-c", "echo $0").stdout == "sh\n"
    finally:
        engine.mc("rm", "-f", rid)


def test_starter_images_are_reproducible(engine):
    """The same host binaries give the same image: building again leaves no <none> image behind."""
    first = engine.mc("images", "-q", "--no-trunc", "busybox").stdout
    assert engine.mc("starter", "busybox").returncode == 0
    assert engine.mc("images", "-q", "--no-trunc", "busybox").stdout == first
    assert engine.mc("images", "-q", "-f", "dangling=true").stdout == ""


def test_run_i_pipes_stdin_and_execs_leave_nothing_behind(engine):
    r = subprocess.run([sys.executable, "-m", "minicontainer.cli.main", "run", "--rm", "-i", "busybox", "cat"],
                       env=engine.env, input=b"hello\n", capture_output=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, b"hello\n"), r.stderr
    cid = _sleeper(engine)
    daemon = engine.daemon.pid

    def fds() -> int:
        return len(os.listdir(f"/proc/{daemon}/fd"))

    def zombie_children() -> list[int]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == daemon:
                found.append(int(pid))
        return found

    assert engine.mc("exec", cid, "true").returncode == 0
    before = fds()
    for i in range(10):
        assert engine.mc("exec", cid, "sh", "-c", f"exit {i}").returncode == i
        assert engine.mc("exec", "-i", cid, "cat", input="x").stdout == "x"
    assert engine.mc("exec", "-d", cid, "sleep", "0.2").returncode == 0
    time.sleep(0.5)
    assert zombie_children() == []  # every exec'd process reaped by the daemon, its subreaper
    assert fds() <= before  # its pipes and connections closed
    assert engine.mc("exec", cid, "ps", "-o", "comm").stdout.split() == ["COMMAND", "sleep", "ps"]
    assert engine.mc("rm", "-f", cid).returncode == 0


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_the_docker_cli_attach_and_detach(engine):
    cid = engine.docker("run", "-dit", "busybox", "sh").stdout.strip()
    term = OnATerminal(["docker", "attach", cid], engine.env)
    try:
        term.type(b"echo attached $((3*4))\r")
        term.expect(b"attached 12")
        term.type(b"\x10\x11")
        term.expect(b"read escape sequence")
        assert term.proc.wait(timeout=15) == 1
    finally:
        term.close()
    assert engine.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    term = OnATerminal(["docker", "exec", "-it", "--detach-keys", "ctrl-x,x", cid, "sh"], engine.env)
    try:
        term.expect(b"# ")
        term.type(b"\x18x")
        term.expect(b"read escape sequence")  # as our exec says it
        assert term.proc.wait(timeout=15) == 1
    finally:
        term.close()
    assert engine.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    assert engine.docker("rm", "-f", cid).returncode == 0
