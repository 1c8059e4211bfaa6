"""The handshake between the runtime (parent side) and the container's first processes (child side).

Three processes take part in ``create``::

    parent   minicontainer-runtime create       parent.py
      │ fork
      ▼
    stage1   joins/creates the namespaces       init.py: stage1()
      │ fork (lands in the new PID namespace)
      ▼
    init     PID 1: root filesystem, then exec  init.py: container_init()

Why two children?  ``unshare(CLONE_NEWPID)`` does not move the caller into the new PID namespace,
only the children it forks afterwards; and a user namespace must exist before the namespaces it
should own are made.  So stage1 makes the namespaces and forks init, which is PID 1 inside them.

They talk over one ``socketpair(AF_UNIX, SOCK_SEQPACKET)``: one JSON object per message, and message
boundaries kept by the kernel.

Before any message, stage1 moves itself into the container's cgroup (``kernel/cgroups``): on v1
by writing ``0`` into each hierarchy's ``tasks`` file, a thread moving itself, which the kernel does
without its global fork/exit lock and the RCU grace period that lock waits for (5-20 ms, more than
the rest of ``create``); on v2 into ``cgroup.procs``.  The messages, in the order they happen:

====  ========  ========  ===================  ================================================================
step  from      to        type                 meaning
====  ========  ========  ===================  ================================================================
1     stage1    parent    ``userns-created``   (only with a new user namespace) stage1 did
                                               ``unshare(CLONE_NEWUSER)``: the parent writes
                                               /proc/PID/uid_map and gid_map, which only a process outside
                                               the namespace with privilege over the host ids may do.
2     parent    stage1    ``userns-mapped``    the maps are written; stage1 becomes root of its namespace.
3     stage1    parent    ``init-pid``         ``{"pid": N}``: init's PID as the host sees it; stage1 exits.
3t    init      parent    ``console``          (only with ``process.terminal``) the master side of the
                                               pseudo-terminal init made from the container's own
                                               ``/dev/ptmx``, passed as a file descriptor (SCM_RIGHTS):
                                               what the program writes to its terminal is read there.
3h    init      parent    ``hooks``            (only with prestart/createRuntime hooks) namespaces are made,
                                               pivot_root not yet done: the parent runs those hooks.
3h'   parent    init      ``hooks-done``       they succeeded; init runs createContainer hooks, goes on.
4     init      parent    ``ready``            the root filesystem is in place, the program was found, and
                                               init is blocked opening ``exec.fifo``.  ``create`` is done.
4'    any child parent    ``error``            ``{"verb", "path", "errno", "message", "hint", "exit_code"}``:
                                               setup failed (joining the cgroup included); the parent
                                               reports it and cleans up.
====  ========  ========  ===================  ================================================================

``exec`` (:mod:`minicontainer.runtime.exec`) runs one more process in a running container.  It
makes nothing new; it joins what init made.  Two processes again, for the same reason as above: a
process cannot move itself into a PID namespace, only its future children::

    parent   minicontainer-runtime exec         exec.py
      │ fork
      ▼
    exec stage  joins the cgroup, then setns() into each of init's namespaces   setns_init.py
      │ fork (lands in the container's PID namespace)
      ▼
    the exec'd process: limits, identity, capabilities, then execve            setns_init.py

====  ==========  ========  ===================  ================================================================
step  from        to        type                 meaning
====  ==========  ========  ===================  ================================================================
e1    exec stage  parent    ``exec-pid``         ``{"pid": N}``: the exec'd process's PID as the host sees it;
                                                 the stage exits.
e1t   exec'd      parent    ``console``          (only with ``process.terminal``) as 3t: a terminal made from
                                                 the container's ``/dev/ptmx``, its master side passed back.
e2    exec'd      parent    ``ready``            the process is set up and about to ``execve``: there is no
                                                 fifo to wait on, it goes at once.
e2'   either      parent    ``error``            as 4'.
====  ==========  ========  ===================  ================================================================

Steps 3 and 4 (and e1 and e2) come from two processes over one socket: on a busy machine init's ``ready`` can
arrive before stage1's ``init-pid``, and the parent accepts them in either order.

``ready``, ``error`` and ``init-pid`` carry ``events``: the kernel steps that child recorded, which
the parent adds to its own trace (one timeline for ``--explain``).

Later, ``start`` (another process) opens ``exec.fifo`` for reading.  That unblocks init's open for
writing; init writes one byte and calls ``execve``.  The fifo is runc's trick: it lets init wait for
``start`` even after the ``create`` process has exited.

If a child dies without sending ``ready`` or ``error``, the parent sees end-of-file on the socket:
that is reported too, never waited on forever.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from minicontainer.observe.events import Event
from minicontainer.runtime.errors import RuntimeFailure

CONSOLE = "console"
USERNS_CREATED = "userns-created"
USERNS_MAPPED = "userns-mapped"
INIT_PID = "init-pid"
EXEC_PID = "exec-pid"
READY = "ready"
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
ERROR = "error"

_MAX_MESSAGE = 1 << 20


class SyncError(RuntimeFailure):
    """The other side broke the protocol or died."""


class Channel:
    """One end of the sync socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        """(parent end, child end)."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return Channel(a), Channel(b)

    def send(self, kind: str, **fields: Any) -> None:
        self.sock.send(json.dumps({"type": kind, **fields}).encode())

    def send_fd(self, kind: str, fd: int, **fields: Any) -> None:
        """A message carrying a file descriptor: the kernel gives the receiver its own copy of it."""
        socket.send_fds(self.sock, [json.dumps({"type": kind, **fields}).encode()], [fd])

    def send_events(self, kind: str, events: list[Event], **fields: Any) -> None:
        self.send(kind, events=[ev._asdict() for ev in events], **fields)

    def recv(self, *expected: str) -> dict[str, Any]:
        """The next message, which must be one of ``expected`` or ``error``.  File descriptors sent
        with it (``console``) are in ``msg["fds"]``."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 1)
        if not data:
            raise SyncError(f"the container's setup process exited without a word (waiting for "
                            f"{' or '.join(expected)})")
        msg = json.loads(data)
        msg["fds"] = list(fds)
        for fd in fds:
            os.set_inheritable(fd, False)  # recv_fds does not set close-on-exec
        if msg.get("type") not in expected or msg.get("type") == ERROR:
            for fd in fds:  # nobody will take them
                os.close(fd)
            msg["fds"] = []
        if msg.get("type") not in expected and msg.get("type") != ERROR:
            raise SyncError(f"expected {' or '.join(expected)}, got {msg.get('type')!r}")
        return msg

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()
