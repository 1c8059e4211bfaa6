"""Docker's confinement, as tables and rules: capabilities, the default seccomp profile, profile resolution."""

from __future__ import annotations

import pytest

from minicontainer.engine import confinement, seccomp_profile
from minicontainer.engine.errors import InvalidParameter
from minicontainer.kernel import seccomp


def test_capabilities_follow_dockers_rules():
    assert confinement.capabilities({}) == list(confinement.DOCKER_CAPABILITIES)
    assert "CAP_MKNOD" in confinement.capabilities({})
    assert confinement.capabilities({"CapDrop": ["ALL"], "CapAdd": ["net_admin"]}) == ["CAP_NET_ADMIN"]
    everything_but = confinement.capabilities({"CapAdd": ["ALL"], "CapDrop": ["SYS_ADMIN"]})
    assert "CAP_SYS_ADMIN" not in everything_but and "CAP_SYS_MODULE" in everything_but
    assert "CAP_KILL" not in confinement.capabilities({"CapDrop": ["KILL"]})
    with pytest.raises(InvalidParameter, match='invalid CapAdd: unknown capability: "FLY"'):
        confinement.capabilities({"CapAdd": ["FLY"]})


def test_default_profile_depends_on_the_capabilities():
    plain = seccomp_profile.for_container(set(confinement.DOCKER_CAPABILITIES), machine="x86_64")
    allowed = {n for r in plain["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
               for n in r["names"]}
    assert {"read", "execve", "arch_prctl"} <= allowed
    assert not {"mount", "unshare", "setns", "reboot", "init_module", "keyctl"} & allowed
    clone = next(r for r in plain["syscalls"] if r["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]
    admin = seccomp_profile.for_container({"CAP_SYS_ADMIN"}, machine="x86_64")
    assert any("mount" in r["names"] and not r.get("args") for r in admin["syscalls"])
    assert not any(r["names"] == ["clone3"] for r in admin["syscalls"])
    assert plain["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    seccomp.check(plain)  # a profile our runtime accepts


def test_a_docker_format_profile_is_resolved_for_these_capabilities():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "always"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]}
    without = confinement._resolve(profile, ["CAP_KILL"])
    assert [r["names"] for r in without["syscalls"]] == [["read"], ["clone"]]
    assert "comment" not in without["syscalls"][0]
    with_admin = confinement._resolve(profile, ["CAP_SYS_ADMIN"])
    assert [r["names"] for r in with_admin["syscalls"]] == [["read"], ["mount"]]


def test_security_opts():
    assert confinement.Options({"SecurityOpt": ["no-new-privileges"]}).no_new_privileges
    assert confinement.Options({"SecurityOpt": ["no-new-privileges:true"]}).no_new_privileges
    assert not confinement.Options({"SecurityOpt": ["no-new-privileges=false"]}).no_new_privileges
    assert confinement.Options({"SecurityOpt": ["seccomp=unconfined"]}).seccomp == "unconfined"
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        confinement.Options({"SecurityOpt": ["seccomp={not json"]})
    with pytest.raises(InvalidParameter, match='invalid --security-opt 1: "label=disable"'):
        confinement.Options({"SecurityOpt": ["label=disable"]})


def test_compiled_profile_is_kept_and_reused(tmp_path):
    profile = seccomp.check({"defaultAction": "SCMP_ACT_ALLOW",
                             "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    first = seccomp.compiled(profile, str(tmp_path))
    assert first.bpf and len(first.bpf) % 8 == 0  # classic BPF: 8-byte instructions
    assert len(list(tmp_path.iterdir())) == 1
    (only,) = tmp_path.iterdir()
    key = only.read_bytes()[:-len(first.bpf)]  # the file starts with the profile itself
    only.write_bytes(key + b"X" * 8)  # a kept program is read, not compiled again
    assert seccomp.compiled(profile, str(tmp_path)).bpf == b"X" * 8
    # another profile whose name lands on the same file (a CRC-32 is easy to collide): compiled, never shared
    only.write_bytes(b"another profile\n" + b"X" * 8)
    assert seccomp.compiled(profile, str(tmp_path)).bpf == first.bpf
