"""Images end to end, through the `minicontainer` CLI, against the real local registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_support import start_daemon, stop_daemon
from imagefactory import build_image, push_image

pytestmark = pytest.mark.root


@pytest.fixture
def mc(tmp_path, registry):
    """Run the `minicontainer` CLI with a private data root, run root and daemon settings whose
    registry mirror is the local registry (so `busybox` means its library/busybox); a daemon of the
    test's own serves the container commands, and is stopped (its containers with it) at the end."""
    settings = tmp_path / "daemon.json"
    settings.write_text(json.dumps({"registry-mirrors": [registry.url]}))
    env = dict(os.environ, MINICONTAINER_ROOT=str(tmp_path / "data"), MINICONTAINER_RUN=str(tmp_path / "run"),
               MINICONTAINER_DAEMON_CONFIG=str(settings), MINICONTAINER_CONFIG=str(tmp_path / "client"),
               MINICONTAINER_AUTOSTART="0")
    daemon = start_daemon(env, tmp_path / "run")

    def run(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minicontainer.cli.main", *args], env=env, text=True,
                              capture_output=True, input=input, timeout=timeout, check=False)

    run.root = tmp_path / "data"
    run.env = env
    yield run
    stop_daemon(daemon)


def store_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "image" / "blobs").rglob("*") if p.is_file()} \
        if (root / "image" / "blobs").exists() else set()


