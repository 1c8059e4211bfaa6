"""The child side of ``exec``: a new process *joins* a running container, and becomes a program in it.

runc calls this ``setns_init_linux.go`` (and the joining half of ``nsexec.c``).  ``create`` builds a
container's world; ``exec`` only walks into it, so there is no root filesystem to build here, no
hostname to set: init did all that, and its namespaces keep it.  What a newcomer needs is

1. the container's **cgroup** (its limits and accounting apply to the newcomer too);
2. each of init's **namespaces**, by ``setns(2)`` on ``/proc/<init>/ns/<kind>``: the user namespace
   first (joining the others needs privilege in the one that owns them), the mount namespace last
   (after it, ``/proc`` is the container's, where init's host PID means nothing);
3. a **fork**: ``setns`` into a PID namespace, like ``unshare(CLONE_NEWPID)``, only changes where the
   caller's *children* go.  The child is a process of the container (``ps`` inside shows it);
4. the container's **process settings**, exactly as init applies them (the same function,
   :func:`minicontainer.runtime.init.become_the_process`): rlimits, cwd, user, groups, capabilities, a session of its
   own, no_new_privs, and a terminal from the container's own ``/dev/ptmx`` if asked; then ``execve``.

The messages to the parent (``exec-pid``, ``console``, ``ready``, ``error``) are tabled in
:mod:`minicontainer.runtime.sync`.  As in init.py, nothing here returns: each process leaves by
``os._exit`` or ``execve``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

from minicontainer.kernel.namespaces import BY_OCI
from minicontainer.kernel.syscalls import PR_SET_DUMPABLE, Syscalls
from minicontainer.observe.events import Trace
from minicontainer.runtime import sync
from minicontainer.runtime.init import _report_and_exit, become_the_process, exec_program, fail

if TYPE_CHECKING:
    from minicontainer.kernel.cgroups.base import Cgroup
    from minicontainer.runtime.bundle import Spec

# The order namespaces are joined in.  user first: it owns the others, and joining one needs
# CAP_SYS_ADMIN in its owner.  mount last: it changes what paths mean, /proc included.
JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount")


def exec_stage(spec: Spec, init_pid: int, chan: sync.Channel, cgroup: Cgroup) -> NoReturn:
    """Join the container (cgroup, then namespaces), fork the process that will be the program."""
    trace = Trace(side="exec-stage")
    sys = Syscalls(trace)
    try:
        # The cgroup before the namespaces: its files are on the host's /sys/fs/cgroup, out of sight
        # once the mount namespace is the container's.
        cgroup.join_self(sys)
        kinds = {ns.type for ns in spec.namespaces}
        for kind in (k for k in JOIN_ORDER if k in kinds):
            ns = BY_OCI[kind]
            sys.setns(f"/proc/{init_pid}/ns/{ns.proc}", ns.flag,
                      detail=f"join the container's {kind} namespace (init's, PID {init_pid})")
        pid = sys.fork(detail="the exec'd process: forked after setns(pid), so it is in the container's "
                              "PID namespace")
        if pid == 0:
            exec_process(spec, chan, trace)
        chan.send_events(sync.EXEC_PID, trace.events, pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        _report_and_exit(chan, trace, e)


def exec_process(spec: Spec, chan: sync.Channel, trace: Trace) -> NoReturn:
    """Inside every namespace of the container: become its ``spec.process`` and exec it."""
    trace.events = []  # what the stage recorded before the fork is the stage's to report
    trace.side = "exec"
    sys = Syscalls(trace)
    ready = False
    try:
        # Not dumpable while it is still a copy of the runtime: a process of the container must not
        # read its memory through /proc (execve makes it dumpable again).
        sys.prctl(PR_SET_DUMPABLE, 0)
        # The same steps as init's last ones (rlimits, cwd, identity, capabilities, session, no_new_privs,
        # terminal), and whatever init gains there later (the container's seccomp filter, which runc
        # applies to exec'd processes as well).
        program = become_the_process(sys, spec, chan)
        chan.send_events(sync.READY, trace.events)
        ready = True
        chan.close()
        exec_program(sys, spec, program)
    except BaseException as e:  # noqa: BLE001
        fail(chan, trace, e, ready=ready)
