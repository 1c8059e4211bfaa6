"""Docker's confinement through the engine: the default capabilities, seccomp profile and device
rules; --cap-add/--cap-drop, --security-opt; bad values refused before anything is created."""

from __future__ import annotations

import json

import pytest
from test_engine import engine  # noqa: F401 - the fixture: a daemon of the test's own

pytestmark = pytest.mark.root

DOCKER_CAPS = 0xA80425FB  # Docker's 14 default capabilities, as /proc/self/status shows the mask


def status(out: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_a_default_container_is_confined_as_dockers_are(engine):  # noqa: F811
    script = ("grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
              "unshare -U true || echo unshare-refused; mkdir -p /tmp/m; mount -t tmpfs none /tmp/m || echo mount-refused; "
              "mknod /dev/sdx b 8 0 && echo mknod-ok; head -c1 /dev/sdx || echo open-refused")
    r = engine.mc("run", "--rm", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    assert int(st["CapBnd"], 16) == int(st["CapEff"], 16) == DOCKER_CAPS
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "0"  # a filter; no_new_privs only when asked, as Docker
    for word in ("unshare-refused", "mount-refused", "mknod-ok", "open-refused"):
        assert word in r.stdout, (word, r.stdout, r.stderr)


def test_unconfined_with_sys_admin_may_unshare_and_mount(engine):  # noqa: F811
    r = engine.mc("run", "--rm", "--security-opt", "seccomp=unconfined", "--cap-add", "SYS_ADMIN", "busybox", "sh",
                  "-c", "unshare -U true && echo unshare-ok; mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mount-ok; "
                        "grep Seccomp: /proc/self/status")
    assert r.returncode == 0, r.stderr
    assert "unshare-ok" in r.stdout and "mount-ok" in r.stdout and "Seccomp:\t0" in r.stdout
    # SYS_ADMIN alone: Docker's profile, resolved against the capabilities, allows mount too
    r = engine.mc("run", "--rm", "--cap-add", "CAP_SYS_ADMIN", "busybox", "sh", "-c",
                  "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mount-ok")
    assert "mount-ok" in r.stdout, r.stderr


def test_cap_drop_all_and_no_new_privileges_through_the_docker_cli(engine):  # noqa: F811
    r = engine.docker("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--security-opt",
                      "no-new-privileges", "busybox", "grep", "-E", "^(CapEff|NoNewPrivs):", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    assert int(st["CapEff"], 16) == 1 << 10 and st["NoNewPrivs"] == "1"
    assert engine.docker("create", "--name", "c1", "--cap-drop", "ALL", "--security-opt", "seccomp=unconfined",
                         "busybox", "true").returncode == 0
    shown = engine.docker("inspect", "--format", "{{json .HostConfig.CapDrop}} {{json .HostConfig.SecurityOpt}}",
                          "c1").stdout.split()
    assert shown == ['["ALL"]', '["seccomp=unconfined"]']  # inspect shows them
    assert engine.docker("rm", "c1").returncode == 0


def test_a_custom_profile_file_is_read_by_the_client(engine, tmp_path):  # noqa: F811
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    r = engine.mc("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/tmp/x")
    assert r.returncode == 1 and "Permission denied" in r.stderr  # EACCES, as the profile says


@pytest.mark.parametrize(("flags", "words"), [
    (["--cap-add", "FLY"], 'invalid CapAdd: unknown capability: "FLY"'),
    (["--cap-drop", "CAP_NOPE"], 'invalid CapDrop: unknown capability: "CAP_NOPE"'),
    (["--security-opt", "apparmor=x"], 'invalid --security-opt 1: "apparmor=x"'),
    (["--security-opt", "seccomp=/nonexistent.json"], "opening seccomp profile (/nonexistent.json) failed"),
    (["--security-opt", "seccomp=BAD"], "Decoding seccomp profile failed"),
])
def test_bad_confinement_values_are_refused_before_anything_is_created(engine, tmp_path, flags, words):  # noqa: F811
    if flags[-1] == "seccomp=BAD":
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_SOMETIMES"}))
        flags = ["--security-opt", f"seccomp={bad}"]
    r = engine.mc("run", *flags, "busybox", "true")
    assert r.returncode == 125 and words in r.stderr, r.stderr
    assert engine.mc("ps", "-aq").stdout == ""
