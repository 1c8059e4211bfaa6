"""What Docker's confinement costs a container's start: the default seccomp profile and the device rules.

Run as root::

    .venv/bin/python benchmarks/bench_confinement.py [--runs N]

One busybox bundle whose program is ``true``, run by ``minicontainer-runtime run`` in two configs,
alternately: the runtime's default, and the same with what the engine adds to every container
(Docker's seccomp profile, compiled by libseccomp and loaded in init; the deny-all device rule
and the container's own devices, written to the devices cgroup; CAP_MKNOD).  Target: at most 3 ms
more.  The script is a report, not a test: it always exits 0, and removes what it made.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minicontainer.engine import confinement, seccomp_profile
from minicontainer.runtime import busybox

OURS = Path(sys.executable).parent / "minicontainer-runtime"
TARGET_MS = 3.0


def bundle(workdir: Path, name: str, confined: bool) -> Path:
    b = workdir / name
    b.mkdir()
    (b / "rootfs").symlink_to(workdir / "rootfs")
    config = json.loads((workdir / "base.json").read_text())
    config["root"]["path"] = str(workdir / "rootfs")
    config["linux"]["cgroupsPath"] = f"minicontainer-bench-{name}"
    if confined:
        caps = list(confinement.DOCKER_CAPABILITIES)
        config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        config["linux"]["seccomp"] = seccomp_profile.for_container(set(caps))
        config["linux"].setdefault("resources", {})["devices"] = [{"allow": False, "access": "rwm"}]
    (b / "config.json").write_text(json.dumps(config))
    return b


def time_run(b: Path, root: Path, i: int) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([str(OURS), "--root", str(root), "run", "--bundle", str(b), f"bench-{b.name}-{i}"],
                       capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{b.name}: {r.stderr.strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="minicontainer-bench-conf") as tmp:
        work = Path(tmp)
        busybox.make_rootfs(str(work / "rootfs"))
        from minicontainer.runtime.defaults import default_config

        (work / "base.json").write_text(json.dumps(default_config(["true"])))
        plain, confined = bundle(work, "plain", False), bundle(work, "confined", True)
        root = work / "state"
        times: dict[str, list[float]] = {"plain": [], "confined": []}
        for i in range(args.runs + 2):
            for b in (plain, confined):
                t = time_run(b, root, i)
                if i >= 2:  # the first two warm the page cache and the byte-code
                    times[b.name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    extra = med["confined"] - med["plain"]
    print(f"minicontainer-runtime run, median of {args.runs}: default {med['plain']:.1f} ms, "
          f"with Docker's seccomp profile and device rules {med['confined']:.1f} ms")
    print(f"confinement costs {extra:+.1f} ms (target: at most {TARGET_MS:.0f} ms): "
          f"{'OK' if extra <= TARGET_MS else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
