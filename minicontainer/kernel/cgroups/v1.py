"""cgroup v1: one hierarchy per controller, so one container cgroup is several directories.

On a v1 (or hybrid) host the memory controller has its own tree at ``/sys/fs/cgroup/memory``, the
pids controller its own at ``/sys/fs/cgroup/pids``, and so on.  A container's cgroup is therefore a
directory *in each hierarchy it uses*, and its process must be written into every one of them.
Each hierarchy also has its own idea of where this process is (``/proc/self/cgroup`` has a line per
hierarchy), so the directories can sit at different depths.

Which hierarchies: ``memory``, ``cpu``, ``cpuacct``, ``pids`` and ``blkio`` always (when mounted),
since their counters feed ``stats()`` and their limits are the common ones, and ``freezer``, which
``pause`` needs for processes that are already in it; ``cpuset`` only when the container
asks for CPU or memory-node pinning, because a new v1 cpuset cgroup starts with *no* CPUs and *no*
memory nodes and cannot hold a process until they are filled in.
"""

from __future__ import annotations

import os

from minicontainer.kernel.cgroups.base import (
    FIELDS,
    Cgroup,
    CgroupError,
    CgroupStats,
    Limits,
    base_path,
    place,
)
from minicontainer.kernel.cgroups.layout import Layout
from minicontainer.kernel.syscalls import Syscalls

# Hierarchies the container's cgroup is always created in (those this host mounts).
ALWAYS = ("memory", "cpu", "cpuacct", "pids", "blkio", "freezer")
# Hierarchies created only when a limit needs them.
ON_DEMAND = ("cpuset", "devices", "hugetlb", "net_cls", "net_prio")


