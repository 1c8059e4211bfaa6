"""The runtime held to what runc accepts: `runc spec` as it comes, seccomp, hooks, device rules.

The OCI runtime-tools suite measures the same things at length (run by hand: see the report of the
branch that added this file); these are the fast, always-run checks of each mechanism.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_peer_runc import REPORT, parse

from minicontainer.kernel.cgroups.devices import CONTAINER_DEVICE_RULES, DeviceRule, bpf_program
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.runtime.defaults import default_config

pytestmark = pytest.mark.root

DENY_ALL = {"allow": False, "access": "rwm"}


def run_sh(rt, make_bundle, script: str, cid: str = "conf", **changes):
    bundle = make_bundle(["sh", "-c", script], **changes)
    return rt("run", "--bundle", str(bundle), cid)


# --- `runc spec`, unchanged ------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not on PATH (`make test` installs it)")
def test_runc_spec_runs_under_ours_with_the_same_isolation(rt, busybox_rootfs, tmp_path):
    bundle = tmp_path / "runc-bundle"
    bundle.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    # Only what running without a terminal, side by side, needs: the program, no terminal, a cgroup
    # name the session's leak check recognises.  Ambient capabilities, the cgroup mount and the
    # device rules stay as runc wrote them.
    config["process"].update(args=["sh", "-c", REPORT], terminal=False)
    config["linux"]["cgroupsPath"] = f"minicontainer-test-{uuid.uuid4().hex[:12]}"
    (bundle / "config.json").write_text(json.dumps(config))

    ours = rt("run", "--bundle", str(bundle), "runc-spec")
    assert ours.returncode == 0, ours.stderr
    assert "ambient: CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE not in both" in ours.stderr
    runc_root, runc_id = tmp_path / "runc-state", f"minicontainer-runc-spec-{uuid.uuid4().hex[:8]}"
    config["linux"]["cgroupsPath"] = f"minicontainer-test-{uuid.uuid4().hex[:12]}"
    (bundle / "config.json").write_text(json.dumps(config))
    try:
        theirs = subprocess.run(["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), runc_id],
                                capture_output=True, text=True, timeout=60, check=False)
    finally:
        subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", runc_id], capture_output=True,
                       timeout=60, check=False)
    assert theirs.returncode == 0, theirs.stderr
    a, b = parse(ours.stdout), parse(theirs.stdout)
    assert (a.pid, a.hostname) == (b.pid, b.hostname) == ("1", "runc")
    assert a.status == b.status  # the same five capability sets (no ambient ones in either) and no_new_privs
    assert a.dev == b.dev

    def outside_cgroup(report):  # runc also binds systemd's named hierarchy and the hybrid's cgroup2 there
        return [m for m in report.mounts if not m[0].startswith("/sys/fs/cgroup/")]
    assert outside_cgroup(a) == outside_cgroup(b)
    memory = [m for m in a.mounts if m[0] in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory")][-1]
    assert memory[1] in ("cgroup", "cgroup2") and "ro" in memory[2]


def test_cgroup_mount_shows_the_containers_own_cgroup_read_only(rt, make_bundle):
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; "
              "touch /sys/fs/cgroup/x 2>&1; mkdir /sys/fs/cgroup/memory/sub 2>&1 || true")
    bundle_mounts = [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}]
    mounts = default_config(["sh"])["mounts"] + bundle_mounts  # (the default config has no cgroup mount)
    r = run_sh(rt, make_bundle, script, mounts=mounts, linux={"resources": {"memory": {"limit": 64 << 20}}})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(64 << 20)  # the container's limit, not the host's
    assert "Read-only file system" in r.stdout


# --- seccomp ---------------------------------------------------------------------------------------

def test_seccomp_profile_errno_and_argument_conditions(rt, make_bundle):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
               "syscalls": [
                   {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                   # kill(pid, SIGUSR1) refused, every other signal allowed: a condition on argument 1
                   {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                    "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]}
    r = run_sh(rt, make_bundle, "mkdir /tmp/x; kill -0 $$ && echo kill0-ok; kill -USR1 $$; echo after",
               linux={"seccomp": profile})
    assert r.returncode == 0, r.stderr
    assert "Permission denied" in r.stderr  # EACCES (13), as errnoRet says, not the usual EPERM
    assert "kill0-ok" in r.stdout and "after" in r.stdout
    assert "Operation not permitted" in r.stderr  # kill -USR1: EPERM from the filter, not a signal


def test_seccomp_without_no_new_privileges_is_loaded_while_init_is_still_root(rt, make_bundle):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
    process = {"noNewPrivileges": False}
    r = run_sh(rt, make_bundle, "mkdir /tmp/y; grep NoNewPrivs /proc/self/status", linux={"seccomp": profile},
               process=process)
    assert r.returncode == 0, r.stderr
    assert "NoNewPrivs:\t0" in r.stdout
    assert "Function not implemented" in r.stderr  # ENOSYS (38) from the filter


def test_malformed_seccomp_profile_is_refused_before_anything_is_created(rt, make_bundle, runtime_root):
    r = run_sh(rt, make_bundle, "true", linux={"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_SOMETIMES"}]}})
    assert r.returncode != 0
    assert "linux.seccomp: syscalls[0].action: 'SCMP_ACT_SOMETIMES' is not one of" in r.stderr
    assert not runtime_root.exists() or not os.listdir(runtime_root)


# --- hooks -----------------------------------------------------------------------------------------

def test_hooks_run_at_their_points_with_the_state_on_stdin(rt, make_bundle, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()

    def on_host(point):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{point}"]}
    hooks = {p: [on_host(p)] for p in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
    # startContainer runs inside the container: its /bin/sh, its /tmp (the bundle's rootfs, seen here)
    hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer"]}]
    bundle = make_bundle(["sh", "-c", "echo program ran"], hooks=hooks)
    r = rt("run", "--bundle", str(bundle), "hooked")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "program ran\n"
    states = {p.name: json.loads(p.read_text()) for p in out.iterdir()}
    states["startContainer"] = json.loads((bundle / "rootfs/tmp/startContainer").read_text())
    assert set(states) == set(hooks)
    for point, state in states.items():
        assert state["id"] == "hooked", point
        assert state["bundle"] == str(bundle), point
    assert states["prestart"]["status"] == "creating" and states["prestart"]["pid"] > 0
    assert states["poststop"]["status"] == "stopped"


def test_a_failing_or_slow_create_hook_fails_create_and_leaves_nothing(rt, make_bundle, runtime_root):
    slow = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    t0 = time.monotonic()
    r = run_sh(rt, make_bundle, "echo should not run", hooks=slow)
    assert time.monotonic() - t0 < 15
    assert r.returncode != 0 and "should not run" not in r.stdout
    assert "hooks.createRuntime[0] (/bin/sleep): still running after its timeout of 1 s: killed" in r.stderr
    failing = {"prestart": [{"path": "/bin/false"}]}
    r = run_sh(rt, make_bundle, "echo should not run", hooks=failing)
    assert r.returncode != 0 and "hooks.prestart[0] (/bin/false): exited with 1" in r.stderr
    assert not runtime_root.exists() or not os.listdir(runtime_root)


def test_a_failing_poststop_hook_is_a_warning(rt, make_bundle):
    r = run_sh(rt, make_bundle, "exit 3", hooks={"poststop": [{"path": "/bin/false"}]})
    assert r.returncode == 3
    assert "warning: hooks.poststop[0] (/bin/false): exited with 1" in r.stderr


# --- devices ---------------------------------------------------------------------------------------

def with_mknod():
    caps = ["CAP_MKNOD", "CAP_DAC_OVERRIDE"]
    return {"capabilities": {k: caps for k in ("bounding", "effective", "permitted")}}


def test_device_rules_deny_opening_a_disk_node_the_container_made(rt, make_bundle):
    # In /dev, a tmpfs without nodev (the rootfs is nodev: there a node opens nothing anyway)
    script = ("mknod /dev/sda b 8 0 && echo made; head -c1 /dev/sda >/dev/null; "
              "echo x > /dev/null && echo null-ok; head -c1 /dev/urandom >/dev/null && echo urandom-ok")
    r = run_sh(rt, make_bundle, script, process=with_mknod(), linux={"resources": {"devices": [DENY_ALL]}})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["made", "null-ok", "urandom-ok"]
    assert "head: /dev/sda: Operation not permitted" in r.stderr


def test_cap_mknod_without_device_rules_is_refused(rt, make_bundle):
    r = run_sh(rt, make_bundle, "true", process=with_mknod())
    assert r.returncode != 0 and "CAP_MKNOD without linux.resources.devices" in r.stderr


def test_v2_device_program_is_enforced_by_the_kernel(tmp_path):
    """The eBPF program of cgroup v2, loaded and attached for real (on the host's cgroup2 mount,
    which a hybrid host has too, at /sys/fs/cgroup/unified)."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split(" - ")[0].split()[4] for line in f if " - cgroup2 " in line]
    if not mounts:
        pytest.skip("this kernel has no cgroup2 filesystem mounted")
    cg = Path(mounts[0]) / f"minicontainer-test-{uuid.uuid4().hex[:12]}"
    cg.mkdir()
    try:
        sys = Syscalls()
        fd = sys.bpf_prog_load_cgroup_device(bpf_program([DeviceRule(False), *CONTAINER_DEVICE_RULES,
                                                          DeviceRule(False, "c", 1, 5)]))
        try:
            sys.bpf_prog_attach_cgroup_device(str(cg), fd)
        finally:
            os.close(fd)
        script = (f"echo $$ > {cg}/cgroup.procs; head -c1 /dev/null && echo null-ok; "
                  "head -c1 /dev/zero > /dev/null || echo zero-denied")
        r = subprocess.run(["sh", "-c", script],
                           capture_output=True, text=True, timeout=30, check=False)
        assert r.stdout.split() == ["null-ok", "zero-denied"], r.stderr
        assert "Operation not permitted" in r.stderr
    finally:
        cg.rmdir()  # the shell has exited: the cgroup is empty, and the program goes with it


