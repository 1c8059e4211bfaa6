"""The volume store (engine/volumes.py) on a temporary data root: names, options, filters, in use,
prune, the record on disk, the mounts of volumes with options (recorded by the fake kernel), and the
copy of an image's files into an empty volume, with symlinks that must not lead out of the rootfs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat

import pytest

from minicontainer.engine import volumes
from minicontainer.engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from minicontainer.engine.events import EventLog
from minicontainer.engine.volumes import ANONYMOUS_LABEL, VolumeStore
from minicontainer.kernel.fake import FakeSyscalls
from minicontainer.kernel.syscalls import MNT_DETACH, MS_BIND, MS_RDONLY, MS_REMOUNT, Syscalls


class Users(dict):
    """volume name -> container IDs: what the engine's records would say."""

    def __call__(self, name: str) -> list[str]:
        return self.get(name, [])


def open_text(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def users() -> Users:
    return Users()


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def store(tmp_path, users, events) -> VolumeStore:
    return VolumeStore(str(tmp_path / "volumes"), users, events, sys=FakeSyscalls())


def test_create_lays_out_a_volume_as_docker_does_and_inspect_shows_it(store, tmp_path, events):
    volume = store.create("data", labels={"team": "a"})
    assert volume.mountpoint == str(tmp_path / "volumes" / "data" / "_data")
    assert os.path.isdir(volume.mountpoint) and stat.S_IMODE(os.stat(volume.mountpoint).st_mode) == 0o755
    info = volume.inspect()
    assert info["Name"] == "data" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Labels"] == {"team": "a"} and info["Options"] is None and info["Mountpoint"] == volume.mountpoint
    assert info["CreatedAt"].endswith("Z") and "UsageData" not in info
    assert [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in events.recent] == [
        ("volume", "create", "data", {"driver": "local"})]


def test_create_again_returns_the_volume_unless_it_asks_for_other_labels_or_options(store):
    first = store.create("data", labels={"a": "1"})
    assert store.create("data") is first
    assert store.create("data", labels={"a": "1"}) is first
    with pytest.raises(Conflict, match="volume name must be unique.*other labels"):
        store.create("data", labels={"a": "2"})
    with pytest.raises(Conflict, match="other options"):
        store.create("data", driver_opts={"type": "tmpfs", "device": "tmpfs"})


def test_an_anonymous_volume_has_a_random_64_hex_name_and_docker_s_label(store):
    volume = store.create()
    assert len(volume.name) == 64 and int(volume.name, 16) >= 0
    assert volume.anonymous and volume.labels == {ANONYMOUS_LABEL: ""}
    assert store.create(anonymous=True).name != volume.name


@pytest.mark.parametrize(("name", "message"), [
    ("foo/bar", ('create foo/bar: "foo/bar" includes invalid characters for a local volume name, only '
                 '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')),
    ("../up", "includes invalid characters"),
    (".hidden", "includes invalid characters"),
    ("x", "create x: volume name is too short, names should be at least two alphanumeric characters"),
])
def test_a_bad_name_is_refused_before_anything_is_made(store, tmp_path, name, message):
    with pytest.raises(InvalidParameter) as e:
        store.create(name)
    assert message in str(e.value) and e.value.status == 400
    assert os.listdir(tmp_path / "volumes") == [] and not (tmp_path / "up").exists()


@pytest.mark.parametrize(("driver", "opts", "error", "message"), [
    ("flocker", {}, NotFound, 'create v1: error looking up volume plugin flocker: plugin "flocker" not found'),
    ("local", {"colour": "red"}, InvalidParameter, 'create v1: invalid option: "colour"'),
    ("local", {"size": "10m"}, InvalidParameter, "quota size requested but no quota support"),
    ("local", {"type": "tmpfs"}, InvalidParameter, 'create v1: missing required option: "device"'),
    ("local", {"o": "size=1m", "device": "tmpfs"}, InvalidParameter, 'missing required option: "type"'),
])
def test_other_drivers_and_unknown_options_are_refused_by_name(store, tmp_path, driver, opts, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        store.create("v1", driver=driver, driver_opts=opts)
    assert os.listdir(tmp_path / "volumes") == []


def test_get_of_a_missing_volume_is_docker_s_404(store):
    with pytest.raises(NotFound, match="^get nope: no such volume$"):
        store.get("nope")


def test_list_filters_by_name_label_driver_and_dangling(store, users):
    store.create("web-data", labels={"app": "web", "tier": "front"})
    store.create("db-data", labels={"app": "db"})
    store.create("scratch")
    users["db-data"] = ["c" * 64]

    def names(**filters) -> list[str]:
        return [v.name for v in store.list(filters)]

    assert names() == ["db-data", "scratch", "web-data"]
    assert names(name=["-data"]) == ["db-data", "web-data"]
    assert names(name=["^web"]) == ["web-data"]           # a regular expression, as dockerd reads it
    assert names(label=["app"]) == ["db-data", "web-data"]
    assert names(label=["app=web", "tier=front"]) == ["web-data"]
    assert names(driver=["local"]) == names() and names(driver=["nfs"]) == []
    assert names(dangling=["true"]) == ["scratch", "web-data"]
    assert names(dangling=["false"]) == ["db-data"]
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        store.list({"colour": ["red"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling=maybe'"):
        store.list({"dangling": ["maybe"]})


def test_remove_deletes_the_data_but_not_while_a_container_uses_it(store, users, events, tmp_path):
    volume = store.create("data")
    (tmp_path / "volumes" / "data" / "_data" / "file").write_text("kept\n")
    users["data"] = ["a" * 64, "b" * 64]
    with pytest.raises(Conflict) as e:
        store.remove("data")
    assert str(e.value) == f"remove data: volume is in use - [{'a' * 64}, {'b' * 64}]"
    assert os.path.exists(volume.mountpoint + "/file")
    users.clear()
    store.remove("data")
    assert not os.path.exists(volume.directory) and store.list() == []
    assert events.recent[-1]["Action"] == "destroy"
    with pytest.raises(NotFound, match="get data: no such volume"):
        store.remove("data")
    store.remove("data", force=True)  # `docker volume rm -f` of a missing volume: no error


def test_remove_does_not_follow_a_symlink_a_container_left_in_the_volume(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("host data\n")
    volume = store.create("data")
    os.symlink(str(outside), volume.mountpoint + "/link")
    store.remove("data")
    assert (outside / "precious").read_text() == "host data\n"


def test_prune_removes_unused_anonymous_volumes_unless_told_all(store, users, events):
    anonymous = store.create()
    used = store.create()
    store.create("named", labels={"keep": "no"})
    with open(anonymous.mountpoint + "/f", "w") as f:
        f.write("x" * 1000)
    users[used.name] = ["c" * 64]
    result = store.prune()
    assert result == {"VolumesDeleted": [anonymous.name], "SpaceReclaimed": 1000}
    assert events.recent[-1]["Action"] == "prune" and events.recent[-1]["Actor"]["Attributes"] == {"reclaimed": "1000"}
    assert store.prune({"all": ["true"], "label!": ["keep=no"]})["VolumesDeleted"] == []
    assert store.prune({"all": ["1"], "label": ["keep"]})["VolumesDeleted"] == ["named"]
    assert [v.name for v in store.list()] == [used.name]
    with pytest.raises(InvalidParameter, match="invalid filter 'until'"):
        store.prune({"until": ["24h"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'all=maybe'"):
        store.prune({"all": ["maybe"]})


def test_prune_leaves_volumes_with_mount_options_alone(store):
    store.create("ram", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    assert store.prune({"all": ["true"]})["VolumesDeleted"] == []


def test_a_new_store_finds_the_volumes_on_disk(store, tmp_path, users):
    store.create("data", labels={"a": "b"}, driver_opts={"type": "tmpfs", "device": "tmpfs"})
    os.makedirs(tmp_path / "volumes" / "half-made")  # no record: the daemon died during its create
    again = VolumeStore(str(tmp_path / "volumes"), users)
    assert again.create("half-made").filled is False and sorted(os.listdir(tmp_path / "volumes" / "half-made")) == [
        "_data", "volume.json"]  # made again, whole
    again.remove("half-made")
    volume = again.get("data")
    assert volume.inspect() == store.get("data").inspect()
    assert [v.name for v in again.list()] == ["data"]
    with open(os.path.join(volume.directory, "volume.json")) as f:
        assert json.load(f)["Options"] == {"type": "tmpfs", "device": "tmpfs"}


def test_usage_counts_bytes_and_users(store, users):
    volume = store.create("data")
    with open(volume.mountpoint + "/f", "w") as f:
        f.write("12345")
    users["data"] = ["c" * 64]
    assert store.usage(volume) == {"RefCount": 1, "Size": 5}
    assert volume.inspect(store.usage(volume))["UsageData"] == {"RefCount": 1, "Size": 5}


# --- mounts of volumes with options ----------------------------------------------------------------


def test_a_tmpfs_volume_is_mounted_for_its_first_user_and_unmounted_after_its_last(store, monkeypatch):
    volume = store.create("ram", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=64m,noexec"})
    assert store.mount(volume, "c1") == volume.mountpoint
    store.mount(volume, "c2")
    assert store.sys.calls == [("mount", ("tmpfs", volume.mountpoint, "tmpfs", 8, "size=64m"))]  # MS_NOEXEC
    monkeypatch.setattr(volumes, "is_mount_point", lambda p: p == volume.mountpoint)
    with pytest.raises(EngineError, match="remove ram: volume has active mounts"):
        store.remove("ram")
    store.unmount(volume, "c1")
    assert store.sys.ops() == ["mount"]
    store.unmount(volume, "c2")
    assert store.sys.calls[-1] == ("umount2", (volume.mountpoint, MNT_DETACH))


def test_a_read_only_bind_volume_is_remounted_read_only(store):
    volume = store.create("host", driver_opts={"type": "none", "device": "/srv", "o": "bind,ro"})
    store.mount(volume, "c1")
    assert store.sys.calls == [("mount", ("/srv", volume.mountpoint, "none", MS_BIND | MS_RDONLY, None)),
                               ("mount", (None, volume.mountpoint, None, MS_BIND | MS_RDONLY | MS_REMOUNT))]


def test_a_plain_volume_needs_no_mount(store):
    volume = store.create("plain")
    assert store.mount(volume, "c1") == volume.mountpoint and store.sys.calls == []


def test_a_failed_mount_says_which_volume_and_why(tmp_path, users):
    store = VolumeStore(str(tmp_path / "volumes"), users, sys=FakeSyscalls(fail={"mount": errno.ENOENT}))
    volume = store.create("host", driver_opts={"type": "none", "device": "/missing", "o": "bind"})
    with pytest.raises(EngineError, match="failed to mount local volume host: .*No such file"):
        store.mount(volume, "c1")
    assert store.mounted == {}


# --- copy_up: an image's files into an empty volume ------------------------------------------------


@pytest.fixture
def rootfs(tmp_path):
    """An image's root filesystem with /data holding files of every kind, and links that lead out."""
    root = tmp_path / "rootfs"
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "conf").write_text("setting=1\n")
    os.chown(data / "conf", 999, 998)
    os.chmod(data / "conf", 0o640)
    os.chown(data / "sub", 1000, 1000)
    os.chmod(data / "sub", 0o2750)
    os.chown(data, 999, 999)
    os.chmod(data, 0o700)
    os.link(data / "conf", data / "sub" / "conf-again")
    os.symlink("/etc/passwd", data / "abs-link")           # in the container: its own /etc/passwd
    os.symlink("../../../../../../etc", data / "up-link")  # climbs out, were it followed on the host
    os.mkfifo(data / "pipe")
    os.chmod(data / "pipe", 0o620)
    os.setxattr(data / "conf", "user.origin", b"image")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("/data", root / "data-link")
    os.symlink("/", root / "escape")
    return root


def test_copy_up_keeps_owners_modes_links_and_xattrs(tmp_path, users, rootfs):
    store = VolumeStore(str(tmp_path / "volumes"), users, sys=Syscalls())
    volume = store.create("data")
    assert store.copy_up(volume, str(rootfs), "/data") is True
    mp = volume.mountpoint
    top = os.stat(mp)
    assert (top.st_uid, top.st_gid, stat.S_IMODE(top.st_mode)) == (999, 999, 0o700)  # the directory's own
    conf = os.stat(f"{mp}/conf")
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (999, 998, 0o640)
    assert (rootfs / "data" / "conf").read_text() == open_text(f"{mp}/conf") == "setting=1\n"
    assert os.getxattr(f"{mp}/conf", "user.origin") == b"image"
    sub = os.stat(f"{mp}/sub")
    assert (sub.st_uid, stat.S_IMODE(sub.st_mode)) == (1000, 0o2750)
    assert os.stat(f"{mp}/sub/conf-again").st_ino == conf.st_ino  # still one file with two names
    assert os.readlink(f"{mp}/abs-link") == "/etc/passwd" and os.readlink(f"{mp}/up-link") == "../../../../../../etc"
    assert stat.S_ISFIFO(os.lstat(f"{mp}/pipe").st_mode) and stat.S_IMODE(os.lstat(f"{mp}/pipe").st_mode) == 0o620
    assert os.stat(f"{mp}/conf").st_mtime_ns == os.stat(rootfs / "data" / "conf").st_mtime_ns
    assert json.loads(open_text(os.path.join(volume.directory, "volume.json")))["Filled"] is True
    told = store.sys.trace.events[-1]  # what `run --explain` narrates
    assert (told.op, told.args, told.result) == ("copy", "/data of the image -> volume data", "6 files, 10 bytes")


def test_copy_up_happens_once_and_never_over_data(tmp_path, users, rootfs):
    store = VolumeStore(str(tmp_path / "volumes"), users, sys=Syscalls())
    volume = store.create("data")
    assert store.copy_up(volume, str(rootfs), "/data")
    for name in os.listdir(volume.mountpoint):  # its user empties it
        path = os.path.join(volume.mountpoint, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    assert os.listdir(volume.mountpoint) == []
    assert store.copy_up(volume, str(rootfs), "/data") is False  # emptied by its user: stays empty
    other = store.create("other")
    with open(other.mountpoint + "/mine", "w") as f:
        f.write("user data\n")
    assert store.copy_up(other, str(rootfs), "/data") is False
    assert os.listdir(other.mountpoint) == ["mine"]
    fresh = store.create("fresh")
    assert store.copy_up(fresh, str(rootfs), "/nothing-here") is False and not fresh.filled


def test_copy_up_resolves_the_mount_point_inside_the_rootfs(tmp_path, users, rootfs):
    """``/escape -> /`` means the image's own root, never the host's; ``/data-link -> /data`` the
    image's /data."""
    store = VolumeStore(str(tmp_path / "volumes"), users, sys=Syscalls())
    via_link = store.create("via-link")
    assert store.copy_up(via_link, str(rootfs), "/data-link")
    assert sorted(os.listdir(via_link.mountpoint)) == sorted(os.listdir(rootfs / "data"))
    escaped = store.create("escaped")
    assert store.copy_up(escaped, str(rootfs), "/escape/etc")
    assert os.listdir(escaped.mountpoint) == ["passwd"]  # the rootfs's /etc, not the host's
    climbed = store.create("climbed")
    assert store.copy_up(climbed, str(rootfs), "/data/up-link")
    assert os.listdir(climbed.mountpoint) == ["passwd"]
