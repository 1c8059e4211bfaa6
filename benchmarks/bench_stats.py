"""What watching containers costs: the sampler's load on the daemon, and ``stats --no-stream``.

Run as root::

    .venv/bin/python benchmarks/bench_stats.py [--containers 10] [--seconds 10] [--runs 5]

A ``minicontainerd`` of the script's own (as bench_engine.py starts one) runs N detached
``busybox sleep 600`` containers, and podman (on temporary roots) runs N of its own.  Measured:

1. **sampling N containers at 10 Hz**: the Python client's sampler (``observe.sampler``, the one the
   course's plots use) streams every container's stats every 0.1 s for S seconds; the daemon's CPU
   time over those seconds (utime + stime from /proc), minus what it uses idle over as long, as a
   percentage of one CPU.  Target: under 5 %.
2. **``stats --no-stream`` of N containers**: wall time of ``minicontainer stats --no-stream`` next to
   ``podman stats --no-stream`` (the median of a few runs each), and the ratio.  Target: <= 0.5x.

A report, not a test: it always exits 0, and removes everything it made (bench_engine's clean-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import (
    CLI,
    PODMAN_ULIMITS,
    Bench,
    cleanup,
    cli,
    cpu_ticks,
    find_cgroups,
    machine_facts,
    must,
    setup_podman,
    sh,
    start_daemon,
)
from harness import (  # set-up and report, shared by the benchmarks (same directory)
    daemon_env,
    needs_root,
    report_left,
)

SAMPLING_TARGET = 5.0  # % of one CPU in the daemon, N containers at 10 Hz
NO_STREAM_TARGET = 0.5  # ours / podman
TICKS = os.sysconf("SC_CLK_TCK")


def daemon_cpu_percent(pid: int, seconds: float) -> float:
    """The daemon's CPU use over the next ``seconds``, in % of one CPU."""
    before = cpu_ticks(pid)
    time.sleep(seconds)
    return (cpu_ticks(pid) - before) / TICKS / seconds * 100


def bench_sampling(b: Bench, count: int, seconds: float) -> list[str]:
    from minicontainer.client import Client
    from minicontainer.observe.sampler import Sampler

    client = Client(str(b.sock))
    boxes = [client.containers.get(f"bench-stats-{i}") for i in range(count)]
    pid = b.daemon.pid
    idle = daemon_cpu_percent(pid, seconds)
    client_before = os.times()
    sampler = Sampler(client, boxes, interval=0.1).start()
    time.sleep(0.5)  # the streams are open and flowing
    busy = daemon_cpu_percent(pid, seconds)
    series = sampler.stop()
    client_after = os.times()
    points = sum(len(s) for s in series)
    cost = busy - idle
    client_cpu = (client_after.user + client_after.system - client_before.user - client_before.system) / \
        (seconds + 0.5) * 100
    return [f"daemon idle with {count} containers: {idle:.2f}% of one CPU over {seconds:g} s",
            (f"daemon while sampling {count} containers every 0.1 s: {busy:.2f}% ({points} points received, "
            f"{points / seconds / count:.1f} per container per second)"),
            (f"the sampling's cost in the daemon: {cost:.2f}% of one CPU  (target < {SAMPLING_TARGET:g}%: "
            f"{'met' if cost < SAMPLING_TARGET else 'NOT met'})"),
            f"(the sampler itself, in this process: {client_cpu:.1f}% of one CPU)"]


def wall(cmd: list[str], env: dict | None, runs: int) -> tuple[float, str]:
    times = []
    out = ""
    for _ in range(runs):
        start = time.perf_counter()
        r = sh(cmd, env=env)
        times.append(time.perf_counter() - start)
        out = must(r, " ".join(cmd[:3]))
    return statistics.median(times) * 1000, out


def bench_no_stream(b: Bench, count: int, runs: int) -> list[str]:
    ours, table = wall([str(CLI), "stats", "--no-stream"], b.env, runs)
    rows = len(table.splitlines()) - 1
    lines = [f"minicontainer stats --no-stream ({rows} containers): {ours:.0f} ms (median of {runs})"]
    if not b.podman:
        return [*lines, f"podman stats --no-stream: FAILED ({b.podman_error})"]
    for i in range(count):
        must(sh([*b.podman, "run", "-d", "--network", "none", *PODMAN_ULIMITS, "--name", f"bench-stats-{i}",
                 "busybox", "sleep", "600"]), f"podman run -d #{i}")
    theirs, table = wall([*b.podman, "stats", "--no-stream"], None, runs)
    rows = len(table.splitlines()) - 1
    ratio = ours / theirs
    return [*lines, f"podman stats --no-stream ({rows} containers): {theirs:.0f} ms (median of {runs})",
            (f"ratio ours/podman: {ratio:.2f}x  (target <= {NO_STREAM_TARGET:g}x: "
            f"{'met' if ratio <= NO_STREAM_TARGET else 'NOT met'})")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of sampling (and of idle baseline)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each stats --no-stream")
    args = ap.parse_args()
    if needs_root("bench_stats", "containers, cgroups, a daemon"):
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="mcbench-stats-"))
    env = daemon_env(workdir)
    b = Bench(workdir=workdir, env=env, cgroups_before=find_cgroups("minicontainer-"))
    print(f"bench_stats {time.strftime('%Y-%m-%d %H:%M:%S')}: {machine_facts()}\n")
    try:
        start_daemon(b)
        must(cli(b, "starter", "busybox", timeout=300), "minicontainer starter busybox")
        for i in range(args.containers):
            must(cli(b, "run", "-d", "--name", f"bench-stats-{i}", "busybox", "sleep", "600"), f"run -d #{i}")
        time.sleep(1)
        print(f"== 1. sampling {args.containers} containers at 10 Hz")
        for line in bench_sampling(b, args.containers, args.seconds):
            print(f"   {line}")
        setup_podman(b)
        print(f"\n== 2. stats --no-stream of {args.containers} running containers")
        for line in bench_no_stream(b, args.containers, args.runs):
            print(f"   {line}")
    except Exception as e:  # noqa: BLE001 -- a report: say what failed, then clean up
        print(f"bench_stats: {type(e).__name__}: {e}")
    finally:
        left = cleanup(b)
    report_left(left, "nothing left behind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
