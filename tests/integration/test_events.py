"""`events` through the real daemon: the sequences docker emits, with our CLI and the docker CLI."""

from __future__ import annotations

import json
import time

import pytest
import test_engine

pytestmark = pytest.mark.root
engine = test_engine.engine  # the fixture: a daemon of the test's own with the starter busybox


def events(engine, since: float, *filters: str) -> list[dict]:
    args = ["events", "--since", f"{since:.9f}", "--until", f"{time.time():.9f}", "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    r = engine.mc(*args, timeout=20)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_run_rm_emits_create_attach_start_die_destroy(engine):
    since = time.time()
    r = engine.mc("run", "--rm", "--name", "once", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3
    seen = events(engine, since, "container=once")
    assert [m["Action"] for m in seen] == ["create", "attach", "start", "die", "destroy"]
    die = seen[3]
    assert die["Actor"]["Attributes"]["exitCode"] == "3"
    assert die["Actor"]["Attributes"]["name"] == "once" and die["from"] == "busybox"
    assert len(die["Actor"]["ID"]) == 64


def test_stop_emits_the_kill_signals_then_die_and_stop(engine):
    assert engine.mc("run", "-d", "--name", "sleeper", "busybox", "sleep", "60").returncode == 0
    since = time.time()
    assert engine.mc("stop", "-t", "1", "sleeper").returncode == 0
    seen = events(engine, since, "container=sleeper")
    # sleep as PID 1 has no SIGTERM handler: the kernel drops 15, the grace period ends with 9
    assert [(m["Action"], m["Actor"]["Attributes"].get("signal")) for m in seen] == [
        ("kill", "15"), ("kill", "9"), ("die", None), ("stop", None)]
    assert seen[2]["Actor"]["Attributes"]["exitCode"] == "137"
    only_kills = events(engine, since, "event=kill", "container=sleeper")
    assert [m["Actor"]["Attributes"]["signal"] for m in only_kills] == ["15", "9"]
    assert events(engine, since, "type=image") == []
    assert engine.mc("rm", "sleeper").returncode == 0


def test_image_events_and_the_docker_cli(engine):
    since = time.time()
    assert engine.mc("tag", "busybox", "mine:1").returncode == 0
    assert engine.mc("rmi", "mine:1").returncode == 0
    seen = events(engine, since, "type=image")
    assert [m["Action"] for m in seen] == ["tag", "untag"]
    assert seen[0]["Actor"]["Attributes"]["name"] == "mine:1" and seen[0]["Actor"]["ID"].startswith("sha256:")
    r = engine.docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                      "--filter", "type=image", timeout=20)
    assert r.returncode == 0, r.stderr
    assert [line.split()[1:3] for line in r.stdout.splitlines()] == [["image", "tag"], ["image", "untag"]]


def test_bad_filters_and_ranges_are_400(engine):
    r = engine.mc("events", "--filter", "colour=red", "--since", "1s", "--until", "0s")
    assert r.returncode == 1 and "invalid filter 'colour'" in r.stderr
    r = engine.mc("events", "--since", "1s", "--until", "10m")
    assert r.returncode == 1 and "`since` time must be before `until` time" in r.stderr


def test_docker_time_forms_in_events_logs_and_prune(engine):
    started = time.time()
    r = engine.mc("run", "--name", "clock", "busybox", "sh", "-c", "echo early; sleep 2; echo late")
    assert r.returncode == 0 and r.stdout == "early\nlate\n", r.stderr
    # Durations back from now, as both CLIs send them (the docker CLI: whole Unix seconds)
    for cli in (engine.mc, engine.docker):
        assert cli("logs", "--since", "1s", "clock").stdout == "late\n"
        assert cli("logs", "--until", "1s", "clock").stdout == "early\n"
        seen = cli("events", "--since", "10m", "--until", "0s", "--filter", "container=clock", timeout=20).stdout
        assert " container create " in seen and " container start " in seen, seen
    # an RFC 3339 time, and every form straight to the API (curl's users)
    middle = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started + 1)) + f".{int((started + 1) % 1 * 1e9):09d}Z"
    assert engine.mc("logs", "--until", middle, "clock").stdout == "early\n"
    from minicontainer.client.api import APIClient

    api = APIClient(engine.env["DOCKER_HOST"].removeprefix("unix://"), autostart=False)
    resp = api.request("GET", "/containers/clock/logs", {"stdout": 1, "since": middle})
    assert [data for _, data in api.frames(resp)] == [b"late\n"]
    # prune's until: a time before the container was made keeps it, 0s (now) takes it
    kept = engine.mc("container", "prune", "-f", "--filter", "until=2023-11-14T22:13:20Z")
    assert kept.returncode == 0, kept.stderr
    assert engine.mc("inspect", "clock").returncode == 0
    assert engine.mc("container", "prune", "-f", "--filter", "until=0s").returncode == 0
    assert engine.mc("inspect", "clock").returncode == 1
