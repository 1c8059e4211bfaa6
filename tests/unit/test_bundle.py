"""config.json -> Spec: every field checked, none silently ignored."""

from __future__ import annotations

import copy
import json

import pytest

from minicontainer.kernel.capabilities import CAPABILITIES
from minicontainer.kernel.cgroups.devices import DeviceRule
from minicontainer.runtime.bundle import Hook, SpecError, load, parse
from minicontainer.runtime.defaults import default_config


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def parse_with(bundle, change) -> object:
    config = default_config(["sh"])
    change(config)
    return parse(config, str(bundle))


def test_default_config_parses(bundle):
    spec = parse(default_config(["echo", "hi"]), str(bundle))
    assert spec.process.args == ["echo", "hi"]
    assert spec.root_path == str(bundle / "rootfs")
    assert [ns.type for ns in spec.namespaces] == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert spec.process.capabilities.bounding & (1 << CAPABILITIES["CAP_KILL"])
    assert not spec.process.capabilities.bounding & (1 << CAPABILITIES["CAP_SYS_ADMIN"])
    assert spec.hostname == "minicontainer"
    assert spec.resources.memory_limit is None
    assert spec.rootfs_propagation == ""  # not set: rslave, as runc (set_root_propagation)


def test_resources_become_limits(bundle):
    def change(c):
        c["linux"]["resources"] = {"memory": {"limit": 1 << 20, "swap": 2 << 20}, "pids": {"limit": 5},
                                   "cpu": {"quota": 1000, "period": 10000, "shares": 100, "cpus": "0"}}
    limits = parse_with(bundle, change).resources
    assert (limits.memory_limit, limits.memory_swap, limits.pids_limit) == (1 << 20, 2 << 20, 5)
    assert (limits.cpu_quota, limits.cpu_period, limits.cpu_shares, limits.cpuset_cpus) == (1000, 10000, 100, "0")


def test_user_namespace_ids_map_to_host(bundle):
    def change(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 2000, "size": 10}]
        c["process"]["user"] = {"uid": 3, "gid": 4}
    assert parse_with(bundle, change).host_ids() == (1003, 2004)


