"""The engine's image service: what ``pull``, ``images``, ``rmi``, ``tag``... do, above the store.

Here the names users type (``busybox``, ``a3ed95``) meet the store's full references
(``docker.io/library/busybox:latest``) and IDs (``sha256:a3ed95...``).  The functions work on a
store and block (``engine/run.py`` and the tests call them as they are); :class:`ImageService`, at
the end, is the daemon's side: the image requests of the Engine API, on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from minicontainer import config
from minicontainer.engine import errors
from minicontainer.engine.build_cache import BuildCache
from minicontainer.engine.filters import checked_filters, has_label, has_labels, until
from minicontainer.engine.threads import ChunkReader, fed, output_of, progress_of
from minicontainer.image import reference
from minicontainer.image.store import Image, NotFound, Store, StoreError
from minicontainer.units import parse_time


def open_store(root: str | None = None) -> Store:
    return Store(os.path.join(root or config.data_root(), "image"))


def containers_dir(store: Store) -> str:
    """``<data root>/containers``: one directory per container (its overlay dirs and config.json)."""
    return os.path.join(os.path.dirname(store.root), "containers")


def in_use(store: Store):
    """A predicate for rmi/prune: is this image ID the image of an existing container?"""
    def check(image_id: str) -> bool:
        root = containers_dir(store)
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return False
        for name in names:
            try:
                with open(os.path.join(root, name, "image")) as f:
                    if f.read().strip() == image_id:
                        return True
            except OSError:
                continue
        return False

    return check


def registry_client(on_notice=None, auth: dict | None = None):
    """A registry client with the daemon settings (mirrors, insecure registries) and credentials.

    ``auth`` is what a client sent in ``X-Registry-Auth`` (``{"username", "password",
    "serveraddress"}``; ``{}`` when it sent none): the daemon uses those and nothing else, as
    dockerd does, so one user's logins never serve another's pulls.  ``None`` is for the engine
    used in-process (tests, ``engine/run.py``): then this process's own ``config.json``."""
    from minicontainer.image.credentials import load_docker_credentials, normalize_registry_host
    from minicontainer.image.registry import RegistryClient

    settings = config.daemon_settings()
    if auth is None:
        credentials = load_docker_credentials()
    elif auth.get("username") and auth.get("serveraddress"):
        credentials = {normalize_registry_host(auth["serveraddress"]): (auth["username"], auth.get("password", ""))}
    else:
        credentials = {}
    return RegistryClient(credentials=credentials.get, mirrors=settings.get("registry-mirrors", []),
                          insecure=settings.get("insecure-registries", []), on_notice=on_notice)


def find(store: Store, text: str) -> Image:
    """An image by what a user types: a name (``busybox``, ``busybox:1.36``, ``x@sha256:...``), a full
    ID (``sha256:...``) or a unique prefix of one (``a3ed95``), as docker accepts."""
    try:
        ref = reference.parse(text)
    except ValueError:
        ref = None
    if ref is not None:
        try:
            return store.resolve(str(ref))
        except NotFound:
            pass
    return store.resolve(text)  # an ID or ID prefix; raises NotFound("No such image: ...")


def pull(text: str, store: Store, *, platform: str | None = None, progress=None, client=None,
         auth: dict | None = None, explain=None) -> Image:
    """``explain``: called with an Event for every HTTP exchange with the registry (``pull --explain``)."""
    from minicontainer.image.pull import pull as pull_image
    from minicontainer.image.registry import Platform, UnreachableError

    own_client = client is None
    client = client or registry_client(on_notice=lambda text: progress and progress({"status": text}), auth=auth)
    if explain is not None:
        client.explain(explain)
    try:
        return pull_image(text, store, client, platform=Platform.parse(platform) if platform else None,
                          progress=progress)
    except UnreachableError as e:
        raise UnreachableError(f"{e}. {offline_hint(store)}") from e
    finally:
        if own_client:
            client.close()


