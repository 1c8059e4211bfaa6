"""Images made here: ``commit`` (a container's changes as a layer) and ``build`` (a Dockerfile), through
the real daemon, with our CLI, the docker CLI and the reference tools (skopeo, umoci) as readers."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from test_engine import engine  # noqa: F401 - the fixture: a daemon of the test's own, with busybox

pytestmark = pytest.mark.root


def test_a_committed_container_runs_with_its_changes(engine):  # noqa: F811
    made = engine.mc("run", "--name", "changer", "busybox", "sh", "-c",
                     "echo made > /made.txt; rm /bin/ls; mkdir -p /srv/data")
    assert made.returncode == 0, made.stderr
    assert engine.mc("diff", "changer").stdout.split("\n")[:2] == ["C /bin", "D /bin/ls"]
    committed = engine.mc("commit", "-m", "my change", "-c", "ENV GREETING=hi", "changer", "changed:1")
    assert committed.returncode == 0 and committed.stdout.startswith("sha256:"), committed.stderr
    run = engine.mc("run", "--rm", "changed:1", "sh", "-c", "cat /made.txt; echo $GREETING; test -d /srv/data; "
                    "test -e /bin/ls || echo ls is gone")
    assert run.stdout == "made\nhi\nls is gone\n", run.stderr
    history = engine.mc("history", "--no-trunc", "changed:1").stdout.splitlines()
    assert "sh -c echo made > /made.txt" in history[1] and "my change" in history[1]
    config = json.loads(engine.mc("image", "inspect", "changed:1").stdout)[0]["Config"]
    assert config["Cmd"] == ["sh", "-c", "echo made > /made.txt; rm /bin/ls; mkdir -p /srv/data"]  # as Docker
    # nothing changed: no new layer, an empty_layer history entry
    assert engine.mc("run", "--name", "idle", "busybox", "true").returncode == 0
    same = engine.mc("commit", "idle")
    layers = json.loads(engine.mc("image", "inspect", same.stdout.strip()).stdout)[0]["RootFS"]["Layers"]
    base = json.loads(engine.mc("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
    assert layers == base
    assert engine.mc("rm", "changer", "idle").returncode == 0


def test_commit_errors_and_a_running_container(engine):  # noqa: F811
    assert engine.mc("commit", "nosuch").stderr == "Error response from daemon: No such container: nosuch\n"
    engine.mc("run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo live > /live; sleep 30")
    paused = engine.mc("commit", "busy")
    assert paused.returncode == 1 and "stop it first, or commit without pausing" in paused.stderr
    bad = engine.mc("commit", "-c", "FROM busybox", "busy")
    assert "FROM is not a valid change command" in bad.stderr
    assert engine.mc("commit", "--pause=false", "busy", "live:1").returncode == 0
    assert engine.mc("run", "--rm", "live:1", "cat", "/live").stdout == "live\n"
    assert engine.mc("rm", "-f", "busy").returncode == 0


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_docker_commit(engine):  # noqa: F811
    assert engine.docker("run", "--name", "dk", "busybox", "sh", "-c", "echo dk > /dk.txt").returncode == 0
    committed = engine.docker("commit", "-a", "Jane <jane@example.com>", "-c", 'CMD ["cat", "/dk.txt"]', "dk", "dk:1")
    assert committed.returncode == 0 and committed.stdout.startswith("sha256:"), committed.stderr
    assert engine.docker("run", "--rm", "dk:1").stdout == "dk\n"
    assert engine.docker("inspect", "-f", "{{.Author}}", "dk:1").stdout.strip() == "Jane <jane@example.com>"
    assert engine.docker("rm", "dk").returncode == 0


@pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("umoci") is None,
                    reason="skopeo or umoci is not on PATH (`make test` installs them)")
def test_skopeo_and_umoci_read_a_committed_image(engine, tmp_path):  # noqa: F811
    engine.mc("run", "--name", "src", "busybox", "sh", "-c", "echo oci > /oci.txt; rm /bin/ls")
    assert engine.mc("commit", "src", "oci:1").returncode == 0
    archive = tmp_path / "oci.tar"
    assert engine.mc("save", "--format", "oci-archive", "-o", str(archive), "oci:1").returncode == 0
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"oci:{layout}:copied"], check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:copied", str(bundle)], check=True, capture_output=True)
    assert (bundle / "rootfs" / "oci.txt").read_text() == "oci\n"
    assert (bundle / "rootfs" / "bin" / "sh").exists() and not (bundle / "rootfs" / "bin" / "ls").exists()
    assert engine.mc("rm", "src").returncode == 0