@pytest.mark.parametrize("change,field,words", [
    (lambda c: c.pop("process"), "process", "is required but missing"),
    (lambda c: c["process"].pop("args"), "process.args", "is required"),
    (lambda c: c["process"].__setitem__("args", []), "process.args", "must name the program"),
    (lambda c: c["process"].__setitem__("cwd", "relative"), "process.cwd", "absolute"),
    (lambda c: c["process"].__setitem__("env", ["NOEQUALS"]), "process.env[0]", "KEY=value"),
    (lambda c: c["process"]["user"].__setitem__("uid", "root"), "process.user.uid", "must be an int"),
    (lambda c: c["process"]["user"].__setitem__("uid", True), "process.user.uid", "must be an int"),
    (lambda c: c.__setitem__("ociVersion", "0.9"), "ociVersion", "1.x"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type", "twice"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time"}), "linux.namespaces[6].type", "not supported"),
    (lambda c: c["linux"].__setitem__("namespaces", [{"type": "pid"}]), "linux.namespaces", "mount namespace"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings", "needs both"),
    (lambda c: c["linux"].__setitem__("namespaces", [{"type": "mount"}]), "hostname", "uts namespace"),
    (lambda c: c["mounts"].append({"destination": "/x", "type": "nfs", "source": "h:/"}), "mounts[6].type",
     "'nfs' is not supported"),
    (lambda c: c["mounts"].append({"destination": "x", "type": "tmpfs"}), "mounts[6].destination", "absolute"),
    (lambda c: c["mounts"].append({"destination": "/x", "options": ["bind"]}), "mounts[6].source", "needs a source"),
    (lambda c: c.__setitem__("mounts", []), "mounts", "proc mount"),
    (lambda c: c["process"].__setitem__("terminal", "yes"), "process.terminal", "must be a bool"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "x"}), "linux.seccomp",
     "defaultAction: 'x' is not one of"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "op": "SCMP_CMP_EQ"}]}]}),
     "linux.seccomp", "syscalls[0].args[0].index: a system call has arguments 0 to 5"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ERRNO", "flags": ["FAST"]}),
     "linux.seccomp", "flags: 'FAST' is not supported"),
    (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "bin/true"}]}), "hooks.prestart[0].path", "absolute"),
    (lambda c: c.__setitem__("hooks", {"poststop": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.poststop[0].timeout", "more than zero"),
    (lambda c: c["linux"].__setitem__("sysctl", {"kernel.core_pattern": "|/x"}), "linux.sysctl.kernel.core_pattern",
     "whole host"),
    (lambda c: c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": "1"}) or c["linux"].__setitem__(
        "namespaces", [{"type": t} for t in ("mount", "uts")]), "linux.sysctl.net.ipv4.ip_forward",
     "network namespace"),
    (lambda c: c["linux"].__setitem__("sysctl", {"net.core.somaxconn": "9"}) or next(
        ns for ns in c["linux"]["namespaces"] if ns["type"] == "network").__setitem__("path", "/proc/self/ns/net"),
     "linux.sysctl.net.core.somaxconn", "is the host's"),  # joined by path, but the runtime's own (runc's check)
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_MKNOD"), "process.capabilities.bounding",
     "CAP_MKNOD"),
    (lambda c: c["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN"), "process.capabilities",
     "CAP_SYS_ADMIN"),
    (lambda c: c["linux"].__setitem__("resources", {"memory": {"limit": 100, "swap": 50}}),
     "linux.resources.memory.swap", "at least"),
    (lambda c: c["linux"].__setitem__("resources", {"memory": {"swappiness": 101}}),
     "linux.resources.memory.swappiness", "outside 0..100"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/etc/x", "type": "c", "major": 1, "minor": 3}]),
     "linux.devices[0].path", "inside a tmpfs"),
    (lambda c: c["linux"].__setitem__("resources", {"devices": [{"allow": True, "access": "rwx"}]}), "",
     "linux.resources.devices[0].access: 'rwx' must be made of r, w and m"),
    (lambda c: c["linux"].__setitem__("resources", {"devices": [{"access": "r"}]}), "",
     "linux.resources.devices[0].allow: is required"),
    (lambda c: c["linux"].__setitem__("resources", {"memory": {"checkBeforeUpdate": True}}),
     "linux.resources.memory.checkBeforeUpdate", "not supported"),
    (lambda c: c["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type", "unknown rlimit"),
    (lambda c: c["process"].__setitem__("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]),
     "process.rlimits[0]", "above hard"),
    (lambda c: c["process"]["capabilities"].__setitem__("bounding", ["CAP_FLY"]), "", "unknown capability 'CAP_FLY'"),
    (lambda c: c["linux"].__setitem__("rootfsPropagation", "sideways"), "linux.rootfsPropagation", "unknown"),
    (lambda c: c["hostname"] and c["linux"]["namespaces"].append({"type": "time"}), "linux.namespaces[6].type",
     "time namespaces"),
    (lambda c: c["process"].__setitem__("oomScoreAdj", 5000), "process.oomScoreAdj", "outside"),
])
def test_bad_fields_are_named(bundle, change, field, words):
    with pytest.raises(SpecError) as e:
        parse_with(bundle, change)
    assert field in str(e.value)
    assert words in str(e.value)
    if field:
        assert e.value.field == field or e.value.field.startswith(field)


def test_unknown_fields_are_ignored_as_the_spec_requires_and_named_in_warnings(bundle):
    def change(c):
        c["colour"] = "blue"
        c["process"]["consoleSize"] = {"height": 24, "depth": 3}
    spec = parse_with(bundle, change)
    assert [w.split(":")[0] for w in spec.warnings] == ["process.consoleSize.depth", "colour"]
    assert "ignored, as the spec requires" in spec.warnings[0]


def test_ambient_capabilities_that_cannot_be_raised_are_skipped_as_runc_does(bundle):
    def change(c):  # `runc spec` lists ambient capabilities, with no inheritable set
        c["process"]["capabilities"]["ambient"] = ["CAP_KILL"]
        c["process"]["capabilities"].pop("inheritable", None)
    spec = parse_with(bundle, change)
    assert spec.process.capabilities.ambient == 0
    assert spec.warnings == [("process.capabilities.ambient: CAP_KILL not in both permitted and inheritable: "
                              "the kernel cannot raise them; skipped, as runc does")]


def test_device_rules_get_runcs_defaults_after_them_and_allow_cap_mknod(bundle):
    def change(c):
        c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        c["process"]["capabilities"]["bounding"].append("CAP_MKNOD")
    rules = parse_with(bundle, change).resources.devices
    assert rules[0] == DeviceRule(False, "a", -1, -1, "rwm")
    assert DeviceRule(True, "c", 1, 3, "rwm") in rules[1:]  # /dev/null, appended after: it wins
    assert rules[1] == DeviceRule(True, "c", -1, -1, "m")


def test_hooks_are_read_in_order_with_their_timeouts(bundle):
    def change(c):
        c["hooks"] = {"poststop": [{"path": "/bin/a"}, {"path": "/bin/b", "args": ["b", "-x"], "env": ["K=v"],
                                                        "timeout": 3}]}
    hooks = parse_with(bundle, change).hooks
    assert hooks["poststop"][0] == Hook("/bin/a", ["/bin/a"], [], None)
    assert hooks["poststop"][1] == Hook("/bin/b", ["b", "-x"], ["K=v"], 3)


def test_false_and_empty_unsupported_fields_are_accepted(bundle):
    # `"terminal": false` asks for nothing this runtime lacks.
    def change(c):
        c["process"]["terminal"] = False
        c["linux"]["seccomp"] = None
    parse_with(bundle, change)


def test_load_reports_missing_config_malformed_json_and_missing_rootfs(tmp_path):
    with pytest.raises(SpecError, match="No such file"):
        load(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(default_config()))
    with pytest.raises(SpecError, match="root.path.*not a directory"):
        load(str(tmp_path))


def test_parse_does_not_modify_its_input(bundle):
    config = default_config()
    before = copy.deepcopy(config)
    parse(config, str(bundle))
    assert config == before


def test_zero_cpu_values_mean_unset_and_unlimited_rlimits(bundle):
    def change(c):
        c["linux"]["resources"] = {"cpu": {"shares": 0, "quota": 0}}
        c["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]
    spec = parse_with(bundle, change)
    assert spec.resources.cpu_shares is None and spec.resources.cpu_quota is None
    assert spec.process.rlimits[0].soft == -1  # resource.RLIM_INFINITY


def test_relative_bind_source_is_relative_to_the_bundle(bundle):
    spec = parse_with(bundle, lambda c: c["mounts"].append({"destination": "/d", "source": "data",
                                                            "options": ["rbind"]}))
    assert spec.mounts[-1].source == str(bundle / "data")


def test_a_terminal_and_its_size(bundle):
    spec = parse_with(bundle, lambda c: c["process"].update(terminal=True, consoleSize={"height": 24, "width": 80}))
    assert spec.process.terminal and spec.process.console_size == (24, 80)
