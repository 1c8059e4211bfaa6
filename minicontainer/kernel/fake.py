"""A stand-in for the kernel, for unit tests: :class:`FakeSyscalls` records calls instead of making them.

The runtime's logic (which mounts, in which order, with which flags; what happens when a call
fails) can then be tested without root and without touching the machine, while the real isolation
is tested separately, for real, as root.  Files are still real files: give the code a temporary
directory as its root filesystem.

    sys = FakeSyscalls(fail={"pivot_root": errno.EINVAL})
    build_rootfs(sys, spec, in_userns=False)   # raises KernelError('pivot_root', ..., EINVAL)
    sys.calls  ->  [("mount", (None, "/", None, MS_REC | MS_PRIVATE, None)), ...]
"""

from __future__ import annotations

import errno
import os
import time

from minicontainer.kernel.syscalls import KernelError, Syscalls
from minicontainer.observe.events import Trace

# The calls that change the kernel's state (namespaces, mounts, identity): only recorded.  File
# operations (mkdir, write_file, symlink...) stay real, on whatever paths the test provides.
RECORDED_ONLY = ("unshare", "setns", "mount", "umount2", "pivot_root", "sethostname", "mknod", "chown",
                 "prctl", "setrlimit", "setgroups", "setresgid", "setresuid", "capset", "kill", "netlink", "nft",
                 "mount_setattr", "seccomp_load", "bpf_prog_attach_cgroup_device")


class FakeSyscalls(Syscalls):
    def __init__(self, trace: Trace | None = None, fail: dict[str, int] | None = None) -> None:
        super().__init__(trace)
        self.calls: list[tuple[str, tuple]] = []
        self.fail = dict(fail or {})  # op -> errno to fail it with (once per entry)

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0, *, root: str = "",
                detail: str = "") -> int:
        """The fake kernel predates openat2 (ENOSYS): mounts then go to the paths ``secure_join``
        resolved, which the tests can read (the real kernel's openat2 is tested as root)."""
        self.trace.record("openat2", path, "ENOSYS (fake)", errno=errno.ENOSYS, detail=detail)
        raise KernelError("openat2", path, errno.ENOSYS)

    def bpf_prog_load_cgroup_device(self, program: bytes, *, detail: str = "") -> int:
        self.calls.append(("bpf_prog_load_cgroup_device", (program,)))
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)  # a descriptor for the caller to close


def _recorder(op: str):
    def method(self: FakeSyscalls, *args, detail: str = "", **kwargs):
        self.calls.append((op, args))
        start = time.monotonic_ns()
        if op in self.fail:
            err = self.fail.pop(op)
            self.trace.record(op, repr(args), os.strerror(err), start_ns=start, errno=err, detail=detail)
            raise KernelError(op, str(args[1] if op == "mount" and len(args) > 1 else (args[0] if args else "")), err)
        self.trace.record(op, repr(args), "ok (fake)", start_ns=start, detail=detail)
        if op == "mknod":  # an empty file stands in for the device node, so chmod and ls work
            with open(args[0], "w"):
                pass
        return 0

    method.__name__ = op
    method.__doc__ = f"Record {op}{'()'} instead of calling the kernel."
    return method


for _op in RECORDED_ONLY:
    setattr(FakeSyscalls, _op, _recorder(_op))
