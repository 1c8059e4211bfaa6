"""The parent side of ``create``: the runtime process that brings a container to life.

runc keeps this in ``process_linux.go``; the child side is :mod:`minicontainer.runtime.init`, and
the messages between the two are tabled in :mod:`minicontainer.runtime.sync`.  The parent:

1. claims the container id (its state directory) and makes ``exec.fifo``;
2. creates the cgroup and writes the limits, *before* any process exists, so a bad limit fails
   early and nothing runs unaccounted for;
3. forks stage1, which moves itself into the cgroup first thing (see sync.py for why itself);
4. writes the uid/gid maps if stage1 made a user namespace (only the parent can: see sync.py);
5. learns init's PID, waits for ``ready`` (or an ``error``, which it reports), saves state.json.

On any failure it undoes everything: kills what it forked, removes the cgroup and the state.
"""

from __future__ import annotations

import os
import signal
import sys as _sys

from minicontainer.kernel.cgroups import CgroupError, open_cgroup
from minicontainer.kernel.cgroups.base import Cgroup
from minicontainer.kernel.cgroups.layout import detect
from minicontainer.kernel.syscalls import KernelError, Syscalls
from minicontainer.observe.events import write_jsonl
from minicontainer.runtime import sync
from minicontainer.runtime.bundle import Spec
from minicontainer.runtime.errors import RuntimeFailure
from minicontainer.runtime.init import stage1
from minicontainer.runtime.state import State, process_start_time


def create(sys: Syscalls, spec: Spec, root: str, container_id: str, pid_file: str | None = None,
           stdio: tuple[int, int, int] | None = None) -> State:
    """Set the container up and leave init waiting for ``start``.  Returns the saved state.

    The container's stdin, stdout and stderr are the caller's (as with runc), or the three file
    descriptors in ``stdio`` (an engine passes its log files and a stdin pipe).
    """
    state = State.reserve(root, container_id, spec.bundle)  # state.json says "creating" from now on
    state.annotations = spec.annotations
    stage1_pid = init_pid = 0
    fifo_handle = -1
    cgroup = None
    parent_end = None
    try:
        sys.mkfifo(state.fifo, 0o600, detail="init will block opening this until `start` opens it too")
        # init reopens the fifo after it has become the container's user: that user must own it.
        sys.chown(state.fifo, *spec.host_ids())
        # A handle on the fifo (O_PATH: not an open of the fifo itself, which would block) for init to
        # inherit: in a user namespace, init could not even walk the path to the state directory.
        fifo_handle = os.open(state.fifo, os.O_PATH | os.O_CLOEXEC)
        try:
            cgroup = open_cgroup(sys, spec.cgroups_path or f"minicontainer-{container_id}")
            cgroup.create()
            state.cgroup = cgroup.to_state()
            state.save()  # from here on `delete --force` can find the cgroup, even if we are killed
            cgroup.apply(spec.resources)
        except CgroupError as e:
            raise RuntimeFailure(str(e)) from None
        state.cgroup = cgroup.to_state()

        if spec.hooks:
            from minicontainer.runtime import hooks  # noqa: F401 - init runs hooks after pivot_root: import now
        cgroup_dirs = cgroup_mount_dirs(cgroup) if any(m.type == "cgroup" for m in spec.mounts) else {}
        if spec.seccomp is not None:  # compiled here, once per profile (kept in the state root)
            from minicontainer.kernel import seccomp

            spec = spec._replace(seccomp=seccomp.compiled(spec.seccomp, os.path.join(root, "seccomp")))
        parent_end, child_end = sync.Channel.pair()
        stage1_pid = fork_child(sys, parent_end, stdio, detail="stage1: will join or create the namespaces")
        if stage1_pid == 0:
            stage1(spec, child_end, fifo_handle, cgroup, container_id, cgroup_dirs)  # never returns
        child_end.close()
        os.close(fifo_handle)
        fifo_handle = -1

        # stage1's init-pid and init's ready share the socket, and on a busy machine ready may come
        # first (stage1 is descheduled between its fork and its send): accept either, at every step.
        later = (sync.INIT_PID, sync.CONSOLE, sync.READY, sync.HOOKS)
        msg = parent_end.recv(sync.USERNS_CREATED, *later)
        if msg["type"] == sync.USERNS_CREATED:
            write_id_maps(sys, spec, stage1_pid)
            parent_end.send(sync.USERNS_MAPPED)
            msg = parent_end.recv(*later)
        ready = hooks_asked = False
        while True:
            _take_events(sys, msg)
            _raise_if_error(msg)
            if msg["type"] == sync.INIT_PID:
                init_pid = msg["pid"]
                os.waitpid(stage1_pid, 0)  # stage1 has exited after sending: reap it
                stage1_pid = 0
            elif msg["type"] == sync.HOOKS:
                hooks_asked = True  # run once init's PID is known: the hooks' state carries it
            elif msg["type"] == sync.CONSOLE:
                if state.console_fd >= 0:
                    os.close(state.console_fd)  # (one terminal per container: a second replaces it)
                state.console_fd = msg["fds"][0]  # the terminal's master side: the caller's to keep
            else:
                ready = True
            if hooks_asked and init_pid:
                hooks_asked = False
                _run_create_hooks(spec, state, init_pid)
                parent_end.send(sync.HOOKS_DONE)
            if init_pid and ready:
                break
            msg = parent_end.recv(*later)
        if spec.process.terminal and state.console_fd < 0:
            raise sync.SyncError("process.terminal: init became ready without sending its terminal")
        state.pid = init_pid
        state.start_time = process_start_time(init_pid) or 0
        state.hooks = hooks_to_state(spec.hooks)
        state.save()
        write_jsonl(state.events_file, sys.trace.events)
        if pid_file:
            _write_pid_file(pid_file, init_pid)
        return state
    except BaseException:
        if state.console_fd >= 0:
            os.close(state.console_fd)
            state.console_fd = -1
        _undo(state, cgroup, init_pid, stage1_pid)
        raise
    finally:
        if parent_end is not None:
            parent_end.close()
        if fifo_handle >= 0:
            os.close(fifo_handle)


