"""Real isolation, as root: what the container sees is its own, and the host does not change."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def run_sh(rt, make_bundle, script: str, cid: str = "iso", **changes):
    bundle = make_bundle(["sh", "-c", script], **changes)
    return rt("run", "--bundle", str(bundle), cid)


def test_program_is_pid_1_and_sees_only_its_own_processes(rt, make_bundle):
    r = run_sh(rt, make_bundle, "echo pid=$$; sleep 0.1 & ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first == "pid=1"
    pids = [int(p) for p in second.split()]
    # sh (1), the background sleep, ls, grep, sort, tr: a handful, never the host's hundreds.
    assert pids[0] == 1 and len(pids) < 10, pids


def test_hostname_is_the_containers_and_the_host_keeps_its_own(rt, make_bundle):
    before = socket.gethostname()
    # Even a container allowed to change its hostname (CAP_SYS_ADMIN) changes only its own.
    r = run_sh(rt, make_bundle, "hostname; hostname changed-inside; hostname", hostname="box1",
               process={"capabilities": {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["box1", "changed-inside"]
    assert socket.gethostname() == before


def test_a_mount_made_inside_never_appears_on_the_host(rt, make_bundle, tmp_path):
    marker = "minicontainer-inside-mount"
    r = run_sh(rt, make_bundle, f"mkdir -p /mnt/x && mount -t tmpfs {marker} /mnt/x && grep -c {marker} /proc/mounts",
               process={"capabilities": {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    with open("/proc/self/mountinfo") as f:
        assert marker not in f.read()


def test_network_namespace_has_only_loopback(rt, make_bundle):
    r = run_sh(rt, make_bundle, "ls /sys/class/net")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["lo"]


def test_each_requested_namespace_differs_from_the_hosts(rt, make_bundle):
    kinds = ["cgroup", "ipc", "mnt", "net", "pid", "uts"]
    script = "; ".join(f"echo {k}=$(readlink /proc/self/ns/{k})" for k in kinds)
    r = run_sh(rt, make_bundle, script)
    assert r.returncode == 0, r.stderr
    inside = dict(line.split("=", 1) for line in r.stdout.split())
    for k in kinds:
        assert inside[k] != os.readlink(f"/proc/self/ns/{k}"), k
    # user was not requested: the container shares the host's user namespace
    r = run_sh(rt, make_bundle, "readlink /proc/self/ns/user", cid="iso2")
    assert r.stdout.strip() == os.readlink("/proc/self/ns/user")


def test_user_namespace_maps_root_to_an_unprivileged_host_id(rt, make_bundle):
    config_linux = {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    }
    made = make_bundle(["sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/made-inside; ls /dev"],
                       linux=config_linux)
    # Root in the user namespace is host uid 100000, an ordinary user outside: it must be able to
    # walk to the rootfs (pytest's temp dirs are private to host root) and to write in it.
    home = Path(tempfile.mkdtemp(prefix="minicontainer-userns-"))
    try:
        home.chmod(0o755)
        bundle = home / "bundle"
        shutil.move(str(made), bundle)
        subprocess.run(["chown", "-R", "100000:100000", str(bundle / "rootfs")], check=True)
        r = rt("run", "--bundle", str(bundle), "userns")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        assert lines[0] == "0"
        assert lines[1].split() == ["0", "100000", "65536"]
        assert os.stat(bundle / "rootfs" / "tmp" / "made-inside").st_uid == 100000
        assert "null" in r.stdout  # bind-mounted from the host: mknod is refused in a user namespace
    finally:
        shutil.rmtree(home)


def test_dev_is_a_private_tmpfs_with_the_standard_devices(rt, make_bundle):
    r = run_sh(rt, make_bundle, "ls -A /dev | tr '\\n' ' '; echo; grep ' /dev ' /proc/mounts; "
                                "echo hello > /dev/null && head -c 4 /dev/zero | od -An -tx1; "
                                "readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx; ls /dev/pts")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    names = set(lines[0].split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin", "stdout",
            "stderr"} <= names
    assert "sda" not in names and "mem" not in names
    assert lines[1].startswith("tmpfs /dev tmpfs")
    assert lines[2].split() == ["00", "00", "00", "00"]
    assert lines[3:6] == ["/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"]
    assert "ptmx" in lines[6]


def test_sys_is_read_only_and_proc_is_the_containers(rt, make_bundle):
    r = run_sh(rt, make_bundle, "grep -E ' /(sys|proc) ' /proc/mounts; touch /sys/x 2>&1; cat /proc/1/cmdline")
    mounts = {line.split()[1]: line.split() for line in r.stdout.splitlines() if line.startswith(("sysfs", "proc"))}
    assert mounts["/sys"][2] == "sysfs" and "ro" in mounts["/sys"][3].split(",")
    assert mounts["/proc"][2] == "proc"
    assert "Read-only file system" in r.stdout


def test_masked_and_readonly_paths(rt, make_bundle):
    r = run_sh(rt, make_bundle, "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; "
                                "echo 1 > /proc/sys/kernel/domainname 2>&1 || echo refused")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "0"  # /dev/null over it
    assert lines[1] == "0"  # an empty tmpfs over it
    assert "refused" in r.stdout


def test_host_filesystem_is_out_of_reach(rt, make_bundle):
    # After pivot_root and the detach of the old root, nothing of the host's / is mounted inside.
    r = run_sh(rt, make_bundle, "ls /; cat /proc/self/mountinfo | wc -l; ls /work 2>&1 || true")
    assert r.returncode == 0, r.stderr
    assert "No such file or directory" in r.stdout
    assert "bin" in r.stdout.split()


def test_root_readonly(rt, make_bundle):
    r = run_sh(rt, make_bundle, "touch /newfile 2>&1; echo ok > /dev/shm/x && cat /dev/shm/x",
               root={"path": "rootfs", "readonly": True})
    assert "Read-only file system" in r.stdout
    assert r.stdout.strip().endswith("ok")


def test_user_identity_capabilities_rlimits_and_no_new_privileges(rt, make_bundle):
    process = {
        "args": ["sh", "-c", "id; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ulimit -n; pwd"],
        "env": ["PATH=/bin"], "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [2000]},
        "capabilities": {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective": [], "permitted": []},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 400}],
        "noNewPrivileges": True,
    }
    bundle = make_bundle(["sh"], process=process)
    r = rt("run", "--bundle", str(bundle), "ident")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "uid=1000 gid=1000 groups=2000" in out
    status = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == (1 << 5) | (1 << 10)  # CAP_KILL, CAP_NET_BIND_SERVICE
    assert status["NoNewPrivs"] == "1"
    assert "321" in out.split()
    assert out.strip().endswith("/tmp")


def test_bind_mount_read_only(rt, make_bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("from the host\n")
    mounts = [{"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]}]
    bundle = make_bundle(["sh", "-c", "cat /data/hello.txt; touch /data/new 2>&1; grep ' /data ' /proc/mounts"])
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] += mounts
    (bundle / "config.json").write_text(json.dumps(config))
    r = rt("run", "--bundle", str(bundle), "bind")
    assert r.returncode == 0, r.stderr
    assert "from the host" in r.stdout
    assert "Read-only file system" in r.stdout
    assert not (data / "new").exists()


def test_joining_another_containers_network_namespace_by_path(rt, make_bundle):
    first = make_bundle(["sleep", "30"])
    assert rt("run", "-d", "--bundle", str(first), "netowner").returncode == 0
    try:
        owner_pid = json.loads(rt("state", "netowner").stdout)["pid"]
        net = f"/proc/{owner_pid}/ns/net"
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [{"type": "network", "path": net}]
        second = make_bundle(["readlink", "/proc/self/ns/net"], linux={"namespaces": namespaces})
        r = rt("run", "--bundle", str(second), "netjoiner")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == os.readlink(net)
        assert "setns" in rt("--explain", "run", "--bundle", str(second), "netjoiner2").stderr
    finally:
        rt("delete", "--force", "netowner")


def test_the_program_gets_a_clean_process(rt, make_bundle):
    # A session of its own (no controlling terminal shared with the host), default SIGPIPE (so
    # `yes | head` ends), no descriptor of the runtime's beyond stdio.
    script = ("echo sid=$(cut -d' ' -f6 /proc/self/stat); yes | head -n 1; "
              "ls /proc/self/fd | tr '\\n' ' '; echo; grep -E '^Sig(Ign|Blk)' /proc/self/status")
    r = run_sh(rt, make_bundle, script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "sid=1"  # sh (PID 1) leads its own session
    assert lines[1] == "y"
    assert lines[2].split() == ["0", "1", "2", "3"]  # 3: ls's own handle on the directory
    status = dict(line.split(":\t") for line in lines[3:])
    assert int(status["SigBlk"], 16) == 0
    assert int(status["SigIgn"], 16) & (1 << 12) == 0  # SIGPIPE (13) is not ignored


def test_device_files_shipped_in_the_image_are_inert(rt, make_bundle):
    bundle = make_bundle(["sh", "-c", "head -c 1 /mydisk; echo rc=$?; echo x > /dev/null && echo devnull-ok"])
    os.mknod(bundle / "rootfs" / "mydisk", 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    r = rt("run", "--bundle", str(bundle), "nodev")
    assert "Permission denied" in r.stdout + r.stderr
    assert "rc=1" in r.stdout
    assert "devnull-ok" in r.stdout  # the runtime's own /dev still works
