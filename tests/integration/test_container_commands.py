"""The rest of docker's container and system commands, through the real daemon: fields refused rather
than ignored, cp and the archive API, rename, system prune and df, images filters.  Clients: our CLI,
the stock docker CLI and docker-py."""

from __future__ import annotations

import json
import os
import time

import pytest
from test_engine import engine  # noqa: F401 - the fixture, by name

pytestmark = pytest.mark.root


def test_options_the_engine_does_not_honour_are_refused_not_ignored(engine):  # noqa: F811
    for flags, field in ((["--link", "db:db"], "HostConfig.Links"), (["--storage-opt", "size=1G"], "HostConfig.StorageOpt"),
                         (["--cpu-rt-runtime", "1000"], "HostConfig.CpuRealtimeRuntime")):
        r = engine.docker("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125, (flags, r.stderr)
        assert f"Error response from daemon: {field}=" in r.stderr and "not supported by this engine yet" in r.stderr
        assert "Unable to find image" not in r.stderr  # a 400 before the image's look-up: no pull
    assert engine.docker("ps", "-aq").stdout == ""   # nothing was created
    # the defaults all pass, and inspect shows every field as Docker does
    cid = engine.docker("create", "-m", "64m", "busybox", "true").stdout.strip()
    host = json.loads(engine.docker("inspect", cid).stdout)[0]["HostConfig"]
    assert host["Memory"] == 64 << 20 and host["CpuShares"] == 0 and host["CpusetCpus"] == ""
    assert host["PidMode"] == "" and host["IpcMode"] == "private" and host["GroupAdd"] is None
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}} and host["NetworkMode"] == "bridge"
    r = engine.mc("inspect", "--format", "{{.HostConfig.ShmSize}}", cid)
    assert r.stdout.strip() == str(64 << 20)


def _docker_py(engine):  # noqa: F811
    import docker

    return docker.DockerClient(base_url=engine.env["DOCKER_HOST"], version="1.45", timeout=30)


def test_cp_in_and_out_with_the_docker_cli(engine, tmp_path):  # noqa: F811
    here = tmp_path / "here"
    (here / "sub").mkdir(parents=True)
    (here / "sub" / "a.txt").write_text("hello from the host\n")
    (here / "link").symlink_to("sub/a.txt")
    cid = engine.docker("create", "busybox", "sleep", "30").stdout.strip()
    # into a stopped container (its layers are mounted for the copy), then out of it running
    r = engine.docker("cp", str(here), f"{cid}:/tmp/")
    assert r.returncode == 0, r.stderr
    assert engine.docker("start", cid).returncode == 0
    back = tmp_path / "back"
    r = engine.docker("cp", f"{cid}:/tmp/here", str(back))
    assert r.returncode == 0, r.stderr
    assert (back / "sub" / "a.txt").read_text() == "hello from the host\n"
    assert os.readlink(back / "link") == "sub/a.txt"  # a link is copied as a link
    r = engine.docker("cp", f"{cid}:/etc/passwd", str(tmp_path / "passwd"))
    assert r.returncode == 0 and (tmp_path / "passwd").read_text().startswith("root:")
    r = engine.docker("cp", f"{cid}:/no/such/file", str(tmp_path / "x"))
    assert r.returncode == 1 and "Could not find the file /no/such/file in container" in r.stderr
    r = engine.docker("cp", str(here / "sub" / "a.txt"), f"{cid}:/etc/passwd/x")
    assert r.returncode == 1
    events = engine.docker("events", "--since", f"{time.time() - 600:.3f}", "--until", f"{time.time():.3f}",
                           "--filter", "type=container", "--format", "{{.Action}}").stdout.split()
    assert "extract-to-dir" in events and "archive-path" in events, events
    engine.docker("rm", "-f", cid)


