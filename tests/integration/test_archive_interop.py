"""save / load against the reference tools: skopeo reads what we write and writes what we read; umoci
turns our OCI archive into a runtime bundle that runc runs; and a loaded image runs with our own engine.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from minicontainer.engine import images as engine_images
from minicontainer.engine.run import run as engine_run
from minicontainer.engine.spec import RunOptions
from minicontainer.image import archive
from minicontainer.image.pull import install
from minicontainer.image.starter import build_starter
from minicontainer.image.store import Store

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not on PATH (`make test` installs it)"),
]

BUSYBOX = "docker.io/library/busybox:latest"


def sh(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    assert r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def busybox_image():
    """The starter busybox image (runnable: the host's static busybox), built once."""
    return build_starter("busybox")


@pytest.fixture
def store(tmp_path, busybox_image) -> Store:
    """A private store holding busybox:latest."""
    store = Store(str(tmp_path / "store"))
    for layer in busybox_image.layers:
        store.put_blob(layer.data, layer.digest)
    store.put_blob(busybox_image.config)
    store.put_blob(busybox_image.manifest)
    install(store, busybox_image.manifest, busybox_image.config, repo_tag=BUSYBOX)
    return store


def save_to(store: Store, path: Path, fmt: str, names=("busybox",)) -> Path:
    with open(path, "wb") as f:
        archive.save(store, list(names), f, format=fmt)
    return path


def tar_directory(directory: Path) -> bytes:
    """A directory (an OCI layout skopeo wrote) as a tar, as ``tar -C DIR -c .`` makes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(directory, arcname=".")
    return buf.getvalue()


# --- (a) skopeo reads our archives ------------------------------------------------------------------------


def test_skopeo_reads_our_docker_archive(store, tmp_path, busybox_image):
    path = save_to(store, tmp_path / "busybox.tar", archive.DOCKER_ARCHIVE)
    inspect = json.loads(sh("skopeo", "inspect", f"docker-archive:{path}").stdout)
    # skopeo lists the layers a docker-archive holds: uncompressed, so by their DiffIDs.
    assert inspect["Layers"] == [layer.diff_id for layer in busybox_image.layers]
    assert inspect["Os"] == "linux"
    config = sh("skopeo", "inspect", "--config", "--raw", f"docker-archive:{path}").stdout
    assert config.encode() == busybox_image.config  # byte for byte: the same image ID

    layout = tmp_path / "oci"
    sh("skopeo", "copy", "--quiet", f"docker-archive:{path}", f"oci:{layout}:copied")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    # skopeo rewrites the config in OCI's own field order when it converts (so the ID changes), but it
    # is the same image: the same layers and the same command.
    theirs = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    ours = json.loads(busybox_image.config)
    assert theirs["rootfs"]["diff_ids"] == ours["rootfs"]["diff_ids"]
    assert theirs["config"]["Cmd"] == ours["config"]["Cmd"] == ["sh"]
    # ...and what skopeo made of it loads back.
    target = Store(str(tmp_path / "target"))
    loaded = archive.load(target, io.BytesIO(tar_directory(layout)))
    assert [i.id for i in loaded] == [manifest["config"]["digest"]]
    assert loaded[0].chain_ids == store.resolve(BUSYBOX).chain_ids


def test_skopeo_reads_our_oci_archive(store, tmp_path, busybox_image):
    path = save_to(store, tmp_path / "busybox-oci.tar", archive.OCI_ARCHIVE)
    inspect = json.loads(sh("skopeo", "inspect", f"oci-archive:{path}:latest").stdout)
    assert inspect["Layers"] == [layer.digest for layer in busybox_image.layers]  # compressed, as stored
    config = sh("skopeo", "inspect", "--config", "--raw", f"oci-archive:{path}:latest").stdout
    assert config.encode() == busybox_image.config


# --- (b) we read skopeo's archives ---------------------------------------------------------------------------


def test_load_what_skopeo_writes_from_a_registry(tmp_path, fixture_images):
    busybox = fixture_images.busybox
    source = f"docker://{busybox.name}"
    docker_tar, oci_tar = tmp_path / "docker.tar", tmp_path / "oci.tar"
    sh("skopeo", "copy", "--quiet", "--src-tls-verify=false", source, f"docker-archive:{docker_tar}:busybox:1.0")
    sh("skopeo", "copy", "--quiet", "--src-tls-verify=false", source, f"oci-archive:{oci_tar}:example.com/bb:2")
    multiarch = tmp_path / "multiarch"
    sh("skopeo", "copy", "--quiet", "--all", "--src-tls-verify=false", f"docker://{fixture_images.multiarch.name}",
       f"oci:{multiarch}:localhost/multi:latest")

    store = Store(str(tmp_path / "store"))
    lines: list[str] = []

    def progress(msg: dict) -> None:
        if "stream" in msg:
            lines.append(msg["stream"].strip())

    with open(docker_tar, "rb") as f:
        (image,) = archive.load(store, f, progress=progress)
    assert image.id == busybox.image.config_digest
    with open(oci_tar, "rb") as f:
        (converted,) = archive.load(store, f, progress=progress)
    # The fixture is a Docker v2 image: skopeo converted it to OCI, config included (a new ID), but the
    # layers are the same ones, already unpacked.
    assert converted.chain_ids == image.chain_ids
    # An index (three platforms, one an attestation) loads as this machine's image.
    (multi,) = archive.load(store, io.BytesIO(tar_directory(multiarch)), progress=progress)
    amd64 = fixture_images.multiarch.platforms["linux/amd64"]
    assert multi.id == amd64.config_digest
    assert lines == ["Loaded image: busybox:1.0", "Loaded image: example.com/bb:2", "Loaded image: localhost/multi:latest"]
    assert store.resolve(image.id).repo_tags == ("docker.io/library/busybox:1.0",)
    assert store.resolve(converted.id).repo_tags == ("example.com/bb:2",)


# --- (c) umoci + runc run our OCI archive; our engine runs what we loaded ----------------------------------


@pytest.mark.skipif(not (shutil.which("umoci") and shutil.which("runc")), reason="needs umoci and runc")
def test_umoci_unpacks_our_oci_archive_and_runc_runs_it(store, tmp_path):
    path = save_to(store, tmp_path / "busybox-oci.tar", archive.OCI_ARCHIVE)
    layout = tmp_path / "layout"
    layout.mkdir()
    sh("tar", "-C", str(layout), "-xf", str(path))
    bundle = tmp_path / "bundle"
    sh("umoci", "unpack", "--image", f"{layout}:latest", str(bundle))
    assert (bundle / "rootfs/bin/busybox").is_file()
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False  # runc would want a console socket
    config["process"]["args"] = ["sh", "-c", "echo hello from $(basename $(readlink /bin/sh)) as pid $$"]
    config.setdefault("linux", {})["cgroupsPath"] = f"minicontainer-test-{uuid.uuid4().hex[:12]}"
    (bundle / "config.json").write_text(json.dumps(config))
    runc_root, container = tmp_path / "runc", "minicontainer-archive-test"
    try:
        r = sh("runc", "--root", str(runc_root), "run", "--bundle", str(bundle), container)
        assert r.stdout.strip() == "hello from busybox as pid 1"
    finally:
        subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", container], capture_output=True,
                       check=False)


def test_a_loaded_image_runs_with_our_engine(store, tmp_path, monkeypatch, capfd):
    path = save_to(store, tmp_path / "busybox.tar", archive.DOCKER_ARCHIVE)
    monkeypatch.setenv("MINICONTAINER_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MINICONTAINER_RUN", str(tmp_path / "run"))
    ours = engine_images.open_store()
    with open(path, "rb") as f:
        (image,) = archive.load(ours, f)
    assert image.repo_tags == (BUSYBOX,)
    code = engine_run("busybox", RunOptions(command=["sh", "-c", "echo loaded and running; cat /etc/passwd | head -1"]))
    assert code == 0
    assert capfd.readouterr().out.splitlines()[-2:] == ["loaded and running", "root:x:0:0:root:/root:/bin/sh"]


def test_an_imported_rootfs_runs_with_our_engine(tmp_path, monkeypatch, capfd):
    """``docker export | docker import``'s other half: a tar of files (here a busybox rootfs) is an image."""
    from minicontainer.runtime.busybox import make_rootfs

    rootfs = tmp_path / "rootfs"
    make_rootfs(str(rootfs))
    data = tar_directory(rootfs)
    monkeypatch.setenv("MINICONTAINER_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MINICONTAINER_RUN", str(tmp_path / "run"))
    image = archive.import_tarball(engine_images.open_store(), io.BytesIO(data), reference="imported",
                                   changes=['CMD ["sh", "-c", "echo $GREETING from $(pwd)"]', "ENV GREETING=hi",
                                            "ENV PATH=/bin:/usr/bin", "WORKDIR /tmp"])
    assert image.repo_tags == ("docker.io/library/imported:latest",)
    assert engine_run("imported", RunOptions()) == 0
    assert capfd.readouterr().out.splitlines()[-1] == "hi from /tmp"
    assert os.listdir(tmp_path / "data" / "containers") == []  # the container's directory is gone
