"""Restart policies: what the engine does when a container's program ends by itself (``--restart``).

Docker's four policies (``HostConfig.RestartPolicy``, ``{"Name": ..., "MaximumRetryCount": N}``)::

    no               never (the default)
    on-failure[:N]   when the program exits with a code other than 0; at most N times (0: no limit)
    always           whatever the exit code
    unless-stopped   as always, but not once the user has stopped the container

*By itself* is the point: ``docker stop`` and ``docker kill`` are the user's decision, and no policy
restarts a container after them, until the user starts it again (``RestartCount`` then starts from
0).  The daemon's own stop when it shuts down is not the user's: when it starts again it starts the
``always`` and ``unless-stopped`` containers again (an ``always`` one even if the user had stopped
it; ``on-failure`` ones stay down: Docker's rules).

A program that fails at once must not keep the machine busy restarting it: the first restart comes
100 ms after the exit, and each next one waits twice as long as the one before (200 ms, 400 ms...,
at most a minute), unless the container ran for 10 s or more, which starts the count again from
100 ms.  While it waits, the container is *restarting*: ``State.Restarting`` is true (and
``State.Running`` too, as Docker says, so that ``rm`` refuses it without ``-f``), ``ps`` lists it
as ``Restarting (1) 2 seconds ago``, and each restart is a ``start`` event then a ``restart`` one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from minicontainer.engine.errors import Conflict, InvalidParameter
from minicontainer.units import parse_time

log = logging.getLogger(__name__)

POLICIES = ("no", "always", "on-failure", "unless-stopped")
FIRST_DELAY = 0.1  # seconds before the first restart
MAX_DELAY = 60.0  # the longest wait between two restarts
RESET_AFTER = 10.0  # a container that ran this long before it exited starts from FIRST_DELAY again
STOPPED_BY_USER = "stopped-by-user"  # a file in the container's directory: the user stopped it


def check(host: dict) -> None:
    """dockerd's checks of a RestartPolicy, in its words (at create and at update)."""
    policy = host.get("RestartPolicy") or {}
    name, retries = policy.get("Name") or "", policy.get("MaximumRetryCount") or 0
    if name in ("always", "unless-stopped", "no") and retries:
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used with 'on-failure'"
                               + (" and cannot be negative" if retries < 0 else ""))
    if name == "on-failure" and retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if name not in ("", *POLICIES):
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                               "'on-failure', or 'unless-stopped'")
    if host.get("AutoRemove") and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def policy_of(host: dict) -> tuple[str, int]:
    """The container's policy: its name ("no" when unset) and its maximum retry count."""
    policy = host.get("RestartPolicy") or {}
    return policy.get("Name") or "no", int(policy.get("MaximumRetryCount") or 0)


def should_restart(name: str, max_retries: int, exit_code: int, restart_count: int, stopped_by_user: bool) -> bool:
    """Does this exit call for a restart?  (moby's restartmanager.ShouldRestart.)"""
    if stopped_by_user or name == "no":
        return False
    if name == "on-failure":
        return exit_code != 0 and (max_retries == 0 or restart_count < max_retries)
    return name in ("always", "unless-stopped")


def next_delay(previous: float, ran: float) -> float:
    """The back-off: twice the previous wait, from FIRST_DELAY, at most MAX_DELAY; a container that
    ran RESET_AFTER seconds or more before this exit starts again from FIRST_DELAY."""
    if not previous or ran >= RESET_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


