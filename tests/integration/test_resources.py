"""Limits, OOM, pause, update and stats through the real daemon, measured from the cgroups.

The client's sampler records what the kernel counts; the assertions are on those numbers."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time

import pytest
import test_engine

from minicontainer.client import Client
from minicontainer.kernel.cgroups import Limits, cgroup_from_state, detect, open_cgroup
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.observe import plots

pytestmark = pytest.mark.root
engine = test_engine.engine  # the fixture: a daemon of the test's own with the starter busybox
MiB = 1024 * 1024
BUSY = ["sh", "-c", "while :; do :; done"]


@pytest.fixture
def client(engine):
    return Client(str(engine.root / "run" / "minicontainer.sock"))


def cgroup_of(engine, cid: str):
    state = json.loads((engine.root / "run" / "runtime" / cid[:12] / "state.json").read_text())
    return cgroup_from_state(Syscalls(), state["cgroup"])


def test_a_program_past_its_memory_limit_is_oom_killed(engine, client, tmp_path):
    # awk keeps 1 MiB strings, one every 30 ms: the memory rises to the limit, then the OOM killer ends it
    program = 'BEGIN { while (1) { a[i++] = sprintf("%1048576s", ""); system("sleep 0.03") } }'
    box = client.containers.create("busybox", ["awk", program], mem_limit="32m")
    since = time.time()
    box.start()
    series = box.sample(duration=20, interval=0.05)
    assert box.wait()["StatusCode"] == 137
    box.reload()
    assert box.attrs["State"]["OOMKilled"] is True
    assert series.column("memory_limit")[0] == 32 * MiB
    assert max(series.column("memory")) > 0.75 * 32 * MiB  # it rose to the limit...
    assert series.column("memory")[0] < 0.5 * 32 * MiB     # ...from well below it
    oom = series.mark("oom")
    assert oom is not None and series.mark("die").attributes["exitCode"] == "137"
    r = engine.mc("events", "--since", f"{since:.9f}", "--until", f"{time.time():.3f}", "--filter",
                  f"container={box.id}", "--format", "{{.Action}}")
    assert r.stdout.split() == ["start", "oom", "die"]
    fig = plots.memory(series)
    ax = fig.axes[0]
    used, limit, marker = ax.lines[0], ax.lines[1], ax.lines[2]
    assert list(used.get_xdata()) == series.column("t")
    assert list(used.get_ydata()) == [m / MiB for m in series.column("memory")]
    assert set(limit.get_ydata()) == {32.0} and marker.get_label() == "OOM kill"
    assert list(marker.get_xdata()) == [oom.t]
    fig.savefig(tmp_path / "oom.png")
    assert (tmp_path / "oom.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    box.remove()


def test_half_a_cpu_is_half_a_cpu_and_the_rest_is_throttled(client):
    box = client.containers.run("busybox", BUSY, detach=True, nano_cpus=500_000_000)
    try:
        time.sleep(0.3)
        series = box.sample(duration=3, interval=0.25)
        used = sum(p.cpu * (p.t - q.t) for q, p in itertools.pairwise(series)) / (series[-1].t - series[0].t)
        assert 0.4 <= used <= 0.6, used
        assert series[-1].throttled > series[0].throttled
        assert series[-1].cpu_limit == 0.5
        ax = plots.cpu(series).axes[0]
        assert list(ax.lines[0].get_ydata()) == series.column("cpu")
        assert set(ax.lines[1].get_ydata()) == {0.5}
        assert any(p.get_label() == "throttled" for p in ax.patches)
    finally:
        box.remove(force=True)


def test_a_fork_loop_stops_at_the_pids_limit(engine, client):
    # the subshell forks until the kernel refuses (EAGAIN), then exits; PID 1 (sh) sleeps on
    box = client.containers.run("busybox", ["sh", "-c", "(while :; do sleep 60 & done) 2>/dev/null; sleep 60; exit 0"],
                                detach=True, pids_limit=20)
    try:
        deadline = time.monotonic() + 10
        while box.stats(stream=False, one_shot=True)["pids_stats"]["current"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        doc = box.stats(stream=False, one_shot=True)
        assert doc["pids_stats"] == {"current": 20, "limit": 20}
        assert len(cgroup_of(engine, box.id).pids()) == 20
        assert subprocess.run(["true"], check=False).returncode == 0  # the host forks as before
        series = box.sample(duration=0.5, interval=0.1)
        assert set(series.column("pids")) == {20} and set(series.column("pids_limit")) == {20}
        assert set(plots.pids(series).axes[0].lines[1].get_ydata()) == {20}
    finally:
        box.remove(force=True)


def test_update_changes_the_limit_of_a_running_container(engine, client):
    assert engine.mc("run", "-d", "--name", "grow", "-m", "64m", "busybox", "sleep", "60").returncode == 0
    r = engine.mc("update", "-m", "96m", "--memory-swap", "192m", "--pids-limit", "50", "grow")
    assert r.returncode == 0 and r.stdout == "grow\n", r.stderr
    box = client.containers.get("grow")
    limits = cgroup_of(engine, box.id).stats()
    assert (limits.memory_limit, limits.pids_limit) == (96 * MiB, 50)
    assert box.stats(stream=False, one_shot=True)["memory_stats"]["limit"] == 96 * MiB
    r = engine.docker("update", "--memory", "128m", "--memory-swap", "256m", "grow")
    assert r.returncode == 0, r.stderr
    assert cgroup_of(engine, box.id).stats().memory_limit == 128 * MiB
    box.reload()
    assert box.attrs["HostConfig"]["Memory"] == 128 * MiB and box.attrs["HostConfig"]["PidsLimit"] == 50
    r = engine.docker("stats", "--no-stream", "grow")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and "/ 128MiB" in row
    r = engine.mc("update", "-m", "512m", "grow")  # above the swap limit already set
    assert r.returncode == 1 and "update the memoryswap at the same time" in r.stderr
    assert engine.mc("rm", "-f", "grow").returncode == 0


def test_a_paused_container_uses_no_cpu_until_unpaused(engine, client):
    box = client.containers.run("busybox", BUSY, detach=True, name="frozen")
    cgroup = cgroup_of(engine, box.id)

    def cpu_in(seconds: float) -> float:
        before = cgroup.stats().cpu_usage_usec
        time.sleep(seconds)
        return (cgroup.stats().cpu_usage_usec - before) / 1e6 / seconds

    assert engine.docker("pause", "frozen").returncode == 0
    assert cpu_in(0.5) == 0
    assert "(Paused)" in engine.mc("ps").stdout
    r = engine.mc("pause", "frozen")
    assert r.returncode == 1 and "is already paused" in r.stderr
    assert engine.mc("unpause", "frozen").returncode == 0
    assert cpu_in(0.5) > 0.5
    r = engine.docker("unpause", "frozen")
    assert r.returncode == 1 and "is not paused" in r.stderr
    # stop of a paused container: its stop signal is sent, then it is thawed for the signal to land
    box.pause()
    since = time.time()
    assert engine.mc("stop", "-t", "1", "frozen").returncode == 0
    box.reload()
    assert box.attrs["State"]["Status"] == "exited" and box.attrs["State"]["Paused"] is False
    r = engine.mc("events", "--since", f"{since:.9f}", "--until", f"{time.time():.3f}", "--filter", "type=container",
                  "--format", "{{.Action}}")  # (the network's disconnect names the container too, as Docker's)
    assert r.stdout.split() == ["kill", "unpause", "kill", "die", "stop"]
    box.remove()


def test_invalid_limits_are_refused_before_anything_is_created(engine):
    for flags, message in ((["-m", "1gb2"], "invalid size: '1gb2'"),
                           (["--cpus", "-1"], "range of CPUs is from 0.01 to"),
                           (["-m", "4m"], "Minimum memory limit allowed is 6MB"),
                           (["--memory-reservation", "64m", "-m", "32m"], "can not be less than memory reservation"),
                           (["--cpu-quota", "500"], "CPU cfs quota can not be less than 1ms"),
                           (["--cpuset-cpus", "0-64"], "Requested CPUs are not available")):
        r = engine.mc("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125 and message in r.stderr, (flags, r.stderr)
    assert engine.mc("ps", "-aq").stdout == ""


def test_stats_no_stream_and_format(engine):
    assert engine.mc("run", "-d", "--name", "s1", "-m", "64m", "busybox", "sleep", "60").returncode == 0
    r = engine.mc("stats", "--no-stream")
    assert r.returncode == 0
    header, row = r.stdout.splitlines()
    assert header.split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                              "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert row.split()[1] == "s1" and "/ 64MiB" in row and row.split()[-1] == "1"
    r = engine.mc("stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.PIDs}}", "s1")
    cid, pids = r.stdout.split()
    assert len(cid) == 64 and pids == "1"
    assert engine.mc("rm", "-f", "s1").returncode == 0


def test_stats_one_shot_has_no_precpu_and_no_stream_measures_a_second(engine, client):
    busy = client.containers.run("busybox", BUSY, detach=True, name="busy")
    try:
        time.sleep(0.3)  # it has used some CPU: a precpu taken at its start would not be empty
        shot = busy.stats(stream=False, one_shot=True)
        assert shot["preread"] == "0001-01-01T00:00:00Z" and "system_cpu_usage" not in shot["precpu_stats"]
        assert shot["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and shot["cpu_stats"]["cpu_usage"]["total_usage"]
        started = time.monotonic()
        doc = busy.stats(stream=False)  # as dockerd: two readings, a second apart
        assert time.monotonic() - started >= 1
        pre, now = doc["precpu_stats"], doc["cpu_stats"]
        assert 0 < pre["cpu_usage"]["total_usage"] < now["cpu_usage"]["total_usage"]
        assert 0 < pre["system_cpu_usage"] < now["system_cpu_usage"]
        # Both CLIs' --no-stream show that second's CPU %: a busy loop is near 100 % of one CPU
        for cli in (engine.mc, engine.docker):
            r = cli("stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy")
            assert r.returncode == 0 and float(r.stdout.strip().rstrip("%")) > 30, r.stdout + r.stderr
    finally:
        busy.remove(force=True)


def test_cgroup_v2_freezer_on_this_hosts_cgroup2_mount():
    """The real cgroup2 mount (on a hybrid host it carries no controller, but cgroup.freeze and
    cpu.stat work without one): the v2 code freezes a real busy process there."""
    layout = detect()
    if layout.unified is None or not os.path.exists(os.path.join(layout.unified, "cgroup.stat")):
        pytest.skip("no cgroup2 mount on this host")
    v2 = layout._replace(mode="v2")
    cg = open_cgroup(Syscalls(), f"minicontainer-test-v2-{os.getpid()}", layout=v2)
    cg.create()
    busy = subprocess.Popen(BUSY)
    try:
        if not os.path.exists(os.path.join(cg.paths["unified"], "cgroup.freeze")):
            pytest.skip("this kernel's cgroup2 has no cgroup.freeze (Linux < 5.2)")
        cg.add_process(busy.pid)
        cg.freeze()
        before = cg.stats().cpu_usage_usec
        time.sleep(0.3)
        assert cg.stats().cpu_usage_usec == before
        cg.thaw()
        time.sleep(0.3)
        assert cg.stats().cpu_usage_usec > before + 100_000
        with pytest.raises(Exception, match="memory"):
            cg.update(Limits(memory_limit=64 * MiB))  # no memory controller delegated here: said, not ignored
    finally:
        busy.kill()
        busy.wait()
        cg.destroy()


def test_a_live_plot_redraws_while_the_container_runs(client, monkeypatch):
    import IPython.display

    shown = []

    class Handle:  # what IPython's display(..., display_id=True) returns in a notebook
        def update(self, figure) -> None:
            shown.append(figure)

    monkeypatch.setattr(IPython.display, "display", lambda figure, display_id=None: shown.append(figure) or Handle())
    box = client.containers.run("busybox", BUSY, detach=True, nano_cpus=300_000_000)
    try:
        series = plots.live(box, duration=1.5, metric="cpu", interval=0.1, every=0.3)
    finally:
        box.remove(force=True)
    assert len(shown) >= 4  # the first drawing, then one every 0.3 s, then the last
    drawn = [len(fig.axes[0].lines[0].get_ydata()) for fig in shown]
    assert drawn == sorted(drawn) and drawn[0] < drawn[-1] == len(series)
