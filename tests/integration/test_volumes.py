"""Named volumes through a real daemon: the ``volume`` commands (ours and the docker CLI's), the
``/volumes`` API through the Python client, ``system df`` and ``system prune --volumes``, and the
local driver's options mounted for real (a tmpfs, a bind), with nothing left mounted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
from daemon_support import start_daemon, stop_daemon
from test_engine import engine  # noqa: F401 - the fixture, by name

from minicontainer.client import Client, http
from minicontainer.engine.errors import EngineError
from minicontainer.engine.volumes import VolumeStore
from minicontainer.kernel.syscalls import Syscalls

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon of this module's own (volumes need no image)."""
    root = tmp_path_factory.mktemp("volumes")
    env = dict(os.environ, MINICONTAINER_ROOT=str(root / "data"), MINICONTAINER_RUN=str(root / "run"),
               MINICONTAINER_CONFIG=str(root / "client"), MINICONTAINER_AUTOSTART="0",
               DOCKER_HOST=f"unix://{root}/run/minicontainer.sock", DOCKER_CONFIG=str(root / "docker"))

    class Daemon:
        def mc(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "minicontainer.cli.main", *args], env=env, text=True,
                                  capture_output=True, timeout=60, input=input, check=False)

        def docker(self, *args: str) -> subprocess.CompletedProcess:
            if shutil.which("docker") is None:
                pytest.skip("the docker CLI is not installed on this machine")
            return subprocess.run(["docker", *args], env=env, text=True, capture_output=True, timeout=60, check=False)

    d = Daemon()
    d.root, d.volumes = root, root / "data" / "volumes"
    d.process = start_daemon(env, root / "run")
    d.client = Client(str(root / "run" / "minicontainer.sock"))  # (after the start: it would start one)
    yield d
    stop_daemon(d.process)


@pytest.fixture(autouse=True)
def no_volumes_left(daemon):
    yield
    for v in daemon.client.volumes.list():
        v.remove(force=True)


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def test_volume_commands_create_list_inspect_remove(daemon):
    assert _ok(daemon.mc("volume", "create", "--label", "team=a", "data")).stdout == "data\n"
    anonymous = _ok(daemon.mc("volume", "create")).stdout.strip()
    assert len(anonymous) == 64
    assert _ok(daemon.mc("volume", "ls")).stdout.splitlines() == [
        "DRIVER   VOLUME NAME", *(f"local    {name}" for name in sorted([anonymous, "data"]))]
    assert _ok(daemon.mc("volume", "ls", "-q", "-f", "label=team=a")).stdout == "data\n"
    # a regular expression: "^da" would also match the one anonymous name in 256 that starts so
    assert _ok(daemon.mc("volume", "ls", "--format", "{{.Name}} {{.Labels}}", "-f", "name=^dat")).stdout == \
        "data team=a\n"
    assert json.loads(_ok(daemon.mc("volume", "ls", "--format", "json", "-f", "name=data")).stdout) == {
        "Availability": "N/A", "Driver": "local", "Group": "N/A", "Labels": "team=a", "Links": "N/A",
        "Mountpoint": str(daemon.volumes / "data" / "_data"), "Name": "data", "Scope": "local", "Size": "N/A",
        "Status": "N/A"}
    info = json.loads(_ok(daemon.mc("volume", "inspect", "data")).stdout)
    assert info == [{"CreatedAt": info[0]["CreatedAt"], "Driver": "local", "Labels": {"team": "a"},
                     "Mountpoint": str(daemon.volumes / "data" / "_data"), "Name": "data", "Options": None,
                     "Scope": "local"}]
    assert _ok(daemon.mc("volume", "inspect", "-f", "{{.Mountpoint}}", "data")).stdout.strip() == info[0]["Mountpoint"]
    assert _ok(daemon.mc("inspect", "-f", "{{.Name}} {{.Scope}}", "data")).stdout == "data local\n"  # docker's 4th kind
    assert daemon.mc("inspect", "--type", "volume", "nope").stderr == "Error: No such volume: nope\n"
    events = _ok(daemon.mc("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "type=volume",
                           "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}")).stdout
    assert events.splitlines()[-2:] == ["create data local", f"create {anonymous} local"]
    assert _ok(daemon.mc("volume", "rm", "data", anonymous)).stdout.split() == ["data", anonymous]
    assert not (daemon.volumes / "data").exists()


