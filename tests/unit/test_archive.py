"""save / load / import: docker-archive and OCI-layout tars, checked member by member, and round trips."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

import pytest
import zstandard

from minicontainer.cli import archive as cli_archive
from minicontainer.image import archive, builder
from minicontainer.image.digest import DigestMismatch
from minicontainer.image.pull import LayerMismatch, install
from minicontainer.image.store import NotFound, Store, chain_ids

BUSYBOX = "docker.io/library/busybox:latest"
APP = "registry.example.com:5000/team/app:1.0"


def tar_of(files: dict[str, str]) -> bytes:
    """A layer tar: ``{"etc/motd": "hi\\n"}``; directories are made for the parents."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()
        for name, text in files.items():
            parts = name.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in made:
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    made.add(d)
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def put(store: Store, layers: list[builder.Layer], tag: str | None, *, oci: bool = True, **config):
    """Put an image made of ``layers`` into ``store`` as a pull would leave it."""
    config_raw = builder.make_config(layers, **config)
    manifest_raw = builder.make_manifest(config_raw, layers, oci=oci)
    for layer in layers:
        store.put_blob(layer.data, layer.digest)
    store.put_blob(config_raw)
    store.put_blob(manifest_raw)
    return install(store, manifest_raw, config_raw, repo_tag=tag)


BASE = tar_of({"etc/motd": "base\n", "bin/tool": "#!/bin/sh\n"})
TOP = tar_of({"etc/motd": "top\n", "data/file": "data\n"})


@pytest.fixture
def source(tmp_path) -> Store:
    """A store with two images sharing a base layer: busybox (a Docker v2 manifest, one gzip layer) and
    app (OCI: the same base as OCI gzip, then a zstd layer and an uncompressed one)."""
    store = Store(str(tmp_path / "source"))
    base = builder.compress_layer(BASE, "gzip", oci=False)
    put(store, [base], BUSYBOX, oci=False, cmd=["sh"])
    put(store, [builder.compress_layer(BASE, "gzip"), builder.compress_layer(TOP, "zstd"),
                builder.compress_layer(tar_of({"extra": "x\n"}), "none")], APP, cmd=["cat", "/etc/motd"],
        env=["A=1"], labels={"k": "v"})
    return store


@pytest.fixture
def target(tmp_path) -> Store:
    return Store(str(tmp_path / "target"))


def saved(store: Store, names: list[str], fmt: str = archive.DOCKER_ARCHIVE) -> bytes:
    out = io.BytesIO()
    archive.save(store, names, out, format=fmt)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def nothing_stored(store: Store) -> bool:
    folders = ("images", "blobs/sha256", "layers/sha256")
    return all(os.listdir(os.path.join(store.root, f)) == [] for f in folders)


def load(store: Store, data: bytes) -> tuple[list, list[str]]:
    lines: list[str] = []
    images = archive.load(store, io.BytesIO(data), progress=lambda m: lines.append(m["stream"]) if "stream" in m
                          else None)
    return images, "".join(lines).splitlines()


