"""cgroup v2: one unified hierarchy, controllers switched on per subtree.

On a v2 host a container's cgroup is a single directory.  What makes v2 different to work with is
*delegation*: a cgroup's ``memory.max`` file only exists if the memory controller is enabled for it,
and it is enabled by listing ``memory`` in the **parent's** ``cgroup.subtree_control``.  A parent can
only enable what it has itself (its ``cgroup.controllers``), so controllers flow down the tree one
level at a time.

The **no internal processes** rule adds a constraint: a cgroup (other than the root) that enables
controllers for its children may not hold processes itself.  Processes live in the leaves.

minicontainer writes ``cgroup.subtree_control`` only in parent directories it created itself, which
hold no processes by construction.  Whether the topmost of those gets a controller at all is up to
our own cgroup's ``subtree_control``, which minicontainer never writes: if the controller is not
delegated, :meth:`CgroupV2.apply` says so and how to fix it.
"""

from __future__ import annotations

import os
import signal
import time

from minicontainer.kernel.cgroups.base import (
    CONTROLLER_OF,
    FIELDS,
    Cgroup,
    CgroupError,
    CgroupStats,
    Limits,
    base_path,
    place,
    requested,
)
from minicontainer.kernel.cgroups.devices import bpf_program
from minicontainer.kernel.cgroups.layout import UNIFIED, Layout
from minicontainer.kernel.syscalls import Syscalls

# Controllers enabled for the container whenever they are delegated, limits or not, because
# stats() reads their counters (memory.current, pids.current).  cpu.stat's usage_usec needs none.
FOR_STATS = ("memory", "pids")

