"""``exec``: one more process in a running container (runc's ``exec``, Docker's ``docker exec``).

A container is not a box with processes put *into* it: it is a set of namespaces and a cgroup that
init lives in.  Another process becomes part of the container by joining them (``setns(2)``), taking
the container's identity and limits, and exec'ing.  This module is the parent side (runc's
``setnsProcess`` in ``process_linux.go``); the child side is :mod:`minicontainer.runtime.setns_init`,
and the messages between them are tabled in :mod:`minicontainer.runtime.sync`.

What the process is (args, env, cwd, user, terminal) is an OCI ``process`` object: either a whole
one (``exec --process process.json``, as runc takes it), or the container's own ``process`` from its
``config.json`` with a few fields replaced (:func:`process_for`), which is what ``docker exec`` does:
the same capabilities, rlimits and no_new_privs as the container's program, another command.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from minicontainer.kernel.cgroups import cgroup_from_state
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.runtime import bundle, sync
from minicontainer.runtime.bundle import Process, SpecError
from minicontainer.runtime.errors import RuntimeFailure
from minicontainer.runtime.parent import _kill_and_reap, _raise_if_error, _take_events, fork_child
from minicontainer.runtime.setns_init import exec_stage
from minicontainer.runtime.state import State


class Started(NamedTuple):
    """An exec'd process that runs: its host PID, and with a terminal the master side (else -1)."""

    pid: int
    console_fd: int


def load_process(path: str) -> Process:
    """``--process FILE``: an OCI ``process`` object, checked as strictly as config.json's."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RuntimeFailure(f"open '{path}': No such file or directory (--process names a JSON file holding "
                             "an OCI process object)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RuntimeFailure(f"'{path}' is not valid JSON: {e}") from None
    return bundle.parse_process(data)


def process_for(base: Process, args: list[str], *, env: list[str] = (), cwd: str | None = None,  # type: ignore[assignment]
                uid: int | None = None, gid: int | None = None, additional_gids: list[int] | None = None,
                terminal: bool = False, console_size: tuple[int, int] | None = None) -> Process:
    """The container's process with another command: ``env`` entries override its variables of the same
    name (``KEY=value``), the rest of what is given replaces its field."""
    if not args:
        raise RuntimeFailure("exec: no command given (what should run in the container?)")
    for item in env:
        if "=" not in item:
            raise RuntimeFailure(f"exec: environment variable '{item}' must have the form KEY=value")
    merged = base.env_dict()
    merged.update(item.split("=", 1) for item in env)
    if cwd is not None and not cwd.startswith("/"):
        raise RuntimeFailure(f"exec: the working directory '{cwd}' must be an absolute path")
    return base._replace(
        args=list(args), env=[f"{k}={v}" for k, v in merged.items()], cwd=cwd or base.cwd,
        uid=base.uid if uid is None else uid, gid=base.gid if gid is None else gid,
        additional_gids=base.additional_gids if additional_gids is None else additional_gids,
        terminal=terminal, console_size=console_size)


def container_process(root: str, container_id: str) -> Process:
    """The ``process`` of a container's config.json: what :func:`process_for` starts from."""
    return bundle.load(State.load(root, container_id).bundle).process


def start(sys: Syscalls, root: str, container_id: str, process: Process,
          stdio: tuple[int, int, int] | None = None) -> Started:
    """Run ``process`` in the container and return as soon as it has exec'd (not when it exits).

    The exec'd process is not our child: its parent, the exec stage, exits, and the process goes to
    the nearest *child subreaper* (the daemon; ``minicontainer-runtime exec``, which waits for it),
    as init does.  Its stdin, stdout and stderr are ours, or the three descriptors in ``stdio``.
    """
    state = State.load(root, container_id)
    status = state.status
    if status not in ("created", "running"):
        raise RuntimeFailure(f"cannot exec in container '{container_id}': it is {status} (start it first)")
    try:
        spec = bundle.load(state.bundle)._replace(process=process)
    except SpecError as e:
        raise RuntimeFailure(f"exec in '{container_id}': its config.json: {e}") from None
    cgroup = cgroup_from_state(sys, state.cgroup)
    parent_end, child_end = sync.Channel.pair()
    stage_pid = pid = 0
    console_fd = -1
    try:
        stage_pid = fork_child(sys, parent_end, stdio,
                               detail="exec stage: will join the container's cgroup and namespaces")
        if stage_pid == 0:
            exec_stage(spec, state.pid, child_end, cgroup)  # never returns
        child_end.close()
        # As in create, the stage's exec-pid and the process's ready can arrive in either order.
        ready = False
        while not (pid and ready):
            msg = parent_end.recv(sync.EXEC_PID, sync.CONSOLE, sync.READY)
            _take_events(sys, msg)
            _raise_if_error(msg)
            if msg["type"] == sync.EXEC_PID:
                pid = msg["pid"]
                os.waitpid(stage_pid, 0)  # the stage has exited after sending: reap it
                stage_pid = 0
            elif msg["type"] == sync.CONSOLE:
                console_fd = msg["fds"][0]
            else:
                ready = True
        if process.terminal and console_fd < 0:
            raise sync.SyncError("process.terminal: the exec'd process became ready without sending its terminal")
        return Started(pid, console_fd)
    except BaseException:
        if console_fd >= 0:
            os.close(console_fd)
        for p in (stage_pid, pid):
            if p:
                _kill_and_reap(p)
        raise
    finally:
        parent_end.close()