def offline_hint(store: Store) -> str:
    """What a learner without a registry can run instead: the images here, and the starter images."""
    tags = sorted(":".join(familiar_repository(t)) for image in store.images() for t in image.repo_tags)
    here = f"The images on this machine: {', '.join(tags)}. " if tags else "There are no images on this machine. "
    return here + "Without a registry, `minicontainer starter` builds busybox, hello-world and redis from this host's files"


def push(text: str, store: Store, *, progress=None, client=None, auth: dict | None = None) -> str:
    """Upload an image's blobs, then its manifest, to the registry its name points at (``docker push``).

    A blob the repository already has is skipped; one that another repository of the same registry
    holds (the image was pulled from there) is *mounted*: linked without sending its bytes.
    """
    import json

    emit = progress or (lambda _msg: None)
    ref = reference.parse(text)
    image = find(store, text)
    manifest_raw = store.read_blob(image.manifest_digest)
    manifest = json.loads(manifest_raw)
    sources = [reference.parse(d.split("@", 1)[0]) for d in image.repo_digests]
    mount_from = next((s for s in sources if s.domain == ref.domain and s.path != ref.path), None)
    emit({"status": f"The push refers to repository [{ref.name}]"})
    own_client = client is None
    client = client or registry_client(auth=auth)
    try:
        for desc in [*reversed(manifest["layers"]), manifest["config"]]:
            short = desc["digest"].split(":", 1)[1][:12]
            emit({"status": "Preparing", "id": short})
            with store.open_blob(desc["digest"]) as blob:
                what = client.push_blob(ref, desc["digest"], blob, desc["size"], mount_from=mount_from)
            said = {"exists": "Layer already exists", "uploaded": "Pushed",
                    "mounted": f"Mounted from {mount_from.path if mount_from else ''}"}[what]
            if desc is not manifest["config"]:
                emit({"status": said, "id": short})
        media_type = manifest.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        digest = client.push_manifest(ref, manifest_raw, media_type)
    finally:
        if own_client:
            client.close()
    store.add_image(manifest_raw, store.read_blob(image.config_digest), repo_digest=f"{ref.name}@{digest}")
    emit({"status": f"{ref.tag or 'latest'}: digest: {digest} size: {len(manifest_raw)}"})
    return digest


def find_or_pull(text: str, store: Store, *, progress=None, client=None) -> Image:
    """``run``'s rule: use the image if it is here, else pull it (saying so, as docker does)."""
    try:
        return find(store, text)
    except NotFound:
        if progress:
            progress({"status": f"Unable to find image '{_familiar(text)}' locally"})
        return pull(text, store, progress=progress, client=client)


def _familiar(text: str) -> str:
    try:
        return reference.parse(text).familiar()
    except ValueError:
        return text


def familiar_repository(repo_tag: str) -> tuple[str, str]:
    """``docker.io/library/busybox:latest`` -> (``busybox``, ``latest``), as ``docker images`` shows."""
    from minicontainer.image.reference import parse

    ref = parse(repo_tag)
    return ref.familiar_name(), ref.tag or "<none>"


def familiar_pattern(pattern: str) -> str:
    """A ``reference`` filter as ``docker images`` rows name images: ``docker.io/library/busybox:1.*``
    -> ``busybox:1.*`` (glob characters kept; only the default registry's prefixes go)."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if pattern.startswith(prefix):
            return pattern[len(prefix):]
    return pattern


def inspect_json(image) -> dict:
    """``docker image inspect``'s shape, filled from the image record and its config."""
    config = image.config
    return {
        "Id": image.id,
        "RepoTags": [f"{r}:{t}" for r, t in (familiar_repository(x) for x in image.repo_tags)],
        "RepoDigests": list(image.repo_digests),
        "Parent": "",
        "Comment": "",
        "Created": image.created,
        "DockerVersion": "",
        "Author": config.get("author", ""),
        "Config": config.get("config") or {},
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Size": image.size,
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": {"Type": "layers", "Layers": config.get("rootfs", {}).get("diff_ids", [])},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},  # Go's zero time: never tagged
    }


# --- the engine's side --------------------------------------------------------------------------------

