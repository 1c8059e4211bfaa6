"""How fast does ``minicontainer pull`` pull, next to skopeo and podman, from a local registry?

Run as root (podman needs it, and we keep the layers' owners)::

    .venv/bin/python benchmarks/bench_pull.py [--runs 5] [--dir /var/tmp] [--fs loop|dir]

One ``docker-registry`` (distribution 2.8) is started on 127.0.0.1, its storage in the benchmark's
temporary filesystem (below), and three images built with :mod:`minicontainer.image.builder` are
pushed to it:

* **busybox**: the host's static busybox and its applet links, one gzip layer of about 1 MB;
* **big**: one layer holding a single 200 MB file of random bytes (gzip cannot shrink it);
* **small**: one layer of 35,000 files of 100-500 bytes in 350 directories (gzip).

Then, side by side in one run, ``--runs`` times each (the tools' order rotating from round to round):

==============  ====================================================================================
busybox cold    ours (the ``minicontainer pull`` console script, asking a ``minicontainerd`` that has a
                fresh data root each run) vs ``skopeo copy docker://... oci:DIR:latest`` (a fresh DIR) vs ``podman pull``
                (a fresh ``--root``/``--runroot``/``--tmpdir``); podman unpacks, like us; skopeo does not
busybox warm    the same commands again on what the cold pull left: our "Image is up to date" path,
                skopeo into the existing layout, podman with the image present
big (200 MB)    cold pull + unpack, as MB/s of compressed and of uncompressed bytes; skopeo only
                downloads (it does not unpack)
small (35,000)  cold pull + unpack, next to ``tar -xzf`` of the same layer blob (a file on the same
                disk) into a fresh directory, and next to podman
==============  ====================================================================================

Every tool writes under the same temporary directory, so on the same filesystem, which the report
names: by default (``--fs loop``) a fresh ext4, with a journal, made for the run in an 8 GiB file
under ``--dir`` and loop-mounted (see ``FRESH_FS`` below: on this VM's root filesystem, an ext4 without a
journal, creating files next to recently removed ones is many times slower, and other sessions keep
removing files); ``--fs dir`` runs in ``--dir`` itself.  Each cold run writes into a target of its
own, which stays until the end (the 200 MB runs excepted; see ``WHY_KEEP``).

Before each timed run the script calls ``sync``, so that no run pays for the previous one's writes;
right after it, it times a second ``sync`` ("then sync"): how much written data the tool left in the
page cache.  Ours makes its pull durable (fsync of each blob, syncfs of each unpacked layer) before
it reports success, skopeo fsyncs its blobs; tar does not, nor podman its unpacked files, so their
"then sync" column is where their share of that work shows.  It is reported, not added to their
times.

**Targets: big: our MB/s >= skopeo's; small: ours/tar <= 1.0 (podman is about 1.8x).**  For busybox the
issue quotes skopeo ~60 ms and podman ~330 ms; the ratios are printed without a target.  Then one
in-process pull of each image, with timestamps on its progress messages, shows where our time goes,
and a few instrumented runs of the CLI split a cold busybox pull into interpreter start, imports and
the pull.

skopeo and podman keep a blob-info cache in ``/var/lib/containers/cache``, and podman its locks in
``/dev/shm/libpod_lock``; so that this benchmark leaves nothing there, the script re-executes itself in
a private mount namespace (``unshare --mount``), binds a temporary directory over the first and mounts
a tmpfs of its own on ``/dev/shm``; podman's ``--tmpdir`` keeps ``/run/libpod`` out of it too.  At the
end the registry is stopped (by PID), nothing is left mounted and the temporary directory is
removed.  A report, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The tests' registry process (tests/integration/registry_support.py) serves the pulls here too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from harness import (  # set-up and report, shared by the benchmarks (same directory)
    needs_root,
    run_as_report,
    stop_process,
)
from registry_support import REGISTRY_BINARY, RunningRegistry

from minicontainer.client.api import wait_for_daemon
from minicontainer.image import builder
from minicontainer.image.digest import digest_bytes
from minicontainer.image.reference import parse
from minicontainer.image.registry import RegistryClient
from minicontainer.runtime import busybox

VENV_BIN = Path(sys.executable).parent
OURS = VENV_BIN / "minicontainer"
BLOB_INFO_CACHE = Path("/var/lib/containers/cache")  # skopeo's and podman's, when run as root
NAMESPACE_MARK = "MINICONTAINER_BENCH_PULL_NS"

BIG_SIZE = 200 * 1000 * 1000
SMALL_FILES, SMALL_DIRS = 35_000, 350
SMALL_TARGET = 1.0  # ours/tar
ISSUE_SAYS = {"skopeo": "~60 ms", "podman": "~330 ms"}  # busybox, cold, as quoted in the issue


# --- the images ---------------------------------------------------------------------------------------


@dataclass
class BenchImage:
    name: str  # "127.0.0.1:PORT/bench/big:latest" once pushed
    manifest: bytes
    config: bytes
    layer: builder.Layer
    tar_bytes: int  # size of the uncompressed layer tar
    entries: int  # files, directories, links


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.uid = info.gid = 0
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def big_layer_tar() -> bytes:
    return _tar([_file("big.bin", os.urandom(BIG_SIZE))])


def small_layer_tar() -> bytes:
    """35,000 text files of 100-500 bytes, 100 to a directory: a distribution's base layer, roughly."""
    rng = random.Random(42)
    words = [rng.randbytes(rng.randint(2, 6)).hex().encode() for _ in range(2000)]
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    per_dir = SMALL_FILES // SMALL_DIRS
    for i in range(SMALL_FILES):
        if i % per_dir == 0:
            members.append(_dir(f"usr/share/d{i // per_dir:03d}"))
        size = rng.randint(100, 500)
        text = b" ".join(rng.choices(words, k=size // 4))[:size]
        members.append(_file(f"usr/share/d{i // per_dir:03d}/f{i:05d}.txt", text, 0o755 if i % 7 == 0 else 0o644))
    return _tar([_dir("usr"), _dir("usr/share"), *members])


def busybox_layer_tar(workdir: Path) -> bytes:
    rootfs = workdir / "busybox-rootfs"
    busybox.make_rootfs(str(rootfs))
    try:
        return builder.tar_directory(str(rootfs))
    finally:
        shutil.rmtree(rootfs)


def make_image(repo: str, tar_bytes: bytes, cmd: list[str] | None = None) -> BenchImage:
    layer = builder.compress_layer(tar_bytes, "gzip")
    config = builder.make_config([layer], cmd=cmd, created="2026-01-01T00:00:00Z")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        entries = sum(1 for _ in t)
    return BenchImage(repo, builder.make_manifest(config, [layer]), config, layer, len(tar_bytes), entries)


def push(client: RegistryClient, image: BenchImage) -> None:
    ref = parse(image.name)
    client.push_blob(ref, image.layer.digest, image.layer.data, len(image.layer.data))
    client.push_blob(ref, digest_bytes(image.config), image.config, len(image.config))
    client.push_manifest(ref, image.manifest, builder.OCI_MANIFEST)


# --- the tools ----------------------------------------------------------------------------------------


class Failed(Exception):
    pass


def _podman_limits() -> None:
    # podman 4.3 misbehaves with a very high open-files limit; 4096 is plenty for a pull.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 4096), hard))


@dataclass
class Tool:
    """One puller; ``target`` is where one run writes (a data root, an OCI layout, a podman root)."""

    label: str
    key: str

    def command(self, image: BenchImage, target: Path) -> list[str]:
        raise NotImplementedError

    def env(self, target: Path) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(target.parent)}

    def prepare(self, target: Path) -> None:
        pass

    def run(self, image: BenchImage, target: Path) -> tuple[float, str]:
        """Run once and return (seconds, stdout); raise :class:`Failed` with the tool's own words."""
        cmd = self.command(image, target)
        start = time.perf_counter()
        r = subprocess.run(cmd, env=self.env(target), stdin=subprocess.DEVNULL, capture_output=True,
                           preexec_fn=_podman_limits if self.key == "podman" else None, check=False)
        elapsed = time.perf_counter() - start
        if r.returncode != 0:
            said = (r.stderr or r.stdout).decode(errors="replace").strip().splitlines()
            raise Failed(f"exit {r.returncode}: {' / '.join(said[-3:])[:300]}")
        return elapsed, r.stdout.decode(errors="replace")


@dataclass
class Ours(Tool):
    """``minicontainer pull`` asks the daemon, which pulls: one ``minicontainerd`` per data root (each
    cold run has its own), started before the run (untimed, as dockerd is already running when one
    types ``docker pull``) and stopped when the root is removed."""

    daemons: dict[Path, subprocess.Popen] = field(default_factory=dict)

    def command(self, image, target):
        return [str(OURS), "pull", image.name]

    def env(self, target):
        return {**os.environ, "MINICONTAINER_ROOT": str(target), "MINICONTAINER_AUTOSTART": "0",
                "MINICONTAINER_HOST": f"unix://{target / 'run' / 'minicontainer.sock'}"}

    def prepare(self, target):
        if target in self.daemons:
            return
        sock = target / "run" / "minicontainer.sock"
        (target / "run").mkdir(parents=True, exist_ok=True)
        daemon = subprocess.Popen([str(VENV_BIN / "python"), "-m", "minicontainer.daemon.main", "--host", f"unix://{sock}",
                                   "--data-root", str(target), "--exec-root", str(target / "run")],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.daemons[target] = daemon
        if wait_for_daemon(str(sock), daemon, timeout=15):
            return
        raise Failed(f"minicontainerd did not start on {target}")

    def release(self, target: Path | None = None) -> None:
        """Stop the daemon of ``target`` (of every root, without one)."""
        for root in [target] if target is not None else list(self.daemons):
            stop_process(self.daemons.pop(root, None))


class Skopeo(Tool):
    def command(self, image, target):
        return ["skopeo", "copy", "--src-tls-verify=false", f"docker://{image.name}", f"oci:{target}:latest"]


class Podman(Tool):
    def command(self, image, target):
        return ["podman", "--root", str(target / "root"), "--runroot", str(target / "rr"),
                "--tmpdir", str(target / "tmp"), "--storage-driver", "overlay", "--runtime", "runc",
                "--events-backend", "none", "pull", "--tls-verify=false", image.name]


class Tar(Tool):
    """``tar -xzf`` of the layer blob itself (``blob`` is set once the file is written)."""

    blob: Path | None = None

    def command(self, image, target):
        return ["tar", "-C", str(target), "-xzf", str(self.blob)]

    def prepare(self, target):
        target.mkdir()


OURS_TOOL = Ours("minicontainer pull", "ours")
SKOPEO = Skopeo("skopeo copy (no unpack)", "skopeo")
PODMAN = Podman("podman pull", "podman")
TAR = Tar("tar -xzf (layer blob)", "tar")


# --- the timing loops ---------------------------------------------------------------------------------


@dataclass
class Result:
    tool: Tool
    times: list[float] = field(default_factory=list)  # seconds
    syncs: list[float] = field(default_factory=list)  # the sync right after each run
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mean(self) -> float:
        return statistics.mean(self.times)


class OtherLoad:
    """CPU time the machine spent on anything but this benchmark (other sessions, kernel threads such as
    writeback) between :meth:`start` and :meth:`stop`: the VM is shared, and this says how much."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, registry: RunningRegistry) -> None:
        self.registry = registry
        self.marks: dict[str, tuple[float, float, float]] = {}
        self.results: dict[str, tuple[float, float]] = {}  # case -> (others' CPU seconds, wall seconds)

    def _now(self) -> tuple[float, float, float]:
        with open("/proc/stat", encoding="ascii") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
        busy = (user + nice + system + irq + softirq) / self.TICK
        mine = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))
        if self.registry.process:  # our registry is not waited for yet: read its CPU from /proc
            with open(f"/proc/{self.registry.process.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            mine += (int(fields[11]) + int(fields[12])) / self.TICK
        return busy, mine, time.monotonic()

    def start(self, case: str) -> None:
        self.marks[case] = self._now()

    def stop(self, case: str) -> None:
        (busy0, mine0, t0), (busy1, mine1, t1) = self.marks[case], self._now()
        self.results[case] = (max(busy1 - busy0 - (mine1 - mine0), 0.0), t1 - t0)

    def line(self, case: str) -> str:
        others, wall = self.results[case]
        return (f"  (CPU used by anything else meanwhile, kernel threads included: {others:.1f} s in {wall:.0f} s, "
                f"{100 * others / wall / os.cpu_count():.0f}% of the {os.cpu_count()} CPUs)")


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path`` (in this mount namespace), deepest first."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_tree(path: Path) -> None:
    OURS_TOOL.release(path)
    for point in mounts_below(path):  # podman may leave overlay mounts in its root
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def timed_run(result: Result, image: BenchImage, target: Path) -> str:
    """One timed run into ``target``; returns the tool's stdout ('' after a failure)."""
    result.tool.prepare(target)
    os.sync()  # nothing of the previous run's writes left to flush at our expense
    try:
        elapsed, out = result.tool.run(image, target)
    except Failed as e:
        result.error = str(e)
        return ""
    start = time.perf_counter()
    os.sync()
    result.syncs.append(time.perf_counter() - start)
    result.times.append(elapsed)
    return out


def cold_runs(tag: str, image: BenchImage, tools: list[Tool], runs: int, work: Path,
              kept: list[Path] | None, probes: list[float] | None = None) -> list[Result]:
    """``runs`` rounds; in each, every tool pulls into a fresh target.  The order of the tools rotates
    from round to round, so that no tool always follows the same one.

    With a ``kept`` list, the targets stay until the caller removes them (at the end): see
    :data:`WHY_KEEP`.  Without one, each target is removed right after its run (the 200 MB layer:
    a few inodes, but 0.4-1 GB per run)."""
    results = [Result(t) for t in tools]
    for i in range(runs):
        if probes is not None:
            probes.append(create_cost(work))
        k = i % len(results)
        for r in results[k:] + results[:k]:
            if r.error:
                continue
            target = work / f"{tag}{r.tool.key[0]}{i}"  # short: podman refuses a runroot over 50 characters
            timed_run(r, image, target)
            if kept is None:
                remove_tree(target)
            else:
                kept.append(target)
    return results


WHY_KEEP = """Why nothing is removed before the end: on an ext4 without a journal (this VM's root), creating a
file avoids reusing an inode freed in the last 60 s (360 s while its inode table block is dirty):
ext4's find_inode_bit() looks up every such free inode of the group, and takes the last one anyway
when the group has nothing else.  Near a mass removal each new file then costs up to a scan of 8,192
inodes (~0.5 ms here: 5-25 s for 35,000 files instead of ~1), paid by whichever tool creates files
there next.  So no run's files are removed before the end (the 200 MB runs, a few inodes each,
excepted), and the work directory is marked ``chattr +T``, so that each run's directory goes to a
block group of its own, as top-level directories do.  That does not help against a mass removal made
just before the benchmark started (ext4 then prefers the groups just emptied): hence, by default,
the fresh filesystem of FRESH_FS."""


def spread_subdirectories(path: Path) -> bool:
    """``chattr +T``: ext4's Orlov allocator spreads the subdirectories of ``path`` over the block
    groups as it does top-level directories (see WHY_KEEP).  False where it cannot be set."""
    if not shutil.which("chattr"):
        return False
    return subprocess.run(["chattr", "+T", str(path)], check=False, capture_output=True).returncode == 0


def remove_all(paths: list[Path]) -> None:
    for path in paths:
        remove_tree(path)
    paths.clear()
    os.sync()


def create_cost(work: Path, files: int = 2000) -> float:
    """Seconds the kernel takes to create one empty file here (a loop of open(O_CREAT) + close).
    The files stay until the end (removing them would slow the next creations: see WHY_KEEP)."""
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=work))
    os.sync()
    start = time.perf_counter()
    for i in range(files):
        os.close(os.open(probe / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return (time.perf_counter() - start) / files


def warm_runs(image: BenchImage, tools: list[Tool], runs: int, work: Path,
              kept: list[Path]) -> tuple[list[Result], list[str]]:
    """Pull once (untimed: warms the caches, checks the command works), then time pulls of the same
    image into the same place: nothing to download."""
    results = [Result(t) for t in tools]
    notes = []
    targets = {t.key: work / f"w{t.key[0]}" for t in tools}
    kept.extend(targets.values())
    for r in results:
        r.tool.prepare(targets[r.tool.key])
        try:
            r.tool.run(image, targets[r.tool.key])
        except Failed as e:
            r.error = str(e)
    for i in range(runs):
        for r in results:
            if not r.error:
                out = timed_run(r, image, targets[r.tool.key])
                if i == 0 and r.tool is OURS_TOOL and "Image is up to date" not in out:
                    notes.append(f"ours did not say 'Image is up to date': {out.strip()[-200:]}")
    return results, notes


# --- where our time goes ------------------------------------------------------------------------------


def our_phases(image: BenchImage, work: Path, kept: list[Path] | None) -> list[tuple[str, float]]:
    """One in-process pull into a fresh store, with a timestamp on every progress message and the
    syncfs of the unpacked layer timed: (phase, seconds), in order."""
    from minicontainer.engine import images
    from minicontainer.image import store as store_module

    stamps: list[tuple[float, str]] = []
    synced = [0.0]
    real_syncfs = store_module._syncfs

    def syncfs(path: str) -> None:
        start = time.perf_counter()
        real_syncfs(path)
        synced[0] += time.perf_counter() - start

    root = Path(tempfile.mkdtemp(prefix="phases-", dir=work))
    os.sync()
    store_module._syncfs = syncfs
    start = time.perf_counter()
    try:
        images.pull(image.name, images.open_store(str(root)),
                    progress=lambda msg: stamps.append((time.perf_counter(), msg.get("status", ""))))
    finally:
        store_module._syncfs = real_syncfs
        end = time.perf_counter()
        if kept is None:
            remove_tree(root)
        else:
            kept.append(root)

    def first(status: str) -> float:
        return next(t for t, s in stamps if s == status)

    def last(status: str) -> float:
        return [t for t, s in stamps if s == status][-1]

    fs_layer, verifying, complete = first("Pulling fs layer"), first("Verifying Checksum"), first("Download complete")
    extracting, done = first("Extracting"), last("Pull complete")
    return [
        ("client, manifest, config", fs_layer - start),
        ("download the layer (streamed through sha256 into the store)", verifying - fs_layer),
        ("commit the blob (fsync, rename, fsync dir)", complete - verifying),
        ("unpack: gunzip + sha256 (DiffID) + write the files", done - extracting - synced[0]),
        ("syncfs of the unpacked layer", synced[0]),
        ("the rest (image record, between steps)", (end - start) - (done - start) + (extracting - complete)),
    ]


# Run by the console script's interpreter: the CLI's own ``main(["pull", ...])``, timed in parts.
CLI_PROBE = """
import importlib, json, sys, time
t0 = time.perf_counter()
import minicontainer.cli.main as cli
t1 = time.perf_counter()
for name in json.loads(sys.argv[2]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
t2 = time.perf_counter()
cli.main(["pull", sys.argv[1]])
t3 = time.perf_counter()
print(json.dumps({"cli": t1 - t0, "later": t2 - t1, "pull": t3 - t2, "modules": sorted(sys.modules)}),
      file=sys.stderr)
"""


def console_script_costs(image: BenchImage, work: Path, kept: list[Path], runs: int) -> tuple[float, list]:
    """Where a cold ``minicontainer pull`` of ``image`` spends its time: (median wall time of the
    instrumented runs, [(part, median seconds)]).

    One run of :data:`CLI_PROBE` notes which modules a pull ends up with; then ``runs`` more (each into a
    fresh data root) import those first, so that importing them and pulling are timed apart; what the
    process takes beyond its own three timings is the interpreter's start and exit."""
    first = OURS.read_text().splitlines()[0]
    python = first[2:].strip().split()[0] if first.startswith("#!") else sys.executable

    def probe(modules: list[str]) -> dict:
        root = Path(tempfile.mkdtemp(prefix="cli-", dir=work))
        kept.append(root)
        OURS_TOOL.prepare(root)  # the daemon of this root: running before the clock starts
        start = time.perf_counter()
        r = subprocess.run([python, "-c", CLI_PROBE, image.name, json.dumps(modules)], capture_output=True,
                           text=True, env=OURS_TOOL.env(root), check=True)
        wall = time.perf_counter() - start
        parts = json.loads(r.stderr.strip().splitlines()[-1])
        parts["outside"] = wall - parts["cli"] - parts["later"] - parts["pull"]
        parts["wall"] = wall
        return parts

    modules = probe([])["modules"]
    parts = [probe(modules) for _ in range(runs)]

    def median(key: str) -> float:
        return statistics.median(p[key] for p in parts)

    return median("wall"), [
        (f"interpreter start, and exit with the {len(modules)} modules loaded", median("outside")),
        ("importing minicontainer.cli.main", median("cli")),
        ("importing what the command imports later (the HTTP client, the image reference parser...)",
         median("later")),
        ("main(['pull', ...]): argparse, then the pull itself (the daemon's work, streamed back)", median("pull"))]


# --- the private mount namespace ----------------------------------------------------------------------


def reexec_in_private_mount_namespace() -> None:
    """Start again in a mount namespace of our own: what we mount there vanishes with us."""
    unshare = shutil.which("unshare")
    if os.environ.get(NAMESPACE_MARK) or not unshare:
        return
    env = {**os.environ, NAMESPACE_MARK: "1"}
    if subprocess.run([unshare, "--mount", "true"], check=False, capture_output=True).returncode != 0:
        return  # no mount namespaces here (e.g. in an unprivileged container): run as we are
    os.execve(unshare, [unshare, "--mount", "--propagation", "private", sys.executable,
                        str(Path(__file__).resolve()), *sys.argv[1:]], env)


def hide_shared_state(work: Path) -> tuple[bool, list[Path]]:
    """In our own mount namespace only: bind an empty directory of ours over skopeo's and podman's
    blob-info cache, and mount a tmpfs of ours on /dev/shm (podman keeps its locks in
    /dev/shm/libpod_lock).  Returns (done?, directories we had to create, to remove at the end)."""
    if not os.environ.get(NAMESPACE_MARK):
        return False, []
    created = []
    for d in (BLOB_INFO_CACHE.parent, BLOB_INFO_CACHE):
        if not d.exists():
            d.mkdir(mode=0o700)
            created.append(d)
    private = work / "blob-info-cache"
    private.mkdir(mode=0o700)
    cache = subprocess.run(["mount", "--bind", str(private), str(BLOB_INFO_CACHE)], check=False, capture_output=True)
    shm = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=64m", "bench-pull-shm", "/dev/shm"],
                         check=False, capture_output=True)
    return cache.returncode == 0 and shm.returncode == 0, created


def unhide_shared_state(hidden: bool, created: list[Path]) -> None:
    """Undo :func:`hide_shared_state`."""
    if hidden:
        for point in (str(BLOB_INFO_CACHE), "/dev/shm"):
            subprocess.run(["umount", point], check=False, capture_output=True)
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()


LOOP_FS_SIZE = 8 * 1024**3


def fresh_filesystem(outer: Path) -> Path | None:
    """A new ext4 (with a journal, as most hosts have) in ``outer/fs.img``, loop-mounted on ``outer/fs``:
    the same disk, but a filesystem that only this run has touched (see FRESH_FS).  Only in our own
    mount namespace, so that the mount cannot outlive us.  None if it cannot be made."""
    if not os.environ.get(NAMESPACE_MARK) or not shutil.which("mkfs.ext4"):
        return None
    image, mount_point = outer / "fs.img", outer / "fs"
    mount_point.mkdir()
    try:
        with open(image, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, LOOP_FS_SIZE)  # allocated now: no block allocation while timing
    except OSError as e:
        print(f"note: cannot allocate {LOOP_FS_SIZE >> 30} GiB for a fresh filesystem ({e}): running on {outer}")
        image.unlink(missing_ok=True)
        return None
    steps = [
        # 1M inodes (one per 8 KiB): the runs keep ~600,000 files until the end.  Inode tables and journal
        # written now, not by ext4lazyinit in the background during the timings.
        ["mkfs.ext4", "-q", "-F", "-L", "bench-pull", "-i", "8192", "-E",
         "lazy_itable_init=0,lazy_journal_init=0", str(image)],
        ["mount", "-o", "loop", str(image), str(mount_point)],  # "loop" sets autoclear: unmount frees it
    ]
    for step in steps:
        r = subprocess.run(step, check=False, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"note: {step[0]} failed ({r.stderr.strip()[-200:]}): running on {outer} itself")
            return None
    # Direct I/O from the loop device to its file: no second copy of every block in the page cache, and
    # a flush is the disk's flush (with buffered loop I/O, an fsync here cost 3-4 times one on the disk).
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount_point)], capture_output=True,
                            text=True, check=False).stdout.strip()
    if device.startswith("/dev/loop"):
        subprocess.run(["losetup", "--direct-io=on", device], check=False, capture_output=True)
    return mount_point