def rebuild(data: bytes, change) -> bytes:
    """The archive with ``change(name, bytes) -> bytes`` applied to each member (same order)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            if m.isreg():
                content = change(m.name, src.extractfile(m).read())
                m.size = len(content)
                dst.addfile(m, io.BytesIO(content))
            else:
                dst.addfile(m)
    return out.getvalue()


# --- docker-archive ----------------------------------------------------------------------------------


def test_docker_archive_layout(source):
    files = members(saved(source, ["busybox", APP]))
    manifest = json.loads(files["manifest.json"])
    assert [e["RepoTags"] for e in manifest] == [["busybox:latest"], ["registry.example.com:5000/team/app:1.0"]]
    for entry in manifest:
        config_raw = files[entry["Config"]]
        assert entry["Config"] == sha(config_raw)[7:] + ".json"  # named by its digest: the image ID
        diff_ids = json.loads(config_raw)["rootfs"]["diff_ids"]
        assert [sha(files[path]) for path in entry["Layers"]] == diff_ids  # uncompressed: digest = DiffID
        assert entry["Layers"] == [d[7:] + "/layer.tar" for d in diff_ids]
    assert files[manifest[0]["Layers"][0]] == BASE
    # The shared base layer is written once.
    assert sum(1 for n in files if n.endswith("/layer.tar")) == 3
    repositories = json.loads(files["repositories"])
    assert repositories["busybox"] == {"latest": manifest[0]["Layers"][-1].split("/")[0]}
    assert set(repositories) == {"busybox", "registry.example.com:5000/team/app"}


def test_docker_archive_round_trip(source, target):
    data = saved(source, ["busybox", APP])
    images, lines = load(target, data)
    assert lines == ["Loaded image: busybox:latest", "Loaded image: registry.example.com:5000/team/app:1.0"]
    for image, ref in zip(images, [BUSYBOX, APP]):
        original = source.resolve(ref)
        assert image.id == original.id and image.repo_tags == (ref,)
        assert image.chain_ids == original.chain_ids  # the same layers, unpacked
        assert target.resolve(ref).id == image.id
    app = target.resolve(APP)
    top = target.lowerdirs(app)
    with open(os.path.join(top[1], "etc", "motd")) as f:
        assert f.read() == "top\n"
    # Stored uncompressed: each layer blob's digest is its DiffID.
    assert list(app.layer_digests) == app.config["rootfs"]["diff_ids"]
    # Saving what was loaded gives the same archive back.
    assert saved(target, ["busybox", APP]) == data


def test_save_by_id_is_untagged_and_repository_means_all_tags(source, target):
    busybox = source.resolve(BUSYBOX)
    source.tag(busybox.id, "docker.io/library/busybox:1.36")
    manifest = json.loads(members(saved(source, ["busybox"]))["manifest.json"])
    assert manifest[0]["RepoTags"] == ["busybox:1.36", "busybox:latest"]
    manifest = json.loads(members(saved(source, ["busybox:1.36"]))["manifest.json"])
    assert manifest[0]["RepoTags"] == ["busybox:1.36"]

    data = saved(source, [busybox.id[7:19]])
    files = members(data)
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None and "repositories" not in files
    images, lines = load(target, data)
    assert lines == [f"Loaded image ID: {busybox.id}"]
    assert images[0].repo_tags == ()

    with pytest.raises(NotFound, match="No such image: nosuch"):
        archive.save(source, ["nosuch"], io.BytesIO())


def test_load_moves_a_tag_and_says_so(source, target):
    put(target, [builder.compress_layer(tar_of({"old": "1\n"}))], BUSYBOX)
    old = target.resolve(BUSYBOX)
    _, lines = load(target, saved(source, ["busybox"]))
    moved = f"The image busybox:latest already exists, renaming the old one with ID {old.id} to empty string"
    assert lines == [moved, "Loaded image: busybox:latest"]
    assert target.image(old.id).repo_tags == ()


@pytest.mark.parametrize("compress", [gzip.compress, lambda d: zstandard.ZstdCompressor().compress(d)],
                         ids=["gzip", "zstd"])
def test_load_a_compressed_archive(source, target, compress):
    images, _ = load(target, compress(saved(source, [APP])))
    assert images[0].id == source.resolve(APP).id


def test_load_docker_archive_with_compressed_layers_and_links(source, target):
    """docker load takes gzip layer tars too; skopeo links <id>/layer.tar to the real file."""
    data = saved(source, ["busybox"])
    files = members(data)
    entry = json.loads(files["manifest.json"])[0]
    layer_path = entry["Layers"][0]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def add(name, content):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        add("real.tar.gz", gzip.compress(files[layer_path]))
        link = tarfile.TarInfo("v1id/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../real.tar.gz"
        tar.addfile(link)
        add(entry["Config"], files[entry["Config"]])
        add("manifest.json", json.dumps([{**entry, "Layers": ["v1id/layer.tar"]}]).encode())
    images, lines = load(target, out.getvalue())
    assert lines == ["Loaded image: busybox:latest"]
    assert images[0].id == source.resolve(BUSYBOX).id


def test_tampered_docker_archive_layer_loads_nothing(source, target):
    data = saved(source, ["busybox", APP])
    # Same size, one byte changed: only the digest can tell.
    tampered = rebuild(data, lambda name, b: b.replace(b"top\n", b"TOP\n") if name.endswith("layer.tar") else b)
    with pytest.raises(DigestMismatch, match="DiffID"):
        load(target, tampered)
    assert target.images() == [] and nothing_stored(target)


def test_tampered_docker_archive_config_loads_nothing(source, target):
    data = saved(source, ["busybox"])
    tampered = rebuild(data, lambda name, b: b.replace(b'"sh"', b'"rm"') if name.endswith(".json") and
                       name != "manifest.json" else b)
    with pytest.raises(DigestMismatch, match="image config"):
        load(target, tampered)
    assert nothing_stored(target)


def test_compressed_layer_with_the_wrong_diff_id_loads_nothing(source, target):
    data = saved(source, ["busybox"])
    files = members(data)
    entry = json.loads(files["manifest.json"])[0]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in ((entry["Layers"][0], gzip.compress(TOP)), (entry["Config"], files[entry["Config"]]),
                              ("manifest.json", files["manifest.json"])):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with pytest.raises(LayerMismatch):
        load(target, out.getvalue())
    assert nothing_stored(target)


def test_not_an_archive(target):
    with pytest.raises(archive.ArchiveError, match="empty"):
        archive.load(target, io.BytesIO(b""))
    with pytest.raises(archive.ArchiveError, match="not a valid tar"):
        archive.load(target, io.BytesIO(b"this is not a tar file at all" * 40))
    with pytest.raises(archive.ArchiveError, match="neither manifest.json"):
        archive.load(target, io.BytesIO(tar_of({"hello": "x"})))
    assert nothing_stored(target)


# --- OCI layout -----------------------------------------------------------------------------------------


def test_oci_archive_layout(source):
    files = members(saved(source, ["busybox", APP], archive.OCI_ARCHIVE))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, content in files.items():
        if name.startswith("blobs/"):
            assert name == "blobs/sha256/" + sha(content)[7:]  # every blob named by its digest
    index = json.loads(files["index.json"])
    assert index["mediaType"] == archive.OCI_INDEX
    refs = [(d["annotations"][archive.IMAGE_NAME], d["annotations"][archive.REF_NAME]) for d in index["manifests"]]
    assert refs == [(BUSYBOX, "latest"), (APP, "1.0")]
    for desc, ref in zip(index["manifests"], [BUSYBOX, APP]):
        manifest_raw = files["blobs/sha256/" + desc["digest"][7:]]
        assert desc["size"] == len(manifest_raw) and desc["mediaType"] == builder.OCI_MANIFEST
        manifest = json.loads(manifest_raw)
        assert manifest["mediaType"] == builder.OCI_MANIFEST
        assert manifest["config"]["mediaType"] == builder.OCI_CONFIG
        assert manifest["config"]["digest"] == source.resolve(ref).id
        for layer in manifest["layers"]:
            assert layer["mediaType"].startswith("application/vnd.oci.image.layer.v1.tar")
            assert len(files["blobs/sha256/" + layer["digest"][7:]]) == layer["size"]
    # The OCI manifest is kept byte for byte; the Docker v2 one is rewritten with OCI media types.
    assert index["manifests"][1]["digest"] == source.resolve(APP).manifest_digest
    assert index["manifests"][0]["digest"] != source.resolve(BUSYBOX).manifest_digest


def test_oci_archive_round_trip(source, target):
    images, lines = load(target, saved(source, ["busybox", APP], archive.OCI_ARCHIVE))
    assert lines == ["Loaded image: busybox:latest", "Loaded image: registry.example.com:5000/team/app:1.0"]
    assert [i.id for i in images] == [source.resolve(BUSYBOX).id, source.resolve(APP).id]
    app = target.resolve(APP)
    assert app.manifest_digest == source.resolve(APP).manifest_digest
    assert app.layer_digests == source.resolve(APP).layer_digests  # the compressed blobs, unchanged
    with open(os.path.join(target.lowerdirs(app)[0], "extra")) as f:
        assert f.read() == "x\n"


def test_oci_layout_from_a_directory_tar_with_dot_prefix_and_bare_tags(source, target):
    """``tar -C layout .`` writes ./index.json; an OCI ref.name that is only a tag names no repository."""
    files = members(saved(source, [APP], archive.OCI_ARCHIVE))
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {archive.REF_NAME: "1.0"}
    files["index.json"] = json.dumps(index).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    _, lines = load(target, out.getvalue())
    assert lines == [f"Loaded image ID: {source.resolve(APP).id}"]
    # A full name in ref.name (as `skopeo copy ... oci:dir:busybox:latest` writes) is used.
    index["manifests"][0]["annotations"] = {archive.REF_NAME: "team/app:2"}
    assert archive._tag_of(index["manifests"][0]["annotations"]) == "docker.io/team/app:2"


def test_tampered_oci_blob_loads_nothing(source, target):
    data = saved(source, [APP], archive.OCI_ARCHIVE)
    layer = json.loads(source.read_blob(source.resolve(APP).manifest_digest))["layers"][2]["digest"]
    tampered = rebuild(data, lambda name, b: b.replace(b"x\n", b"y\n") if name.endswith(layer[7:]) else b)
    with pytest.raises(DigestMismatch, match=f"archive member blobs/sha256/{layer[7:]}"):
        load(target, tampered)
    assert target.images() == [] and nothing_stored(target)


def test_oci_blob_missing_loads_nothing(source, target):
    data = saved(source, [APP], archive.OCI_ARCHIVE)
    layer = json.loads(source.read_blob(source.resolve(APP).manifest_digest))["layers"][0]["digest"]
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            if not m.name.endswith(layer[7:]):
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    with pytest.raises(archive.ArchiveError, match=f"no blob {layer}"):
        load(target, out.getvalue())
    assert nothing_stored(target)


# --- import ---------------------------------------------------------------------------------------------


ROOTFS = tar_of({"bin/hello": "#!/bin/sh\necho hello\n", "etc/os-release": "NAME=test\n", "work/x": "y\n"})


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_import_with_changes(target, compression):
    data = {"none": ROOTFS, "gzip": gzip.compress(ROOTFS),
            "zstd": zstandard.ZstdCompressor().compress(ROOTFS)}[compression]
    changes = ['CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /bin/hello --loud", 'ENV A=b C="two words"',
               "ENV LEGACY some value", "WORKDIR /work", "WORKDIR sub", 'LABEL org.x="y z" k=v', "EXPOSE 80 53/udp",
               "USER nobody", 'VOLUME ["/data"]', "STOPSIGNAL SIGQUIT"]
    image = archive.import_tarball(target, io.BytesIO(data), reference="myimg:1", changes=changes)
    assert image.repo_tags == ("docker.io/library/myimg:1",)
    config = image.config
    c = config["config"]
    assert c["Cmd"] == ["sh", "-c", "echo hi"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/bin/hello --loud"]  # the shell form
    assert c["Env"] == ["A=b", "C=two words", "LEGACY=some value"]
    assert c["WorkingDir"] == "/work/sub"
    assert c["Labels"] == {"org.x": "y z", "k": "v"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert (c["User"], c["Volumes"], c["StopSignal"]) == ("nobody", {"/data": {}}, "SIGQUIT")
    assert config["rootfs"]["diff_ids"] == [sha(ROOTFS)]
    assert config["history"][0]["comment"] == "Imported from -"
    assert image.chain_ids == tuple(chain_ids([sha(ROOTFS)]))
    # The blob is the input as it came: compressed or not.
    assert image.layer_digests == (sha(data),)
    with open(os.path.join(target.lowerdirs(image)[0], "work", "x")) as f:
        assert f.read() == "y\n"


def test_import_without_changes_is_an_empty_config(target):
    image = archive.import_tarball(target, io.BytesIO(ROOTFS), message="from a backup")
    assert image.repo_tags == ()
    assert image.config["config"] == {}  # docker import sets nothing, not even PATH
    assert image.config["history"] == [{"created": image.created, "comment": "from a backup"}]


def test_import_refusals_store_nothing(target):
    with pytest.raises(ValueError, match="RUN is not a valid change command"):
        archive.import_tarball(target, io.BytesIO(ROOTFS), changes=["RUN rm -rf /"])
    with pytest.raises(ValueError, match="name=value"):
        archive.import_tarball(target, io.BytesIO(ROOTFS), changes=["ENV A=1 B"])
    with pytest.raises(ValueError, match="digest"):
        archive.import_tarball(target, io.BytesIO(ROOTFS), reference="x@sha256:" + "a" * 64)
    with pytest.raises(archive.ArchiveError, match="empty"):
        archive.import_tarball(target, io.BytesIO(b""))
    with pytest.raises(Exception, match="gzip"):
        archive.import_tarball(target, io.BytesIO(gzip.compress(ROOTFS)[:-20]))  # truncated
    assert nothing_stored(target)


def test_apply_changes_details():
    config = archive.apply_changes({}, ["cmd echo hi", "ENV A=1", "ENV A=2", "WORKDIR a", "EXPOSE 8000-8002",
                                        "ONBUILD RUN make"])
    assert config == {"Cmd": ["/bin/sh", "-c", "echo hi"], "Env": ["A=2"], "WorkingDir": "/a",
                      "ExposedPorts": {"8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}}, "OnBuild": ["RUN make"]}
    with pytest.raises(ValueError, match="requires at least one argument"):
        archive.apply_changes({}, ["CMD"])
    with pytest.raises(ValueError, match="invalid port"):
        archive.apply_changes({}, ["EXPOSE http"])


# --- the CLI --------------------------------------------------------------------------------------------
# (It streams through the daemon: tested end to end in tests/integration/test_images.py.)


def test_cli_refuses_to_save_to_a_terminal_or_load_from_one(monkeypatch, capsys):
    """Before any daemon is asked: a tar on a terminal is noise, and a terminal cannot type one."""
    parser = argparse.ArgumentParser()
    cli_archive.add_commands(parser.add_subparsers())
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    for argv, message in ((["save", "busybox"], cli_archive.TERMINAL_SAVE), (["load"], cli_archive.TERMINAL_LOAD)):
        args = parser.parse_args(argv)
        assert args.handler(args) == 1
        assert capsys.readouterr().err == f"Error: {message}\n"


def test_load_a_docker_25_archive(source, target):
    """Docker 25+ writes both layouts in one tar: manifest.json pointing into blobs/sha256/, where the
    layers are uncompressed (named by their DiffIDs) and the config is named by the image ID."""
    files = members(saved(source, ["busybox"]))
    entry = json.loads(files["manifest.json"])[0]
    renamed = {"blobs/sha256/" + entry["Config"].removesuffix(".json"): files[entry["Config"]]}
    renamed.update({"blobs/sha256/" + path.split("/")[0]: files[path] for path in entry["Layers"]})
    layers = ["blobs/sha256/" + path.split("/")[0] for path in entry["Layers"]]
    manifest = [{"Config": "blobs/sha256/" + entry["Config"].removesuffix(".json"), "RepoTags": ["busybox:25"],
                 "Layers": layers}]
    renamed["manifest.json"] = json.dumps(manifest).encode()
    renamed["oci-layout"] = archive.OCI_LAYOUT
    renamed["index.json"] = b'{"schemaVersion":2,"manifests":[]}'
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in renamed.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    images, lines = load(target, out.getvalue())
    assert lines == ["Loaded image: busybox:25"]
    assert images[0].id == source.resolve(BUSYBOX).id
