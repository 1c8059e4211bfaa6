"""A container's upper directory as an OCI layer tar: whiteouts, opaque directories, hard links,
xattrs, and back again through the unpacker (the two directions must agree)."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from minicontainer.image import snapshot
from minicontainer.image.layers import unpack
from minicontainer.image.overlay import OPAQUE_XATTR, is_opaque, is_whiteout

pytestmark = pytest.mark.root  # whiteouts are device nodes and trusted.* xattrs are root's


def _upper(tmp_path):
    """An upper directory as overlayfs leaves it after: echo > etc/new; rm bin/ls; rm -r var/cache;
    mkdir var/cache (replacing it: opaque); ln etc/new etc/again; ln -s new etc/link."""
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_bytes(b"made\n")
    os.chmod(upper / "etc" / "new", 0o640)
    os.link(upper / "etc" / "new", upper / "etc" / "again")
    os.symlink("new", upper / "etc" / "link")
    os.setxattr(upper / "etc" / "new", "user.note", b"\xff\x00binary")
    (upper / "bin").mkdir()
    os.mknod(upper / "bin" / "ls", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (upper / "var" / "cache").mkdir(parents=True)
    os.setxattr(upper / "var" / "cache", OPAQUE_XATTR, b"y")
    os.setxattr(upper / "var", "trusted.overlay.impure", b"y")  # overlayfs's own: stays behind
    (upper / "var" / "cache" / "fresh").write_bytes(b"")
    return upper


def _layer(upper) -> tuple[bytes, list[snapshot.Change]]:
    out = io.BytesIO()
    changes = snapshot.write_layer(str(upper), out)
    return out.getvalue(), changes


def test_overlay_notation_becomes_oci_notation(tmp_path):
    data, changes = _layer(_upper(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["bin", "bin/.wh.ls", "etc", "etc/again", "etc/link", "etc/new", "var", "var/cache",
                               "var/cache/.wh..wh..opq", "var/cache/fresh"]
    names = list(members)
    assert all(names.index(os.path.dirname(n)) < names.index(n) for n in names if "/" in n)  # parents first
    assert members["bin/.wh.ls"].isreg() and members["bin/.wh.ls"].size == 0
    assert members["etc/again"].isreg() and members["etc/new"].islnk() and members["etc/new"].linkname == "etc/again"
    assert members["etc/link"].issym() and members["etc/link"].linkname == "new"
    assert members["etc/again"].mode == 0o640 and members["etc/again"].uname == ""
    assert members["etc/new"].pax_headers.get("SCHILY.xattr.user.note") is not None
    assert not any("trusted" in key for m in members.values() for key in m.pax_headers)
    assert ("whiteout", "bin/ls") in changes and ("opaque", "var/cache") in changes


def test_unpacking_the_snapshot_gives_back_the_upper_directory(tmp_path):
    data, _ = _layer(_upper(tmp_path))
    back = tmp_path / "back"
    back.mkdir()
    result = unpack(io.BytesIO(data), str(back), "application/vnd.oci.image.layer.v1.tar")
    assert result.diff_id.startswith("sha256:")
    assert is_whiteout(os.lstat(back / "bin" / "ls"))
    assert is_opaque(str(back / "var" / "cache")) and not is_opaque(str(back / "var"))
    assert os.lstat(back / "etc" / "new").st_ino == os.lstat(back / "etc" / "again").st_ino
    assert os.getxattr(back / "etc" / "again", "user.note") == b"\xff\x00binary"
    assert (back / "etc" / "again").read_bytes() == b"made\n"
    # ...and a second snapshot of it is the same bytes: the same changes, the same DiffID
    assert _layer(back)[0] == _layer(tmp_path / "upper")[0]


def test_nothing_changed_is_no_layer(tmp_path):
    assert snapshot.is_empty(str(tmp_path / "missing"))
    (tmp_path / "upper").mkdir()
    assert snapshot.is_empty(str(tmp_path / "upper"))
    (tmp_path / "upper" / "x").write_text("")
    assert not snapshot.is_empty(str(tmp_path / "upper"))


def test_a_redirected_directory_is_refused(tmp_path):
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/old")
    with pytest.raises(snapshot.SnapshotError, match="redirect_dir"):
        _layer(upper)
