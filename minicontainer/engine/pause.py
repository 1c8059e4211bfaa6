"""``docker pause`` / ``unpause`` / ``update``: changing a container while it runs, through its cgroup.

**Pause** is the cgroup *freezer*: the kernel stops every task of the cgroup at its next return to
user space and keeps it off the CPU until thawed.  Nothing in the container can notice or resist
(unlike SIGSTOP, which a process sees, and which its parent is told about).  v1 writes ``FROZEN``
into ``freezer.state``; v2 writes ``1`` into ``cgroup.freeze``.

A frozen task does not act on signals either.  So, as dockerd does, a paused container's *stop
signal* or SIGKILL is sent and then the container is thawed, for the signal to land; any other
signal waits in the queue until ``unpause``.

**Update** writes new limits into the running cgroup (:meth:`Cgroup.update`); the kernel enforces
them at once.  The container's HostConfig records them too, so its next start applies the same.
"""

from __future__ import annotations

import signal
from typing import Any

from minicontainer.engine import resources, restart
from minicontainer.engine.errors import Conflict, EngineError, InvalidParameter
from minicontainer.kernel.cgroups import CgroupError
from minicontainer.kernel.syscalls import Syscalls


class NotPaused(EngineError):
    """dockerd answers an unpause of a container that is not paused with a 500."""

    status = 500


def pause(engine: Any, container: Any) -> None:
    if not container.running:
        raise Conflict(f"Container {container.id} is not running")
    if container.state.get("Paused"):
        raise Conflict(f"Container {container.id} is already paused")
    sys = Syscalls()
    try:
        engine.meter.cgroup(container, sys).freeze()
    except CgroupError as e:
        raise EngineError(f"cannot pause container {container.id}: {e}") from None
    finally:
        engine._record(container, sys)
    container.state.update({"Status": "paused", "Paused": True})
    container.save()
    engine.event_log.container(container, "pause")


def unpause(engine: Any, container: Any) -> None:
    if not container.state.get("Paused"):
        raise NotPaused(f"Container {container.id} is not paused")
    sys = Syscalls()
    try:
        _thaw(engine, container, sys)
    finally:
        engine._record(container, sys)


def _thaw(engine: Any, container: Any, sys: Syscalls) -> None:
    try:
        engine.meter.cgroup(container, sys).thaw()
    except CgroupError as e:
        raise EngineError(f"cannot unpause container {container.id}: {e}") from None
    container.state.update({"Status": "running", "Paused": False})
    container.save()
    engine.event_log.container(container, "unpause")


def after_signal(engine: Any, container: Any, sig: int, sys: Syscalls) -> None:
    """A signal was sent to a paused container: thaw it if the signal is meant to end it."""
    if not container.state.get("Paused") or not container.running:
        return
    from minicontainer.engine.service import signal_number

    stop_signal = signal_number(container.record["Config"].get("StopSignal"), signal.SIGTERM)
    if sig in (signal.SIGKILL, stop_signal):
        _thaw(engine, container, sys)


def update(engine: Any, container: Any, body: dict) -> dict:
    """``POST /containers/{id}/update``: validate, change the live cgroup, then record."""
    host = container.record["HostConfig"]
    policy = restart.updated_policy(host, body)  # --restart: applies from the next exit
    fields, changes = resources.update(host, body)
    if container.running and changes.changes():
        sys = Syscalls()
        try:
            engine.meter.update(container, changes, sys)
        except CgroupError as e:
            raise InvalidParameter(f"Cannot update container {container.id}: {e}") from None
        finally:
            engine._record(container, sys)
    host.update(fields)
    if policy is not None:
        host["RestartPolicy"] = policy
    container.save()
    engine.event_log.container(container, "update")
    return {"Warnings": []}
