"""Containers through the real daemon and engine: our CLI, the docker CLI and docker-py as clients."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from daemon_support import start_daemon, stop_daemon

pytestmark = pytest.mark.root


@pytest.fixture
def engine(tmp_path):
    """A daemon of the test's own (real engine) with the starter busybox image; stopped at the end."""
    env = dict(os.environ, MINICONTAINER_ROOT=str(tmp_path / "data"), MINICONTAINER_RUN=str(tmp_path / "run"),
               MINICONTAINER_CONFIG=str(tmp_path / "client"), MINICONTAINER_AUTOSTART="0", DOCKER_HOST=f"unix://{tmp_path}/run/minicontainer.sock",
               DOCKER_CONFIG=str(tmp_path / "docker"))

    class Engine:
        def mc(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "minicontainer.cli.main", *args], env=env, text=True,
                                  capture_output=True, timeout=timeout, input=input, check=False)

        def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
            if shutil.which("docker") is None:  # (what the test checked with our own CLI before this stands)
                pytest.skip("the docker CLI is not installed on this machine")
            return subprocess.run(["docker", *args], env=env, text=True, capture_output=True, timeout=timeout,
                                  check=False)

        def restart(self) -> None:
            stop_daemon(self.daemon)
            self.daemon = start_daemon(env, tmp_path / "run")

        def crash(self) -> None:
            self.daemon.send_signal(signal.SIGKILL)
            self.daemon.wait()

    e = Engine()
    e.env, e.root = env, tmp_path
    e.daemon = start_daemon(env, tmp_path / "run")
    built = e.mc("starter", "busybox")
    assert built.returncode == 0, built.stderr
    yield e
    stop_daemon(e.daemon)  # a daemon stops its running containers as it shuts down