FRESH_FS = """Why, by default, a fresh filesystem in a file: this VM's root is an ext4 without a journal, where
creating files is up to 25 times slower for minutes after many files were removed nearby (see
WHY_KEEP): after another session's clean-up, or this benchmark's own (it removes some 600,000 files
at its end, which would also slow every other user of the disk for those minutes).  A new ext4 in an
8 GiB file on the same disk starts empty every time, has a journal (so no such wait), and takes the
benchmark's files away with it.  The file is allocated before the timings, and the loop device
reads and writes it with direct I/O, so that a flush costs what it costs on the disk.  ``--fs dir``
runs in ``--dir`` itself instead."""


def filesystem_of(path: Path) -> str:
    """'ext4 on /dev/vda (mounted at /)' for the mount holding ``path``."""
    path_s, best = str(path.resolve()), None
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4].encode().decode("unicode_escape")
            inside = path_s == point or path_s.startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) >= len(best[0])):
                fstype, source = right.split()[:2]
                best = (point, fstype, source)
    if best is None:
        return "unknown"
    point, fstype, source = best
    if fstype == "ext4":  # a journaled ext4 has a jbd2 entry named after its device, e.g. vda-8
        dev = os.path.basename(source)
        jbd2 = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
        fstype += " (journal)" if any(n.startswith(dev + "-") for n in jbd2) else " (no journal)"
    return f"{fstype} on {source} (mounted at {point})"


