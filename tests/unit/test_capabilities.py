"""Tests for minicontainer.kernel.capabilities: the table, masks, and the order of apply_identity.

Most tests use a recording stand-in for the kernel and check the exact calls.  The tests marked
``root`` fork a child that really drops its capabilities and changes user, and report what the
kernel then says about it: the only way to know the order of the steps actually works.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable

import pytest

from minicontainer.kernel import capabilities as caps_mod
from minicontainer.kernel.capabilities import (
    CAPABILITIES,
    CapabilitySets,
    apply_identity,
    current,
    names,
    parse,
)
from minicontainer.kernel.syscalls import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_KEEPCAPS,
    KernelError,
    Syscalls,
)

KILL = 1 << CAPABILITIES["CAP_KILL"]
NET_BIND = 1 << CAPABILITIES["CAP_NET_BIND_SERVICE"]


class RecordingSyscalls(Syscalls):
    """Records the identity calls instead of making them.  ``fail`` maps a call to an errno."""

    def __init__(self, fail: dict[tuple, int] | None = None) -> None:
        super().__init__()
        self.calls: list[tuple] = []
        self.fail = fail or {}

    def _record(self, call: tuple) -> None:
        self.calls.append(call)
        if call in self.fail:
            raise KernelError(call[0], "", self.fail[call])

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, *, detail: str = "") -> int:
        self._record(("prctl", option, arg2, arg3))
        return 0

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record(("capset", effective, permitted, inheritable))

    def setgroups(self, gids: list[int]) -> None:
        self._record(("setgroups", tuple(gids)))

    def setresgid(self, gid: int) -> None:
        self._record(("setresgid", gid))

    def setresuid(self, uid: int) -> None:
        self._record(("setresuid", uid))


@pytest.fixture
def kernel_40(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the kernel knows capabilities 0..40, whatever the test host runs."""
    monkeypatch.setattr(caps_mod, "last_cap", lambda: 40)


def drops(keep: int, highest: int = 40) -> list[tuple]:
    return [("prctl", PR_CAPBSET_DROP, bit, 0) for bit in range(highest + 1) if not keep & (1 << bit)]


# --- The table and masks ----------------------------------------------------------------------------


def test_table_is_contiguous_from_zero() -> None:
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


def test_last_cap_matches_the_kernel() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps_mod.last_cap() == int(f.read())


def test_parse_and_names_round_trip(kernel_40: None) -> None:
    wanted = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]
    mask = parse(wanted, "process.capabilities.bounding")
    assert mask == 1 | KILL | NET_BIND | (1 << 21) | (1 << 40)
    assert names(mask) == wanted
    everything = parse(list(CAPABILITIES), "x")
    assert everything == (1 << 41) - 1
    assert names(everything) == list(CAPABILITIES)


def test_parse_empty_and_duplicates(kernel_40: None) -> None:
    assert parse([], "x") == 0
    assert parse(["CAP_KILL", "CAP_KILL"], "x") == KILL
    assert names(0) == []


def test_parse_unknown_name_is_an_error(kernel_40: None) -> None:
    with pytest.raises(ValueError) as info:
        parse(["CAP_KILL", "CAP_FOO"], "process.capabilities.effective")
    assert str(info.value) == ("process.capabilities.effective: unknown capability 'CAP_FOO' "
                               "(known: see `man 7 capabilities`)")


def test_parse_skips_capabilities_newer_than_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps_mod, "last_cap", lambda: 37)  # a 5.4 kernel: no PERFMON, BPF, CHECKPOINT
    assert parse(["CAP_KILL", "CAP_BPF", "CAP_PERFMON"], "x") == KILL


def test_names_shows_unknown_bits_as_numbers() -> None:
    assert names(KILL | (1 << 41)) == ["CAP_KILL", "41"]


def test_current_reads_proc_status() -> None:
    sets = current()
    with open("/proc/self/status") as f:
        eff = next(line for line in f if line.startswith("CapEff:"))
    assert sets.effective == int(eff.split()[1], 16)
    assert sets.effective & ~sets.permitted == 0  # the kernel never lets effective exceed permitted
    assert current(os.getpid()) == sets


# --- apply_identity, against the recording kernel ------------------------------------------------------


def test_apply_identity_order_and_masks(kernel_40: None) -> None:
    sys = RecordingSyscalls()
    sets = CapabilitySets(bounding=NET_BIND | KILL, effective=NET_BIND | KILL, permitted=NET_BIND | KILL,
                          inheritable=NET_BIND, ambient=NET_BIND)
    apply_identity(sys, sets, 1000, 1001, [1001, 2000])
    assert sys.calls == drops(NET_BIND | KILL) + [
        ("prctl", PR_SET_KEEPCAPS, 1, 0),
        ("setgroups", (1001, 2000)),
        ("setresgid", 1001),
        ("setresuid", 1000),
        ("capset", NET_BIND | KILL, NET_BIND | KILL, NET_BIND),
        ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0),
        ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAPABILITIES["CAP_NET_BIND_SERVICE"]),
    ]
    assert len(drops(NET_BIND | KILL)) == 39


def test_apply_identity_none_means_no_capabilities(kernel_40: None) -> None:
    sys = RecordingSyscalls()
    apply_identity(sys, None, 0, 0, [])
    assert sys.calls == drops(0) + [
        ("prctl", PR_SET_KEEPCAPS, 1, 0),
        ("setgroups", ()),
        ("setresgid", 0),
        ("setresuid", 0),
        ("capset", 0, 0, 0),
        ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0),
    ]


