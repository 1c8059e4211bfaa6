"""seccomp: a filter the kernel runs on every system call the container makes.

Namespaces hide things and capabilities withhold privileges, but every system call still reaches
the kernel, and the kernel's ~450 entry points are its attack surface.  ``seccomp`` (secure
computing) lets a process install a small BPF program that the kernel runs *before each system
call*: it sees the call's number, the architecture, and the six arguments, and answers ALLOW,
ERRNO(n) (the call fails with errno n, as if the kernel had refused), KILL, TRAP (SIGSYS), LOG...

The OCI config describes the filter in ``linux.seccomp``::

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
     "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
     "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}]}

Turning that into BPF (jump tables per architecture, 64-bit argument comparisons done as two 32-bit
ones) is what **libseccomp** does, and we use it rather than compile BPF by hand: its binding is
Debian's ``python3-seccomp`` (the libseccomp project's own, a compiled module that imports in half a
millisecond; the PyPI ctypes binding ``pyseccomp`` runs ``ldconfig`` twice at import, 60-140 ms, on
every container start).  Debian installs it for the system Python only, so :func:`_binding` loads
that one file into our virtual environment rather than adding all of Debian's packages to it.

Three facts shape how the runtime uses it (see ``runtime/init.py``):

* A filter can only be installed by a process with ``no_new_privs`` set, or with CAP_SYS_ADMIN.
  So without ``process.noNewPrivileges`` the filter goes in *early*, while init is still root, and
  every call init makes after it (setgroups, capset, execve...) passes through it: as in runc.
* With ``noNewPrivileges``, it goes in last, just before ``execve``.
* Filters are inherited by children and survive ``execve``; they can be added to, never removed.
"""

from __future__ import annotations

import errno
import functools
import importlib.machinery
import importlib.util
import os
from typing import Any, NamedTuple

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ")
# OCI's flag names -> the libseccomp attribute that sets the kernel's SECCOMP_FILTER_FLAG_*.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC", "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB"}
# OCI architecture names -> libseccomp's (SCMP_ARCH_X86_64 -> Arch.X86_64).
ARCHES = ("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64",
          "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64")


class Condition(NamedTuple):
    index: int  # which argument, 0..5
    op: str  # SCMP_CMP_*
    value: int
    value_two: int  # SCMP_CMP_MASKED_EQ: value is the mask, value_two what the masked argument must equal


class Rule(NamedTuple):
    names: list[str]
    action: str
    errno_ret: int | None
    conditions: list[Condition]


class Profile(NamedTuple):
    """``linux.seccomp``, checked: every name an action, every number in range."""

    default_action: str
    default_errno: int
    architectures: list[str]
    flags: list[str]
    rules: list[Rule]
    bpf: bytes = b""  # the compiled program, when :func:`compiled` has made (or found) it


# The kernel's SECCOMP_FILTER_FLAG_* for OCI's flag names, for loading a compiled program ourselves.
FILTER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


@functools.cache
def _binding() -> Any:
    """libseccomp's Python binding: ``import seccomp`` where it is importable, else Debian's file."""
    try:
        import seccomp  # type: ignore[import-not-found]

        return seccomp
    except ImportError:
        pass
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = f"/usr/lib/python3/dist-packages/seccomp{suffix}"
        if os.path.exists(path):
            loader = importlib.machinery.ExtensionFileLoader("seccomp", path)
            spec = importlib.util.spec_from_file_location("seccomp", path, loader=loader)
            assert spec is not None
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
    raise ValueError("libseccomp's Python binding is not installed: apt-get install python3-seccomp "
                     "(`make setup` does)")


def _number(item: dict, key: str, field: str, default: int | None = None) -> int | None:
    value = item.get(key, default)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f"{field}.{key}: must be a non-negative integer, not {value!r}")
    return value


def check(raw: dict) -> Profile:
    """Validate OCI ``linux.seccomp``; ValueError names the field.  Loads the binding (before
    ``pivot_root``, when the host's files are still reachable)."""
    _binding()
    known = {"defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls", "listenerPath",
             "listenerMetadata"}
    for key in raw:
        if key not in known:
            raise ValueError(f"{key}: is not a field of linux.seccomp")
    if raw.get("listenerPath"):
        raise ValueError("listenerPath: seccomp notification (SCMP_ACT_NOTIFY) is not supported")
    default = raw.get("defaultAction")
    if default not in ACTIONS:
        raise ValueError(f"defaultAction: {default!r} is not one of {', '.join(ACTIONS)}")
    default_errno = _number(raw, "defaultErrnoRet", "linux.seccomp", errno.EPERM)
    arches = raw.get("architectures") or []
    for arch in arches:
        if not isinstance(arch, str) or arch.removeprefix("SCMP_ARCH_") not in ARCHES:
            raise ValueError(f"architectures: {arch!r} is not a seccomp architecture (SCMP_ARCH_X86_64...)")
    flags = raw.get("flags") or []
    for flag in flags:
        if flag not in FLAGS:
            raise ValueError(f"flags: {flag!r} is not supported (supported: {', '.join(FLAGS)})")
    rules = []
    for i, item in enumerate(raw.get("syscalls") or []):
        field = f"syscalls[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{field}: must be an object")  # noqa: TRY004 - a config error
        names = item.get("names")
        if not names or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{field}.names: must be a non-empty list of system call names")
        action = item.get("action")
        if action not in ACTIONS:
            raise ValueError(f"{field}.action: {action!r} is not one of {', '.join(ACTIONS)}")
        conditions = []
        for j, arg in enumerate(item.get("args") or []):
            where = f"{field}.args[{j}]"
            index = _number(arg, "index", where)
            if index is None or index > 5:
                raise ValueError(f"{where}.index: a system call has arguments 0 to 5")
            if arg.get("op") not in OPERATORS:
                raise ValueError(f"{where}.op: {arg.get('op')!r} is not one of {', '.join(OPERATORS)}")
            conditions.append(Condition(index, arg["op"], _number(arg, "value", where, 0) or 0,
                                        _number(arg, "valueTwo", where, 0) or 0))
        rules.append(Rule(names, action, _number(item, "errnoRet", field), conditions))
    return Profile(default, default_errno or 0, list(arches), list(flags), rules)


