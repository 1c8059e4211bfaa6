"""Layers unpacked into the store, stacked with a real overlayfs mount, and `docker diff` of the result."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from minicontainer.image import layers, overlay
from minicontainer.image.store import Store, chain_ids
from minicontainer.kernel.syscalls import MNT_DETACH, Syscalls

pytestmark = pytest.mark.root
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def tar_gz(*entries: tuple[str, bytes | None]) -> bytes:
    """Entries: (name, data) for a file, (name/, None) for a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name.rstrip("/"))
            ti.mtime = 1_600_000_000
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


LAYER1 = tar_gz(("etc/", None), ("etc/motd", b"welcome\n"), ("etc/hostname", b"box\n"),
                ("home/", None), ("home/user/", None), ("home/user/notes", b"n"),
                ("var/", None), ("var/cache/", None), ("var/cache/a", b"a"), ("var/cache/b", b"b"),
                ("bin/", None), ("bin/sh", b"#!"))
LAYER2 = tar_gz(("etc/.wh.motd", b""), ("etc/issue", b"v2\n"),
                ("var/cache/.wh..wh..opq", b""), ("var/cache/new", b"new"))


def unpack_into(store: Store, blobs: list[bytes]) -> list[str]:
    """Unpack the layers as a pull does; returns the overlay lowerdirs, top layer first."""
    results = []
    for blob in blobs:
        probe = store.tmp + "/probe"
        os.mkdir(probe)
        try:
            results.append(layers.unpack(io.BytesIO(blob), probe, GZIP).diff_id)
        finally:
            shutil.rmtree(probe)
    chains = chain_ids(results)
    for i, blob in enumerate(blobs):
        digest = store.put_blob(blob)
        store.add_layer(chains[i], chains[i - 1] if i else None, results[i], digest,
                        lambda d, b=blob: layers.unpack(io.BytesIO(b), d, GZIP))
    return [store.layer_dir(c) for c in reversed(chains)]


@pytest.fixture
def sys_calls():
    return Syscalls()


@pytest.fixture
def container_dir(tmp_path, sys_calls):
    cdir = tmp_path / "container"
    cdir.mkdir()
    yield cdir
    merged = cdir / "merged"
    while os.path.ismount(merged):  # a failed test must not leave its mount behind
        sys_calls.umount2(str(merged), MNT_DETACH)


def test_overlay_whiteouts_opaque_dirs_writes_and_diff(tmp_path, container_dir, sys_calls):
    store = Store(str(tmp_path / "store"))
    lowerdirs = unpack_into(store, [LAYER1, LAYER2])
    merged = overlay.mount_rootfs(sys_calls, lowerdirs, str(container_dir))
    assert os.path.ismount(merged)
    assert any(e.op == "mount" and "overlay" in e.args for e in sys_calls.trace.events)

    # The image as a container sees it.
    assert not os.path.exists(f"{merged}/etc/motd")  # deleted by layer 2's whiteout
    assert Path(f"{merged}/etc/hostname").read_text() == "box\n"
    assert Path(f"{merged}/etc/issue").read_text() == "v2\n"
    assert sorted(os.listdir(f"{merged}/var/cache")) == ["new"]  # opaque: a and b hidden
    assert overlay.diff(str(container_dir), lowerdirs) == []

    # The container writes: everything lands in upper/, the layers stay untouched.
    with open(f"{merged}/etc/hostname", "w") as f:
        f.write("container\n")
    with open(f"{merged}/added", "w") as f:
        f.write("new file")
    os.makedirs(f"{merged}/srv/www")
    os.unlink(f"{merged}/home/user/notes")
    shutil.rmtree(f"{merged}/var/cache")  # deleted and made again: overlayfs makes it opaque
    os.mkdir(f"{merged}/var/cache")
    open(f"{merged}/var/cache/z", "w").close()
    upper = container_dir / "upper"
    assert (upper / "added").read_text() == "new file"
    assert (upper / "etc/hostname").read_text() == "container\n"
    assert Path(os.path.join(lowerdirs[1], "etc/hostname")).read_text() == "box\n"

    assert overlay.diff(str(container_dir), lowerdirs) == [
        ("A", "/added"),
        ("C", "/etc"),
        ("C", "/etc/hostname"),
        ("C", "/home"),
        ("C", "/home/user"),
        ("D", "/home/user/notes"),
        ("A", "/srv"),
        ("A", "/srv/www"),
        ("C", "/var"),
        ("C", "/var/cache"),
        ("D", "/var/cache/new"),
        ("A", "/var/cache/z"),
    ]

    overlay.unmount_rootfs(sys_calls, str(container_dir))
    assert not os.path.ismount(merged)
    assert os.listdir(container_dir) == []
    assert sorted(os.listdir(lowerdirs[0])) == ["etc", "var"]  # the layers are left as they were


def test_many_layers_exceed_the_page_and_mount_through_short_links(tmp_path, container_dir, sys_calls):
    lowerdirs = []
    for i in range(60):  # 60 x ~110 characters: more than one 4096-byte page of options
        d = tmp_path / "layers" / ("x" * 90 + f"{i:03d}") / "diff"
        d.mkdir(parents=True)
        (d / f"file{i}").write_text(str(i))
        (d / "shared").write_text(str(i))
        lowerdirs.append(str(d))
    lowerdirs.reverse()  # top first: layer 59 wins
    cwd = os.getcwd()
    merged = overlay.mount_rootfs(sys_calls, lowerdirs, str(container_dir))
    try:
        assert os.getcwd() == cwd  # restored after the chdir
        assert Path(f"{merged}/shared").read_text() == "59"
        assert Path(f"{merged}/file0").read_text() == "0"
        assert len(os.listdir(merged)) == 61
        assert any(e.op == "mount" and "l/0" in e.args for e in sys_calls.trace.events)
    finally:
        overlay.unmount_rootfs(sys_calls, str(container_dir))
    assert os.listdir(container_dir) == []


def test_unmount_keeps_upper_when_asked_and_remount_sees_it(tmp_path, container_dir, sys_calls):
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "a").write_text("a")
    merged = overlay.mount_rootfs(sys_calls, [str(lower)], str(container_dir))
    with open(f"{merged}/b", "w") as f:
        f.write("b")
    overlay.unmount_rootfs(sys_calls, str(container_dir), remove=False)
    assert (container_dir / "upper" / "b").read_text() == "b"
    merged = overlay.mount_rootfs(sys_calls, [str(lower)], str(container_dir))
    assert sorted(os.listdir(merged)) == ["a", "b"]
    overlay.unmount_rootfs(sys_calls, str(container_dir))
    assert os.listdir(container_dir) == []
