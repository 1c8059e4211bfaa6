"""Peer check: runc runs the very same bundle, and both runtimes must give the same isolation.

runc is the reference implementation of the OCI runtime spec.  One bundle, whose program reports what
it can see of its surroundings, is run once by ``minicontainer-runtime run`` and once by ``runc run``;
the two reports must agree field by field:

* its PID (1 in both: the program is the init of a new PID namespace);
* its hostname (the config's ``hostname``);
* its namespaces: the same names, and the same ones differing from the host's (the inode numbers
  themselves are new in each run, so only "differs from the host" is comparable);
* its mounts of /proc, /dev and /sys and everything under them (type, mount point, options);
* its /dev: every entry with its type, mode, device numbers and link target;
* its capability sets and ``no_new_privs``.

What legitimately differs is normalised, and each normalisation says why below.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not on PATH (`make test` installs it)"),
]

# One line per fact, "key value", so that both outputs parse the same way.
# Not /dev/fd/*: that is /proc/self/fd, the program's open files, not /dev's contents; and they
# legitimately differ: in the foreground without a terminal runc relays the program's stdio through
# pipes of its own, where minicontainer hands its own stdin/stdout/stderr to the program.
REPORT = r"""
echo "pid $$"
echo "hostname $(hostname)"
for ns in /proc/self/ns/*; do echo "ns ${ns##*/} $(readlink $ns)"; done
while read src dst fstype opts rest; do
  case "$dst" in /proc|/proc/*|/dev|/dev/*|/sys|/sys/*) echo "mount $dst $fstype $opts";; esac
done < /proc/self/mounts
for f in /dev/* /dev/pts/* /dev/shm/* /dev/mqueue/*; do
  [ -e "$f" ] || [ -L "$f" ] && echo "dev $(stat -c '%n|%F|%a|%t,%T|%N' "$f")"
done
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status | sed 's/^/status /'
"""

# Namespaces the default config asks for, by their /proc/self/ns names; user and time are not asked
# for, so both runtimes leave the container in the host's (pid_for_children follows pid).
EXPECTED_NEW_NAMESPACES = {"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "uts"}

# Mount options whose value is the kernel's bookkeeping rather than the runtime's choice: tmpfs
# reports its size rounded to pages and an inode count derived from memory, and ``inode64`` appears
# depending on the kernel version.  Both runtimes pass the config's size unchanged.
VOLATILE_OPTION_PREFIXES = ("size=", "nr_inodes=", "inode64")


@dataclass
class Report:
    pid: str
    hostname: str
    namespaces: dict[str, str]  # name -> "type:[inode]"
    mounts: list[tuple[str, str, frozenset[str]]]  # (mount point, fs type, options), sorted
    dev: list[str]
    status: list[str]
    raw: str


def parse(stdout: str) -> Report:
    pid = hostname = ""
    namespaces: dict[str, str] = {}
    mounts, dev, status = [], [], []
    for line in stdout.splitlines():
        key, _, value = line.partition(" ")
        if key == "pid":
            pid = value
        elif key == "hostname":
            hostname = value
        elif key == "ns":
            name, link = value.split(" ", 1)
            namespaces[name] = link
        elif key == "mount":
            point, fstype, opts = value.split(" ")
            kept = frozenset(o for o in opts.split(",") if not o.startswith(VOLATILE_OPTION_PREFIXES))
            mounts.append((point, fstype, kept))
        elif key == "dev":
            dev.append(value)
        elif key == "status":
            status.append(" ".join(value.split()))
    # Order of mounts: runc applies linux.readonlyPaths before linux.maskedPaths, minicontainer the
    # other way round.  The two lists name disjoint paths, so the order changes nothing a program can
    # see; compare them as sorted lists (duplicates, i.e. stacked mounts, would still show).
    mounts.sort(key=lambda m: (m[0], m[1], sorted(m[2])))
    return Report(pid, hostname, namespaces, mounts, sorted(dev), sorted(status), stdout)


@pytest.fixture
def both_reports(rt, make_bundle, tmp_path) -> tuple[Report, Report]:
    """Run the report bundle with minicontainer-runtime, then with runc; returns (ours, runc's)."""
    bundle = make_bundle(["sh", "-c", REPORT])
    ours = rt("run", "--bundle", str(bundle), "peer-ours")
    assert ours.returncode == 0, f"minicontainer-runtime run failed:\n{ours.stderr}"

    runc_root = tmp_path / "runc-state"
    runc_id = "minicontainer-peer-runc"  # the prefix lets the session's leak check see its cgroup
    try:
        theirs = subprocess.run(["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), runc_id],
                                capture_output=True, text=True, timeout=60, check=False)
    finally:
        if (runc_root / runc_id).exists():
            subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", runc_id],
                           capture_output=True, timeout=60, check=False)
    assert theirs.returncode == 0, f"runc run failed:\n{theirs.stderr}"
    return parse(ours.stdout), parse(theirs.stdout)


def host_namespace(name: str) -> str:
    return os.readlink(f"/proc/self/ns/{name}")


def test_both_run_the_program_as_pid_1_with_the_configs_hostname(both_reports):
    ours, runc = both_reports
    assert (ours.pid, runc.pid) == ("1", "1"), (ours.raw, runc.raw)
    assert ours.hostname == runc.hostname == "minicontainer"


def test_both_give_the_same_namespaces_new_and_share_the_same_with_the_host(both_reports):
    ours, runc = both_reports
    assert set(ours.namespaces) == set(runc.namespaces)

    def new_ones(report: Report) -> set[str]:
        return {name for name, link in report.namespaces.items() if link != host_namespace(name)}

    assert new_ones(ours) == new_ones(runc) == EXPECTED_NEW_NAMESPACES
    # The link names the namespace type ("pid_for_children -> pid:[...]"): same types on both sides.
    kinds = {name: link.split(":")[0] for name, link in ours.namespaces.items()}
    assert kinds == {name: link.split(":")[0] for name, link in runc.namespaces.items()}


def test_both_mount_proc_dev_and_sys_the_same_way(both_reports):
    ours, runc = both_reports
    assert ours.mounts == runc.mounts
    # And the key options are really there (not merely equally absent):
    by_point = {point: (fstype, opts) for point, fstype, opts in ours.mounts}
    assert by_point["/proc"][0] == "proc" and {"nosuid", "nodev", "noexec"} <= by_point["/proc"][1]
    assert by_point["/dev"][0] == "tmpfs" and {"nosuid", "mode=755"} <= by_point["/dev"][1]
    assert by_point["/sys"][0] == "sysfs" and "ro" in by_point["/sys"][1]
    assert "ro" in by_point["/proc/sys"][1]


def test_both_populate_dev_with_the_same_entries(both_reports):
    # Note: runc makes the /dev/core -> /proc/kcore link only if the host has /proc/kcore (kernels
    # built without CONFIG_PROC_KCORE have none); a runtime that always makes it leaves a dangling link.
    ours, runc = both_reports
    ours_names, runc_names = ({line.split("|")[0] for line in r.dev} for r in (ours, runc))
    # Compare the names first: the message is then the short list of what differs.
    assert ours_names == runc_names, (
        f"entries only in one /dev: ours only {sorted(ours_names - runc_names)}, "
        f"runc only {sorted(runc_names - ours_names)} (host has /proc/kcore: {os.path.exists('/proc/kcore')})")
    assert ours.dev == runc.dev


def test_both_leave_the_same_capabilities_and_no_new_privs(both_reports):
    ours, runc = both_reports
    assert ours.status == runc.status
    assert "NoNewPrivs: 1" in ours.status