def test_run_ps_logs_inspect_rm(engine):
    r = engine.mc("run", "--name", "first", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n" and r.stderr == "err\n"
    ps = engine.mc("ps", "-a").stdout.splitlines()
    assert ps[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert "Exited (3)" in ps[1] and ps[1].endswith("first")
    logs = engine.mc("logs", "first")
    assert logs.stdout == "out\n" and logs.stderr == "err\n"  # stdout and stderr kept apart
    stamped = engine.mc("logs", "-t", "--tail", "2", "first")
    assert stamped.stdout.endswith(" out\n") and stamped.stdout[:4].isdigit()
    assert engine.mc("logs", "--tail", "1", "first").stdout == ""  # the last line of all is stderr's
    state = json.loads(engine.mc("inspect", "first").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 3 and state["OOMKilled"] is False
    assert engine.mc("rm", "first").returncode == 0
    assert engine.mc("ps", "-aq").stdout == ""


def test_ids_names_and_conflicts(engine):
    cid = engine.mc("run", "-d", "--name", "web", "busybox", "sleep", "30").stdout.strip()
    assert len(cid) == 64
    r = engine.mc("run", "-d", "--name", "web", "busybox", "true")
    assert r.returncode == 125 and 'The container name "/web" is already in use' in r.stderr
    r = engine.mc("rm", "web")
    assert r.returncode == 1 and "cannot remove a running container" in r.stderr
    assert engine.mc("stop", "-t", "1", cid[:6]).returncode == 0  # a unique prefix is enough
    assert engine.mc("stop", "web").returncode == 0  # stopping a stopped container is no error
    running = engine.mc("run", "-d", "--name", "still", "busybox", "sleep", "30").stdout.strip()
    assert engine.mc("ps", "-q", "--filter", "status=exited").stdout.split() == [cid[:12]]
    assert engine.mc("ps", "-aq", "--filter", "name=sti").stdout.split() == [running[:12]]
    assert len(engine.mc("ps", "-aq", "--filter", "ancestor=busybox").stdout.split()) == 2
    assert engine.mc("rm", "-f", "still").returncode == 0
    auto = engine.mc("run", "-d", "busybox", "true").stdout.strip()
    name = json.loads(engine.mc("inspect", auto).stdout)[0]["Name"]
    assert "_" in name  # adjective_noun
    assert engine.mc("container", "prune", "-f").returncode == 0
    assert engine.mc("ps", "-aq").stdout == ""


def test_pid_1_ignores_sigterm_but_init_forwards_it(engine):
    engine.mc("run", "-d", "--name", "plain", "busybox", "sleep", "60")
    engine.mc("run", "-d", "--init", "--name", "tini", "busybox", "sleep", "60")
    time.sleep(0.5)  # tini must have installed its signal handling
    t = time.monotonic()
    assert engine.mc("stop", "-t", "2", "plain").returncode == 0
    plain = time.monotonic() - t
    t = time.monotonic()
    assert engine.mc("stop", "tini").returncode == 0
    tini = time.monotonic() - t
    codes = {n: json.loads(engine.mc("inspect", n).stdout)[0]["State"]["ExitCode"] for n in ("plain", "tini")}
    assert codes == {"plain": 137, "tini": 143}
    assert plain >= 2  # the whole grace period: the kernel dropped SIGTERM to a PID 1 with no handler
    assert tini < 1.5  # (the CLI's own start-up is in this figure)


def test_exit_codes_and_errors(engine):
    assert engine.mc("run", "busybox", "no-such-program").returncode == 127
    assert engine.mc("run", "busybox", "/etc/passwd").returncode == 126
    assert engine.mc("run", "--frobnicate", "busybox").returncode == 125
    assert engine.mc("kill", "no-such-container").returncode == 1
    r = engine.mc("run", "no-such-image-anywhere")  # a pull attempt (no registry knows it), then an error
    assert r.returncode == 125 and "Unable to find image 'no-such-image-anywhere:latest' locally" in r.stderr


def test_a_daemon_restart_loses_nothing(engine):
    engine.mc("create", "--name", "made", "busybox", "true")
    engine.mc("run", "--name", "done", "busybox", "sh", "-c", "echo finished; exit 5")
    engine.mc("run", "-d", "--name", "alive", "busybox", "sh", "-c", "echo before; sleep 1; echo after; sleep 60")
    engine.mc("run", "-d", "--name", "dies", "busybox", "sh", "-c", "sleep 1; exit 9")
    time.sleep(0.3)
    engine.crash()  # the daemon dies; its containers go on
    time.sleep(1.5)  # "dies" ends while no daemon is there
    engine.daemon = start_daemon(engine.env, engine.root / "run")
    ps = engine.mc("ps", "-a").stdout
    assert "Created" in ps and "Exited (5)" in ps and "Up " in ps
    dies = json.loads(engine.mc("inspect", "dies").stdout)[0]["State"]
    assert dies["Status"] == "exited" and "while minicontainerd was down" in dies["Error"]
    assert engine.mc("logs", "done").stdout == "finished\n"
    time.sleep(0.3)
    assert engine.mc("logs", "alive").stdout == "before\nafter\n"  # written while the daemon was down
    assert engine.mc("stop", "-t", "1", "alive").returncode == 0


def test_twenty_concurrent_runs(engine):
    def run(i: int) -> subprocess.CompletedProcess:
        return engine.mc("run", "--name", f"c{i}", "busybox", "sh", "-c", f"echo {i}", timeout=120)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(run, range(20)))
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
    names = {line.split()[-1] for line in engine.mc("ps", "-a").stdout.splitlines()[1:]}
    assert names == {f"c{i}" for i in range(20)}
    assert engine.mc("container", "prune", "-f").returncode == 0


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_the_real_docker_cli(engine):
    v = engine.docker("version")
    assert "Server: minicontainer" in v.stdout
    r = engine.docker("run", "--rm", "busybox", "sh", "-c", "echo hello from docker")
    assert r.returncode == 0 and r.stdout == "hello from docker\n"
    assert engine.docker("run", "busybox", "sh", "-c", "exit 4").returncode == 4
    cid = engine.docker("run", "-d", "--name", "dk", "busybox", "sleep", "30").stdout.strip()
    assert engine.docker("ps", "--format", "{{.Names}}").stdout.strip() == "dk"
    assert engine.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    assert engine.docker("kill", "dk").returncode == 0
    assert engine.docker("rm", "dk").returncode == 0
    assert "busybox" in engine.docker("images").stdout
    assert engine.docker("container", "prune", "-f").returncode == 0


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_the_real_docker_cli_moves_images(engine, tmp_path):
    import io
    import tarfile

    archive = tmp_path / "busybox.tar"
    saved = engine.docker("save", "-o", str(archive), "busybox")
    assert saved.returncode == 0, saved.stderr
    assert engine.docker("rmi", "busybox").returncode == 0
    loaded = engine.docker("load", "-i", str(archive))
    assert loaded.returncode == 0 and "Loaded image: busybox:latest" in loaded.stdout, loaded.stderr
    assert engine.docker("tag", "busybox", "mine:v1").returncode == 0
    history = engine.docker("history", "mine:v1")
    assert history.returncode == 0 and "IMAGE" in history.stdout, history.stderr
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    imported = engine.docker("import", "-c", "CMD [\"/bin/sh\"]", str(rootfs), "imp:1")
    assert imported.returncode == 0 and imported.stdout.strip().startswith("sha256:"), imported.stderr
    assert engine.docker("image", "inspect", "-f", "{{json .Config.Cmd}}", "imp:1").stdout.strip() == '["/bin/sh"]'
    # the docker CLI parses every time in the JSON (a bad one fails the whole inspect)
    assert engine.docker("inspect", "-f", "{{.Created}}", "busybox").returncode == 0


def test_names_and_filters_docker_refuses_are_refused(engine):
    bad = engine.mc("run", "--name", "bad name!", "busybox", "true")
    assert bad.returncode == 125 and "Invalid container name (bad name!)" in bad.stderr
    for given, said in (("bogus=1", "invalid filter 'bogus'"), ("status=bogus", "invalid filter 'status=bogus'")):
        r = engine.mc("ps", "-a", "--filter", given)
        assert (r.returncode, r.stderr) == (1, f"Error response from daemon: {said}\n")
    zero = engine.mc("run", "-d", "--name", "zero", "busybox", "true").stdout.strip()
    three = engine.mc("run", "-d", "--name", "three", "-l", "keep=no", "busybox", "sh", "-c", "exit 3").stdout.strip()
    assert engine.mc("wait", "zero", "three").stdout.split() == ["0", "3"]
    assert engine.mc("ps", "-aq", "--no-trunc", "--filter", "exited=3").stdout.split() == [three]
    fresh = engine.mc("create", "--name", "fresh", "busybox", "true").stdout.strip()  # never ran: no exit code
    assert engine.mc("ps", "-aq", "--no-trunc", "--filter", "exited=0").stdout.split() == [zero]
    assert engine.mc("ps", "-aq", "--no-trunc", "--filter", "name=^zero$").stdout.split() == [zero]  # a regex
    assert engine.mc("ps", "-aq", "--no-trunc", "--filter", "name=^/fre").stdout.split() == [fresh]
    assert engine.mc("rm", "fresh").returncode == 0
    assert engine.mc("ps", "-aq", "--no-trunc", "--filter", "label=keep=no").stdout.split() == [three]
    pruned = engine.mc("container", "prune", "-f", "--filter", "label=keep")
    assert pruned.returncode == 0 and three in pruned.stdout and zero not in pruned.stdout
    assert engine.mc("ps", "-aq", "--no-trunc").stdout.split() == [zero]
    assert engine.mc("rm", "zero").returncode == 0


def test_what_docker_says_to_small_mistakes(engine):
    r = engine.mc("run", "--bogus", "busybox", "true")
    assert r.returncode == 125 and r.stderr.startswith("unknown flag: --bogus\n")
    r = engine.mc("ps", "extra")
    assert r.returncode == 125 and r.stderr.startswith('"minicontainer ps" accepts no more arguments')
    env_file = engine.root / "env"
    env_file.write_text("  # a comment\nSPACED=kept as is \n")
    r = engine.mc("run", "--rm", "--env-file", str(env_file), "busybox", "sh", "-c", 'echo "[$SPACED]"')
    assert r.stdout == "[kept as is ]\n", r.stderr
    env_file.write_text("export FOO=bar\n")
    r = engine.mc("run", "--rm", "--env-file", str(env_file), "busybox", "true")
    assert r.returncode == 125 and "variable 'export FOO' contains whitespaces" in r.stderr
    r = engine.mc("run", "--rm", "--env-file", "/nonexistent/env", "busybox", "true")
    assert (r.returncode, r.stderr) == (125, "open /nonexistent/env: no such file or directory\n")
    r = engine.mc("load", "-i", "/nonexistent/busybox.tar")
    assert (r.returncode, r.stderr) == (1, "open /nonexistent/busybox.tar: no such file or directory\n")
    # A reader that leaves early (| head -1): no traceback, no "Broken pipe" error, SIGPIPE's status.
    shell = (f"{sys.executable} -m minicontainer.cli.main run --rm busybox sh -c 'seq 100000' | head -1; "
             "echo status ${PIPESTATUS[0]}")
    r = subprocess.run(["bash", "-c", shell], env=engine.env, capture_output=True, text=True, timeout=60, check=False)
    assert r.stdout == "1\nstatus 141\n" and r.stderr == "", r.stderr
    engine.mc("tag", "busybox", "mine:v2")
    assert engine.docker("rmi", "mine:v2").stdout.strip() == "Untagged: mine:v2" if shutil.which("docker") \
        else engine.mc("rmi", "mine:v2").stdout.strip() == "Untagged: mine:v2"


def test_a_killed_client_lets_go_of_its_attach(engine):
    """Killing `minicontainer run` (as Ctrl-C twice would) leaves the container running, as docker does;
    the daemon notices the client is gone (POLLHUP) and does not keep its attach open."""
    from minicontainer.daemon.streams import HANGUP_POLL_SECONDS

    client = subprocess.Popen([sys.executable, "-m", "minicontainer.cli.main", "run", "--init", "--name", "held",
                               "busybox", "sleep", "60"], env=engine.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while "held" not in engine.mc("ps").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    client.kill()
    client.wait()
    time.sleep(HANGUP_POLL_SECONDS + 0.5)
    assert "Up " in engine.mc("ps", "--filter", "name=held").stdout  # the container goes on
    started = time.monotonic()
    stop_daemon(engine.daemon)  # stops `held` (tini: at once); an attach still held would take 5 s more
    assert time.monotonic() - started < 3
    assert "in flight" not in (engine.root / "run" / "daemon.log").read_text()
    engine.daemon = start_daemon(engine.env, engine.root / "run")


def test_memory_swap(engine, tmp_path):
    r = engine.mc("run", "--rm", "--memory-swap", "64m", "busybox", "true")
    assert r.returncode == 125 and "always set the Memory limit" in r.stderr
    r = engine.mc("run", "--rm", "-m", "64m", "--memory-swap", "32m", "busybox", "true")
    assert r.returncode == 125 and "memoryswap limit should be larger than memory limit" in r.stderr
    cid = engine.mc("create", "-m", "32m", "--memory-swap", "96m", "busybox", "true").stdout.strip()
    assert json.loads(engine.mc("inspect", cid).stdout)[0]["HostConfig"]["MemorySwap"] == 96 << 20
    assert engine.mc("start", "-a", cid).returncode == 0
    config = json.loads(Path(engine.root, "data", "containers", cid, "config.json").read_text())
    assert config["linux"]["resources"]["memory"] == {"limit": 32 << 20, "swap": 96 << 20}
    assert engine.mc("rm", cid).returncode == 0


def test_export_then_import_flattens_a_container(engine, tmp_path):
    import io
    import tarfile

    assert engine.mc("run", "--name", "maker", "busybox", "sh", "-c", "echo made > /made.txt").returncode == 0
    flat = tmp_path / "fs.tar"
    assert engine.mc("export", "-o", str(flat), "maker").returncode == 0  # stopped: mounted for the export
    with tarfile.open(flat) as tar:
        names = set(tar.getnames())
    assert {"made.txt", "bin/busybox", "bin/sh"} <= names  # its own file and its image's, in one tar
    imported = engine.mc("import", str(flat), "flat:1")
    assert imported.returncode == 0 and imported.stdout.startswith("sha256:"), imported.stderr
    assert engine.mc("run", "--rm", "flat:1", "cat", "/made.txt").stdout == "made\n"
    assert engine.mc("rm", "maker").returncode == 0 and engine.mc("rmi", "flat:1").returncode == 0
    assert engine.mc("export", "nosuch").stderr.startswith("Error response from daemon: No such container")
    # a running one: its mounted filesystem as it is now; and through the docker CLI
    engine.mc("run", "-d", "--name", "live", "busybox", "sh", "-c", "echo x > /live.txt; sleep 30")
    time.sleep(0.5)
    exporter = ["docker", "export"] if shutil.which("docker") else [sys.executable, "-m", "minicontainer.cli.main",
                                                                     "export"]
    live = subprocess.run([*exporter, "live"], env=engine.env, capture_output=True, timeout=60, check=False)
    with tarfile.open(fileobj=io.BytesIO(live.stdout)) as tar:
        assert "live.txt" in tar.getnames()
    assert engine.mc("rm", "-f", "live").returncode == 0


def test_an_export_in_progress_holds_its_container(engine):
    """A slow reader keeps an export's tar thread inside the container's files: a stopped container
    cannot be started or removed meanwhile (409); a running one that exits meanwhile is still seen
    to exit (its filesystem is detached lazily, the export reads on)."""
    import io
    import tarfile

    from minicontainer.client.api import APIClient, APIError

    api = APIClient(os.path.join(engine.env["MINICONTAINER_RUN"], "minicontainer.sock"), autostart=False)

    def slow_export(cid: str):
        resp = api.request("GET", f"/containers/{cid}/export")
        first = resp.read(4096)  # then nothing more for a while: the daemon's queue fills, the thread waits
        time.sleep(0.5)
        return resp, first

    stopped = engine.mc("create", "busybox", "true").stdout.strip()
    resp, data = slow_export(stopped)
    for method, path in (("POST", f"/containers/{stopped}/start"), ("DELETE", f"/containers/{stopped}")):
        with pytest.raises(APIError) as busy:
            api.request(method, path).read()
        assert busy.value.status == 409 and "being exported" in busy.value.message
    data += resp.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "bin/busybox" in tar.getnames()
    assert engine.mc("start", "-a", stopped).returncode == 0 and engine.mc("rm", stopped).returncode == 0

    running = engine.mc("run", "-d", "busybox", "sleep", "1").stdout.strip()
    resp, data = slow_export(running)
    started = time.monotonic()
    assert engine.mc("wait", running).stdout.strip() == "0"  # not stuck behind the export
    assert time.monotonic() - started < 5
    data += resp.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "bin/busybox" in tar.getnames()
    assert engine.mc("rm", running).returncode == 0


def test_format_tables_and_top(engine):
    engine.mc("run", "-d", "--name", "web", "-l", "tier=front", "busybox", "sleep", "30")
    assert engine.mc("ps", "--format", "{{.Names}} {{.State}} {{.Labels}}").stdout == "web running tier=front\n"
    table = engine.mc("ps", "--format", "table {{.Names}}\\t{{.Image}}").stdout.splitlines()
    assert [line.split() for line in table] == [["NAMES", "IMAGE"], ["web", "busybox"]]
    assert engine.mc("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "busybox:latest\n"
    engine.mc("tag", "busybox", "mybox:1.0")
    listed = engine.mc("images", "--filter", "reference=my*", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.stdout == "mybox:1.0\n"
    assert engine.mc("images", "-q", "--filter", "dangling=true").stdout == ""
    labelled = engine.mc("images", "-q", "--filter", "label=tier")
    assert (labelled.returncode, labelled.stdout, labelled.stderr) == (0, "", "")  # busybox has no labels
    assert engine.mc("images", "--filter", "bogus=1").stderr == "Error response from daemon: invalid filter 'bogus'\n"
    assert engine.mc("rmi", "mybox:1.0").returncode == 0
    assert engine.mc("inspect", "--type", "image", "-f", "{{.Os}}", "busybox").stdout == "linux\n"
    r = engine.mc("inspect", "--type", "container", "busybox")
    assert (r.returncode, r.stderr) == (1, "Error: No such container: busybox\n")
    top = engine.mc("top", "web").stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    uid, _pid, _ppid, _c, stime, *_ = top[1].split()
    assert uid == "root" and len(stime) == 5 and stime[2] == ":"  # HH:MM, as ps -ef
    assert engine.mc("rm", "-f", "web").returncode == 0


def _interactive(argv: list[str], env: dict, keys: list[bytes], rows: int = 30, columns: int = 100):
    """Run ``argv`` on a pseudo-terminal of ours (sized ``rows`` x ``columns``), type ``keys`` one line
    after the other, and return (exit code, everything the terminal showed)."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    shown = b""

    def read_until(marker: bytes, seconds: float = 10) -> None:
        nonlocal shown
        deadline = time.monotonic() + seconds
        while marker not in shown and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    shown += os.read(master, 4096)
                except OSError:  # EIO: the command ended, its terminal with it
                    return

    try:
        read_until(b"# ")  # the shell's prompt
        for key in keys:
            os.write(master, key)
            read_until(key.strip().split()[-1] if key.strip() else b"", 3)
        code = proc.wait(timeout=15)
        read_until(b"\0", 0.3)
        return code, shown.decode(errors="replace").replace("\r\n", "\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_run_it_gives_the_shell_a_terminal(engine):
    """`run -it busybox sh`, the first command of most tutorials: a terminal of the container's own
    (/dev/pts/0 inside), the size of ours, keys as typed, and the shell's exit code."""
    code, shown = _interactive([sys.executable, "-m", "minicontainer.cli.main", "run", "--rm", "-it", "busybox", "sh"],
                               engine.env, [b"echo $((6*7)); tty; stty size\r", b"exit 3\r"])
    assert code == 3, shown
    assert "\n42\n/dev/pts/0\n30 100\n" in shown, shown
    # Not a terminal on our side: docker's refusal, and its exit status
    r = engine.mc("run", "-it", "busybox", "sh", input="")
    assert (r.returncode, r.stderr) == (1, "the input device is not a TTY\n")
    # -t alone: one stream of terminal output (CR LF), kept in the log as well
    cli = [sys.executable, "-m", "minicontainer.cli.main"]
    r = subprocess.run([*cli, "run", "-t", "--name", "termout", "busybox", "sh", "-c", "tty; echo out; echo err >&2"],
                       env=engine.env, capture_output=True, timeout=60, check=False)  # bytes: the \r stays
    assert r.returncode == 0 and r.stdout == b"/dev/pts/0\r\nout\r\nerr\r\n", r.stdout
    logs = subprocess.run([*cli, "logs", "termout"], env=engine.env, capture_output=True, timeout=60, check=False)
    assert logs.stdout == b"/dev/pts/0\r\nout\r\nerr\r\n"
    assert engine.mc("rm", "termout").returncode == 0


def test_a_terminals_log_while_it_runs_line_by_line(engine):
    cid = engine.mc("run", "-d", "-t", "busybox", "sh", "-c", "echo one; echo two; sleep 1; echo three").stdout.strip()
    time.sleep(0.5)
    assert engine.mc("logs", cid).stdout.split() == ["one", "two"]  # while it runs
    assert engine.mc("logs", "--tail", "1", cid).stdout.strip() == "two"  # json.log holds lines, not reads
    assert engine.mc("logs", "-f", cid).stdout.split() == ["one", "two", "three"]
    assert engine.mc("rm", cid).returncode == 0


def test_stdin_bigger_than_a_pipe_arrives_whole(engine):
    """More than a pipe holds (64 KiB) to a program that reads only later: the daemon waits for room
    instead of blocking (or dropping what does not fit)."""
    r = engine.mc("run", "--rm", "-i", "busybox", "sh", "-c", "sleep 1; wc -c", input="x" * 300_000)
    assert r.stdout.strip() == "300000", r.stderr


def test_a_terminal_follows_the_clients_size(engine):
    cid = engine.mc("run", "-d", "-t", "busybox", "sh", "-c", "sleep 1; stty size").stdout.strip()
    from minicontainer.client.api import APIClient

    api = APIClient(os.path.join(engine.env["MINICONTAINER_RUN"], "minicontainer.sock"), autostart=False)
    api.request("POST", f"/containers/{cid}/resize", {"h": 40, "w": 120}).read()  # what SIGWINCH makes us send
    from minicontainer.client.api import APIError

    with pytest.raises(APIError) as refused:
        api.request("POST", f"/containers/{cid}/resize", {"h": 70000, "w": 1})
    assert refused.value.status == 400
    assert engine.mc("wait", cid).stdout.strip() == "0"
    assert engine.mc("logs", cid).stdout.strip() == "40 120"
    assert engine.mc("rm", cid).returncode == 0


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_docker_run_it(engine):
    code, shown = _interactive(["docker", "run", "--rm", "-it", "busybox", "sh"], engine.env,
                               [b"echo $((6*7)); stty size\r", b"exit 4\r"], rows=25, columns=90)
    assert code == 4 and "\n42\n25 90\n" in shown, shown


def test_docker_py(engine):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=engine.env["DOCKER_HOST"])
    try:
        assert client.version()["ApiVersion"] == "1.45"
        assert client.containers.run("busybox", "echo from docker-py", remove=True) == b"from docker-py\n"
        c = client.containers.run("busybox", "sleep 30", detach=True, name="py")
        assert [x.name for x in client.containers.list()] == ["py"]
        c.kill()
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.attrs["State"]["Status"] == "exited"
        c.remove()
        assert any("busybox:latest" in i.tags for i in client.images.list())
        # create / start / logs / stop / inspect / prune, each as docker-py sends it
        c = client.containers.create("busybox", ["sh", "-c", "echo up; echo oops >&2; sleep 30"], name="pyc",
                                     environment={"A": "1"})
        c.start()
        deadline = time.monotonic() + 5
        while b"up" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.logs(stdout=True, stderr=False) == b"up\n" and c.logs(stdout=False, stderr=True) == b"oops\n"
        c.stop(timeout=1)
        inspected = client.api.inspect_container("pyc")
        assert inspected["State"]["ExitCode"] == 137 and "A=1" in inspected["Config"]["Env"]
        assert client.containers.prune()["ContainersDeleted"] == [c.id]
    finally:
        client.close()


def test_docker_py_pulls_from_a_registry(engine, fixture_images):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=engine.env["DOCKER_HOST"])
    try:
        repository = fixture_images.busybox.name.rsplit(":", 1)[0]  # 127.0.0.1:PORT/library/busybox
        image = client.images.pull(repository, tag="1.36")
        assert f"{repository}:1.36" in image.tags
        assert client.containers.run(image.id, ["echo", "pulled by docker-py"], remove=True) == b"pulled by docker-py\n"
        client.images.remove(f"{repository}:1.36")
        assert not any(t.startswith(repository) for i in client.images.list() for t in i.tags)
    finally:
        client.close()


def test_the_python_client(engine, monkeypatch):
    import minicontainer
    from minicontainer.client import ContainerError

    monkeypatch.setenv("MINICONTAINER_RUN", engine.env["MINICONTAINER_RUN"])
    client = minicontainer.from_env()
    assert client.ping()
    assert client.containers.run("busybox", "echo hi") == b"hi\n"
    with pytest.raises(ContainerError) as e:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 2"], remove=True)
    assert e.value.exit_status == 2 and e.value.stderr == b"bad\n"
    box = client.containers.run("busybox", "sleep 30", detach=True, name="nb", init=True)
    assert box.status == "running" and "<td>running</td>" in box._repr_html_()
    assert [c.name for c in client.containers.list()] == ["nb"]
    time.sleep(0.5)  # until tini has set up its signal handling (before that, PID 1 drops SIGTERM)
    box.stop()
    assert box.wait()["StatusCode"] == 143
    box.reload()
    assert box.status == "exited"
    box.remove()
    # logs(stream=True): the output as it comes, until the container ends (a notebook cell watching it)
    ticker = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"],
                                   detach=True)
    started = time.monotonic()
    first = next(iter(ticker.logs(stream=True)))
    assert first.startswith(b"tick 1") and time.monotonic() - started < 0.5  # not after the whole run
    assert b"".join(ticker.logs(stream=True)) == b"tick 1\ntick 2\ntick 3\n"
    ticker.remove()
    image = client.images.get("busybox")
    assert "docker.io/library/busybox:latest" in image.tags or "busybox:latest" in image.tags
    assert "<table>" in image._repr_html_()
    client.containers.prune()


def test_explain_on_any_command_lists_the_engine_api_requests(engine):
    r = engine.mc("ps", "-a", "--filter", "status=exited", "--explain")
    assert r.returncode == 0
    assert 'GET /v1.45/containers/json?all=1&filters={"status": ["exited"]}  ->  200 OK' in r.stderr
    r = engine.mc("run", "--rm", "--explain", "busybox", "true")
    requests = [line for line in r.stderr[r.stderr.index("the Engine API requests"):].splitlines()[1:]
                if line.split()[0] in ("GET", "POST")]  # not a long request's continuation line
    assert [line.split()[0] + " " + line.split()[1].split("/")[-1].split("?")[0] for line in requests] == \
        ["POST create", "POST attach", "POST wait", "POST start"]  # docker's order: attach and wait first
    r = engine.mc("doctor", "--explain")
    assert "none: this command works on this host directly" in r.stderr
    r = engine.mc("--explain", "images")  # before the command, too
    assert "GET /v1.45/images/json" in r.stderr


def test_explain_narrates_start_stop_and_kill(engine, cgroup_join_file):
    r = engine.mc("run", "--explain", "--rm", "busybox", "true")
    assert r.returncode == 0
    for step in ("mount(overlay", "unshare(CLONE_NEWNS", "pivot_root(., .)", cgroup_join_file):
        assert step in r.stderr, step
    engine.mc("run", "-d", "--name", "quiet", "busybox", "sleep", "30")
    time.sleep(0.3)
    r = engine.mc("stop", "--explain", "-t", "1", "quiet")
    assert "the kernel drops signals a namespace's PID 1 has no handler for" in r.stderr
    assert "kill(" in r.stderr and ", 9)" in r.stderr  # the SIGKILL after the grace period
    engine.mc("start", "quiet")
    r = engine.mc("kill", "--explain", "quiet")
    assert "kill(" in r.stderr and "exit(PID 1 of quiet)" in r.stderr
    r = engine.mc("restart", "--explain", "-t", "1", "quiet")
    assert "pivot_root(., .)" in r.stderr  # the start again
    r = engine.mc("rm", "-f", "--explain", "quiet")
    assert r.returncode == 0 and "kill(" in r.stderr


def test_log_rotation_and_the_none_driver(engine):
    r = engine.docker("run", "--name", "chatty", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox",
                      "seq", "1000")
    assert r.returncode == 0 and r.stdout.endswith("999\n1000\n"), r.stderr
    files = sorted(p.name for p in (engine.root / "data" / "containers").glob("*/json.log*"))
    assert files == ["json.log", "json.log.1"]
    for cli in (engine.mc, engine.docker):  # across the rotated file: the last lines, in order
        kept = [int(n) for n in cli("logs", "chatty").stdout.split()]
        assert kept[-1] == 1000 and kept == list(range(1001 - len(kept), 1001)) and len(kept) < 500
    r = engine.mc("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "attached still")
    assert r.returncode == 0 and r.stdout == "attached still\n"  # the output reaches the attached client
    for cli in (engine.mc, engine.docker):
        r = cli("logs", "quiet")
        assert r.returncode == 1 and "configured logging driver does not support reading" in r.stderr, r.stderr
    for flags, message in ((["--log-driver", "syslog"], "not supported by this engine"),
                           (["--log-opt", "compress=true"], "unknown log opt 'compress'")):
        r = engine.docker("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125 and message in r.stderr, r.stderr
    assert engine.mc("rm", "chatty", "quiet").returncode == 0
