"""A notebook kernel runs as an ordinary user.  Through the socket's group it drives the daemon (as a
member of the ``docker`` group drives dockerd); without the group it is told what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from daemon_support import start_daemon, stop_daemon

import minicontainer

pytestmark = pytest.mark.root

NOBODY = 65534
SOCKET_GID = 54321  # no group has it: the daemon takes a number, so no group is added to this host


@pytest.fixture
def host(tmp_path):
    """A daemon whose socket belongs to SOCKET_GID, and a copy of the package
    where the ordinary user can read it (the client needs the standard library only; this user may
    not be able to reach the checkout or its venv)."""
    top = Path(tempfile.mkdtemp(prefix="minicontainer-socket-test-"))
    daemon = None
    try:
        top.chmod(0o755)  # mkdtemp's is 0700: the user must be able to reach the socket inside
        shutil.copytree(Path(minicontainer.__file__).parent, top / "lib" / "minicontainer",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(os.environ, MINICONTAINER_ROOT=str(tmp_path / "data"), MINICONTAINER_RUN=str(top / "run"),
                   MINICONTAINER_AUTOSTART="0")
        daemon = start_daemon(env, top / "run", "--group", str(SOCKET_GID))
        (top / "run").chmod(0o755)
        yield top
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        shutil.rmtree(top, ignore_errors=True)


def as_user(top: Path, *argv: str, groups: list[int]) -> subprocess.CompletedProcess:
    """Run ``python3 argv...`` as nobody with these supplementary groups, with the copied package only."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(top), "PYTHONPATH": str(top / "lib"), "PYTHONDONTWRITEBYTECODE": "1",
           "MINICONTAINER_HOST": f"unix://{top / 'run' / 'minicontainer.sock'}", "MINICONTAINER_AUTOSTART": "0"}
    return subprocess.run([os.path.realpath(sys.executable), *argv], env=env, cwd=top, user=NOBODY, group=NOBODY,
                          extra_groups=groups, capture_output=True, text=True, timeout=60, check=False)


def test_a_member_of_the_sockets_group_needs_no_root(host):
    sock = host / "run" / "minicontainer.sock"
    assert (sock.stat().st_gid, sock.stat().st_mode & 0o777) == (SOCKET_GID, 0o660)
    cli = ("-m", "minicontainer.cli.main")
    built = as_user(host, *cli, "starter", "busybox", groups=[SOCKET_GID])  # the daemon builds it, as root
    assert built.returncode == 0 and built.stdout.startswith("busybox:latest"), built.stderr
    ran = as_user(host, *cli, "run", "--rm", "busybox", "sh", "-c", "echo hi; id -u", groups=[SOCKET_GID])
    assert (ran.returncode, ran.stdout) == (0, "hi\n0\n"), ran.stderr  # root in the container, not on the host
    images = as_user(host, *cli, "images", groups=[SOCKET_GID])
    assert images.returncode == 0 and "busybox" in images.stdout, images.stderr
    # The notebook's way: the Python client, docker-py's shape.
    code = ("import minicontainer; c = minicontainer.from_env(); "
            "print(c.containers.run('busybox', ['echo', 'from a notebook'], remove=True).decode(), end='')")
    notebook = as_user(host, "-c", code, groups=[SOCKET_GID])
    assert (notebook.returncode, notebook.stdout) == (0, "from a notebook\n"), notebook.stderr


def test_without_the_group_the_user_is_told_what_to_do(host):
    refused = as_user(host, "-m", "minicontainer.cli.main", "ps", groups=[])
    assert refused.returncode == 1
    assert "permission denied while trying to connect to the minicontainerd socket" in refused.stderr
    assert f"members of the group '{SOCKET_GID}' may use it" in refused.stderr and "usermod -aG" in refused.stderr
