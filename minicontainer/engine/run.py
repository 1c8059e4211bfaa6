"""``minicontainer run IMAGE CMD``: an image becomes a running container, end to end.

1. find the image in the store, or pull it;
2. stack its layers with overlayfs: the layers are the read-only lower directories, the container
   gets an upper directory of its own for everything it writes (:mod:`minicontainer.image.overlay`);
3. turn the image's config and the command line's options into a runtime config.json
   (:mod:`minicontainer.engine.spec`);
4. hand the bundle (that config.json + the overlay) to the OCI runtime, and wait;
5. unmount the overlay and remove the container's directory.

This is the foreground, remove-when-done form (``docker run --rm``).  Containers that outlive the
command (``ps``, ``logs``, ``start``, ``stop``) come with the daemon.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable

from minicontainer import config
from minicontainer.engine import images
from minicontainer.engine.spec import RunOptions, write_bundle
from minicontainer.image import overlay
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.runtime import lifecycle


def run(image_name: str, opts: RunOptions, *, data_root: str | None = None, runtime_root: str | None = None,
        progress: Callable[[dict], None] | None = None, sys: Syscalls | None = None,
        on_step: Callable[[str], None] | None = None) -> int:
    """Run ``opts.command`` (or the image's default) in a new container; returns its exit code."""
    sys = sys or Syscalls()
    runtime_root = runtime_root or os.path.join(config.run_root(), "runtime")
    store = images.open_store(data_root)
    image = images.find_or_pull(image_name, store, progress=progress)
    container_id = secrets.token_hex(32)  # 64 hex digits, as docker's
    container_dir = os.path.join(images.containers_dir(store), container_id)
    os.makedirs(container_dir, mode=0o700)
    with open(os.path.join(container_dir, "image"), "w") as f:
        f.write(image.id)  # while this file exists, `rmi` refuses to remove the image (its layers are in use)
    mounted = False
    try:
        write_bundle(sys, store, image, opts, container_dir, cgroups_path=f"minicontainer-{container_id[:12]}",
                     hostname=container_id[:12])
        mounted = True
        return lifecycle.run(sys, runtime_root, container_id[:12], container_dir, on_step=on_step)
    finally:
        if mounted:
            overlay.unmount_rootfs(sys, container_dir)
        shutil.rmtree(container_dir, ignore_errors=True)