# --- mounts that cannot be redirected, read-only all the way down -----------------------------------

def test_a_symlink_swapped_in_before_the_mount_cannot_make_it_land_outside_the_rootfs(tmp_path):
    """The race of CVE-2021-30465, made deterministic: the mount target is turned into a symlink to a
    host directory right after it was resolved, just before mount(2).  In a child, in a mount namespace
    of its own (whatever lands anywhere goes with it)."""
    from minicontainer.kernel import mounts
    from minicontainer.kernel.syscalls import CLONE_NEWNS, MS_PRIVATE, MS_REC, KernelError

    rootfs, outside, src = tmp_path / "rootfs", tmp_path / "outside", tmp_path / "src"
    (rootfs / "mnt").mkdir(parents=True)
    outside.mkdir()
    src.mkdir()
    (src / "marker").write_text("from the bind source")
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            sys = Syscalls()
            sys.unshare(CLONE_NEWNS)
            sys.mount(None, "/", None, MS_REC | MS_PRIVATE)
            real_mount = sys.mount

            def racing(source, target, *args, **kwargs):  # the window: the target resolved, not mounted yet
                data = rootfs / "mnt" / "data"
                if source == str(src) and not data.is_symlink():
                    os.rmdir(data)
                    os.symlink(str(outside), data)
                return real_mount(source, target, *args, **kwargs)
            sys.mount = racing
            try:
                mounts.mount_one(sys, str(rootfs), "/mnt/data", "bind", str(src), ["rbind"])
                outcome = "mounted"
            except KernelError:
                outcome = "refused"  # the opened directory was removed meanwhile: nothing to mount on
            code = 1 if (outside / "marker").exists() else (0 if outcome == "refused" else 2)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code != 1, "the bind mount landed outside the rootfs, on the symlink's host target"
    assert code == 0, f"child failed ({code})"


def test_a_read_only_bind_makes_its_submounts_read_only_too(tmp_path, make_bundle, runtime_root):
    host_dir = tmp_path / "data"
    (host_dir / "sub").mkdir(parents=True)
    mounts = [*default_config(["sh"])["mounts"],
              {"destination": "/data", "type": "bind", "source": str(host_dir), "options": ["rbind", "ro"]}]
    bundle = make_bundle(["sh", "-c", "touch /data/sub/x; touch /data/y; grep ' /data' /proc/self/mounts"],
                         mounts=mounts)
    # The submount exists only in a mount namespace made for this run: it goes when the run ends.
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f'mount -t tmpfs tmpfs "{host_dir}/sub" && exec "$@"', "sh",
                        sys.executable, "-m", "minicontainer.runtime.cli", "--root", str(runtime_root), "run",
                        "--bundle", str(bundle), "robind"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "touch: /data/sub/x: Read-only file system" in r.stderr  # the submount: read-only too
    assert "touch: /data/y: Read-only file system" in r.stderr
    assert all(" ro," in line for line in r.stdout.splitlines()) and len(r.stdout.splitlines()) == 2