DEFAULT_CPU_PERIOD = 100_000  # microseconds: the kernel's default CFS period


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2..262144, default 1024) to v2 ``cpu.weight`` (1..10000, default 100).

    The conversion the OCI runtimes agree on maps the ends of one range linearly onto the other.
    (1024 shares become weight 39, not 100: the two defaults do not line up.)
    """
    shares = max(2, min(shares, 262144))
    return 1 + ((shares - 2) * 9999) // 262142


class CgroupV2(Cgroup):
    """A container's cgroup on a pure cgroup v2 host: one directory in the unified hierarchy."""

    version = "v2"

    @classmethod
    def open(cls, sys: Syscalls, layout: Layout, cgroups_path: str) -> CgroupV2:
        """Work out the directory beneath our own cgroup.  Touches nothing."""
        cgroup_path = place(cgroups_path, layout.own_path(UNIFIED), UNIFIED)
        return cls(sys, cgroups_path, {"unified": layout.dir_of(UNIFIED, cgroup_path)},
                   {"unified": layout.dir_of(UNIFIED, base_path(cgroup_path, layout.own_path(UNIFIED)))})

    @property
    def directory(self) -> str:
        return self.paths["unified"]

    # -- limits -----------------------------------------------------------------------------------
    def apply(self, limits: Limits) -> None:
        if not self.created:
            self.create()
        self._enable_controllers(limits)
        d = self.directory

        if limits.memory_limit is not None:
            self._write(d, "memory.max", _max(limits.memory_limit), FIELDS["memory_limit"],
                        "cap the container's memory: past this the kernel reclaims, then OOM-kills")
        if limits.memory_reservation is not None:
            self._write(d, "memory.low", _max(limits.memory_reservation), FIELDS["memory_reservation"],
                        "protect this much memory from reclaim while others are over their share")
        if limits.memory_swap is not None:
            self._apply_swap(d, limits)

        if limits.cpu_shares is not None and limits.cpu_shares > 0:  # 0 means "unset" in OCI
            self._write(d, "cpu.weight", str(shares_to_weight(limits.cpu_shares)), FIELDS["cpu_shares"],
                        "relative CPU weight against sibling cgroups (from OCI shares, v1 units)")
        if limits.cpu_quota is not None or limits.cpu_period is not None:
            # cpu.max holds both numbers: one given alone keeps the other's current value (update)
            current = (self._read_text(d, "cpu.max") or "").split()
            period = limits.cpu_period or (int(current[1]) if len(current) == 2 else DEFAULT_CPU_PERIOD)
            quota = limits.cpu_quota
            if quota is None and len(current) == 2 and current[0] != "max":
                quota = int(current[0])
            value = f"{'max' if quota is None or quota < 0 else quota} {period}"
            field = FIELDS["cpu_quota" if quota is not None else "cpu_period"]
            self._write(d, "cpu.max", value, field,
                        "CPU time allowed per period, in microseconds: 'quota period'")

        if limits.cpuset_cpus is not None:
            self._write(d, "cpuset.cpus", limits.cpuset_cpus, FIELDS["cpuset_cpus"],
                        "pin the container to these CPUs")
        if limits.cpuset_mems is not None:
            self._write(d, "cpuset.mems", limits.cpuset_mems, FIELDS["cpuset_mems"],
                        "allocate the container's memory only from these NUMA nodes")

        if limits.pids_limit is not None:
            self._write(d, "pids.max", "max" if limits.pids_limit <= 0 else str(limits.pids_limit),
                        FIELDS["pids_limit"],
                        "cap the number of processes: fork() fails with EAGAIN past it (no fork bombs)")
        if limits.devices:
            # v2 has no devices files: the rules become an eBPF program the kernel runs at each open.
            program = bpf_program(list(limits.devices))
            prog_fd = self.sys.bpf_prog_load_cgroup_device(program, detail="the device rules, compiled to eBPF")
            try:
                self.sys.bpf_prog_attach_cgroup_device(d, prog_fd, detail="run it at every open and mknod "
                                                                          "in this cgroup")
            finally:
                os.close(prog_fd)  # attached, the program lives as long as the cgroup
        # v1-only settings: cgroup v2 has no file for them.  Kernel memory is counted with the rest of
        # memory on v2, so its limit is ignored as runc ignores it; the others are refused by name.
        for value, field in ((limits.memory_swappiness, "linux.resources.memory.swappiness"),
                             (limits.oom_kill_disable or None, "linux.resources.memory.disableOOMKiller"),
                             (limits.cpu_rt_runtime, "linux.resources.cpu.realtimeRuntime"),
                             (limits.cpu_rt_period, "linux.resources.cpu.realtimePeriod"),
                             ((limits.blkio_leaf_weight is not None or bool(limits.blkio_weight_devices)
                               or bool(limits.blkio_throttle)) or None, "linux.resources.blockIO"),
                             (limits.hugepage_limits or None, "linux.resources.hugepageLimits"),
                             (limits.net_class_id, "linux.resources.network.classID"),
                             (limits.net_priorities or None, "linux.resources.network.priorities")):
            if value is not None:
                raise CgroupError(f"{field}: not supported on cgroup v2 by minicontainer-runtime (it has "
                                  "a cgroup v1 file only here); remove it from config.json", field=field)

        if limits.blkio_weight is not None:
            # v1's 10..1000 onto v2's 1..10000, the conversion the OCI runtimes use
            weight = 1 + (limits.blkio_weight - 10) * 9999 // 990
            self._write(d, "io.weight", f"default {weight}", FIELDS["blkio_weight"],
                        "relative share of the disks' time against sibling cgroups")

    def _enable_controllers(self, limits: Limits) -> None:
        """Switch on, down the chain of directories we created, the controllers the limits need.

        The topmost directory we created gets what our own cgroup delegates to it (listed in its
        ``cgroup.controllers``); we may not change that.  Below it, each directory we created enables
        the controllers for the next one down, through its ``cgroup.subtree_control``.
        """
        top = self.created[0]
        try:
            available = set(self.sys.read_file(os.path.join(top, "cgroup.controllers")).split())
        except OSError:
            available = set()
        names = requested(limits)
        for name in names:
            controller = _v2_controller(name)
            if controller not in available:
                raise self._not_delegated(FIELDS[name], controller, top)
        wanted = {_v2_controller(n) for n in names} | (set(FOR_STATS) & available)
        if not wanted:
            return
        # Every directory we created except the container's own: those are the parents we own.
        parents = [d for d in self.created if d != self.directory]
        enable = " ".join(f"+{c}" for c in sorted(wanted))
        for parent in parents:
            self._write(parent, "cgroup.subtree_control", enable, FIELDS[names[0]] if names else "linux.resources",
                        "delegate controllers to the child cgroup (allowed: this cgroup holds no process)")

    def _not_delegated(self, field: str, controller: str, top: str) -> CgroupError:
        own = self.own_dirs["unified"]
        return CgroupError(
            f"{field}: the {controller} controller is not available here: this process's cgroup {own} does "
            f"not delegate it (it is missing from {top}/cgroup.controllers, because {own}/cgroup.subtree_control "
            "does not list it, and minicontainer never writes to a cgroup it did not create). Run minicontainer "
            "in a cgroup with delegated controllers, e.g. `systemd-run --scope -p Delegate=yes minicontainer ...`, "
            f"or move the daemon into a cgroup whose parent enables it (as root: `echo +{controller} > "
            "<parent>/cgroup.subtree_control`, which the no-internal-processes rule only allows once that "
            f"parent holds no processes), or remove {field} from config.json", field=field)

    def _apply_swap(self, d: str, limits: Limits) -> None:
        """OCI (like v1) counts memory *plus* swap; v2's ``memory.swap.max`` counts swap alone."""
        field = FIELDS["memory_swap"]
        swap = limits.memory_swap
        assert swap is not None
        if swap == -1:
            value = "max"
        elif limits.memory_limit is None or limits.memory_limit < 0:
            raise CgroupError(f"{field}: a swap limit needs a memory limit too (OCI's swap is memory plus "
                              "swap): set linux.resources.memory.limit", field=field)
        elif swap < limits.memory_limit:
            raise CgroupError(f"{field}: {swap} is below linux.resources.memory.limit "
                              f"({limits.memory_limit}); OCI's swap is memory plus swap, so it must be at "
                              "least the memory limit", field=field)
        else:
            value = str(swap - limits.memory_limit)
        if not os.path.exists(os.path.join(d, "memory.swap.max")):
            if value == "max":
                return  # no swap accounting: unlimited is all there is
            raise CgroupError(f"{field}: this kernel does not account swap per cgroup (no memory.swap.max): "
                              f"enable swap accounting (swapaccount=1), or remove {field} from config.json",
                              field=field)
        self._write(d, "memory.swap.max", value, field,
                    "cap the swap the container may use on top of its memory limit")

    # -- processes --------------------------------------------------------------------------------
    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """``cgroup.kill`` (Linux 5.14+) SIGKILLs the whole subtree in one go, forks in flight included."""
        knob = os.path.join(self.directory, "cgroup.kill")
        if sig == signal.SIGKILL and os.path.exists(knob):
            self.sys.write_file(knob, "1", detail="SIGKILL every process in the cgroup at once, even ones "
                                                  "being forked right now")
            return
        super().kill_all(sig)

    # -- pause ------------------------------------------------------------------------------------
    def freeze(self) -> None:
        """``cgroup.freeze`` is in every non-root v2 cgroup, no controller needed (Linux 5.2+); the
        kernel reports ``frozen 1`` in ``cgroup.events`` once every task has stopped."""
        self._write(self.directory, "cgroup.freeze", "1", "pause",
                    "freeze every process of the container where it stands: no CPU until thawed")
        deadline = time.monotonic() + 1
        while self._read_keyed(self.directory, "cgroup.events").get("frozen") != 1:
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.directory}/cgroup.events: the cgroup did not freeze within a second "
                                  "(a task stuck in the kernel, e.g. in uninterruptible I/O?); try again")
            time.sleep(0.001)

    def thaw(self) -> None:
        self._write(self.directory, "cgroup.freeze", "0", "unpause", "let the frozen processes run again")

    # -- reading ----------------------------------------------------------------------------------
    def stats(self) -> CgroupStats:
        d = self.directory
        memory_events = self._read_keyed(d, "memory.events")
        cpu = self._read_keyed(d, "cpu.stat")  # usage, user and system time need no controller
        memory_stat = self._read_keyed(d, "memory.stat")
        return CgroupStats(
            memory_usage=self._read_int(d, "memory.current"),
            memory_max_usage=self._read_int(d, "memory.peak"),  # Linux 5.19+
            oom_kills=memory_events.get("oom_kill"),
            cpu_usage_usec=cpu.get("usage_usec"),
            pids_current=self._read_int(d, "pids.current"),
            cpu_user_usec=cpu.get("user_usec"),
            cpu_system_usec=cpu.get("system_usec"),
            cpu_periods=cpu.get("nr_periods"),  # these three only with the cpu controller
            cpu_throttled_periods=cpu.get("nr_throttled"),
            cpu_throttled_usec=cpu.get("throttled_usec"),
            memory_limit=self._read_int(d, "memory.max"),
            memory_failcnt=memory_events.get("max"),
            memory_detail=memory_stat or None,
            pids_limit=self._read_int(d, "pids.max"),
            io_bytes=self._read_io(d, "io.stat", keyed=True),
        )


def _v2_controller(limit: str) -> str:
    """The controller a limit needs, by its v2 name (v1's blkio is v2's io)."""
    controller = CONTROLLER_OF[limit]
    return "io" if controller == "blkio" else controller


def _max(value: int) -> str:
    """v2 writes "unlimited" as the word ``max``; OCI as -1."""
    return "max" if value < 0 else str(value)
