"""Tests of ``minicontainer doctor``: the probes (minicontainer.kernel.features), the report's layout
(minicontainer.cli.doctor) and the command line (minicontainer.cli.main).

Most probes are tested over a fake host: a ``root`` directory holding a hand-made ``/proc`` and
cgroup tree, and a stand-in for :func:`features.in_child` that says how a trial "went" without
forking.  :func:`in_child` itself is tested for real, and the tests marked ``root`` run the whole
doctor on this machine, whose trial children mount things only inside their own mount namespaces.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from minicontainer.cli import doctor
from minicontainer.cli.main import main
from minicontainer.kernel import features
from minicontainer.kernel.cgroups import Layout, detect
from minicontainer.kernel.features import LIMITED, MISSING, OK, Attempt, Check

ALL_NS = ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time"]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_ns(root: Path, names: list[str]) -> None:
    for name in names:
        write(root / "proc/self/ns" / name)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# --- Formatting -----------------------------------------------------------------------------------

SAMPLE = [
    Check("root", OK, "running as root (euid 0)", required=True),
    Check("cgroups", LIMITED, "hybrid (v1 controllers + a cgroup2 at /sys/fs/cgroup/unified)", "boot v2"),
    Check("tini", MISSING, "not found", "apt-get install tini"),
]


def test_text_has_one_line_per_check_and_remedies_under_problems():
    text = doctor.format_text(SAMPLE)
    lines = text.splitlines()
    assert lines[0] == doctor.TITLE
    assert lines[1] == "  ok       root: running as root (euid 0)"
    assert lines[2] == "  limited  cgroups: hybrid (v1 controllers + a cgroup2 at /sys/fs/cgroup/unified)"
    assert lines[3] == "           -> boot v2"  # under the detail column
    assert lines[4] == "  missing  tini: not found"
    assert lines[5] == "           -> apt-get install tini"
    assert lines[6].startswith("=> ready")  # tini is not required


def test_remedy_of_an_ok_check_is_not_shown():
    text = doctor.format_text([Check("x", OK, "fine", "never shown")])
    assert "never shown" not in text


def test_exit_code_fails_only_on_required_missing():
    assert doctor.exit_code(SAMPLE) == 0
    assert doctor.exit_code([Check("n", LIMITED, "", required=True)]) == 0
    broken = SAMPLE + [Check("pivot_root", MISSING, "failed", "fix it", required=True)]
    assert doctor.exit_code(broken) == 1
    assert "not ready: real isolation needs pivot_root" in doctor.format_text(broken)


def test_json_is_a_list_of_records():
    data = json.loads(doctor.format_json(SAMPLE))
    assert data[0] == {"check": "root", "status": "ok", "detail": "running as root (euid 0)", "remedy": "",
                       "required": True}
    assert [d["check"] for d in data] == ["root", "cgroups", "tini"]


# --- Root, kernel, namespaces -------------------------------------------------------------------------


def test_root_and_not_root():
    assert features.check_root(0).status == OK
    c = features.check_root(1000)
    assert c.status == MISSING and c.required and "euid 1000" in c.detail and "sudo" in c.remedy


def test_kernel_names_the_release():
    u = os.uname()
    assert u.release in features.check_kernel().detail


def test_namespaces_all_present(tmp_path):
    fake_ns(tmp_path, ALL_NS + ["pid_for_children", "time_for_children"])
    c = features.check_namespaces(str(tmp_path))
    assert (c.status, c.detail) == (OK, "mnt uts ipc pid net user cgroup time")


def test_namespaces_without_time_is_limited(tmp_path):
    fake_ns(tmp_path, [n for n in ALL_NS if n != "time"])
    c = features.check_namespaces(str(tmp_path))
    assert c.status == LIMITED and "absent: time" in c.detail and "5.6" in c.remedy


def test_namespaces_without_net_is_missing(tmp_path):
    fake_ns(tmp_path, [n for n in ALL_NS if n != "net"])
    c = features.check_namespaces(str(tmp_path))
    assert c.status == MISSING and c.required


@pytest.mark.parametrize(("files", "status", "remedy"), [
    ({}, OK, ""),
    ({"kernel/unprivileged_userns_clone": "1\n", "user/max_user_namespaces": "63000\n"}, OK, ""),
    ({"kernel/unprivileged_userns_clone": "0\n"}, MISSING, "sysctl -w kernel.unprivileged_userns_clone=1"),
    ({"user/max_user_namespaces": "0\n"}, MISSING, "sysctl -w user.max_user_namespaces=15000"),
    ({"kernel/apparmor_restrict_unprivileged_userns": "1\n"}, LIMITED,
     "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
])
def test_unprivileged_userns_settings(tmp_path, files, status, remedy):
    for name, text in files.items():
        write(tmp_path / "proc/sys" / name, text)
    c = features.check_userns_settings(str(tmp_path))
    assert c.status == status
    assert remedy in c.remedy


# --- Trials in a child (the stand-in, then the real thing) ------------------------------------------


class FakeTrials:
    """Stands in for in_child: ``refuse`` maps unshare flags to the errno the kernel would give."""

    def __init__(self, refuse: dict[int, int] | None = None) -> None:
        self.refuse = refuse or {}
        self.flags: list[int] = []

    def __call__(self, trial) -> Attempt:
        flags = trial()  # with _unshare_trial patched below, the "trial" hands back its flags
        self.flags.append(flags)
        refused = [err for bits, err in self.refuse.items() if flags & bits]
        return Attempt(refused[0], f"unshare: {os.strerror(refused[0])}") if refused else Attempt(0)


@pytest.fixture
def unshare_flags(monkeypatch):
    monkeypatch.setattr(features, "_unshare_trial", lambda flags: (lambda: flags))


NEWUSER, NEWTIME = features.NAMESPACE_FLAGS["user"], features.NAMESPACE_FLAGS["time"]


def test_unshare_as_root(unshare_flags):
    trials = FakeTrials()
    checks = by_name(features.check_unshare(0, ALL_NS, trials))
    assert checks["unshare.user"].status == OK
    assert checks["unshare.others"].status == OK
    assert trials.flags[0] == NEWUSER and not trials.flags[1] & NEWUSER  # root needs no user namespace


def test_unshare_as_a_user_goes_through_a_user_namespace(unshare_flags):
    trials = FakeTrials()
    checks = by_name(features.check_unshare(1000, ALL_NS, trials))
    assert "inside a new user namespace" in checks["unshare.others"].detail
    assert trials.flags[1] & NEWUSER


def test_unshare_names_the_namespace_refused(unshare_flags):
    trials = FakeTrials({NEWTIME: errno.EINVAL})
    c = by_name(features.check_unshare(0, ALL_NS, trials))["unshare.others"]
    assert c.status == LIMITED  # time is optional: containers without it still run
    assert "time (unshare: Invalid argument)" in c.detail and "mnt (" not in c.detail


def test_unshare_refused_outright_is_missing(unshare_flags):
    trials = FakeTrials({0xFFFFFFFF: errno.EPERM})
    checks = by_name(features.check_unshare(0, ALL_NS, trials))
    assert checks["unshare.others"].status == MISSING and checks["unshare.others"].required
    assert checks["unshare.user"].status == LIMITED


def test_in_child_reports_success_errno_and_other_errors():
    assert features.in_child(lambda: None) == Attempt(0, "")

    def refused() -> None:
        raise OSError(errno.EPERM, "Operation not permitted")
    got = features.in_child(refused)
    assert got.code == errno.EPERM and "Operation not permitted" in got.message

    def broken() -> None:
        raise SystemExit(0)  # must not end the child "successfully", nor return into pytest
    got = features.in_child(broken)
    assert got.code == 255 and got.message.startswith("SystemExit")


def test_in_child_kills_a_stuck_trial(monkeypatch):
    import time
    monkeypatch.setattr(features, "CHILD_TIMEOUT", 1)
    got = features.in_child(lambda: time.sleep(30))
    assert got.code == -signal.SIGALRM
    assert "timed out" in features._failure(got)


def test_in_child_really_isolates_unshare_from_the_caller():
    before = os.readlink("/proc/self/ns/uts")
    if os.geteuid() != 0:
        pytest.skip("unsharing the UTS namespace needs root")
    from minicontainer.kernel.syscalls import CLONE_NEWUTS, Syscalls
    sys_ = Syscalls()
    assert features.in_child(lambda: sys_.unshare(CLONE_NEWUTS)).code == 0
    assert os.readlink("/proc/self/ns/uts") == before  # the child's namespace was its own


# --- overlayfs, pivot_root ----------------------------------------------------------------------------


def test_overlay_absent(tmp_path):
    write(tmp_path / "proc/filesystems", "nodev\tproc\n\text4\n")
    c = features.check_overlay(0, str(tmp_path), release="6.1.0", attempt=FakeTrials())
    assert c.status == MISSING and "CONFIG_OVERLAY_FS" in c.remedy


def test_overlay_as_a_module_not_loaded(tmp_path):
    write(tmp_path / "proc/filesystems", "nodev\tproc\n")
    write(tmp_path / "lib/modules/6.1.0/kernel/fs/overlayfs/overlay.ko.xz")
    c = features.check_overlay(1000, str(tmp_path), release="6.1.0")
    assert (c.status, c.remedy) == (LIMITED, "sudo modprobe overlay")


def test_overlay_not_tried_without_root(tmp_path):
    write(tmp_path / "proc/filesystems", "nodev\toverlay\n")
    c = features.check_overlay(1000, str(tmp_path))
    assert c.status == LIMITED and "not tried" in c.detail


def test_overlay_tried_as_root(tmp_path):
    write(tmp_path / "proc/filesystems", "nodev\toverlay\n")
    ok = features.check_overlay(0, str(tmp_path), attempt=lambda trial: Attempt(0))
    assert ok.status == OK
    failed = features.check_overlay(0, str(tmp_path), attempt=lambda trial: Attempt(
        errno.ENODEV, "mount '/tmp/x/merged': No such device"))
    assert failed.status == MISSING and "No such device" in failed.detail


def test_pivot_root_failure_on_initramfs_explains_it():
    c = features.check_pivot_root(0, attempt=lambda trial: Attempt(errno.EINVAL, "pivot_root '.': Invalid argument"))
    assert c.status == MISSING and c.required and "initramfs" in c.remedy


def test_pivot_root_not_tried_without_root():
    c = features.check_pivot_root(1000, attempt=lambda trial: pytest.fail("must not fork a trial"))
    assert c.status == LIMITED and "CAP_SYS_ADMIN" in c.detail


# --- cgroups -------------------------------------------------------------------------------------------

V2_MOUNTINFO = "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V2_SELF = "0::/user.slice/session-1.scope\n"
HYBRID_MOUNTINFO = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""
HYBRID_SELF = "4:pids:/\n3:memory:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"


def v2_host(tmp_path: Path, delegated: str) -> Layout:
    own = tmp_path / "sys/fs/cgroup/user.slice/session-1.scope"
    write(own / "cgroup.controllers", "cpuset cpu io memory pids\n")
    write(own / "cgroup.subtree_control", delegated)
    return detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path))


def test_v2_with_delegation(tmp_path):
    checks = by_name(features.check_cgroups(0, str(tmp_path), v2_host(tmp_path, "cpu memory pids\n")))
    assert checks["cgroups"].status == OK and "v2" in checks["cgroups"].detail
    assert checks["cgroup.memory"].status == OK and "delegated" in checks["cgroup.memory"].detail
    assert checks["cgroup.cpuacct"].status == OK  # v2 has none, needs none
    io = checks["cgroup.io"]
    assert io.status == MISSING and not io.required and "systemd-run --scope -p Delegate=yes" in io.remedy


def test_v2_without_delegation_says_how_to_get_it(tmp_path):
    checks = by_name(features.check_cgroups(0, str(tmp_path), v2_host(tmp_path, "")))
    memory = checks["cgroup.memory"]
    assert memory.status == MISSING and memory.required
    assert "not delegated" in memory.detail and "cgroup.subtree_control" in memory.detail
    assert memory.remedy.startswith("sudo systemd-run --scope -p Delegate=yes")
    assert doctor.exit_code(list(checks.values())) == 1


def test_hybrid_uses_v1_controllers(tmp_path):
    for d in ("cpu,cpuacct", "memory", "pids", "unified"):
        (tmp_path / "sys/fs/cgroup" / d).mkdir(parents=True)
    write(tmp_path / "sys/fs/cgroup/unified/cgroup.controllers", "")
    write(tmp_path / "proc/cgroups", "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
                                     "cpuset\t0\t1\t0\nblkio\t0\t1\t1\n")
    layout = detect(HYBRID_MOUNTINFO, HYBRID_SELF, root=str(tmp_path))
    checks = by_name(features.check_cgroups(0, str(tmp_path), layout))
    mode = checks["cgroups"]
    assert mode.status == LIMITED and mode.detail.startswith("hybrid") and "no controllers" in mode.detail
    assert "systemd.unified_cgroup_hierarchy=1" in mode.remedy and "v1 controllers" in mode.remedy
    for name in ("cpu", "cpuacct", "memory", "pids"):
        assert checks[f"cgroup.{name}"].status == OK, checks[f"cgroup.{name}"]
    assert "cgroup_enable=cpuset" in checks["cgroup.cpuset"].remedy  # disabled at boot
    assert "mount -t cgroup -o blkio" in checks["cgroup.blkio"].remedy  # enabled, just not mounted
    assert doctor.exit_code(list(checks.values())) == 0  # neither is needed by the runtime


def test_no_cgroup_filesystem(tmp_path):
    write(tmp_path / "proc/self/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    write(tmp_path / "proc/self/cgroup", "")
    [c] = features.check_cgroups(0, str(tmp_path))
    assert c.status == MISSING and c.required


def test_swap_accounting_v1(tmp_path):
    (tmp_path / "sys/fs/cgroup/memory").mkdir(parents=True)
    layout = detect(HYBRID_MOUNTINFO, HYBRID_SELF, root=str(tmp_path))
    assert features.check_swap_accounting(layout).status == LIMITED
    write(tmp_path / "sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "9223372036854771712\n")
    assert features.check_swap_accounting(layout).status == OK


def test_swap_accounting_v2(tmp_path):
    layout = v2_host(tmp_path, "memory\n")
    assert features.check_swap_accounting(layout).status == LIMITED
    write(tmp_path / "sys/fs/cgroup/user.slice/memory.swap.max", "max\n")
    assert features.check_swap_accounting(layout).status == OK


# --- Helper programs -------------------------------------------------------------------------------------


def elf64(tmp_path: Path, p_types: list[int]) -> Path:
    """A minimal little-endian ELF64 header followed by its program headers (56 bytes each)."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 32, 64)  # e_phoff: right after the header
    struct.pack_into("<HH", header, 54, 56, len(p_types))  # e_phentsize, e_phnum
    table = b"".join(struct.pack("<I", t) + bytes(52) for t in p_types)
    path = tmp_path / f"elf-{'-'.join(map(str, p_types))}"
    path.write_bytes(bytes(header) + table)
    return path


