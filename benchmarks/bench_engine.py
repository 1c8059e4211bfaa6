"""The engine as a user meets it: ``minicontainer run`` through the daemon, next to runc and podman.

Run as root::

    .venv/bin/python benchmarks/bench_engine.py [--runs N] [--stop-runs N] [--containers N]

A ``minicontainerd`` of the script's own is started on a temporary data root and exec root (as the
integration tests start one), the offline busybox image is built into it, and three things are
measured, side by side in one run:

1. **run latency**: ``minicontainer run --rm busybox true`` (the CLI, the daemon, the runtime and back)
   next to ``runc run`` of a busybox bundle running ``true`` and ``podman run --rm --network none
   busybox true`` (podman with runc, on a temporary ``--root``, the image loaded from our own
   ``minicontainer save``).  Targets: ours <= 1.0x runc and <= 0.25x podman.
2. **host memory per detached container**, beyond the container's own processes: the daemon's RSS
   (and that of any other process of ours: there should be none per container) before and after
   ``minicontainer run -d busybox sleep 600`` x N, divided by N; next to podman's per-container
   ``conmon``.  Target: <= 1 MiB per container.
3. **stop of an ``--init`` container**: ``minicontainer stop`` of ``run -d --init busybox sleep 600``
   (tini forwards SIGTERM, sleep dies at once), next to ``podman stop``.  Target: under 100 ms.
   And, as an illustration of the PID 1 rule, ``stop -t 2`` of the same container *without* ``--init``.

The script is a report, not a test: it always exits 0.  It removes every container it made, stops
its daemon, resets its podman root, and checks that nothing is left (processes, mounts, cgroups).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (  # set-up and report, shared by the benchmarks (same directory)
    daemon_env,
    needs_root,
    report_left,
    run_as_report,
    stop_process,
)

from minicontainer.runtime import busybox

VENV_BIN = Path(sys.executable).parent
CLI = VENV_BIN / "minicontainer"
RUNC_TARGET, PODMAN_TARGET = 1.0, 0.25  # ours/runc and ours/podman, run --rm busybox true
MEMORY_TARGET_MIB = 1.0                 # host memory per detached container, beyond its own processes
STOP_TARGET_MS = 100.0                  # stop of an --init container
SETTLE_AFTER_START = 0.5                # seconds: let tini install its signal mask before the stop
# The VM's root has no CAP_SYS_RESOURCE, so podman's default container limits for root (nofile
# 1048576, nproc 4194304), above this shell's hard limits, make runc fail with EPERM: ask for less.
PODMAN_ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
PODMAN_CACHE = Path("/var/lib/containers/cache")  # `podman load` writes its blob-info cache here, whatever --root
PODMAN_SHM_LOCK = Path("/dev/shm/libpod_lock")    # podman's SHM locks, outside --root/--runroot/--tmpdir


@dataclass
class Timing:
    name: str
    command: list[str]
    mean: float = 0.0  # all in milliseconds
    median: float = 0.0
    stddev: float = 0.0
    error: str = ""


@dataclass
class Bench:
    """Everything the run creates, so that the clean-up can find it whatever failed."""

    workdir: Path
    env: dict
    daemon: subprocess.Popen | None = None
    podman: list[str] = field(default_factory=list)   # argv prefix; empty if podman is not usable
    podman_base: list[str] = field(default_factory=list)  # the same, kept for the clean-up even if unusable
    podman_created: list[Path] = field(default_factory=list)  # host directories podman made outside its roots
    podman_error: str = ""
    runc_root: Path | None = None
    runc_id: str = ""
    runc_cgroup: str = ""
    cgroups_before: set[str] = field(default_factory=set)
    shm_lock_existed: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def sock(self) -> Path:
        return self.workdir / "run" / "minicontainer.sock"


# --- small helpers ------------------------------------------------------------------------------------


def sh(cmd: list[str], env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=timeout, **kw)


def must(r: subprocess.CompletedProcess, what: str) -> str:
    if r.returncode != 0:
        raise RuntimeError(f"{what}: exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}")
    return r.stdout


def proc_kb(pid: int, key: str, filename: str = "status") -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS) or smaps_rollup (Pss); 0 if the process is gone."""
    try:
        with open(f"/proc/{pid}/{filename}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError):
        return 0


def all_processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, comm, cmdline) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        out[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), comm, cmdline)
    return out


