"""Shared fixtures: busybox bundles, a private runtime root, and the leak check.

Isolation is tested for real, as root: these fixtures build real bundles from Debian's
busybox-static and run them with the real runtime.  Every container a test creates is deleted in
the fixture's teardown, also when the test fails, and the session ends by checking that nothing
(mount, cgroup, state directory, process) was left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from minicontainer.runtime import busybox
from minicontainer.runtime.defaults import default_config

RUNTIME = [sys.executable, "-m", "minicontainer.runtime.cli"]
IS_ROOT = os.geteuid() == 0


# One test session at a time on a machine: the leak check below compares the machine's mounts,
# cgroups and processes before and after, and a second session (another clone, another worktree)
# would make its containers look like ours.  The lock is released when the process exits.
SESSION_LOCK = "/run/lock/minicontainer-tests.lock"


def pytest_configure(config):
    if not IS_ROOT or os.environ.get("MINICONTAINER_TESTS_LOCKED"):
        return
    import fcntl

    os.makedirs(os.path.dirname(SESSION_LOCK), exist_ok=True)
    fd = os.open(SESSION_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        print(f"\nwaiting for the test session that holds {SESSION_LOCK} ({holder}) to end...",
              file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"PID {os.getpid()} in {os.getcwd()}".encode(), 0)
    os.environ["MINICONTAINER_TESTS_LOCKED"] = "1"  # pytest run by a test (none yet) must not wait on us
    config._minicontainer_lock_fd = fd


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("root") and not IS_ROOT:
            item.add_marker(pytest.mark.skip(reason="needs root: real namespaces, mounts and cgroups"))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """One rootfs for the session; each bundle gets its own copy (tests may write into it)."""
    try:
        busybox.find_static_busybox()
    except FileNotFoundError as e:
        pytest.fail(f"{e} -- `make test` installs it")
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    busybox.make_rootfs(str(root))
    return root


@pytest.fixture
def runtime_root(tmp_path) -> Path:
    root = tmp_path / "state"
    yield root
    # Whatever the test left: delete it (kill first), so one failure does not leak into the next.
    if root.exists():
        for cid in os.listdir(root):
            subprocess.run(RUNTIME + ["--root", str(root), "delete", "--force", cid], capture_output=True,
                           check=False)


@pytest.fixture
def make_bundle(tmp_path, busybox_rootfs) -> Callable[..., Path]:
    """``make_bundle(["sh", "-c", "..."], **config_changes)`` -> a bundle dir.

    ``config_changes`` are merged into the default config: ``linux={"resources": ...}`` updates
    the ``linux`` object rather than replacing it.
    """
    counter = iter(range(1000))

    def make(args: list[str], **changes) -> Path:
        bundle = tmp_path / f"bundle{next(counter)}"
        bundle.mkdir()
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(bundle / "rootfs")], check=True)
        config = default_config(args)
        # A cgroup name of its own: container ids repeat across tests (and concurrent sessions).
        config["linux"]["cgroupsPath"] = f"minicontainer-test-{uuid.uuid4().hex[:12]}"
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        (bundle / "config.json").write_text(json.dumps(config, indent=1))
        return bundle

    return make


@pytest.fixture
def rt(runtime_root) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``minicontainer-runtime --root <private root> ARGS...``; returns the completed process."""

    def run(*args: str, timeout: float = 60, stdout=None) -> subprocess.CompletedProcess:
        # Files, not pipes: a detached or created container inherits the runtime's stdout and
        # stderr (as with runc), and would hold a pipe open long after the runtime has exited.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            r = subprocess.run(RUNTIME + ["--root", str(runtime_root), *args], stdin=subprocess.DEVNULL,
                               stdout=stdout or out, stderr=err, text=True, timeout=timeout, check=False)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(r.args, r.returncode, out.read(), err.read())

    return run


# --- the leak check ----------------------------------------------------------------------------------