def test_errors_are_docker_s_and_leave_nothing(daemon):
    r = daemon.mc("volume", "rm", "nope")
    assert r.returncode == 1 and r.stderr == "Error response from daemon: get nope: no such volume\n"
    assert _ok(daemon.mc("volume", "rm", "-f", "nope")).stdout == "nope\n"
    r = daemon.mc("volume", "inspect", "nope")
    assert r.returncode == 1 and r.stdout == "[]\n" and "get nope: no such volume" in r.stderr
    r = daemon.mc("volume", "create", "foo/bar")
    assert r.returncode == 1 and r.stderr == (
        'Error response from daemon: create foo/bar: "foo/bar" includes invalid characters for a local volume name, '
        'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path\n')
    r = daemon.mc("volume", "create", "-d", "nfs-plugin", "v2")
    assert r.returncode == 1 and 'plugin "nfs-plugin" not found' in r.stderr
    r = daemon.mc("volume", "create", "-o", "size=10m", "v3")
    assert r.returncode == 1 and "quota size requested but no quota support" in r.stderr
    assert os.listdir(daemon.volumes) == []
    assert daemon.client.volumes.list() == []


def test_what_the_create_route_cannot_honour_is_refused(daemon):
    sock = str(daemon.root / "run" / "minicontainer.sock")

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        reply = http.request(sock, method, f"/v1.45{path}", json.dumps(body).encode() if body is not None else None,
                             {"Content-Type": "application/json"})
        return reply.status, json.loads(reply.read() or b"{}").get("message", "")

    status, message = call("POST", "/volumes/create", {"Name": "v1", "Sizes": "big"})
    assert status == 400 and "unknown field 'Sizes'" in message
    status, message = call("POST", "/volumes/create", {"Name": "v1", "Labels": {"a": 1}})
    assert status == 400 and "Labels must be an object of strings" in message
    status, message = call("POST", "/volumes/create", {"Name": "v1", "ClusterVolumeSpec": {"Group": "g"}})
    assert status == 503 and "swarm" in message
    assert daemon.client.volumes.list() == []
    daemon.client.volumes.create("v1")
    status, message = call("PUT", "/volumes/v1?version=1", {"Spec": {}})
    assert status == 503 and message.startswith("volume update only valid for cluster volumes, but swarm unavailable")
    assert call("POST", "/volumes/create", {"Name": "v1", "DriverOpts": {"type": "tmpfs", "device": "tmpfs"}}) == (
        409, ("create v1: volume name must be unique: a volume 'v1' already exists with other options; remove it "
             "first, or choose another name"))
    assert call("GET", "/volumes?filters=" + quote('{"colour": ["red"]}')) == (400, "invalid filter 'colour'")


def test_prune_takes_anonymous_volumes_unless_all(daemon):
    named = daemon.client.volumes.create("kept")
    anonymous = daemon.client.volumes.create()
    with open(os.path.join(anonymous.attrs["Mountpoint"], "f"), "w") as f:
        f.write("x" * 2000)
    r = _ok(daemon.mc("volume", "prune", input="n\n"))
    assert "WARNING! This will remove anonymous local volumes not used by at least one container." in r.stdout
    assert len(daemon.client.volumes.list()) == 2  # no: nothing removed
    r = _ok(daemon.mc("volume", "prune", "-f"))
    assert r.stdout == f"Deleted Volumes:\n{anonymous.name}\n\nTotal reclaimed space: 2kB\n"
    assert daemon.client.volumes.list() == [named]
    r = _ok(daemon.mc("volume", "prune", "-a", "-f", "--filter", "label=nothing-has-it"))
    assert r.stdout == "Total reclaimed space: 0B\n"
    assert _ok(daemon.mc("volume", "prune", "-a", "-f")).stdout.startswith("Deleted Volumes:\nkept\n")
    # API < 1.42: prune took named volumes too, as docker-py's old clients expect
    daemon.client.volumes.create("old")
    reply = daemon.client.api.request("POST", "/volumes/prune").read()  # (our client speaks 1.45)
    assert json.loads(reply)["VolumesDeleted"] == []
    old_client = http.request(str(daemon.root / "run" / "minicontainer.sock"), "POST", "/v1.41/volumes/prune", None, {})
    assert json.loads(old_client.read())["VolumesDeleted"] == ["old"]


