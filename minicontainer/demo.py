"""``make demo``: one busybox container, isolated by the kernel, every step narrated.

Builds an OCI bundle from Debian's busybox-static, runs it with ``minicontainer-runtime --explain``
(exactly what a learner would type), and puts what the container sees next to what the host sees.
Then a second run shows a cgroup limit at work: a program that allocates past its memory limit is
killed by the kernel's OOM killer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile

from minicontainer.runtime import busybox

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


def runtime(*args: str) -> list[str]:
    return [sys.executable, "-m", "minicontainer.runtime.cli", *args]


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the demo needs root: namespaces, mounts and cgroups are root's to make (try: sudo make demo;\n"
              "`minicontainer doctor` tells what this host allows)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="minicontainer-demo-")
    state_root = os.path.join(work, "state")
    try:
        bundle = os.path.join(work, "bundle")
        os.mkdir(bundle)
        config = busybox.make_bundle(bundle, ["sh", "-c", INSIDE])
        config["hostname"] = "demo-box"
        config["linux"]["cgroupsPath"] = f"minicontainer-demo-{os.getpid()}"
        config["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 32}}
        busybox.write_config(bundle, config)

        section("the bundle")
        print(f"{bundle}/rootfs       one static busybox binary and its {len(os.listdir(bundle + '/rootfs/bin')) - 1}"
              " command links")
        print(f"{bundle}/config.json  namespaces {[n['type'] for n in config['linux']['namespaces']]},"
              " 64 MiB memory, 32 processes at most")

        cid = f"demo-{os.getpid()}"
        command = runtime("--root", state_root, "--explain", "run", "--bundle", bundle, cid)
        section("$ minicontainer-runtime --explain run --bundle BUNDLE " + cid)
        sys.stdout.flush()
        inside = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        section("what the container saw")
        print(inside.stdout, end="")
        section("what the host sees")
        print(f"host PID of this demo: {os.getpid()}")
        print(f"host processes:        {sum(p.isdigit() for p in os.listdir('/proc'))}")
        print(f"host hostname:         {socket.gethostname()}  (unchanged)")
        print(f"host interfaces:       {' '.join(sorted(os.listdir('/sys/class/net')))}")
        print(f"host namespaces:       {' '.join(os.readlink(f'/proc/self/ns/{n}') for n in ('pid', 'mnt', 'uts', 'ipc', 'net', 'cgroup'))}")
        if inside.returncode != 0:
            print(f"\nthe container exited {inside.returncode}", file=sys.stderr)
            return inside.returncode

        section("a cgroup limit at work: 64 MiB of memory, and a program that wants 256 MiB")
        config["process"]["args"] = ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"]
        config["linux"]["cgroupsPath"] = f"minicontainer-demo-oom-{os.getpid()}"
        busybox.write_config(bundle, config)
        print("$ minicontainer-runtime run --bundle BUNDLE (dd if=/dev/zero of=/dev/null bs=256M count=1)")
        oom = subprocess.run(runtime("--root", state_root, "run", "--bundle", bundle, cid + "-oom"), check=False)
        verdict = "killed by the OOM killer (128 + SIGKILL)" if oom.returncode == 137 else "not what was expected"
        print(f"exit code {oom.returncode}: {verdict}")
        print("\nEvery kernel step above is also in the runtime's events; see `minicontainer-runtime --help`.")
        return 0 if oom.returncode == 137 else 1
    finally:
        # The runtime deletes what `run` created; this removes the bundle and state directory.
        for cid in os.listdir(state_root) if os.path.isdir(state_root) else []:
            subprocess.run(runtime("--root", state_root, "delete", "--force", cid), check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
