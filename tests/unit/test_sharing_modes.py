"""engine/namespaces.py: Docker's sharing modes, checked at create and turned into linux.namespaces."""

from __future__ import annotations

import pytest

from minicontainer.engine import namespaces
from minicontainer.engine.errors import Conflict, InvalidParameter, NotFound
from minicontainer.runtime.defaults import default_config


class Found:
    def __init__(self, cid: str) -> None:
        self.id = cid


def find(ref: str) -> Found:
    if ref not in ("web", "f" * 64):
        raise NotFound(f"No such container: {ref}")
    return Found("f" * 64)


def kinds(config: dict) -> dict[str, str]:
    return {ns["type"]: ns.get("path", "") for ns in config["linux"]["namespaces"]}


def test_defaults_as_docker_shows_them():
    assert namespaces.check({}, "", find) == {"PidMode": "", "UTSMode": "", "IpcMode": "private",
                                              "CgroupnsMode": "private"}


def test_host_leaves_the_namespace_out_and_what_depends_on_it():
    host = namespaces.check({"PidMode": "host", "UTSMode": "host", "IpcMode": "host", "CgroupnsMode": "host"},
                            "", find)
    config = default_config(["sh"])
    namespaces.apply(config, host, lambda ref: 0)
    assert set(kinds(config)) == {"network", "mount"}
    assert "hostname" not in config  # it would set the host's
    shm = next(m for m in config["mounts"] if m["destination"] == "/dev/shm")
    assert (shm["type"], shm["source"]) == ("bind", "/dev/shm")


def test_container_mode_joins_its_pid_1s_namespace_by_path():
    host = namespaces.check({"PidMode": "container:web", "IpcMode": "container:web"}, "", find)
    assert host["PidMode"] == "container:" + "f" * 64  # recorded by ID: a rename changes nothing
    config = default_config(["sh"])
    namespaces.apply(config, host, lambda ref: 4242)
    assert kinds(config)["pid"] == "/proc/4242/ns/pid" and kinds(config)["ipc"] == "/proc/4242/ns/ipc"
    with pytest.raises(Conflict, match="cannot join PID of a non running container"):
        namespaces.apply(default_config(["sh"]), host, lambda ref: 0)


@pytest.mark.parametrize(("host", "message"), [
    ({"PidMode": "bogus"}, "invalid PidMode 'bogus'"),
    ({"UTSMode": "container:web"}, "invalid UTSMode 'container:web'"),
    ({"CgroupnsMode": "shareable"}, "invalid CgroupnsMode 'shareable'"),
    ({"IpcMode": "shareable"}, "invalid IpcMode 'shareable'"),
    ({"PidMode": 1}, "must be a string"),
])
def test_what_is_not_supported_is_refused_by_name(host, message):
    with pytest.raises(InvalidParameter, match=message):
        namespaces.check(host, "", find)


def test_docker_refuses_a_hostname_with_the_hosts_uts():
    with pytest.raises(InvalidParameter, match="conflicting options: hostname and the UTS mode"):
        namespaces.check({"UTSMode": "host"}, "myhost", find)
    with pytest.raises(NotFound):
        namespaces.check({"PidMode": "container:nope"}, "", find)