def _our_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "/pytest-" in line or "minicontainer" in line]


def _own_cgroup_prefixes() -> list[str]:
    """This process's cgroup in each hierarchy where it is not the root, as "controllers:path".

    On a machine where several sessions (agents, CI jobs) each run in a cgroup of their own, a cgroup
    or process of another session's lies elsewhere in those hierarchies: it is not ours to report."""
    with open("/proc/self/cgroup") as f:
        rows = [line.rstrip("\n").split(":", 2) for line in f]
    return [f"{controllers}:{path.rstrip('/')}/" for _n, controllers, path in rows if path not in ("", "/")]


def _mount_of(controllers: str) -> str:
    return "/sys/fs/cgroup/" + (controllers.replace("name=", "") if controllers else "unified")


def _our_cgroups() -> list[str]:
    found = []
    for top, dirs, _files in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if d.startswith("minicontainer-"):  # tests' (minicontainer-test-*) and engines' (minicontainer-<id>)
                found.append(os.path.join(top, d))
        if top.count("/") > 8:
            dirs[:] = []
    # Where this session has a cgroup of its own in some hierarchy, only the names made beneath it.
    scoped = [_mount_of(p.split(":", 1)[0]) + p.split(":", 1)[1] for p in _own_cgroup_prefixes()]
    if scoped:
        names = {os.path.basename(c) for c in found if any(c.startswith(s) for s in scoped)}
        found = [c for c in found if os.path.basename(c) in names]
    return found


def _our_processes() -> list[str]:
    """Runtimes started by a test (a pytest temp dir on their command line) and containers' processes
    (in a cgroup of ours)."""
    out = []
    own = _own_cgroup_prefixes()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text()
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if own and not any(line.split(":", 1)[1].startswith(o) for line in cgroups.splitlines() for o in own):
            continue  # another session's
        if ("/pytest-" in cmd or "/minicontainer-" in cgroups) and ") Z" not in stat:
            out.append(f"{pid}: {cmd}")
    return out


def _our_links() -> list[str]:
    """Bridges and veths of the engines' networks (test daemons' bridges are mct*, networks' mcbr-*)."""
    return [n for n in os.listdir("/sys/class/net") if n.startswith(("mc", "veth"))]


def _our_firewall_tables() -> list[str]:
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    return [line.strip() for line in out.splitlines() if "minicontainer" in line]


@pytest.fixture(autouse=True)
def not_a_subreaper_afterwards():
    """A test that runs a container in this process (``engine.run``) makes pytest a child subreaper;
    left so, every later test's orphans (a detached container's init) would become pytest's children,
    and their zombies, never reaped, would keep their cgroups from being removed.  Undo it."""
    yield
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(0)
    if libc.prctl(37, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value:  # PR_GET_CHILD_SUBREAPER
        libc.prctl(36, 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, 0


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    before = (set(_our_mounts()), set(_our_cgroups()), set(_our_processes()), set(_our_links()),
              set(_our_firewall_tables()))
    yield
    if not IS_ROOT:
        return
    left = {
        "mounts": sorted(set(_our_mounts()) - before[0]),
        "cgroups": sorted(set(_our_cgroups()) - before[1]),
        "processes": sorted(set(_our_processes()) - before[2]),
        "network interfaces": sorted(set(_our_links()) - before[3]),
        "nftables tables": sorted(set(_our_firewall_tables()) - before[4]),
    }
    left = {k: v for k, v in left.items() if v}
    assert not left, f"the test session left these behind: {left}"


@pytest.fixture(scope="session")
def cgroup_join_file() -> str:
    """The file a container's first process writes 0 into to join its cgroup, as ``--explain`` shows
    it: each v1 hierarchy's ``tasks`` (v1 and hybrid hosts), else ``cgroup.procs``."""
    from minicontainer.kernel.cgroups.layout import detect

    return "cgroup.procs" if detect().mode == "v2" else "/tasks"
