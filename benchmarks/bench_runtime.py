"""How long does ``minicontainer-runtime run`` take, next to runc and next to the bare kernel?

Run as root::

    .venv/bin/python benchmarks/bench_runtime.py [--runs N]

One busybox bundle whose program is ``true`` is built in a temporary directory, with a relative
``linux.cgroupsPath`` so that both runtimes create (and remove) a cgroup on every run.  Three commands
are timed side by side on that same bundle:

* ``minicontainer-runtime run``: the venv's console script, exactly as a user types it;
* ``runc run``: the reference runtime, written in Go;
* the *floor*: ``unshare --mount --uts --ipc --pid --net --fork chroot ROOTFS /bin/true``, the namespaces
  and the change of root with nothing else (no cgroup, no /proc or /dev, no capabilities): no runtime
  can be much faster than this.

Then our own time is split into: starting the Python interpreter, importing the runtime's modules,
and the rest (the actual container work).  The script is a report, not a test: it always exits 0.
It cleans up after itself and checks that no ``minicontainer-bench*`` cgroup is left.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import needs_root, run_as_report  # set-up and report, shared by the benchmarks (same directory)

from minicontainer.runtime import busybox

VENV_BIN = Path(sys.executable).parent
OURS = VENV_BIN / "minicontainer-runtime"
TARGET, AIM = 1.0, 0.5  # ours/runc: at most as slow as runc; aim for twice as fast


@dataclass
class Timing:
    name: str
    command: list[str]
    mean: float = 0.0  # all in milliseconds
    median: float = 0.0
    stddev: float = 0.0
    error: str = ""


# --- the bundle ---------------------------------------------------------------------------------------


def make_bench_bundle(workdir: Path, cgroup_name: str) -> Path:
    bundle = workdir / "bundle"
    bundle.mkdir()
    busybox.make_rootfs(str(bundle / "rootfs"))
    config = busybox.default_config(["/bin/true"])
    config["linux"]["cgroupsPath"] = cgroup_name
    busybox.write_config(str(bundle), config)
    return bundle


def console_script_interpreter() -> str:
    """The interpreter named in the console script's ``#!`` line: the one a user's command starts."""
    first = OURS.read_text().splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


# --- timing -------------------------------------------------------------------------------------------


def sanity_check(t: Timing) -> bool:
    """Run once before timing: a command that fails would only time its error message."""
    r = subprocess.run(t.command, check=False, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        t.error = f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}"
        return False
    return True


def time_with_hyperfine(timings: list[Timing], runs: int, workdir: Path) -> None:
    out = workdir / "hyperfine.json"
    cmd = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--style", "none",
           "--export-json", str(out)]
    cmd += [shlex.join(t.command) for t in timings]  # -N splits shell-style, without a shell
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        errors = [line for line in r.stderr.splitlines() if line.startswith("Error")]
        for t in timings:
            t.error = f"hyperfine failed: {errors[-1] if errors else r.stderr.strip()[-300:]}"
        return
    results = json.loads(out.read_text())["results"]
    for t, res in zip(timings, results):
        t.mean, t.median, t.stddev = (res[k] * 1000 for k in ("mean", "median", "stddev"))


def time_with_python(timings: list[Timing], runs: int) -> None:
    for t in timings:
        samples = []
        for i in range(3 + runs):
            start = time.perf_counter()
            r = subprocess.run(t.command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elapsed = (time.perf_counter() - start) * 1000
            if r.returncode != 0:
                t.error = f"exit {r.returncode} on run {i + 1}"
                break
            if i >= 3:  # the first three are warm-up
                samples.append(elapsed)
        if samples and not t.error:
            t.mean, t.median = statistics.mean(samples), statistics.median(samples)
            t.stddev = statistics.stdev(samples) if len(samples) > 1 else 0.0


def slowest_imports(python: str, module: str, count: int = 8) -> list[tuple[int, int, str]]:
    """``python -X importtime``: the modules with the largest own import time, as (self us, cumulative us, name)."""
    r = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], check=False,
                       capture_output=True, text=True)
    rows = []
    for line in r.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:count]


# --- clean-up -----------------------------------------------------------------------------------------


def cleanup(ours_root: Path, ours_id: str, runc_root: Path, runc_id: str, cgroup_name: str) -> list[str]:
    """Delete what a failed run may have left; returns what is still there afterwards."""
    if (ours_root / ours_id).exists():
        subprocess.run([str(OURS), "--root", str(ours_root), "delete", "--force", ours_id],
                       check=False, capture_output=True)
    if shutil.which("runc") and (runc_root / runc_id).exists():
        subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", runc_id],
                       check=False, capture_output=True)
    # A cgroup directory of our own name that survived both deletes (e.g. a runtime crashed between
    # mkdir and its state file): it is empty of processes by now, so rmdir removes it.
    for path in find_bench_cgroups(cgroup_name):
        for top, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(top)
            except OSError:
                pass
    return find_bench_cgroups("minicontainer-bench")


def find_bench_cgroups(prefix: str) -> list[str]:
    r = subprocess.run(["find", "/sys/fs/cgroup", "-name", f"{prefix}*"],
                       check=False, capture_output=True, text=True)
    return r.stdout.split()


# --- the report ---------------------------------------------------------------------------------------


def print_table(timings: list[Timing]) -> None:
    print(f"{'command':<34} {'mean ms':>9} {'median ms':>10} {'stddev ms':>10}")
    for t in timings:
        if t.error:
            print(f"{t.name:<34} {'FAILED':>9}  {t.error}")
        else:
            print(f"{t.name:<34} {t.mean:9.1f} {t.median:10.1f} {t.stddev:10.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per command (after 3 warm-up runs)")
    ap.add_argument("--no-hyperfine", action="store_true", help="time with a Python loop even if hyperfine is here")
    args = ap.parse_args()

    if needs_root("bench_runtime", "real namespaces, mounts and cgroups"):
        return 0
    if not OURS.exists():
        print(f"bench_runtime: {OURS} not found (pip install -e . in the venv); nothing measured")
        return 0

    pid = os.getpid()
    cgroup_name = f"minicontainer-bench-{pid}"
    ours_id, runc_id = f"bench-ours-{pid}", f"bench-runc-{pid}"
    workdir = Path(tempfile.mkdtemp(prefix="minicontainer-bench-"))
    ours_root, runc_root = workdir / "ours-root", workdir / "runc-root"
    left: list[str] = []
    try:
        bundle = make_bench_bundle(workdir, cgroup_name)
        python = console_script_interpreter()
        ours = Timing("minicontainer-runtime run", [str(OURS), "--root", str(ours_root), "run", "--bundle",
                                                    str(bundle), ours_id])
        runc = Timing("runc run", ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), runc_id])
        floor = Timing("unshare+chroot floor", ["unshare", "--mount", "--uts", "--ipc", "--pid", "--net",
                                                "--fork", "chroot", str(bundle / "rootfs"), "/bin/true"])
        interp = Timing("  python -c pass", [python, "-c", "pass"])
        imports = Timing("  python -c 'import ...lifecycle'", [python, "-c", "import minicontainer.runtime.lifecycle"])
        if not shutil.which("runc"):
            runc.error = "runc is not on PATH"
        timings = [ours, runc, floor, interp, imports]
        runnable = [t for t in timings if not t.error and sanity_check(t)]

        use_hyperfine = shutil.which("hyperfine") and not args.no_hyperfine
        print(f"bundle: {bundle} (busybox, /bin/true, cgroupsPath={cgroup_name})")
        print(f"timing: {'hyperfine -N --warmup 3' if use_hyperfine else 'Python loop, 3 warm-up'}"
              f" --runs {args.runs}; {os.cpu_count()} CPUs; interpreter {python}\n")
        if use_hyperfine:
            time_with_hyperfine(runnable, args.runs, workdir)
        else:
            time_with_python(runnable, args.runs)
        print_table(timings)

        print()
        if not ours.error and not runc.error:
            ratio = ours.mean / runc.mean
            verdict = "met" if ratio <= TARGET else "NOT met"
            aim = "reached" if ratio <= AIM else "not reached"
            print(f"ours / runc : {ratio:5.2f}x   (target <= {TARGET:.1f}x: {verdict}; aim {AIM:.1f}x: {aim})")
        if not ours.error and not floor.error:
            print(f"ours / floor: {ours.mean / floor.mean:5.2f}x")
        if not runc.error and not floor.error:
            print(f"runc / floor: {runc.mean / floor.mean:5.2f}x")

        if not (ours.error or interp.error or imports.error):
            start = interp.mean
            imported = max(imports.mean - interp.mean, 0.0)
            rest = max(ours.mean - imports.mean, 0.0)
            print("\nwhere our time goes (means):")
            for label, ms in (("python interpreter start", start),
                              ("importing minicontainer.runtime.lifecycle", imported),
                              ("the rest: argparse, bundle, fork, namespaces, mounts, cgroup, wait, delete", rest)):
                print(f"  {ms:7.1f} ms {100 * ms / ours.mean:5.1f}%  {label}")
            print("\nslowest imports, one run of `python -X importtime` (which itself adds overhead):")
            print(f"  {'self ms':>8} {'cumul. ms':>9}  module")
            for own, cumulative, name in slowest_imports(python, "minicontainer.runtime.lifecycle"):
                print(f"  {own / 1000:8.1f} {cumulative / 1000:9.1f}  {name}")
    finally:
        left = cleanup(ours_root, ours_id, runc_root, runc_id, cgroup_name)
        shutil.rmtree(workdir, ignore_errors=True)
    if left:
        print(f"\nWARNING: minicontainer-bench* cgroups still present: {left}")
    else:
        print("\nclean-up: containers deleted, temp dir removed, no minicontainer-bench* cgroup left")
    return 0


if __name__ == "__main__":
    run_as_report(main, "bench_runtime")
