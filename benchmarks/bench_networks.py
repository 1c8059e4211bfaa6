"""Networking costs: a bridge network's run latency, a published port's throughput, names resolved.

Run as root::

    .venv/bin/python benchmarks/bench_networks.py [--runs N] [--requests N] [--containers N]

A ``minicontainerd`` of the script's own (temporary roots, a bridge ``mcbench0`` and a pool of
subnets of its own) gets the offline busybox and redis images, then:

1. **run latency on the default bridge**: ``minicontainer run --rm --network bridge busybox true``
   (a veth pair, an address, a route: the whole wiring, each run) next to ``podman run --rm
   --network bridge`` of the same image (loaded from ``minicontainer save``).  Target: <= 0.25x.
   ``--network none`` (only ``lo``) is timed too: the difference is what the wiring costs.
2. **throughput through a published port**: ``redis-benchmark`` (GET and SET) against
   ``127.0.0.1:PORT`` (``-p PORT:6379``: DNAT in the kernel, no proxy) next to the same against the
   container's own address.  Target: >= 0.8x of direct.
3. **names on a user-defined network**: N containers on one network; each resolves every other's
   name (``nslookup``, through the daemon's DNS server).  The total time is printed.

A report, not a test: it always exits 0, and removes what it made (containers, networks, its daemon,
which takes its bridges and rules with it; podman's temporary root).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import (  # the engine benchmark's daemon, podman and clean-up helpers (same directory)
    PODMAN_ULIMITS,
    Bench,
    Timing,
    cleanup,
    cli,
    find_cgroups,
    machine_facts,
    must,
    setup_podman,
    sh,
    start_daemon,
    time_with_python,
)
from harness import daemon_env, needs_root  # set-up and report, shared by the benchmarks (same directory)

PODMAN_TARGET, THROUGHPUT_TARGET = 0.25, 0.8
BRIDGE = "mcbench0"
# What podman's bridge network (CNI, on Debian 12's podman 4.3) leaves on the host after its first use.
CNI_BRIDGE, CNI_STATE, CNI_CHAINS = "cni-podman0", Path("/var/lib/cni"), ("CNI-FORWARD", "CNI-ADMIN")


def podman_network_state() -> tuple[bool, bool, bool]:
    chains = sh(["iptables", "-S"]).stdout
    return (os.path.exists(f"/sys/class/net/{CNI_BRIDGE}"), CNI_STATE.exists(),
            any(f"-N {c}" in chains for c in CNI_CHAINS))


def undo_podman_network(before: tuple[bool, bool, bool]) -> list[str]:
    """Remove podman's bridge, state and filter chains, if this run made them (they were not there)."""
    had_bridge, had_state, had_chains = before
    if not had_bridge and os.path.exists(f"/sys/class/net/{CNI_BRIDGE}"):
        sh(["ip", "link", "del", CNI_BRIDGE])
    if not had_state:
        shutil.rmtree(CNI_STATE, ignore_errors=True)
    if not had_chains:
        sh(["iptables", "-D", "FORWARD", "-m", "comment", "--comment", "CNI firewall plugin rules", "-j",
            CNI_CHAINS[0]])
        for chain in CNI_CHAINS:
            sh(["iptables", "-F", chain])
        for chain in CNI_CHAINS:
            sh(["iptables", "-X", chain])
    return [f"podman's {what} is still there" for what, was, now in
            zip(("bridge", "CNI state", "CNI chains"), before, podman_network_state()) if now and not was]


def bench_run(b: Bench, runs: int) -> tuple[Timing, Timing, Timing]:
    cli_path = str(Path(sys.executable).parent / "minicontainer")
    ours = Timing("ours", [cli_path, "run", "--rm", "--network", "bridge", "busybox", "true"])
    none = Timing("ours, --network none", [cli_path, "run", "--rm", "--network", "none", "busybox", "true"])
    podman = Timing("podman", [*b.podman, "run", "--rm", "--network", "bridge", *PODMAN_ULIMITS, "busybox", "true"])
    timed = [ours, none]
    if b.podman:
        r = sh(podman.command, timeout=120)
        if r.returncode == 0:
            timed.append(podman)
        else:
            podman.error = f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[-200:]}"
    else:
        podman.error = b.podman_error
    time_with_python(timed, runs, b.env)
    return ours, none, podman


def redis_rps(host: str, port: int, requests: int) -> float:
    """Requests per second of redis-benchmark's SET and GET (their mean), 50 clients."""
    r = sh(["redis-benchmark", "-h", host, "-p", str(port), "-t", "set,get", "-n", str(requests), "-q"], timeout=600)
    rates = [float(m) for m in re.findall(r"([0-9.]+) requests per second", r.stdout)]
    if len(rates) != 2:
        raise RuntimeError(f"redis-benchmark against {host}:{port}: {(r.stderr or r.stdout).strip()[-300:]}")
    return sum(rates) / 2


