"""What this host allows: the probes behind ``minicontainer doctor``.

A container runtime stands on a handful of kernel features: namespaces, a way to swap root
filesystems (``pivot_root``), cgroups for limits, and for images overlayfs.  Each can be missing,
disabled by a setting, or present but out of reach of this process (not root, a cgroup that was not
delegated to us).  This module finds out which, and says what to do about it.

Two kinds of evidence are used:

* **Reading** what the kernel advertises: ``/proc/self/ns``, ``/proc/filesystems``, sysctls under
  ``/proc/sys``, the cgroup mounts.  Cheap and harmless, and the only thing possible without root.
* **Trying** it, as root: a forked child process calls ``unshare``, ``mount`` or ``pivot_root`` for
  real and reports through its exit status.  Advertised is not the same as allowed: a seccomp
  filter, an LSM (AppArmor, SELinux) or running inside another container can refuse what
  ``/proc`` says exists.  The child first moves into a mount namespace of its own, so whatever it
  mounts vanishes with it, and it always leaves through ``os._exit``: it never returns into the
  caller's code (a test runner, a notebook) as a second copy of the process.

:func:`run_checks` returns one :class:`Check` per line of the report; ``minicontainer.cli.doctor``
formats them.  Every probe takes its inputs as parameters (``root`` prefixes every path read, so
tests can lay out a fake ``/proc``), and heavier modules are imported inside the functions that need
them: the CLI's start-up must stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from minicontainer.kernel.namespaces import KINDS

# Where Debian's busybox-static puts its binary: the runtime's demo and test bundles, and the starter
# image, are made from it (runtime/busybox.py looks here too).
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

if TYPE_CHECKING:  # for annotations only: importing these for real costs start-up time
    from minicontainer.kernel.cgroups.layout import Layout
    from minicontainer.kernel.syscalls import Syscalls

# Statuses, from best to worst.  "limited" means minicontainer works, with a caveat the detail states.
OK = "ok"
LIMITED = "limited"
MISSING = "missing"


class Check(NamedTuple):
    """One line of the report.

    A NamedTuple rather than a dataclass: ``dataclasses`` costs ~10 ms to import, paid by every
    ``minicontainer`` command, while ``typing`` is needed anyway.
    """

    name: str  # a stable key ("namespaces", "cgroup.memory"): notebooks look checks up by it
    status: str  # OK, LIMITED or MISSING
    detail: str  # what was found, in a learner's words
    remedy: str = ""  # what to do when the status is not OK: a command or a setting
    required: bool = False  # needed for real isolation as root: if MISSING, doctor exits 1

    def to_dict(self) -> dict:
        return {"check": self.name, "status": self.status, "detail": self.detail, "remedy": self.remedy,
                "required": self.required}


def _read(path: str) -> str | None:
    """A small /proc or /sys file's text, or None if it is not there (or not readable)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


# --- Trying things in a child process -------------------------------------------------------------


class Attempt(NamedTuple):
    """What a trial child reported: ``code`` 0 on success, else an errno (or -signal if it was
    killed), and ``message``, the error as :class:`~minicontainer.kernel.syscalls.KernelError` words it
    (``mount '/tmp/x': No such device (this kernel does not know that filesystem type...)``)."""

    code: int
    message: str = ""


CHILD_TIMEOUT = 10  # seconds: a trial only makes a few system calls; past this something hangs


