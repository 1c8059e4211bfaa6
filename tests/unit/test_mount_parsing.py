"""A container's mounts, read and checked (engine/mounts.py) and the CLI's flags (cli/mounts.py)."""

from __future__ import annotations

import argparse

import pytest

from minicontainer.cli.mounts import mounts_body
from minicontainer.cli.mounts import parse_mount as parse_mount_flag
from minicontainer.engine import mounts
from minicontainer.engine.errors import InvalidParameter
from minicontainer.engine.mounts import MountPoint, parse_bind, parse_mount, parse_tmpfs, plan


def refused(fn, *args) -> str:
    with pytest.raises(InvalidParameter) as e:
        fn(*args)
    assert e.value.status == 400
    return str(e.value)


def test_binds_read_as_docker_reads_them(tmp_path):
    mp = parse_bind(f"{tmp_path}:/data")
    assert (mp.type, mp.source, mp.destination, mp.rw, mp.mode, mp.propagation) == \
        ("bind", str(tmp_path), "/data", True, "", "rprivate")
    mp = parse_bind(f"{tmp_path}/:/data/:ro,rshared")
    assert (mp.source, mp.destination, mp.rw, mp.mode, mp.propagation) == \
        (str(tmp_path), "/data", False, "ro,rshared", "rshared")
    assert mp.oci() == {"destination": "/data", "type": "bind", "source": str(tmp_path),
                        "options": ["rbind", "ro", "rshared"]}
    vol = parse_bind("pgdata:/var/lib/db:nocopy")
    assert (vol.type, vol.name, vol.copy, vol.anonymous) == ("volume", "pgdata", False, False)
    anonymous = parse_bind("/cache")
    assert (anonymous.type, anonymous.name, anonymous.anonymous) == ("volume", "", True)


def test_a_bind_of_a_missing_host_path_is_refused_with_the_way_out(tmp_path):
    message = refused(parse_bind, f"{tmp_path}/typo:/data")
    assert message.startswith(f"invalid volume specification: '{tmp_path}/typo:/data': bind source path does not "
                              f"exist: {tmp_path}/typo")
    assert "Docker would create an empty directory" in message and f"mkdir -p {tmp_path}/typo" in message
    assert refused(parse_mount, {"Type": "bind", "Source": f"{tmp_path}/typo", "Target": "/x"}) == \
        f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/typo'


@pytest.mark.parametrize(("spec", "words"), [
    ("/a:/b:/c:/d", "invalid volume specification: '/a:/b:/c:/d'"),
    (":/b", "invalid volume specification: ':/b'"),
    ("/tmp:rw", "invalid volume specification: '/tmp:rw'"),
    ("/tmp:/b:rx", "invalid mode: rx"),
    ("/tmp:/b:ro,rw", "invalid mode: ro,rw"),
    ("/tmp:/b:z", "SELinux relabel"),
    ("/tmp:/b:Z", "SELinux relabel"),
    ("/tmp:/b:cached", "'cached' is not supported by this engine"),
    ("/tmp:relative", "mount path must be absolute"),
    ("/tmp:/", "destination can't be '/'"),
    ("/tmp:/b:nocopy", 'type "bind": field VolumeOptions must not be specified'),
    ("vol:/b:rshared", 'type "volume": field BindOptions must not be specified'),
    ("my/vol:/b", "includes invalid characters for a local volume name"),
])
def test_bad_binds_are_refused_in_dockers_words(spec, words):
    assert words in refused(parse_bind, spec)


def test_mounts_objects(tmp_path):
    mp = parse_mount({"Type": "bind", "Source": str(tmp_path), "Target": "/x", "ReadOnly": True,
                      "BindOptions": {"Propagation": "rslave", "NonRecursive": True}})
    assert (mp.rw, mp.propagation, mp.recursive, mp.mode) == (False, "rslave", False, "")
    assert mp.oci()["options"] == ["bind", "ro", "rslave"]
    vol = parse_mount({"type": "volume", "source": "v1", "target": "/v",  # Go's JSON ignores case
                       "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}, "Subpath": "sub/dir"}})
    assert (vol.name, vol.copy, vol.labels, vol.subpath) == ("v1", False, {"a": "b"}, "sub/dir")
    tmp = parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}})
    assert tmp.oci() == {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                         "options": ["noexec", "nosuid", "nodev", "mode=1777", "size=64m"]}


@pytest.mark.parametrize(("spec", "words"), [
    ({"Type": "floppy", "Target": "/x"}, 'invalid mount config for type "floppy": mount type unknown'),
    ({"Type": "image", "Source": "busybox", "Target": "/x"}, "image mounts are not supported by this engine"),
    ({"Type": "bind", "Target": "/x"}, "field Source must not be empty"),
    ({"Type": "bind", "Source": "rel", "Target": "/x"}, "'rel' mount path must be absolute"),
    ({"Type": "bind", "Source": "/tmp", "Target": ""}, "field Target must not be empty"),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"Propagation": "wide"}},
     "invalid propagation mode: wide"),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"CreateMountpoint": True}},
     "CreateMountpoint"),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {}}, "field VolumeOptions must not be"),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "Consistency": "cached"}, "Consistency"),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "Sauce": 1}, "unknown field Sauce"),
    ({"Type": "tmpfs", "Source": "x", "Target": "/x"}, "field Source must not be specified"),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Options": [["uid", "0"]]}}, "invalid option"),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True}, "must not set ReadOnly mode when using anonymous"),
    ({"Type": "volume", "Source": "vv", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Options": {"o": "x"}}}},
     'missing required option: "device"'),
    ({"Type": "volume", "Source": "vv", "Target": "/x", "VolumeOptions": {"Subpath": "../up"}}, "subpath"),
    ({"Type": "volume", "Source": "v", "Target": "/x"}, "volume name is too short"),
])
def test_bad_mounts_are_refused_by_name(spec, words):
    assert words in refused(parse_mount, spec)


