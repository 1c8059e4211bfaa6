"""Images: what a container is made from, and how they travel.

An image is a few JSON documents and some tar files, all named by the sha256 of their bytes:

* the **manifest** lists a **config** blob and the **layers** (compressed tars), by digest;
* an **index** (or Docker "manifest list") lists one manifest per platform (amd64, arm64...);
* the **config** holds the defaults for running it (Cmd, Env, WorkingDir...) and ``rootfs.diff_ids``,
  the sha256 of each *uncompressed* layer; its own digest is the **image ID**.

Modules, in the order a ``pull`` uses them:

* :mod:`.reference` parses ``busybox`` into ``docker.io/library/busybox:latest``, as Docker does;
* :mod:`.registry` speaks the registry HTTP API v2 (auth challenges, manifests, blobs, push);
* :mod:`.store` keeps blobs by digest, unpacked layers by chain ID, and the image records and tags;
* :mod:`.layers` unpacks a layer tar safely (whiteouts, owners, links; nothing lands outside);
* :mod:`.overlay` stacks the layers with overlayfs into a container's root filesystem;
* :mod:`.pull` ties them together; :mod:`.archive` saves and loads tar archives;
  :mod:`.starter` builds the offline starter images from the host's own binaries.

The store's layout on disk (``/var/lib/minicontainer`` by default)::

    blobs/sha256/<hex>             manifests, configs and compressed layers, exactly as pulled
    layers/sha256/<chain-hex>/     one unpacked layer: diff/ (its files) and layer.json
    images/<image-id-hex>.json     an image record: manifest digest, config digest, chain IDs, repo tags
    repositories.json              tags and digests -> image IDs
    tmp/                           staging: everything is written here first, then renamed into place
"""
