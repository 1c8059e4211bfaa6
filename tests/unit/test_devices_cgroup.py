"""The devices cgroup's rules: v1 lines, and the v2 eBPF program (run here by its interpreter, since
this machine's cgroup v2 may not be the one in use)."""

from __future__ import annotations

import pytest

from minicontainer.kernel.cgroups.devices import (
    CONTAINER_DEVICE_RULES,
    DeviceRule,
    bpf_program,
    parse_rule,
    run_program,
)

DOCKER_LIKE = [DeviceRule(False), *CONTAINER_DEVICE_RULES]


def test_v1_lines():
    assert DeviceRule(False).v1_line() == "a *:* rwm"
    assert DeviceRule(True, "c", 1, 3).v1_line() == "c 1:3 rwm"
    assert DeviceRule(True, "c", 136, -1, "rw").v1_line() == "c 136:* rw"
    assert DeviceRule(True, "b", -1, -1, "m").v1_line() == "b *:* m"


@pytest.mark.parametrize(("dev", "access", "allowed"), [
    (("c", 1, 3), "rw", True),  # /dev/null
    (("c", 1, 9), "r", True),  # /dev/urandom
    (("b", 8, 0), "r", False),  # /dev/sda: denied by the first rule, allowed by none after it
    (("b", 8, 0), "m", True),  # ...but making its node is allowed (the node alone opens nothing)
    (("b", 8, 0), "rm", False),  # every access asked for must be allowed
    (("c", 136, 4), "rw", True),  # /dev/pts/4: any minor
    (("c", 10, 229), "rw", False),  # /dev/fuse
])
def test_bpf_program_decides_as_the_rules_say(dev, access, allowed):
    assert run_program(bpf_program(DOCKER_LIKE), *dev, access) is allowed


def test_bpf_program_last_matching_rule_wins_and_no_rule_allows():
    rules = [DeviceRule(True, "c", 1, 3), DeviceRule(False, "c", 1, -1, "w")]
    program = bpf_program(rules)
    assert run_program(program, "c", 1, 3, "r") is True
    assert run_program(program, "c", 1, 3, "w") is False  # the later deny wins
    assert run_program(program, "b", 8, 0, "r") is True  # nothing matched: allowed, as a fresh v1 cgroup
    assert run_program(bpf_program([]), "c", 1, 1, "rwm") is True


def test_bpf_program_encoding():
    program = bpf_program([DeviceRule(False)])
    assert len(program) % 8 == 0
    # the prologue's first instruction: r2 = *(u32 *)(r1 + 0), ctx->access_type
    assert program[:8] == bytes([0x61, 0x12, 0, 0, 0, 0, 0, 0])
    # the deny-all rule has no checks: r0 = 0, exit; and nothing after it (the verifier refuses code
    # that can never run)
    assert program[48:] == bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
    # a rule before a deny-all one can never decide: left out
    assert bpf_program([DeviceRule(True, "c", 1, 3), DeviceRule(False)]) == program


@pytest.mark.parametrize(("item", "words"), [
    ({"access": "r"}, "allow: is required"),
    ({"allow": True, "type": "x"}, "type: 'x' must be"),
    ({"allow": True, "major": -5}, "major: must be a device number"),
    ({"allow": True, "access": "rwx"}, "access: 'rwx'"),
    ({"allow": True, "path": "/dev/sda"}, "path: is not a field of a device rule"),
])
def test_bad_rules_are_named(item, words):
    with pytest.raises(ValueError, match=words):
        parse_rule(item, "linux.resources.devices[0]")


def test_rule_defaults_match_everything():
    assert parse_rule({"allow": False}, "x") == DeviceRule(False, "a", -1, -1, "rwm")
    assert parse_rule({"allow": True, "type": "c", "major": 1, "access": "wr"}, "x") == DeviceRule(True, "c", 1, -1, "rw")
