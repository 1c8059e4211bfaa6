"""The content-addressed store: blobs, layers by chain ID, image records, tags, rmi, prune and gc."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time

import pytest

from minicontainer.image import store as store_mod
from minicontainer.image.digest import DigestMismatch, digest_bytes
from minicontainer.image.layers import UnpackResult
from minicontainer.image.store import (
    Ambiguous,
    Conflict,
    ImageInUse,
    NotFound,
    Store,
    StoreError,
    chain_ids,
    repository_of,
)

BUSYBOX = "docker.io/library/busybox:latest"


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(str(tmp_path / "store"))


def leftovers(store: Store) -> list[str]:
    """What tmp/ holds besides lock files: must be nothing once an operation is over."""
    return [n for n in os.listdir(store.tmp) if not n.endswith(".lock")]


def blobs(store: Store) -> list[str]:
    return sorted(os.listdir(os.path.join(store.root, "blobs", "sha256")))


def layer_ids(store: Store) -> list[str]:
    return sorted("sha256:" + n for n in os.listdir(os.path.join(store.root, "layers", "sha256")))


# --- blobs ------------------------------------------------------------------------------------------------


def test_blob_writer_commit_stores_under_the_digest(store):
    data = os.urandom(300_000)
    digest = digest_bytes(data)
    with store.blob_writer(digest) as w:
        for i in range(0, len(data), 65536):
            w.write(data[i:i + 65536])
        assert w.offset == len(data)
        assert w.commit() == digest
    assert store.has_blob(digest) and store.read_blob(digest) == data
    with store.open_blob(digest) as f:
        assert f.read(10) == data[:10]
    assert leftovers(store) == []


def test_blob_writer_mismatch_and_abort_leave_nothing(store):
    with store.blob_writer(digest_bytes(b"expected")) as w:
        w.write(b"something else")
        with pytest.raises(DigestMismatch, match="nothing was stored"):
            w.commit()
    with store.blob_writer(digest_bytes(b"abc")) as w:
        w.write(b"ab")  # the download dies here: the context ends without commit
    with pytest.raises(RuntimeError), store.blob_writer() as w:
        w.write(b"partial")
        raise RuntimeError("connection reset")
    assert blobs(store) == [] and leftovers(store) == []


def test_blob_writer_reset_restarts(store):
    data = b"0123456789" * 1000
    with store.blob_writer(digest_bytes(data)) as w:
        w.write(b"garbage from a server that ignored Range")
        w.reset()
        assert w.offset == 0
        w.write(data)
        w.commit()
    assert store.read_blob(digest_bytes(data)) == data


def test_put_blob_checks_and_is_idempotent(store):
    assert store.put_blob(b"x") == store.put_blob(b"x", digest_bytes(b"x")) == digest_bytes(b"x")
    with pytest.raises(DigestMismatch):
        store.put_blob(b"y", digest_bytes(b"x"))
    with pytest.raises(ValueError, match="invalid digest"):
        store.blob_path("sha256:../../etc/passwd")
    with pytest.raises(NotFound):
        store.read_blob(digest_bytes(b"never stored"))
    assert blobs(store) == [digest_bytes(b"x")[7:]]


# --- chain IDs and layers -------------------------------------------------------------------------------


def test_chain_ids_known_vector():
    # The two diff_ids of the example in the OCI image-spec (config.md), plus one more; the expected
    # values were computed with `printf '%s' "<chain> <diff>" | sha256sum`.
    diff_ids = ["sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1",
                "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
                "sha256:13cb14c2acd34e45446a50af25cb05095a17624678dbafbcc9e26086547c1d74"]
    assert chain_ids(diff_ids) == [
        diff_ids[0],
        "sha256:c3191d32a37d7159b2e30830937d2e30268ad6c375a773a8994911a3aba9b93f",
        "sha256:153dce267498fa3007e507ce5074a80c83ccd1e7581b373888b364aabb4df747",
    ]
    assert chain_ids([]) == []


def test_repository_of():
    assert repository_of(BUSYBOX) == "docker.io/library/busybox"
    assert repository_of("localhost:5000/app") == "localhost:5000/app"
    assert repository_of("localhost:5000/app:v1") == "localhost:5000/app"
    assert repository_of("docker.io/library/busybox@sha256:" + "a" * 64) == "docker.io/library/busybox"


def _fill(content: str):
    def unpack(diff: str) -> int:
        with open(os.path.join(diff, "file"), "w") as f:
            f.write(content)
        return len(content)
    return unpack


def test_add_layer_is_atomic_and_done_once(store):
    diff_id = digest_bytes(b"layer one")
    calls = []

    def unpack(diff: str) -> int:
        calls.append(diff)
        assert os.listdir(diff) == [] and diff.startswith(store.tmp)  # staged under tmp/
        return _fill("hello")(diff)

    layer = store.add_layer(diff_id, None, diff_id, digest_bytes(b"gz"), unpack)
    assert (layer.chain_id, layer.parent, layer.size) == (diff_id, "", 5)
    assert store.has_layer(diff_id) and store.layer(diff_id) == layer
    with open(os.path.join(store.layer_dir(diff_id), "file")) as f:
        assert f.read() == "hello"
    with open(os.path.join(os.path.dirname(store.layer_dir(diff_id)), "layer.json")) as f:
        record = json.load(f)
    assert record["diff_id"] == diff_id and record["compressed_digest"] == digest_bytes(b"gz")
    assert store.add_layer(diff_id, None, diff_id, digest_bytes(b"gz"), unpack) == layer
    assert len(calls) == 1 and leftovers(store) == []


def test_add_layer_failure_leaves_nothing(store):
    diff_id = digest_bytes(b"bad")

    def unpack(diff: str) -> int:
        open(os.path.join(diff, "half"), "w").close()
        raise OSError("disk full halfway")

    with pytest.raises(OSError, match="halfway"):
        store.add_layer(diff_id, None, diff_id, digest_bytes(b"gz"), unpack)
    assert not store.has_layer(diff_id) and layer_ids(store) == [] and leftovers(store) == []


def test_add_layer_checks_diff_id_and_chain_id(store):
    diff_id = digest_bytes(b"announced")
    with pytest.raises(DigestMismatch, match="layer"):
        store.add_layer(diff_id, None, diff_id, digest_bytes(b"gz"),
                        lambda d: UnpackResult(digest_bytes(b"what the tar really was"), 0))
    assert layer_ids(store) == [] and leftovers(store) == []
    with pytest.raises(StoreError, match="does not follow"):
        store.add_layer(digest_bytes(b"wrong"), diff_id, diff_id, digest_bytes(b"gz"), _fill(""))


def test_concurrent_add_layer_unpacks_once(store):
    diff_id = digest_bytes(b"shared")
    calls = []

    def slow(diff: str) -> int:
        calls.append(1)
        time.sleep(0.2)
        return _fill("x")(diff)

    threads = [threading.Thread(target=store.add_layer, args=(diff_id, None, diff_id, diff_id, slow))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and store.has_layer(diff_id) and leftovers(store) == []


# --- images -------------------------------------------------------------------------------------------------


def make_image(store: Store, layer_names: list[str], *, tag: str | None = BUSYBOX, created: str = "2024-01-01T00:00:00Z",
               extra: str = "") -> str:
    """Add layers (contents = their names) and an image of them; returns the image ID."""
    diff_ids = [digest_bytes(name.encode()) for name in layer_names]
    chains = chain_ids(diff_ids)
    layer_blobs = []
    for i, name in enumerate(layer_names):
        blob = store.put_blob(f"gz:{name}".encode())
        layer_blobs.append(blob)
        store.add_layer(chains[i], chains[i - 1] if i else None, diff_ids[i], blob, _fill(name))
    config = json.dumps({"created": created, "architecture": "amd64", "os": "linux", "extra": extra,
                         "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"digest": digest_bytes(config), "size": len(config)},
                           "layers": [{"digest": b, "size": 1} for b in layer_blobs]}).encode()
    digest_ref = f"{repository_of(tag)}@{digest_bytes(manifest)}" if tag else None
    return store.add_image(manifest, config, repo_tag=tag, repo_digest=digest_ref).id


def test_add_image_records_everything(store):
    image_id = make_image(store, ["base", "app"])
    image = store.image(image_id)
    assert image.id == image.config_digest == image_id
    assert image.short_id == image_id[7:19]
    assert image.chain_ids == tuple(chain_ids([digest_bytes(b"base"), digest_bytes(b"app")]))
    assert image.size == len("base") + len("app")
    assert image.created == "2024-01-01T00:00:00Z"
    assert image.repo_tags == (BUSYBOX,)
    assert image.repo_digests[0].startswith("docker.io/library/busybox@sha256:")
    assert image.config["config"]["Cmd"] == ["sh"]
    assert store.has_blob(image.manifest_digest) and store.has_blob(image.config_digest)
    assert store.lowerdirs(image) == [store.layer_dir(c) for c in reversed(image.chain_ids)]
    with open(os.path.join(store.root, "repositories.json")) as f:
        repos = json.load(f)["Repositories"]
    assert repos["docker.io/library/busybox"][BUSYBOX] == image_id
    assert repos["docker.io/library/busybox"][image.repo_digests[0]] == image_id
    assert leftovers(store) == []


def test_add_image_refuses_missing_layers_and_wrong_config(store):
    config = json.dumps({"rootfs": {"diff_ids": [digest_bytes(b"absent")]}}).encode()
    manifest = json.dumps({"config": {"digest": digest_bytes(config)},
                           "layers": [{"digest": digest_bytes(b"gz")}]}).encode()
    with pytest.raises(StoreError, match="not unpacked"):
        store.add_image(manifest, config, repo_tag=BUSYBOX, repo_digest=None)
    with pytest.raises(DigestMismatch, match="config"):
        store.add_image(manifest, config + b" ", repo_tag=BUSYBOX, repo_digest=None)
    assert store.images() == []


def test_resolve_by_tag_digest_id_and_prefix(store):
    image_id = make_image(store, ["base"])
    image = store.image(image_id)
    assert store.resolve(BUSYBOX).id == image_id
    assert store.resolve(image.repo_digests[0]).id == image_id
    assert store.resolve(image_id).id == image_id
    assert store.resolve(image_id[7:]).id == image_id
    assert store.resolve(image_id[7:10]).id == image_id
    assert store.resolve("sha256:" + image_id[7:12]).id == image_id
    with pytest.raises(NotFound, match="No such image: docker.io/library/alpine:latest"):
        store.resolve("docker.io/library/alpine:latest")


def test_resolve_ambiguous_prefix_lists_the_candidates(store):
    by_first: dict[str, str] = {}
    for i in range(40):  # 16 possible first hex digits: two images soon share one
        image_id = make_image(store, ["base"], tag=None, extra=str(i))
        if image_id[7] in by_first:
            with pytest.raises(Ambiguous) as err:
                store.resolve(image_id[7])
            assert image_id in str(err.value) and by_first[image_id[7]] in str(err.value)
            return
        by_first[image_id[7]] = image_id
    pytest.fail("no two IDs share a first digit")


def test_tag_moves_and_untag_leaves_the_image(store):
    old = make_image(store, ["base"], extra="old")
    new = make_image(store, ["base"], extra="new")  # a newer busybox:latest: the tag moves
    assert store.image(old).repo_tags == () and store.image(new).repo_tags == (BUSYBOX,)
    store.tag(old, "localhost:5000/mine:v1")
    assert store.resolve("localhost:5000/mine:v1").id == old
    store.untag("localhost:5000/mine:v1")
    assert store.image(old).repo_tags == ()
    with pytest.raises(NotFound):
        store.untag("localhost:5000/mine:v1")
    assert {i.id for i in store.images()} == {old, new}


def test_images_are_listed_newest_first(store):
    a = make_image(store, ["a"], tag="docker.io/library/a:1", created="2020-01-01T00:00:00Z")
    b = make_image(store, ["b"], tag="docker.io/library/b:1", created="2023-01-01T00:00:00Z")
    assert [i.id for i in store.images()] == [b, a]


# --- rmi, prune, gc -------------------------------------------------------------------------------------


def test_remove_by_tag_untags_then_deletes_with_the_last_tag(store):
    image_id = make_image(store, ["base"])
    store.tag(image_id, "docker.io/library/busybox:1.36")
    assert store.remove_image("docker.io/library/busybox:1.36") == ["Untagged: docker.io/library/busybox:1.36"]
    assert store.image(image_id).repo_tags == (BUSYBOX,)
    digest_ref = store.image(image_id).repo_digests[0]
    lines = store.remove_image(BUSYBOX)
    assert lines[:3] == [f"Untagged: {BUSYBOX}", f"Untagged: {digest_ref}", f"Deleted: {image_id}"]
    assert lines[3:] == [f"Deleted: {digest_bytes(b'base')}"]  # its layer, collected at once
    assert store.images() == [] and layer_ids(store) == [] and blobs(store) == []
    with open(os.path.join(store.root, "repositories.json")) as f:
        assert json.load(f) == {"Repositories": {}}


def test_remove_by_id_refuses_several_repositories_unless_forced(store):
    image_id = make_image(store, ["base"])
    store.tag(image_id, "localhost:5000/other:v1")
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        store.remove_image(image_id[7:19])
    lines = store.remove_image(image_id[7:19], force=True)
    assert "Untagged: localhost:5000/other:v1" in lines and f"Deleted: {image_id}" in lines
    assert store.images() == []


def test_image_in_use_is_never_deleted(store):
    image_id = make_image(store, ["base"])
    used = {image_id}
    in_use = used.__contains__
    with pytest.raises(ImageInUse, match="must force"):
        store.remove_image(BUSYBOX, in_use=in_use)
    with pytest.raises(ImageInUse, match="being used by a container"):
        store.remove_image(image_id, in_use=in_use)
    assert store.resolve(BUSYBOX).id == image_id
    # Forced: the tags go, the image stays (dangling) while the container needs its layers.
    lines = store.remove_image(BUSYBOX, force=True, in_use=in_use)
    assert lines[0] == f"Untagged: {BUSYBOX}" and f"Deleted: {image_id}" not in lines
    assert store.image(image_id).repo_tags == () and store.has_layer(digest_bytes(b"base"))
    assert store.prune(in_use=in_use) == []
    used.clear()  # the container is gone
    assert store.prune(in_use=in_use)[0] == f"Deleted: {image_id}"
    assert store.images() == [] and layer_ids(store) == []


def test_prune_dangling_only_or_all(store):
    tagged = make_image(store, ["a"], tag="docker.io/library/a:1")
    dangling = make_image(store, ["b"], tag="docker.io/library/b:1")
    store.untag("docker.io/library/b:1")
    lines = store.prune()
    assert f"Deleted: {dangling}" in lines and f"Deleted: {tagged}" not in lines
    assert [i.id for i in store.images()] == [tagged]
    lines = store.prune(dangling_only=False)
    assert lines[0] == "Untagged: docker.io/library/a:1" and f"Deleted: {tagged}" in lines
    assert store.images() == []


def _build_chain(store: Store) -> tuple[str, str, str, dict[str, str]]:
    """base (tagged) <- step (untagged, a build's intermediate image) <- app (tagged): Docker's parents."""
    base = make_image(store, ["base"])
    step = make_image(store, ["base", "step"], tag=None)
    app = make_image(store, ["base", "step", "app"], tag="docker.io/library/app:1")
    return base, step, app, {step: base, app: step}


def test_prune_keeps_a_build_chain_and_rmi_takes_it_along(store):
    base, step, app, parents = _build_chain(store)
    parent_of = lambda image_id: parents.get(image_id, "")
    # The intermediate image is untagged but app's parent: not dangling, so the build cache stays.
    assert store.prune(parent_of=parent_of) == [] and store.image(step)
    # By ID, a parent cannot go, forced or not; by tag it is only untagged.
    with pytest.raises(Conflict, match="cannot be forced.*dependent child images"):
        store.remove_image(step, force=True, parent_of=parent_of)
    assert store.remove_image(BUSYBOX, parent_of=parent_of)[0] == f"Untagged: {BUSYBOX}"
    assert store.image(base).repo_tags == ()
    # rmi of the chain's end: the untagged parents it no longer needs go with it, up the chain.
    lines = store.remove_image("docker.io/library/app:1", parent_of=parent_of)
    assert [x for x in lines if x.startswith("Deleted: sha256") and len(x) == 80][:3] == [
        f"Deleted: {app}", f"Deleted: {step}", f"Deleted: {base}"]
    assert store.images() == []


def test_rmi_no_prune_and_a_dangling_head_pruned_with_its_chain(store):
    base, step, app, parents = _build_chain(store)
    parent_of = lambda image_id: parents.get(image_id, "")
    lines = store.remove_image("docker.io/library/app:1", parent_of=parent_of, prune_parents=False)
    assert f"Deleted: {app}" in lines and f"Deleted: {step}" not in lines
    # Now step is nobody's parent: dangling, and pruned; base keeps its tag.
    lines = store.prune(parent_of=parent_of)
    assert f"Deleted: {step}" in lines and f"Deleted: {base}" not in lines
    assert [i.id for i in store.images()] == [base]
    # A tag moved away from the end of a chain (a rebuild): prune takes the whole untagged chain.
    base, step, app, parents = _build_chain(store)
    store.untag("docker.io/library/app:1")
    lines = store.prune(parent_of=parent_of, in_use={base}.__contains__)
    assert f"Deleted: {app}" in lines and f"Deleted: {step}" in lines and store.image(base)


def test_gc_keeps_layers_another_image_uses(store):
    a = make_image(store, ["base", "app-a"], tag="docker.io/library/a:1")
    b = make_image(store, ["base", "app-b"], tag="docker.io/library/b:1")
    base = digest_bytes(b"base")
    assert store.image(a).chain_ids[0] == store.image(b).chain_ids[0] == base  # shared, unpacked once
    assert len(layer_ids(store)) == 3
    only_a = store.image(a).chain_ids[1]
    assert store.remove_image("docker.io/library/a:1")[-1] == f"Deleted: {only_a}"
    assert store.gc() == ([], [], 0)  # remove_image collected already
    assert layer_ids(store) == sorted([base, store.image(b).chain_ids[1]])
    image_b = store.image(b)
    assert set(blobs(store)) == {image_b.manifest_digest[7:], image_b.config_digest[7:],
                                 *(d[7:] for d in image_b.layer_digests)}
    store.remove_image(b)
    assert layer_ids(store) == [] and blobs(store) == []


def test_gc_removes_unreferenced_blobs_and_layers_but_waits_for_leases(store):
    keep = make_image(store, ["base"])
    orphan_blob = store.put_blob(b"an abandoned download")
    store.add_layer(digest_bytes(b"orphan"), None, digest_bytes(b"orphan"), orphan_blob, _fill("zz"))
    with store.lease():  # a pull is running: gc(wait=False) must not touch anything
        assert store.gc(wait=False) == ([], [], 0)
        assert store.has_blob(orphan_blob)
    result = store.gc()
    assert result.blobs == [orphan_blob] and result.layers == [digest_bytes(b"orphan")]
    assert result.freed == len(b"an abandoned download") + 2
    assert store.resolve(BUSYBOX).id == keep and store.has_layer(digest_bytes(b"base"))


def test_gc_cleans_old_tmp_leftovers_only(store):
    old = os.path.join(store.tmp, "blob-crashed")
    fresh = os.path.join(store.tmp, "blob-downloading")
    for p in (old, fresh):
        with open(p, "wb") as f:
            f.write(b"...")
    os.utime(old, (time.time() - 2 * store_mod.TMP_MAX_AGE,) * 2)
    store.gc()
    assert not os.path.exists(old) and os.path.exists(fresh)
    os.unlink(fresh)


def test_concurrent_tagging_loses_nothing(store):
    image_id = make_image(store, ["base"])
    errors = []

    def tag_many(n: int) -> None:
        try:
            for i in range(10):
                store.tag(image_id, f"localhost:5000/t{n}:{i}")
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=tag_many, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.image(image_id).repo_tags) == 41  # busybox + 4 x 10
    with open(os.path.join(store.root, "repositories.json")) as f:
        assert sum(len(v) for v in json.load(f)["Repositories"].values()) == 42  # + the digest ref


def test_image_config_reads_the_blob(store):
    image_id = make_image(store, ["base"])
    raw = store.read_blob(image_id)
    assert hashlib.sha256(raw).hexdigest() == image_id[7:]
    assert store.image(image_id).config == json.load(io.BytesIO(raw))