class Restarts:
    """The engine's restart manager: the exits it answers with a start, and the waits in between."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.delays: dict[str, float] = {}  # container ID -> its last wait (the back-off's state)
        self.pending: dict[str, asyncio.TimerHandle] = {}  # container ID -> its restart, waiting
        self.closing = False  # the daemon stops its containers: not the user's stop, and no restart

    @staticmethod
    def _marker(container: Any) -> str:
        return container.path(STOPPED_BY_USER)

    # --- what the user does -------------------------------------------------------------------------
    def started_by_user(self, container: Any) -> None:
        """``docker start`` (and ``restart``): the policy applies again, counted from 0."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._marker(container))
        self.delays.pop(container.id, None)
        container.record["RestartCount"] = 0

    def stopped_by_user(self, container: Any) -> bool:
        """``docker stop`` or ``kill`` (before the signal, so that the exit it causes is known as the
        user's).  True if the container was only waiting to restart: it stays exited, nothing to signal."""
        if not self.closing:
            with open(self._marker(container), "w"):
                pass
        return self.cancel(container)

    def cancel(self, container: Any) -> bool:
        """No restart for this container after all (stop, kill, rm -f): True if one was waiting."""
        handle = self.pending.pop(container.id, None)
        if handle is None:
            return False
        handle.cancel()
        self.delays.pop(container.id, None)
        container.state.update({"Status": "exited", "Running": False, "Restarting": False})
        container.save()
        return True

    def refuse_removal(self, container: Any, force: bool) -> None:
        """``rm`` of a container waiting to restart: refused as a running one is, unless ``-f``."""
        if container.id in self.pending:
            if not force:
                raise Conflict(f"You cannot remove a restarting container {container.id}. Stop the container "
                               "before attempting removal or force remove")
            self.cancel(container)

    # --- what the container does ----------------------------------------------------------------------
    def exited(self, container: Any) -> None:
        """The container's program has ended (its die event is out): restart it later, or not."""
        name, max_retries = policy_of(container.record["HostConfig"])
        state = container.state
        if self.closing or not should_restart(name, max_retries, state["ExitCode"], container.record["RestartCount"],
                                              os.path.exists(self._marker(container))):
            self.delays.pop(container.id, None)
            return
        ran = parse_time(state["FinishedAt"]) - parse_time(state["StartedAt"])
        delay = self.delays[container.id] = next_delay(self.delays.get(container.id, 0.0), ran)
        state.update({"Status": "restarting", "Running": True, "Restarting": True})
        container.save()
        loop = asyncio.get_running_loop()
        self.pending[container.id] = loop.call_later(delay, lambda: loop.create_task(self._restart(container)))

    async def _restart(self, container: Any) -> None:
        if self.pending.pop(container.id, None) is None or container.id not in self.engine.containers:
            return
        container.record["RestartCount"] += 1
        container.state.update({"Running": False, "Restarting": False})
        try:
            await self.engine.start(container.id, by_user=False)
        except Exception as e:  # noqa: BLE001 - it stays exited, saying why, as dockerd leaves it
            log.warning("container %s: restart %d failed: %s", container.id[:12], container.record["RestartCount"], e)
            container.state.update({"Status": "exited", "Error": f"restart failed: {e}"})
            container.save()
            return
        self.engine.event_log.container(container, "restart")

    # --- the daemon's start and stop ---------------------------------------------------------------------
    async def daemon_started(self) -> None:
        """Start again what the daemon's last stop stopped: ``always`` containers, and ``unless-stopped``
        ones the user had not stopped."""
        for container in list(self.engine.containers.values()):
            if container.running or container.id in self.pending or container.state["Status"] == "created":
                continue
            name, _ = policy_of(container.record["HostConfig"])
            if name == "always" or (name == "unless-stopped" and not os.path.exists(self._marker(container))):
                try:
                    await self.engine.start(container.id)
                except Exception as e:  # noqa: BLE001 - one container that cannot start stops no other
                    log.warning("container %s (restart policy %s): not started again: %s", container.id[:12], name, e)

    def daemon_stopping(self) -> None:
        """The daemon stops: its stops are not the user's, and the waits end (the containers are
        started again, by policy, when it starts again)."""
        self.closing = True
        for container in [self.engine.containers[cid] for cid in self.pending if cid in self.engine.containers]:
            self.cancel(container)


def updated_policy(host: dict, body: dict) -> dict | None:
    """``docker update --restart``: the new policy (checked as at create), or None when the body
    leaves it unchanged (the docker CLI sends an empty one without the flag)."""
    policy = body.get("RestartPolicy") or {}
    if not policy.get("Name"):
        return None
    if host.get("AutoRemove") and policy["Name"] != "no":
        raise InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
    check({"RestartPolicy": policy})
    return {"Name": policy["Name"], "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