def in_child(trial: Callable[[], None]) -> Attempt:
    """Run ``trial`` in a forked child and report how it went, leaving this process untouched.

    Namespaces and mounts are per process, so a child is the natural sandbox: whatever it unshares
    or mounts disappears when it exits.  The exit status carries success (0) or the errno; a pipe
    carries the full error text, which says which step failed.
    """
    import signal  # imported here, in the parent: the child should only make system calls

    read_end, write_end = os.pipe()  # both close-on-exec; the child never execs anyway
    try:
        pid = os.fork()
    except OSError as e:  # EAGAIN: out of processes (a pids limit?), ENOMEM
        os.close(read_end)
        os.close(write_end)
        return Attempt(e.errno or 255, f"fork: {e.strerror}")
    if pid == 0:  # --- the child: whatever happens, it ends in os._exit below ---
        code = 255
        try:
            os.close(read_end)
            # The parent may have a Python SIGALRM handler (pytest-timeout has): restore the default
            # action, so the alarm kills a stuck child instead of running the parent's code here.
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CHILD_TIMEOUT)
            trial()
            code = 0
        except OSError as e:
            code = min(e.errno or 255, 255)
            _write_quietly(write_end, str(e))
        except BaseException as e:  # noqa: BLE001 -- even SystemExit or KeyboardInterrupt: report, exit
            _write_quietly(write_end, f"{type(e).__name__}: {e}")
        finally:
            # os._exit, not sys.exit: no atexit handlers, no flushing of the parent's buffered output
            # a second time, no return into pytest or Jupyter as a twin of the parent.
            os._exit(code)
    # --- the parent ---
    os.close(write_end)
    try:
        chunks = []
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return Attempt(os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace"))


def _write_quietly(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode(errors="replace")[:4000])  # under PIPE_BUF (4096): one atomic write
    except OSError:
        pass


def _failure(attempt: Attempt) -> str:
    """An Attempt that failed, in words."""
    if attempt.code < 0:
        import signal
        name = signal.Signals(-attempt.code).name
        return f"the trial child was killed by {name}" + (" (timed out)" if name == "SIGALRM" else "")
    if attempt.message:
        return attempt.message
    import errno
    return f"{errno.errorcode.get(attempt.code, attempt.code)}: {os.strerror(attempt.code)}"


# --- Who we are, which kernel -----------------------------------------------------------------------


def check_root(euid: int) -> Check:
    if euid == 0:
        return Check("root", OK, "running as root (euid 0); the checks below are tried for real", required=True)
    return Check("root", MISSING,
                 f"not root (euid {euid}): only what an unprivileged user may do is tried (user "
                 "namespaces); creating the other namespaces, mounting and cgroups need root",
                 "sudo minicontainer doctor (minicontainer runs containers as root)", required=True)


def check_kernel(uname: os.uname_result | None = None) -> Check:
    u = uname or os.uname()
    return Check("kernel", OK, f"{u.sysname} {u.release} ({u.machine})")


# --- Namespaces -------------------------------------------------------------------------------------

# /proc/self/ns names, and the unshare(2) flag that creates each (from <sched.h>; the same numbers
# as minicontainer.kernel.syscalls, repeated here so that reading /proc needs no ctypes).
NAMESPACE_FLAGS = {kind.proc: kind.flag for kind in KINDS}  # "mnt" -> CLONE_NEWNS, ...
# What the runtime's default config.json unshares: without these there is no container at all.
CORE_NAMESPACES = ("mnt", "uts", "ipc", "pid", "net")
NAMESPACE_SINCE = {"user": "3.8", "cgroup": "4.6", "time": "5.6"}  # kernel versions, for the remedy


def present_namespaces(root: str = "") -> list[str]:
    """The namespace types this kernel has: one ``/proc/self/ns`` entry each."""
    try:
        entries = set(os.listdir(root + "/proc/self/ns"))
    except OSError:
        return []
    return [ns for ns in NAMESPACE_FLAGS if ns in entries]


def check_namespaces(root: str = "") -> Check:
    present = present_namespaces(root)
    absent = [ns for ns in NAMESPACE_FLAGS if ns not in present]
    detail = " ".join(present) if present else "none found in /proc/self/ns"
    if not absent:
        return Check("namespaces", OK, detail, required=True)
    detail += f" (absent: {' '.join(absent)})"
    if any(ns in absent for ns in CORE_NAMESPACES):
        return Check("namespaces", MISSING, detail,
                     "a kernel built with CONFIG_NAMESPACES and its CONFIG_*_NS options (any distribution kernel)",
                     required=True)
    since = ", ".join(f"{ns} needs Linux {NAMESPACE_SINCE[ns]}+" for ns in absent if ns in NAMESPACE_SINCE)
    return Check("namespaces", LIMITED, detail,
                 f"a newer kernel ({since}); containers that do not ask for them still run", required=True)


def check_userns_settings(root: str = "") -> Check:
    """May an ordinary user create a user namespace?  Three settings can say no.

    Rootless containers (Podman, ``runc --rootless``) start there: in a new user namespace an ordinary
    user is root, and may create the other namespaces.  Distributions have switched it off because
    it exposes kernel code to unprivileged users.
    """
    refusals: list[tuple[str, str]] = []
    debian = _read(root + "/proc/sys/kernel/unprivileged_userns_clone")  # Debian/Ubuntu patch
    if debian is not None and debian.strip() == "0":
        refusals.append(("kernel.unprivileged_userns_clone = 0", "sysctl -w kernel.unprivileged_userns_clone=1"))
    limit = _read(root + "/proc/sys/user/max_user_namespaces")
    if limit is not None and limit.strip() == "0":
        refusals.append(("user.max_user_namespaces = 0", "sysctl -w user.max_user_namespaces=15000"))
    if refusals:
        return Check("userns.unprivileged", MISSING,
                     "unprivileged user namespaces are off: " + ", ".join(r for r, _ in refusals),
                     "as root: " + "; ".join(fix for _, fix in refusals))
    apparmor = _read(root + "/proc/sys/kernel/apparmor_restrict_unprivileged_userns")  # Ubuntu 23.10+
    if apparmor is not None and apparmor.strip() == "1":
        return Check("userns.unprivileged", LIMITED,
                     "allowed, but AppArmor gives a new user namespace no capabilities unless the program "
                     "has a profile (kernel.apparmor_restrict_unprivileged_userns = 1)",
                     "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or an AppArmor profile "
                     "with `userns,`)")
    shown = f" (user.max_user_namespaces = {limit.strip()})" if limit is not None else ""
    return Check("userns.unprivileged", OK, f"allowed{shown}")


def _unshare_trial(flags: int) -> Callable[[], None]:
    from minicontainer.kernel.syscalls import Syscalls
    sys = Syscalls()  # made in the parent: the child then only makes the one call

    def trial() -> None:
        sys.unshare(flags)

    return trial


def check_unshare(euid: int, present: list[str] | None = None,
                  attempt: Callable[[Callable[[], None]], Attempt] | None = None) -> list[Check]:
    """Create namespaces for real, in children.

    A user namespace alone, which any user may try; then the others.  Root creates them directly.
    Anyone else can only create them *inside* a new user namespace, where they are root: that is how
    rootless containers work, so that is what is tried for them.
    """
    attempt = attempt or in_child
    present = present_namespaces() if present is None else present
    checks: list[Check] = []

    if "user" in present:
        got = attempt(_unshare_trial(NAMESPACE_FLAGS["user"]))
        if got.code == 0:
            who = "root" if euid == 0 else f"this user (euid {euid})"
            checks.append(Check("unshare.user", OK, f"{who} can create a user namespace"))
        else:
            checks.append(Check("unshare.user", MISSING if euid != 0 else LIMITED,
                                f"unshare(CLONE_NEWUSER) failed: {_failure(got)}",
                                "see userns.unprivileged; in a container, the outer runtime's seccomp "
                                "profile may forbid it"))

    others = [ns for ns in present if ns != "user"]
    if euid != 0 and "user" not in present:
        return checks + [Check("unshare.others", LIMITED, "not tried: needs root, or a user namespace",
                               "sudo minicontainer doctor", required=True)]
    base = 0 if euid == 0 else NAMESPACE_FLAGS["user"]
    how = "" if euid == 0 else " inside a new user namespace"
    flags = base
    for ns in others:
        flags |= NAMESPACE_FLAGS[ns]
    got = attempt(_unshare_trial(flags))
    if got.code == 0:
        return checks + [Check("unshare.others", OK, f"created {' '.join(others)}{how}", required=True)]
    # Which one?  Try each alone, so the report names the culprit.
    refused: dict[str, str] = {}
    for ns in others:
        one = attempt(_unshare_trial(base | NAMESPACE_FLAGS[ns]))
        if one.code != 0:
            refused[ns] = _failure(one)
    detail = f"unshare{how} refused: " + ("; ".join(f"{ns} ({why})" for ns, why in refused.items())
                                           or _failure(got))
    remedy = ("run as root (sudo)" if euid != 0 else
              "if this host is itself a container, run it privileged (docker run --privileged); "
              "otherwise check seccomp/LSM policy (dmesg)")
    # Only user, cgroup or time refused (as root): containers that do not ask for them still run.
    core_refused = not refused or any(ns in CORE_NAMESPACES for ns in refused)
    status = MISSING if core_refused or euid != 0 else LIMITED
    return checks + [Check("unshare.others", status, detail, remedy, required=True)]


# --- Filesystems: overlayfs and pivot_root ---------------------------------------------------------


def _private_mount_namespace(sys: Syscalls) -> None:
    """In a trial child: a mount namespace of its own, with no propagation back to the host.

    After this, every mount the child makes is invisible to the rest of the system, and the kernel
    undoes it when the child exits (the namespace dies with its last process).
    """
    from minicontainer.kernel.syscalls import CLONE_NEWNS, MS_PRIVATE, MS_REC
    sys.unshare(CLONE_NEWNS)
    # A new mount namespace copies the host's mounts *with their propagation*: a shared mount would
    # still pass our mounts back to the host.  Private, recursively, cuts that link.
    sys.mount(None, "/", None, MS_REC | MS_PRIVATE)


def _overlay_trial(sys: Syscalls, scratch: str) -> None:
    _private_mount_namespace(sys)
    # A tmpfs under everything: overlayfs refuses some upper filesystems (another overlay, for
    # instance, when this host is itself a container), and this checks the kernel, not /tmp.
    sys.mount("tmpfs", scratch, "tmpfs", 0, "size=1m")
    for d in ("lower", "upper", "work", "merged"):
        os.mkdir(os.path.join(scratch, d))
    with open(os.path.join(scratch, "lower", "from-lower"), "w") as f:
        f.write("image layer\n")
    sys.mount("overlay", os.path.join(scratch, "merged"), "overlay", 0,
              f"lowerdir={scratch}/lower,upperdir={scratch}/upper,workdir={scratch}/work")
    if not os.path.exists(os.path.join(scratch, "merged", "from-lower")):
        raise OSError(5, "the overlay mounted, but the lower layer's file does not show through it")


def _scratch_trial(trial: Callable[[Syscalls, str], None],
                   attempt: Callable[[Callable[[], None]], Attempt]) -> Attempt:
    """Run ``trial(sys, scratch_dir)`` in a child; the directory is made here and removed after."""
    import shutil
    import tempfile

    from minicontainer.kernel.syscalls import Syscalls
    sys = Syscalls()  # made (and its module imported) in the parent: the child only makes calls
    scratch = tempfile.mkdtemp(prefix="minicontainer-doctor-")
    try:
        return attempt(lambda: trial(sys, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # empty: the child's tmpfs went with its namespace


def check_overlay(euid: int, root: str = "", release: str | None = None,
                  attempt: Callable[[Callable[[], None]], Attempt] | None = None) -> Check:
    """overlayfs stacks an image's read-only layers under a writable one: how images become rootfs."""
    filesystems = _read(root + "/proc/filesystems") or ""
    known = any(line.split()[-1:] == ["overlay"] for line in filesystems.splitlines())
    if not known:
        release = release or os.uname().release
        moddir = f"{root}/lib/modules/{release}/kernel/fs/overlayfs"
        try:
            module = any(name.startswith("overlay.ko") for name in os.listdir(moddir))
        except OSError:
            module = False
        if not module:
            return Check("overlayfs", MISSING, "not in /proc/filesystems and no overlay module for this kernel",
                         "a kernel with CONFIG_OVERLAY_FS (distribution kernels have it as a module)")
        if euid != 0:
            return Check("overlayfs", LIMITED, "available as a module, not loaded yet", "sudo modprobe overlay")
        # As root the kernel loads the module itself on the first overlay mount: just try.
    if euid != 0:
        return Check("overlayfs", LIMITED, "in /proc/filesystems; mounting it needs root (not tried)",
                     "sudo minicontainer doctor")
    got = _scratch_trial(_overlay_trial, attempt or in_child)
    if got.code == 0:
        return Check("overlayfs", OK, "mounted an overlay (lower + upper) in a private mount namespace")
    return Check("overlayfs", MISSING, f"an overlay mount failed: {_failure(got)}",
                 "sudo modprobe overlay; if this host is itself a container, its /var/lib may be overlay "
                 "already (give it a volume)")


def _pivot_root_trial(sys: Syscalls, scratch: str) -> None:
    from minicontainer.kernel.syscalls import MNT_DETACH, MS_BIND, MS_REC
    _private_mount_namespace(sys)
    with open(os.path.join(scratch, "new-root-marker"), "w") as f:
        f.write("if you can read me at /, pivot_root worked\n")
    # As the runtime does (mounts.bind_rootfs, mounts.pivot_to): the new root must be a mount point,
    # so bind it onto itself; then pivot_root(".", ".") stacks the old root on the new one, and a lazy
    # unmount of "." lets go of it.
    sys.mount(scratch, scratch, None, MS_BIND | MS_REC)
    os.chdir(scratch)
    sys.pivot_root(".", ".")
    sys.umount2(".", MNT_DETACH)
    os.chdir("/")
    if not os.path.exists("/new-root-marker"):
        raise OSError(5, "pivot_root returned, but / is not the new root")


def check_pivot_root(euid: int, attempt: Callable[[Callable[[], None]], Attempt] | None = None) -> Check:
    """pivot_root swaps the root filesystem; unlike chroot, the old root can then be let go of."""
    if euid != 0:
        # Not a failure of its own: the root check already says what is missing.
        return Check("pivot_root", LIMITED,
                     "not tried: pivot_root needs a mount namespace of one's own and CAP_SYS_ADMIN in it",
                     "sudo minicontainer doctor", required=True)
    got = _scratch_trial(_pivot_root_trial, attempt or in_child)
    if got.code == 0:
        return Check("pivot_root", OK, "pivoted into a bind-mounted directory in a private mount namespace",
                     required=True)
    remedy = "run from a real root filesystem"
    import errno
    if got.code == errno.EINVAL:
        # The classic cause: / is the initramfs (rootfs), which can never be pivoted away from.
        remedy = ("/ must not be the initramfs (rootfs): boot into a real root filesystem, or use "
                  "switch_root; runc has --no-pivot for this case, minicontainer does not")
    return Check("pivot_root", MISSING, f"pivot_root failed: {_failure(got)}", remedy, required=True)


# --- cgroups ----------------------------------------------------------------------------------------

# The controllers reported, per mode, and those the runtime needs for its limits (memory, cpu, pids:
# minicontainer.kernel.cgroups.base.CONTROLLER_OF).  cpuset is used only on request; io/blkio not
# yet, but learners look for them.
V1_REPORTED = ("cpu", "cpuacct", "memory", "pids", "cpuset", "blkio")
V2_REPORTED = ("cpu", "cpuacct", "memory", "pids", "cpuset", "io")
NEEDED = frozenset({"cpu", "memory", "pids"})

DELEGATE = "sudo systemd-run --scope -p Delegate=yes minicontainer ..."
BOOT_V2 = ("most learners have pure cgroup v2; minicontainer uses the v1 controllers here (to get v2: "
           "boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line)")


def check_cgroups(euid: int, root: str = "", layout: Layout | None = None) -> list[Check]:
    """The cgroup mode, then each controller: is it there, and may we create cgroups with it?

    "Usable" mirrors what the runtime does (minicontainer.kernel.cgroups): it creates a container's
    cgroup beneath this process's own cgroup, and
    * on v1 (and hybrid) in each controller's own hierarchy, so that directory must be visible
      and writable;
    * on v2 it enables, in the directories it creates, only what our own cgroup delegates: what is
      listed in *our* ``cgroup.subtree_control`` (which becomes the new child's ``cgroup.controllers``).
      minicontainer never writes to a cgroup it did not create.
    """
    from minicontainer.kernel.cgroups import CgroupError, detect
    try:
        layout = detect(root=root) if layout is None else layout
    except (CgroupError, OSError) as e:
        return [Check("cgroups", MISSING, f"no usable cgroup filesystem: {e}",
                      "mount -t cgroup2 none /sys/fs/cgroup", required=True)]
    if layout.mode == "v2":
        checks = [Check("cgroups", OK, f"v2 (unified hierarchy at {layout.unified})")]
        return checks + [_v2_controller(layout, c, euid) for c in V2_REPORTED]
    if layout.mode == "hybrid":
        extra = sorted(layout.controllers_v2())
        inside = f"controllers there: {' '.join(extra)}" if extra else "no controllers"
        detail = f"hybrid (v1 controllers + a cgroup2 at {layout.unified}, {inside})"
        checks = [Check("cgroups", LIMITED, detail, BOOT_V2)]
    else:  # v1
        checks = [Check("cgroups", LIMITED, "v1 (one hierarchy per controller)", BOOT_V2)]
    disabled = _disabled_controllers(root)
    return checks + [_v1_controller(layout, c, euid, disabled) for c in V1_REPORTED]


def _disabled_controllers(root: str) -> set[str]:
    """Controllers compiled in but switched off at boot: /proc/cgroups' "enabled" column is 0."""
    text = _read(root + "/proc/cgroups") or ""
    off = set()
    for line in text.splitlines():
        parts = line.split()  # "#subsys_name hierarchy num_cgroups enabled"
        if len(parts) == 4 and not line.startswith("#") and parts[3] == "0":
            off.add(parts[0])
    return off


def _v1_controller(layout: Layout, controller: str, euid: int, disabled: set[str]) -> Check:
    from minicontainer.kernel.cgroups import CgroupError
    name, required = f"cgroup.{controller}", controller in NEEDED
    if controller not in layout.v1:
        if controller in disabled:
            return Check(name, MISSING, "disabled at boot (/proc/cgroups)",
                         f"add cgroup_enable={controller} to the kernel command line", required)
        return Check(name, MISSING, "no cgroup v1 hierarchy carries it",
                     f"mount -t cgroup -o {controller} cgroup /sys/fs/cgroup/{controller}", required)
    try:
        own = layout.own_dir(controller)
    except CgroupError as e:
        return Check(name, MISSING, f"mounted at {layout.v1[controller]}, but: {e}", "", required)
    if not os.access(own, os.W_OK):
        why = "this user may not" if euid != 0 else "the hierarchy is read-only: root may not"
        return Check(name, MISSING if euid == 0 else LIMITED, f"available, but {why} create cgroups in {own}",
                     "sudo minicontainer ..." if euid != 0 else "remount it read-write", required)
    return Check(name, OK, f"usable: v1, beneath {own}", required=required)


def _v2_controller(layout: Layout, controller: str, euid: int) -> Check:
    from minicontainer.kernel.cgroups import CgroupError
    name, required = f"cgroup.{controller}", controller in NEEDED
    if controller == "cpuacct":
        return Check(name, OK, "not needed on v2: every cgroup's cpu.stat counts its CPU time")
    try:
        own = layout.own_dir("")  # "" is the unified hierarchy (layout.UNIFIED)
    except CgroupError as e:
        return Check(name, MISSING, str(e), "", required)
    available = layout.controllers_v2()
    delegated = set((_read(os.path.join(own, "cgroup.subtree_control")) or "").split())
    if controller not in available:
        return Check(name, MISSING, f"not offered to this process's cgroup {own} (not in its cgroup.controllers)",
                     f"run minicontainer in a cgroup that has it: {DELEGATE}", required)
    if controller not in delegated:
        return Check(name, MISSING,
                     f"available in {own}, but not delegated (missing from its cgroup.subtree_control)",
                     f"{DELEGATE} (or, as root, `echo +{controller} > {own}/cgroup.subtree_control` "
                     "once that cgroup holds no processes)", required)
    if not os.access(own, os.W_OK):
        return Check(name, LIMITED, f"delegated in {own}, but this user may not create cgroups there",
                     "sudo minicontainer ..." if euid != 0 else DELEGATE, required)
    return Check(name, OK, f"usable: delegated by {own}", required=required)


def check_swap_accounting(layout: Layout | None) -> Check:
    """Can a container's swap be limited too?  Only if the kernel accounts swap per cgroup.

    Without it a memory limit still holds, but a container can spill past it into swap.
    """
    if layout is None:
        return Check("memory.swap", MISSING, "no cgroup filesystem", "")
    if layout.mode != "v2":
        if "memory" not in layout.v1:
            return Check("memory.swap", MISSING, "no v1 memory hierarchy", "")
        where = layout.mountpoint("memory")
        if os.path.exists(os.path.join(where, "memory.memsw.limit_in_bytes")):
            return Check("memory.swap", OK, "swap is accounted (v1 memory.memsw.* files present)")
        return Check("memory.swap", LIMITED, "no memory.memsw.* files: swap limits cannot be set",
                     "boot with swapaccount=1 on the kernel command line")
    # v2: memory.swap.max is in every non-root cgroup with the memory controller, never in the root.
    top = layout.unified or ""
    try:
        candidates = [os.path.join(top, d) for d in sorted(os.listdir(top)) if os.path.isdir(os.path.join(top, d))]
    except OSError:
        candidates = []
    if any(os.path.exists(os.path.join(d, "memory.swap.max")) for d in candidates):
        return Check("memory.swap", OK, "swap is accounted (memory.swap.max present)")
    return Check("memory.swap", LIMITED, "no memory.swap.max in any top-level cgroup: swap limits cannot be set",
                 "boot with swapaccount=1 (and a memory controller enabled for cgroups)")


# --- Helper programs --------------------------------------------------------------------------------


def is_static_elf(path: str) -> bool | None:
    """True if ``path`` is an ELF executable with no dynamic loader, None if it is not ELF at all.

    A dynamically linked program names its loader (``/lib64/ld-linux-x86-64.so.2``) in a PT_INTERP
    program header; a static one has none, and so runs in a rootfs that holds nothing else.  This is
    what ``file`` looks for when it prints "statically linked".
    """
    import struct
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if len(header) < 52 or header[:4] != b"\x7fELF":
                return None
            order = "<" if header[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
            if header[4] == 2:  # EI_CLASS 2: 64-bit
                (phoff,) = struct.unpack_from(order + "Q", header, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
            else:
                (phoff,) = struct.unpack_from(order + "I", header, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", header, 42)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    PT_INTERP = 3
    for i in range(phnum):
        if i * phentsize + 4 > len(table):
            break
        (p_type,) = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == PT_INTERP:
            return False
    return True


def _which(names: tuple[str, ...], extra: tuple[str, ...] = ()) -> str | None:
    import shutil
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in extra if os.path.exists(p)), None)


def check_binaries() -> list[Check]:
    """The programs the course uses next to minicontainer, and the Debian/Ubuntu package of each."""
    checks = []
    runc = _which(("runc",))
    checks.append(Check("runc", OK, f"found at {runc}") if runc else
                  Check("runc", MISSING, "not found: the reference OCI runtime, to compare against",
                        "apt-get install runc"))
    busybox = _which(("busybox",), BUSYBOX_CANDIDATES)
    if busybox is None:
        checks.append(Check("busybox", MISSING, "not found: the demo and test containers are built from it",
                            "apt-get install busybox-static"))
    elif is_static_elf(busybox):
        checks.append(Check("busybox", OK, f"found at {busybox}, statically linked"))
    else:
        checks.append(Check("busybox", LIMITED, f"{busybox} is dynamically linked: copied alone into a "
                            "rootfs it cannot find its libraries", "apt-get install busybox-static"))
    tini = _which(("tini", "tini-static"))
    checks.append(Check("tini", OK, f"found at {tini}") if tini else
                  Check("tini", MISSING, "not found: a minimal init (PID 1) for the lessons on zombies and signals",
                        "apt-get install tini"))
    return checks


# --- All of it --------------------------------------------------------------------------------------


def run_checks(root: str = "", euid: int | None = None) -> list[Check]:
    """Every check, in report order.  As root this forks a few short-lived trial children."""
    euid = os.geteuid() if euid is None else euid
    present = present_namespaces(root)
    checks = [check_root(euid), check_kernel(), check_namespaces(root), check_userns_settings(root)]
    checks += check_unshare(euid, present)
    checks += [check_overlay(euid, root), check_pivot_root(euid)]
    from minicontainer.kernel.cgroups import CgroupError, detect
    try:
        layout: Layout | None = detect(root=root)
    except (CgroupError, OSError):
        layout = None  # check_cgroups detects again, and reports why it fails
    checks += check_cgroups(euid, root, layout)
    checks.append(check_swap_accounting(layout))
    checks += check_binaries()
    return checks
