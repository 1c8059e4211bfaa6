"""Writes in a container's mounts, next to the same writes on the host: a bind mount and a volume cost nothing.

Run as root::

    .venv/bin/python benchmarks/bench_volumes.py [--runs N] [--mib N] [--files N]

A ``minicontainerd`` of the script's own (temporary roots) gets the offline busybox image; then the
same two workloads run, timed by busybox's own ``time`` (10 ms resolution) around them:

1. **large writes**: ``dd bs=1M count=256 conv=fsync`` (256 MiB in 1 MiB blocks, then fsync);
2. **many small files**: 5000 files of 100 bytes written by the shell, then ``sync -f`` (syncfs(2)
   of that one filesystem), then removed;

in four places, all on the same host filesystem (the temporary directory's):

| row | where the writes land |
|---|---|
| host | a directory of the host, by the host's busybox (no container) |
| bind mount | the same kind of directory, ``-v DIR:/data`` into a container |
| named volume | ``-v benchvol:/data``: the volume's ``_data`` directory, bind-mounted |
| container layer | the container's own overlay upper layer (no mount): for contrast |

Each runs ``--runs`` times (5 by default), the places taking turns (so that the machine's other work
weighs on all alike).  Two ratios to the host: of the best wall time (the run least disturbed by the
rest of the machine) and of the median CPU time (user + system: the work the writes cost, which a
mount could add to, and which a busy machine disturbs less than the wall time).
**Target: the bind mount and the volume at the host's own speed (a ratio <= 1.1, by either measure).**  A bind mount is
the same inode seen at another path: the kernel adds nothing per write.  The container layer is
overlayfs; new files there cost little more, rewriting an image's files costs a copy-up each.

A report, not a test: it always exits 0, and removes what it made (its containers, its volume,
its daemon, its temporary directory).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import Bench, cleanup, cli, find_cgroups, machine_facts, must, sh, start_daemon
from harness import (  # set-up and report, shared by the benchmarks (same directory)
    daemon_env,
    needs_root,
    report_left,
)

TARGET = 1.1


def workloads(mib: int, files: int) -> dict[str, str]:
    """The shell scripts, writing in $D (busybox sh, on the host and in the container alike)."""
    return {
        f"{mib} MiB in 1 MiB blocks, fsync": f'dd if=/dev/zero of="$D/big" bs=1M count={mib} conv=fsync 2>/dev/null; '
                                              'rm "$D/big"',
        f"{files} small files, syncfs": f'i=0; while [ $i -lt {files} ]; do echo "{"x" * 99}" > "$D/f$i"; i=$((i+1)); '
                                        'done; sync -f "$D"; rm "$D"/f*',
    }


def seconds(stderr: str) -> tuple[float, float]:
    """busybox ``time -f "%e %U %S"``'s figures (the last line of stderr): wall time, CPU time (user + system)."""
    wall, user, system = (float(x) for x in stderr.strip().splitlines()[-1].split())
    return wall, user + system


def on_host(b: Bench, directory: Path, script: str) -> tuple[float, float]:
    busybox = shutil.which("busybox")
    r = sh(["busybox", "time", "-f", "%e %U %S", busybox, "sh", "-c", script], env={**b.env, "D": str(directory)}, timeout=600)
    must(r, "host run")
    return seconds(r.stderr)


def in_container(b: Bench, flags: list[str], directory: str, script: str) -> tuple[float, float]:
    r = cli(b, "run", "--rm", *flags, "-e", f"D={directory}", "busybox", "time", "-f", "%e %U %S", "sh", "-c",
            f'mkdir -p "$D"; {script}', timeout=600)
    must(r, f"run {' '.join(flags)}")
    return seconds(r.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs of each workload in each place (the median is kept)")
    ap.add_argument("--mib", type=int, default=256, help="MiB of the large write")
    ap.add_argument("--files", type=int, default=5000, help="how many small files")
    args = ap.parse_args()
    if needs_root("bench_volumes", "a daemon, mounts"):
        return 0
    if not shutil.which("busybox"):
        print("bench_volumes: the host's busybox is needed (apt-get install busybox-static); nothing measured")
        return 0
    # On /var/tmp, a disk (not a tmpfs /tmp): every row writes to the same filesystem.
    workdir = Path(tempfile.mkdtemp(prefix="mcbench-volumes-", dir="/var/tmp"))
    env = daemon_env(workdir)
    b = Bench(workdir=workdir, env=env, cgroups_before=find_cgroups("minicontainer-"))
    print(f"bench_volumes {time.strftime('%Y-%m-%d %H:%M:%S')}: {machine_facts()}")
    print(f"workdir {workdir} ({sh(['stat', '-f', '-c', '%T', str(workdir)]).stdout.strip()})\n")
    left: list[str] = []
    try:
        start_daemon(b)
        must(cli(b, "starter", "busybox", timeout=300), "minicontainer starter busybox")
        host_dir, bind_dir = workdir / "host", workdir / "bind"
        host_dir.mkdir()
        bind_dir.mkdir()
        places = {
            "host": lambda script: on_host(b, host_dir, script),
            "bind mount": lambda script: in_container(b, ["-v", f"{bind_dir}:/data"], "/data", script),
            "named volume": lambda script: in_container(b, ["-v", "benchvol:/data"], "/data", script),
            "container layer": lambda script: in_container(b, [], "/work", script),
        }
        print(f"{'workload':36} {'where':16} {'wall s':>7} {'vs host':>8} {'CPU s':>6} {'vs host':>8}   wall s of each run")
        verdicts = []
        for name, script in workloads(args.mib, args.files).items():
            runs: dict[str, list[tuple[float, float]]] = {where: [] for where in places}
            for _ in range(args.runs):
                for where, run in places.items():
                    runs[where].append(run(script))
            host_wall, host_cpu = min(w for w, _ in runs["host"]), statistics.median(c for _, c in runs["host"])
            for where, times in runs.items():
                wall, cpu = min(w for w, _ in times), statistics.median(c for _, c in times)
                ratios = (wall / host_wall if host_wall else 1.0, cpu / host_cpu if host_cpu else 1.0)
                if where in ("bind mount", "named volume"):
                    verdicts.append(min(ratios) <= TARGET)
                print(f"{name:36} {where:16} {wall:7.2f} {ratios[0]:7.2f}x {cpu:6.2f} {ratios[1]:7.2f}x   "
                      + " ".join(f"{w:.2f}" for w, _ in times))
        print(f"\nbind mount and named volume at the host's speed (<= {TARGET}x): "
              f"{'MET' if all(verdicts) else 'NOT MET'}")
        must(cli(b, "volume", "rm", "benchvol"), "volume rm") if cli(b, "volume", "--help").returncode == 0 else None
    except Exception as e:  # noqa: BLE001 - a report: say what failed, clean up, exit 0
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        left = cleanup(b)
    report_left(left, "containers removed, daemon stopped, no mounts, temp dir (and the volume in it) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