def test_static_elf_detection(tmp_path):
    PT_LOAD, PT_INTERP = 1, 3
    assert features.is_static_elf(str(elf64(tmp_path, [PT_LOAD, PT_LOAD]))) is True
    assert features.is_static_elf(str(elf64(tmp_path, [PT_LOAD, PT_INTERP]))) is False
    assert features.is_static_elf(str(write(tmp_path / "script", "#!/bin/sh\n"))) is None
    assert features.is_static_elf(os.path.realpath(sys.executable)) in (False, True)  # an ELF, either way


def test_binaries_name_their_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(features, "_which", lambda names, extra=(): None)
    checks = by_name(features.check_binaries())
    assert checks["runc"].remedy == "apt-get install runc"
    assert checks["busybox"].remedy == "apt-get install busybox-static"
    assert checks["tini"].remedy == "apt-get install tini"
    assert all(not c.required for c in checks.values())


def test_dynamic_busybox_is_limited(monkeypatch, tmp_path):
    dynamic = elf64(tmp_path, [1, 3])
    monkeypatch.setattr(features, "_which", lambda names, extra=(): str(dynamic))
    c = by_name(features.check_binaries())["busybox"]
    assert c.status == LIMITED and "busybox-static" in c.remedy


# --- The command line ---------------------------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("minicontainer ")


