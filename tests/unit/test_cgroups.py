"""Tests of minicontainer.kernel.cgroups.

Most tests run over a *fake* cgroup tree: plain directories and files in ``tmp_path`` laid out like
``/sys/fs/cgroup``, with hand-written ``/proc/self/mountinfo`` and ``/proc/self/cgroup`` text.
:class:`FakeCgroupfs` makes ``mkdir``/``rmdir``/``write`` behave as cgroupfs does (a new directory
comes with its knob files; a write replaces a knob's value) so the production code runs unchanged.

Tests marked ``root`` use this machine's real cgroups, beneath the test process's own cgroup.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from minicontainer.kernel.cgroups import (
    CgroupError,
    CgroupV1,
    CgroupV2,
    Limits,
    cgroup_from_state,
    detect,
    open_cgroup,
)
from minicontainer.kernel.cgroups.v2 import shares_to_weight
from minicontainer.kernel.syscalls import KernelError, Syscalls

# --- Host descriptions ----------------------------------------------------------------------------

V2_MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
V2_SELF = "0::/minictl.slice/daemon\n"

V1_MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
36 31 0:33 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset,clone_children
"""
V1_SELF = """\
5:cpuset:/
4:pids:/system.slice/minid.service
3:memory:/system.slice/minid.service
2:cpu,cpuacct:/system.slice/minid.service
1:name=systemd:/system.slice/minid.service
"""