def test_apply_identity_drops_only_what_the_kernel_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps_mod, "last_cap", lambda: 37)
    sys = RecordingSyscalls()
    apply_identity(sys, CapabilitySets(), 0, 0, [])
    assert [c for c in sys.calls if c[:2] == ("prctl", PR_CAPBSET_DROP)] == drops(0, highest=37)


@pytest.mark.parametrize("sets, message", [
    (CapabilitySets(effective=KILL), "CAP_KILL not in process.capabilities.permitted"),
    (CapabilitySets(permitted=KILL, ambient=KILL), "CAP_KILL must also be in both"),
    (CapabilitySets(inheritable=KILL, ambient=KILL), "CAP_KILL must also be in both"),
])
def test_inconsistent_sets_are_refused_before_any_call(kernel_40: None, sets: CapabilitySets,
                                                       message: str) -> None:
    sys = RecordingSyscalls()
    with pytest.raises(ValueError, match=message):
        apply_identity(sys, sets, 1000, 1000, [])
    assert sys.calls == []


def test_kernel_without_ambient_is_fine_when_none_is_asked(kernel_40: None) -> None:
    clear = ("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0)
    sys = RecordingSyscalls(fail={clear: errno.EINVAL})
    apply_identity(sys, CapabilitySets(bounding=KILL, effective=KILL, permitted=KILL), 0, 0, [])
    assert sys.calls[-1] == clear

    sys = RecordingSyscalls(fail={clear: errno.EINVAL})
    wants_ambient = CapabilitySets(bounding=KILL, permitted=KILL, inheritable=KILL, ambient=KILL)
    with pytest.raises(KernelError):
        apply_identity(sys, wants_ambient, 0, 0, [])


def test_kernel_errors_propagate(kernel_40: None) -> None:
    sys = RecordingSyscalls(fail={("setresuid", 1000): errno.EPERM})
    with pytest.raises(KernelError) as info:
        apply_identity(sys, None, 1000, 1000, [])
    assert info.value.errno == errno.EPERM
    assert sys.calls[-1] == ("setresuid", 1000)  # nothing after the failure was attempted


# --- apply_identity, for real ----------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing uid and capabilities needs root")


def in_child(body: Callable[[], dict]) -> dict:
    """Run ``body`` in a forked child and return the dict it produced (sent back as JSON).

    The child always leaves through os._exit: it must never return into pytest, which would then
    run the rest of the test session a second time in the child.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            try:
                result = body()
            except BaseException as e:  # noqa: BLE001 - anything goes back to the parent to report
                result = {"error": f"{type(e).__name__}: {e}"}
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result


def identity_report() -> dict:
    s = current()
    return {"bounding": s.bounding, "effective": s.effective, "permitted": s.permitted,
            "inheritable": s.inheritable, "ambient": s.ambient,
            "uids": list(os.getresuid()), "gids": list(os.getresgid()), "groups": sorted(os.getgroups())}


@pytest.mark.root
@needs_root
def test_real_apply_identity_as_non_root_user() -> None:
    sets = CapabilitySets(bounding=NET_BIND | KILL, effective=NET_BIND | KILL, permitted=NET_BIND | KILL,
                          inheritable=NET_BIND, ambient=NET_BIND)

    def body() -> dict:
        apply_identity(Syscalls(), sets, 1000, 1000, [1000, 2000])
        return identity_report()

    got = in_child(body)
    assert got["uids"] == [1000, 1000, 1000]
    assert got["gids"] == [1000, 1000, 1000]
    assert got["groups"] == [1000, 2000]
    assert names(got["bounding"]) == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert names(got["effective"]) == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert names(got["permitted"]) == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert names(got["inheritable"]) == ["CAP_NET_BIND_SERVICE"]
    assert names(got["ambient"]) == ["CAP_NET_BIND_SERVICE"]


@pytest.mark.root
@needs_root
def test_real_apply_identity_without_capabilities_config() -> None:
    def body() -> dict:
        apply_identity(Syscalls(), None, 1000, 1000, [])
        return identity_report()

    got = in_child(body)
    assert got["uids"] == [1000, 1000, 1000]
    assert got["groups"] == []
    assert [got[k] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")] == [0] * 5


@pytest.mark.root
@needs_root
def test_real_ambient_capabilities_survive_execve() -> None:
    """The point of the ambient set: a non-root program keeps NET_BIND_SERVICE after execve, KILL
    (permitted but not ambient) is lost.  The child execs cat on its own /proc status."""
    cat = "/usr/bin/cat" if os.path.exists("/usr/bin/cat") else "/bin/cat"
    if not os.path.exists(cat):
        pytest.skip("no cat to exec")
    sets = CapabilitySets(bounding=NET_BIND | KILL, effective=NET_BIND | KILL, permitted=NET_BIND | KILL,
                          inheritable=NET_BIND, ambient=NET_BIND)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.dup2(write_fd, 1)
            apply_identity(Syscalls(), sets, 1000, 1000, [])
            os.execv(cat, [cat, "/proc/self/status"])
        except BaseException as e:  # noqa: BLE001 - the parent shows it in the failure
            os.write(write_fd, f"error: {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(127)
    os.close(write_fd)
    with os.fdopen(read_fd, "r") as f:
        status = f.read()
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0, status
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["1000"] * 4
    assert names(int(fields["CapAmb"], 16)) == ["CAP_NET_BIND_SERVICE"]
    assert names(int(fields["CapEff"], 16)) == ["CAP_NET_BIND_SERVICE"]
    assert names(int(fields["CapPrm"], 16)) == ["CAP_NET_BIND_SERVICE"]
    assert names(int(fields["CapBnd"], 16)) == ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
