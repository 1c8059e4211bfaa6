"""Docker's other confinement flags, as parsing and rules: --privileged, --device, --device-cgroup-rule,
--group-add, --sysctl, --shm-size, --ulimit, --oom-score-adj (the CLI's words, the engine's checks, the
OCI config they make)."""

from __future__ import annotations

import argparse
import os
import stat

import pytest

from minicontainer.cli import security
from minicontainer.client import confinement_fields
from minicontainer.engine import (
    confinement,
    devices,
    fields,
    namespaces,
    process_settings,
    resources,
    sysctls,
)
from minicontainer.engine.errors import InvalidParameter
from minicontainer.runtime.defaults import default_config


def test_device_flags_parse_as_the_docker_cli_does():
    assert security.device("/dev/sdb") == {"PathOnHost": "/dev/sdb", "PathInContainer": "/dev/sdb",
                                           "CgroupPermissions": "rwm"}
    assert security.device("/dev/sdb:r")["CgroupPermissions"] == "r"  # a mode alone
    assert security.device("/dev/sdb:/dev/xvdb")["PathInContainer"] == "/dev/xvdb"
    assert security.device("/dev/sdb:/dev/xvdb:mw")["CgroupPermissions"] == "mw"
    for bad, words in (("/dev/sdb:/dev/x:rwx", "bad mode specified: rwx"), ("/dev/sdb:x", "x is not an absolute path"),
                       ("a:b:c:d", "bad format for path"), (":/dev/x", "bad format for path")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            security.device(bad)
    assert security.cgroup_rule("c 1:3 mr") == "c 1:3 mr"
    with pytest.raises(argparse.ArgumentTypeError, match="invalid device cgroup format 'c 1:3'"):
        security.cgroup_rule("c 1:3")


def test_ulimit_and_sysctl_flags_parse_as_the_docker_cli_does():
    assert security.ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert security.ulimit("nproc=64") == {"Name": "nproc", "Soft": 64, "Hard": 64}
    assert security.ulimit("core=-1") == {"Name": "core", "Soft": -1, "Hard": -1}
    for bad, words in (("nofile", "invalid ulimit argument: nofile"), ("as=1", "invalid ulimit type: as"),
                       ("nofile=3:2", "soft limit must be less than or equal to hard limit: 3 > 2"),
                       ("nofile=-1:2", "soft: -1 (unlimited), hard: 2"), ("nofile=x", "invalid ulimit argument")):
        with pytest.raises(argparse.ArgumentTypeError, match=words.replace("(", r"\(").replace(")", r"\)")):
            security.ulimit(bad)
    assert security.sysctl("net.ipv4.ip_forward=1") == ("net.ipv4.ip_forward", "1")
    assert security.sysctl("kernel.shmmax=1") == ("kernel.shmmax", "1")
    for bad in ("kernel.core_pattern=x", "vm.swappiness=1", "net.ipv4.ip_forward"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not allowed"):
            security.sysctl(bad)


def test_the_engine_checks_sysctls_against_the_namespaces_the_container_gets():
    assert sysctls.namespace_of("net.core.somaxconn") == "network"
    assert sysctls.namespace_of("fs.mqueue.msg_max") == sysctls.namespace_of("kernel.sem") == "ipc"
    sysctls.check({"Sysctls": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "9"}})
    sysctls.check({"Sysctls": {"net.ipv4.ip_forward": "1"}, "IpcMode": "host"})  # another namespace's
    for host, words in (({"Sysctls": {"vm.swappiness": "1"}}, "sysctl 'vm.swappiness=1' is not allowed"),
                        ({"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "host"},
                         'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
                        ({"Sysctls": {"kernel.shmmax": "1"}, "IpcMode": "host"}, "is not allowed in the hosts ipc"),
                        ({"Sysctls": {"net.x": 1}}, "must be a string"), ({"Sysctls": ["a"]}, "must be an object")):
        with pytest.raises(InvalidParameter, match=words):
            sysctls.check(host)


def test_dockers_network_sysctls_come_first_and_sysctl_wins():
    config = default_config(["sh"])
    sysctls.apply(config, {"NetworkMode": "bridge", "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "80"}})
    assert config["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "80"
    assert config["linux"]["sysctl"]["net.ipv4.ping_group_range"] == "0 2147483647"
    config = default_config(["sh"])
    sysctls.apply(config, {"NetworkMode": "host"})  # the host's namespace: none of Docker's either
    assert "sysctl" not in config["linux"]


def test_ulimits_are_checked_and_become_rlimits():
    for limit, words in (({"Name": "fly", "Soft": 1, "Hard": 1}, "invalid ulimit type: fly"),
                         ({"Name": "nofile", "Soft": 3, "Hard": 2}, "3 > 2"),
                         ({"Name": "nofile", "Soft": "1", "Hard": 2}, "whole numbers"), ("nofile=1", "must be")):
        with pytest.raises(InvalidParameter, match=words):
            process_settings.check({"Ulimits": [limit]})
    with pytest.raises(InvalidParameter, match="given twice"):
        process_settings.check({"Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}] * 2})
    config = default_config(["sh"])
    process_settings.apply(config, {"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200},
                                                {"Name": "core", "Soft": -1, "Hard": -1}], "OomScoreAdj": 300})
    rlimits = {r["type"]: (r["soft"], r["hard"]) for r in config["process"]["rlimits"]}
    assert rlimits == {"RLIMIT_NOFILE": (100, 200), "RLIMIT_CORE": (2**64 - 1, 2**64 - 1)}  # replaces the default
    assert config["process"]["oomScoreAdj"] == 300


def test_the_daemons_default_ulimits_apply_where_the_container_sets_none(tmp_path, monkeypatch):
    settings = tmp_path / "daemon.json"
    settings.write_text('{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 64, "Hard": 128}, '
                        '"core": {"Name": "core", "Soft": 0, "Hard": 0}}}')
    monkeypatch.setenv("MINICONTAINER_DAEMON_CONFIG", str(settings))
    checked = fields.check({"Image": "busybox", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]}})
    assert checked["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 1, "Hard": 2},
                                                {"Name": "core", "Soft": 0, "Hard": 0}]
    settings.write_text('{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 9, "Hard": 1}}}')
    with pytest.raises(InvalidParameter, match="daemon.json: default-ulimits: nofile"):
        fields.check({"Image": "busybox"})


def test_group_add_names_come_from_the_images_group_file(tmp_path):
    text = "root:x:0:\naudio:x:29:pulse\n"
    assert process_settings.resolve_groups(["audio", "4321"], text) == [29, 4321]
    with pytest.raises(InvalidParameter, match="Unable to find group video: no matching entries in group file"):
        process_settings.resolve_groups(["video"], text)
    # read from the layers as overlayfs shows them: the top one wins, a whiteout hides those below
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    (bottom / "etc").mkdir(parents=True)
    (bottom / "etc" / "group").write_text(text)
    (top / "etc").mkdir(parents=True)
    assert process_settings.image_group_file([str(top), str(bottom)]) == text
    os.mknod(top / "etc" / "group", stat.S_IFCHR | 0o600, 0)  # a whiteout (needs root, as the tests run)
    assert process_settings.image_group_file([str(top), str(bottom)]) == ""
    with pytest.raises(InvalidParameter, match="Unable to find group audio"):
        process_settings.check_groups({"GroupAdd": ["audio"]}, [str(top), str(bottom)])


def test_device_mappings_and_rules(tmp_path):
    nodes = devices.mapping_nodes({"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull"})
    assert [(n.path, n.type, n.major, n.minor) for n in nodes] == [("/dev/mynull", "c", 1, 3)]
    with pytest.raises(InvalidParameter, match='adding custom device "/dev/nope": no such file or directory'):
        devices.mapping_nodes({"PathOnHost": "/dev/nope", "PathInContainer": "/dev/nope"})
    with pytest.raises(InvalidParameter, match="not a device node"):
        devices.mapping_nodes({"PathOnHost": "/etc/hostname", "PathInContainer": "/dev/x"})
    with pytest.raises(InvalidParameter, match="only under /dev"):
        devices.mapping_nodes({"PathOnHost": "/dev/null", "PathInContainer": "/mynull"})
    # a directory: every device beneath it, at the same place under the container's path
    (tmp_path / "sub").mkdir()
    os.mknod(tmp_path / "sub" / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    nodes = devices.mapping_nodes({"PathOnHost": str(tmp_path), "PathInContainer": "/dev/mine"})
    assert [(n.path, n.minor) for n in nodes] == [("/dev/mine/sub/zero", 5)]
    assert devices.cgroup_rule("c 1:* mr") == {"allow": True, "type": "c", "major": 1, "access": "mr"}
    with pytest.raises(InvalidParameter, match="invalid device cgroup rule format: 'c 1:3 x'"):
        devices.cgroup_rule("c 1:3 x")
    with pytest.raises(InvalidParameter, match="bad mode specified: rx"):
        devices.check({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rx"}]})


def test_a_device_gets_a_node_and_a_rule_of_its_permissions():
    config = default_config(["sh"])
    confinement.apply(config, {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                            "CgroupPermissions": "r"}], "DeviceCgroupRules": ["b 7:* rw"]})
    assert config["linux"]["devices"] == [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                           "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert config["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "b", "major": 7, "access": "rw"}]


def test_privileged_undoes_the_confinement():
    config = default_config(["sh"])
    confinement.apply(config, {"Privileged": True, "CapDrop": ["ALL"]})
    caps = config["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_MKNOD" in caps  # every one the daemon holds, whatever CapDrop says
    assert "seccomp" not in config["linux"]
    assert config["linux"]["maskedPaths"] == config["linux"]["readonlyPaths"] == []
    assert "ro" not in next(m for m in config["mounts"] if m["destination"] == "/sys")["options"]
    assert config["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    paths = {d["path"] for d in config["linux"]["devices"]}
    assert "/dev/null" in paths and "/dev/console" not in paths and not any(p.startswith("/dev/pts/") for p in paths)
    # a profile given is applied even then, as Docker does
    profile = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}'
    config = default_config(["sh"])
    confinement.apply(config, {"Privileged": True, "SecurityOpt": [f"seccomp={profile}"]})
    assert config["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"


def test_shm_size_sizes_the_containers_own_dev_shm():
    config = default_config(["sh"])
    namespaces.apply(config, {"ShmSize": 128 << 20}, lambda _: 0)
    shm = next(m for m in config["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={128 << 20}" in shm["options"] and "size=65536k" not in shm["options"]
    with pytest.raises(InvalidParameter, match="--shm-size has no effect with --ipc host"):
        namespaces.check({"ShmSize": 1 << 30, "IpcMode": "host"}, "", lambda _: None)
    shown = fields.shown(fields.HOST_CONFIG, {"ShmSize": 0})
    assert shown["ShmSize"] == 64 << 20  # inspect shows what applies, as Docker


def test_memory_knobs_of_cgroup_v1_only_are_refused_elsewhere():
    resources.check_memory_knobs({"OomKillDisable": True, "MemorySwappiness": 10}, v1_memory=True)
    resources.check_memory_knobs({"MemorySwappiness": -1}, v1_memory=False)  # -1: not set
    with pytest.raises(InvalidParameter, match="--oom-kill-disable and --memory-swappiness: this host's memory"):
        resources.check_memory_knobs({"OomKillDisable": True, "MemorySwappiness": 10}, v1_memory=False)
    limits = resources.limits({"OomKillDisable": True, "MemorySwappiness": 10})
    assert resources.oci_resources(limits) == {"memory": {"swappiness": 10, "disableOOMKiller": True}}


def test_the_client_takes_docker_pys_arguments():
    assert confinement_fields({"privileged": True, "devices": ["/dev/sdb:/dev/xvdb:r"], "group_add": [29, "audio"],
                               "shm_size": "128m", "sysctls": {"net.ipv4.ip_forward": "1"}}) == {
        "Privileged": True, "Devices": [{"PathOnHost": "/dev/sdb", "PathInContainer": "/dev/xvdb",
                                         "CgroupPermissions": "r"}],
        "GroupAdd": ["29", "audio"], "ShmSize": 128 << 20, "Sysctls": {"net.ipv4.ip_forward": "1"}}
    with pytest.raises(TypeError, match="unexpected keyword argument 'privilege'"):
        confinement_fields({"privilege": True})


def test_cgroup_parent_stays_beneath_the_daemons_cgroup():
    resources.check_cgroup_parent({"CgroupParent": "classroom/alice"})
    for bad in ("/docker", "../escape", "a/../../b", "user.slice"):
        with pytest.raises(InvalidParameter, match="only beneath the daemon's own cgroup"):
            resources.check_cgroup_parent({"CgroupParent": bad})
    config = default_config(["sh"])
    config["linux"]["cgroupsPath"] = "minicontainer-0123456789ab"
    resources.place_in_parent(config, {"CgroupParent": "classroom/alice/"})
    assert config["linux"]["cgroupsPath"] == "classroom/alice/minicontainer-0123456789ab"


def test_sizes_are_read_as_docker_reads_them():
    from minicontainer.cli.run import parse_bytes

    assert parse_bytes("128m") == parse_bytes("128MB") == parse_bytes("128 MiB") == 128 << 20
    assert parse_bytes("1.5g") == 3 << 29 and parse_bytes("1t") == 1 << 40 and parse_bytes("4096") == 4096
    for bad in ("", "x", "64q", "-1", "1.5.g", "1.5.5m"):
        with pytest.raises(argparse.ArgumentTypeError, match="invalid size"):
            parse_bytes(bad)


def test_all_means_every_capability_the_daemon_holds(monkeypatch):
    from minicontainer.kernel.capabilities import CAPABILITIES, CapabilitySets

    without = sum(1 << b for n, b in CAPABILITIES.items() if n != "CAP_SYS_RESOURCE")  # a sandbox's root
    monkeypatch.setattr(confinement, "current", lambda: CapabilitySets(effective=without))
    assert "CAP_SYS_RESOURCE" not in confinement.capabilities({"Privileged": True})
    assert "CAP_SYS_RESOURCE" not in confinement.capabilities({"CapAdd": ["ALL"]})
    with pytest.raises(InvalidParameter, match='not available in the current environment: "CAP_SYS_RESOURCE"'):
        confinement.capabilities({"CapAdd": ["sys_resource"]})
