"""An image taken apart, and a container's filesystem put together: the material of notebook 4.

An image is three kinds of JSON and tar, each named by its sha256 (OCI image-spec):

* the **manifest**: which config, which layers (digest, size, media type), in order;
* the **config**: what to run (Cmd, Env...), the ``diff_ids`` of the layers' *uncompressed* tars,
  and the history; its own sha256 is the **image ID**;
* the **layers**: compressed tars of files, the bottom one first.  A file deleted by a later layer is
  written there as a *whiteout*, an empty ``.wh.NAME`` next to where NAME was.

:func:`image_parts` reads them from the daemon as an OCI image layout (``docker save``'s format since
Docker 25, or ``oci-archive``: the manifest, config and layers byte for byte as a registry serves
them).  :func:`overlay_mount` reads a container's overlay mount (the line for ``/`` in its
``/proc/self/mounts``) and :func:`draw_overlay` draws it: the image's layers as read-only lower
directories, the container's own upper directory with its changes, and the merged view.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = {0: "C", 1: "A", 2: "D"}  # a container's changes, as `docker diff` prints them


class Layer(NamedTuple):
    digest: str  # of the compressed blob, as the manifest names it
    size: int
    media_type: str
    diff_id: str  # of the uncompressed tar, as the config names it
    files: list[str]  # the tar's member names, in order


class ImageParts(NamedTuple):
    manifest_digest: str
    manifest: dict
    config_raw: bytes  # the config's exact bytes: their sha256 is the image ID
    config: dict
    layers: list[Layer]


def image_parts(client: Any, name: str) -> ImageParts:
    """The manifest, config and layers of an image in the daemon's store, through ``docker save``."""
    data = client.images.get(name).save(format="oci-archive")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        def blob(digest: str) -> bytes:
            return tar.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}").read()

        index = json.loads(tar.extractfile("index.json").read())
        descriptor = index["manifests"][0]
        manifest = json.loads(blob(descriptor["digest"]))
        config_raw = blob(manifest["config"]["digest"])
        config = json.loads(config_raw)
        layers = []
        for entry, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            with tarfile.open(fileobj=io.BytesIO(blob(entry["digest"]))) as layer:  # gzip or plain: autodetected
                files = [m.name for m in layer.getmembers()]
            layers.append(Layer(entry["digest"], entry["size"], entry["mediaType"], diff_id, files))
    return ImageParts(descriptor["digest"], manifest, config_raw, config, layers)


def overlay_mount(mounts: str) -> dict[str, Any]:
    """From a ``/proc/self/mounts`` text, the root's overlay: ``lower`` (a list, top first), ``upper``,
    ``work`` and ``options``."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "/" and fields[2] == "overlay":
            options = dict(o.split("=", 1) if "=" in o else (o, "") for o in fields[3].split(","))
            return {"lower": options["lowerdir"].split(":"), "upper": options["upperdir"], "work": options["workdir"],
                    "options": options}
    raise ValueError("no overlay mounted at / in these mounts")


def draw_overlay(mount: dict[str, Any], changes: list[dict], image: ImageParts | None = None) -> Figure:
    """Layers as stacked boxes: the image's read-only lowers at the bottom (their files, from
    ``image``), the container's upper above them (its changes), and the merged view that the
    container sees on top, as the kernel's overlayfs stacks them."""
    import matplotlib.pyplot as plt

    lowers = list(reversed(mount["lower"]))  # the mount lists the top first; draw the bottom first
    rows: list[tuple[str, str, str]] = []
    for i, path in enumerate(lowers):
        layer = image.layers[i] if image and i < len(image.layers) else None
        what = f"{len(layer.files)} files, e.g. {', '.join(layer.files[:4])}" if layer else ""
        rows.append((f"lowerdir {i + 1} (read-only)", _short(path), what))
    shown = ", ".join(f"{KINDS.get(c['Kind'], '?')} {c['Path']}" for c in changes[:6])
    rows.append(("upperdir (the container's)", _short(mount["upper"]), shown or "no changes yet"))
    rows.append(("merged: /", "what the container sees", "the upper's files over the lowers'; a whiteout hides"))
    colours = ["#c6dbef"] * len(lowers) + ["#fdd0a2", "#c7e9c0"]
    fig, ax = plt.subplots(figsize=(11, 0.75 * len(rows) + 1.2), layout="constrained")
    plt.close(fig)  # shown once, as the cell's value
    for y, ((title, path, what), colour) in enumerate(zip(rows, colours, strict=True)):
        ax.add_patch(plt.Rectangle((0, y + 0.08), 10, 0.84, color=colour))
        ax.text(0.15, y + 0.62, title, fontsize=10, fontweight="bold", va="center")
        ax.text(0.15, y + 0.3, path, fontsize=8, family="monospace", va="center")
        ax.text(4.6, y + 0.5, what[:95], fontsize=8.5, va="center")
    ax.text(0.15, -0.25, f"workdir (overlayfs's scratch space): {_short(mount['work'])}", fontsize=8, va="center")
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, len(rows))
    ax.axis("off")
    ax.set_title("The container's root filesystem: one overlay mount, read bottom to top")
    return fig


def _short(path: str) -> str:
    """``/var/lib/minicontainer/image/layers/sha256/abc...def/diff`` -> ``.../sha256/abc...def/diff``."""
    parts = path.split("/")
    tail = "/".join(p if len(p) < 20 else p[:12] + "..." for p in parts[-3:])
    return ".../" + tail


def draw_sharing(images: dict[str, list[str]]) -> Figure:
    """Each image as its stack of layers (``{"busybox": [diff_id, ...], ...}``, bottom first); a layer
    that several images list is drawn in one colour across them: the store keeps it once."""
    import matplotlib.pyplot as plt

    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#8c8c8c"]
    colour: dict[str, str] = {}
    for layers in images.values():
        for diff_id in layers:
            colour.setdefault(diff_id, palette[len(colour) % len(palette)])
    fig, ax = plt.subplots(figsize=(2.6 * len(images) + 1, 0.7 * max(map(len, images.values())) + 1.4),
                           layout="constrained")
    plt.close(fig)  # shown once, as the cell's value
    for x, (name, layers) in enumerate(images.items()):
        for y, diff_id in enumerate(layers):
            ax.add_patch(plt.Rectangle((x + 0.05, y + 0.06), 0.9, 0.88, color=colour[diff_id]))
            ax.text(x + 0.5, y + 0.5, diff_id.split(":")[-1][:12], ha="center", va="center", color="white",
                    fontsize=9, family="monospace")
    ax.set_xlim(0, len(images))
    ax.set_ylim(0, max(map(len, images.values())))
    ax.set_xticks([x + 0.5 for x in range(len(images))], list(images))
    ax.set_yticks([])
    ax.set_title("Layers by DiffID, bottom first: one colour, one layer in the store")
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
