"""engine/archive.py on a directory standing in for a container's root: paths resolved inside it
(openat2 RESOLVE_IN_ROOT), links archived as links, extraction that never writes through a link."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from minicontainer.engine.archive import ContainerRoot, Extraction, go_file_mode
from minicontainer.engine.errors import InvalidParameter, NotFound
from minicontainer.kernel.syscalls import Syscalls


@pytest.fixture
def root(tmp_path):
    top = tmp_path / "rootfs"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "hostname").write_text("box\n")
    (top / "abs").symlink_to("/etc")            # absolute: the container's /etc, not the host's
    (top / "up").symlink_to("../../../../etc")  # climbs: stops at the container's root
    (tmp_path / "outside").write_text("HOST\n")
    (top / "escape").symlink_to(str(tmp_path / "outside"))
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    yield ContainerRoot(Syscalls(), fd, "box")
    os.close(fd)


def read(root: ContainerRoot, path: str) -> bytes:
    fd = root.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_paths_resolve_inside_the_root(root):
    assert read(root, "/abs/hostname") == b"box\n"
    assert read(root, "/up/hostname") == b"box\n"
    assert read(root, "../../etc/hostname") == b"box\n"
    with pytest.raises(NotFound, match="Could not find the file /escape in container box"):
        read(root, "/escape")   # leads to a host path: inside the root there is no such file
    assert root.sys.trace.events[0].op == "openat2" and "RESOLVE_IN_ROOT" in root.sys.trace.events[0].args


def test_stat_describes_a_link_and_says_where_it_leads_in_the_container(root):
    info = root.stat("/abs")
    assert info["name"] == "abs" and info["mode"] & (1 << 27) and info["linkTarget"] == "/etc"
    assert root.stat("/up")["linkTarget"] == "/etc"
    assert root.stat("/etc")["mode"] == (1 << 31) | 0o755 & ~_umask()
    assert go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_tar_out_holds_links_as_links(root):
    out = io.BytesIO()
    root.write_tar("/", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = {m.name: m for m in tar}
    assert names["escape"].issym() and names["etc/hostname"].isreg()


def tar_of(*members: tuple[str, bytes | str]) -> tarfile.TarFile:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    data.seek(0)
    return tarfile.open(fileobj=data)


def test_extraction_replaces_a_link_never_writes_through_it(root, tmp_path):
    x = Extraction(root, "/", no_overwrite_dir_non_dir=False, owner=(0, 0))
    try:
        x.extract(tar_of(("escape", b"planted\n"), ("abs/new", b"new\n"), ("deep/er/file", b"x")))
    finally:
        x.close()
    assert (tmp_path / "outside").read_text() == "HOST\n"          # the link was replaced, not followed
    assert (tmp_path / "rootfs" / "escape").read_text() == "planted\n"
    assert (tmp_path / "rootfs" / "etc" / "new").read_text() == "new\n"  # through /abs -> the container's /etc
    assert (tmp_path / "rootfs" / "deep" / "er" / "file").read_bytes() == b"x"


def test_extraction_refuses_what_docker_refuses(root):
    with pytest.raises(InvalidParameter, match="extraction point is not a directory"):
        Extraction(root, "/etc/hostname", no_overwrite_dir_non_dir=False, owner=None)
    x = Extraction(root, "/", no_overwrite_dir_non_dir=True, owner=None)
    try:
        with pytest.raises(InvalidParameter, match="'..' would lead out"):
            x.extract(tar_of(("../evil", b"x")))
        with pytest.raises(Exception, match='cannot overwrite directory "/etc" with non-directory "/etc"'):
            x.extract(tar_of(("etc", b"x")))
    finally:
        x.close()


def test_a_running_containers_root_is_refused_if_its_pid_now_leads_elsewhere(tmp_path):
    """``/proc/PID/root`` of a container that just ended: its PID may be another process's, whose
    root is the host's.  The copy must stop rather than write there."""
    from types import SimpleNamespace

    from minicontainer.engine.archive import _own_root
    from minicontainer.engine.errors import Conflict

    (tmp_path / "merged").mkdir()
    impostor = SimpleNamespace(state={"Pid": os.getpid()}, path=lambda name: str(tmp_path / name))
    with pytest.raises(Conflict, match="stopped during the copy"):
        _own_root(impostor, "box")  # this process's root is /, not the container's merged/
    gone = SimpleNamespace(state={"Pid": 2 ** 22 + 1}, path=impostor.path)  # above pid_max: no such process
    with pytest.raises(Conflict, match="stopped during the copy"):
        _own_root(gone, "box")
    itself = SimpleNamespace(state={"Pid": os.getpid()}, path=lambda name: "/")  # its root is this one: fine
    os.close(_own_root(itself, "box"))
