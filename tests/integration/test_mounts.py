"""A container's mounts, for real: binds, tmpfs, a read-only root, volumes, --volumes-from, and bad
input refused before anything is made.  Clients: our CLI and the stock docker CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from test_engine import engine  # noqa: F401 - the fixture, by name

pytestmark = pytest.mark.root


def _inspect(engine, ref: str) -> dict:  # noqa: F811
    r = engine.mc("inspect", ref)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def test_a_bind_mount_shares_files_with_the_host_and_outlives_the_container(engine, tmp_path):  # noqa: F811
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("hello\n")
    r = engine.mc("run", "--name", "writer", "-v", f"{host_dir}:/data", "busybox", "sh", "-c",
                  "cat /data/from-host; echo written > /data/from-container")
    assert r.returncode == 0 and r.stdout == "hello\n", r.stderr
    mounts = _inspect(engine, "writer")["Mounts"]
    assert mounts == [{"Type": "bind", "Source": str(host_dir), "Destination": "/data", "Mode": "", "RW": True,
                       "Propagation": "rprivate"}]
    assert _inspect(engine, "writer")["HostConfig"]["Binds"] == [f"{host_dir}:/data"]
    assert engine.mc("rm", "writer").returncode == 0
    assert (host_dir / "from-container").read_text() == "written\n"  # the data survives the container


def test_a_read_only_bind_refuses_writes_and_so_does_a_mount_beneath_it(engine, tmp_path):  # noqa: F811
    source = tmp_path / "ro"
    (source / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(source / "sub")], check=True)
    try:
        r = engine.mc("run", "--rm", "-v", f"{source}:/data:ro", "busybox", "sh", "-c",
                      "touch /data/x; touch /data/sub/x; grep ' /data' /proc/mounts")
        assert r.stderr.count("Read-only file system") == 2, r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 2 and all(line.split()[3].startswith("ro,") for line in lines), r.stdout
        assert not (source / "x").exists() and not (source / "sub" / "x").exists()
    finally:
        subprocess.run(["umount", str(source / "sub")], check=True)


def test_tmpfs_and_a_read_only_root(engine):  # noqa: F811
    r = engine.mc("run", "--rm", "--read-only", "--tmpfs", "/run:size=1m,mode=1770", "--mount",
                  "type=tmpfs,dst=/scratch,tmpfs-size=2m", "busybox", "sh", "-c",
                  "grep -E ' /(run|scratch) ' /proc/mounts; touch /run/ok /scratch/ok && echo writable; touch /root-file")
    assert "touch: /root-file: Read-only file system" in r.stderr, r.stderr
    lines = dict(line.split()[1:4:2] for line in r.stdout.splitlines() if line.startswith("tmpfs"))
    assert "size=1024k" in lines["/run"] and "mode=1770" in lines["/run"] and "noexec" in lines["/run"]
    assert "size=2048k" in lines["/scratch"]
    assert "writable" in r.stdout


def test_bad_mounts_are_refused_before_anything_is_made(engine, tmp_path):  # noqa: F811
    cases = [
        (["-v", f"{tmp_path}/typo:/data"], f"bind source path does not exist: {tmp_path}/typo"),
        (["--mount", f"type=bind,src={tmp_path}/typo,dst=/data"],
         f'invalid mount config for type "bind": bind source path does not exist: {tmp_path}/typo'),
        (["-v", f"{tmp_path}:data"], "mount path must be absolute"),
        (["-v", f"{tmp_path}:/"], "destination can't be '/'"),
        (["-v", f"{tmp_path}:/data:rx"], "invalid mode: rx"),
        (["-v", f"{tmp_path}:/data:z"], "SELinux relabel"),
        (["-v", f"{tmp_path}:/data", "--tmpfs", "/data"], "Duplicate mount point: /data"),
        (["--tmpfs", "/run:colour=red"], "invalid tmpfs option 'colour=red'"),
        (["--volumes-from", "nobody-here"], "No such container: nobody-here"),
    ]
    for flags, words in cases:
        r = engine.mc("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125 and words in r.stderr, (flags, r.stderr)
    assert engine.mc("ps", "-aq").stdout == ""  # no container,
    assert os.listdir(engine.root / "data" / "containers") == []  # no directory of one,
    with open("/proc/self/mountinfo") as f:
        assert str(engine.root / "data") not in f.read()  # and nothing mounted


def test_the_docker_cli_binds_and_mounts(engine, tmp_path):  # noqa: F811
    (tmp_path / "f").write_text("from the host\n")
    r = engine.docker("run", "--rm", "-v", f"{tmp_path}:/a:ro", "--mount", f"type=bind,src={tmp_path},dst=/b",
                      "busybox", "sh", "-c", "cat /a/f /b/f; touch /a/x 2>&1; touch /b/y")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from the host\nfrom the host\ntouch: /a/x: Read-only file system\n"
    assert (tmp_path / "y").exists()
    cid = engine.docker("create", "--mount", f"type=bind,src={tmp_path},dst=/b,readonly", "--read-only",
                        "--tmpfs", "/run", "busybox", "true").stdout.strip()
    info = json.loads(engine.docker("inspect", cid).stdout)[0]
    assert info["Mounts"] == [{"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "Mode": "", "RW": False,
                               "Propagation": "rprivate"}]
    assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["Tmpfs"] == {"/run": ""}
    r = engine.docker("run", "--rm", "-v", f"{tmp_path}/nope:/x", "busybox", "true")
    assert r.returncode == 125 and "bind source path does not exist" in r.stderr


def _volumes(engine) -> list[str]:  # noqa: F811
    root = engine.root / "data" / "volumes"
    return sorted(p.name for p in root.iterdir() if (p / "_data").is_dir()) if root.exists() else []


def test_a_named_volume_outlives_its_container_and_is_filled_from_the_image_once(engine):  # noqa: F811
    r = engine.mc("run", "--name", "first", "-v", "etcvol:/etc", "busybox", "sh", "-c",
                  "cat /etc/passwd | head -1; echo mine > /etc/mine; rm /etc/group")
    assert r.returncode == 0 and r.stdout.startswith("root:"), r.stderr  # the image's /etc, copied in
    mounts = _inspect(engine, "first")["Mounts"]
    assert mounts == [{"Type": "volume", "Name": "etcvol", "Source": str(engine.root / "data/volumes/etcvol/_data"),
                       "Destination": "/etc", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}]
    assert engine.mc("rm", "-v", "first").returncode == 0  # -v: anonymous volumes only; a named one stays
    assert _volumes(engine) == ["etcvol"]
    r = engine.mc("run", "--rm", "--mount", "type=volume,src=etcvol,dst=/data", "busybox", "ls", "/data")
    names = r.stdout.split()
    assert "mine" in names and "passwd" in names and "group" not in names  # filled once, never again
    r = engine.mc("run", "--rm", "-v", "fresh:/etc:nocopy", "busybox", "ls", "/etc")
    assert "passwd" not in r.stdout.split(), r.stdout  # nocopy: left empty


def test_anonymous_volumes_go_with_rm_v_and_run_rm(engine):  # noqa: F811
    cid = engine.mc("create", "-v", "/cache", "-v", "keep:/keep", "busybox", "true").stdout.strip()
    info = _inspect(engine, cid)
    anonymous = next(m["Name"] for m in info["Mounts"] if m["Destination"] == "/cache")
    assert len(anonymous) == 64 and info["Config"]["Volumes"] == {"/cache": {}}
    assert _volumes(engine) == sorted([anonymous, "keep"])
    assert engine.mc("rm", "-v", cid).returncode == 0
    assert _volumes(engine) == ["keep"]
    r = engine.mc("run", "--rm", "-v", "/scratch", "busybox", "sh", "-c", "echo x > /scratch/x")
    assert r.returncode == 0, r.stderr
    assert _volumes(engine) == ["keep"]  # run --rm took its anonymous volume along


def test_volumes_from_another_container_with_a_read_only_override(engine, tmp_path):  # noqa: F811
    assert engine.mc("create", "--name", "store", "-v", "shared:/shared", "-v", f"{tmp_path}:/host",
                     "busybox", "true").returncode == 0
    r = engine.mc("run", "--rm", "--volumes-from", "store", "busybox", "sh", "-c", "echo hi > /shared/f; touch /host/h")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "h").exists()
    r = engine.mc("run", "--name", "reader", "--volumes-from", "store:ro", "busybox", "sh", "-c",
                  "cat /shared/f; touch /shared/g")
    assert r.stdout == "hi\n" and "Read-only file system" in r.stderr
    info = _inspect(engine, "reader")
    assert info["HostConfig"]["VolumesFrom"] == ["store:ro"]
    assert sorted((m["Destination"], m["RW"]) for m in info["Mounts"]) == [("/host", False), ("/shared", False)]


def test_a_dockerfile_volume_is_an_anonymous_volume_filled_from_the_image(engine, tmp_path):  # noqa: F811
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN mkdir /data && echo seeded > /data/seed\nVOLUME /data\n"
                                        "RUN echo lost > /data/after\n")
    r = engine.mc("build", "-t", "withvolume", str(context))
    assert r.returncode == 0, r.stdout + r.stderr
    config = json.loads(engine.mc("image", "inspect", "withvolume").stdout)[0]["Config"]
    assert config["Volumes"] == {"/data": {}}
    assert _volumes(engine) == []  # the build's steps took their anonymous volumes along
    r = engine.mc("run", "--rm", "withvolume", "ls", "/data")
    assert r.stdout.split() == ["seed"]  # as in Docker: what a step wrote into a volume after VOLUME is gone
    assert _volumes(engine) == []


def test_bad_volumes_are_refused_before_anything_is_made(engine):  # noqa: F811
    for flags, words in ((["-v", "my/vol:/x"], '"my/vol" includes invalid characters for a local volume name'),
                         (["--mount", "type=volume,dst=/x,readonly"], "must not set ReadOnly mode when using anonymous"),
                         (["-v", "good:/x", "-v", "/tmp:/x"], "Duplicate mount point: /x"),
                         (["-v", "good:/x", "--mount", "type=volume,src=other,dst=/y,volume-opt=colour=red"],
                          "colour")):
        r = engine.mc("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125 and words in r.stderr, (flags, r.stderr)
    assert engine.mc("ps", "-aq").stdout == "" and _volumes(engine) == []


def test_the_docker_cli_with_volumes(engine):  # noqa: F811
    r = engine.docker("run", "--rm", "-v", "dvol:/data", "busybox", "sh", "-c", "echo from-docker > /data/f")
    assert r.returncode == 0, r.stderr
    r = engine.docker("run", "--rm", "--mount", "type=volume,src=dvol,dst=/d,readonly", "busybox", "sh", "-c",
                      "cat /d/f; touch /d/g")
    assert r.stdout == "from-docker\n" and "Read-only file system" in r.stderr
    events = engine.docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "type=volume",
                           "--format", "{{.Action}} {{.Actor.ID}}").stdout.split("\n")
    assert ["create dvol", "mount dvol", "unmount dvol", "mount dvol", "unmount dvol"] == \
        [e for e in events if e.endswith(" dvol")]


def test_the_python_clients_volumes_and_mounts(engine, tmp_path):  # noqa: F811
    from minicontainer.client import Client

    client = Client(engine.env["DOCKER_HOST"].removeprefix("unix://"))
    (tmp_path / "f").write_text("host file\n")
    out = client.containers.run("busybox", ["sh", "-c", "cat /ro/f; echo v > /vol/v; grep -c ' /t ' /proc/mounts"],
                                volumes={str(tmp_path): {"bind": "/ro", "mode": "ro"}, "pyvol": {"bind": "/vol"}},
                                mounts=[{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20}}],
                                read_only=True, remove=True)
    assert out == b"host file\n1\n"
    box = client.containers.create("busybox", "true", volumes=["/anon"], tmpfs=["/run:size=1m"])
    assert box.attrs["HostConfig"]["Tmpfs"] == {"/run": "size=1m"} and box.attrs["Mounts"][0]["Destination"] == "/anon"
    box.remove(v=True)
    assert _volumes(engine) == ["pyvol"]
    # docker-py itself, as a learner's script would use it
    import docker

    dpy = docker.DockerClient(base_url=engine.env["DOCKER_HOST"], version="1.45", timeout=30)
    out = dpy.containers.run("busybox", "cat /vol/v", volumes=["pyvol:/vol:ro"], remove=True,
                             mounts=[docker.types.Mount("/m", str(tmp_path), type="bind", read_only=True)])
    assert out == b"v\n"


def test_a_containers_mounts_survive_a_restart_of_the_daemon(engine, tmp_path):  # noqa: F811
    assert engine.mc("create", "--name", "later", "-v", f"{tmp_path}:/h", "-v", "/anon", "--tmpfs", "/t",
                     "busybox", "sh", "-c", "touch /h/ran; grep -c ' /t \\| /anon ' /proc/mounts").returncode == 0
    engine.restart()
    r = engine.mc("start", "-a", "later")
    assert r.returncode == 0 and r.stdout == "2\n", r.stderr
    assert (tmp_path / "ran").exists()
    anonymous = _volumes(engine)
    assert len(anonymous) == 1
    r = engine.mc("volume", "rm", anonymous[0]) if engine.mc("volume", "--help").returncode == 0 else None
    assert r is None or "volume is in use" in r.stderr  # its container still holds it, after the restart too


def test_volume_driver_names_the_driver_of_the_volumes_a_container_creates(engine):  # noqa: F811
    r = engine.mc("create", "--volume-driver", "local", "-v", "/data", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert _inspect(engine, r.stdout.strip())["HostConfig"]["VolumeDriver"] == "local"
    r = engine.mc("create", "--volume-driver", "convoy", "-v", "/data", "-v", "first:/first", "busybox", "true")
    assert r.returncode != 0 and 'plugin "convoy" not found' in r.stderr, r.stderr
    assert len(engine.mc("ps", "-aq").stdout.split()) == 1 and len(_volumes(engine)) == 1  # nothing more made


def test_a_volume_with_mount_options_stays_mounted_for_its_users_after_a_daemon_crash(engine):  # noqa: F811
    assert engine.mc("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
                     "ram").returncode == 0
    for name in ("one", "two"):
        assert engine.mc("run", "-d", "--name", name, "-v", "ram:/ram", "busybox", "sleep", "60").returncode == 0
    engine.crash()  # the containers run on; a new daemon finds them, and the volume mounted for them
    engine.restart()
    assert engine.mc("stop", "-t", "0", "one").returncode == 0
    r = engine.mc("exec", "two", "sh", "-c", "grep -c ' /ram tmpfs' /proc/mounts; echo x > /ram/x && echo ok")
    assert r.stdout == "1\nok\n", r.stderr
    data = engine.root / "data" / "volumes" / "ram" / "_data"
    with open("/proc/self/mountinfo") as f:
        assert f" {data} " in f.read()  # still mounted on the host side for "two"
    assert engine.mc("rm", "-f", "two").returncode == 0
    with open("/proc/self/mountinfo") as f:
        assert f" {data} " not in f.read()  # after its last user, unmounted


def test_cp_reaches_a_containers_volumes_and_binds_stopped_or_running(engine, tmp_path):  # noqa: F811
    (tmp_path / "bound").mkdir()
    (tmp_path / "in.txt").write_text("copied in\n")
    cid = engine.mc("create", "-v", "/vol", "-v", f"{tmp_path / 'bound'}:/bound:ro", "busybox", "sh", "-c",
                    "cat /vol/in.txt; echo out > /vol/out.txt; sleep 30").stdout.strip()
    assert engine.mc("cp", str(tmp_path / "in.txt"), f"{cid}:/vol/").returncode == 0  # stopped: into its volume
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path / "bound") not in f.read()  # the copy's mounts are gone again
    assert engine.mc("start", cid).returncode == 0
    time.sleep(0.5)
    assert engine.mc("logs", cid).stdout == "copied in\n"
    r = engine.mc("cp", f"{cid}:/vol/out.txt", str(tmp_path / "out.txt"))  # running: out of its volume
    assert r.returncode == 0 and (tmp_path / "out.txt").read_text() == "out\n", r.stderr
    r = engine.mc("cp", str(tmp_path / "in.txt"), f"{cid}:/bound/")  # a read-only bind stays read-only
    assert r.returncode != 0 and not (tmp_path / "bound" / "in.txt").exists()
    assert engine.mc("rm", "-f", cid).returncode == 0


def test_a_failed_start_gives_its_volumes_back(engine):  # noqa: F811
    assert engine.mc("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "ram").returncode == 0
    r = engine.mc("run", "--name", "broken", "-v", "ram:/ram", "busybox", "no-such-program")
    assert r.returncode == 127, r.stderr
    with open("/proc/self/mountinfo") as f:
        assert "/volumes/ram/_data" not in f.read()  # its mount went with the failed start
    r = engine.mc("run", "--rm", "-v", "ram:/ram", "busybox", "sh", "-c", "grep -c ' /ram tmpfs' /proc/mounts")
    assert r.stdout == "1\n", r.stderr  # and comes back for the next


def test_a_bind_source_removed_after_the_create_fails_the_start_clearly(engine, tmp_path):  # noqa: F811
    source = tmp_path / "gone"
    source.mkdir()
    cid = engine.mc("create", "-v", f"{source}:/data", "busybox", "true").stdout.strip()
    source.rmdir()
    r = engine.mc("start", "-a", cid)
    assert r.returncode == 1 and f"bind source path does not exist: {source}" in r.stderr, r.stderr
    r = engine.mc("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/data", "busybox", "true")
    assert r.returncode == 0, r.stderr  # nothing stays mounted or held from the failed start


def test_bind_propagation_rshared_lets_the_hosts_later_mounts_in_and_rprivate_does_not(engine, tmp_path):  # noqa: F811
    source = tmp_path / "propagated"
    (source / "later").mkdir(parents=True)
    # The source is its own mount, first private: a bind asking rshared of it is refused, as Docker does
    subprocess.run(["mount", "--bind", str(source), str(source)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(source)], check=True)
        r = engine.mc("run", "--rm", "-v", f"{source}:/data:rshared", "busybox", "true")
        assert r.returncode != 0 and f"path {source} is mounted on {source} but it is not a shared mount" in r.stderr
        subprocess.run(["mount", "--make-shared", str(source)], check=True)
        for name, mode in (("sharing", ":rshared"), ("private", "")):
            r = engine.mc("run", "-d", "--name", name, "-v", f"{source}:/data{mode}", "busybox", "sleep", "60")
            assert r.returncode == 0, r.stderr
        assert _inspect(engine, "sharing")["Mounts"][0]["Propagation"] == "rshared"
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(source / "later")], check=True)
        try:
            seen = {name: engine.mc("exec", name, "grep", "-c", " /data/later ", "/proc/mounts").stdout.strip()
                    for name in ("sharing", "private")}
            assert seen == {"sharing": "1", "private": "0"}, seen
        finally:
            subprocess.run(["umount", str(source / "later")], check=True)
        engine.mc("rm", "-f", "sharing", "private")
    finally:
        subprocess.run(["umount", "-l", str(source)], check=True)
