"""The child side: what the container's first processes do, from namespaces to ``execve``.

This is runc's ``nsexec.c`` + ``init_linux.go`` in one readable file.  Two processes run it, both
forked from the runtime (see :mod:`minicontainer.runtime.sync` for the messages they exchange with
the parent, :mod:`minicontainer.runtime.parent` for the other side):

* :func:`stage1` joins or creates the namespaces, then forks init into the new PID namespace.
* :func:`container_init` is PID 1 of the container: it builds the root filesystem, sets hostname,
  limits and identity, finds the program, reports ``ready``, waits for ``start``, and execs.

Neither ever returns: each leaves with ``os._exit`` (or ``execve``), so that no Python code of the
runtime's (an ``except`` clause of the CLI, an ``atexit`` hook) runs twice in a forked copy.
A failure is sent to the parent as an ``error`` message with verb, path, errno and what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import struct
import sys as _sys
import termios
from typing import TYPE_CHECKING, NoReturn

from minicontainer.kernel import capabilities, devices, mounts
from minicontainer.kernel.namespaces import BY_OCI
from minicontainer.kernel.syscalls import (
    CLONE_NEWUSER,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    KernelError,
    Syscalls,
)
from minicontainer.observe.events import Trace
from minicontainer.runtime import sync
from minicontainer.runtime.bundle import RLIMITS, Spec

if TYPE_CHECKING:
    from minicontainer.kernel.cgroups.base import Cgroup
from minicontainer.runtime.errors import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME_FAILURE,
    RuntimeFailure,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_FD = os.sysconf("SC_OPEN_MAX")

# MINICONTAINER_DEBUG=1 sends the child's Python traceback along with its error.  The module is
# imported here, on the host: after pivot_root the runtime's own Python files are out of reach.
DEBUG = bool(os.environ.get("MINICONTAINER_DEBUG"))
if DEBUG:
    import traceback


def _report_and_exit(chan: sync.Channel, trace: Trace, exc: BaseException) -> NoReturn:
    """Send the failure to the parent (it prints it and cleans up) and leave."""
    code = getattr(exc, "exit_code", EXIT_RUNTIME_FAILURE)
    fields = exc.to_dict() if isinstance(exc, KernelError) else {}
    if DEBUG:
        fields["traceback"] = traceback.format_exc()
    try:
        chan.send_events(sync.ERROR, trace.events, message=str(exc) or type(exc).__name__,
                         exit_code=code, **fields)
    except OSError:
        pass  # the parent is gone: nobody left to tell
    os._exit(code)


# --- stage 1: namespaces --------------------------------------------------------------------------


def stage1(spec: Spec, chan: sync.Channel, fifo_handle: int, cgroup: Cgroup, container_id: str = "",
           cgroup_dirs: dict[str, str] | None = None) -> NoReturn:
    trace = Trace(side="stage1")
    sys = Syscalls(trace)
    try:
        # Into the container's cgroup first: everything forked from here on is counted and limited
        # there, and the cgroup namespace made below is rooted there.
        cgroup.join_self(sys)

        # Namespaces given by path are joined first, the user namespace before the others: joining
        # a namespace needs privilege over the user namespace that owns it.
        for ns in sorted((ns for ns in spec.namespaces if ns.path), key=lambda ns: ns.type != "user"):
            sys.setns(ns.path, BY_OCI[ns.type].flag, detail=f"join the existing {ns.type} namespace")

        new = spec.new_namespaces()
        if any(ns.type == "user" for ns in new):
            # Alone first: every namespace created after it is owned by it, so that its root (which is
            # an ordinary user outside) holds capabilities over them.
            sys.unshare(CLONE_NEWUSER, detail="new user namespace: ids inside map to other ids outside")
            chan.send(sync.USERNS_CREATED)
            chan.recv(sync.USERNS_MAPPED)
            sys.setresgid(0)
            sys.setresuid(0)

        flags = 0
        for ns in new:
            if ns.type != "user":
                flags |= BY_OCI[ns.type].flag
        if flags:
            sys.unshare(flags, detail="new namespaces; the PID one takes effect for the children forked next")

        pid = sys.fork(detail="init: the first process of the new PID namespace, so its PID 1")
        if pid == 0:
            container_init(spec, chan, fifo_handle, trace, cgroup_dirs or {}, container_id)
        chan.send_events(sync.INIT_PID, trace.events, pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        _report_and_exit(chan, trace, e)


# --- init: PID 1 of the container -----------------------------------------------------------------


def container_init(spec: Spec, chan: sync.Channel, fifo_handle: int, trace: Trace,
                   cgroup_dirs: dict[str, str], container_id: str = "") -> NoReturn:
    # A fresh trace: what stage1 recorded before the fork belongs to stage1's report.
    trace.events = []
    trace.side = "init"
    sys = Syscalls(trace)
    ready = False
    try:
        os.umask(0)  # device nodes and mount points get exactly the modes asked for
        # Until it execs, init is a copy of the runtime: not dumpable, so that no process in the
        # container (a PID namespace joined by path, say) can read its memory or files via /proc.
        sys.prctl(PR_SET_DUMPABLE, 0)
        build_rootfs(sys, spec, spec.has_namespace("user"), chan=chan, cgroup_dirs=cgroup_dirs,
                     container_id=container_id)
        if spec.hostname is not None:
            sys.sethostname(spec.hostname, detail="the UTS namespace's own hostname")
        for key, value in spec.sysctl.items():
            sys.write_file("/proc/sys/" + key.replace(".", "/"), value,
                           detail=f"sysctl {key}: the copy of the container's own {'network' if key.startswith('net.') else 'IPC'}"
                                  " namespace; the host's is untouched")
        mounts.mask_paths(sys, spec.masked_paths)
        mounts.make_readonly(sys, spec.readonly_paths)
        if spec.root_readonly:
            mounts.make_root_readonly(sys)
        program = become_the_process(sys, spec, chan)
        chan.send_events(sync.READY, trace.events)
        ready = True
        chan.close()

        # Block until `minicontainer-runtime start` opens the fifo for reading, then tell it we go.
        # fifo_handle is an O_PATH descriptor of exec.fifo, opened by the parent: after pivot_root
        # the state directory is out of reach, so the fifo is reopened through /proc/self/fd (a
        # "magic link" that leads to the file itself, not to its path).
        fd = os.open(f"/proc/self/fd/{fifo_handle}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        if spec.hooks.get("startContainer"):
            from minicontainer.runtime import hooks  # imported by the parent before the fork: no file read

            hooks.run("startContainer", spec.hooks["startContainer"],
                      {"ociVersion": spec.oci_version, "id": container_id, "status": "running", "pid": os.getpid(),
                       "bundle": spec.bundle, "annotations": spec.annotations})
        exec_program(sys, spec, program)
    except BaseException as e:  # noqa: BLE001
        fail(chan, trace, e, ready=ready)


def exec_program(sys: Syscalls, spec: Spec, program: str) -> NoReturn:
    """The last step of init and of every exec'd process: nothing of the runtime's (or the daemon's)
    may reach the program, so every descriptor but stdio is closed; then execve replaces this Python
    with the program, in the same process."""
    os.closerange(3, MAX_FD)
    sys.execve(program, spec.process.args, spec.process.env_dict())
    raise AssertionError("execve returned")  # pragma: no cover


def fail(chan: sync.Channel, trace: Trace, exc: BaseException, *, ready: bool) -> NoReturn:
    """A failure of init or of an exec'd process.  Before ``ready`` the parent waits for our word: the
    failure goes back over the sync socket.  After it, stderr and the exit code are all there is."""
    if not ready:
        _report_and_exit(chan, trace, exc)
    exit_after_ready(exc)


def exit_after_ready(exc: BaseException) -> NoReturn:
    """A failure after ``ready`` (execve's, say): the parent has moved on, and the program's stderr is
    all there is.  The exit code says who failed, as Docker's do (126, 127, 125)."""
    print(f"minicontainer-runtime: {exc}", file=_sys.stderr, flush=True)
    if isinstance(exc, KernelError) and exc.verb == "execve":
        os._exit(EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE)
    os._exit(getattr(exc, "exit_code", EXIT_RUNTIME_FAILURE))


def build_rootfs(sys: Syscalls, spec: Spec, in_userns: bool, *, chan: sync.Channel | None = None,
                 cgroup_dirs: dict[str, str] | None = None, container_id: str = "") -> None:
    rootfs = spec.root_path
    mounts.set_root_propagation(sys, spec.rootfs_propagation)
    if spec.rootfs_propagation in ("shared", "rshared"):
        mounts.make_parent_mount_private(sys, rootfs)
    mounts.bind_rootfs(sys, rootfs)
    dev_is_tmpfs = False
    for m in spec.mounts:
        if m.type == "cgroup":
            mounts.mount_cgroup(sys, rootfs, m.destination, cgroup_dirs or {}, m.options)
            continue
        mounts.mount_one(sys, rootfs, m.destination, m.type, m.source, m.options, in_userns=in_userns)
        if m.destination == "/dev" and m.type == "tmpfs":
            dev_is_tmpfs = True
    if dev_is_tmpfs:
        # Only into a /dev of the container's own: the rootfs's /dev is left as the image made it.
        devices.populate_dev(sys, rootfs, in_userns=in_userns, extra=spec.devices)
    if chan is not None and (spec.hooks.get("prestart") or spec.hooks.get("createRuntime")):
        chan.send_events(sync.HOOKS, sys.trace.events)  # the parent runs them on the host
        sys.trace.events = []
        chan.recv(sync.HOOKS_DONE)
    if spec.hooks.get("createContainer"):
        from minicontainer.runtime import hooks  # imported by the parent before the fork: no file read

        hooks.run("createContainer", spec.hooks["createContainer"],
                  {"ociVersion": spec.oci_version, "id": container_id, "status": "creating", "pid": os.getpid(),
                   "bundle": spec.bundle, "annotations": spec.annotations})
    mounts.pivot_to(sys, rootfs)
    if spec.rootfs_propagation:
        # The new / (the rootfs's bind) gets the propagation asked for, in the container's namespace.
        sys.mount(None, "/", None, mounts.PROPAGATION[spec.rootfs_propagation],
                  detail=f"linux.rootfsPropagation: {spec.rootfs_propagation}")


def load_seccomp(sys: Syscalls, spec: Spec) -> None:
    """Install ``linux.seccomp`` on this process (init, or a process ``exec`` adds to the container)."""
    if spec.seccomp is None:
        return
    from minicontainer.kernel import seccomp  # imported when the bundle was read (bundle.parse)

    detail = f"seccomp filter: default {spec.seccomp.default_action}, every system call checked"
    if spec.seccomp.bpf:  # compiled by the parent (kernel/seccomp.compiled): the kernel takes it as it is
        flags = sum(seccomp.FILTER_FLAGS[f] for f in spec.seccomp.flags)
        sys.seccomp_load_bpf(spec.seccomp.bpf, flags, detail=detail)
    else:
        sys.seccomp_load(seccomp.build(spec.seccomp), len(spec.seccomp.rules), detail=detail)


def become_the_process(sys: Syscalls, spec: Spec, chan: sync.Channel) -> str:
    """The steps from "inside the container" to "ready to execve", shared by init and by every exec'd
    process (:mod:`minicontainer.runtime.setns_init`): whatever is added here (a seccomp filter, as
    runc applies to both) reaches both.  Returns the program's path."""
    if not spec.process.no_new_privileges:
        # Without no_new_privs only a holder of CAP_SYS_ADMIN may install a filter: now, as root,
        # before setup_process gives the capabilities up (the filter then sees init's last calls).
        load_seccomp(sys, spec)
    setup_process(sys, spec)
    program = find_program(spec)
    prepare_exec(sys, spec)
    if spec.process.no_new_privileges:
        load_seccomp(sys, spec)  # as late as possible: the fewer of init's own calls it must allow
    if spec.process.terminal:
        make_terminal(sys, spec, chan)
    return program


def setup_process(sys: Syscalls, spec: Spec) -> None:
    """Limits, then the user's identity and capabilities: the last privileged steps."""
    proc = spec.process
    if proc.oom_score_adj is not None:
        sys.write_file("/proc/self/oom_score_adj", str(proc.oom_score_adj),
                       detail="the OOM killer's preference, inherited by every process: -1000 never, 1000 first")
    for rl in proc.rlimits:
        # Before the capabilities go: raising a hard limit needs CAP_SYS_RESOURCE.
        sys.setrlimit(rl.type, RLIMITS[rl.type], rl.soft, rl.hard)
    try:
        sys.chdir(proc.cwd)
    except KernelError as e:
        raise KernelError("chdir", proc.cwd, e.errno or errno.ENOENT,
                          "process.cwd must be a directory inside the rootfs") from None
    capabilities.apply_identity(sys, proc.capabilities, proc.uid, proc.gid, proc.additional_gids)
    os.umask(proc.umask if proc.umask is not None else 0o022)


def prepare_exec(sys: Syscalls, spec: Spec) -> None:
    """The last changes to the process before it becomes the user's program."""
    # A session of its own: without it the program would share the caller's controlling terminal,
    # and root inside could type into the host's shell through it (the TIOCSTI ioctl).
    os.setsid()
    sys.trace.record("setsid", "", "ok", detail="a new session: no controlling terminal shared with the host")
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive execve: give the program the
    # defaults any program expects (or `yes | head` would never end), and an empty signal mask.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if spec.process.no_new_privileges:
        # From here on no execve can gain privileges (setuid bits, file capabilities are ignored).
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)


def make_terminal(sys: Syscalls, spec: Spec, chan: sync.Channel) -> None:
    """``process.terminal``: a pseudo-terminal from the container's own ``/dev/ptmx`` (its devpts, so
    inside it is ``/dev/pts/0``).  Its slave side becomes stdin, stdout, stderr and the controlling
    terminal of init's new session; the master side goes to the parent, over the sync socket.
    (fcntl, struct and termios are imported at the top: after pivot_root the host's Python library
    is out of reach.)"""
    master, slave = os.openpty()  # posix_openpt("/dev/ptmx") + grantpt + unlockpt, here: after pivot_root
    try:
        name = os.ttyname(slave)  # read from /proc/self/fd: a bundle without /proc has no name for it
    except OSError:
        name = "/dev/pts/?"
    if spec.process.console_size:
        rows, cols = spec.process.console_size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # init leads a new session (setsid): this is its terminal now
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)
    sys.trace.record("openpty", "/dev/ptmx", name, detail="a terminal of the container's own: stdin, stdout, "
                                                          "stderr and the session's controlling terminal")
    chan.send_fd(sync.CONSOLE, master, name=name)
    os.close(master)


def find_program(spec: Spec) -> str:
    """Resolve ``process.args[0]`` as execvp(3) would, now, so that a missing program fails ``create``.

    The lookup happens in the container's root and with its ``PATH``, not the runtime's.
    """
    name = spec.process.args[0]
    if "/" in name:
        candidates = [name]
    else:
        path = spec.process.env_dict().get("PATH", DEFAULT_PATH)
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    found_but_not_executable = ""
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
        found_but_not_executable = found_but_not_executable or candidate
    if found_but_not_executable:
        raise RuntimeFailure(f"exec: '{found_but_not_executable}': permission denied (it exists but is not an "
                             "executable file: chmod +x it in the rootfs)", exit_code=EXIT_NOT_EXECUTABLE)
    where = "" if "/" in name else " in $PATH"
    raise RuntimeFailure(f"exec: '{name}': executable file not found{where} (is it in the rootfs? args[0] is "
                         "looked up with the container's PATH)", exit_code=EXIT_NOT_FOUND)