def bench_throughput(b: Bench, requests: int) -> tuple[float, float]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cid = must(cli(b, "run", "-d", "-p", f"{port}:6379", "redis"), "run -d -p ... redis").strip()
    ip = json.loads(must(cli(b, "inspect", cid), "inspect"))[0]["NetworkSettings"]["IPAddress"]
    for _ in range(50):
        if sh(["redis-cli", "-h", ip, "ping"]).stdout.strip() == "PONG":
            break
        time.sleep(0.1)
    redis_rps(ip, 6379, requests // 10)  # warm-up
    direct = redis_rps(ip, 6379, requests)
    published = redis_rps("127.0.0.1", port, requests)
    must(cli(b, "rm", "-f", cid), "rm -f redis")
    return published, direct


def bench_names(b: Bench, count: int) -> tuple[float, list[float]]:
    """Each container waits until the last one's name resolves, then resolves every name, timed by
    busybox's ``time``; returns the wall time from the last start to the last answer, and each
    container's own time (seconds)."""
    must(cli(b, "network", "create", "benchnet"), "network create")
    names = [f"n{i}" for i in range(count)]
    script = (f"until nslookup {names[-1]} >/dev/null 2>&1; do sleep 0.05; done; "
              f"time sh -c 'for n in {' '.join(names)}; do nslookup $n >/dev/null || exit 1; done'; sleep 600")
    for name in names:
        must(cli(b, "run", "-d", "--network", "benchnet", "--name", name, "busybox", "sh", "-c", script), f"run {name}")
    start = time.perf_counter()
    own: dict[str, float] = {}
    while len(own) < count and time.perf_counter() - start < 120:
        for name in names:
            if name not in own:
                m = re.search(r"real\s+(\d+)m\s*([0-9.]+)s", cli(b, "logs", name).stderr)
                if m:
                    own[name] = int(m.group(1)) * 60 + float(m.group(2))
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    must(cli(b, "rm", "-f", *names), "rm -f")
    must(cli(b, "network", "rm", "benchnet"), "network rm")
    if len(own) < count:
        raise RuntimeError(f"only {len(own)} of {count} containers resolved every name within 120 s")
    return elapsed, list(own.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each `run --rm` (after 3 warm-up runs)")
    ap.add_argument("--requests", type=int, default=100000, help="redis-benchmark requests per test")
    ap.add_argument("--containers", type=int, default=20, help="containers resolving each other's names")
    args = ap.parse_args()
    if needs_root("bench_networks", "namespaces, bridges, nftables, a daemon"):
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="mcbench-net-"))
    (workdir / "daemon.json").write_text(json.dumps({
        "bridge": BRIDGE, "default-address-pools": [{"base": "10.238.0.0/16", "size": 24}]}))
    env = daemon_env(workdir, MINICONTAINER_DAEMON_CONFIG=str(workdir / "daemon.json"))
    b = Bench(workdir=workdir, env=env, runc_cgroup=f"minicontainer-bench-net-{os.getpid()}",
              cgroups_before=find_cgroups("minicontainer-"))
    print(f"bench_networks {time.strftime('%Y-%m-%d %H:%M:%S')}: {machine_facts()}\n")
    left: list[str] = []
    podman_before = podman_network_state()
    try:
        start_daemon(b)
        must(cli(b, "starter", "busybox", "redis", timeout=300), "minicontainer starter busybox redis")
        setup_podman(b)

        print(f"== 1. run --rm --network bridge busybox true ({args.runs} runs)")
        ours, none, podman = bench_run(b, args.runs)
        for t in (ours, none, podman):
            print(f"   {t.name:<22} " + (f"FAILED  {t.error}" if t.error else f"{t.mean:7.1f} ms (median {t.median:.1f})"))
        if not ours.error and not podman.error:
            ratio = ours.mean / podman.mean
            print(f"   ratio {ratio:.2f}x podman (target <= {PODMAN_TARGET}x): {'met' if ratio <= PODMAN_TARGET else 'NOT met'}")

        if shutil.which("redis-benchmark"):
            print(f"\n== 2. redis-benchmark, {args.requests} SET + GET, 50 clients")
            published, direct = bench_throughput(b, args.requests)
            ratio = published / direct
            print(f"   direct to the container's address  {direct:10.0f} requests/s")
            print(f"   through 127.0.0.1:PORT (-p, DNAT)   {published:10.0f} requests/s")
            print(f"   ratio {ratio:.2f}x direct (target >= {THROUGHPUT_TARGET}x): "
                  f"{'met' if ratio >= THROUGHPUT_TARGET else 'NOT met'}")
        else:
            print("\n== 2. redis-benchmark is not installed (apt-get install redis-tools): skipped")

        print(f"\n== 3. {args.containers} containers on one network, each resolving all the others by name")
        elapsed, own = bench_names(b, args.containers)
        print(f"   {args.containers * args.containers} lookups (nslookup, busybox): each container's own loop "
              f"{min(own) * 1000:.0f}-{max(own) * 1000:.0f} ms (mean {sum(own) / len(own) * 1000:.0f} ms); "
              f"all done {elapsed:.2f} s after the last start (logs polled)")
    except Exception as e:  # noqa: BLE001 - a report: say what failed, then clean up
        print(f"FAILED: {type(e).__name__}: {e}")
    finally:
        left = cleanup(b) + undo_podman_network(podman_before)
    links = [n for n in os.listdir("/sys/class/net") if n.startswith(BRIDGE)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    if links or f"minicontainer_{BRIDGE}" in tables:
        left.append(f"network leftovers: {links} {tables.strip()}")
    print("\nleft behind: " + ("; ".join(left) if left else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
