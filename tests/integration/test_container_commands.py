"""The rest of docker's container and system commands, through the real daemon: fields refused rather
than ignored, cp and the archive API, rename, system prune and df, images filters.  Clients: our CLI,
the stock docker CLI and docker-py."""

from __future__ import annotations

import json

import pytest
from test_engine import engine  # noqa: F401 - the fixture, by name

pytestmark = pytest.mark.root


def test_options_the_engine_does_not_honour_are_refused_not_ignored(engine):  # noqa: F811
    for flags, field in ((["-p", "8080:80"], "HostConfig.PortBindings"), (["-v", "/tmp:/data"], "HostConfig.Binds"),
                         (["--network", "host"], "HostConfig.NetworkMode"), (["--group-add", "audio"], "HostConfig.GroupAdd"),
                         (["--log-driver", "none"], "HostConfig.LogConfig")):
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
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}} and host["NetworkMode"] == "none"
    r = engine.mc("inspect", "--format", "{{.HostConfig.ShmSize}}", cid)
    assert r.stdout.strip() == str(64 << 20)
