"""The OCI lifecycle: create, start, state, kill, delete, and run (= create + start + wait).

The runtime spec (``runtime.md``) defines a container's life as a small state machine::

    create ──▶ created ──start──▶ running ──(program exits)──▶ stopped ──delete──▶ (gone)
                  │                  │
                  └──────delete──────┴──delete --force (SIGKILL first)

Each function here is one command of ``minicontainer-runtime`` and one transition above.  The
creation itself (processes, namespaces, handshake) lives in :mod:`minicontainer.runtime.parent`.
"""

from __future__ import annotations

import os
import signal
import sys as _sys
import time
from collections.abc import Callable

from minicontainer.kernel.cgroups import cgroup_from_state
from minicontainer.kernel.syscalls import PR_SET_CHILD_SUBREAPER, Syscalls
from minicontainer.observe.events import write_jsonl
from minicontainer.runtime import bundle, parent
from minicontainer.runtime.errors import ContainerNotFound, RuntimeFailure
from minicontainer.runtime.state import State, list_ids, remove_quietly

# Signals `run` passes on to the container, as runc does: the runtime stands in for the container
# in the caller's eyes (Ctrl-C in the terminal should reach the program, not just the runtime).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGWINCH)


def create(sys: Syscalls, root: str, container_id: str, bundle_dir: str, pid_file: str | None = None,
           stdio: tuple[int, int, int] | None = None) -> State:
    spec = bundle.load(bundle_dir)
    for warning in spec.warnings:
        print(f"minicontainer-runtime: warning: config.json: {warning}", file=_sys.stderr)
    return parent.create(sys, spec, root, container_id, pid_file, stdio)