def test_system_df_and_prune_count_volumes(daemon):
    volume = daemon.client.volumes.create()
    with open(os.path.join(volume.attrs["Mountpoint"], "f"), "w") as f:
        f.write("x" * 5000)
    df = daemon.client.api.json("GET", "/system/df", {"type": "volume"})
    assert df["Volumes"] == [{**volume.attrs, "UsageData": {"RefCount": 0, "Size": 5000}}]
    lines = _ok(daemon.mc("system", "df")).stdout.splitlines()
    assert lines[3].split() == ["Local", "Volumes", "1", "0", "5kB", "5kB", "(100%)"]
    verbose = _ok(daemon.mc("system", "df", "-v")).stdout
    assert "Local Volumes space usage:\n\nVOLUME NAME" in verbose and f"{volume.name}   0       5kB" in verbose
    r = _ok(daemon.mc("system", "prune", "--volumes", "-f"))
    assert f"Deleted Volumes:\n{volume.name}\n" in r.stdout and r.stdout.endswith("Total reclaimed space: 5kB\n")


def test_the_docker_cli_drives_our_volumes(daemon):
    assert daemon.docker("volume", "create", "--label", "x=y", "dv").stdout == "dv\n"
    assert daemon.docker("volume", "ls", "-q", "-f", "label=x").stdout == "dv\n"
    assert json.loads(daemon.docker("volume", "inspect", "dv").stdout)[0]["Labels"] == {"x": "y"}
    r = daemon.docker("volume", "create", "foo/bar")
    assert r.returncode == 1 and "includes invalid characters for a local volume name" in r.stderr
    r = daemon.docker("volume", "rm", "nope")
    assert r.returncode == 1 and "get nope: no such volume" in r.stderr
    anonymous = daemon.docker("volume", "create").stdout.strip()
    r = daemon.docker("volume", "prune", "-f")
    assert r.returncode == 0 and anonymous in r.stdout and "dv" not in r.stdout
    df = daemon.docker("system", "df").stdout
    assert "Local Volumes   1 " in df
    assert daemon.docker("volume", "rm", "dv").stdout == "dv\n"
    assert daemon.docker("volume", "ls", "-q").stdout == ""


def test_the_python_client_has_docker_py_s_shape(daemon):
    client = daemon.client
    volume = client.volumes.create("pyvol", driver="local", labels={"k": "v"})
    assert volume.id == volume.name == "pyvol" and volume.attrs["Labels"] == {"k": "v"}
    assert client.volumes.get("pyvol") == volume and volume in client.volumes.list(filters={"name": "py"})
    assert volume not in client.volumes.list(filters={"name": "zz"})
    assert client.api.inspect_volume("pyvol") == client.api.create_volume("pyvol")
    assert "<caption>volume</caption>" in volume._repr_html_()
    volume.remove()
    assert volume not in client.volumes.list()


# --- the local driver's options, mounted for real --------------------------------------------------


def _mounts() -> str:
    with open("/proc/self/mounts") as f:
        return f.read()


