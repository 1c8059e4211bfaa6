"""Linux capabilities: root's power, cut into pieces a container can be given one at a time.

A traditional Unix kernel asks one question before a privileged operation: is the caller's uid 0?
Linux splits that all-or-nothing power into about forty *capabilities* (``man 7 capabilities``):
``CAP_NET_BIND_SERVICE`` lets a process listen on port 80, ``CAP_KILL`` lets it signal other users'
processes, ``CAP_SYS_ADMIN`` lets it do almost anything.  Each is one bit of a 64-bit mask.

Every thread carries five such masks, and the OCI config (``process.capabilities``) names one list
of capabilities for each of them:

* **bounding**: the ceiling.  Nothing, not even a setuid-root program, can gain a capability that
  is not here, and once dropped a capability never comes back for this process or its children.
* **permitted**: what the thread *may* switch on in its effective set.
* **effective**: what the kernel actually checks right now.
* **inheritable**: what may be passed across ``execve`` to programs whose file says it wants them.
* **ambient**: what is passed across ``execve`` to *any* program, even one with no file
  capabilities.  Without this set a non-root user loses all its capabilities at ``execve``: the
  kernel computes the new program's sets from the file, and an ordinary binary asks for nothing.

:func:`apply_identity` is the last thing the container's init does before ``execve``: it cuts the
bounding set, becomes the configured user and group, and sets the other four masks.  The order of
those steps matters, because some of them need capabilities that later ones give away.
"""

from __future__ import annotations

import errno
import functools
from typing import NamedTuple

from minicontainer.kernel.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_KEEPCAPS,
    KernelError,
    Syscalls,
)

# --- The table ----------------------------------------------------------------------------------

# Every capability in <linux/capability.h>, by bit number.  A mask has bit N set when capability N
# is in the set: CAP_KILL (5) is 1 << 5 == 0x20.
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,  # change the owner and group of any file
    "CAP_DAC_OVERRIDE": 1,  # ignore file read/write/execute permission bits
    "CAP_DAC_READ_SEARCH": 2,  # read any file and list any directory, whatever its permissions
    "CAP_FOWNER": 3,  # act as the owner of any file (chmod, utime, set ACLs...)
    "CAP_FSETID": 4,  # keep the setuid/setgid bits when modifying a file; set setgid on any file
    "CAP_KILL": 5,  # send signals to processes owned by other users
    "CAP_SETGID": 6,  # change group ids: setgid, setgroups, write gid_map
    "CAP_SETUID": 7,  # change user ids: setuid, write uid_map
    "CAP_SETPCAP": 8,  # drop from the bounding set; add any bounding cap to the inheritable set
    "CAP_LINUX_IMMUTABLE": 9,  # set the immutable and append-only file attributes (chattr +i)
    "CAP_NET_BIND_SERVICE": 10,  # bind to TCP/UDP ports below 1024
    "CAP_NET_BROADCAST": 11,  # send broadcasts and listen to multicast (unused by the kernel today)
    "CAP_NET_ADMIN": 12,  # configure the network: interfaces, routes, firewall, sockets options
    "CAP_NET_RAW": 13,  # open raw and packet sockets (ping, tcpdump)
    "CAP_IPC_LOCK": 14,  # lock memory into RAM (mlock) and use huge pages
    "CAP_IPC_OWNER": 15,  # ignore permissions on System V IPC objects
    "CAP_SYS_MODULE": 16,  # load and unload kernel modules
    "CAP_SYS_RAWIO": 17,  # raw I/O: ioperm/iopl, /dev/mem, /dev/kmem
    "CAP_SYS_CHROOT": 18,  # call chroot and setns into a mount namespace
    "CAP_SYS_PTRACE": 19,  # trace or inspect any process (ptrace, /proc/PID/mem)
    "CAP_SYS_PACCT": 20,  # switch process accounting on or off (acct)
    "CAP_SYS_ADMIN": 21,  # a catch-all for administration: mount, sethostname, swapon, and much more
    "CAP_SYS_BOOT": 22,  # reboot the machine and load a new kernel (kexec)
    "CAP_SYS_NICE": 23,  # raise priority, set real-time scheduling, pin other processes to CPUs
    "CAP_SYS_RESOURCE": 24,  # exceed resource limits and quotas, raise hard rlimits
    "CAP_SYS_TIME": 25,  # set the system clock
    "CAP_SYS_TTY_CONFIG": 26,  # configure terminals (vhangup)
    "CAP_MKNOD": 27,  # create device files with mknod
    "CAP_LEASE": 28,  # take leases on files the caller does not own
    "CAP_AUDIT_WRITE": 29,  # write records to the kernel audit log
    "CAP_AUDIT_CONTROL": 30,  # configure auditing and its rules
    "CAP_SETFCAP": 31,  # set file capabilities (setcap); map uid 0 in a user namespace
    "CAP_MAC_OVERRIDE": 32,  # bypass mandatory access control (Smack)
    "CAP_MAC_ADMIN": 33,  # configure mandatory access control (Smack, AppArmor policy)
    "CAP_SYSLOG": 34,  # read and clear the kernel log (dmesg); see kernel addresses
    "CAP_WAKE_ALARM": 35,  # set timers that wake the system from suspend
    "CAP_BLOCK_SUSPEND": 36,  # prevent the system from suspending (epoll wakeups)
    "CAP_AUDIT_READ": 37,  # read the audit log through a multicast netlink socket
    "CAP_PERFMON": 38,  # use performance monitoring (perf_event_open) without CAP_SYS_ADMIN
    "CAP_BPF": 39,  # load BPF programs and create BPF maps without CAP_SYS_ADMIN
    "CAP_CHECKPOINT_RESTORE": 40,  # checkpoint/restore helpers: choose the next pid, read /proc maps
}