def test_tmpfs_options():
    mp = parse_tmpfs("/run", "rw,exec,size=64m,mode=1777,uid=1000")
    assert mp.oci()["options"] == ["noexec", "nosuid", "nodev", "exec", "size=64m", "mode=1777", "uid=1000"]
    assert not parse_tmpfs("/run", "ro").rw
    assert "invalid tmpfs option 'colour=red'" in refused(parse_tmpfs, "/run", "colour=red")
    assert "a size is bytes" in refused(parse_tmpfs, "/run", "size=lots")
    assert "destination can't be '/'" in refused(parse_tmpfs, "/", "")


def test_the_whole_list_in_dockers_order(tmp_path):
    other = [MountPoint("bind", "/shared", source=str(tmp_path)),
             MountPoint("volume", "/v", name="v1", source="/vol/v1", driver="local", anonymous=True),
             MountPoint("tmpfs", "/t")]
    host = {"Binds": [f"{tmp_path}:/a/b", f"{tmp_path}:/v"], "Tmpfs": {"/a": ""}, "VolumesFrom": ["other:ro"]}
    config = {"Volumes": {"/data": {}, "/a/b": {}}}
    got = plan(config, host, {"/image-vol": {}}, lambda ref: other if ref == "other" else [])
    assert [(m.destination, m.type) for m in got] == [
        ("/shared", "bind"), ("/v", "bind"), ("/a", "tmpfs"), ("/image-vol", "volume"), ("/data", "volume"),
        ("/a/b", "bind")]  # a parent before what is mounted in it; a bind wins over an anonymous volume
    shared = got[0]
    assert not shared.rw and shared.mode == "ro" and not shared.copy
    assert all(m.anonymous for m in got if m.type == "volume")


def test_duplicate_mount_points_are_refused(tmp_path):
    for host in ({"Binds": [f"{tmp_path}:/x", f"{tmp_path}:/x/"]},
                 {"Binds": [f"{tmp_path}:/x"], "Mounts": [{"Type": "tmpfs", "Target": "/x"}]},
                 {"Binds": [f"{tmp_path}:/x"], "Tmpfs": {"/x": ""}}):
        assert refused(plan, {}, host, None, lambda ref: []).startswith("Duplicate mount point: /x")


def test_user_mounts_replace_the_engines_and_come_after_their_parents():
    config = {"root": {"path": "/r", "readonly": False},
              "mounts": [{"destination": "/proc"}, {"destination": "/dev"}, {"destination": "/dev/shm"},
                         {"destination": "/etc/hosts"}]}
    mounts.apply(config, [parse_tmpfs("/dev/shm", "size=1m"), MountPoint("bind", "/etc", source="/srv/etc")],
                 readonly_root=True)
    assert [m["destination"] for m in config["mounts"]] == ["/proc", "/dev", "/etc", "/etc/hosts", "/dev/shm"]
    assert config["mounts"][-1]["type"] == "tmpfs" and config["root"]["readonly"]


def test_the_clis_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(volume=["/h:/c:ro", "./rel:/r", "/anon", "name:/n"], tmpfs=["/run:size=1m", "/t"],
                              mount=["type=bind,src=/h,dst=/m,readonly,bind-propagation=rslave"], read_only=True,
                              volumes_from=["db:ro"], volume_driver="")
    body = {"HostConfig": {}}
    mounts_body(args, body)
    host = body["HostConfig"]
    assert host["Binds"] == ["/h:/c:ro", f"{tmp_path}/rel:/r", "name:/n"] and body["Volumes"] == {"/anon": {}}
    assert host["Tmpfs"] == {"/run": "size=1m", "/t": ""} and host["ReadonlyRootfs"]
    assert host["Mounts"] == [{"Type": "bind", "Source": "/h", "Target": "/m", "ReadOnly": True,
                               "BindOptions": {"Propagation": "rslave"}}]
    assert host["VolumesFrom"] == ["db:ro"]
    assert parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1777") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777}}
    assert parse_mount_flag("src=v,dst=/v,volume-nocopy,volume-label=a=b") == {
        "Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}}}
    for spec, words in (("type=bind,src=/h", "target is required"), ("type=bind,colour=red,dst=/x", "unexpected key"),
                        ("type=bind,dst=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
                        ("type=bind,dst", "must be a key=value pair")):
        with pytest.raises(ValueError, match="for \"--mount\" flag") as e:
            parse_mount_flag(spec)
        assert words in str(e.value)


def test_a_named_volume_may_be_read_only_and_name_its_driver():
    assert not parse_mount({"Type": "volume", "Source": "vv", "Target": "/x", "ReadOnly": True}).rw
    # the volume store accepts the driver or refuses it (local only) when it creates the volume
    assert parse_mount({"Type": "volume", "Source": "vv", "Target": "/x",
                        "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}}).driver == "nfs"


def test_the_python_clients_volumes_in_docker_pys_forms():
    from minicontainer.client import volume_binds

    assert volume_binds({"/src": {"bind": "/dst", "mode": "ro"}, "vol": {"bind": "/v"}, "/a": "/b",
                         "/p": {"bind": "/q", "ro": False, "propagation": "rshared"}}) == \
        ["/src:/dst:ro", "vol:/v:rw", "/a:/b:rw", "/p:/q:rw,rshared"]
    assert volume_binds(["/src:/dst:ro", "/anon"]) == ["/src:/dst:ro", "/anon"] and volume_binds(None) == []