def _action(binding: Any, name: str, errno_ret: int | None, default_errno: int) -> Any:
    if name == "SCMP_ACT_ERRNO":
        return binding.ERRNO(errno_ret if errno_ret is not None else default_errno)
    if name == "SCMP_ACT_TRACE":
        return binding.TRACE(errno_ret if errno_ret is not None else default_errno)
    return {"SCMP_ACT_KILL": binding.KILL, "SCMP_ACT_KILL_THREAD": binding.KILL,
            "SCMP_ACT_KILL_PROCESS": binding.KILL_PROCESS, "SCMP_ACT_TRAP": binding.TRAP,
            "SCMP_ACT_ALLOW": binding.ALLOW, "SCMP_ACT_LOG": binding.LOG}[name]


def build(profile: Profile) -> Any:
    """The libseccomp filter for ``profile`` (not loaded yet: :meth:`Syscalls.seccomp_load` does).

    System call names this libseccomp does not know are skipped, as runc skips them: profiles list
    calls of newer kernels, and of other architectures.
    """
    sc = _binding()
    f = sc.SyscallFilter(_action(sc, profile.default_action, None, profile.default_errno))
    # no_new_privs is the runtime's business (process.noNewPrivileges), not a side effect of loading.
    f.set_attr(sc.Attr.CTL_NNP, 0)
    for flag in profile.flags:
        f.set_attr(getattr(sc.Attr, FLAGS[flag]), 1)
    for arch in profile.architectures:
        try:
            f.add_arch(getattr(sc.Arch, arch.removeprefix("SCMP_ARCH_")))
        except RuntimeError as e:
            if f"errno = -{errno.EEXIST})" not in str(e):
                raise
            # the native architecture: the filter has it from the start
    ops = {op: getattr(sc, op.removeprefix("SCMP_CMP_")) for op in OPERATORS}
    for rule in profile.rules:
        action = _action(sc, rule.action, rule.errno_ret, profile.default_errno)
        if action == f.get_attr(sc.Attr.ACT_DEFAULT):
            continue  # libseccomp refuses a rule that repeats the default action (runc skips it too)
        args = [sc.Arg(c.index, ops[c.op], c.value, c.value_two) for c in rule.conditions]
        # Several conditions on the same argument cannot all hold at once: runc reads them as "any of",
        # one rule each.  Conditions on different arguments must all hold: one rule with all of them.
        indexes = [c.index for c in rule.conditions]
        groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
        for name in rule.names:
            if sc.resolve_syscall(sc.Arch.NATIVE, name) < 0 and not _known_elsewhere(sc, name, profile):
                continue
            for group in groups:
                try:
                    f.add_rule(action, name, *group)
                except RuntimeError as e:
                    if any(f"errno = -{n})" in str(e) for n in (errno.EINVAL, errno.EEXIST, errno.EACCES)):
                        continue  # unknown on every architecture of the filter, or the same rule twice
                    raise
    return f


def compiled(profile: Profile, cache_dir: str) -> Profile:
    """``profile`` with its BPF program, from ``cache_dir`` or compiled now and kept there.

    Compiling Docker's profile for x86-64 and its two 32-bit ABIs takes libseccomp about 15 ms, on
    every container start; the program is the same each time.  So it is compiled once, exported
    (``seccomp_export_bpf``), and kept: later starts read ~25 KiB and hand it to the kernel themselves
    (:meth:`Syscalls.seccomp_load_bpf`).

    The file is named after a CRC-32 of the profile (cheap: a sha256 would import OpenSSL, 2 ms a
    start) and begins with the whole profile as text, compared on every read: two profiles with the
    same CRC (easy to make on purpose) never share a program; the second just replaces the first.
    """
    import zlib

    key = repr((os.uname().machine, profile._replace(bpf=b""))).encode() + b"\n"  # lists, str, int: stable
    path = os.path.join(cache_dir, f"{zlib.crc32(key):08x}.bpf")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(key):
            return profile._replace(bpf=data[len(key):])
    except FileNotFoundError:
        pass
    import io
    import tempfile  # only on a miss: importing it costs a start ~3 ms

    program = io.BytesIO()
    with tempfile.TemporaryFile() as out:  # export_bpf wants a real file descriptor
        build(profile).export_bpf(out)
        out.seek(0)
        program.write(out.read())
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
        tmp.write(key + program.getvalue())
    os.rename(tmp.name, path)  # atomic: a concurrent start reads the old file or the whole new one
    return profile._replace(bpf=program.getvalue())


def _known_elsewhere(sc: Any, name: str, profile: Profile) -> bool:
    return any(sc.resolve_syscall(getattr(sc.Arch, a.removeprefix("SCMP_ARCH_")), name) >= 0
               for a in profile.architectures)
