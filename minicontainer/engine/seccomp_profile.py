"""Docker's default seccomp profile, as a table a learner can read.

Docker gives every container (unless ``--privileged`` or ``--security-opt seccomp=unconfined``) a
filter that lets through the ~350 system calls ordinary programs make, and refuses the rest with
EPERM: loading kernel modules, rebooting, setting the clock, and, above all, the calls that make
namespaces and mounts (``unshare``, ``mount``, ``setns``...), through which a process escapes the
isolation the other mechanisms built.  The kernel then runs that filter on every call the program
makes (``kernel/seccomp.py`` turns it into BPF with libseccomp).

The table is grouped by what the calls do.  Some rules depend on the container's *capabilities*:
a call that needs CAP_SYS_ADMIN anyway (``mount``) is allowed only when the container has it, so
that ``--cap-add SYS_ADMIN`` works without a custom profile.  :func:`for_container` resolves those
rules against the capabilities, as Docker does when it builds the OCI config.
(The names and conditions are the facts of moby's ``profiles/seccomp/default.json``.)
"""

from __future__ import annotations

import os

# --- allowed to every container ------------------------------------------------------------------
# Many calls come in families: the 64-bit-time variants (``*_time64``), the 32-bit ones of old ABIs
# (``chown32``), and the ``*at`` forms that take a directory descriptor.  The filter is per
# architecture, so it lists them all; on x86-64 most 32-bit names simply do not exist.

FILES = """
access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat chown chown32 fchown fchown32
fchownat lchown lchown32 creat open openat openat2 close close_range link linkat symlink symlinkat
readlink readlinkat rename renameat renameat2 unlink unlinkat mkdir mkdirat rmdir mknod mknodat
stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64
truncate truncate64 ftruncate ftruncate64 fallocate getdents getdents64 umask utime utimes utimensat
utimensat_time64 futimesat name_to_handle_at flock fanotify_mark inotify_init inotify_init1
inotify_add_watch inotify_rm_watch
"""
EXTENDED_ATTRIBUTES = """
getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr flistxattr
removexattr lremovexattr fremovexattr
"""
READ_WRITE = """
read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek _llseek dup dup2 dup3
fcntl fcntl64 ioctl pipe pipe2 splice tee vmsplice sendfile sendfile64 copy_file_range readahead
fadvise64 fadvise64_64 fsync fdatasync sync syncfs sync_file_range
"""
WAITING_FOR_EVENTS = """
select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create epoll_create1
epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2
signalfd signalfd4 timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime timerfd_gettime64
"""
ASYNC_IO = """
io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
io_uring_setup io_uring_enter io_uring_register
"""
MEMORY = """
brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock munlockall
remap_file_pages membarrier memfd_create memfd_secret pkey_alloc pkey_free pkey_mprotect
"""
PROCESSES = """
fork vfork execve execveat exit exit_group wait4 waitid waitpid getpid getppid gettid getpgid setpgid
getpgrp getsid setsid prctl set_tid_address set_robust_list get_robust_list set_thread_area
get_thread_area futex futex_time64 futex_waitv rseq restart_syscall pidfd_open pidfd_send_signal
process_mrelease getrlimit setrlimit ugetrlimit prlimit64 getrusage getpriority setpriority
ioprio_get ioprio_set capget capset seccomp landlock_create_ruleset landlock_add_rule
landlock_restrict_self
"""
SIGNALS = """
kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigpending rt_sigsuspend rt_sigreturn rt_sigqueueinfo
rt_tgsigqueueinfo rt_sigtimedwait rt_sigtimedwait_time64 sigaltstack sigprocmask sigreturn pause
"""
IDENTITY = """
getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 getresgid
getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32 setregid
setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
setgroups setgroups32
"""
TIME = """
time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_nanosleep
clock_nanosleep_time64 nanosleep alarm getitimer setitimer times adjtimex clock_adjtime clock_adjtime64
timer_create timer_delete timer_settime timer_settime64 timer_gettime timer_gettime64 timer_getoverrun
"""
SCHEDULING = """
sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_setparam sched_getscheduler
sched_setscheduler sched_getattr sched_setattr sched_get_priority_max sched_get_priority_min
sched_rr_get_interval sched_rr_get_interval_time64 getcpu
"""
NETWORK = """
socketpair socketcall bind listen accept accept4 connect shutdown getsockname getpeername
getsockopt setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64
"""
IPC = """
ipc shmget shmat shmdt shmctl semget semop semtimedop semtimedop_time64 semctl msgget msgsnd msgrcv
msgctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64
mq_notify mq_getsetattr
"""
SYSTEM_INFORMATION = """
uname sysinfo getrandom
"""

ALWAYS = (FILES, EXTENDED_ATTRIBUTES, READ_WRITE, WAITING_FOR_EVENTS, ASYNC_IO, MEMORY, PROCESSES, SIGNALS,
          IDENTITY, TIME, SCHEDULING, NETWORK, IPC, SYSTEM_INFORMATION)

# --- allowed with conditions on the arguments ----------------------------------------------------
AF_VSOCK = 40  # sockets to a hypervisor: refused (every other address family is allowed)
# personality(2) only for what ordinary programs ask: Linux (0), its 32-bit flavour (8), and the
# "no address randomisation" bit (0x20000) with either; 0xffffffff only reads the current one.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# clone(2) without CAP_SYS_ADMIN: a thread or a process, never a new namespace.  The mask is
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET.
CLONE_NAMESPACE_FLAGS = 0x7E020000

# --- allowed only with a capability (the call would need it anyway) -------------------------------
WITH_CAPABILITY: dict[str, str] = {
    # namespaces, mounts, and what reaches the whole kernel
    "CAP_SYS_ADMIN": """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
                        mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
                        sethostname setns syslog umount umount2 unshare""",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "init_module finit_module delete_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd process_madvise",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    "CAP_SYSLOG": "syslog",
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
}
# Since Linux 4.8 ptrace can no longer be used to slip past seccomp: allowed to everyone there.
PTRACE_SINCE_4_8 = "ptrace process_vm_readv process_vm_writev"

# --- per architecture ------------------------------------------------------------------------------
ARCHITECTURES = {  # the machine -> the ABIs its programs may use (a 64-bit host runs 32-bit programs)
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}
ARCH_CALLS = {
    "x86_64": "arch_prctl modify_ldt",
    "aarch64": "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
}


def _names(text: str) -> list[str]:
    return text.split()


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def for_container(capabilities: set[str], machine: str | None = None) -> dict:
    """The OCI ``linux.seccomp`` Docker's default profile gives a container with these capabilities."""
    machine = machine or os.uname().machine
    allowed = [name for group in ALWAYS for name in _names(group)] + _names(ARCH_CALLS.get(machine, ""))
    if _kernel_at_least(4, 8):
        allowed += _names(PTRACE_SINCE_4_8)
    rules: list[dict] = [{"names": allowed, "action": "SCMP_ACT_ALLOW"},
                         {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]}]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]} for p in PERSONALITIES]
    for cap, names in WITH_CAPABILITY.items():
        if cap in capabilities:
            rules.append({"names": _names(names), "action": "SCMP_ACT_ALLOW"})
    if "CAP_SYS_ADMIN" not in capabilities:
        # (s390 passes clone's flags second: the index would be 1 there)
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}]})
        # clone3 passes its flags in a structure a filter cannot read: ENOSYS, so libc falls back to clone
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ARCHITECTURES.get(machine, []), "syscalls": rules}
