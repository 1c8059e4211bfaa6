"""The engine's image service: what ``pull``, ``images``, ``rmi``, ``tag``... do, above the store.

The CLI calls these today; the daemon (``minicontainerd``) will call the same functions when it
serves the Docker Engine API.  Here the names users type (``busybox``, ``a3ed95``) meet the store's
full references (``docker.io/library/busybox:latest``) and IDs (``sha256:a3ed95...``).
"""

from __future__ import annotations

import os

from minicontainer import config
from minicontainer.image import reference
from minicontainer.image.store import Image, NotFound, Store


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