# Bit number -> name, for turning masks back into words.
_NAMES: dict[int, str] = {bit: name for name, bit in CAPABILITIES.items()}


@functools.cache
def last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``).

    Read once and remembered: the container's init needs it after pivot_root, when the host's /proc
    (and Python's codec modules) are out of reach.

    Capabilities are added over time (CAP_BPF came in Linux 5.8), so a config written on a new host
    may name one that the running kernel has never heard of.  The file exists since Linux 3.2; on a
    kernel without it we assume it knows everything in our table.
    """
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def parse(names: list[str], field: str) -> int:
    """Turn a list of capability names from the config into a mask.

    ``field`` is where the list came from (``process.capabilities.bounding``) so the error says
    which list to fix.  A name we do not know at all is an error: it is most likely a typo, and
    silently ignoring it would run the container with fewer (or, for a misspelled drop, more)
    privileges than the author meant.

    A name we *do* know but that is beyond :func:`last_cap` is skipped instead: the config asks for
    a capability that this (older) kernel does not have, so no process here could use it anyway, and
    passing its bit to the kernel would make ``capset`` or ``prctl`` fail with EINVAL.  Failing the
    whole container over it would make one config.json unusable on older hosts; runc does the same.
    """
    highest = last_cap()
    mask = 0
    for name in names:
        bit = CAPABILITIES.get(name)
        if bit is None:
            raise ValueError(f"{field}: unknown capability '{name}' (known: see `man 7 capabilities`)")
        if bit > highest:
            continue  # known, but this kernel is too old to have it: see the docstring
        mask |= 1 << bit
    return mask


def names(mask: int) -> list[str]:
    """The capability names in ``mask``, lowest bit first.

    A bit with no name in our table (a capability newer than this module) is shown as its number,
    as ``capsh`` does, rather than hidden.
    """
    result = []
    bit = 0
    while mask >> bit:
        if mask & (1 << bit):
            result.append(_NAMES.get(bit, str(bit)))
        bit += 1
    return result


# --- The five sets --------------------------------------------------------------------------------


class CapabilitySets(NamedTuple):
    """One thread's five capability masks (bit N = capability N), as in ``/proc/PID/status``."""

    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0

    def describe(self) -> dict[str, list[str]]:
        """The sets as lists of names: for ``doctor`` and for readable test failures."""
        return {"bounding": names(self.bounding), "effective": names(self.effective),
                "permitted": names(self.permitted), "inheritable": names(self.inheritable),
                "ambient": names(self.ambient)}


def current(pid: int | str = "self") -> CapabilitySets:
    """The capability sets of a process (this one by default), read from ``/proc/PID/status``.

    The kernel prints each set there as 16 hex digits: ``CapEff:\\t000001ffffffffff``.
    """
    fields = {"CapBnd": "bounding", "CapEff": "effective", "CapPrm": "permitted",
              "CapInh": "inheritable", "CapAmb": "ambient"}
    masks = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in fields:
                masks[fields[key]] = int(value.strip(), 16)
    return CapabilitySets(**masks)


def check_consistent(caps: CapabilitySets) -> None:
    """Refuse, before touching anything, the combinations the kernel would refuse half-way through.

    ``capset`` fails with EPERM when effective holds a capability that permitted lacks, and raising
    an ambient capability fails unless it is both permitted and inheritable.  Saying so here, with
    the capability names, beats a bare "Operation not permitted" after the user has already changed.
    """
    extra = caps.effective & ~caps.permitted
    if extra:
        raise ValueError(f"process.capabilities.effective: {', '.join(names(extra))} not in "
                         "process.capabilities.permitted (a thread can only switch on what it may hold)")
    extra = caps.ambient & ~(caps.permitted & caps.inheritable)
    if extra:
        raise ValueError(f"process.capabilities.ambient: {', '.join(names(extra))} must also be in both "
                         "process.capabilities.permitted and process.capabilities.inheritable")


def apply_identity(sys: Syscalls, caps: CapabilitySets | None, uid: int, gid: int,
                   additional_gids: list[int]) -> None:
    """Become the container's user with exactly the configured capabilities, just before ``execve``.

    The container's init calls this as root in the container (uid 0 with every capability).  Each
    step below may need a capability that a later step gives away, which is why they come in this
    order and no other.

    ``caps`` is None when the config has no ``process.capabilities``.  The OCI runtime spec says a
    runtime must not grant a capability the config does not list, so None means every set is empty,
    not "keep what root had".
    """
    if caps is None:
        caps = CapabilitySets()
    check_consistent(caps)
    highest = last_cap()

    # 1. Cut the bounding set first.  PR_CAPBSET_DROP needs CAP_SETPCAP in our effective set, which
    #    we have now, as root, and may well not have after step 4.  Dropping is one capability per
    #    call, and dropping one that is already gone is harmless, so we simply drop every
    #    capability this kernel has (0..last_cap) that the config does not keep.
    for bit in range(highest + 1):
        if not caps.bounding & (1 << bit):
            sys.prctl(PR_CAPBSET_DROP, bit, detail=f"{_NAMES.get(bit, bit)} leaves the bounding set")

    # 2. Changing uid from 0 to anything else normally wipes the permitted and effective sets: the
    #    kernel assumes a program that gives up root wants to give up its power too.  KEEPCAPS
    #    keeps the permitted set through that change, so step 4 still has something to choose
    #    from.  (execve resets the flag, so the user's program does not inherit it.)
    sys.prctl(PR_SET_KEEPCAPS, 1, detail="keep permitted capabilities across the uid change")

    # 3. Change identity, groups first: setgroups and setresgid both need CAP_SETGID, and
    #    setresuid to a non-root uid empties the effective set (KEEPCAPS saves only permitted), so
    #    after it we could no longer change groups.  setgroups also replaces root's supplementary
    #    groups, which would otherwise leak into the container (group 0 opens root-group files).
    sys.setgroups(additional_gids)
    sys.setresgid(gid)
    sys.setresuid(uid)

    # 4. Set the three classic sets.  After step 3 the permitted set is still root's full set
    #    (thanks to KEEPCAPS), and capset may shrink it to the configured one and switch on the
    #    effective capabilities.  Shrinking is always allowed; only growing needs privileges.
    sys.capset(caps.effective, caps.permitted, caps.inheritable)

    # 5. Ambient last: the kernel only lets a capability into the ambient set if it is already in
    #    both permitted and inheritable, which step 4 has just arranged.  Clear first, so that the
    #    result is exactly the configured set whatever we inherited.  Ambient is what lets a
    #    non-root program keep capabilities across execve without file capabilities.
    try:
        sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, detail="start the ambient set empty")
    except KernelError as e:
        # Kernels before 4.3 have no ambient set at all (EINVAL).  Nothing to clear then; only a
        # config that asks for ambient capabilities has a real problem.
        if e.errno != errno.EINVAL or caps.ambient:
            raise
    for bit in range(highest + 1):
        if caps.ambient & (1 << bit):
            sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, bit,
                      detail=f"{_NAMES.get(bit, bit)} survives execve for a non-root user")
