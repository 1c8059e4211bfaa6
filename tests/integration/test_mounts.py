"""A container's mounts, for real: binds, tmpfs, a read-only root, volumes, --volumes-from, and bad
input refused before anything is made.  Clients: our CLI and the stock docker CLI."""

from __future__ import annotations

import json
import os
import subprocess

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
