"""The devices cgroup: which device files a container may open, whatever nodes it can see or make.

A device file is only a name for a (type, major, minor) triple: ``/dev/sda`` is block 8:0.  Anyone
allowed to ``mknod`` (root with CAP_MKNOD) can make a node for any triple, anywhere, and open it.
Hiding nodes is therefore not enough: the kernel must refuse the *open* itself.  That is what this
controller does, at ``open(2)`` and ``mknod(2)``, for every process in the cgroup.

The OCI config lists rules (``linux.resources.devices``), applied in order, the last that matches
a device deciding::

    {"allow": false, "access": "rwm"}                                  deny everything, then
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}   allow /dev/null

``access`` is a subset of ``r`` (read), ``w`` (write), ``m`` (mknod).  A missing type (or ``a``)
and a missing major or minor match every device.

The two cgroup versions enforce the same rules very differently:

* **v1** has files: each rule is one line written to ``devices.allow`` or ``devices.deny``
  (``c 1:3 rwm``, ``a *:* rwm``), and the kernel keeps the list.  Written in order, they give
  exactly the "last match wins" meaning above: ``a`` resets the list to allow- or deny-all.
* **v2** has no such files.  Instead a small **eBPF program** (``BPF_PROG_TYPE_CGROUP_DEVICE``) is
  attached to the cgroup; the kernel runs it at every open and mknod, with the device's type, major,
  minor and access in its context, and the program returns 1 (allow) or 0 (deny).
  :func:`bpf_program` compiles the rules into that program, instruction by instruction.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# The kernel's codes for the program's context (include/uapi/linux/bpf.h, struct bpf_cgroup_dev_ctx):
# access_type holds the device type in its low 16 bits and the access asked for in its high 16.
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4
_TYPE_CODE = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
_ACCESS_CODE = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}

ANY = -1  # a major or minor that matches every number ('*' in v1's files)


class DeviceRule(NamedTuple):
    allow: bool
    type: str = "a"  # a (all), c (character) or b (block)
    major: int = ANY
    minor: int = ANY
    access: str = "rwm"

    def v1_line(self) -> str:
        """The line for ``devices.allow`` / ``devices.deny``: ``c 1:3 rwm``, ``a *:* rwm``."""
        if self.type == "a":
            return "a *:* rwm" if set(self.access) == set("rwm") else f"a *:* {self.access}"

        def num(n: int) -> str:
            return "*" if n == ANY else str(n)
        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


def parse_rule(item: dict, field: str) -> DeviceRule:
    """One ``linux.resources.devices`` entry; ValueError names the field on bad input."""
    allow = item.get("allow")
    if not isinstance(allow, bool):
        raise ValueError(f"{field}.allow: is required and must be true or false")  # noqa: TRY004 - a config error
    kind = item.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise ValueError(f"{field}.type: '{kind}' must be a (all), b (block) or c (character)")
    numbers = []
    for key in ("major", "minor"):
        value = item.get(key)
        if value is None:
            value = ANY
        if not isinstance(value, int) or isinstance(value, bool) or value < ANY:
            raise ValueError(f"{field}.{key}: must be a device number, or absent for all")
        numbers.append(value)
    access = item.get("access") or "rwm"
    if not isinstance(access, str) or not set(access) <= set("rwm"):
        raise ValueError(f"{field}.access: '{access}' must be made of r, w and m")
    for key in item:
        if key not in ("allow", "type", "major", "minor", "access"):
            raise ValueError(f"{field}.{key}: is not a field of a device rule")
    return DeviceRule(allow, kind, numbers[0], numbers[1], "".join(c for c in "rwm" if c in access))


# --- v2: the rules as an eBPF program ------------------------------------------------------------

# eBPF opcodes this compiler uses (include/uapi/linux/bpf_common.h and bpf.h).  An instruction is 8
# bytes: opcode, destination and source register (4 bits each), a 16-bit jump offset, a 32-bit value.
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
MOV64_REG = 0xBF  # dst = src
MOV64_IMM = 0xB7  # dst = imm
AND32_IMM = 0x54  # dst &= imm
RSH32_IMM = 0x74  # dst >>= imm
JNE_IMM = 0x55  # if dst != imm: skip off instructions
JNE_REG = 0x5D  # if dst != src: skip off instructions
EXIT = 0x95  # return r0


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def bpf_program(rules: list[DeviceRule]) -> bytes:
    """Compile ``rules`` into a BPF_PROG_TYPE_CGROUP_DEVICE program (the raw instructions).

    Registers on entry: r1 points at the context.  The program loads r2 = device type, r3 = access
    asked for, r4 = major, r5 = minor; then checks the rules **from the last to the first**: the
    first one that matches (last in the config) decides, as in v1.  No match: allowed, as a new v1
    cgroup allows everything until told otherwise (configs start with a deny-all rule for that).
    """
    prologue = [
        _insn(LDX_MEM_W, dst=2, src=1, off=0),  # r2 = ctx->access_type
        _insn(MOV64_REG, dst=3, src=2),  # r3 = access_type
        _insn(AND32_IMM, dst=2, imm=0xFFFF),  # r2 = the device type (low half)
        _insn(RSH32_IMM, dst=3, imm=16),  # r3 = the access asked for (high half)
        _insn(LDX_MEM_W, dst=4, src=1, off=4),  # r4 = ctx->major
        _insn(LDX_MEM_W, dst=5, src=1, off=8),  # r5 = ctx->minor
    ]
    blocks = []
    for rule in reversed(rules):
        checks: list[tuple[int, int, int, int]] = []  # (code, dst, src, imm): each jumps past the block
        if rule.type != "a":
            checks.append((JNE_IMM, 2, 0, _TYPE_CODE[rule.type]))
        mask = sum(_ACCESS_CODE[c] for c in rule.access)
        if mask != 7:
            # Allowed only if every access asked for is in the rule: (asked & mask) == asked.
            checks.append((MOV64_REG, 1, 3, 0))
            checks.append((AND32_IMM, 1, 0, mask))
            checks.append((JNE_REG, 1, 3, 0))
        if rule.major != ANY:
            checks.append((JNE_IMM, 4, 0, rule.major))
        if rule.minor != ANY:
            checks.append((JNE_IMM, 5, 0, rule.minor))
        size = len(checks) + 2  # the checks, then r0 = verdict and exit
        block = []
        for i, (code, dst, src, imm) in enumerate(checks):
            is_jump = code in (JNE_IMM, JNE_REG)
            block.append(_insn(code, dst=dst, src=src, off=size - i - 1 if is_jump else 0, imm=imm))
        block += [_insn(MOV64_IMM, dst=0, imm=int(rule.allow)), _insn(EXIT)]
        blocks += block
        if not checks:
            # A rule for every device (``a``, rwm) always decides: the kernel's verifier refuses a
            # program with instructions that can never run, so the earlier rules are left out.
            return b"".join(prologue + blocks)
    return b"".join(prologue + blocks + [_insn(MOV64_IMM, dst=0, imm=1), _insn(EXIT)])


def run_program(program: bytes, dev_type: str, major: int, minor: int, access: str) -> bool:
    """Interpret ``program`` as the kernel would for one device access (the few opcodes
    :func:`bpf_program` emits): for tests on machines without cgroup v2, and for learners."""
    ctx = [(_TYPE_CODE[dev_type] | (sum(_ACCESS_CODE[c] for c in access) << 16)), major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        code, regs_byte, off, imm = struct.unpack_from("<BBhi", program, pc * 8)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == LDX_MEM_W:
            regs[dst] = ctx[off // 4]
        elif code == MOV64_REG:
            regs[dst] = regs[src]
        elif code == MOV64_IMM:
            regs[dst] = imm
        elif code == AND32_IMM:
            regs[dst] &= imm
        elif code == RSH32_IMM:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == JNE_IMM:
            pc += off if regs[dst] != imm else 0
        elif code == JNE_REG:
            pc += off if regs[dst] != regs[src] else 0
        elif code == EXIT:
            return bool(regs[0])
        else:
            raise ValueError(f"opcode {code:#x} is not one bpf_program emits")


# What every container may use, appended after a config's own rules as runc does (libcontainer's
# AllowedDevices): making any node (``m``: the node alone opens nothing), the harmless devices the
# runtime puts in /dev (kernel/devices.py), the container's terminals, and the tun device.
CONTAINER_DEVICE_RULES = (
    DeviceRule(True, "c", ANY, ANY, "m"),
    DeviceRule(True, "b", ANY, ANY, "m"),
    DeviceRule(True, "c", 1, 3),  # /dev/null
    DeviceRule(True, "c", 1, 5),  # /dev/zero
    DeviceRule(True, "c", 1, 7),  # /dev/full
    DeviceRule(True, "c", 1, 8),  # /dev/random
    DeviceRule(True, "c", 1, 9),  # /dev/urandom
    DeviceRule(True, "c", 5, 0),  # /dev/tty
    DeviceRule(True, "c", 5, 1),  # /dev/console
    DeviceRule(True, "c", 5, 2),  # /dev/ptmx
    DeviceRule(True, "c", 136, ANY),  # /dev/pts/*: the container's own pseudo-terminals
    DeviceRule(True, "c", 10, 200),  # /dev/net/tun
)
