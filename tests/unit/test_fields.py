"""The field table (engine/fields.py): what real clients send by default passes; every field the engine
does not honour is refused by name unless it is zero or the default; inspect shows every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minicontainer.engine import fields
from minicontainer.engine.errors import InvalidParameter

# `docker create busybox`, as docker CLI 28.2.2 sends it (captured on a unix socket): every field,
# most of them empty.
DOCKER_CLI_BODY = json.loads((Path(__file__).parent / "data" / "docker-cli-28-create.json").read_text())
# docker-py 7.1's `containers.create("busybox", "true")`.
DOCKER_PY_BODY = {"Tty": False, "OpenStdin": False, "StdinOnce": False, "AttachStdin": False,
                  "AttachStdout": True, "AttachStderr": True, "Cmd": ["true"], "Image": "busybox",
                  "NetworkDisabled": False, "HostConfig": {"NetworkMode": "default"}}


def with_host(**host) -> dict:
    body = json.loads(json.dumps(DOCKER_CLI_BODY))
    body["HostConfig"].update(host)
    return body


def refusal(body: dict) -> str:
    with pytest.raises(InvalidParameter) as e:
        fields.check(body)
    assert e.value.status == 400
    return str(e.value)


def test_what_the_clients_send_by_default_passes():
    checked = fields.check(DOCKER_CLI_BODY)
    assert checked["HostConfig"]["MemorySwappiness"] == -1
    fields.check(DOCKER_PY_BODY)
    fields.check({"Image": "busybox"})
    # run -it --rm -m 64m --cpus 1 --pids-limit 10 --init -e A=1 -l x=y -w /tmp -u 1 -h box
    fields.check(with_host(AutoRemove=True, Memory=64 << 20, NanoCpus=10**9, PidsLimit=10, Init=True,
                           ConsoleSize=[24, 80]))


@pytest.mark.parametrize(("host", "name"), [
    ({"Links": ["db:db"]}, "HostConfig.Links"),                                                 # --link
    ({"BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1}]}, "HostConfig.BlkioDeviceReadBps"),  # --device-read-bps
    ({"StorageOpt": {"size": "1G"}}, "HostConfig.StorageOpt"),                                  # --storage-opt
    ({"KernelMemory": 64 << 20}, "HostConfig.KernelMemory"),                                  # --kernel-memory
    ({"UsernsMode": "host"}, "HostConfig.UsernsMode"),
    ({"CpuRealtimeRuntime": 1000}, "HostConfig.CpuRealtimeRuntime"),
])
def test_a_field_not_honoured_is_refused_by_name(host, name):
    message = refusal(with_host(**host))
    assert message.startswith(name + "=") and "not supported by this engine yet" in message


def test_a_map_is_not_zero_for_its_empty_values():
    assert refusal(with_host(StorageOpt={"dm.basesize": ""})).startswith("HostConfig.StorageOpt=")
    assert "no log driver named 'asdf' is registered" in refusal(with_host(LogConfig={"Type": "asdf"}))


def test_refusals_beyond_the_host_config():
    assert refusal({"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"]}}).startswith("Healthcheck=")
    assert refusal({"Image": "busybox", "MacAddress": "02:42:ac:11:00:02"}).startswith("MacAddress=")
    assert "unknown field HostConfig.Memroy" in refusal({"Image": "x", "HostConfig": {"Memroy": 5}})


def test_defaults_by_another_name_pass():
    for host in ({"NetworkMode": "none"}, {"LogConfig": {"Type": "json-file"}}, {"IpcMode": "private"},
                 {"ShmSize": 64 << 20}, {"RestartPolicy": {"Name": "no"}}, {"Isolation": "default"}):
        fields.check({"Image": "busybox", "HostConfig": host})


def test_names_match_without_regard_to_case_as_go_does():
    checked = fields.check({"image": "busybox", "hostconfig": {"memory": 64 << 20, "cpushares": 0}})
    assert checked["Image"] == "busybox" and checked["HostConfig"]["Memory"] == 64 << 20
    assert refusal({"Image": "busybox", "HostConfig": {"kernelmemory": 64 << 20}}).startswith(
        "HostConfig.KernelMemory=")


@pytest.mark.parametrize(("host", "message"), [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger than memory limit"),
    ({"NanoCpus": 10**6 * 10**9}, "range of CPUs is from 0.01 to"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy: unknown policy 'sometimes'"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, "can't create 'AutoRemove' container with restart"),
])
def test_dockers_own_checks_come_first_in_dockers_words(host, message):
    assert message in refusal(with_host(**host))


def test_inspect_shows_every_field_as_docker_does():
    checked = fields.check(with_host(Memory=64 << 20))
    shown = fields.shown(fields.HOST_CONFIG, checked["HostConfig"])
    assert set(shown) == set(fields.HOST_CONFIG)
    assert shown["Memory"] == 64 << 20 and shown["CpuShares"] == 0 and shown["CpusetCpus"] == ""
    assert shown["NetworkMode"] == "default" and shown["IpcMode"] == "private" and shown["GroupAdd"] is None
    assert shown["LogConfig"] == {"Type": "json-file", "Config": {}} and shown["MemorySwappiness"] is None
    assert set(fields.shown(fields.CONFIG, checked)) == set(fields.CONFIG)