def test_no_command_shows_help(capsys):
    assert main([]) == 2
    assert "doctor" in capsys.readouterr().err


def test_start_up_imports_nothing_heavy():
    code = ("import sys, minicontainer.cli.main; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('ctypes', 'dataclasses', 'typing', 'json', 'importlib') or m.startswith('minicontainer.kernel')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == []


def _our_traces() -> tuple[list[str], list[str]]:
    import tempfile
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if "minicontainer-doctor" in line]
    return mounts, [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("minicontainer-doctor-")]


@pytest.mark.root
def test_doctor_on_this_machine(capsys):
    before = _our_traces()
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert out.startswith(doctor.TITLE)
    assert "namespaces: mnt uts ipc pid net user cgroup time" in out
    mode = detect().mode
    assert f"cgroups: {mode}" in out  # this machine: hybrid
    if mode == "hybrid":
        assert "systemd.unified_cgroup_hierarchy=1" in out
    assert "ok       root: running as root" in out
    assert "pivot_root: pivoted" in out and "overlayfs: mounted an overlay" in out
    assert code == (1 if "=> not ready" in out else 0)
    assert _our_traces() == before  # the trial mounts stayed in the children's namespaces


@pytest.mark.root
def test_doctor_json_on_this_machine(capsys):
    code = main(["doctor", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert all(set(d) == {"check", "status", "detail", "remedy", "required"} for d in data)
    checks = {d["check"]: d for d in data}
    assert checks["namespaces"]["detail"] == "mnt uts ipc pid net user cgroup time"
    assert checks["cgroups"]["detail"].startswith(detect().mode)
    assert checks["unshare.user"]["status"] == "ok"
    assert all(d["status"] in ("ok", "limited", "missing") for d in data)
    assert code == (1 if any(d["required"] and d["status"] == "missing" for d in data) else 0)
