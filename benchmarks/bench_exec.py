"""``exec`` of ``true`` into a running container: ours next to ``runc exec`` and ``podman exec``.

Run as root::

    .venv/bin/python benchmarks/bench_exec.py [--runs N] [--no-hyperfine]

One busybox container running ``sleep`` per engine, side by side in one run:

* **ours, from the Python client**: ``container.exec_run("true")`` (docker-py's shape) in this
  process: exec create, the hijacked start, the stream to its end, the exec inspect; no interpreter
  start-up, as in a notebook.  Target: at most 1.0x ``runc exec``.
* **ours, from the CLI**: ``minicontainer exec ID true``, interpreter and all.  Target: at most 0.3x
  ``podman exec``.
* ``runc exec ID true`` (a container of ``runc run -d`` on a busybox bundle), and ``podman exec ID
  true`` (podman with runc on temporary roots, the image loaded from our own ``minicontainer save``).

The commands are timed with ``hyperfine -N --warmup 3`` (or a Python loop); the client's calls with
``time.perf_counter`` around each call, after 3 warm-up calls.  The daemon, podman and the runc
container are set up and removed by the helpers of ``bench_engine.py``.  A report, not a test: it
always exits 0, and says what it left behind (nothing, normally).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_engine import (
    CLI,
    PODMAN_ULIMITS,
    Bench,
    Timing,
    cleanup,
    cli,
    find_cgroups,
    machine_facts,
    make_runc_bundle,
    must,
    sanity_check,
    setup_podman,
    sh,
    start_daemon,
    time_with_hyperfine,
    time_with_python,
    verdict,
)
from harness import (  # set-up and report, shared by the benchmarks (same directory)
    daemon_env,
    needs_root,
    report_left,
    run_as_report,
)

CLIENT_VS_RUNC, CLI_VS_PODMAN = 1.0, 0.3  # targets: ours/runc from the Python client, ours/podman from the CLI


def time_client(b: Bench, cid: str, runs: int) -> Timing:
    """``exec_run("true")`` through the Python client, each call timed, after 3 warm-up calls."""
    from minicontainer.client import Client

    t = Timing("ours: client exec_run('true')", ["(in this process)"])
    box = Client(str(b.sock)).containers.get(cid)
    samples = []
    for i in range(3 + runs):
        start = time.perf_counter()
        result = box.exec_run("true")
        elapsed = (time.perf_counter() - start) * 1000
        if result.exit_code != 0:
            t.error = f"exit {result.exit_code} on call {i + 1}: {result.output[:200]!r}"
            return t
        if i >= 3:
            samples.append(elapsed)
    t.mean, t.median = statistics.mean(samples), statistics.median(samples)
    t.stddev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return t


def start_runc_container(b: Bench) -> None:
    b.runc_root, b.runc_id = b.workdir / "runc-root", f"bench-exec-runc-{os.getpid()}"
    bundle = make_runc_bundle(b)
    config_path = bundle / "config.json"
    config_path.write_text(config_path.read_text().replace('"/bin/true"', '"/bin/sleep", "1000"'))
    # Not pipes: the container inherits runc's stdio, and would hold a pipe open for its whole life.
    with open(b.workdir / "runc.log", "w+") as log:
        r = subprocess.run(["runc", "--root", str(b.runc_root), "run", "--detach", "--bundle", str(bundle), b.runc_id],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False, timeout=60)
        log.seek(0)
        if r.returncode != 0:
            raise RuntimeError(f"runc run --detach: exit {r.returncode}: {log.read()[-400:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per command (after 3 warm-up runs)")
    ap.add_argument("--no-hyperfine", action="store_true", help="time with a Python loop even if hyperfine is here")
    args = ap.parse_args()
    if needs_root("bench_exec", "namespaces, mounts, cgroups, a daemon"):
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="mcbench-exec-"))  # short: podman refuses a long --runroot
    env = daemon_env(workdir, MINICONTAINER_AUTOSTART="0")
    b = Bench(workdir=workdir, env=env, runc_cgroup=f"minicontainer-bench-exec-{os.getpid()}",
              cgroups_before=find_cgroups("minicontainer-"))
    print(f"bench_exec {time.strftime('%Y-%m-%d %H:%M:%S')}: {machine_facts()}")
    left: list[str] = []
    try:
        start_daemon(b)
        must(cli(b, "starter", "busybox", timeout=300), "minicontainer starter busybox")
        ours = must(cli(b, "run", "-d", "busybox", "sleep", "1000"), "minicontainer run -d").strip()
        setup_podman(b)
        t = {"client": time_client(b, ours, args.runs),
             "cli": Timing("ours: minicontainer exec ID true", [str(CLI), "exec", ours, "true"]),
             "runc": Timing("runc exec ID true", []), "podman": Timing("podman exec ID true", [])}
        if shutil.which("runc"):
            start_runc_container(b)
            t["runc"].command = ["runc", "--root", str(b.runc_root), "exec", b.runc_id, "true"]
        else:
            t["runc"].error = "runc is not on PATH"
        if b.podman:
            pid = must(sh([*b.podman, "run", "-d", "--network", "none", *PODMAN_ULIMITS, "busybox", "sleep", "1000"]),
                       "podman run -d").strip()
            t["podman"].command = [*b.podman, "exec", pid, "true"]
        else:
            t["podman"].error = b.podman_error or "podman is not usable"
        runnable = [x for x in (t["cli"], t["runc"], t["podman"]) if not x.error and sanity_check(x, b.env)]
        use_hyperfine = bool(shutil.which("hyperfine")) and not args.no_hyperfine
        if use_hyperfine:
            time_with_hyperfine(runnable, args.runs, b)
        else:
            time_with_python(runnable, args.runs, b.env)
        how = "hyperfine -N --warmup 3" if use_hyperfine else "Python loop, 3 warm-up"
        print(f"\n== exec of `true` into a running busybox container ({how} --runs {args.runs}; the client: "
              f"{args.runs} calls after 3)\n")
        print(f"   {'what':<36} {'mean ms':>9} {'median ms':>10} {'stddev ms':>10}")
        for x in t.values():
            if x.error:
                print(f"   {x.name:<36} {'FAILED':>9}  {x.error}")
            else:
                print(f"   {x.name:<36} {x.mean:9.1f} {x.median:10.1f} {x.stddev:10.1f}")
        print("\n== ratios (means)")
        for ours_key, ref_key, target in (("client", "runc", CLIENT_VS_RUNC), ("cli", "podman", CLI_VS_PODMAN),
                                          ("cli", "runc", None), ("client", "podman", None)):
            a, r = t[ours_key], t[ref_key]
            label = f"{a.name.split(': ')[1]} / {r.name}"
            if a.error or r.error:
                print(f"   {label:<56} n/a")
                continue
            ratio = a.mean / r.mean
            goal = f"target <= {target:.1f}x: {verdict(ratio <= target)}" if target else "(for reference)"
            print(f"   {label:<56} {ratio:5.2f}x  {goal}")
    finally:
        left = cleanup(b)
    report_left(left, "containers removed, daemon stopped, runc container deleted, podman root reset, temp dir removed")
    return 0


if __name__ == "__main__":
    run_as_report(main, "bench_exec")
