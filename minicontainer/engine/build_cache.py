"""The classic builder's cache: which image a step made from which parent, so a rebuild can skip it.

Docker's classic builder has no cache of its own: its cache *is* the images of earlier builds.
Each step's image is kept (untagged, an *intermediate* image), and before doing a step the builder
looks for an image made from the same parent by the same step with the same config.  Here that
lookup is a file per key, under ``<image store>/build-cache/``::

    keys/<sha256 of (parent ID, step text, config)>   the image ID that step made
    parents/<image hex>                               the image it was made from (``ParentId``)

The key holds everything the step's result depends on: a ``COPY``'s step text carries a checksum
of the files it copies, so an edited file is a new key, and every later step misses too (its
parent is new).  A ``RUN`` is keyed by its text alone: ``RUN apk add redis`` is not done again
just because the package repository moved on (``--no-cache`` does it again).

Intermediate images are what ``docker images -a`` adds to the list (and ``ParentId`` links them):
untagged images that another image was made from.  Being a parent keeps them out of ``image
prune`` (they are not *dangling*), and ``rmi`` of the last image of the chain takes them along
(:class:`~minicontainer.image.store.Store` applies those rules with :meth:`BuildCache.parent_of`).
``docker builder prune`` forgets the keys and removes the intermediate images no tag or container
holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets

from minicontainer.image.digest import hex_of
from minicontainer.image.store import Image, Store, StoreError


class BuildCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = os.path.join(store.root, "build-cache")

    @staticmethod
    def key(parent: Image | None, created_by: str, config: dict) -> str:
        text = json.dumps({"parent": parent.id if parent else "scratch", "created_by": created_by,
                           "config": config}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def _read(self, kind: str, name: str) -> str | None:
        try:
            with open(os.path.join(self.root, kind, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def _write(self, kind: str, name: str, value: str) -> None:
        folder = os.path.join(self.root, kind)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}")
        with open(tmp, "w") as f:
            f.write(value)
        os.rename(tmp, os.path.join(folder, name))  # atomic: a reader sees the old value or the new

    def lookup(self, key: str) -> Image | None:
        """The image this key made, if it is still there."""
        image_id = self._read("keys", key)
        if not image_id:
            return None
        try:
            return self.store.image(image_id)
        except LookupError:
            return None  # removed since (rmi, image prune): a miss

    def remember(self, key: str, parent: Image | None, image: Image) -> None:
        self._write("keys", key, image.id)
        self.link(parent, image)

    def link(self, parent: Image | None, image: Image) -> None:
        """``image`` was made from ``parent`` (a build step, a commit): its ``Parent`` in inspect."""
        if parent is not None and parent.id != image.id:
            self._write("parents", hex_of(image.id), parent.id)

    def parent_of(self, image_id: str) -> str:
        return self._read("parents", hex_of(image_id)) or ""

    def parents(self, images: list[Image]) -> set[str]:
        """The IDs of those ``images`` that one of the others was made from."""
        return {self.parent_of(i.id) for i in images} & {i.id for i in images}

    def prune(self, kept, *, forget_all: bool = False) -> tuple[list[str], int]:
        """Remove the intermediate images (untagged) that ``kept(image_id)`` does not keep, and forget
        their keys (``forget_all``: every key).  Returns the IDs removed and the bytes freed."""
        folder = os.path.join(self.root, "keys")
        removed: list[str] = []
        for key in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if key.startswith("."):
                continue
            image = self.lookup(key)
            forget = forget_all or image is None
            if image is not None and not image.repo_tags and not kept(image.id):
                with contextlib.suppress(LookupError, StoreError):
                    if image.id not in removed:
                        self.store.remove_image(image.id, in_use=kept)
                        removed.append(image.id)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(self.root, "parents", hex_of(image.id)))
                forget = True
            if forget:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, key))
        return removed, self.store.gc().freed
