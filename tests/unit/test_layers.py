"""Unpacking layers: compression, DiffID, metadata, whiteouts, and malicious archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest
import zstandard

from minicontainer.image import layers
from minicontainer.image.layers import LayerError, UnsafeLayer, unpack

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
PLAIN = "application/vnd.oci.image.layer.v1.tar"
MTIME = 1_600_000_000


# --- building test archives -------------------------------------------------------------------------


def _info(name: str, type_: bytes, **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mtime = kw.pop("mtime", MTIME)
    ti.mode = kw.pop("mode", 0o755 if type_ == tarfile.DIRTYPE else 0o644)
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def f(name: str, data: bytes = b"", **kw) -> tuple[tarfile.TarInfo, bytes]:
    ti = _info(name, tarfile.REGTYPE, **kw)
    ti.size = len(data)
    return ti, data


def d(name: str, **kw) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.DIRTYPE, **kw), None


def sym(name: str, target: str, **kw) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **kw), None


def hard(name: str, target: str, **kw) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.LNKTYPE, linkname=target, **kw), None


def make_tar(*members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def compress(raw: bytes, media_type: str) -> bytes:
    if media_type.endswith("gzip"):
        return gzip.compress(raw)
    if media_type.endswith("zstd"):
        return zstandard.ZstdCompressor().compress(raw)
    return raw


@pytest.fixture
def dest(tmp_path):
    out = tmp_path / "layer"
    out.mkdir()
    return out


def run(raw: bytes, dest, media_type: str = GZIP) -> layers.UnpackResult:
    return unpack(io.BytesIO(compress(raw, media_type)), str(dest), media_type)


# --- compression and DiffID ---------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [GZIP, DOCKER_GZIP, ZSTD, PLAIN, ""])
def test_unpacks_each_compression_and_computes_the_diff_id(dest, media_type):
    big = os.urandom(3 << 20)  # spans several 1 MiB chunks
    raw = make_tar(d("etc"), f("etc/hostname", b"box\n"), f("big.bin", big), f("empty"))
    result = run(raw, dest, media_type)
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()  # padding after the end included
    assert result.size == len(big) + 4
    assert (dest / "etc/hostname").read_bytes() == b"box\n"
    assert (dest / "big.bin").read_bytes() == big
    assert (dest / "empty").read_bytes() == b""


def test_zstd_sniffed_without_media_type(dest):
    raw = make_tar(f("a", b"x"))
    result = unpack(io.BytesIO(compress(raw, ZSTD)), str(dest), "")
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_unknown_media_type_and_corrupt_streams_are_errors(dest):
    raw = make_tar(f("a", os.urandom(100_000)))
    with pytest.raises(LayerError, match="unsupported layer media type"):
        unpack(io.BytesIO(raw), str(dest), "application/vnd.oci.image.layer.v1.tar+lz4")
    with pytest.raises(LayerError, match="ends early"):
        unpack(io.BytesIO(gzip.compress(raw)[:-200]), str(dest), GZIP)
    for p in dest.iterdir():
        p.unlink()
    with pytest.raises(LayerError, match="corrupt"):
        unpack(io.BytesIO(b"\x1f\x8b" + os.urandom(1000)), str(dest), GZIP)
    with pytest.raises(LayerError, match="checksum"):
        unpack(io.BytesIO(os.urandom(2048)), str(dest), PLAIN)


def test_truncated_tar_is_an_error(dest):
    raw = make_tar(f("a", b"x" * 5000))
    with pytest.raises(LayerError, match="truncated"):
        run(raw[:1024], dest, PLAIN)


def test_destination_must_be_empty(dest):
    (dest / "x").write_text("")
    with pytest.raises(LayerError, match="empty directory"):
        run(make_tar(f("a")), dest)


def test_long_names_gnu_and_pax(dest):
    long_dir = "d" * 120
    long_name = f"{long_dir}/{'n' * 150}"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
        name = long_name if fmt != tarfile.USTAR_FORMAT else f"{'u' * 90}/{'v' * 90}"  # ustar: prefix + name
        out = dest / str(fmt)
        out.mkdir()
        target = "t" * (200 if fmt != tarfile.USTAR_FORMAT else 90)
        run(make_tar(f(name, b"deep"), sym(name + "-link", target), fmt=fmt), out)
        assert (out / name).read_bytes() == b"deep"
        assert os.readlink(out / (name + "-link")) == target


def test_later_entry_of_the_same_name_wins(dest):
    raw = make_tar(f("a", b"one"), f("a", b"two"), d("b"), f("b/x", b"1"), f("b", b"now a file"),
                   sym("c", "/etc"), d("c"), f("c/inside", b"ok"))
    run(raw, dest)
    assert (dest / "a").read_bytes() == b"two"
    assert (dest / "b").read_bytes() == b"now a file"
    assert (dest / "c").is_dir() and not (dest / "c").is_symlink()
    assert (dest / "c/inside").read_bytes() == b"ok"


def test_missing_parent_directories_are_created(dest):
    run(make_tar(f("usr/local/bin/tool", b"#!/bin/sh\n", mode=0o755)), dest)
    assert (dest / "usr/local/bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((dest / "usr/local/bin/tool").stat().st_mode) == 0o755


# --- metadata (root: owners and device nodes) ----------------------------------------------------------


@pytest.mark.root
def test_owners_modes_links_devices_fifos_mtimes_xattrs(dest):
    cap = f("bin/ping", b"ELF", mode=0o755)
    cap[0].pax_headers = {"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.trusted.overlay.opaque": "y"}
    raw = make_tar(
        d(".", mode=0o755, mtime=MTIME + 1),
        d("bin", mtime=MTIME + 2),
        f("bin/su", b"su", mode=0o4755, uid=0, gid=0),
        f("bin/app", b"app", mode=0o750, uid=1000, gid=2000, mtime=MTIME + 3),
        hard("bin/app-link", "bin/app"),
        sym("bin/sh", "busybox", uid=1000, gid=1000, mtime=MTIME + 4),
        d("tmp", mode=0o1777),
        d("srv", mode=0o2775, uid=33, gid=33, mtime=MTIME + 5),
        f("srv/index.html", b"<p>", uid=33, gid=33),
        (_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
        (_info("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660, gid=6), None),
        (_info("run/fifo", tarfile.FIFOTYPE, mode=0o620), None),
        cap,
    )
    run(raw, dest)

    su = (dest / "bin/su").lstat()
    assert stat.S_IMODE(su.st_mode) == 0o4755  # setuid survives fchown
    app = (dest / "bin/app").lstat()
    assert (app.st_uid, app.st_gid, stat.S_IMODE(app.st_mode)) == (1000, 2000, 0o750)
    assert app.st_mtime == MTIME + 3
    assert (dest / "bin/app-link").lstat().st_ino == app.st_ino and app.st_nlink == 2
    sh = (dest / "bin/sh").lstat()
    assert stat.S_ISLNK(sh.st_mode) and os.readlink(dest / "bin/sh") == "busybox"
    assert (sh.st_uid, sh.st_gid, sh.st_mtime) == (1000, 1000, MTIME + 4)
    assert stat.S_IMODE((dest / "tmp").lstat().st_mode) == 0o1777
    srv = (dest / "srv").lstat()
    assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_mtime) == (0o2775, 33, MTIME + 5)  # mtime after contents
    assert (dest / "bin").lstat().st_mtime == MTIME + 2
    assert dest.lstat().st_mtime == MTIME + 1  # "./" applies to the layer's root
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    sda = (dest / "dev/sda").lstat()
    assert stat.S_ISBLK(sda.st_mode) and sda.st_rdev == os.makedev(8, 0) and sda.st_gid == 6
    fifo = (dest / "run/fifo").lstat()
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620
    assert os.getxattr(dest / "bin/ping", "user.note") == b"hello"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "bin/ping")  # a layer may not forge overlay xattrs


# --- whiteouts -------------------------------------------------------------------------------------------


def _is_whiteout(path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@pytest.mark.root
def test_whiteouts_become_overlay_whiteouts_and_opaque_dirs(dest):
    raw = make_tar(
        d("etc"),
        f("etc/.wh.motd"),  # delete a lower file
        f(".wh.home"),  # delete a lower directory
        f("var/cache/.wh..wh..opq"),  # marker before the directory's own entry
        d("var/cache"),
        f("var/cache/fresh", b"new"),
        f("opt/keep", b"mine"),
        f("opt/.wh.keep"),  # whiteout of a name the same layer has: the file stays
        d("srv/www"),
        f("srv/.wh.www"),  # ... a directory stays, and becomes opaque
        f("usr/.wh.lib"),
        d("usr/lib"),  # deleted, then made again: opaque
        f("usr/lib/x", b"x"),
        f(".wh..wh.plnk/123.456", b"aufs"),  # AUFS bookkeeping: ignored
    )
    run(raw, dest)
    assert _is_whiteout(dest / "etc/motd")
    assert _is_whiteout(dest / "home")
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/cache/fresh").read_bytes() == b"new"
    assert (dest / "opt/keep").read_bytes() == b"mine"
    assert os.getxattr(dest / "srv/www", "trusted.overlay.opaque") == b"y"
    assert (dest / "usr/lib").is_dir() and os.getxattr(dest / "usr/lib", "trusted.overlay.opaque") == b"y"
    assert (dest / "usr/lib/x").read_bytes() == b"x"
    names = [n for _, dirs, files in os.walk(dest) for n in dirs + files]
    assert not [n for n in names if n.startswith(".wh.")]
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "etc")


# --- malicious layers -------------------------------------------------------------------------------------


MALICIOUS = {
    "dotdot": ([f("../escaped", b"x")], "'..'"),
    "dotdot-deep": ([d("a"), f("a/../../escaped", b"x")], "'..'"),
    "absolute": ([f("/etc/escaped", b"x")], "absolute"),
    "symlink-dir-then-file": ([sym("a", "{canary}"), f("a/escaped", b"x")], "symlink"),
    "relative-symlink-then-file": ([sym("b", "../canary"), f("b/escaped", b"x")], "symlink"),
    "symlink-then-dir": ([sym("c", "{canary}"), d("c/sub")], "symlink"),
    "hardlink-dotdot": ([hard("passwd", "../../etc/passwd")], "'..'"),
    "hardlink-absolute": ([hard("passwd", "/etc/passwd")], "absolute"),
    "hardlink-through-symlink": ([sym("e", "{canary}"), hard("stolen", "e/secret")], "symlink"),
    "whiteout-through-symlink": ([sym("w", "{canary}"), f("w/.wh.secret")], "symlink"),
    "opaque-through-symlink": ([sym("o", "{canary}"), f("o/.wh..wh..opq")], "symlink"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_layers_are_refused_and_nothing_lands_outside(tmp_path, case):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("keep me")
    dest = tmp_path / "layers" / "one" / "diff"
    dest.mkdir(parents=True)
    members, rule = MALICIOUS[case]
    fixed = []
    for ti, data in members:
        ti = _info(ti.name, ti.type, linkname=ti.linkname.replace("{canary}", str(canary)), size=ti.size,
                   mode=ti.mode)
        fixed.append((ti, data))
    before = sorted(p for p in tmp_path.rglob("*") if dest not in p.parents)
    with pytest.raises(UnsafeLayer, match=rule) as err:
        run(make_tar(*fixed), dest)
    assert "unsafe layer: entry '" in str(err.value)
    after = sorted(p for p in tmp_path.rglob("*") if dest not in p.parents)
    assert after == before  # nothing created outside the layer's directory
    assert sorted(p.name for p in canary.iterdir()) == ["secret"]
    assert (canary / "secret").read_text() == "keep me"


def test_hardlink_to_a_missing_target_is_an_error(dest):
    with pytest.raises(LayerError, match="not .*in this layer"):
        run(make_tar(hard("b", "a")), dest)


def test_symlink_targets_are_stored_not_followed(dest, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("untouched")
    run(make_tar(sym("abs", str(outside)), sym("rel", "../outside"), f("abs", b"replaced the link")), dest)
    assert (dest / "abs").read_bytes() == b"replaced the link"  # the link was replaced, never written through
    assert outside.read_text() == "untouched"
    assert os.readlink(dest / "rel") == "../outside"


def test_gzip_bomb_is_streamed_in_bounded_chunks(dest):
    zeros = bytes(64 << 20)
    raw = make_tar(f("zeros", zeros))
    chunks = layers.uncompressed_chunks(io.BytesIO(gzip.compress(raw, 1)), GZIP)
    assert max(len(c) for c in chunks) <= layers.CHUNK
