"""``make demo``: a busybox container from the image store, isolated by the kernel, every step narrated.

Runs ``minicontainer run --explain busybox ...`` (exactly what a learner would type; the image is
built from the host's own busybox the first time, so no registry is needed), and puts what the
container sees next to what the host sees.  Then a cgroup limit at work: a program that allocates
past its memory limit is killed by the kernel's OOM killer.  Last, hello-world.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

INSIDE = r"""
echo "my PID:               $$"
echo "processes I can see:  $(ls /proc | grep -cE '^[0-9]+$')  ($(ps -o pid,comm | tail -n +2 | tr -s ' ' | tr '\n' ';'))"
echo "my hostname:          $(hostname)"
echo "network interfaces:   $(ls /sys/class/net | tr '\n' ' ')"
echo "my root directory:    $(ls / | tr '\n' ' ')"
echo "devices in /dev:      $(ls /dev | tr '\n' ' ')"
echo "my cgroup:            $(grep -m1 memory /proc/self/cgroup || head -1 /proc/self/cgroup)  (the cgroup namespace makes mine look like the root)"
echo "my namespaces:        $(for n in pid mnt uts ipc net cgroup; do printf '%s ' $(readlink /proc/self/ns/$n); done)"
"""

MiB = 1024 * 1024


def minicontainer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The `minicontainer` command, exactly as a learner types it."""
    return subprocess.run([sys.executable, "-m", "minicontainer.cli.main", *args], check=False, **kwargs)


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the demo needs root: namespaces, mounts and cgroups are root's to make (try: sudo make demo;\n"
              "`minicontainer doctor` tells what this host allows)", file=sys.stderr)
        return 1
    from minicontainer.client.api import ensure_daemon, socket_path

    started = ensure_daemon(socket_path())  # the daemon the CLI talks to, as dockerd for docker
    try:
        return _demo()
    finally:
        if started:  # the demo started it: it stops it (and so every container is gone too)
            os.kill(started, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{started}") and time.monotonic() < deadline:
                time.sleep(0.05)


def _demo() -> int:
    section("$ minicontainer images")
    listed = minicontainer("images", "-q", "busybox", capture_output=True, text=True).stdout.strip()
    if not listed:
        print("(no busybox image yet: no registry is needed, build the starter images from this host's files)")
        section("$ minicontainer starter")
        minicontainer("starter", "busybox", "hello-world")
    minicontainer("images")

    section("$ minicontainer run --explain -h demo-box -m 64m --pids-limit 32 busybox sh -c '...'")
    sys.stdout.flush()
    inside = minicontainer("run", "--explain", "-h", "demo-box", "-m", "64m", "--pids-limit", "32", "busybox",
                           "sh", "-c", INSIDE, stdout=subprocess.PIPE, text=True)
    section("what the container saw")
    print(inside.stdout, end="")
    section("what the host sees")
    print(f"host PID of this demo: {os.getpid()}")
    print(f"host processes:        {sum(p.isdigit() for p in os.listdir('/proc'))}")
    print(f"host hostname:         {socket.gethostname()}  (unchanged)")
    print(f"host interfaces:       {' '.join(sorted(os.listdir('/sys/class/net')))}")
    print(f"host namespaces:       {' '.join(os.readlink(f'/proc/self/ns/{n}') for n in NAMESPACES)}")
    if inside.returncode != 0:
        print(f"\nthe container exited {inside.returncode}", file=sys.stderr)
        return inside.returncode

    section("a cgroup limit at work: 64 MiB of memory, and a program that wants 256 MiB")
    print("$ minicontainer run -m 64m busybox dd if=/dev/zero of=/dev/null bs=256M count=1", flush=True)
    oom = minicontainer("run", "-m", "64m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
    verdict = "killed by the OOM killer (128 + SIGKILL)" if oom.returncode == 137 else "not what was expected"
    print(f"exit code {oom.returncode}: {verdict}")

    section("$ minicontainer run hello-world")
    hello = minicontainer("run", "hello-world")
    return 0 if oom.returncode == 137 and hello.returncode == 0 else 1


NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")

if __name__ == "__main__":
    sys.exit(main())
