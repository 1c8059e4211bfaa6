"""Images made here: ``commit`` (a container's changes as a layer) and ``build`` (a Dockerfile), through
the real daemon, with our CLI, the docker CLI and the reference tools (skopeo, umoci) as readers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

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
    events = engine.mc("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "event=commit")
    assert events.stdout.count("container commit ") == 2 and "imageRef=changed:1" in events.stdout, events.stdout
    assert engine.mc("rm", "changer", "idle").returncode == 0


def test_commit_errors_and_a_running_container(engine):  # noqa: F811
    assert engine.mc("commit", "nosuch").stderr == "Error response from daemon: No such container: nosuch\n"
    engine.mc("run", "-d", "--name", "busy", "busybox", "sh", "-c", "echo live > /live; sleep 30")
    time.sleep(0.3)
    paused = engine.mc("commit", "busy", "live:1")  # frozen while its files are read, then thawed
    assert paused.returncode == 0, paused.stderr
    assert engine.mc("run", "--rm", "live:1", "cat", "/live").stdout == "live\n"
    assert engine.mc("inspect", "-f", "{{.State.Status}}", "busy").stdout.strip() == "running"
    top = engine.mc("top", "busy").stdout
    assert "sleep" in top  # still there, and (thawed) able to be stopped below
    bad = engine.mc("commit", "-c", "FROM busybox", "busy")
    assert bad.stderr == "Error response from daemon: FROM is not a valid change command\n"
    changed = engine.mc("commit", "-c", "HEALTHCHECK --interval=2s CMD cat /live", "-c", 'ENV A="x y"',
                        "-c", "ENTRYPOINT cat", "-c", "WORKDIR srv", "busy", "changes:1")
    assert changed.returncode == 0, changed.stderr
    config = json.loads(engine.mc("image", "inspect", "changes:1").stdout)[0]["Config"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "cat /live"], "Interval": 2_000_000_000}
    assert "A=x y" in config["Env"] and config["Entrypoint"] == ["/bin/sh", "-c", "cat"] and "Cmd" not in config
    assert config["WorkingDir"] == "/srv"
    assert engine.mc("commit", "--pause=false", "busy", "live:2").returncode == 0
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


# --- build ------------------------------------------------------------------------------------------------

COURSE = """\
FROM busybox
ENV GREETING="hello there" APP=/app
WORKDIR $APP
COPY hello.txt ./
RUN echo "$GREETING" > made.txt && rm /bin/ls && mkdir -p /srv/data
CMD ["cat", "/app/made.txt"]
"""


def _context(path, dockerfile: str, **files: str):
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (path / name.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
        (path / name.replace("__", "/")).write_text(text)
    return str(path)


def _history(daemon, image: str) -> list[str]:
    """``CreatedBy|Size`` of each history entry, newest first (GET /images/{name}/history)."""
    from minicontainer.client.api import APIClient

    api = APIClient(daemon.env["DOCKER_HOST"].removeprefix("unix://"), autostart=False)
    return [f"{h['CreatedBy']}|{h['Size']}" for h in api.json("GET", f"/images/{image}/history")]


def _steps(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("Step ", " ---> ", "Removing", "Successfully"))]


def test_the_course_dockerfile_builds_runs_and_caches(engine, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "ctx", COURSE, **{"hello.txt": "hi\n", "secret.key": "no\n", ".dockerignore": "*.key\n"})
    built = engine.mc("build", "-t", "user/app:latest", ctx)
    assert built.returncode == 0, built.stderr
    lines = _steps(built.stdout)
    assert lines[0] == "Step 1/6 : FROM busybox" and lines[1].startswith(" ---> ")
    assert "Step 5/6 : RUN echo \"$GREETING\" > made.txt && rm /bin/ls && mkdir -p /srv/data" in lines
    running = next(line for line in lines if line.startswith(" ---> Running in "))
    assert f"Removing intermediate container {running.split()[-1]}" in lines
    assert lines[-2].startswith("Successfully built ") and lines[-1] == "Successfully tagged user/app:latest"
    assert engine.mc("run", "--rm", "user/app").stdout == "hello there\n"
    seen = engine.mc("run", "--rm", "user/app", "sh", "-c", "pwd; cat hello.txt; test -d /srv/data && echo data; "
                     "test -e /bin/ls || echo no ls; test -e secret.key || echo no secret")
    assert seen.stdout == "/app\nhi\ndata\nno ls\nno secret\n", seen.stderr
    history = _history(engine, "user/app")
    assert history[0] == '/bin/sh -c #(nop)  CMD ["cat" "/app/made.txt"]|0'
    assert history[1].startswith('/bin/sh -c echo "$GREETING" > made.txt') and history[1].endswith("|12")
    assert history[2].startswith("/bin/sh -c #(nop) COPY file:") and history[2].endswith(" in /app/ |3")
    assert history[3] == "/bin/sh -c #(nop) WORKDIR /app|0"
    assert history[4] == "/bin/sh -c #(nop)  ENV GREETING=hello there APP=/app|0"
    assert "IMAGE" in engine.mc("history", "user/app").stdout
    assert "Exited" not in engine.mc("ps", "-a").stdout  # the intermediate container went

    # a rebuild with nothing changed: every step from the cache, the same image
    again = engine.mc("build", "-t", "user/app:latest", ctx)
    assert again.stdout.count(" ---> Using cache") == 5 and " ---> Running in" not in again.stdout
    assert _steps(again.stdout)[-2] == lines[-2]
    # a changed COPY source: the cache holds up to the step before, then every step is done again
    (tmp_path / "ctx" / "hello.txt").write_text("changed\n")
    changed = engine.mc("build", ctx).stdout
    assert changed.count(" ---> Using cache") == 2 and " ---> Running in" in changed
    assert changed.split("Step 4/6")[1].count("Using cache") == 0
    fresh = engine.mc("build", "--no-cache", ctx).stdout
    assert "Using cache" not in fresh and fresh.count(" ---> Running in") == 1


def test_multi_stage_target_and_build_args(engine, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "ctx", """\
ARG BASE=busybox
FROM $BASE AS builder
ARG FLAVOUR=plain
RUN mkdir /out && echo "built $FLAVOUR" > /out/result
FROM busybox AS final
COPY --from=builder /out/result /result
CMD ["cat", "/result"]
""")
    built = engine.mc("build", "--build-arg", "FLAVOUR=spicy", "--build-arg", "UNUSED=1", "-t", "multi", ctx)
    assert built.returncode == 0, built.stderr
    assert "Step 1/7 : ARG BASE=busybox" in built.stdout
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in built.stdout
    assert engine.mc("run", "--rm", "multi").stdout == "built spicy\n"
    history = "\n".join(_history(engine, "multi"))
    assert "|1 FLAVOUR=spicy" not in history  # the final stage has no trace of the first one's RUN
    target = engine.mc("build", "--target", "builder", "--build-arg", "FLAVOUR=spicy", "-t", "stage1", ctx)
    assert target.returncode == 0 and "Step 4/4 : RUN mkdir /out" in target.stdout, target.stderr
    assert engine.mc("run", "--rm", "stage1", "cat", "/out/result").stdout == "built spicy\n"
    run_history = "\n".join(_history(engine, "stage1"))
    assert '|1 FLAVOUR=spicy /bin/sh -c mkdir /out && echo "built $FLAVOUR" > /out/result' in run_history
    nope = engine.mc("build", "--target", "nope", ctx)
    assert nope.returncode == 1 and "failed to reach build target nope" in nope.stderr


def test_build_errors(engine, tmp_path):  # noqa: F811
    bad = engine.mc("build", _context(tmp_path / "bad", "FROM busybox\nRUN true\nFOO bar\n"))
    assert bad.returncode == 1
    assert bad.stderr == "Error response from daemon: Dockerfile parse error line 3: unknown instruction: FOO\n"
    failing = _context(tmp_path / "fail", "FROM busybox\nRUN echo before\nRUN echo failing; exit 3\nRUN echo never\n")
    failed = engine.mc("build", failing)
    assert failed.returncode == 3
    assert failed.stderr == "The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3\n"
    assert "failing\n" in failed.stdout and "never" not in failed.stdout
    # as Docker's: the failed step's container stays for a look (docker ps -a), unless --force-rm
    left = engine.mc("ps", "-aq").stdout.split()
    assert len(left) == 1 and engine.mc("rm", left[0]).returncode == 0
    forced = engine.mc("build", "--force-rm", failing)
    assert forced.returncode == 3 and engine.mc("ps", "-aq").stdout == ""
    missing = engine.mc("build", _context(tmp_path / "missing", "FROM busybox\nCOPY nothere /x\n"))
    assert missing.returncode == 1 and "file not found in build context or excluded by .dockerignore: stat nothere" \
        in missing.stderr
    url = engine.mc("build", _context(tmp_path / "url", "FROM busybox\nADD http://127.0.0.1:1/x /x\n"))
    assert url.returncode == 1 and "ADD from a URL needs the network" in url.stderr


def test_add_unpacks_a_local_archive(engine, tmp_path):  # noqa: F811
    import tarfile

    ctx = tmp_path / "ctx"
    _context(ctx, "FROM busybox\nADD site.tar.gz /srv/\nADD plain.txt /srv/plain.txt\n", **{"plain.txt": "p\n"})
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hi</h1>\n")
    with tarfile.open(ctx / "site.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "site", arcname="site")
    assert engine.mc("build", "-t", "added", str(ctx)).returncode == 0
    shown = engine.mc("run", "--rm", "added", "cat", "/srv/site/index.html", "/srv/plain.txt")
    assert shown.stdout == "<h1>hi</h1>\np\n", shown.stderr


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed on this machine")
def test_docker_build(engine, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "ctx", COURSE, **{"hello.txt": "hi\n"})
    built = subprocess.run(["docker", "build", "-t", "user/redis:latest", ctx], env={**engine.env, "DOCKER_BUILDKIT": "0"},
                           text=True, capture_output=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    lines = _steps(built.stdout)
    assert lines[0] == "Step 1/6 : FROM busybox" and lines[-1] == "Successfully tagged user/redis:latest"
    assert engine.docker("run", "--rm", "user/redis").stdout == "hello there\n"
    quiet = subprocess.run(["docker", "build", "-q", ctx], env={**engine.env, "DOCKER_BUILDKIT": "0"}, text=True,
                           capture_output=True, timeout=120, check=False)
    assert quiet.stdout.strip() == "sha256:" + engine.docker("inspect", "-f", "{{.Id}}", "user/redis").stdout.strip()[7:]


def test_intermediate_images_events_and_the_cache_prune(engine, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "ctx", "FROM busybox\nRUN echo one > /one\nENV A=1\n")
    image_id = engine.mc("build", "-q", "-t", "quiet:1", ctx).stdout.strip()
    assert image_id.startswith("sha256:")
    listed = engine.mc("images", "--no-trunc").stdout
    assert "quiet" in listed and image_id in listed and "<none>" not in listed  # intermediates are hidden...
    everything = engine.mc("images", "-a").stdout
    assert sum("<none>" in line for line in everything.splitlines()) == 1  # ...but for -a: the RUN step's image, parent of the final one
    events = engine.mc("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter", "type=image")
    assert f"image tag {image_id}" in events.stdout and "(name=quiet:1)" in events.stdout, events.stdout
    # the prune forgets the cache: the next build does every step again
    from minicontainer.client.api import APIClient

    api = APIClient(engine.env["DOCKER_HOST"].removeprefix("unix://"), autostart=False)
    pruned = api.json("POST", "/build/prune")
    assert len(pruned["CachesDeleted"]) == 1  # the intermediate one; the tagged image stays
    assert "<none>" not in engine.mc("images", "-a").stdout
    assert "Using cache" not in engine.mc("build", ctx).stdout


def test_image_prune_keeps_the_build_cache_and_rmi_takes_it_along(engine, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "ctx", "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n")
    final = engine.mc("build", "-q", "-t", "chain:1", ctx).stdout.strip()
    intermediates = [line.split()[2] for line in engine.mc("images", "-a").stdout.splitlines()
                     if line.startswith("<none>")]
    assert len(intermediates) == 1  # the first RUN's image, parent of the final one
    # Docker's dangling: untagged *and* nobody's parent -- so neither CLI's prune touches the chain.
    assert engine.mc("images", "-q", "-f", "dangling=true").stdout == ""
    assert engine.docker("images", "-q", "-f", "dangling=true").stdout == ""
    pruned = engine.mc("image", "prune", "-f")
    assert pruned.returncode == 0 and "deleted" not in pruned.stdout.lower(), pruned.stdout
    assert engine.docker("image", "prune", "-f").returncode == 0
    assert engine.mc("build", ctx).stdout.count("Using cache") == 2  # the cache survived
    # rmi of the final image: its untagged parents go with it (busybox, tagged, stays).
    removed = engine.docker("rmi", "chain:1")
    assert removed.returncode == 0, removed.stderr
    assert f"Deleted: {final}" in removed.stdout and removed.stdout.count("Deleted: sha256:") >= 2
    assert "<none>" not in engine.mc("images", "-a").stdout
    assert engine.mc("image", "inspect", "busybox").returncode == 0


def test_metadata_instructions_users_shells_and_triggers(engine, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "base", """\
FROM busybox
RUN echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group
COPY --chown=app:app --chmod=640 owned.txt /srv/
USER app
RUN id -u > /tmp/who
USER root
SHELL ["/bin/sh", "-e", "-c"]
RUN test "$0" = /bin/sh
EXPOSE 80 53/udp
VOLUME /data
LABEL stage=base
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD true
ONBUILD RUN echo triggered > /onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/owned.txt"]
""", **{"owned.txt": "mine\n"})
    built = engine.mc("build", "--label", "built.by=test", "-t", "base:1", ctx)
    assert built.returncode == 0, built.stderr
    assert "Step 17/17 : LABEL \"built.by\"=\"test\"" in built.stdout  # --label: one more step, as Docker
    config = json.loads(engine.mc("image", "inspect", "base:1").stdout)[0]["Config"]
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and config["Volumes"] == {"/data": {}}
    assert {"stage": "base", "built.by": "test"}.items() <= config["Labels"].items()
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert config["Shell"] == ["/bin/sh", "-e", "-c"] and config["OnBuild"] == ["RUN echo triggered > /onbuild"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"] and config["Cmd"] == ["cat /srv/owned.txt"]
    seen = engine.mc("run", "--rm", "base:1", "stat -c '%U:%G %a' /srv/owned.txt; cat /tmp/who /srv/owned.txt")
    assert seen.stdout == "app:app 640\n1000\nmine\n", seen.stderr
    child = engine.mc("build", "-t", "child:1", _context(tmp_path / "child", "FROM base:1\n"))
    assert "# Executing 1 build trigger" in child.stdout, child.stdout + child.stderr
    assert engine.mc("run", "--rm", "child:1", "cat /onbuild").stdout == "triggered\n"
    assert "OnBuild" not in json.loads(engine.mc("image", "inspect", "child:1").stdout)[0]["Config"]


@pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("umoci") is None,
                    reason="skopeo or umoci is not on PATH (`make test` installs them)")
def test_a_built_image_is_pushed_and_read_by_skopeo_and_umoci(engine, registry, tmp_path):  # noqa: F811
    ctx = _context(tmp_path / "ctx", COURSE, **{"hello.txt": "hi\n"})
    target = f"{registry.host}/built/app:1"
    assert engine.mc("build", "-t", target, ctx).returncode == 0
    pushed = engine.mc("push", target)
    assert pushed.returncode == 0 and "1: digest: sha256:" in pushed.stdout, pushed.stderr
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{target}", f"oci:{layout}:app"],
                   capture_output=True, check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:app", str(bundle)], capture_output=True, check=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / "app" / "made.txt").read_text() == "hello there\n" and (rootfs / "app" / "hello.txt").exists()
    assert (rootfs / "bin" / "sh").exists() and not (rootfs / "bin" / "ls").exists()  # the whiteout, honoured
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["cat", "/app/made.txt"] and config["process"]["cwd"] == "/app"


def test_a_run_step_reaches_a_server_on_a_network(engine, tmp_path):  # noqa: F811
    assert engine.mc("network", "create", "buildnet").returncode == 0
    try:
        server = engine.mc("run", "-d", "--network", "buildnet", "--name", "kv", "busybox", "sh", "-c",
                           "while true; do echo +PONG | nc -l -p 6379; done")
        assert server.returncode == 0, server.stderr
        ctx = _context(tmp_path / "ctx", "FROM busybox\nRUN echo PING | nc -w 2 kv 6379 > /reply\n")
        built = engine.mc("build", "--network", "buildnet", "-t", "reached", ctx)
        assert built.returncode == 0, built.stdout + built.stderr
        assert engine.mc("run", "--rm", "--network", "none", "reached", "cat", "/reply").stdout == "+PONG\n"
        hosts = _context(tmp_path / "hosts", "FROM busybox\nRUN grep extra.test /etc/hosts > /found\n")
        added = engine.mc("build", "--add-host", "extra.test:10.1.2.3", "-t", "hosts", hosts)
        assert added.returncode == 0, added.stdout + added.stderr
        assert engine.mc("run", "--rm", "hosts", "cat", "/found").stdout.split() == ["10.1.2.3", "extra.test"]
        cut_off = engine.mc("build", "--no-cache", "--network", "none", ctx)
        assert cut_off.returncode != 0  # no network, no server: the step fails
    finally:
        engine.mc("rm", "-f", "kv")
        engine.mc("container", "prune", "-f")
        engine.mc("network", "rm", "buildnet")
