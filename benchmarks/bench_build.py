"""``minicontainer build`` next to ``podman build`` (buildah), on the same five-step Dockerfile.

Run as root::

    .venv/bin/python benchmarks/bench_build.py [--runs N]

A ``minicontainerd`` of the script's own (temporary roots, the offline busybox image) and a podman on
temporary roots (with runc, the same busybox loaded from ``minicontainer save``; see
``bench_engine.py``, whose helpers this script uses) build::

    FROM busybox
    COPY app.txt /app/
    RUN echo one > /one
    RUN cat /app/app.txt > /two
    CMD ["cat", "/two"]

twice each: **uncached** (``--no-cache``: every step done, two intermediate containers run and
committed) and **fully cached** (the same build again: every step a cache hit).  Wall time of the
whole command, as a user waits for it; the median of ``--runs`` (default 1, as the target says: one
run).  Targets: uncached <= 0.5x podman build, cached <= 0.25x.

The script is a report, not a test: it always exits 0, and cleans up after itself as bench_engine does.
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
    Bench,
    cleanup,
    cli,
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

UNCACHED_TARGET, CACHED_TARGET = 0.5, 0.25
DOCKERFILE = """\
FROM busybox
COPY app.txt /app/
RUN echo one > /one
RUN cat /app/app.txt > /two
CMD ["cat", "/two"]
"""


def timed(runs: int, command) -> tuple[float, str]:
    """Median seconds of ``runs`` calls of ``command()`` (a CompletedProcess); the last output."""
    times, out = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        r = command()
        times.append(time.perf_counter() - start)
        out = must(r, "build")
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="builds timed per row (the median is shown)")
    args = ap.parse_args()
    if needs_root("bench_build", "a daemon, mounts, containers"):
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="mcbench-build-"))  # short: podman's --runroot limit
    env = daemon_env(workdir, MINICONTAINER_AUTOSTART="0")
    b = Bench(workdir=workdir, env=env, runc_cgroup=f"minicontainer-bench-build-{os.getpid()}",
              cgroups_before=find_cgroups("minicontainer-"))
    print(f"bench_build {time.strftime('%Y-%m-%d %H:%M:%S')}: {machine_facts()}\n")
    context = workdir / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "app.txt").write_text("the application\n")
    left: list[str] = []
    try:
        start_daemon(b)
        must(cli(b, "starter", "busybox", timeout=300), "minicontainer starter busybox")
        setup_podman(b)
        rows: dict[str, tuple[float, float]] = {}
        ours_cold, _ = timed(args.runs, lambda: cli(b, "build", "--no-cache", "-t", "bench:1", str(context)))
        ours_warm, cached_out = timed(args.runs, lambda: cli(b, "build", "-t", "bench:1", str(context)))
        if cached_out.count("Using cache") != 4:
            raise RuntimeError(f"the second build was not all cache hits:\n{cached_out}")
        must(cli(b, "run", "--rm", "bench:1"), "run of the built image")
        rows["minicontainer build"] = (ours_cold, ours_warm)
        if b.podman:
            build = [*b.podman, "build", "--network", "none", "--ulimit", "nofile=4096:4096", "-t", "bench:1"]
            cold, _ = timed(args.runs, lambda: sh([*build, "--no-cache", str(context)], timeout=600))
            warm, _ = timed(args.runs, lambda: sh([*build, str(context)], timeout=600))
            rows["podman build"] = (cold, warm)
        else:
            print(f"podman: {b.podman_error} (no comparison)")
        print(f"five-step Dockerfile (FROM, COPY, 2 x RUN, CMD), median of {args.runs} run(s), wall time:")
        print(f"   {'':22}{'uncached':>12}{'fully cached':>16}")
        for name, (cold, warm) in rows.items():
            print(f"   {name:22}{cold * 1000:10.0f} ms{warm * 1000:14.0f} ms")
        if "podman build" in rows:
            pc, pw = rows["podman build"]
            uncached, cached = ours_cold / pc, ours_warm / pw
            print(f"\n   ours / podman, uncached:     {uncached:.2f}x  (target <= {UNCACHED_TARGET}x: "
                  f"{'met' if uncached <= UNCACHED_TARGET else 'NOT met'})")
            print(f"   ours / podman, fully cached: {cached:.2f}x  (target <= {CACHED_TARGET}x: "
                  f"{'met' if cached <= CACHED_TARGET else 'NOT met'})")
    except Exception as e:  # noqa: BLE001 - a report: say what failed, then clean up
        print(f"bench_build: {type(e).__name__}: {e}")
    finally:
        left = cleanup(b)
    report_left(left, "daemon stopped, podman root reset, no mounts, no new minicontainer-* cgroup, temp dir removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
