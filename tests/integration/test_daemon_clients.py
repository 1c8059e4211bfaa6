"""The real clients against minicontainerd: the ``docker`` CLI (28.x) and docker-py.

The daemon serves the in-memory ``FakeEngine`` of ``tests/unit/test_daemon_http.py`` (loaded from
that file below), so these tests check the conversation -- what the clients send, what they need
back -- not how containers run.  The fake keeps Docker's semantics (exit codes, 137 after a kill,
304 from a second stop, 409 from removing a running container, auto-remove, stdin before start)
and runs a busybox-like subset of commands, so the same tests can later run against the real engine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_FAKE = Path(__file__).resolve().parent.parent / "unit" / "test_daemon_http.py"


def _load_fake():
    """The unit tests' module, for its FakeEngine and ``running_daemon`` (one fake for both suites)."""
    spec = importlib.util.spec_from_file_location("daemon_fake_engine", _FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fake = _load_fake()
DOCKER = shutil.which("docker")
needs_cli = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


class DockerCLI:
    """Runs ``docker ...`` against our socket, with a private client config."""

    def __init__(self, socket_path: str, config_dir: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env.update(DOCKER_HOST=f"unix://{socket_path}", DOCKER_CONFIG=config_dir,
                        DOCKER_CLI_HINTS="false")

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 30) -> subprocess.CompletedProcess:
        r = subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True, env=self.env,
                           timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL,
                           check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r


@pytest.fixture
def daemon() -> Iterator:
    with fake.running_daemon() as d:
        yield d
    assert d.engine.closed and not os.path.exists(d.socket_path)


@pytest.fixture
def docker(daemon) -> Iterator[DockerCLI]:
    config_dir = tempfile.mkdtemp(prefix="docker-config-")
    try:
        yield DockerCLI(daemon.socket_path, config_dir)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


# --- the docker CLI ---------------------------------------------------------------------------------


@needs_cli
def test_cli_version_shows_the_server(docker):
    out = docker("version").stdout
    server = out[out.index("Server:"):]
    assert re.search(r"API version:\s+1\.45 \(minimum version 1\.24\)", server), out
    assert "0.1.0-fake" in server
    assert docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.45"


@needs_cli
def test_cli_images_and_pull(docker, daemon):
    assert docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split() == ["busybox:latest"]
    pulled = docker("pull", "alpine")
    assert "latest: Pulling from library/alpine" in pulled.stdout
    assert "Status: Downloaded newer image for alpine:latest" in pulled.stdout
    assert pulled.stdout.strip().endswith("docker.io/library/alpine:latest")
    assert daemon.engine.pulls[-1][:2] == ("docker.io/library/alpine", "latest")
    assert "alpine:latest" in docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    missing = docker("pull", "doesnotexist", check=False)
    assert missing.returncode == 1 and "pull access denied" in missing.stderr
    broken = docker("pull", "failmidway", check=False)
    assert broken.returncode == 1 and "unexpected EOF" in broken.stderr
    assert docker("rmi", "alpine").stdout.splitlines()[0] == "Untagged: alpine:latest"


@needs_cli
def test_cli_run_foreground(docker):
    r = docker("run", "--rm", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n")
    r = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo oops >&2; exit 3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "oops\n")
    assert docker("ps", "-aq").stdout == ""            # --rm removed both


@needs_cli
def test_cli_run_pulls_a_missing_image(docker):
    r = docker("run", "--rm", "alpine", "echo", "from alpine")
    assert "Unable to find image 'alpine:latest' locally" in r.stderr
    assert r.stdout == "from alpine\n"
    r = docker("run", "--rm", "doesnotexist", check=False)
    assert r.returncode == 125 and "pull access denied" in r.stderr


@needs_cli
def test_cli_run_with_stdin(docker):
    """stdin (and its end) reach the container even though they arrive before it starts."""
    r = docker("run", "-i", "--rm", "busybox", "cat", input="hello\nworld\n")
    assert (r.returncode, r.stdout) == (0, "hello\nworld\n")


@needs_cli
def test_cli_detached_life_cycle(docker):
    cid = docker("run", "-d", "--name", "web", "busybox", "sleep", "30").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert docker("ps", "--format", "{{.Names}} {{.ID}}").stdout.split() == ["web", cid[:12]]
    assert docker("inspect", "--format", "{{.State.Status}} {{.Name}}", "web").stdout.split() == \
        ["running", "/web"]
    assert docker("stop", "-t", "1", "web").stdout.strip() == "web"     # sleep ignores TERM as PID 1
    assert docker("inspect", "--format", "{{.State.ExitCode}}", "web").stdout.strip() == "137"
    assert docker("stop", "web").returncode == 0                        # 304: already stopped
    assert docker("ps", "-q").stdout == ""
    assert docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith("web Exited (137)")
    docker("start", "web")
    rm = docker("rm", "web", check=False)
    assert rm.returncode == 1 and "stop the container" in rm.stderr
    docker("kill", "web")
    again = docker("kill", "web", check=False)
    assert again.returncode == 1 and "is not running" in again.stderr
    docker("rm", "web")
    assert docker("ps", "-aq").stdout == ""


@needs_cli
def test_cli_logs(docker):
    docker("run", "--name", "talker", "busybox", "sh", "-c", "echo out; echo err >&2")
    logs = docker("logs", "talker")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    stamped = docker("logs", "-t", "talker").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z out\n", stamped)
    assert docker("logs", "--tail", "0", "talker").stdout == ""
    follow = docker("run", "-d", "busybox", "sh", "-c", "echo a; sleep 0.3; echo b").stdout.strip()
    assert docker("logs", "-f", follow).stdout == "a\nb\n"
    docker("rm", "talker", follow)


@needs_cli
def test_cli_prune_and_inspect(docker):
    docker("create", "--name", "one", "busybox", "true")
    docker("run", "--name", "two", "busybox", "true")
    keep = docker("run", "-d", "--name", "three", "busybox", "sleep", "30").stdout.strip()
    pruned = docker("container", "prune", "-f").stdout
    assert "Deleted Containers:" in pruned and pruned.count("\n") >= 3
    assert docker("ps", "-aq", "--no-trunc").stdout.split() == [keep]
    inspected = json.loads(docker("inspect", "three").stdout)
    assert inspected[0]["Id"] == keep and inspected[0]["Config"]["Cmd"] == ["sleep", "30"]
    assert inspected[0]["HostConfig"]["LogConfig"]["Type"] == "json-file"
    image = json.loads(docker("inspect", "busybox").stdout)          # not a container: an image
    assert image[0]["RepoTags"] == ["busybox:latest"]
    missing = docker("inspect", "nosuch", check=False)
    assert missing.returncode == 1 and "No such object: nosuch" in missing.stderr
    docker("rm", "-f", "three")


# --- docker-py ----------------------------------------------------------------------------------------


@pytest.fixture
def client(daemon):
    docker_py = pytest.importorskip("docker")
    c = docker_py.DockerClient(base_url=f"unix://{daemon.socket_path}", timeout=30)
    try:
        yield c
    finally:
        c.close()


def test_dockerpy_version_and_images(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.45"
    assert client.api.api_version == "1.45"
    assert [i.tags for i in client.images.list()] == [["busybox:latest"]]
    image = client.images.pull("alpine", tag="3.20")
    assert image.tags == ["alpine:3.20"]
    assert client.images.get(image.short_id.removeprefix("sha256:")).id == image.id


def test_dockerpy_run_returns_logs(client):
    import docker

    assert client.containers.run("busybox", ["sh", "-c", "echo a; echo b >&2"], remove=True) == b"a\n"
    assert client.containers.run("busybox", ["sh", "-c", "echo a; echo b >&2"], stderr=True,
                                 remove=True) == b"a\nb\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "exit 4"], remove=True)
    assert failed.value.exit_status == 4
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nosuch")
    assert client.containers.list(all=True) == []


def test_dockerpy_life_cycle(client):
    c = client.containers.create("busybox", ["sh", "-c", "echo started; sleep 30"], name="pyc")
    assert (c.name, c.status) == ("pyc", "created")
    c.start()
    c.reload()
    assert c.status == "running"
    assert [x.name for x in client.containers.list()] == ["pyc"]
    c.stop(timeout=1)
    assert c.wait() == {"StatusCode": 137, "Error": None}
    assert c.logs() == b"started\n"
    c.start()
    c.kill()
    assert c.wait()["StatusCode"] == 137
    assert c.attach(logs=True, stream=False) == b"started\nstarted\n"
    c.remove()
    assert client.containers.list(all=True) == []
    detached = client.containers.run("busybox", ["sleep", "30"], detach=True)
    detached.remove(force=True)
    assert client.containers.prune() == {"ContainersDeleted": None, "SpaceReclaimed": 0}