def start(sys: Syscalls, root: str, container_id: str) -> State:
    """Let a created container's init run the user's program."""
    state = State.load(root, container_id)
    status = state.status
    if status != "created":
        raise RuntimeFailure(f"cannot start container '{container_id}': it is {status}, not created")
    t0 = time.monotonic_ns()
    # Opening the fifo for reading is the signal: init's blocked open-for-writing returns, it writes
    # one byte, and execs.  Non-blocking open so that we never hang if init died meanwhile.
    fd = os.open(state.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.set_blocking(fd, True)
        while not os.read(fd, 1):  # empty read = no writer (yet): init is not at its open
            if not os.path.exists(state.fifo):
                # Another `start` got init's one byte and removed the fifo first.
                raise RuntimeFailure(f"cannot start container '{container_id}': it was started meanwhile")
            if not state.alive():
                raise RuntimeFailure(f"container '{container_id}': init exited before it could start")
            time.sleep(0.0005)
    finally:
        os.close(fd)
    remove_quietly(state.fifo)
    sys.trace.record("start", "open exec.fifo for reading", "ok", start_ns=t0,
                     detail="the read end opens: init's blocked open(O_WRONLY) returns, it writes a byte "
                            "and calls execve")
    write_jsonl(state.events_file, sys.trace.events[-1:])
    if state.hooks.get("poststart"):
        from minicontainer.runtime import hooks

        hooks.run_and_warn("poststart", hooks.from_state(state.hooks, "poststart"), state.oci())
    return state


def kill(sys: Syscalls, root: str, container_id: str, sig: int, *, all_processes: bool = False) -> None:
    state = State.load(root, container_id)
    status = state.status
    if status not in ("created", "running"):
        raise RuntimeFailure(f"cannot kill container '{container_id}': it is {status}")
    if sig not in signal.valid_signals():
        raise RuntimeFailure(f"invalid signal {sig}")
    if all_processes:
        cgroup_from_state(sys, state.cgroup).kill_all(sig)
    else:
        sys.kill(state.pid, sig, detail=f"deliver {signal.Signals(sig).name} to the container's PID 1")


def delete(sys: Syscalls, root: str, container_id: str, *, force: bool = False) -> None:
    """Remove a stopped (or, with ``force``, any) container: its processes, cgroup and state."""
    try:
        state = State.load(root, container_id)
    except ContainerNotFound:
        if force:
            return  # as runc: deleting what is already gone, by force, is not an error
        raise
    status = state.status
    if status in ("running", "creating") and not force:
        raise RuntimeFailure(f"cannot delete container '{container_id}': it is {status} (stop it, or use "
                             "delete --force to kill it)")
    # A created container is only init waiting on the fifo: runc deletes it without --force, and so
    # do we (the OCI spec itself would have it fail).
    if status in ("created", "running"):
        sys.kill(state.pid, signal.SIGKILL, detail="delete: end the container's PID 1")
        _wait_gone(state)
    if state.cgroup:
        # Whatever the status: without a PID namespace of its own, init's children can outlive it.
        cgroup = cgroup_from_state(sys, state.cgroup)
        cgroup.kill_all(signal.SIGKILL)
        cgroup.destroy()
    stopped = state.oci()
    state.remove()
    if state.hooks.get("poststop"):
        from minicontainer.runtime import hooks

        hooks.run_and_warn("poststop", hooks.from_state(state.hooks, "poststop"), {**stopped, "status": "stopped"})


def run(sys: Syscalls, root: str, container_id: str, bundle_dir: str, *, pid_file: str | None = None,
        detach: bool = False, on_step: Callable[[str], None] | None = None,
        on_console: Callable[[int], None] | None = None) -> int:
    """create + start, then (unless ``detach``) wait for the program and delete the container.

    Returns the program's exit code (128 + N if signal N killed it).  ``on_step("create")`` and
    ``on_step("start")`` are called as each step is done (``--explain`` narrates them there, before
    the program's own output).
    """
    on_step = on_step or (lambda _step: None)
    if not detach:
        # stage1 exits after forking init, which would then be orphaned to the host's PID 1.  As a
        # "child subreaper" we inherit it instead, and can waitpid() for its exit status.
        sys.prctl(PR_SET_CHILD_SUBREAPER, 1, detail="adopt init when stage1 exits, to wait for its exit status")
    state = create(sys, root, container_id, bundle_dir, pid_file)
    try:
        if state.console_fd >= 0:  # process.terminal: the master side goes to whoever asked for it
            if on_console is None:
                os.close(state.console_fd)
                raise RuntimeFailure("process.terminal: nobody to hand the terminal to (no console socket)")
            on_console(state.console_fd)
        on_step("create")
        start(sys, root, container_id)
        on_step("start")
    except BaseException:
        delete(sys, root, container_id, force=True)
        raise
    if detach:
        return 0
    code = wait_forwarding_signals(state.pid)
    try:
        delete(sys, root, container_id, force=True)
    except Exception as e:  # noqa: BLE001 - the program's exit code matters more; say what is left
        print(f"minicontainer-runtime: the program exited {code}, but deleting the container failed: {e}",
              file=_sys.stderr)
    return code


def state_of(root: str, container_id: str) -> dict:
    return State.load(root, container_id).oci()


def list_all(root: str) -> list[State]:
    out = []
    for cid in list_ids(root):
        try:
            out.append(State.load(root, cid))
        except RuntimeFailure:
            continue  # deleted meanwhile
    return out


def wait_forwarding_signals(pid: int) -> int:
    """Wait for ``pid`` (our child, or adopted as subreaper), passing it the signals we get meanwhile;
    its exit code, 128 + N if signal N killed it."""
    previous = {sig: signal.signal(sig, lambda s, _f: _forward(pid, s)) for sig in FORWARDED_SIGNALS}
    try:
        return _wait_for(pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_for(pid: int) -> int:
    """Reap children until ``pid`` exits; orphans adopted as subreaper are reaped on the way."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            raise RuntimeFailure(f"lost track of the container's init (PID {pid})") from None
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def _wait_gone(state: State, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while state.alive():
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"container '{state.id}': PID {state.pid} did not die after SIGKILL")
        time.sleep(0.002)