def test_pull_by_docker_hub_name_through_the_mirror_then_run(mc, fixture_images):
    r = mc("pull", "busybox")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-3].startswith("Digest: sha256:")
    assert lines[-2] == "Status: Downloaded newer image for busybox:latest"
    assert lines[-1] == "docker.io/library/busybox:latest"

    again = mc("pull", "busybox")
    assert "Status: Image is up to date for busybox:latest" in again.stdout

    images = mc("images").stdout.splitlines()
    assert images[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert images[1].split()[:2] == ["busybox", "latest"]

    r = mc("run", "busybox", "sh", "-c", "echo pid=$$; cat /etc/passwd | head -1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["pid=1", "root:x:0:0:root:/root:/bin/sh"]


def test_run_pulls_a_missing_image_and_exit_codes_pass_through(mc, fixture_images):
    r = mc("run", "busybox", "sh", "-c", "exit 7")
    assert r.returncode == 7
    assert "Unable to find image 'busybox:latest' locally" in r.stderr
    assert mc("run", "busybox", "no-such-program").returncode == 127
    assert mc("run", "no-such-image-anywhere").returncode != 0


def test_multi_platform_index(mc, fixture_images):
    name = fixture_images.multiarch.name
    r = mc("run", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "amd64"
    r = mc("pull", "--platform", "linux/arm64", name)
    assert r.returncode == 0, r.stderr
    inspect = json.loads(mc("image", "inspect", name).stdout)[0]
    assert inspect["Architecture"] == "arm64"
    assert inspect["RepoDigests"][0].endswith(fixture_images.multiarch.digest)


def test_zstd_and_uncompressed_layers(mc, fixture_images):
    r = mc("run", fixture_images.zstd.name, "cat", "/etc/motd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "compressed with zstd\n"


def test_whiteouts_and_opaque_directories(mc, fixture_images):
    r = mc("run", fixture_images.whiteout.name, "sh", "-c",
           "ls /data; ls /etc/old.conf 2>&1; cat /etc/keep.conf; find / -name '.wh.*' -xdev")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "new"
    assert "No such file or directory" in lines[1]
    assert lines[2] == "keep"
    assert len(lines) == 3  # no whiteout file is visible


def test_a_tampered_blob_fails_and_leaves_nothing(mc, fixture_images, registry):
    image = fixture_images.tiny.image
    layer_digest = image.layers[0].digest
    blob = registry.blob_path(layer_digest)
    original = blob.read_bytes()
    try:
        blob.write_bytes(original[:-10] + b"0123456789")
        r = mc("pull", fixture_images.tiny.name)
        assert r.returncode != 0
        assert "digest mismatch" in r.stderr
        assert not any(layer_digest.split(":")[1] in f for f in store_files(mc.root))
        assert list((mc.root / "image" / "tmp").glob("blob-*")) == []
    finally:
        blob.write_bytes(original)


def test_tag_history_inspect_rmi_and_prune(mc, fixture_images):
    assert mc("pull", "-q", fixture_images.tiny.name).returncode == 0
    assert mc("tag", fixture_images.tiny.name, "mytiny:v1").returncode == 0
    images = mc("images").stdout
    assert "mytiny" in images and "v1" in images
    history = mc("history", "mytiny:v1").stdout.splitlines()
    assert history[0].split()[:2] == ["IMAGE", "CREATED"]
    assert not history[1].rstrip().endswith(" 0B"), history  # the layer's own size, from the daemon
    assert mc("images", "-q").stdout.split().count(mc("image", "inspect", "-f", "{{.Id}}",
                                                      "mytiny:v1").stdout.strip()[7:19]) == 1
    fmt = mc("image", "inspect", "-f", "{{.Config.WorkingDir}} {{json .Config.Cmd}}", "mytiny:v1").stdout
    assert fmt.strip() == '/ ["cat","/hello.txt"]'  # Go's JSON: no spaces
    # Go's way of printing values, and a missing key is an error, as docker's inspect says
    assert mc("image", "inspect", "-f", "{{.Config.Cmd}} {{len .RootFS.Layers}} {{index .Config.Env 0}}",
              "mytiny:v1").stdout == "[cat /hello.txt] 1 PATH=/bin\n"
    missing = mc("image", "inspect", "-f", "{{.Nope}}", "mytiny:v1")
    assert missing.returncode == 1 and 'map has no entry for key "Nope"' in missing.stderr
    r = mc("rmi", "mytiny:v1")
    assert r.stdout.strip() == "Untagged: mytiny:v1"
    r = mc("rmi", fixture_images.tiny.name)
    assert "Deleted: sha256:" in r.stdout
    assert mc("rmi", "mytiny:v1").returncode == 1
    r = mc("image", "prune", "-f")
    assert r.returncode == 0 and "Total reclaimed space" in r.stdout
    # -a: every image no container uses, tagged or not
    assert mc("pull", "-q", fixture_images.tiny.name).returncode == 0
    r = mc("image", "prune", "-a", "-f")
    assert r.returncode == 0 and "untagged: " in r.stdout and "deleted: sha256:" in r.stdout, r.stdout
    assert fixture_images.tiny.name.rsplit("/", 1)[-1].split(":")[0] not in mc("images").stdout


def test_login_then_push_and_pull_with_the_users_credentials(mc, basic_registry, registry, fixture_images,
                                                            monkeypatch):
    bad = mc("login", "-u", "basicuser", "--password-stdin", basic_registry.host, input="wrong\n")
    assert bad.returncode == 1
    ok = mc("login", "-u", "basicuser", "--password-stdin", basic_registry.host, input="basic-secret\n")
    assert ok.returncode == 0, ok.stderr
    assert "Login Succeeded" in ok.stdout
    config = json.loads((mc.root.parent / "client" / "config.json").read_text())
    assert basic_registry.host in config["auths"]
    # The daemon keeps no logins: the CLI sends this user's with each push and pull (X-Registry-Auth).
    private = f"{basic_registry.host}/private/tiny:latest"
    assert mc("pull", f"{registry.host}/tests/tiny").returncode == 0
    assert mc("tag", f"{registry.host}/tests/tiny", private).returncode == 0
    pushed = mc("push", private)
    assert pushed.returncode == 0, pushed.stderr
    assert "digest: sha256:" in pushed.stdout
    assert mc("rmi", private).returncode == 0
    pulled = mc("pull", private)
    assert pulled.returncode == 0, pulled.stderr
    assert mc("rmi", private).returncode == 0
    # the notebook client sends the same user's login
    from minicontainer.client import Client

    monkeypatch.setenv("MINICONTAINER_CONFIG", mc.env["MINICONTAINER_CONFIG"])
    notebook = Client(os.path.join(mc.env["MINICONTAINER_RUN"], "minicontainer.sock"))
    assert private in [t if "/" in t else f"docker.io/library/{t}" for t in notebook.images.pull(private).tags]
    assert mc("rmi", private).returncode == 0
    assert mc("logout", basic_registry.host).returncode == 0
    refused = mc("pull", private)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error response from daemon: pull access denied"), refused.stderr
    assert "minicontainer login" in refused.stderr


def test_pull_explain_narrates_every_exchange_with_the_registry(mc, token_registry):
    ref = token_registry.ref("tests/explained:latest")
    with token_registry.client() as pusher:
        push_image(pusher, ref, build_image([{"explained.txt": "told step by step\n"}]))
    r = mc("pull", "--explain", str(ref))
    assert r.returncode == 0, r.stderr
    told = " ".join(r.stderr.split())  # the narration wraps its lines at 100 columns
    base = f"http://{token_registry.host}/v2/"
    # The dance every Docker Hub pull does: refused, a token from the realm, the same request again.
    assert f"GET {base}" in told and "401 Unauthorized" in told and "WWW-Authenticate says where" in told
    assert 'Bearer realm="http://' in told
    assert f"a bearer token for repository:{ref.path}:pull" in told
    assert f"GET {base}{ref.path}/manifests/latest" in told and "Docker-Content-Digest sha256:" in told
    assert told.count("checked against the digest in the URL") == 2  # the config and the one layer
    assert "Bearer ey" not in told and "tokenuser" not in told  # tokens and credentials are never shown
    assert "Pull complete" in r.stdout  # docker's own progress lines are still there


def _tar_members(data: bytes) -> set[str]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return set(tar.getnames())


def test_save_load_and_import_stream_through_the_daemon(mc, tmp_path):
    import gzip
    import io
    import tarfile

    assert mc("starter", "busybox").returncode == 0
    cli = [sys.executable, "-m", "minicontainer.cli.main"]
    # save: to stdout (a pipe), and to a file in either format
    piped = subprocess.run([*cli, "save", "busybox"], env=mc.env, capture_output=True, timeout=60, check=False)
    assert piped.returncode == 0 and "manifest.json" in _tar_members(piped.stdout), piped.stderr
    oci = tmp_path / "out" / "busybox-oci.tar"
    oci.parent.mkdir()
    assert mc("save", "-o", str(oci), "--format", "oci-archive", "busybox").returncode == 0
    assert {"index.json", "oci-layout"} <= _tar_members(oci.read_bytes())
    missing = mc("save", "-o", str(tmp_path / "out" / "none.tar"), "nosuch")
    assert missing.returncode == 1 and missing.stderr.startswith("Error response from daemon:")
    assert "nosuch" in missing.stderr
    assert sorted(os.listdir(oci.parent)) == ["busybox-oci.tar"]  # no half-written file, no temporary left
    # load: from stdin, then from a file (-i), after the image is gone
    assert mc("rmi", "busybox").returncode == 0
    loaded = subprocess.run([*cli, "load"], env=mc.env, input=piped.stdout, capture_output=True, timeout=60,
                            check=False)
    assert loaded.returncode == 0 and b"Loaded image: busybox:latest" in loaded.stdout, loaded.stderr
    assert mc("rmi", "busybox").returncode == 0
    again = mc("load", "-q", "-i", str(oci))
    assert again.returncode == 0 and again.stdout.strip() == "Loaded image: busybox:latest", again.stderr
    garbage = subprocess.run([*cli, "load"], env=mc.env, input=b"not a tar" * 1000, capture_output=True,
                             timeout=60, check=False)
    assert garbage.returncode == 1 and b"Error response from daemon:" in garbage.stderr
    # import: a root filesystem's tarball, gzip'd, from stdin, with --change and a message
    files = io.BytesIO()
    with tarfile.open(fileobj=files, mode="w") as tar:
        data = b"imported through the daemon\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    imported = subprocess.run([*cli, "import", "-c", "CMD [\"/bin/cat\", \"/hello.txt\"]", "-c", "ENV A=1",
                               "-m", "from a test", "-", "imported:v1"], env=mc.env,
                              input=gzip.compress(files.getvalue()), capture_output=True, timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    image_id = imported.stdout.decode().strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    config = json.loads(mc("image", "inspect", "imported:v1").stdout)[0]
    assert config["Id"] == image_id and config["Config"]["Cmd"] == ["/bin/cat", "/hello.txt"]
    assert config["Config"]["Env"] == ["A=1"]
    assert "from a test" in mc("history", "imported:v1").stdout


def test_starter_images_work_offline(mc):
    r = mc("starter", "busybox", "hello-world")
    assert r.returncode == 0, r.stderr
    r = mc("run", "hello-world")
    assert r.returncode == 0 and "Hello from minicontainer!" in r.stdout
    labels = json.loads(mc("image", "inspect", "busybox").stdout)[0]["Config"]["Labels"]
    assert labels == {"org.minicontainer.built-locally": "true"}


def test_run_options_env_workdir_user_and_limits(mc, fixture_images):
    r = mc("run", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "-h", "boxy", "-m", "32m", "--pids-limit", "20",
           "busybox", "sh", "-c", "echo $A; pwd; id -u; hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "/tmp", "65534", "boxy"]
    # -e KEY: the value in the shell that runs the command; never the daemon's (its secrets are its own)
    client_env = {k: v for k, v in mc.env.items() if k != "MINICONTAINER_DAEMON_CONFIG"}
    client_env["ONLY_HERE"] = "from the client"
    r = subprocess.run([sys.executable, "-m", "minicontainer.cli.main", "run", "--rm", "-e", "ONLY_HERE", "-e",
                        "MINICONTAINER_DAEMON_CONFIG", "busybox", "sh", "-c",
                        'echo "$ONLY_HERE|${MINICONTAINER_DAEMON_CONFIG-unset}|$HOME"'],
                       env=client_env, capture_output=True, text=True, timeout=60, check=False)
    assert r.stdout == "from the client|unset|/root\n", r.stderr  # HOME from the image's /etc/passwd


def test_push_then_pull_elsewhere_with_a_cross_repository_mount(mc, fixture_images, registry, tmp_path):
    assert mc("pull", "-q", fixture_images.busybox.name).returncode == 0
    target = f"{registry.host}/pushed/busybox:v1"
    assert mc("tag", fixture_images.busybox.name, target).returncode == 0
    r = mc("push", target)
    assert r.returncode == 0, r.stderr
    assert f"The push refers to repository [{registry.host}/pushed/busybox]" in r.stdout
    assert "Mounted from library/busybox" in r.stdout  # same registry: linked, not uploaded
    assert "v1: digest: sha256:" in r.stdout
    # skopeo, a different client, sees exactly what we pushed
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                             capture_output=True, text=True, check=True)
    assert json.loads(inspect.stdout)["Digest"] == fixture_images.busybox.digest


def test_an_image_pushed_by_skopeo_pulls_and_runs(mc, fixture_images, registry, tmp_path):
    # skopeo copies our fixture into a new repository as OCI, recompressing nothing: pull it back and run
    dest = f"{registry.host}/skopeo/busybox:copied"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", "oci",
                    f"docker://{fixture_images.busybox.name}", f"docker://{dest}"],
                   capture_output=True, check=True)
    r = mc("run", dest, "echo", "from skopeo")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from skopeo\n"


def test_an_image_pushed_by_us_runs_under_umoci_and_runc(mc, registry, tmp_path):
    assert mc("starter", "busybox").returncode == 0
    target = f"{registry.host}/ours/busybox:starter"
    assert mc("tag", "busybox", target).returncode == 0
    assert mc("push", target).returncode == 0
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{layout}:starter"],
                   capture_output=True, check=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:starter", str(bundle)], capture_output=True,
                   check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo runc ran our image; ls /bin/busybox"]
    (bundle / "config.json").write_text(json.dumps(config))
    runc_root = tmp_path / "runc"
    try:
        r = subprocess.run(["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), "umoci-ours"],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["runc ran our image", "/bin/busybox"]
    finally:
        subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", "umoci-ours"], capture_output=True,
                       check=False)


def test_rmi_is_refused_while_a_container_uses_the_image(mc, fixture_images):
    import threading
    import time

    assert mc("pull", "-q", fixture_images.busybox.name).returncode == 0
    runner = threading.Thread(target=mc, args=("run", "--rm", fixture_images.busybox.name, "sleep", "3"))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not list((mc.root / "containers").glob("*/image")) and time.monotonic() < deadline:
            time.sleep(0.05)
        r = mc("rmi", fixture_images.busybox.name)
        assert r.returncode == 1
        assert "container" in r.stderr.lower()
    finally:
        runner.join()
    assert mc("rmi", fixture_images.busybox.name).returncode == 0


def test_redis_starter_image_runs_the_hosts_redis_server(mc):
    r = mc("starter", "redis")
    assert r.returncode == 0, r.stderr
    r = mc("run", "redis", "redis-server", "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Redis server v=")


def test_pull_progress_as_bars(tmp_path, monkeypatch, registry, fixture_images):
    import io

    from minicontainer.engine import images
    from minicontainer.observe.progress import PullBars

    out = io.StringIO()
    store = images.open_store(str(tmp_path / "data"))
    with registry.client() as client, PullBars(file=out) as bars:
        images.pull(fixture_images.busybox.name, store, progress=bars, client=client)
    assert len(bars.bars) == 1
    (bar,) = bars.bars.values()
    assert bar.n == bar.total == len(fixture_images.busybox.image.layers[0].blob)
    assert bars.statuses[-1].startswith("Status: Downloaded newer image")
    assert "Pull complete" in out.getvalue()