# --- the report ---------------------------------------------------------------------------------------


def print_results(title: str, results: list[Result], unit: str, image: BenchImage | None = None) -> None:
    def show(seconds: float) -> str:
        return f"{seconds * 1000:.0f}" if unit == "ms" else f"{seconds:.2f}"

    head = f"{title:<40} {'median ' + unit:>10} {'mean ' + unit:>9} {'best ' + unit:>9} {'then sync ' + unit:>12}"
    print(head + (f" {'gz MB/s':>8} {'tar MB/s':>8}" if image else "") + f"  every run, {unit}")
    for r in results:
        name = f"  {r.tool.label}"
        if r.error or not r.times:
            print(f"{name:<40} {'FAILED':>10}  {r.error or 'no run'}")
            continue
        line = (f"{name:<40} {show(r.median):>10} {show(r.mean):>9} {show(min(r.times)):>9} "
                f"{show(statistics.median(r.syncs)):>12}")
        if image:
            line += f" {len(image.layer.data) / 1e6 / r.median:8.0f} {image.tar_bytes / 1e6 / r.median:8.0f}"
        print(line + "  " + " ".join(show(t) for t in r.times))


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per tool and case (default 5)")
    ap.add_argument("--dir", default="/var/tmp", help="where the registry, the stores and the layers go "
                                                      "(default /var/tmp: a disk, as /var/lib is)")
    ap.add_argument("--fs", choices=("loop", "dir"), default="loop",
                    help="loop (default): a fresh ext4 in a sparse file under --dir, loop-mounted for this run; "
                         "dir: --dir itself")
    args = ap.parse_args()
    if needs_root("bench_pull", "podman, and unpacking layers with their owners"):
        return 0
    missing = [p for p in (str(OURS), REGISTRY_BINARY) if not shutil.which(p)]
    if missing:
        print(f"bench_pull: not found: {', '.join(missing)}; nothing measured")
        return 0
    reexec_in_private_mount_namespace()

    outer = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=args.dir))
    loop_fs: Path | None = None
    tools = [OURS_TOOL] + [t for t in (SKOPEO, PODMAN) if shutil.which(t.key)]
    # Every clean-up step is registered as soon as there is something to clean up, and all of them
    # run (last registered first) however the run ends: one that fails does not skip the others.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(os.sync)  # removed inodes' table blocks clean: creation near them slowed 60 s, not 360
        cleanup.callback(remove_tree, outer)
        hidden, created = hide_shared_state(outer)
        cleanup.callback(unhide_shared_state, hidden, created)
        started = time.perf_counter()
        if args.fs == "loop":
            loop_fs = fresh_filesystem(outer)
        if loop_fs:  # the whole filesystem goes at once: no mass removal of files on the disk's own one
            cleanup.callback(subprocess.run, ["umount", str(loop_fs)], check=False, capture_output=True)
        work = loop_fs or outer
        spread = spread_subdirectories(work)
        registry = RunningRegistry(work / "registry", "bench", log_level="error")
        cleanup.callback(registry.stop)
        cleanup.callback(OURS_TOOL.release)  # every daemon of ours, before the registry and their roots go
        registry.start()
        print(f"work dir {work}: {filesystem_of(work)}; every tool writes there, the registry's storage too")
        if loop_fs:
            print(f"  (a fresh {LOOP_FS_SIZE >> 30} GiB ext4 in the file {outer / 'fs.img'}, on "
                  f"{filesystem_of(outer)}: see FRESH_FS in the script)")
        print(f"registry {REGISTRY_BINARY} on {registry.host} (pid {registry.process.pid}); "
              f"{os.cpu_count()} CPUs; {args.runs} timed runs per tool and case, the tools' order rotating")
        os.sync()
        free = shutil.disk_usage(outer).free
        if free < 5e9:
            print(f"WARNING: {free / 1e9:.1f} GB left free under {outer}")
        if not spread:
            print("note: chattr +T failed on the work dir: runs may land next to recently removed files "
                  "(see WHY_KEEP in the script)")
        if not hidden:
            print("note: /var/lib/containers/cache and /dev/shm are NOT hidden: skopeo and podman may write there")
        print("building and pushing the images ...", flush=True)
        made = time.perf_counter()
        bb = make_image(f"{registry.host}/bench/busybox:latest", busybox_layer_tar(work), cmd=["sh"])
        big = make_image(f"{registry.host}/bench/big:latest", big_layer_tar())
        small = make_image(f"{registry.host}/bench/small:latest", small_layer_tar())
        built = time.perf_counter() - made
        with RegistryClient(timeout=120) as client:
            for image in (bb, big, small):
                push(client, image)
        for image in (bb, big, small):
            print(f"  {image.name}: 1 layer, {image.entries} entries, gzip {len(image.layer.data) / 1e6:.1f} MB, "
                  f"tar {image.tar_bytes / 1e6:.1f} MB")
        print(f"  (built in {built:.1f} s, pushed in {time.perf_counter() - made - built:.1f} s)")
        TAR.blob = work / "small-layer.tar.gz"
        TAR.blob.write_bytes(small.layer.data)
        skipped = [t.key for t in (SKOPEO, PODMAN) if t not in tools]
        if skipped:
            print(f"  not on PATH, skipped: {', '.join(skipped)}")

        cost = create_cost(work)
        print(f"creating an empty file in a fresh directory here costs the kernel {cost * 1e6:.0f} us")
        kept: list[Path] = []  # removed only at the end: see WHY_KEEP
        phases = {}
        print("\ntiming busybox, then one in-process pull of it ...", flush=True)
        load = OtherLoad(registry)
        load.start("busybox")
        warm, notes = warm_runs(bb, tools, args.runs, work, kept)
        cold = cold_runs("b", bb, tools, args.runs, work, kept)
        load.stop("busybox")
        phases["busybox"] = our_phases(bb, work, kept)
        cli_wall, cli_parts = console_script_costs(bb, work, kept, args.runs)
        print("timing the 200 MB layer, then one in-process pull of it ...", flush=True)
        load.start("big")
        big_results = cold_runs("g", big, tools, args.runs, work, None)
        load.stop("big")
        phases["200 MB"] = our_phases(big, work, None)
        print("timing the 35,000-file layer, then one in-process pull of it ...", flush=True)
        small_tools = [t for t in (OURS_TOOL, TAR, PODMAN) if t in tools or t is TAR]
        probes: list[float] = []
        load.start("small")
        small_results = cold_runs("s", small, small_tools, args.runs, work, kept, probes)
        load.stop("small")
        phases["35,000 files"] = our_phases(small, work, kept)
        print(f"removing what the runs left ({len(kept)} trees) ...\n", flush=True)
        remove_all(kept)

        print_results("busybox, cold (empty store)", cold, "ms")
        print_results("busybox, warm (image already there)", warm, "ms")
        print(load.line("busybox"))
        print_results("200 MB layer, cold: pull + unpack", big_results, "s", big)
        print(load.line("big"))
        print_results("35,000 files, cold: pull + unpack", small_results, "s", small)
        print(load.line("small"))
        print(f"  (meanwhile, creating one empty file cost the kernel {statistics.median(probes) * 1e6:.0f} us: "
              f"median of {len(probes)} probes of 2,000, range {min(probes) * 1e6:.0f}-{max(probes) * 1e6:.0f} us;"
              f"\n   35,000 creates alone: {statistics.median(probes) * 35_000:.1f} s of every unpacking tool's time)")
        for note in notes:
            print(f"note: {note}")

        print("\nratios (medians)")
        by = {(case, r.tool.key): r for case, rs in (("cold", cold), ("warm", warm), ("big", big_results),
                                                     ("small", small_results)) for r in rs
              if r.times and not r.error}
        for case in ("cold", "warm"):
            ours = by.get((case, "ours"))
            for other in ("skopeo", "podman"):
                if ours and (case, other) in by:
                    said = f"   (the issue: {other} {ISSUE_SAYS[other]} cold)" if case == "cold" else ""
                    print(f"  busybox {case}: ours / {other:<6} {ours.median / by[(case, other)].median:5.2f}x{said}")
        ours, skopeo = by.get(("big", "ours")), by.get(("big", "skopeo"))
        if ours and skopeo:
            rate_ours, rate_skopeo = (len(big.layer.data) / 1e6 / r.median for r in (ours, skopeo))
            print(f"  200 MB: ours {rate_ours:.0f} MB/s vs skopeo {rate_skopeo:.0f} MB/s of compressed bytes "
                  f"(ours/skopeo time {ours.median / skopeo.median:.2f}x); skopeo does not unpack"
                  f"\n          target ours >= skopeo: {verdict(rate_ours >= rate_skopeo)}")
        if ours and ("big", "podman") in by:
            print(f"  200 MB: ours / podman {ours.median / by[('big', 'podman')].median:5.2f}x (both unpack)")
        ours, tar = by.get(("small", "ours")), by.get(("small", "tar"))
        if ours and tar:
            ratio = ours.median / tar.median
            print(f"  35,000 files: ours / tar {ratio:5.2f}x   (target <= {SMALL_TARGET:.1f}x: {verdict(ratio <= SMALL_TARGET)})")
            if ("small", "podman") in by:
                print(f"  35,000 files: podman / tar {by[('small', 'podman')].median / tar.median:5.2f}x"
                      "   (the issue: ~1.8x)")
            with_sync = statistics.median(t + s for t, s in zip(tar.times, tar.syncs))
            print(f"  35,000 files: ours / (tar + sync) {ours.median / with_sync:5.2f}x   (information: tar "
                  "does not make its files durable, we do)")

        print("\nwhere our time goes (one in-process pull each, fresh store; no interpreter start here)")
        for name, rows in phases.items():
            total = sum(s for _, s in rows)
            print(f"  {name}: {total * 1000:.0f} ms")
            for label, seconds in rows:
                print(f"    {seconds * 1000:8.1f} ms {100 * seconds / total:5.1f}%  {label}")
        print(f"  busybox through the console script, cold: {cli_wall * 1000:.0f} ms (median of {args.runs} "
              f"instrumented runs; {by[('cold', 'ours')].median * 1000:.0f} ms in the timed ones above):"
              if ("cold", "ours") in by else f"  busybox through the console script: {cli_wall * 1000:.0f} ms")
        for label, seconds in cli_parts:
            print(f"    {seconds * 1000:8.1f} ms {100 * seconds / cli_wall:5.1f}%  {label}")
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
    left = mounts_below(outer) + ([str(outer)] if outer.exists() else [])
    print(f"clean-up: registry stopped, {'LEFT: ' + ', '.join(left) if left else 'temp dir removed, no mounts left'}")
    return 0


if __name__ == "__main__":
    run_as_report(main, "bench_pull")