def test_tmpfs_and_bind_volumes_are_mounted_while_used_and_not_after(tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("hi\n")
    store = VolumeStore(str(tmp_path / "volumes"), lambda name: [], sys=Syscalls())
    ram = store.create("ram", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0700"})
    bind = store.create("bound", driver_opts={"type": "none", "device": str(host_dir), "o": "bind,ro"})
    try:
        assert store.mount(ram, "c1") == ram.mountpoint and store.mount(ram, "c2") == ram.mountpoint
        mounts = _mounts()
        assert f"tmpfs {ram.mountpoint} tmpfs rw,relatime,size=1024k,mode=700" in mounts
        assert mounts.count(ram.mountpoint) == 1  # one mount, shared by its two users
        store.mount(bind, "c1")
        assert os.listdir(bind.mountpoint) == ["from-host"]
        with pytest.raises(OSError, match="Read-only file system"):
            os.mkdir(os.path.join(bind.mountpoint, "new"))
        store.unmount(ram, "c1")
        assert os.path.ismount(ram.mountpoint)
        store.unmount(ram, "c2")
        assert not os.path.ismount(ram.mountpoint)
        with pytest.raises(EngineError, match="remove bound: volume has active mounts"):
            store.remove("bound")
        store.unmount(bind, "c1")
        store.remove("bound")  # unmounted first: the host's directory is untouched
        assert (host_dir / "from-host").read_text() == "hi\n" and not os.path.exists(bind.directory)
    finally:
        store.close()
    assert str(tmp_path) not in _mounts()


def test_a_bind_volume_of_a_missing_directory_fails_at_mount_and_leaves_nothing(tmp_path):
    store = VolumeStore(str(tmp_path / "volumes"), lambda name: [], sys=Syscalls())
    volume = store.create("bound", driver_opts={"type": "none", "device": str(tmp_path / "missing"), "o": "bind"})
    with pytest.raises(EngineError, match=r"failed to mount local volume bound: mount .*No such file or directory"):
        store.mount(volume, "c1")
    assert not os.path.ismount(volume.mountpoint) and store.mounted == {}


# --- cp sees a container's volumes and binds, as the container does -------------------------------


def test_cp_reaches_the_volumes_of_a_running_and_of_a_stopped_container(engine, tmp_path):  # noqa: F811
    """docker cp into /data lands in the volume mounted there, running or not; while stopped, the
    volume is mounted on the container's layers only for the time of the copy."""
    (tmp_path / "note").write_text("copied in\n")
    made = engine.mc("create", "--name", "box", "-v", "store:/data", "busybox", "cat", "/data/note")
    assert made.returncode == 0, made.stderr
    _ok(engine.mc("cp", str(tmp_path / "note"), "box:/data/"))  # stopped (never started)
    assert (engine.root / "data" / "volumes" / "store" / "_data" / "note").read_text() == "copied in\n"
    assert str(engine.root) not in _mounts()  # the layers and the volume mounted for the copy: gone
    assert _ok(engine.mc("start", "-a", "box")).stdout == "copied in\n"
    _ok(engine.mc("cp", "box:/data/note", str(tmp_path / "out")))  # exited: mounted again for the copy
    assert (tmp_path / "out").read_text() == "copied in\n"
    _ok(engine.mc("run", "-d", "--name", "live", "-v", "store:/data", "busybox", "sleep", "30"))
    _ok(engine.mc("cp", str(tmp_path / "note"), "live:/data/again"))  # running: its own view, /proc/PID/root
    assert _ok(engine.mc("exec", "live", "cat", "/data/again")).stdout == "copied in\n"
    assert (engine.root / "data" / "volumes" / "store" / "_data" / "again").exists()
    _ok(engine.mc("rm", "-f", "live", "box"))
    assert str(engine.root) not in _mounts()


def test_cp_into_read_only_places_is_refused_as_dockerd_refuses_it(engine, tmp_path):  # noqa: F811
    (tmp_path / "f").write_text("x\n")
    host = tmp_path / "host"
    host.mkdir()
    _ok(engine.mc("create", "--name", "ro", "--read-only", "-v", f"{host}:/in:ro", "-v", "rw:/data", "busybox", "true"))
    r = engine.mc("cp", str(tmp_path / "f"), "ro:/tmp/")
    assert r.returncode == 1 and "container rootfs is marked read-only" in r.stderr
    r = engine.mc("cp", str(tmp_path / "f"), "ro:/in/")
    assert r.returncode == 1 and "mounted volume is marked read-only" in r.stderr
    _ok(engine.mc("cp", str(tmp_path / "f"), "ro:/data/"))  # a writable volume in a read-only root: fine
    assert os.listdir(host) == [] and str(engine.root) not in _mounts()
