"""``docker top``: the processes of a container, as the host's ``ps -ef`` shows them.

Which processes are the container's?  Those in its cgroup (``cgroup.procs``): every process it
started, whatever namespaces they joined since.  Their columns are read from the host's
``/proc/PID/stat`` and ``cmdline``, so the PIDs are the host's, not the ones inside the container's
PID namespace: Docker's ``top`` shows the host's too (it runs ``ps`` on the host).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from minicontainer.engine.errors import Conflict
from minicontainer.runtime import lifecycle


class ContainerProcesses:
    """``GET /containers/{id}/top``, for :class:`~minicontainer.engine.service.Engine` (which inherits this)."""

    runtime_root: str
    sys: Any
    get: Callable

    def top(self, cid: str, ps_args: str | None = None) -> dict:
        container = self.get(cid)
        if not container.running:
            raise Conflict(f"Container {container.id} is not running")
        from minicontainer.kernel.cgroups import cgroup_from_state

        state = lifecycle.State.load(self.runtime_root, container.id[:12])
        pids = sorted(cgroup_from_state(self.sys, state.cgroup).pids())
        rows = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            stat_fields = stat[stat.rindex(")") + 2:].split()  # stat_fields[0] is stat(5)'s field 3, "state"
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(stat_fields[11]) + int(stat_fields[12])) // ticks
            started = _boot_time() + int(stat_fields[19]) / ticks  # field 22: start time, in ticks since boot
            rows.append([_user_name(uid), str(pid), stat_fields[1], "0", time.strftime("%H:%M", time.localtime(started)),
                         "?", time.strftime("%H:%M:%S", time.gmtime(cpu)),
                         cmd or stat[stat.index("(") + 1:stat.rindex(")")]])
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows}


def _boot_time() -> float:
    """When the machine booted (``btime`` in /proc/stat), in seconds since the epoch."""
    with open("/proc/stat") as f:
        return float(next(line.split()[1] for line in f if line.startswith("btime ")))


def _user_name(uid: int) -> str:
    """As ``ps -ef`` on the host shows it (Docker runs exactly that for ``top``)."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