def test_archive_api_with_docker_py(engine):  # noqa: F811
    import io
    import tarfile

    client = _docker_py(engine)
    c = client.containers.create("busybox", "true")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:  # compressed: the daemon finds out itself
        info = tarfile.TarInfo("greeting")
        info.size, info.mode, info.uid = 3, 0o640, 1234
        tar.addfile(info, io.BytesIO(b"hi\n"))
    assert c.put_archive("/root", data.getvalue()) is True
    chunks, stat = c.get_archive("/root/greeting")
    assert stat["name"] == "greeting" and stat["size"] == 3 and stat["mode"] == 0o640
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.getmember("greeting")
        assert tar.extractfile(member).read() == b"hi\n" and member.uid == 1234
    _, stat = c.get_archive("/bin/sh")  # a symlink in busybox: described, with its target
    assert stat["mode"] & (1 << 27) and stat["linkTarget"].startswith("/")
    _, stat = c.get_archive("/etc")
    assert stat["mode"] & (1 << 31)
    import docker

    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/nothing/here")
    with pytest.raises(docker.errors.APIError) as e:
        c.put_archive("/etc/passwd", data.getvalue())
    assert e.value.status_code == 400 and "extraction point is not a directory" in str(e.value)
    c.remove()


def test_a_symlink_swapped_in_during_copies_never_reaches_the_host(engine, tmp_path):  # noqa: F811
    """CVE-2018-15664: the container swaps a directory for a symlink to a host path, again and again,
    while we copy out of and into it.  What we copy is always the container's own."""
    import io
    import tarfile
    host_dir = tmp_path / "host-secrets"
    host_dir.mkdir()
    (host_dir / "secret").write_text("HOST\n")
    client = _docker_py(engine)
    swap = (f"mkdir -p /tmp/d; echo container > /tmp/d/secret; "
            f"while true; do mv /tmp/d /tmp/real; ln -s {host_dir} /tmp/d; rm /tmp/d; mv /tmp/real /tmp/d; done")
    c = client.containers.run("busybox", ["sh", "-c", swap], detach=True)
    try:
        time.sleep(0.3)
        upload = io.BytesIO()
        with tarfile.open(fileobj=upload, mode="w") as tar:
            info = tarfile.TarInfo("planted")
            info.size = 8
            tar.addfile(info, io.BytesIO(b"planted\n"))
        seen, failures, deadline = set(), 0, time.monotonic() + 6
        while time.monotonic() < deadline:
            try:
                chunks, _ = c.get_archive("/tmp/d/secret")
                with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                    seen.add(tar.extractfile("secret").read())
            except Exception:  # noqa: BLE001 - a copy that fails (not found, changed) is allowed
                failures += 1
            try:
                c.put_archive("/tmp/d", upload.getvalue())
            except Exception:  # noqa: BLE001 - as above
                failures += 1
        assert b"HOST\n" not in seen and b"container\n" in seen
        assert failures, "the swap never caught a copy midway: the test proves nothing"  # ~1000 of them
        assert sorted(os.listdir(host_dir)) == ["secret"]  # nothing planted on the host
    finally:
        c.remove(force=True)


def test_cp_with_our_cli(engine, tmp_path):  # noqa: F811
    (tmp_path / "notes.txt").write_text("kept\n")
    cid = engine.mc("create", "--name", "box", "busybox", "true").stdout.strip()
    r = engine.mc("cp", str(tmp_path / "notes.txt"), "box:/tmp/renamed.txt")  # a new name in the container
    assert r.returncode == 0 and r.stderr.startswith("Successfully copied"), r.stderr
    r = engine.mc("cp", str(tmp_path / "notes.txt"), "box:/etc/")                # into a directory
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    out.mkdir()
    assert engine.mc("container", "cp", "-q", "box:/tmp/renamed.txt", str(out)).returncode == 0
    assert engine.mc("cp", "box:/etc/notes.txt", str(out / "again.txt")).returncode == 0
    assert (out / "renamed.txt").read_text() == "kept\n" and (out / "again.txt").read_text() == "kept\n"
    r = engine.mc("cp", f"{cid[:12]}:/nowhere", str(out))
    assert r.returncode == 1 and "Could not find the file /nowhere in container" in r.stderr
    r = engine.mc("cp", str(tmp_path / "missing"), "box:/tmp")
    assert r.returncode == 1 and "no such file or directory" in r.stderr