def fork_child(sys: Syscalls, parent_end: sync.Channel, stdio: tuple[int, int, int] | None, *,
               detail: str) -> int:
    """fork(2) the first child of the handshake; in the child, give it ``stdio`` as 0, 1 and 2 (if
    given) and close the parent's end of the sync socket.  Returns the PID, 0 in the child."""
    _sys.stdout.flush()
    _sys.stderr.flush()  # or the child would print our buffered output a second time
    pid = sys.fork(detail=detail)
    if pid == 0:
        parent_end.close()
        if stdio is not None:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)  # dup2 clears close-on-exec: the program inherits them
    return pid


def _run_create_hooks(spec: Spec, state: State, init_pid: int) -> None:
    """prestart and createRuntime: in the runtime's namespaces, with the state as "creating"."""
    from minicontainer.runtime import hooks

    oci = {**state.oci(), "status": "creating", "pid": init_pid}
    for point in ("prestart", "createRuntime"):
        hooks.run(point, spec.hooks.get(point, []), oci)


def cgroup_mount_dirs(cgroup: Cgroup) -> dict[str, str]:
    """For a ``cgroup`` mount: name under it -> the container's directory in that hierarchy.

    v2: the one directory (name ""). v1: one per hierarchy, named as on the host (``memory``,
    ``cpu,cpuacct``): the container's own cgroup where it has one, else the cgroup its processes are
    in there, which is the runtime's (init is born in it); never a hierarchy's root.
    """
    if cgroup.version == "v2":
        return {"": cgroup.paths["unified"]}
    layout = detect()
    out: dict[str, str] = {}
    for controller, mountpoint in sorted(layout.v1.items()):
        out.setdefault(os.path.basename(mountpoint), cgroup.paths.get(controller) or layout.own_dir(controller))
    return out


def hooks_to_state(spec_hooks: dict) -> dict:
    if not spec_hooks:
        return {}
    from minicontainer.runtime import hooks

    return hooks.to_state(spec_hooks)


def _undo(state: State, cgroup, *pids: int) -> None:
    """Undo a failed create, step by step: one step failing must not stop the others."""
    for pid in pids:
        if pid:
            _kill_and_reap(pid)
    if cgroup is not None:
        try:
            cgroup.kill_all()
            cgroup.destroy()
        except Exception as e:  # noqa: BLE001 - reported, and the state kept so delete can retry
            print(f"minicontainer-runtime: cleaning up after a failed create: {e} (the state is kept: "
                  f"`minicontainer-runtime delete --force {state.id}` retries)", file=_sys.stderr)
            return
    state.remove()


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def write_id_maps(sys: Syscalls, spec: Spec, pid: int) -> None:
    """Tell the kernel which host ids the new user namespace's ids stand for.

    Each line is ``<id inside> <id outside> <count>``.  A map can be written once only, and only by
    a process with privilege over the outside ids (here: root in the parent namespace).
    """
    for kind, maps in (("uid_map", spec.uid_mappings), ("gid_map", spec.gid_mappings)):
        lines = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
        sys.write_file(f"/proc/{pid}/{kind}", lines,
                       detail=f"map ids in the user namespace: {kind.split('_')[0]} inside -> host")


def _take_events(sys: Syscalls, msg: dict) -> None:
    from minicontainer.observe.events import Event

    sys.trace.extend(Event.from_dict(e) for e in msg.get("events", []))


def _raise_if_error(msg: dict) -> None:
    if msg["type"] != sync.ERROR:
        return
    if msg.get("traceback"):
        print(msg["traceback"], file=_sys.stderr)
    if msg.get("verb"):
        err = KernelError(msg["verb"], msg.get("path", ""), msg["errno"], msg.get("hint", ""))
        raise RuntimeFailure(f"container init: {err}", exit_code=msg.get("exit_code"))
    raise RuntimeFailure(msg["message"], exit_code=msg.get("exit_code"))


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not our child (init, reparented): its cgroup's kill_all and the reaper see to it