# What `images --filter` and `image prune --filter` understand; docker refuses the others.
IMAGE_FILTERS = ("dangling", "reference", "label")
IMAGE_PRUNE_FILTERS = ("dangling", "label", "label!", "until")


class ImageService:
    """The image requests, for :class:`~minicontainer.engine.service.Engine` (which inherits this).

    ``pull`` and ``push`` run this module's functions of the same name in a thread (they block on the
    network), their progress messages bridged to the event loop; ``save``, ``load`` and ``import``
    stream tars to and from :mod:`minicontainer.image.archive` the same way.  A name that finds
    nothing is the API's 404 (``errors.NotFound``), not the store's ``NotFound`` (a LookupError)."""

    store: Store
    event_log: Any
    get: Callable

    async def pull(self, image: str, tag: str | None, platform_name: str | None = None,
                   auth: dict | None = None, explain: bool = False) -> AsyncIterator[dict]:
        """Progress messages as docker's; with ``explain`` (ours), ``{"explain": event}`` for each HTTP
        exchange with the registry too.  The credentials are the client's (``auth``), or none: the
        daemon never lends its own login to whoever can reach its socket."""
        name = f"{image}:{tag}" if tag and "@" not in image and ":" not in image.rsplit("/", 1)[-1] else image
        async for msg in progress_of(lambda progress: pull(
                name, self.store, platform=platform_name, progress=progress, auth=auth or {},
                explain=(lambda ev: progress({"explain": ev._asdict()})) if explain else None)):
            yield msg
        self.event_log.pulled(name)

    async def push(self, image: str, tag: str | None, auth: dict | None = None) -> AsyncIterator[dict]:
        name = f"{image}:{tag}" if tag and ":" not in image.rsplit("/", 1)[-1] else image
        try:
            find(self.store, name)
        except LookupError:
            raise errors.NotFound(f"An image does not exist locally with the tag: {_familiar(name)}") from None
        async for msg in progress_of(lambda progress: push(
                name, self.store, progress=progress, auth=auth or {})):
            yield msg

    # --- image archives (save, load, import) -------------------------------------------------------
    async def save(self, names: list[str], fmt: str = "docker-archive") -> AsyncIterator[bytes]:
        """``docker save``'s tar, as it is written.  Unknown names fail before the first byte (404)."""
        from minicontainer.image import archive

        try:
            archive.select(self.store, names)
        except LookupError as e:
            raise errors.NotFound(str(e).strip("'\"")) from None
        except ValueError as e:
            raise errors.InvalidParameter(str(e)) from None
        async for chunk in output_of(lambda out: archive.save(self.store, names, out, format=fmt)):
            yield chunk

    async def load(self, upload: AsyncIterator[bytes], quiet: bool = False) -> AsyncIterator[dict]:
        """``docker load``: the tar streams in from the client while the thread unpacks it."""
        from minicontainer.image import archive

        def work(progress: Callable[[dict], None]) -> None:
            shown = (lambda msg: "stream" in msg and progress(msg)) if quiet else progress
            try:
                archive.load(self.store, reader, progress=shown)
            finally:
                reader.close()

        async for msg in self._with_upload(upload, reader := ChunkReader(), work):
            yield msg

    async def import_image(self, upload: AsyncIterator[bytes], reference: str | None, changes: list[str],
                           message: str) -> AsyncIterator[dict]:
        """``docker import``: a root filesystem's tar becomes a one-layer image; the last message is its ID."""
        from minicontainer.image import archive

        def work(progress: Callable[[dict], None]) -> None:
            try:
                image = archive.import_tarball(self.store, reader, reference=reference, changes=changes,
                                               message=message)
            finally:
                reader.close()
            progress({"status": image.id})

        async for msg in self._with_upload(upload, reader := ChunkReader(), work):
            yield msg

    @staticmethod
    async def _with_upload(upload: AsyncIterator[bytes], reader: ChunkReader,
                           work: Callable[[Callable[[dict], None]], None]) -> AsyncIterator[dict]:
        async with fed(reader, upload):
            async for msg in progress_of(work):
                yield msg

    def images(self, all: bool = False, filters: dict | None = None) -> list[dict]:
        """``docker images``' rows; ``filters``: dangling=true|false, reference=GLOB (``busy*``,
        ``busybox:1.*``), label=KEY[=VALUE]."""
        import fnmatch

        filters = checked_filters(filters, IMAGE_FILTERS)
        out = []
        builds = BuildCache(self.store)
        images = self.store.images()
        parents = builds.parents(images)
        for image in images:
            if not all and not image.repo_tags and image.id in parents:
                continue  # a build step's image, under the next step's: `images -a` lists it
            config = image.config
            tags = [":".join(familiar_repository(t)) for t in image.repo_tags]
            labels = (config.get("config") or {}).get("Labels") or {}
            dangling = not tags and image.id not in parents  # a parent is needed: not dangling
            if "dangling" in filters and dangling != (filters["dangling"][0].lower() in ("true", "1")):
                continue
            if "reference" in filters:  # only the matching tags are listed, as dockerd does
                patterns = [familiar_pattern(p) for p in filters["reference"]]
                tags = [t for t in tags if any(fnmatch.fnmatchcase(t, pattern) or fnmatch.fnmatchcase(
                    t.rsplit(":", 1)[0], pattern) for pattern in patterns)]
                if not tags:
                    continue
            if "label" in filters and not has_labels(labels, filters["label"]):  # (`all` is the flag here)
                continue
            out.append({"Id": image.id, "ParentId": builds.parent_of(image.id), "RepoTags": tags,
                        "RepoDigests": list(image.repo_digests), "Created": int(parse_time(image.created)),
                        "Size": image.size, "SharedSize": -1, "VirtualSize": image.size,
                        "Labels": labels, "Containers": -1})
        return out

    def image_inspect(self, name: str) -> dict:
        try:
            data = inspect_json(find(self.store, name))
        except LookupError:
            raise errors.NotFound(f"No such image: {name}") from None
        data["Parent"] = BuildCache(self.store).parent_of(data["Id"])  # what it was built or committed from
        return data

    def image_history(self, name: str) -> list[dict]:
        data = self.image_inspect(name)
        image = find(self.store, name)
        history = image.config.get("history") or []
        # Each history entry that made a layer (not "empty_layer") gets that layer's size, in order.
        sizes = iter([self.store.layer(c).size for c in image.chain_ids])
        sized = [0 if h.get("empty_layer") else next(sizes, 0) for h in history]
        return [{"Id": data["Id"] if i == len(history) - 1 else "<missing>",
                 "Created": int(parse_time(h.get("created", ""))), "CreatedBy": h.get("created_by", ""),
                 "Tags": data["RepoTags"] if i == len(history) - 1 else None, "Size": sized[i],
                 "Comment": h.get("comment", "")} for i, h in reversed(list(enumerate(history)))]

    async def install_starter(self, name: str) -> dict:
        """A starter image built from this host's files (no registry needed), in a thread."""
        from minicontainer.image.starter import STARTERS, install_starter

        if name not in STARTERS:
            raise errors.NotFound(f"no starter image '{name}' (there are: {', '.join(STARTERS)})")
        try:
            image = await asyncio.get_running_loop().run_in_executor(None, install_starter, self.store, name)
        except (OSError, RuntimeError) as e:  # e.g. redis without redis-server on the host
            raise errors.InvalidParameter(f"cannot build the starter image '{name}': {e}") from None
        return {"Id": image.id, "RepoTags": [f"{name}:latest"], "Size": image.size}

    async def remove_image(self, name: str, force: bool = False, noprune: bool = False) -> list[dict]:
        """The record goes at once, on the loop (so no ``create`` can pick the image in between and
        have its layers collected); the garbage collection after it runs in a thread, because it
        waits for pulls, loads and imports in progress (they hold the store's lease).  ``noprune``:
        the untagged parents it leaves unneeded stay (``docker rmi --no-prune``)."""
        from minicontainer.image.reference import parse

        try:
            key = str(parse(name))
            self.store.resolve(key)
        except (ValueError, LookupError):
            key = name
        try:
            image_id = self.store.resolve(key).id
            lines = self.store.remove_image(key, force=force, in_use=in_use(self.store),
                                            parent_of=BuildCache(self.store).parent_of, prune_parents=not noprune)
        except LookupError:
            raise errors.NotFound(f"No such image: {name}") from None
        except StoreError as e:
            raise errors.Conflict(str(e)) from None
        await asyncio.get_running_loop().run_in_executor(None, self.store.gc)  # what no image refers to
        for line in lines:  # "Untagged: <ref>" and "Deleted: <id>", as docker reports each
            self.event_log.image("untag" if line.startswith("Untagged") else "delete", image_id, image_id)
        return [{verb: _familiar_ref(rest) if verb == "Untagged" else rest}
                for verb, _, rest in (line.partition(": ") for line in lines)]

    def tag_image(self, name: str, repo: str, tag: str | None) -> None:
        from minicontainer.image.reference import parse

        image = find(self.store, name)
        ref = parse(f"{repo}:{tag or 'latest'}")
        self.store.tag(image.id, str(ref))
        self.event_log.image("tag", image.id, ref.familiar())

    async def prune_images(self, filters: dict | None = None) -> dict:
        """``dangling=false`` (``image prune -a``): every image no container uses, not only the untagged.
        The records on the loop, the garbage collection in a thread, as :meth:`remove_image`."""
        filters = checked_filters(filters, IMAGE_PRUNE_FILTERS)
        dangling_only = filters.get("dangling", ["true"])[0].lower() not in ("false", "0")
        lines = self.store.prune(dangling_only=dangling_only, in_use=self._kept_by_prune(filters),
                                 parent_of=BuildCache(self.store).parent_of)
        result = await asyncio.get_running_loop().run_in_executor(None, self.store.gc)
        self.event_log.emit("image", "prune", "", {"reclaimed": getattr(result, "freed", 0)})
        return {"ImagesDeleted": [{verb: _familiar_ref(rest) if verb == "Untagged" else rest}
                                  for verb, _, rest in (x.partition(": ") for x in lines)] or None,
                "SpaceReclaimed": getattr(result, "freed", 0)}

    def _kept_by_prune(self, filters: dict[str, list[str]]) -> Callable[[str], bool]:
        """A prune's "keep this image" test: in use, or not among the images the filters name."""
        used = in_use(self.store)

        def kept(image_id: str) -> bool:
            image = self.store.image(image_id)
            labels = (image.config.get("config") or {}).get("Labels") or {}
            return used(image_id) or not (
                all(has_label(labels, v) for v in filters.get("label", []))
                and not any(has_label(labels, v) for v in filters.get("label!", []))
                and all(parse_time(image.created) < until(v) for v in filters.get("until", [])))

        return kept

    # --- images made here ------------------------------------------------------------------------------
    async def commit(self, cid: str, **options) -> dict:
        """``docker commit``: see :mod:`minicontainer.engine.commit`."""
        from minicontainer.engine.commit import commit_container

        return {"Id": (await commit_container(self, self.get(cid), **options)).id}

    async def prune_build_cache(self, filters: dict | None = None, all: bool = False) -> dict:
        """``docker builder prune``: see :mod:`minicontainer.engine.build_cache`."""
        kept = self._kept_by_prune(checked_filters(filters, ("label", "label!", "until")))
        removed, freed = await asyncio.get_running_loop().run_in_executor(
            None, lambda: BuildCache(self.store).prune(kept, forget_all=all))
        return {"CachesDeleted": removed or None, "SpaceReclaimed": freed}

    def build(self, upload: AsyncIterator[bytes], options) -> AsyncIterator[dict]:
        """``docker build``: see :mod:`minicontainer.engine.build`."""
        from minicontainer.engine.build import build

        return build(self, upload, options)


def _familiar_ref(text: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``: what dockerd answers an ``rmi`` with."""
    from minicontainer.image.reference import parse

    try:
        return parse(text).familiar()
    except ValueError:
        return text