def test_rename_and_the_container_subcommands(engine):  # noqa: F811
    engine.mc("create", "--name", "old", "busybox", "true")
    engine.mc("create", "--name", "other", "busybox", "true")
    assert engine.mc("rename", "old", "new").returncode == 0
    assert engine.mc("container", "ls", "-a", "--format", "{{.Names}}").stdout.split() == ["other", "new"]
    r = engine.mc("rename", "new", "other")
    assert r.returncode == 1 and 'The container name "/other" is already in use' in r.stderr
    r = engine.docker("rename", "new", "bad name!")
    assert r.returncode == 1 and "Invalid container name (bad name!)" in r.stderr
    assert engine.docker("rename", "new", "newer").returncode == 0      # the docker CLI too
    assert engine.docker("container", "inspect", "-f", "{{.Name}}", "newer").stdout.strip() == "/newer"
    assert engine.mc("container", "rm", "newer", "other").returncode == 0
    events = engine.docker("events", "--since", f"{time.time() - 600:.3f}", "--until", f"{time.time():.3f}",
                           "--filter", "event=rename",
                           "--format", "{{.Actor.Attributes.oldName}} {{.Actor.Attributes.name}}")
    assert events.stdout.splitlines() == ["/old new", "/new newer"], events.stderr
    r = engine.mc("run")
    assert r.returncode == 1 and "'minicontainer run' requires at least 1 argument" in r.stderr


def test_images_filtered_by_reference_as_docker_filters_them(engine):  # noqa: F811
    assert engine.mc("tag", "busybox", "mine/tool:1.0").returncode == 0
    busybox_id = engine.mc("images", "-q", "busybox").stdout.split()
    assert len(busybox_id) == 1 and busybox_id == engine.mc("images", "-q", "mine/tool").stdout.split()
    rows = engine.mc("images", "mine/tool:1.0").stdout.splitlines()
    assert len(rows) == 2 and rows[1].split()[:2] == ["mine/tool", "1.0"]
    assert engine.mc("images", "mine/tool:2.0").stdout.splitlines()[1:] == []
    assert engine.mc("images", "-q", "nothing-like-it").stdout == ""
    assert engine.docker("images", "-q", "docker.io/mine/tool").stdout.split() == busybox_id  # the docker CLI's way


def test_system_df_and_prune_with_both_clients(engine):  # noqa: F811
    engine.mc("run", "--name", "done", "busybox", "sh", "-c", "echo data > /written")
    keep = engine.mc("run", "-d", "--name", "running", "busybox", "sleep", "30").stdout.strip()
    df = engine.docker("system", "df")
    assert df.returncode == 0, df.stderr
    lines = {line.split()[0]: line.split() for line in df.stdout.splitlines()[1:]}
    assert lines["Images"][1:3] == ["1", "1"] and lines["Containers"][1:3] == ["2", "1"]
    ours = engine.mc("system", "df").stdout.splitlines()
    assert ours[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"] and ours[2].split()[1:3] == ["2", "1"]
    r = engine.docker("system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert "Deleted Containers:" in r.stdout and "Total reclaimed space:" in r.stdout
    assert engine.mc("ps", "-aq", "--no-trunc").stdout.split() == [keep]  # the running one stays
    engine.mc("rm", "-f", "running")
    r = engine.mc("system", "prune", "-a", "-f")
    assert r.returncode == 0, r.stderr
    assert "untagged: busybox:latest" in r.stdout and engine.mc("images", "-q").stdout == ""
    r = engine.mc("system", "prune", "-f", "--filter", "until=soon")
    assert r.returncode == 1 and "invalid until value" in r.stderr


def test_explain_a_learner_can_read(engine):  # noqa: F811
    r = engine.mc("run", "--rm", "--explain", "busybox", "echo", "hi")
    assert r.returncode == 0 and r.stdout == "hi\n"
    story = r.stderr.splitlines()
    assert story[1].startswith("+    0.00 ms  daemon  look up(busybox in the local image store)")  # first the image
    assert any("exit(PID 1 of" in line for line in story) and any("umount2(merged" in line for line in story)
    assert all(len(line) <= 100 for line in story), [line for line in story if len(line) > 100]
    assert sum("PR_CAPBSET_DROP" in line for line in story) == 1
    engine.mc("create", "--name", "later", "busybox", "echo", "there")
    r = engine.mc("start", "-a", "--explain", "later")
    assert r.returncode == 0 and r.stdout == "there\n"
    assert "pivot_root(., .)" in r.stderr and "exit(PID 1 of later)" in r.stderr
