"""The root filesystem steps over a fake kernel: order, flags, safe paths and errors."""

from __future__ import annotations

import errno
import os

import pytest

from minicontainer.kernel import mounts
from minicontainer.kernel.fake import FakeSyscalls
from minicontainer.kernel.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    KernelError,
)
from minicontainer.runtime.bundle import parse
from minicontainer.runtime.defaults import default_config
from minicontainer.runtime.init import build_rootfs, find_program


@pytest.fixture
def spec(tmp_path):
    rootfs = tmp_path / "rootfs"
    for d in ("bin", "proc", "dev", "sys", "etc"):
        (rootfs / d).mkdir(parents=True)
    return parse(default_config(["sh"]), str(tmp_path))


def test_parse_options_splits_flags_propagation_and_data():
    opts = mounts.parse_options(["nosuid", "ro", "rprivate", "mode=755", "size=65536k", "rw", "noexec"])
    assert opts.flags == MS_NOSUID | MS_NOEXEC  # "rw" after "ro" clears it again
    assert opts.propagation == MS_PRIVATE | MS_REC
    assert opts.data == "mode=755,size=65536k"
    assert mounts.parse_options(["rbind"]).flags == MS_BIND | MS_REC


def test_secure_join_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/", root / "etc" / "up")  # absolute: resolved from the container's root
    os.symlink("../../../..", root / "climb")  # relative: stops at the root
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    assert mounts.secure_join(str(root), "/etc/up/proc") == str(root / "proc")
    assert mounts.secure_join(str(root), "/climb/etc") == str(root / "etc")
    assert mounts.secure_join(str(root), "/../../x") == str(root / "x")
    with pytest.raises(KernelError) as e:
        mounts.secure_join(str(root), "/loop1/x")
    assert e.value.errno == errno.ELOOP


def test_build_rootfs_order_and_flags(spec):
    sys = FakeSyscalls()
    build_rootfs(sys, spec, in_userns=False)
    ops = sys.ops()
    # rslave propagation first (runc's default), then the rootfs bind, the spec's mounts, /dev, pivot_root last
    assert sys.calls[0] == ("mount", (None, "/", None, MS_REC | MS_SLAVE))
    assert sys.calls[1] == ("mount", (spec.root_path, spec.root_path, None, MS_BIND | MS_REC))
    assert sys.calls[2][1][3] & MS_NODEV and sys.calls[2][1][3] & MS_REMOUNT  # image device files: inert
    mounted = [args[1] for op, args in sys.calls if op == "mount"][3:9]
    assert mounted == [os.path.join(spec.root_path, d) for d in
                       ("proc", "dev", "dev/pts", "dev/shm", "dev/mqueue", "sys")]
    sysfs = next(args for op, args in sys.calls if op == "mount" and args[2] == "sysfs")
    assert sysfs[3] & MS_RDONLY and sysfs[3] & MS_NOSUID and sysfs[3] & MS_NODEV
    assert ops.count("mknod") == 6  # null zero full random urandom tty
    assert ops[-4:] == ["pivot_root", "mount", "umount2"] + ops[-1:] or ops[-3:] == ["pivot_root", "mount", "umount2"]
    assert ("mount", (None, ".", None, MS_REC | MS_SLAVE)) in sys.calls  # the old root's unmount stays in
    assert ("umount2", (".", MNT_DETACH)) in sys.calls
    assert os.readlink(os.path.join(spec.root_path, "dev", "ptmx")) == "pts/ptmx"


def test_build_rootfs_in_a_user_namespace_binds_devices_instead_of_mknod(spec):
    sys = FakeSyscalls()
    build_rootfs(sys, spec, in_userns=True)
    assert "mknod" not in sys.ops()
    binds = [args for op, args in sys.calls if op == "mount" and args[0] == "/dev/null"]
    assert binds and binds[0][3] == MS_BIND


def test_a_failing_mount_stops_the_build_with_verb_path_errno(spec):
    sys = FakeSyscalls(fail={"pivot_root": errno.EINVAL})
    with pytest.raises(KernelError) as e:
        build_rootfs(sys, spec, in_userns=False)
    assert e.value.verb == "pivot_root" and e.value.errno == errno.EINVAL
    assert "mount point" in e.value.hint
    assert sys.trace.events[-1].result == os.strerror(errno.EINVAL)


def test_bind_mount_with_flags_is_remounted(spec, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    sys = FakeSyscalls()
    mounts.mount_one(sys, spec.root_path, "/data", "bind", str(src), ["rbind", "ro", "nosuid"])
    assert sys.calls[0][1][:4] == (str(src), os.path.join(spec.root_path, "data"), None, MS_BIND | MS_REC)
    flags = sys.calls[1][1][3]
    assert flags & MS_REMOUNT and flags & MS_RDONLY and flags & MS_NOSUID and flags & MS_BIND


def test_missing_bind_source_is_a_clear_error(spec):
    with pytest.raises(KernelError) as e:
        mounts.mount_one(FakeSyscalls(), spec.root_path, "/data", "bind", "/no/such/dir", ["rbind"])
    assert str(e.value).startswith("mount '/no/such/dir': No such file or directory")


def test_find_program_uses_the_containers_path(tmp_path, monkeypatch):
    (tmp_path / "rootfs").mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "hello"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    (bindir / "data").write_text("")
    config = default_config(["hello"])
    config["process"]["env"] = [f"PATH=/nowhere:{bindir}"]
    assert find_program(parse(config, str(tmp_path))) == str(prog)
    config["process"]["args"] = ["missing"]
    with pytest.raises(Exception) as e:
        find_program(parse(config, str(tmp_path)))
    assert e.value.exit_code == 127 and "'missing': executable file not found in $PATH" in str(e.value)
    config["process"]["args"] = [str(bindir / "data")]
    with pytest.raises(Exception) as e:
        find_program(parse(config, str(tmp_path)))
    assert e.value.exit_code == 126
