"""Docker's confinement through the engine: the default capabilities, seccomp profile and device
rules; --cap-add/--cap-drop, --security-opt; bad values refused before anything is created."""

from __future__ import annotations

import json
import os

import pytest
from test_engine import engine  # noqa: F401 - the fixture: a daemon of the test's own

pytestmark = pytest.mark.root

DOCKER_CAPS = 0xA80425FB  # Docker's 14 default capabilities, as /proc/self/status shows the mask


def status(out: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_a_default_container_is_confined_as_dockers_are(engine):  # noqa: F811
    script = ("grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
              "unshare -U true || echo unshare-refused; mkdir -p /tmp/m; mount -t tmpfs none /tmp/m || echo mount-refused; "
              "mknod /dev/sdx b 8 0 && echo mknod-ok; head -c1 /dev/sdx || echo open-refused")
    r = engine.mc("run", "--rm", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    assert int(st["CapBnd"], 16) == int(st["CapEff"], 16) == DOCKER_CAPS
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "0"  # a filter; no_new_privs only when asked, as Docker
    for word in ("unshare-refused", "mount-refused", "mknod-ok", "open-refused"):
        assert word in r.stdout, (word, r.stdout, r.stderr)


def test_unconfined_with_sys_admin_may_unshare_and_mount(engine):  # noqa: F811
    r = engine.mc("run", "--rm", "--security-opt", "seccomp=unconfined", "--cap-add", "SYS_ADMIN", "busybox", "sh",
                  "-c", "unshare -U true && echo unshare-ok; mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mount-ok; "
                        "grep Seccomp: /proc/self/status")
    assert r.returncode == 0, r.stderr
    assert "unshare-ok" in r.stdout and "mount-ok" in r.stdout and "Seccomp:\t0" in r.stdout
    # SYS_ADMIN alone: Docker's profile, resolved against the capabilities, allows mount too
    r = engine.mc("run", "--rm", "--cap-add", "CAP_SYS_ADMIN", "busybox", "sh", "-c",
                  "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mount-ok")
    assert "mount-ok" in r.stdout, r.stderr


def test_cap_drop_all_and_no_new_privileges_through_the_docker_cli(engine):  # noqa: F811
    r = engine.docker("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--security-opt",
                      "no-new-privileges", "busybox", "grep", "-E", "^(CapEff|NoNewPrivs):", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    assert int(st["CapEff"], 16) == 1 << 10 and st["NoNewPrivs"] == "1"
    assert engine.docker("create", "--name", "c1", "--cap-drop", "ALL", "--security-opt", "seccomp=unconfined",
                         "busybox", "true").returncode == 0
    shown = engine.docker("inspect", "--format", "{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}}",
                          "c1").stdout.split()
    assert shown == ['["ALL"]', '["seccomp=unconfined"]']  # inspect shows them
    assert engine.docker("rm", "c1").returncode == 0


def test_a_custom_profile_file_is_read_by_the_client(engine, tmp_path):  # noqa: F811
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    r = engine.mc("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/tmp/x")
    assert r.returncode == 1 and "Permission denied" in r.stderr  # EACCES, as the profile says


@pytest.mark.parametrize(("flags", "words"), [
    (["--cap-add", "FLY"], 'invalid CapAdd: unknown capability: "FLY"'),
    (["--cap-drop", "CAP_NOPE"], 'invalid CapDrop: unknown capability: "CAP_NOPE"'),
    (["--security-opt", "apparmor=x"], 'invalid --security-opt 1: "apparmor=x"'),
    (["--security-opt", "seccomp=/nonexistent.json"], "opening seccomp profile (/nonexistent.json) failed"),
    (["--security-opt", "seccomp=BAD"], "Decoding seccomp profile failed"),
])
def test_bad_confinement_values_are_refused_before_anything_is_created(engine, tmp_path, flags, words):  # noqa: F811
    if flags[-1] == "seccomp=BAD":
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_SOMETIMES"}))
        flags = ["--security-opt", f"seccomp={bad}"]
    r = engine.mc("run", *flags, "busybox", "true")
    assert r.returncode == 125 and words in r.stderr, r.stderr
    assert engine.mc("ps", "-aq").stdout == ""


def test_privileged_can_mount_and_sees_the_hosts_devices_a_default_container_cannot(engine):  # noqa: F811
    script = ("grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /dev/loop0 && echo host-device; "
              "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mount-ok; grep -w /sys /proc/mounts; "
              "ls -l /dev/ptmx")
    r = engine.mc("run", "--rm", "--privileged", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    with open("/proc/self/status") as f:  # every capability this (root) test holds, as the daemon does
        held = status(f.read())["CapEff"]
    assert int(st["CapEff"], 16) == int(held, 16) and st["Seccomp"] == "0"
    assert "host-device" in r.stdout and "mount-ok" in r.stdout
    assert "sysfs /sys sysfs rw," in r.stdout and "-> pts/ptmx" in r.stdout  # /sys writable; its own terminals
    r = engine.mc("run", "--rm", "busybox", "sh", "-c", script)
    assert "host-device" not in r.stdout and "mount-ok" not in r.stdout and "sysfs /sys sysfs ro," in r.stdout


def test_a_device_is_given_with_its_permissions_and_others_stay_refused(engine):  # noqa: F811
    if not os.path.exists("/dev/loop0"):
        pytest.skip("this host has no /dev/loop0 (the loop driver is not loaded)")
    script = ("echo x > /dev/mynull && echo null-ok; head -c1 /dev/myloop; echo read-$?; "
              "echo x > /dev/myloop || echo write-refused; mknod /dev/l1 b 7 1 && (head -c1 /dev/l1 || echo loop1-refused)")
    r = engine.mc("run", "--rm", "--device", "/dev/null:/dev/mynull", "--device", "/dev/loop0:/dev/myloop:r",
                  "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    for word in ("null-ok", "read-0", "write-refused", "loop1-refused"):
        assert word in r.stdout, (word, r.stdout, r.stderr)
    assert "Operation not permitted" in r.stderr  # the devices cgroup's answer, not a missing node's
    r = engine.mc("run", "--rm", "--device-cgroup-rule", "b 7:* r", "busybox", "sh", "-c",
                  "mknod /dev/l1 b 7 1 && head -c1 /dev/l1 && echo rule-ok; echo x > /dev/l1 || echo write-refused")
    assert "rule-ok" in r.stdout and "write-refused" in r.stdout, r.stderr


def test_group_add_sysctl_shm_size_ulimit_and_oom_score_reach_the_process(engine):  # noqa: F811
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read().strip()
    with open("/proc/sys/net/ipv4/ip_default_ttl") as f:
        host_ttl = f.read().strip()
    inside = "0" if host_forward == "1" else "1"
    r = engine.mc("run", "--rm", "--group-add", "nogroup", "--group-add", "4321", "--sysctl",
                  f"net.ipv4.ip_forward={inside}", "--sysctl", "net.ipv4.ip_default_ttl=99", "--shm-size", "128m",
                  "--ulimit", "nofile=100:200", "--oom-score-adj", "500", "busybox", "sh", "-c",
                  "id; cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_default_ttl; df -k /dev/shm | tail -1; "
                  "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "4321" in lines[0] and "65534(nogroup)" in lines[0]
    assert lines[1:3] == [inside, "99"]
    assert lines[3].split()[1] == str(128 * 1024)  # 1K-blocks
    assert lines[4:7] == ["100", "200", "500"]
    with open("/proc/sys/net/ipv4/ip_forward") as f, open("/proc/sys/net/ipv4/ip_default_ttl") as g:
        assert (f.read().strip(), g.read().strip()) == (host_forward, host_ttl)  # the host's are untouched


def test_the_docker_cli_drives_them_and_inspect_shows_them(engine):  # noqa: F811
    r = engine.docker("run", "--rm", "--ulimit", "nofile=50:60", "--sysctl", "kernel.shmmni=1000", "--group-add", "99",
                      "--shm-size", "100m", "busybox", "sh", "-c",
                      "ulimit -n; cat /proc/sys/kernel/shmmni; id -G; df -m /dev/shm | tail -1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["50", "1000"] and "99" in lines[2].split() and lines[3].split()[1] == "100"
    assert engine.docker("create", "--name", "c2", "--privileged", "--device", "/dev/null:/dev/mynull:rw",
                         "--ulimit", "core=0", "--sysctl", "net.core.somaxconn=100", "busybox", "true").returncode == 0
    shown = json.loads(engine.docker("inspect", "c2").stdout)[0]["HostConfig"]
    assert shown["Privileged"] is True and shown["ShmSize"] == 64 << 20 and shown["OomScoreAdj"] == 0
    assert shown["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}]
    assert shown["Ulimits"] == [{"Name": "core", "Hard": 0, "Soft": 0}]
    assert shown["Sysctls"] == {"net.core.somaxconn": "100"}
    assert engine.docker("rm", "c2").returncode == 0


@pytest.mark.parametrize(("flags", "words"), [
    (["--ulimit", "fly=1"], "invalid ulimit type: fly"),
    (["--ulimit", "nofile=300:200"], "ulimit soft limit must be less than or equal to hard limit: 300 > 200"),
    (["--sysctl", "kernel.core_pattern=|/tmp/x"], "sysctl 'kernel.core_pattern=|/tmp/x' is not allowed"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "not allowed in host network namespace"),
    (["--device", "/dev/nope"], 'error gathering device information while adding custom device "/dev/nope"'),
    (["--group-add", "nosuch"], "Unable to find group nosuch: no matching entries in group file"),
    (["--ipc", "host", "--shm-size", "1g"], "--shm-size has no effect with --ipc host"),
])
def test_bad_confinement_flags_are_refused_before_anything_is_created(engine, flags, words):  # noqa: F811
    r = engine.mc("run", "--rm", *flags, "busybox", "true")
    assert r.returncode == 125 and words in r.stderr, r.stderr
    assert engine.mc("ps", "-aq").stdout == ""


def test_cgroup_parent_nests_the_cgroup_and_goes_with_the_container(engine):  # noqa: F811
    from minicontainer.kernel.cgroups.layout import detect

    layout = detect()  # the daemon runs in this test's cgroups
    controller = "pids" if "pids" in layout.v1 else ""
    r = engine.mc("run", "--rm", "--cgroupns", "host", "--cgroup-parent", "classroom/alice", "busybox",
                  "cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.split(":")[1] == controller)
    mine = layout.own_path(controller).rstrip("/")
    assert line.split(":", 2)[2].startswith(f"{mine}/classroom/alice/minicontainer-")
    assert not os.path.exists(layout.dir_of(controller, f"{mine}/classroom"))  # the parent went with the container


def test_dockers_network_sysctls_in_a_network_namespace_of_the_containers_own(engine):  # noqa: F811
    files = "/proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range"
    if not all(os.path.exists(f) for f in files.split()):
        pytest.skip("this kernel lacks net.ipv4.ip_unprivileged_port_start or ping_group_range")
    with open(files.split()[0]) as f:
        host_start = f.read().strip()
    r = engine.mc("run", "--rm", "-u", "65534", "busybox", "sh", "-c", f"cat {files}; nc -l -p 80 -w 1 & sleep 0.3; "
                  "netstat -ltn | grep -q ':80 ' && echo bound-80")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["0", "0", "2147483647"] and "bound-80" in r.stdout  # no capability needed
    r = engine.mc("run", "--rm", "--network", "host", "busybox", "cat", files.split()[0])
    assert r.stdout.strip() == host_start  # the host's namespace: left as it is