# This VM, verbatim: cpu and cpuacct mounted apart, a named systemd hierarchy, an empty cgroup2.
HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_SELF = """\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/abc123
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""

# Knob files a new cgroup directory gets, with their initial values.
V1_KNOBS = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.soft_limit_in_bytes": "9223372036854771712\n",
               "memory.memsw.limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "4096\n",
               "memory.max_usage_in_bytes": "8192\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"},
    "cpu": {"cpu.shares": "1024\n", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n"},
    "cpuacct": {"cpuacct.usage": "5000000\n"},
    "pids": {"pids.max": "max\n", "pids.current": "1\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
    "blkio": {"blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n"},
    "freezer": {"freezer.state": "THAWED\n"},
}
V2_KNOBS = {
    "memory.max": "max\n", "memory.low": "0\n", "memory.swap.max": "max\n", "memory.current": "4096\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 1\noom_kill 3\n",
    "cpu.max": "max 100000\n", "cpu.weight": "100\n", "cpu.stat": "usage_usec 1234\nuser_usec 1000\n",
    "cpuset.cpus": "\n", "cpuset.mems": "\n", "pids.max": "max\n", "pids.current": "1\n",
    "cgroup.freeze": "0\n", "cgroup.events": "populated 1\nfrozen 0\n",
}


class FakeCgroupfs(Syscalls):
    """Real syscalls on plain files, plus what cgroupfs would do that a plain filesystem does not.

    ``mounts`` maps each fake mount point to the controllers it carries (``["v2"]`` for cgroup2).
    """

    def __init__(self, mounts: dict[str, list[str]], v2_root_controllers: str = "cpu cpuset memory pids") -> None:
        super().__init__()
        self.mounts = mounts
        self.v2_root_controllers = v2_root_controllers

    def _mount_of(self, path: str) -> str:
        return max((m for m in self.mounts if path == m or path.startswith(m + "/")), key=len)

    def populate(self, path: str) -> None:
        """Give ``path`` the files the kernel puts in every new cgroup directory."""
        mount = self._mount_of(path)
        files = {"cgroup.procs": ""}
        if self.mounts[mount] == ["v2"]:
            if path == mount:
                controllers = self.v2_root_controllers
            else:  # a child may use exactly what its parent enables for it
                controllers = Path(path).parent.joinpath("cgroup.subtree_control").read_text()
            files |= {"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.kill": ""}
            files |= V2_KNOBS
        else:
            files["tasks"] = ""  # v1: the threads, one TID per line (cgroup.procs lists processes)
            for controller in self.mounts[mount]:
                files |= V1_KNOBS[controller]
            if path == mount and "cpuset" in self.mounts[mount]:
                files |= {"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"}
        for name, text in files.items():
            Path(path, name).write_text(text)

    def prepare(self, *paths: str) -> None:
        """Directories that exist before the test, each level a populated cgroup (not ours)."""
        for path in paths:
            mount = self._mount_of(path)
            parts = [] if path == mount else os.path.relpath(path, mount).split("/")
            for depth in range(len(parts) + 1):
                current = os.path.join(mount, *parts[:depth])
                os.makedirs(current, exist_ok=True)
                if not os.path.exists(os.path.join(current, "cgroup.procs")):
                    self.populate(current)

    def mkdir(self, path: str, mode: int = 0o755, *, detail: str = "") -> None:
        super().mkdir(path, mode, detail=detail)
        self.populate(path)

    def rmdir(self, path: str, *, detail: str = "") -> None:
        # cgroupfs: a cgroup with child cgroups or processes is busy; its knob files do not count.
        if os.path.isdir(path):
            busy = any(e.is_dir() for e in os.scandir(path)) or Path(path, "cgroup.procs").read_text().strip()
            if busy:
                self.trace.record("rmdir", path, "EBUSY", errno=errno.EBUSY)
                raise KernelError("rmdir", path, errno.EBUSY)
            for entry in os.scandir(path):
                os.unlink(entry.path)
        super().rmdir(path, detail=detail)

    def write_file(self, path: str, data: str, *, detail: str = "") -> None:
        old = Path(path).read_text() if os.path.exists(path) else ""
        name = os.path.basename(path)
        if name == "cgroup.subtree_control":  # only controllers the cgroup has may be enabled
            have = Path(path).parent.joinpath("cgroup.controllers").read_text().split()
            if any(word[1:] not in have for word in data.split()):
                raise KernelError("write", path, errno.ENOENT)
        super().write_file(path, data, detail=detail)  # fails with ENOENT, as cgroupfs, if no such knob
        if name == "cgroup.procs":
            new = old + data.strip() + "\n"
        elif name == "cgroup.subtree_control":
            new = " ".join(sorted(set(old.split()) | {w[1:] for w in data.split() if w[0] == "+"}))
        else:
            new = data
        Path(path).write_text(new)
        if name == "cgroup.freeze":  # the kernel reports the (here: immediate) freeze in cgroup.events
            Path(path).with_name("cgroup.events").write_text(f"populated 1\nfrozen {data.strip()}\n")

    def kill(self, pid: int, sig: int, *, detail: str = "") -> None:
        self.trace.record("kill", f"{pid}, {sig}", detail=detail)  # no real process behind a fake pid

    def writes(self) -> list[tuple[str, str]]:
        """(path, value) of every write made, in order."""
        out = []
        for ev in self.trace.events:
            if ev.op == "write" and ev.result == "ok":
                path, _, value = ev.args.partition(" <- ")
                out.append((path, value))
        return out

    def written(self, path: str) -> str:
        return Path(path).read_text().strip()


def v2_host(tmp_path: Path, own_subtree: str = "cpu cpuset memory pids") -> tuple[FakeCgroupfs, str]:
    """A fake pure-v2 host; our own cgroup /minictl.slice/daemon delegates ``own_subtree``."""
    root = str(tmp_path)
    sys = FakeCgroupfs({f"{root}/sys/fs/cgroup": ["v2"]})
    own = f"{root}/sys/fs/cgroup/minictl.slice/daemon"
    sys.prepare(f"{root}/sys/fs/cgroup")
    Path(root, "sys/fs/cgroup/cgroup.subtree_control").write_text("cpu cpuset memory pids")
    sys.prepare(f"{root}/sys/fs/cgroup/minictl.slice")
    Path(root, "sys/fs/cgroup/minictl.slice/cgroup.subtree_control").write_text("cpu cpuset memory pids")
    sys.prepare(own)
    Path(own, "cgroup.subtree_control").write_text(own_subtree)
    return sys, own


def v1_host(tmp_path: Path, mountinfo: str = V1_MOUNTINFO, self_cgroup: str = V1_SELF):
    """A fake v1 (or hybrid) host from mountinfo text; every own-cgroup directory pre-exists."""
    root = str(tmp_path)
    layout = detect(mountinfo, self_cgroup, root=root)
    mounts: dict[str, list[str]] = {}
    for controller, mount in layout.v1.items():
        if controller in V1_KNOBS:
            mounts.setdefault(mount, []).append(controller)
    sys = FakeCgroupfs(mounts)
    for controller in {c for cs in mounts.values() for c in cs}:
        sys.prepare(layout.own_dir(controller))
    return sys, layout


def assert_only_wrote_in_created(sys: FakeCgroupfs, created: list[str]) -> None:
    for path, _value in sys.writes():
        assert os.path.dirname(path) in created, f"wrote {path}, in a cgroup we did not create"


# --- Layout detection -----------------------------------------------------------------------------


def test_detect_pure_v2() -> None:
    layout = detect(V2_MOUNTINFO, V2_SELF)
    assert layout.mode == "v2"
    assert layout.unified == "/sys/fs/cgroup"
    assert layout.v1 == {}
    assert layout.own == {"": "/minictl.slice/daemon"}
    assert layout.own_dir("") == "/sys/fs/cgroup/minictl.slice/daemon"


def test_detect_v1_with_comounted_cpu_cpuacct_and_named_hierarchy_skipped() -> None:
    layout = detect(V1_MOUNTINFO, V1_SELF)
    assert layout.mode == "v1"
    assert layout.unified is None
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1["memory"] == "/sys/fs/cgroup/memory"
    assert "systemd" not in layout.v1 and "name=systemd" not in layout.own
    assert "clone_children" not in layout.v1  # a mount flag, not a controller
    assert layout.own["cpuacct"] == "/system.slice/minid.service"
    assert layout.own_dir("cpuset") == "/sys/fs/cgroup/cpuset"


def test_detect_hybrid_like_this_vm() -> None:
    layout = detect(HYBRID_MOUNTINFO, HYBRID_SELF)
    assert layout.mode == "hybrid"
    assert layout.unified == "/sys/fs/cgroup/unified"
    assert layout.v1["cpu"] == "/sys/fs/cgroup/cpu" and layout.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert layout.own_dir("memory") == "/sys/fs/cgroup/memory/process_api/abc123"
    assert layout.own_dir("pids") == "/sys/fs/cgroup/pids"


def test_detect_reads_files_under_root_and_respects_mount_root(tmp_path: Path) -> None:
    # A container that was handed the host's /docker/abc sub-tree as its /sys/fs/cgroup.
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(
        "30 24 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    (tmp_path / "proc/self/cgroup").write_text("0::/docker/abc/init\n")
    layout = detect(root=str(tmp_path))
    assert layout.mode == "v2"
    assert layout.own_dir("") == f"{tmp_path}/sys/fs/cgroup/init"


def test_detect_without_cgroups_says_what_to_do() -> None:
    with pytest.raises(CgroupError, match="mount"):
        detect("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "")


def test_controllers_v2_reads_our_own_cgroup(tmp_path: Path) -> None:
    _sys, own = v2_host(tmp_path)
    Path(own, "cgroup.controllers").write_text("cpu memory pids\n")
    layout = detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path))
    assert layout.controllers_v2() == {"cpu", "memory", "pids"}


# --- Placement ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "/", "a/../../b", "../x"])
def test_bad_paths_are_refused(tmp_path: Path, bad: str) -> None:
    sys, _own = v2_host(tmp_path)
    with pytest.raises(CgroupError) as info:
        open_cgroup(sys, bad, layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    assert info.value.field == "linux.cgroupsPath"


def test_v2_absolute_path_is_read_from_the_hierarchy_root_as_runc_does(tmp_path: Path) -> None:
    sys, _own = v2_host(tmp_path)
    layout = detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path))
    cg = open_cgroup(sys, "/other.slice/c1", layout=layout)
    assert cg.paths == {"unified": f"{tmp_path}/sys/fs/cgroup/other.slice/c1"}
    assert cg.own_dirs == {"unified": f"{tmp_path}/sys/fs/cgroup"}  # directories are made from the root
    cg = open_cgroup(sys, "/minictl.slice/daemon/c1", layout=layout)
    assert cg.paths == {"unified": f"{tmp_path}/sys/fs/cgroup/minictl.slice/daemon/c1"}
    assert cg.own_dirs == {"unified": f"{tmp_path}/sys/fs/cgroup/minictl.slice/daemon"}


def test_v1_absolute_path_is_placed_per_hierarchy(tmp_path: Path) -> None:
    sys, layout = v1_host(tmp_path, HYBRID_MOUNTINFO, HYBRID_SELF)
    cg = open_cgroup(sys, "/x/y", layout=layout)
    fs = f"{tmp_path}/sys/fs/cgroup"
    assert cg.paths["memory"] == f"{fs}/memory/x/y" and cg.paths["cpu"] == f"{fs}/cpu/x/y"
    cg.create()
    assert cg.created[:2] == [f"{fs}/memory/x", f"{fs}/memory/x/y"]


def test_relative_path_goes_beneath_own_cgroup_in_each_hierarchy(tmp_path: Path) -> None:
    sys, layout = v1_host(tmp_path, HYBRID_MOUNTINFO, HYBRID_SELF)
    cg = open_cgroup(sys, "mc/c1", layout=layout)
    assert isinstance(cg, CgroupV1) and cg.version == "v1"
    fs = f"{tmp_path}/sys/fs/cgroup"
    assert cg.paths == {"memory": f"{fs}/memory/process_api/abc123/mc/c1", "cpu": f"{fs}/cpu/mc/c1",
                        "cpuacct": f"{fs}/cpuacct/mc/c1", "pids": f"{fs}/pids/mc/c1",
                        "blkio": f"{fs}/blkio/mc/c1", "freezer": f"{fs}/freezer/mc/c1"}


# --- cgroup v2 ------------------------------------------------------------------------------------


def test_v2_writes_each_limit(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    assert isinstance(cg, CgroupV2) and cg.version == "v2"
    cg.create()
    cg.apply(Limits(memory_limit=256 << 20, memory_reservation=128 << 20, memory_swap=512 << 20,
                    cpu_shares=1024, cpu_quota=20000, cpu_period=100000, cpuset_cpus="0-1",
                    cpuset_mems="0", pids_limit=0))
    d = f"{own}/c1"
    assert sys.written(f"{d}/memory.max") == str(256 << 20)
    assert sys.written(f"{d}/memory.low") == str(128 << 20)
    assert sys.written(f"{d}/memory.swap.max") == str(256 << 20)  # OCI swap = memory + swap
    assert sys.written(f"{d}/cpu.weight") == "39"
    assert sys.written(f"{d}/cpu.max") == "20000 100000"
    assert sys.written(f"{d}/cpuset.cpus") == "0-1"
    assert sys.written(f"{d}/pids.max") == "max"
    assert_only_wrote_in_created(sys, cg.created)


def test_the_first_process_joins_itself(tmp_path: Path) -> None:
    """v1: "0" (the writer) into each hierarchy's tasks file, a thread moving itself, which spares the
    kernel's global lock and its RCU wait; v2: "0" into cgroup.procs."""
    sys, layout = v1_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=layout)
    cg.create()
    cg.join_self()
    for d in set(cg.paths.values()):
        assert sys.written(f"{d}/tasks") == "0"
        assert not os.path.exists(f"{d}/cgroup.procs") or sys.written(f"{d}/cgroup.procs") == ""
    sys2, own = v2_host(tmp_path / "v2")
    cg2 = open_cgroup(sys2, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path / "v2")))
    cg2.create()
    cg2.join_self()
    assert sys2.written(f"{own}/c1/cgroup.procs") == "0"
    assert_only_wrote_in_created(sys2, cg2.created)


