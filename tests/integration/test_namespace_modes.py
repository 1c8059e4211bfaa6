"""Sharing namespaces, for real: --pid, --uts, --ipc and --cgroupns through the daemon, from our CLI,
the docker CLI and the Python client.  Each is compared with the host's (or another container's)
/proc/PID/ns link: the same inode is the same namespace."""

from __future__ import annotations

import json
import os

import pytest
from test_engine import engine  # noqa: F401 - the fixture: a daemon of the test's own, with busybox

pytestmark = pytest.mark.root

NS = "cd /proc/self/ns && for n in pid uts ipc cgroup; do echo $n $(readlink $n); done"


def host_ns(pid: int | str = "self") -> dict[str, str]:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("pid", "uts", "ipc", "cgroup")}


def seen(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines())


def test_each_host_mode_gives_back_one_namespace(engine):  # noqa: F811
    own = seen(engine.mc("run", "--rm", "busybox", "sh", "-c", NS).stdout)
    assert all(own[n] != host_ns()[n] for n in own)  # by default: a namespace of each kind of its own
    for flag, kind in (("--pid", "pid"), ("--uts", "uts"), ("--ipc", "ipc"), ("--cgroupns", "cgroup")):
        r = engine.mc("run", "--rm", flag, "host", "busybox", "sh", "-c", NS)
        assert r.returncode == 0, r.stderr
        got = seen(r.stdout)
        assert got[kind] == host_ns()[kind], flag
        assert all(got[n] != host_ns()[n] for n in got if n != kind), f"{flag} shared more than {kind}"
    r = engine.mc("run", "--rm", "--pid", "host", "--uts", "host", "busybox", "sh", "-c", "hostname; ps -o pid")
    lines = r.stdout.splitlines()
    assert lines[0] == os.uname().nodename
    assert str(os.getpid()) in [x.strip() for x in lines[2:]]  # the host's processes, this test among them


def test_pid_and_ipc_of_another_container(engine):  # noqa: F811
    target = engine.mc("run", "-d", "--name", "target", "busybox", "sleep", "30").stdout.strip()
    pid = json.loads(engine.mc("inspect", "target").stdout)[0]["State"]["Pid"]
    r = engine.mc("run", "--rm", "--pid", "container:target", "--ipc", "container:target", "busybox", "sh", "-c",
                  "ps -o pid,args; " + NS)
    assert r.returncode == 0, r.stderr
    assert "1 sleep 30" in " ".join(r.stdout.split())  # its PID 1 is the target's
    got = seen("\n".join(line for line in r.stdout.splitlines() if line.split()[0] in ("pid", "ipc")))
    assert got["pid"] == host_ns(pid)["pid"] and got["ipc"] == host_ns(pid)["ipc"]
    engine.mc("create", "--name", "sidecar", "--pid", "container:target", "busybox", "ps")
    host_config = json.loads(engine.mc("inspect", "sidecar").stdout)[0]["HostConfig"]
    assert host_config["PidMode"] == f"container:{target}" and host_config["IpcMode"] == "private"
    assert engine.mc("stop", "-t", "0", "target").returncode == 0
    r = engine.mc("start", "sidecar")
    assert r.returncode == 1 and f"cannot join PID of a non running container: {target}" in r.stderr


def test_refusals_and_other_clients(engine):  # noqa: F811
    r = engine.mc("run", "--rm", "-h", "box", "--uts", "host", "busybox", "true")
    assert r.returncode == 125 and "conflicting options: hostname and the UTS mode" in r.stderr
    r = engine.mc("run", "--rm", "--cgroupns", "shared", "busybox", "true")
    assert r.returncode == 125 and "invalid CgroupnsMode 'shared'" in r.stderr
    r = engine.mc("run", "--rm", "--pid", "container:nobody", "busybox", "true")
    assert r.returncode == 125 and "No such container: nobody" in r.stderr
    r = engine.docker("run", "--rm", "--pid", "host", "--uts", "host", "busybox", "hostname")
    assert (r.returncode, r.stdout) == (0, os.uname().nodename + "\n"), r.stderr
    import docker

    client = docker.DockerClient(base_url=engine.env["DOCKER_HOST"])
    out = client.containers.run("busybox", ["readlink", "/proc/self/ns/pid"], pid_mode="host", remove=True)
    assert out.decode().strip() == host_ns()["pid"]
