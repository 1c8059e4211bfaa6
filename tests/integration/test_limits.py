"""Resource limits through the real cgroup hierarchy of this host (hybrid v1 here, v2 elsewhere)."""

from __future__ import annotations

import json
import time

import pytest

from minicontainer.kernel.cgroups import cgroup_from_state
from minicontainer.kernel.syscalls import Syscalls

pytestmark = pytest.mark.root

MiB = 1024 * 1024


def test_memory_limit_oom_kills_a_program_that_allocates_past_it(rt, make_bundle):
    # dd's block buffer is one allocation of bs bytes, touched as it reads: 64 MiB > the 16 MiB limit.
    # The OOM killer may kill even a namespace's PID 1: the kernel's SIGKILL is not a signal "from
    # inside", which PID 1 would be shielded from.
    bundle = make_bundle(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                         linux={"resources": {"memory": {"limit": 16 * MiB, "swap": 16 * MiB}}})
    r = rt("run", "--bundle", str(bundle), "oom")
    assert r.returncode == 137, (r.returncode, r.stderr)


def test_memory_limit_lets_a_program_below_it_run(rt, make_bundle):
    bundle = make_bundle(["sh", "-c", "dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null && echo fine"],
                         linux={"resources": {"memory": {"limit": 64 * MiB}}})
    r = rt("run", "--bundle", str(bundle), "fits")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "fine"


def test_oom_kill_is_counted_in_the_cgroup(rt, make_bundle, runtime_root):
    bundle = make_bundle(["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 30"],
                         linux={"resources": {"memory": {"limit": 16 * MiB}}})
    assert rt("run", "-d", "--bundle", str(bundle), "oomcount").returncode == 0
    state = json.loads((runtime_root / "oomcount" / "state.json").read_text())
    cgroup = cgroup_from_state(Syscalls(), state["cgroup"])
    deadline = time.monotonic() + 10
    while cgroup.stats().oom_kills < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cgroup.stats().oom_kills >= 1
    assert rt("delete", "--force", "oomcount").returncode == 0


def test_pids_limit_stops_a_fork_loop(rt, make_bundle):
    # busybox sh gives up (exit 2) at the first fork the kernel refuses.
    script = "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); echo $i; done"
    bundle = make_bundle(["sh", "-c", script], linux={"resources": {"pids": {"limit": 10}}})
    r = rt("run", "--bundle", str(bundle), "forkloop", timeout=60)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "can't fork" in r.stderr
    started = int(r.stdout.split()[-1])
    assert started <= 9  # sh itself is the tenth process


def test_cpu_quota_caps_usage(rt, make_bundle, runtime_root):
    # 20% of one CPU: in one second of wall time the busy loop may use about 0.2 s of CPU.
    bundle = make_bundle(["sh", "-c", "while :; do :; done"],
                         linux={"resources": {"cpu": {"quota": 20000, "period": 100000, "shares": 512}}})
    assert rt("run", "-d", "--bundle", str(bundle), "cpucap").returncode == 0
    try:
        state = json.loads((runtime_root / "cpucap" / "state.json").read_text())
        cgroup = cgroup_from_state(Syscalls(), state["cgroup"])
        time.sleep(0.3)  # let it settle
        u0, t0 = cgroup.stats().cpu_usage_usec, time.monotonic()
        time.sleep(1.5)
        u1, t1 = cgroup.stats().cpu_usage_usec, time.monotonic()
        share = (u1 - u0) / 1e6 / (t1 - t0)
        assert 0.1 < share < 0.3, share
    finally:
        assert rt("delete", "--force", "cpucap").returncode == 0