def test_v2_unlimited_values() -> None:
    assert shares_to_weight(2) == 1 and shares_to_weight(262144) == 10000 and shares_to_weight(1024) == 39


def test_v2_unlimited_quota_and_swap(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    cg.apply(Limits(memory_limit=-1, memory_swap=-1, cpu_quota=-1, cpu_period=50000, pids_limit=100))
    assert sys.written(f"{own}/c1/memory.max") == "max"
    assert sys.written(f"{own}/c1/memory.swap.max") == "max"
    assert sys.written(f"{own}/c1/cpu.max") == "max 50000"
    assert sys.written(f"{own}/c1/pids.max") == "100"


def test_v2_swap_below_memory_is_an_error(tmp_path: Path) -> None:
    sys, _own = v2_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    with pytest.raises(CgroupError) as info:
        cg.apply(Limits(memory_limit=100, memory_swap=50))
    assert info.value.field == "linux.resources.memory.swap"


def test_v2_subtree_control_only_in_dirs_we_created(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    # "shared" exists already (someone else's, delegating memory and pids); we create shared/mc/c1.
    sys.prepare(f"{own}/shared")
    Path(own, "shared/cgroup.subtree_control").write_text("memory pids")
    cg = open_cgroup(sys, "shared/mc/c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    assert cg.created == [f"{own}/shared/mc", f"{own}/shared/mc/c1"]
    cg.apply(Limits(pids_limit=10))
    controls = [p for p, _ in sys.writes() if p.endswith("cgroup.subtree_control")]
    assert controls == [f"{own}/shared/mc/cgroup.subtree_control"]
    assert sys.written(f"{own}/shared/mc/cgroup.subtree_control") == "memory pids"
    assert sys.written(f"{own}/shared/cgroup.subtree_control") == "memory pids"  # untouched
    assert sys.written(f"{own}/cgroup.subtree_control") == "cpu cpuset memory pids"  # untouched
    assert sys.written(f"{own}/shared/mc/c1/pids.max") == "10"
    assert_only_wrote_in_created(sys, cg.created)


def test_v2_missing_delegation_names_the_field_and_the_remedy(tmp_path: Path) -> None:
    sys, _own = v2_host(tmp_path, own_subtree="memory")  # pids not delegated to our children
    cg = open_cgroup(sys, "mc/c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    with pytest.raises(CgroupError, match="pids controller is not available here.*Delegate=yes") as info:
        cg.apply(Limits(memory_limit=1 << 30, pids_limit=10))
    assert info.value.field == "linux.resources.pids.limit"
    assert str(info.value).startswith("linux.resources.pids.limit: ")
    cg.destroy()


def test_v2_kill_all_uses_cgroup_kill(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    cg.kill_all()
    assert sys.writes()[-1] == (f"{own}/c1/cgroup.kill", "1")


def test_v2_stats(tmp_path: Path) -> None:
    sys, _own = v2_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    stats = cg.stats()
    assert (stats.memory_usage, stats.memory_max_usage, stats.oom_kills) == (4096, None, 3)
    assert (stats.cpu_usage_usec, stats.pids_current) == (1234, 1)


# --- cgroup v1 ------------------------------------------------------------------------------------


def test_v1_writes_each_limit_in_order(tmp_path: Path) -> None:
    sys, layout = v1_host(tmp_path)
    cg = open_cgroup(sys, "mc/c1", layout=layout)
    cg.create()
    cg.apply(Limits(memory_limit=256 << 20, memory_reservation=64 << 20, memory_swap=512 << 20,
                    cpu_shares=512, cpu_quota=20000, cpu_period=100000, pids_limit=-1))
    mem, cpu, pids = cg.paths["memory"], cg.paths["cpu"], cg.paths["pids"]
    assert cpu == cg.paths["cpuacct"]  # co-mounted: one directory
    assert sys.written(f"{mem}/memory.limit_in_bytes") == str(256 << 20)
    assert sys.written(f"{mem}/memory.soft_limit_in_bytes") == str(64 << 20)
    assert sys.written(f"{mem}/memory.memsw.limit_in_bytes") == str(512 << 20)
    assert sys.written(f"{cpu}/cpu.shares") == "512"
    assert sys.written(f"{cpu}/cpu.cfs_quota_us") == "20000"
    assert sys.written(f"{pids}/pids.max") == "max"
    order = [os.path.basename(p) for p, _ in sys.writes()]
    assert order.index("memory.limit_in_bytes") < order.index("memory.memsw.limit_in_bytes")
    assert order.index("cpu.cfs_period_us") < order.index("cpu.cfs_quota_us")
    assert "cpuset" not in cg.paths and not os.path.exists(f"{tmp_path}/sys/fs/cgroup/cpuset/mc")
    assert_only_wrote_in_created(sys, cg.created)


def test_v1_cpuset_is_created_on_demand_and_filled_from_the_parent(tmp_path: Path) -> None:
    sys, layout = v1_host(tmp_path)
    cg = open_cgroup(sys, "mc/c1", layout=layout)
    cg.create()
    cg.apply(Limits(cpuset_cpus="1"))
    cpuset = f"{tmp_path}/sys/fs/cgroup/cpuset"
    assert cg.paths["cpuset"] == f"{cpuset}/mc/c1"
    assert sys.written(f"{cpuset}/mc/cpuset.cpus") == "0-3"  # copied, or mc/c1 could hold nothing
    assert sys.written(f"{cpuset}/mc/cpuset.mems") == "0"
    assert sys.written(f"{cpuset}/mc/c1/cpuset.cpus") == "1"
    assert sys.written(f"{cpuset}/mc/c1/cpuset.mems") == "0"
    cg.add_process(4242)
    assert sys.written(f"{cpuset}/mc/c1/cgroup.procs") == "4242"
    assert_only_wrote_in_created(sys, cg.created)


def test_v1_missing_controller_names_the_field(tmp_path: Path) -> None:
    no_pids = "\n".join(line for line in V1_MOUNTINFO.splitlines() if "pids" not in line)
    sys, layout = v1_host(tmp_path, no_pids)
    cg = open_cgroup(sys, "c1", layout=layout)
    cg.create()
    with pytest.raises(CgroupError, match=r"^linux.resources.pids.limit: the pids controller is not available") as info:
        cg.apply(Limits(pids_limit=10))
    assert info.value.field == "linux.resources.pids.limit"


def test_v1_add_process_pids_and_stats(tmp_path: Path) -> None:
    sys, layout = v1_host(tmp_path)
    cg = open_cgroup(sys, "c1", layout=layout)
    cg.create()
    cg.add_process(4242)
    for d in set(cg.paths.values()):  # one write per hierarchy, not per controller name
        assert sys.written(f"{d}/cgroup.procs") == "4242"
    assert cg.pids() == [4242]
    stats = cg.stats()
    assert (stats.memory_usage, stats.memory_max_usage, stats.oom_kills) == (4096, 8192, 2)
    assert (stats.cpu_usage_usec, stats.pids_current) == (5000, 1)
    cg.kill_all(signal.SIGTERM)
    assert [ev.args for ev in sys.trace.events if ev.op == "kill"] == ["4242, 15"]


def test_existing_leaf_is_refused_while_it_holds_processes_and_taken_over_when_empty(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    sys.prepare(f"{own}/c1")
    Path(f"{own}/c1/cgroup.procs").write_text("4242\n")
    cg = open_cgroup(sys, "c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    with pytest.raises(CgroupError, match="already exists and holds processes"):
        cg.create()
    assert cg.created == []
    Path(f"{own}/c1/cgroup.procs").write_text("")
    cg.create()  # as runc: the cgroup the config names, left empty by an earlier container
    assert cg.created == [f"{own}/c1"]


# --- destroy and state ----------------------------------------------------------------------------


def test_destroy_removes_only_what_we_created(tmp_path: Path) -> None:
    sys, layout = v1_host(tmp_path)
    sys.prepare(f"{layout.own_dir('memory')}/shared")  # a parent that exists already, in one hierarchy
    cg = open_cgroup(sys, "shared/c1", layout=layout)
    cg.create()
    cg.destroy()
    assert os.path.isdir(f"{layout.own_dir('memory')}/shared")
    for d in cg.paths.values():
        assert not os.path.exists(d)
    assert not os.path.exists(f"{layout.own_dir('pids')}/shared")  # this one we had created
    assert cg.created == []
    cg.destroy()  # a second time: nothing to do, no error


def test_destroy_leaves_a_parent_we_created_that_someone_else_now_uses(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    layout = detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path))
    cg = open_cgroup(sys, "mc/c1", layout=layout)
    cg.create()
    sys.prepare(f"{own}/mc/c2")  # another container moved in next to ours
    cg.destroy()
    assert not os.path.exists(f"{own}/mc/c1")
    assert os.path.isdir(f"{own}/mc/c2")
    assert cg.created == [f"{own}/mc"]


def test_destroy_gives_up_on_a_busy_cgroup_after_the_timeout(tmp_path: Path) -> None:
    sys, own = v2_host(tmp_path)
    cg = open_cgroup(sys, "mc/c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.create()
    cg.add_process(4242)  # a fake process that never dies
    start = time.monotonic()
    with pytest.raises(CgroupError, match="did not die"):
        cg.destroy(timeout=0.2)
    assert time.monotonic() - start < 2
    assert os.path.isdir(f"{own}/mc/c1")
    assert cg.created == [f"{own}/mc", f"{own}/mc/c1"]  # still ours, for a later destroy


@pytest.mark.parametrize("host", ["v1", "v2"])
def test_state_round_trip(tmp_path: Path, host: str) -> None:
    if host == "v2":
        sys, _own = v2_host(tmp_path)
        layout = detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path))
    else:
        sys, layout = v1_host(tmp_path)
    cg = open_cgroup(sys, "mc/c1", layout=layout)
    cg.create()
    state = json.loads(json.dumps(cg.to_state()))
    again = cgroup_from_state(sys, state)
    assert type(again) is type(cg)
    assert (again.version, again.paths, again.created) == (cg.version, cg.paths, cg.created)
    assert again.to_state() == cg.to_state()
    again.apply(Limits(pids_limit=5, cpuset_cpus="0" if host == "v1" else None))  # on-demand still works
    again.destroy()
    for d in again.paths.values():
        assert not os.path.exists(d)


# --- On this machine's real cgroups ------------------------------------------------------------------


def _unique() -> str:
    return f"minicontainer-test-{uuid.uuid4().hex[:10]}"


def _cleanup(cg, proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    if cg is not None:
        try:
            cg.destroy(timeout=5)
        except (CgroupError, KernelError):
            pass


def _open_or_skip(sys: Syscalls, path: str):
    try:
        return open_cgroup(sys, path)
    except CgroupError as e:
        pytest.skip(f"no usable cgroups here: {e}")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("path", ["{u}", "{u}/inner/c1"])
def test_real_cgroup_life_cycle(path: str) -> None:
    sys = Syscalls()
    cg = None
    proc = None
    try:
        cg = _open_or_skip(sys, path.format(u=_unique()))
        cg.create()
        try:
            cg.apply(Limits(memory_limit=64 << 20, cpu_shares=512, cpu_quota=50000, cpu_period=100000,
                            pids_limit=32))
        except CgroupError as e:
            if "not available here" in str(e):
                pytest.skip(str(e))
            raise
        proc = subprocess.Popen(["sleep", "30"])
        cg.add_process(proc.pid)
        assert proc.pid in cg.pids()
        stats = cg.stats()
        assert stats.pids_current == 1
        # (v1 does not move a process's memory charge with it, so a fresh `sleep` may show 0 here)
        assert stats.memory_usage is not None
        assert stats.cpu_usage_usec is not None
        assert stats.oom_kills == 0
        if cg.version == "v1":
            assert Path(cg.paths["memory"], "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
            assert Path(cg.paths["cpu"], "cpu.cfs_quota_us").read_text().strip() == "50000"
        else:
            assert Path(cg.paths["unified"], "cpu.max").read_text().strip() == "50000 100000"
        assert Path(cg.paths["pids"] if cg.version == "v1" else cg.paths["unified"],
                    "pids.max").read_text().strip() == "32"

        # Rebuild from state, as `delete` would in another process, and tear down from there.
        again = cgroup_from_state(sys, json.loads(json.dumps(cg.to_state())))
        again.kill_all()
        assert proc.wait(timeout=5) == -signal.SIGKILL
        again.destroy()
        for d in list(cg.created) + list(cg.paths.values()):
            assert not os.path.exists(d), f"{d} left behind"
        cg = None
    finally:
        _cleanup(cg, proc)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_real_v1_cpuset() -> None:
    sys = Syscalls()
    cg = None
    proc = None
    try:
        cg = _open_or_skip(sys, _unique())
        if cg.version != "v1" or "cpuset" not in getattr(cg, "planned", {}):
            pytest.skip("a v1 cpuset hierarchy is needed")
        cg.create()
        cg.apply(Limits(cpuset_cpus="0"))
        proc = subprocess.Popen(["sleep", "30"])
        cg.add_process(proc.pid)  # fails with ENOSPC if the cpuset's mems were left empty
        assert os.sched_getaffinity(proc.pid) == {0}
    finally:
        _cleanup(cg, proc)
    assert cg is not None and not any(os.path.exists(d) for d in cg.paths.values())