class CgroupV1(Cgroup):
    """A container's cgroup on a v1 or hybrid host: one directory per controller hierarchy."""

    version = "v1"

    def __init__(self, sys: Syscalls, cgroups_path: str, paths: dict[str, str], own_dirs: dict[str, str],
                 created: list[str] | None = None, planned: dict[str, str] | None = None) -> None:
        super().__init__(sys, cgroups_path, paths, own_dirs, created)
        # controller -> where the container's directory goes in every hierarchy we *may* use,
        # including the on-demand ones not (yet) in ``paths``.
        self.planned = dict(planned if planned is not None else paths)

    @classmethod
    def open(cls, sys: Syscalls, layout: Layout, cgroups_path: str) -> CgroupV1:
        """Work out the directories, one per hierarchy, beneath our own cgroup there.  Touches nothing."""
        planned: dict[str, str] = {}
        own_dirs: dict[str, str] = {}
        for controller in ALWAYS + ON_DEMAND:
            if controller not in layout.v1:
                continue  # not mounted on this host: a limit needing it will say so in apply()
            cgroup_path = place(cgroups_path, layout.own_path(controller), controller)
            planned[controller] = layout.dir_of(controller, cgroup_path)
            own_dirs[controller] = layout.dir_of(controller, base_path(cgroup_path, layout.own_path(controller)))
        if not planned:
            raise CgroupError("no cgroup v1 hierarchy for memory, cpu, cpuacct, pids or cpuset is mounted: "
                              "mount them under /sys/fs/cgroup (or boot with cgroup v2)")
        paths = {c: planned[c] for c in ALWAYS if c in planned}
        return cls(sys, cgroups_path, paths, own_dirs, planned=planned)

    def to_state(self) -> dict:
        return {**super().to_state(), "planned": dict(self.planned)}

    def join_self(self, sys: Syscalls | None = None) -> None:
        """Move the calling thread into the cgroup through each hierarchy's ``tasks`` file.

        Why ``tasks`` and not ``cgroup.procs``: moving a whole process makes the kernel take a global
        lock (``cgroup_threadgroup_rwsem``) against every fork and exit on the machine, and taking it
        for writing waits for an RCU grace period: 5-20 ms here, the biggest single cost of starting a
        container.  A thread that moves *itself* cannot exit or exec meanwhile, so the kernel skips
        that lock (``cgroup_procs_write_start``).  The caller must be single-threaded, as a freshly
        forked process is: then its one thread is the whole process.  (runc moves the process from
        outside, and pays the wait.)"""
        sys = sys or self.sys
        for directory in self._unique_dirs():
            sys.write_file(os.path.join(directory, "tasks"), "0",
                           detail="move this (single-threaded) process into the container's cgroup, as a "
                                  "thread moving itself: no global lock, no RCU wait")

    # -- creating ---------------------------------------------------------------------------------
    def _create_dir(self, key: str) -> list[str]:
        made = super()._create_dir(key)
        if key == "cpuset":
            self._fill_cpuset(made)
        return made

    def _fill_cpuset(self, made: list[str]) -> None:
        """Copy the parent's CPUs and memory nodes into each new cpuset cgroup, top down.

        A new v1 cpuset cgroup has empty ``cpuset.cpus`` and ``cpuset.mems``; writing a process into
        it fails with ENOSPC until both are set.  (v2 fixed this: an empty value there means "inherit".)
        """
        for directory in made:
            parent = os.path.dirname(directory)
            for knob in ("cpuset.cpus", "cpuset.mems"):
                value = self.sys.read_file(os.path.join(parent, knob)).strip()
                self.sys.write_file(os.path.join(directory, knob), value,
                                    detail="a new v1 cpuset starts empty and cannot hold a process: "
                                           "start from the parent's set")

    def _use(self, controller: str, field: str) -> str:
        """The container's directory in ``controller``'s hierarchy, created now if it was on demand."""
        if controller not in self.planned:
            raise CgroupError(
                f"{field}: the {controller} controller is not available here (no cgroup v1 hierarchy carries "
                f"it: check /proc/cgroups, mount it with `mount -t cgroup -o {controller} cgroup "
                f"/sys/fs/cgroup/{controller}`, or remove {field} from config.json)", field=field)
        if controller not in self.paths:
            self.paths[controller] = self.planned[controller]
            if self.created:  # the cgroup exists already: add this hierarchy to it now
                existing = self.pids()
                self._create_dir(controller)
                for pid in existing:  # processes already in the container belong here too
                    self.sys.write_file(os.path.join(self.paths[controller], "cgroup.procs"), str(pid),
                                        detail=f"put the container's process in its new {controller} cgroup")
        return self.paths[controller]

    # -- limits -----------------------------------------------------------------------------------
    def apply(self, limits: Limits) -> None:
        if not self.created:
            self.create()

        if limits.needs_memory():
            first = next(n for n in ("memory_limit", "memory_reservation", "memory_swap")
                         if getattr(limits, n) is not None)
            d = self._use("memory", FIELDS[first])
            # memory.memsw.limit_in_bytes may never be below memory.limit_in_bytes: when the new
            # memory+swap is above the current memory limit (raising both, in an update), it goes first.
            swap_first = limits.memory_swap is not None and limits.memory_limit is not None and (
                limits.memory_swap == -1 or (self._read_int(d, "memory.limit_in_bytes") or 0) < limits.memory_swap)
            if swap_first:
                self._apply_swap(d, limits.memory_swap)
            if limits.memory_limit is not None:
                self._write(d, "memory.limit_in_bytes", str(limits.memory_limit), FIELDS["memory_limit"],
                            "cap the container's memory: past this the kernel reclaims, then OOM-kills")
            if limits.memory_reservation is not None:
                self._write(d, "memory.soft_limit_in_bytes", str(limits.memory_reservation),
                            FIELDS["memory_reservation"],
                            "soft limit: under memory pressure the kernel reclaims down to this first")
            if limits.memory_swap is not None and not swap_first:
                self._apply_swap(d, limits.memory_swap)

        if limits.needs_cpu():
            first = next(n for n in ("cpu_shares", "cpu_quota", "cpu_period") if getattr(limits, n) is not None)
            d = self._use("cpu", FIELDS[first])
            if limits.cpu_shares is not None:
                self._write(d, "cpu.shares", str(limits.cpu_shares), FIELDS["cpu_shares"],
                            "relative CPU weight against sibling cgroups when the CPU is contended")
            # The period goes first: the kernel checks each new quota against the current period.
            if limits.cpu_period is not None:
                self._write(d, "cpu.cfs_period_us", str(limits.cpu_period), FIELDS["cpu_period"],
                            "length of the CPU accounting window, in microseconds")
            if limits.cpu_quota is not None:
                self._write(d, "cpu.cfs_quota_us", str(limits.cpu_quota), FIELDS["cpu_quota"],
                            "CPU time allowed per window; once used, the cgroup waits for the next one")

        if limits.needs_cpuset():
            first = "cpuset_cpus" if limits.cpuset_cpus is not None else "cpuset_mems"
            d = self._use("cpuset", FIELDS[first])
            if limits.cpuset_cpus is not None:
                self._write(d, "cpuset.cpus", limits.cpuset_cpus, FIELDS["cpuset_cpus"],
                            "pin the container to these CPUs")
            if limits.cpuset_mems is not None:
                self._write(d, "cpuset.mems", limits.cpuset_mems, FIELDS["cpuset_mems"],
                            "allocate the container's memory only from these NUMA nodes")

        if limits.pids_limit is not None:
            d = self._use("pids", FIELDS["pids_limit"])
            value = "max" if limits.pids_limit <= 0 else str(limits.pids_limit)
            self._write(d, "pids.max", value, FIELDS["pids_limit"],
                        "cap the number of processes: fork() fails with EAGAIN past it (no fork bombs)")
        self._apply_devices(limits)
        self._apply_less_common(limits)

    def _apply_devices(self, limits: Limits) -> None:
        """Each rule, in order, one line into ``devices.allow`` or ``devices.deny``: the kernel's own
        list then means what the config means (the last matching rule decides)."""
        if not limits.devices:
            return
        field = "linux.resources.devices"
        d = self._use("devices", field)
        for rule in limits.devices:
            knob = "devices.allow" if rule.allow else "devices.deny"
            self._write(d, knob, rule.v1_line(), field,
                        "allow these devices to be opened or made" if rule.allow else "deny these devices")

    def _apply_less_common(self, limits: Limits) -> None:
        """OCI's other v1 knobs: kernel memory, swappiness, the OOM killer, real-time CPU time, block
        I/O weights and throttles, huge pages, network class and priorities.  One file each."""
        memory = "linux.resources.memory"
        if limits.memory_kernel is not None or limits.memory_kernel_tcp is not None:
            d = self._use("memory", memory + ".kernel")
            for value, knob in ((limits.memory_kernel, "memory.kmem.limit_in_bytes"),
                                (limits.memory_kernel_tcp, "memory.kmem.tcp.limit_in_bytes")):
                # Kernel memory accounting went in Linux 5.16 (cgroup v1 only ever had it): where the
                # file is gone, the limit is ignored, as runc ignores it.
                if value is not None and os.path.exists(os.path.join(d, knob)):
                    self._write(d, knob, str(value), memory + ".kernel", "cap the kernel memory the container uses")
        if limits.memory_swappiness is not None:
            d = self._use("memory", memory + ".swappiness")
            self._write(d, "memory.swappiness", str(limits.memory_swappiness), memory + ".swappiness",
                        "how readily this cgroup's memory is swapped out (0..100)")
        if limits.oom_kill_disable:
            d = self._use("memory", memory + ".disableOOMKiller")
            self._write(d, "memory.oom_control", "1", memory + ".disableOOMKiller",
                        "at the limit, processes wait for memory instead of being killed")
        for value, knob, key in ((limits.cpu_rt_period, "cpu.rt_period_us", "realtimePeriod"),
                                 (limits.cpu_rt_runtime, "cpu.rt_runtime_us", "realtimeRuntime")):
            if value is not None:
                field = f"linux.resources.cpu.{key}"
                self._write(self._use("cpu", field), knob, str(value), field, "real-time CPU time per period")
        if limits.needs_blkio():
            field = "linux.resources.blockIO"
            d = self._use("blkio", field)
            # (blkio.weight itself below: this kernel may name it blkio.bfq.weight)
            writes = [("blkio.leaf_weight", limits.blkio_leaf_weight)]
            for major, minor, weight, leaf in limits.blkio_weight_devices:
                writes += [("blkio.weight_device", None if weight is None else f"{major}:{minor} {weight}"),
                           ("blkio.leaf_weight_device", None if leaf is None else f"{major}:{minor} {leaf}")]
            writes += [(f"blkio.throttle.{knob}", f"{major}:{minor} {rate}")
                       for knob, major, minor, rate in limits.blkio_throttle]
            for knob, value in writes:
                if value is not None:
                    self._write(d, knob, str(value), field, "block I/O weight or throttle")
        for size, limit in limits.hugepage_limits:
            field = "linux.resources.hugepageLimits"
            self._write(self._use("hugetlb", field), f"hugetlb.{size}.limit_in_bytes", str(limit), field,
                        f"cap the container's {size} huge pages")
        if limits.net_class_id is not None:
            field = "linux.resources.network.classID"
            self._write(self._use("net_cls", field), "net_cls.classid", str(limits.net_class_id), field,
                        "tag the container's packets with this class, for tc")
        for name, prio in limits.net_priorities:
            field = "linux.resources.network.priorities"
            self._write(self._use("net_prio", field), "net_prio.ifpriomap", f"{name} {prio}", field,
                        f"priority of the container's packets on {name}")

        if limits.blkio_weight is not None:
            field = FIELDS["blkio_weight"]
            d = self._use("blkio", field)
            knob = next((k for k in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(os.path.join(d, k))), None)
            if knob is None:
                raise CgroupError(f"{field}: this kernel's blkio controller has no weight (no blkio.weight or "
                                  "blkio.bfq.weight: the disks' I/O scheduler is not BFQ or CFQ); remove "
                                  f"{field} (--blkio-weight)", field=field)
            self._write(d, knob, str(limits.blkio_weight), field,
                        "relative share of the disks' time against sibling cgroups")

    # -- pause ------------------------------------------------------------------------------------
    def freeze(self) -> None:
        d = self._use("freezer", "pause")
        self._write(d, "freezer.state", "FROZEN", "pause",
                    "freeze every process of the container where it stands: no CPU until thawed")
        self._wait_frozen(os.path.join(d, "freezer.state"), "FROZEN")

    def thaw(self) -> None:
        d = self._use("freezer", "unpause")
        self._write(d, "freezer.state", "THAWED", "unpause", "let the frozen processes run again")

    def _apply_swap(self, d: str, swap: int) -> None:
        """v1 limits memory+swap together in ``memory.memsw.limit_in_bytes``, which must be at least
        ``memory.limit_in_bytes`` (so it is written after it).  It exists only with swap accounting."""
        field = FIELDS["memory_swap"]
        knob = os.path.join(d, "memory.memsw.limit_in_bytes")
        if not os.path.exists(knob):
            if swap == -1:
                return  # "unlimited" is what a host without swap accounting gives anyway
            raise CgroupError(f"{field}: this kernel does not account swap per cgroup (no "
                              "memory.memsw.limit_in_bytes): boot with swapaccount=1, or remove "
                              f"{field} from config.json", field=field)
        self._write(d, "memory.memsw.limit_in_bytes", str(swap), field,
                    "cap memory plus swap, so the container cannot escape its memory limit into swap")

    # -- reading ----------------------------------------------------------------------------------
    def stats(self) -> CgroupStats:
        memory, cpuacct, pids = self.paths.get("memory"), self.paths.get("cpuacct"), self.paths.get("pids")
        cpu_ns = self._read_int(cpuacct, "cpuacct.usage")  # nanoseconds on v1
        # cpuacct.stat counts in USER_HZ ticks (1/100 s), not microseconds
        ticks = self._read_keyed(cpuacct, "cpuacct.stat")
        tick_usec = 1_000_000 // os.sysconf("SC_CLK_TCK")
        throttling = self._read_keyed(self.paths.get("cpu"), "cpu.stat")
        percpu = self._read_text(cpuacct, "cpuacct.usage_percpu")
        limit = self._read_int(memory, "memory.limit_in_bytes")
        return CgroupStats(
            memory_usage=self._read_int(memory, "memory.usage_in_bytes"),
            memory_max_usage=self._read_int(memory, "memory.max_usage_in_bytes"),
            # "oom_kill N" is in memory.oom_control since Linux 4.13
            oom_kills=self._read_keyed(memory, "memory.oom_control").get("oom_kill") if memory else None,
            cpu_usage_usec=None if cpu_ns is None else cpu_ns // 1000,
            pids_current=self._read_int(pids, "pids.current"),
            cpu_user_usec=ticks["user"] * tick_usec if "user" in ticks else None,
            cpu_system_usec=ticks["system"] * tick_usec if "system" in ticks else None,
            cpu_percpu_ns=tuple(int(n) for n in percpu.split()) if percpu else None,
            cpu_periods=throttling.get("nr_periods"),
            cpu_throttled_periods=throttling.get("nr_throttled"),
            cpu_throttled_usec=throttling["throttled_time"] // 1000 if "throttled_time" in throttling else None,
            # v1 says "no limit" with the largest page-aligned number, not with a word
            memory_limit=None if limit is None or limit >= UNLIMITED_V1 else limit,
            memory_failcnt=self._read_int(memory, "memory.failcnt"),
            memory_detail=self._read_keyed(memory, "memory.stat") if memory else None,
            pids_limit=self._read_int(pids, "pids.max"),
            io_bytes=self._read_io(self.paths.get("blkio"), "blkio.throttle.io_service_bytes_recursive", keyed=False),
        )


UNLIMITED_V1 = 1 << 62  # memory.limit_in_bytes reads 9223372036854771712 when unlimited
