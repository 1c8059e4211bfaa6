"""``docker commit``: a container's changes become a new image, one layer on top of its image's.

An image is layers plus a config (:mod:`minicontainer.image.builder`).  A container adds exactly one
thing to its image: its overlay *upper* directory, everything it wrote.  Committing is:

1. **snapshot** the upper directory into a layer tar (:mod:`minicontainer.image.snapshot`: overlay
   whiteouts become OCI ``.wh.`` files), stored as a blob, and unpacked into the store as any
   pulled layer is (its chain ID continues the image's chain);
2. a **config**: the image's, with the container's own settings (its Cmd, Env, WorkingDir...: what
   ``docker run`` was told), the new DiffID appended to ``rootfs.diff_ids``, and a **history**
   entry saying what made the layer (``created_by``);
3. a **manifest** listing the image's layers and the new one; the image ID is the config's digest.

A running container is frozen (its cgroup's freezer, as ``docker pause``) while its upper directory
is read, unless the request says ``pause=false``: a layer is one moment's state.

A container that changed nothing adds no layer: its history entry says ``"empty_layer": true``, as
Docker's do for the ``ENV`` or ``CMD`` of a Dockerfile.  The build (:mod:`minicontainer.engine.build`)
makes every one of its images with :func:`make_image`.

The layer blob is stored uncompressed (``application/vnd.oci.image.layer.v1.tar``), as Docker's
own layer store keeps layers: compressing is for the network, and a registry takes a plain tar.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import TYPE_CHECKING, NamedTuple

from minicontainer.engine.errors import Conflict, InvalidParameter
from minicontainer.image import builder, snapshot
from minicontainer.image.digest import digest_bytes
from minicontainer.image.layers import unpack
from minicontainer.image.store import Image, Store

if TYPE_CHECKING:
    from minicontainer.engine.service import Container, Engine

# The fields of a container's config that an image keeps (what the next `run` starts from).
IMAGE_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes", "WorkingDir",
                       "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")


class NewLayer(NamedTuple):
    """A layer just stored: its descriptor for the manifest and its DiffID for the config."""

    descriptor: dict  # mediaType, digest, size
    diff_id: str
    changes: list[snapshot.Change]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def store_layer(store: Store, upper: str, parent: Image | None) -> NewLayer | None:
    """Snapshot ``upper`` into the store as the layer above ``parent``'s; None if nothing changed.

    Call it under :meth:`Store.lease`: the layer belongs to no image until :func:`make_image`."""
    if snapshot.is_empty(upper):
        return None
    with store.blob_writer() as writer:
        changes = snapshot.write_layer(upper, writer)
        digest = writer.commit()  # uncompressed: the digest is the DiffID
        size = writer.offset
    parent_chain = parent.chain_ids[-1] if parent and parent.chain_ids else None
    chain = digest_bytes(f"{parent_chain} {digest}".encode()) if parent_chain else digest  # see store.chain_ids

    def fill(directory: str):
        with store.open_blob(digest) as blob:
            return unpack(blob, directory, builder.OCI_LAYER)

    store.add_layer(chain, parent_chain, digest, digest, fill)
    return NewLayer({"mediaType": builder.OCI_LAYER, "digest": digest, "size": size}, digest, changes)


def base_config(parent: Image | None) -> dict:
    """The image config a new image starts from: its parent's, or an empty one (``FROM scratch``)."""
    if parent is not None:
        return copy.deepcopy(parent.config)
    return {"architecture": builder.host_architecture(), "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


def make_image(store: Store, parent: Image | None, config: dict, layer: NewLayer | None, *, created_by: str,
               comment: str = "", author: str = "", repo_tag: str | None = None) -> Image:
    """Record the image ``parent`` + ``layer`` (None: no new layer) whose container config is ``config``."""
    image_config = base_config(parent)
    created = now()
    image_config["created"] = created
    image_config["config"] = {k: v for k, v in config.items() if k in IMAGE_CONFIG_FIELDS and v not in (None, "", [], {})}
    if author:
        image_config["author"] = author
    entry: dict = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    if layer is None:
        entry["empty_layer"] = True
    else:
        image_config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(layer.diff_id)
    image_config.setdefault("history", []).append(entry)
    config_raw = json.dumps(image_config, separators=(",", ":")).encode()

    layers = []
    if parent is not None:
        from minicontainer.image.archive import as_oci_manifest

        layers = json.loads(as_oci_manifest(store.read_blob(parent.manifest_digest)))["layers"]
    if layer is not None:
        layers.append(layer.descriptor)
    manifest = {"schemaVersion": 2, "mediaType": builder.OCI_MANIFEST,
                "config": {"mediaType": builder.OCI_CONFIG, "digest": digest_bytes(config_raw),
                           "size": len(config_raw)},
                "layers": layers}
    manifest_raw = json.dumps(manifest, separators=(",", ":")).encode()
    return store.add_image(manifest_raw, config_raw, repo_tag=repo_tag)


def container_config(container: Container, image: Image) -> dict:
    """What the container was told to be, on top of its image's config: Docker commits this, so an
    image committed from ``run busybox sh -c 'echo > x'`` has that command as its Cmd."""
    from minicontainer.engine.spec import merge_env

    mine = container.record["Config"]
    config = dict(image.config.get("config") or {})
    config["Env"] = merge_env(config.get("Env") or [], mine.get("Env") or [])
    config["Labels"] = {**(config.get("Labels") or {}), **(mine.get("Labels") or {})}
    config["Cmd"] = mine.get("Cmd")
    config["Entrypoint"] = mine.get("Entrypoint")
    for key in ("WorkingDir", "User"):
        if mine.get(key):
            config[key] = mine[key]
    if mine.get("StopSignal") and mine["StopSignal"] != "SIGTERM":
        config["StopSignal"] = mine["StopSignal"]
    return config


def apply_overrides(config: dict, body: dict | None, changes: list[str]) -> dict:
    """The request's own config (its body: fields set there win) and then its ``--change`` lines,
    Dockerfile instructions applied as a build applies them (:mod:`minicontainer.engine.instructions`).

    A body field an image has no place for (Hostname, Tty...) is refused by name when it carries a
    value: a commit that dropped it silently would look like it worked."""
    from minicontainer.engine.instructions import COMMIT_CHANGES, apply_to_config, env_dict
    from minicontainer.image.dockerfile import DockerfileError, parse_instruction

    given = {k: v for k, v in (body or {}).items() if v not in (None, "", [], {}, False, 0)}
    refused = sorted(set(given) - set(IMAGE_CONFIG_FIELDS))
    if refused:
        raise InvalidParameter(f"commit: the config field(s) {', '.join(refused)} have no place in an image "
                               f"(it keeps {', '.join(IMAGE_CONFIG_FIELDS)})")
    config.update(given)
    cmd_set = False
    for change in changes:
        if not change.strip():
            continue
        keyword = change.split(None, 1)[0].upper()
        if keyword not in COMMIT_CHANGES:
            raise InvalidParameter(f"{change.split(None, 1)[0]} is not a valid change command")
        try:
            apply_to_config(config, parse_instruction(1, change.strip()), env_dict(config), cmd_set=cmd_set)
        except (DockerfileError, ValueError) as e:
            raise InvalidParameter(f"{keyword}: {getattr(e, 'message', e)}") from None
        cmd_set = cmd_set or keyword == "CMD"
    return config


async def commit_container(engine: Engine, container: Container, *, repo_tag: str | None, comment: str = "",
                           author: str = "", pause: bool = True, changes: list[str] | None = None,
                           config: dict | None = None) -> Image:
    """``POST /commit``: the container's upper directory as a new layer on its image, tagged
    ``repo_tag`` if given.  The snapshot runs in a thread (it reads and writes whole files)."""
    image = engine.store.image(container.record["Image"])
    new_config = apply_overrides(container_config(container, image), config, changes or [])  # a 400 first
    frozen = _cgroup_of(engine, container) if container.running and pause else None
    if frozen is False:
        frozen = None  # it exited meanwhile: its files stand still without a freezer
    created_by = " ".join([container.record["Path"], *container.record["Args"]])
    upper = container.path("upper")

    def work() -> Image:
        with engine.store.lease():
            held = frozen is not None and _freeze_unless_ended(frozen, container)
            try:
                layer = store_layer(engine.store, upper, image)
            finally:
                if held:
                    _thaw_unless_ended(frozen, container)
            return make_image(engine.store, image, new_config, layer, created_by=created_by, comment=comment,
                              author=author, repo_tag=repo_tag)

    new = await asyncio.get_running_loop().run_in_executor(None, work)
    from minicontainer.engine.build_cache import BuildCache

    BuildCache(engine.store).link(image, new)  # as Docker: a committed image's Parent is its base
    familiar = _familiar(repo_tag) if repo_tag else ""
    engine.event_log.container(container, "commit", comment=comment, imageID=new.id, imageRef=familiar)
    if familiar:
        engine.event_log.image("tag", new.id, familiar)
    return new


def _cgroup_of(engine: Engine, container: Container):
    """The running container's cgroup, to freeze (its processes, all of them, stop where they are)."""
    from minicontainer.kernel.cgroups import cgroup_from_state
    from minicontainer.kernel.syscalls import Syscalls
    from minicontainer.runtime import lifecycle
    from minicontainer.runtime.errors import RuntimeFailure

    try:
        state = lifecycle.State.load(engine.runtime_root, container.id[:12])
    except RuntimeFailure:
        if not container.running:
            return False  # it ended between the request and now (docker-py commits right after start)
        raise
    if not state.cgroup:
        raise Conflict(f"cannot pause container {container.id[:12]} to commit it: it has no cgroup to freeze; "
                       "commit without pausing (docker commit --pause=false)")
    return cgroup_from_state(Syscalls(), state.cgroup)


def _freeze_unless_ended(cgroup, container: Container) -> bool:
    """As Docker: the container's processes stand still while its files are read, so that the layer
    is one moment's state, not a file half-written.  A container that ends meanwhile (its cgroup
    goes with it) needs no freezing: False, and the snapshot goes on."""
    try:
        cgroup.freeze()
        return True
    except Exception:  # re-raised unless the container has ended
        time.sleep(0.05)  # its end is recorded on the event loop, a moment after the cgroup goes
        if container.running:
            raise
        return False


def _thaw_unless_ended(cgroup, container: Container) -> None:
    try:
        cgroup.thaw()
    except Exception:  # nothing to thaw once it has ended
        time.sleep(0.05)
        if container.running:
            raise


def _familiar(reference: str) -> str:
    from minicontainer.image.reference import parse

    return parse(reference).familiar()