def descendants(root: int, procs: dict[int, tuple[int, str, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _comm, _cmd) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def find_cgroups(prefix: str) -> set[str]:
    r = sh(["find", "/sys/fs/cgroup", "-name", f"{prefix}*"])
    return set(r.stdout.split())


def mounts_under(path: Path) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == str(path) or point.startswith(str(path) + "/"):
                found.append(point)
    return found


def ms(seconds: float) -> float:
    return seconds * 1000


# --- the daemon and the image -------------------------------------------------------------------------


def start_daemon(b: Bench) -> None:
    """As tests/integration/daemon_support.py does: a subprocess with its own roots, its log in a file."""
    run_dir = b.workdir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(b.workdir / "daemon.log", "wb")  # noqa: SIM115 - the daemon writes it while it runs
    b.daemon = subprocess.Popen([sys.executable, "-m", "minicontainer.daemon.main", "--host", f"unix://{b.sock}",
                                 "--data-root", b.env["MINICONTAINER_ROOT"], "--exec-root", str(run_dir)],
                                env=b.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 15
    while not b.sock.exists():
        if b.daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"minicontainerd did not start: {(b.workdir / 'daemon.log').read_text()[-400:]}")
        time.sleep(0.02)


def daemon_alive(b: Bench) -> bool:
    return b.daemon is not None and b.daemon.poll() is None


def cli(b: Bench, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if not daemon_alive(b):  # the CLI would start a daemon of its own: never let it
        raise RuntimeError("minicontainerd is not running (see its log)")
    return sh([str(CLI), *args], env=b.env, timeout=timeout)


def api(b: Bench):
    from minicontainer.client.api import APIClient

    return APIClient(str(b.sock), autostart=False)


# --- podman -------------------------------------------------------------------------------------------


def setup_podman(b: Bench) -> None:
    """podman on temporary roots, with runc, and our busybox loaded from ``minicontainer save``."""
    if not shutil.which("podman"):
        b.podman_error = "podman is not on PATH"
        return
    if not shutil.which("runc"):
        b.podman_error = "runc is not on PATH (podman is run with --runtime runc)"
        return
    p = b.workdir / "podman"
    b.podman = ["podman", "--root", str(p / "root"), "--runroot", str(p / "run"), "--tmpdir", str(p / "tmp"),
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
    b.podman_base = b.podman
    b.shm_lock_existed = PODMAN_SHM_LOCK.exists()
    archive = b.workdir / "busybox.tar"
    with open(archive, "wb") as out:
        r = subprocess.run([str(CLI), "save", "busybox"], env=b.env, stdout=out, stderr=subprocess.PIPE,
                           check=False, timeout=120)
    if r.returncode != 0:
        b.podman_error = f"minicontainer save failed: {r.stderr.decode(errors='replace').strip()[-300:]}"
        b.podman = []
        return
    load = [*b.podman, "load", "-q", "-i", str(archive)]
    if PODMAN_CACHE.is_dir():
        # Keep podman's blob-info cache (shared by every podman and skopeo on the host) untouched: in a
        # mount namespace of its own, the load sees an empty directory of ours there instead.
        cache = p / "blob-info-cache"
        cache.mkdir(parents=True)
        load = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"mount --bind {shlex.quote(str(cache))} {PODMAN_CACHE} && exec {shlex.join(load)}"]
    else:  # podman load will create it: remove it (and its parent if it made that too) at the end
        b.podman_created.append(next(d for d in (PODMAN_CACHE.parent, PODMAN_CACHE) if not d.exists()))
    r = sh(load)
    if r.returncode != 0:
        b.podman_error = f"podman load failed: {(r.stderr or r.stdout).strip()[-300:]}"
        b.podman = []


def podman_init_flags() -> list[str]:
    """podman's --init wants catatonit; Debian's podman does not ship it: use tini-static, as we use tini."""
    if Path("/usr/libexec/podman/catatonit").exists():
        return ["--init"]
    tini = shutil.which("tini-static") or shutil.which("tini")
    return ["--init", "--init-path", tini] if tini else ["--init"]


def podman_conmons(b: Bench) -> list[int]:
    marker = str(b.workdir / "podman")
    return [pid for pid, (_ppid, comm, cmd) in all_processes().items() if comm == "conmon" and marker in cmd]


# --- 1. run latency -----------------------------------------------------------------------------------


def make_runc_bundle(b: Bench) -> Path:
    bundle = b.workdir / "bundle"
    bundle.mkdir()
    busybox.make_rootfs(str(bundle / "rootfs"))
    config = busybox.default_config(["/bin/true"])
    config["linux"]["cgroupsPath"] = b.runc_cgroup
    busybox.write_config(str(bundle), config)
    return bundle


def console_script_interpreter() -> str:
    first = CLI.read_text().splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


def sanity_check(t: Timing, env: dict) -> bool:
    r = sh(t.command, env=env, timeout=60)
    if r.returncode != 0:
        t.error = f"exit {r.returncode}: {(r.stderr or r.stdout).strip()[:300]}"
        return False
    return True


def time_with_hyperfine(timings: list[Timing], runs: int, b: Bench) -> None:
    out = b.workdir / "hyperfine.json"
    cmd = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--style", "none", "--export-json", str(out)]
    cmd += [shlex.join(t.command) for t in timings]  # -N splits shell-style, without a shell
    r = sh(cmd, env=b.env, timeout=3600)
    if r.returncode != 0:
        errors = [line for line in r.stderr.splitlines() if line.startswith("Error")]
        for t in timings:
            t.error = f"hyperfine failed: {errors[-1] if errors else r.stderr.strip()[-300:]}"
        return
    for t, res in zip(timings, json.loads(out.read_text())["results"]):
        t.mean, t.median, t.stddev = (res[k] * 1000 for k in ("mean", "median", "stddev"))


def time_with_python(timings: list[Timing], runs: int, env: dict) -> None:
    for t in timings:
        samples = []
        for i in range(3 + runs):
            start = time.perf_counter()
            r = subprocess.run(t.command, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elapsed = ms(time.perf_counter() - start)
            if r.returncode != 0:
                t.error = f"exit {r.returncode} on run {i + 1}"
                break
            if i >= 3:
                samples.append(elapsed)
        if samples and not t.error:
            t.mean, t.median = statistics.mean(samples), statistics.median(samples)
            t.stddev = statistics.stdev(samples) if len(samples) > 1 else 0.0


# What the CLI does before its first request: imports, the parser of the `run` command (the only one
# a `run` command line builds), the HTTP client.
PARSE = ("from minicontainer.cli.main import build_parser; "
         "argv = ['run', '--rm', 'busybox', 'true']; build_parser(argv).parse_args(argv)")
PREP = PARSE + "; import minicontainer.cli.containers, minicontainer.client.api"


def api_phases(b: Bench, runs: int) -> dict[str, float]:
    """The requests ``minicontainer run --rm busybox true`` sends, timed from this process (medians, ms):
    the daemon's side of a run, without the CLI's interpreter start, imports and argparse."""
    client = api(b)
    body = {"Image": "busybox", "Cmd": ["true"], "Env": [], "Labels": {}, "WorkingDir": "", "User": "",
            "Hostname": "", "AttachStdin": False, "OpenStdin": False, "StdinOnce": False, "AttachStdout": True,
            "AttachStderr": True, "Tty": False,
            "HostConfig": {"AutoRemove": True, "Init": False, "Memory": 0, "NanoCpus": 0, "PidsLimit": None}}
    samples: dict[str, list[float]] = {k: [] for k in ("create", "attach+wait", "start", "exit+remove", "total")}
    for i in range(3 + runs):
        t0 = time.perf_counter()
        cid = client.json("POST", "/containers/create", None, body)["Id"]
        t1 = time.perf_counter()
        stream = client.attach(cid)
        waiting = client.request("POST", f"/containers/{cid}/wait", {"condition": "removed"})
        t2 = time.perf_counter()
        client.request("POST", f"/containers/{cid}/start").read()
        t3 = time.perf_counter()
        for _ in client.frames(stream):
            pass
        stream.close()
        code = json.loads(waiting.read())["StatusCode"]
        t4 = time.perf_counter()
        if code != 0:
            raise RuntimeError(f"API run of `true` exited {code}")
        if i >= 3:
            for key, value in (("create", t1 - t0), ("attach+wait", t2 - t1), ("start", t3 - t2),
                               ("exit+remove", t4 - t3), ("total", t4 - t0)):
                samples[key].append(ms(value))
    return {k: statistics.median(v) for k, v in samples.items()}


def bench_run(b: Bench, runs: int, use_hyperfine: bool) -> dict[str, Timing]:
    pid = os.getpid()
    b.runc_root, b.runc_id = b.workdir / "runc-root", f"bench-engine-runc-{pid}"
    bundle = make_runc_bundle(b)
    python = console_script_interpreter()
    t = {
        "ours": Timing("minicontainer run --rm", [str(CLI), "run", "--rm", "busybox", "true"]),
        "runc": Timing("runc run", ["runc", "--root", str(b.runc_root), "run", "--bundle", str(bundle), b.runc_id]),
        "podman": Timing("podman run --rm", [*b.podman, "run", "--rm", "--network", "none", *PODMAN_ULIMITS,
                                             "busybox", "true"]),
        "pass": Timing("  python -c pass", [python, "-c", "pass"]),
        "imports": Timing("  python -c 'import ...cli.main'", [python, "-c", "import minicontainer.cli.main"]),
        "parser": Timing("  ... + build parser, parse args", [python, "-c", PARSE]),
        "prep": Timing("  ... + import the HTTP client", [python, "-c", PREP]),
    }
    if not shutil.which("runc"):
        t["runc"].error = "runc is not on PATH"
    if not b.podman:
        t["podman"].error = b.podman_error or "podman is not usable"
    runnable = [x for x in t.values() if not x.error and sanity_check(x, b.env)]
    print(f"== 1. run latency: {'hyperfine -N --warmup 3' if use_hyperfine else 'Python loop, 3 warm-up'} "
          f"--runs {runs}")
    print(f"   runc bundle: busybox /bin/true, cgroupsPath={b.runc_cgroup}; podman: --runtime runc, "
          f"--cgroup-manager cgroupfs, {' '.join(PODMAN_ULIMITS)}\n")
    if use_hyperfine:
        time_with_hyperfine(runnable, runs, b)
    else:
        time_with_python(runnable, runs, b.env)
    print(f"   {'command':<34} {'mean ms':>9} {'median ms':>10} {'stddev ms':>10}")
    for x in t.values():
        if x.error:
            print(f"   {x.name:<34} {'FAILED':>9}  {x.error}")
        else:
            print(f"   {x.name:<34} {x.mean:9.1f} {x.median:10.1f} {x.stddev:10.1f}")
    return t


def print_run_breakdown(b: Bench, t: dict[str, Timing], runs: int) -> None:
    ours, interp, imports, parser, prep = t["ours"], t["pass"], t["imports"], t["parser"], t["prep"]
    if any(x.error for x in (ours, interp, imports, parser, prep)):
        return
    try:
        phases = api_phases(b, runs)
    except Exception as e:  # noqa: BLE001 - a report: say it, go on
        print(f"\n   (no API breakdown: {type(e).__name__}: {e})")
        return
    imported = max(imports.median - interp.median, 0.0)
    parsing = max(parser.median - imports.median, 0.0)
    client = max(prep.median - parser.median, 0.0)
    rest = ours.median - prep.median - phases["total"]  # signed: the parts are measured separately
    print("\n   where our run time goes (medians; API requests timed from a warm Python process):")
    rows = [("CLI: python interpreter start", interp.median),
            ("CLI: importing minicontainer.cli.main", imported),
            ("CLI: building the `run` parser, parsing the arguments", parsing),
            ("CLI: importing the HTTP client (client/http.py over socket, json)", client),
            ("daemon: POST /containers/create (record, name, container.json)", phases["create"]),
            ("daemon: attach + wait registered", phases["attach+wait"]),
            ("daemon: POST /start (overlay mount, OCI config, runtime create+start)", phases["start"]),
            ("daemon: `true` runs, exits, reaped, cleaned up, auto-removed", phases["exit+remove"]),
            ("the rest: CLI's connections, output copy, interpreter exit; and noise", rest)]
    for label, value in rows:
        print(f"   {value:7.1f} ms {100 * value / ours.median:5.1f}%  {label}")
    print(f"   (API sequence alone: {phases['total']:.1f} ms; whole CLI command: {ours.median:.1f} ms)")


# --- 2. memory per detached container -----------------------------------------------------------------


@dataclass
class Memory:
    count: int = 0
    per_container_kib: float = 0.0       # what the target is about
    detail: list[str] = field(default_factory=list)
    error: str = ""


def measure_idle_cpu(pids: list[int], seconds: float = 5.0) -> float:
    """Percent of one CPU that these processes used together while the containers sat idle."""
    before = sum(cpu_ticks(p) for p in pids)
    time.sleep(seconds)
    after = sum(cpu_ticks(p) for p in pids)
    return 100.0 * (after - before) / os.sysconf("SC_CLK_TCK") / seconds


def bench_memory_ours(b: Bench, count: int) -> Memory:
    m = Memory(count=count)
    dpid = b.daemon.pid
    rss0, pss0 = proc_kb(dpid, "VmRSS"), proc_kb(dpid, "Pss", "smaps_rollup")
    others0 = descendants(dpid, all_processes()) - {dpid}
    start = time.perf_counter()
    names = []
    for i in range(count):
        name = f"bench-mem-{i}"
        must(cli(b, "run", "-d", "--name", name, "busybox", "sleep", "600"), f"run -d #{i}")
        names.append(name)
    started = time.perf_counter() - start
    time.sleep(1.0)
    client = api(b)
    inits = [client.json("GET", f"/containers/{n}/json")["State"]["Pid"] for n in names]
    procs = all_processes()
    tree = descendants(dpid, procs)
    in_containers: set[int] = set()
    for pid in inits:
        in_containers |= descendants(pid, procs)
    ours_extra = tree - {dpid} - in_containers - others0
    rss1, pss1 = proc_kb(dpid, "VmRSS"), proc_kb(dpid, "Pss", "smaps_rollup")
    extra_rss = sum(proc_kb(p, "VmRSS") for p in ours_extra)
    own_rss = sum(proc_kb(p, "VmRSS") for p in in_containers)
    cpu = measure_idle_cpu([dpid])
    m.per_container_kib = (rss1 - rss0 + extra_rss) / count
    m.detail = [
        f"{count} x `minicontainer run -d busybox sleep 600`: {started:.1f} s ({ms(started) / count:.0f} ms each)",
        (f"daemon RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB: +{(rss1 - rss0) / count:.0f} KiB per container "
         f"(PSS {pss0 / 1024:.1f} -> {pss1 / 1024:.1f} MiB: +{(pss1 - pss0) / count:.0f} KiB)"),
        (f"other processes of ours beyond the containers' own: {len(ours_extra)} "
         f"({extra_rss / 1024:.1f} MiB); container inits are the daemon's children (subreaper), no shim"),
        f"the containers' own processes (busybox sleep): {own_rss / count:.0f} KiB RSS each, mostly shared pages",
        f"daemon CPU with {count} idle containers: {cpu:.1f}% of one CPU over 5 s (output followed through inotify)",
    ]
    start = time.perf_counter()
    ids = must(cli(b, "ps", "-aq"), "ps -aq").split()
    must(cli(b, "rm", "-f", *ids, timeout=600), "rm -f")
    removed = time.perf_counter() - start
    time.sleep(0.5)
    m.detail.append(f"`rm -f` of all {len(ids)}: {removed:.1f} s; daemon RSS afterwards "
                    f"{proc_kb(dpid, 'VmRSS') / 1024:.1f} MiB")
    return m


def bench_memory_podman(b: Bench, count: int) -> Memory:
    m = Memory(count=count)
    if not b.podman:
        m.error = b.podman_error or "podman is not usable"
        return m
    start = time.perf_counter()
    for i in range(count):
        must(sh([*b.podman, "run", "-d", "--network", "none", *PODMAN_ULIMITS, "--name", f"bench-mem-{i}",
                 "busybox", "sleep", "600"]), f"podman run -d #{i}")
    started = time.perf_counter() - start
    time.sleep(1.0)
    conmons = podman_conmons(b)
    if not conmons:
        m.error = "no conmon process found"
    else:
        rss = [proc_kb(p, "VmRSS") for p in conmons]
        pss = [proc_kb(p, "Pss", "smaps_rollup") for p in conmons]
        cpu = measure_idle_cpu(conmons)
        m.per_container_kib = statistics.mean(rss)
        m.detail = [
            f"{count} x `podman run -d busybox sleep 600`: {started:.1f} s ({ms(started) / count:.0f} ms each)",
            (f"{len(conmons)} conmon processes (one per container, podman has no daemon): "
             f"{statistics.mean(rss):.0f} KiB RSS, {statistics.mean(pss):.0f} KiB PSS each"),
            f"conmons' CPU with {count} idle containers: {cpu:.1f}% of one CPU over 5 s",
        ]
    start = time.perf_counter()
    r = sh([*b.podman, "rm", "-f", "-t", "0", "-a"], timeout=600)
    m.detail.append(f"`podman rm -f -t 0 -a`: {time.perf_counter() - start:.1f} s"
                    + ("" if r.returncode == 0 else f" (exit {r.returncode}: {r.stderr.strip()[-200:]})"))
    return m


# --- 3. stop ------------------------------------------------------------------------------------------


@dataclass
class Stops:
    samples: list[float] = field(default_factory=list)  # ms
    exit_codes: set[int] = field(default_factory=set)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0

    def line(self) -> str:
        if self.error:
            return f"FAILED  {self.error}"
        return (f"median {self.median:6.1f} ms   min {min(self.samples):6.1f}   max {max(self.samples):6.1f}   "
                f"exit codes {sorted(self.exit_codes)}")


def timed_stops(runs: int, run_cmd, stop_cmd, exit_code_cmd, rm_cmd) -> Stops:
    s = Stops()
    for i in range(runs):
        name = f"bench-stop-{os.getpid()}-{i}"
        must(run_cmd(name), f"run -d #{i}")
        time.sleep(SETTLE_AFTER_START)
        start = time.perf_counter()
        r = stop_cmd(name)
        elapsed = ms(time.perf_counter() - start)
        must(r, f"stop #{i}")
        s.samples.append(elapsed)
        s.exit_codes.add(int(must(exit_code_cmd(name), "inspect").strip()))
        must(rm_cmd(name), f"rm #{i}")
    return s


def bench_stop(b: Bench, runs: int) -> tuple[Stops, Stops, str]:
    fmt = ["-f", "{{.State.ExitCode}}"]
    try:
        ours = timed_stops(runs, lambda n: cli(b, "run", "-d", "--init", "--name", n, "busybox", "sleep", "600"),
                           lambda n: cli(b, "stop", n), lambda n: cli(b, "inspect", *fmt, n),
                           lambda n: cli(b, "rm", "-f", n))
    except Exception as e:  # noqa: BLE001
        ours = Stops(error=f"{type(e).__name__}: {e}")
    if b.podman:
        p = b.podman
        try:
            theirs = timed_stops(runs, lambda n: sh([*p, "run", "-d", *podman_init_flags(), "--network", "none",
                                                     *PODMAN_ULIMITS, "--name", n, "busybox", "sleep", "600"]),
                                 lambda n: sh([*p, "stop", n]), lambda n: sh([*p, "inspect", *fmt, n]),
                                 lambda n: sh([*p, "rm", "-f", "-t", "0", n]))
        except Exception as e:  # noqa: BLE001
            theirs = Stops(error=f"{type(e).__name__}: {e}")
    else:
        theirs = Stops(error=b.podman_error or "podman is not usable")

    # The PID 1 rule: `sleep` as the namespace's init has no SIGTERM handler, so the kernel drops the
    # signal; only the SIGKILL at the end of the grace period ends it.
    try:
        name = f"bench-stop-noinit-{os.getpid()}"
        must(cli(b, "run", "-d", "--name", name, "busybox", "sleep", "600"), "run -d (no --init)")
        time.sleep(SETTLE_AFTER_START)
        start = time.perf_counter()
        must(cli(b, "stop", "-t", "2", name), "stop -t 2")
        elapsed = time.perf_counter() - start
        code = must(cli(b, "inspect", *fmt, name), "inspect").strip()
        must(cli(b, "rm", "-f", name), "rm")
        pid1 = (f"without --init, `stop -t 2` took {elapsed:.2f} s and the exit code is {code}: sleep as PID 1 "
                "ignores SIGTERM, the SIGKILL after the grace period ends it")
    except Exception as e:  # noqa: BLE001
        pid1 = f"without --init: FAILED  {type(e).__name__}: {e}"
    return ours, theirs, pid1


# --- clean-up -----------------------------------------------------------------------------------------


def cleanup(b: Bench) -> list[str]:
    """Remove everything this run made; returns what is still there afterwards."""
    left: list[str] = []
    ids: list[str] = []
    containers_dir = Path(b.env["MINICONTAINER_ROOT"]) / "containers"
    if containers_dir.is_dir():
        ids += os.listdir(containers_dir)
    if daemon_alive(b):
        r = sh([str(CLI), "ps", "-aq"], env=b.env, timeout=60)
        ids += r.stdout.split()
        if r.stdout.split():
            sh([str(CLI), "rm", "-f", *r.stdout.split()], env=b.env, timeout=600)
    stop_process(b.daemon)
    if b.runc_root is not None and (b.runc_root / b.runc_id).exists():
        sh(["runc", "--root", str(b.runc_root), "delete", "--force", b.runc_id])
    if b.podman_base:
        sh([*b.podman_base, "rm", "-f", "-t", "0", "-a"], timeout=600)
        sh([*b.podman_base, "system", "reset", "-f"], timeout=600)
    # Processes that still name our temporary directory (a conmon, a daemon the CLI started): ours, by PID.
    for pid, (_ppid, comm, cmd) in all_processes().items():
        if str(b.workdir) in cmd and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
                left.append(f"had to kill leftover process {pid} ({comm})")
            except ProcessLookupError:
                pass
    for point in reversed(mounts_under(b.workdir)):
        sh(["umount", "-l", point])
    if mounts_under(b.workdir):
        left.append(f"mounts under {b.workdir}: {mounts_under(b.workdir)}")
    # cgroups: rmdir only those named after what this run made (runc's, and our daemon's containers,
    # in case one survived): another minicontainer on this host may be creating its own right now.
    mine = {b.runc_cgroup} | {f"minicontainer-{cid[:12]}" for cid in ids}
    new = find_cgroups("minicontainer-") - b.cgroups_before
    for path in sorted(new, key=lambda p: -p.count("/")):
        if os.path.basename(path) in mine:
            try:
                os.rmdir(path)
            except OSError:
                pass
    still = find_cgroups("minicontainer-") - b.cgroups_before
    if still:  # look again: a container of someone else's may have been between create and delete
        time.sleep(2)
        still &= find_cgroups("minicontainer-")
    if still:
        left.append(f"minicontainer-* cgroups that appeared during the run (this run's, or another "
                    f"minicontainer's on this host): {sorted(still)}")
    if not b.shm_lock_existed and PODMAN_SHM_LOCK.exists():
        busy = [p for p, (_pp, comm, _c) in all_processes().items() if comm in ("podman", "conmon")]
        if busy:
            left.append(f"{PODMAN_SHM_LOCK} left: podman processes {busy} (not ours) may use it")
        else:
            PODMAN_SHM_LOCK.unlink()
    for directory in b.podman_created:
        shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(b.workdir, ignore_errors=True)
    if b.workdir.exists():
        left.append(f"{b.workdir} could not be removed")
    return left


# --- the report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_summary(t: dict[str, Timing], mem: Memory, pmem: Memory, stop: Stops, pstop: Stops) -> None:
    print("\n== summary")
    print(f"   {'what':<44} {'ours':>10} {'vs':>22}  {'target':<12} verdict")
    ours = t["ours"]
    for key, target in (("runc", RUNC_TARGET), ("podman", PODMAN_TARGET)):
        ref = t[key]
        if ours.error or ref.error:
            print(f"   {'run --rm busybox true / ' + key:<44} {'n/a':>10}  ({(ours.error or ref.error)[:60]})")
            continue
        ratio = ours.mean / ref.mean
        print(f"   {'run --rm busybox true / ' + key + ' (means)':<44} {ratio:9.2f}x "
              f"{f'{ours.mean:.0f} vs {ref.mean:.0f} ms':>22}  {f'<= {target:.2f}x':<12} {verdict(ratio <= target)}")
    if mem.error:
        print(f"   {'host memory per detached container':<44} FAILED  {mem.error}")
    else:
        mib = mem.per_container_kib / 1024
        vs = f"conmon {pmem.per_container_kib / 1024:.2f} MiB" if not pmem.error else "podman n/a"
        print(f"   {'host memory per detached container':<44} {mib:6.2f} MiB {vs:>22}  "
              f"{f'<= {MEMORY_TARGET_MIB:.0f} MiB':<12} {verdict(mib <= MEMORY_TARGET_MIB)}")
    if stop.error:
        print(f"   {'stop of an --init container (median)':<44} FAILED  {stop.error[:80]}")
    else:
        vs = f"podman {pstop.median:.0f} ms" if not pstop.error else "podman n/a"
        print(f"   {'stop of an --init container (median)':<44} {stop.median:7.1f} ms {vs:>22}  "
              f"{f'< {STOP_TARGET_MS:.0f} ms':<12} {verdict(stop.median < STOP_TARGET_MS)}")


def machine_facts() -> str:
    def version(cmd: list[str]) -> str:
        try:
            return sh(cmd, timeout=20).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "n/a"

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return (f"{os.cpu_count()} CPUs, kernel {os.uname().release}, Python {sys.version.split()[0]}; "
            f"{version(['runc', '--version'])}; {version(['podman', '--version'])}; "
            f"{version(['hyperfine', '--version'])}; load average before: {load}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per command (after 3 warm-up runs)")
    ap.add_argument("--stop-runs", type=int, default=10, help="stops timed, ours and podman's")
    ap.add_argument("--containers", type=int, default=50, help="detached containers for the memory measure")
    ap.add_argument("--no-hyperfine", action="store_true", help="time with a Python loop even if hyperfine is here")
    args = ap.parse_args()

    if needs_root("bench_engine", "namespaces, mounts, cgroups, a daemon"):
        return 0
    if not CLI.exists():
        print(f"bench_engine: {CLI} not found (pip install -e . in the venv); nothing measured")
        return 0

    # Short: podman refuses a --runroot longer than 50 characters.
    workdir = Path(tempfile.mkdtemp(prefix="mcbench-engine-"))
    env = daemon_env(workdir)
    b = Bench(workdir=workdir, env=env, runc_cgroup=f"minicontainer-bench-engine-{os.getpid()}",
              cgroups_before=find_cgroups("minicontainer-"))
    print(f"bench_engine {time.strftime('%Y-%m-%d %H:%M:%S')}: {machine_facts()}")
    print(f"workdir {workdir}\n")
    left: list[str] = []
    try:
        start_daemon(b)
        must(cli(b, "starter", "busybox", timeout=300), "minicontainer starter busybox")
        setup_podman(b)
        if b.podman_error:
            print(f"podman: {b.podman_error} (its rows say FAILED)\n")
        use_hyperfine = bool(shutil.which("hyperfine")) and not args.no_hyperfine

        t = bench_run(b, args.runs, use_hyperfine)
        print_run_breakdown(b, t, args.runs)

        print(f"\n== 2. host memory per detached container ({args.containers} running)")
        try:
            mem = bench_memory_ours(b, args.containers)
        except Exception as e:  # noqa: BLE001
            mem = Memory(error=f"{type(e).__name__}: {e}")
        for line in mem.detail or [f"FAILED  {mem.error}"]:
            print(f"   ours:   {line}")
        try:
            pmem = bench_memory_podman(b, args.containers)
        except Exception as e:  # noqa: BLE001
            pmem = Memory(error=f"{type(e).__name__}: {e}")
            if b.podman:
                sh([*b.podman, "rm", "-f", "-t", "0", "-a"], timeout=600)
        for line in pmem.detail or [f"FAILED  {pmem.error}"]:
            print(f"   podman: {line}")

        print(f"\n== 3. stop of `run -d --init busybox sleep 600`, {SETTLE_AFTER_START} s after the start "
              f"({args.stop_runs} runs; wall time of the stop command)")
        stop, pstop, pid1 = bench_stop(b, args.stop_runs)
        print(f"   minicontainer stop : {stop.line()}")
        print(f"   podman stop        : {pstop.line()}")
        print(f"   {pid1}")

        print_summary(t, mem, pmem, stop, pstop)
        for note in b.notes:
            print(f"   note: {note}")
    finally:
        left = cleanup(b)
    report_left(left, "containers removed, daemon stopped, podman root reset, no mounts, no new minicontainer-* "
                      "cgroup, temp dir removed")
    return 0


if __name__ == "__main__":
    run_as_report(main, "bench_engine")
