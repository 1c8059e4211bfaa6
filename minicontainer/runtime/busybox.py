"""A bundle whose root filesystem is one static program: Debian's busybox-static.

A container image is, at heart, a directory tree.  The smallest useful one holds a single statically
linked binary (no shared libraries to bring along) and a link per command it implements.  This is
the bundle the demo and the tests run, and anyone can make it without a registry::

    python -m minicontainer.runtime.busybox /tmp/bundle -- sh -c 'echo hi'
    minicontainer-runtime run --bundle /tmp/bundle demo
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from minicontainer.kernel.features import BUSYBOX_CANDIDATES  # this host's facts are the kernel layer's
from minicontainer.runtime.defaults import default_config


def find_static_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            return path
    raise FileNotFoundError("busybox not found: install Debian's busybox-static (apt-get install busybox-static)")


def make_rootfs(rootfs: str, busybox: str | None = None) -> None:
    """Fill ``rootfs`` with busybox, its applet links, and the few files programs expect."""
    busybox = busybox or find_static_busybox()
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "home"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    target = os.path.join(rootfs, "bin", "busybox")
    shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "etc/hostname": "minicontainer\n",
    }
    for name, text in files.items():
        with open(os.path.join(rootfs, name), "w") as f:
            f.write(text)


def make_bundle(bundle: str, args: list[str] | None = None, **config_overrides) -> dict:
    """Create ``bundle/rootfs`` and ``bundle/config.json``; returns the config written."""
    make_rootfs(os.path.join(bundle, "rootfs"))
    config = default_config(args)
    config.update(config_overrides)
    write_config(bundle, config)
    return config


def write_config(bundle: str, config: dict) -> None:
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: python -m minicontainer.runtime.busybox BUNDLE_DIR [-- COMMAND...]")
    command = argv[2:] if len(argv) > 1 and argv[1] == "--" else None
    make_bundle(argv[0], command)
    print(f"bundle ready in {argv[0]}: minicontainer-runtime run --bundle {argv[0]} ID")
