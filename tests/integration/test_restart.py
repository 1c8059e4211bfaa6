"""Restart policies through the real daemon (engine/restart.py): containers that exit, restarted
as Docker restarts them, with our CLI and the docker CLI."""

from __future__ import annotations

import json
import time

import pytest
import test_engine

from minicontainer.engine import restart

pytestmark = pytest.mark.root
engine = test_engine.engine  # the fixture: a daemon of the test's own, with the starter busybox


def _state(engine, name: str) -> dict:
    r = engine.mc("inspect", name)
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)[0]
    return {**record["State"], "RestartCount": record["RestartCount"], "Policy": record["HostConfig"]["RestartPolicy"]}


def _until(engine, name: str, done, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = _state(engine, name)
        if done(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def _events(engine, since: float, name: str) -> list[dict]:
    r = engine.mc("events", "--since", f"{since:.9f}", "--until", "0s", "--filter", f"container={name}",
                  "--format", "{{json .}}")
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_on_failure_restarts_n_times_with_a_doubling_back_off(engine):
    since = time.time()
    assert engine.mc("run", "-d", "--name", "flaky", "--restart", "on-failure:3", "busybox", "sh", "-c",
                     "exit 1").returncode == 0
    state = _until(engine, "flaky", lambda s: s["RestartCount"] == 3 and s["Status"] == "exited")
    assert (state["RestartCount"], state["Status"], state["ExitCode"]) == (3, "exited", 1), state
    assert state["Policy"] == {"Name": "on-failure", "MaximumRetryCount": 3} and state["Restarting"] is False
    time.sleep(0.5)
    seen = _events(engine, since, "flaky")
    actions = [e["Action"] for e in seen if e["Action"] in ("start", "die", "restart")]
    # (a program that exits at once may die before its restart event is out)
    assert [a for a in actions if a != "restart"] == ["start", "die"] * 4 and actions.count("restart") == 3, actions
    dies = [e["timeNano"] / 1e9 for e in seen if e["Action"] == "die"]
    starts = [e["timeNano"] / 1e9 for e in seen if e["Action"] == "start"][1:]
    waits = [start - die for die, start in zip(dies, starts, strict=False)]
    # 100 ms, then 200, then 400: each wait at least its back-off, and twice the one before
    for wait, delay in zip(waits, (0.1, 0.2, 0.4), strict=True):
        assert delay <= wait < delay + 0.5, waits
    assert engine.docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky").stdout == "3 exited\n"


def test_restarting_then_stopped_by_the_user(engine):
    assert engine.docker("run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c",
                         "exit 2").returncode == 0
    # Each exit waits twice as long: soon it spends most of its time restarting
    state = _until(engine, "always", lambda s: s["Restarting"] and s["RestartCount"] >= 3)
    assert state["Status"] == "restarting" and state["Running"] is True and state["ExitCode"] == 2, state
    assert "Restarting (2)" in engine.mc("ps").stdout  # listed with the running ones, as docker lists it
    assert "restarting" in engine.docker("ps", "--filter", "status=restarting", "--format", "{{.State}}").stdout
    r = engine.mc("rm", "always")
    assert r.returncode == 1 and "Stop the container before attempting removal" in r.stderr
    # the user's stop: no restart after it, whatever the policy
    assert engine.docker("stop", "always").returncode == 0
    count = _state(engine, "always")["RestartCount"]
    time.sleep(1.5)
    state = _state(engine, "always")
    assert (state["Status"], state["Restarting"], state["RestartCount"]) == ("exited", False, count), state
    # the user's start: the policy again, counted from 0; a kill is the user's too
    assert engine.mc("start", "always").returncode == 0
    assert _until(engine, "always", lambda s: s["RestartCount"] >= 1)["RestartCount"] >= 1
    assert engine.mc("kill", "always").returncode in (0, 1)  # (1 if it had just exited: nothing to signal)
    count = _state(engine, "always")["RestartCount"]
    time.sleep(1)
    assert _state(engine, "always")["RestartCount"] == count
    assert engine.mc("rm", "always").returncode == 0


def test_rm_conflicts_update_and_a_stop_that_is_not_a_failure(engine):
    for cli in (engine.mc, engine.docker):
        r = cli("run", "--rm", "--restart", "always", "busybox", "true")
        assert r.returncode == 125 and "conflicting options: cannot specify both --restart and --rm" in r.stderr, r.stderr
    r = engine.mc("run", "-d", "--restart", "on-failure:x", "busybox", "true")
    assert r.returncode == 125 and "maximum retry count must be an integer" in r.stderr
    r = engine.mc("run", "-d", "--restart", "always:2", "busybox", "true")
    assert r.returncode == 125 and "maximum retry count can only be used with 'on-failure'" in r.stderr
    # no policy: an exit stays an exit; update --restart applies from the next one
    assert engine.mc("run", "--name", "once", "busybox", "sh", "-c", "exit 3").returncode == 3
    assert _state(engine, "once")["RestartCount"] == 0
    assert engine.docker("update", "--restart", "on-failure:1", "once").returncode == 0
    assert _state(engine, "once")["Policy"] == {"Name": "on-failure", "MaximumRetryCount": 1}
    assert engine.mc("start", "once").returncode == 0
    state = _until(engine, "once", lambda s: s["RestartCount"] == 1 and s["Status"] == "exited")
    assert (state["RestartCount"], state["ExitCode"]) == (1, 3), state
    # on-failure and a clean exit: no restart
    assert engine.mc("run", "--name", "clean", "--restart", "on-failure", "busybox", "true").returncode == 0
    time.sleep(0.4)
    assert _state(engine, "clean")["RestartCount"] == 0


def test_the_daemon_starts_always_and_unless_stopped_containers_again(engine):
    for name, policy in (("al", "always"), ("u1", "unless-stopped"), ("u2", "unless-stopped"), ("of", "on-failure")):
        assert engine.mc("run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "100").returncode == 0
    assert engine.mc("stop", "-t", "0", "u2").returncode == 0  # the user's stop
    engine.restart()  # the daemon stops its containers (not the user's stop), then starts again
    assert {name: _state(engine, name)["Status"] for name in ("al", "u1", "u2", "of")} == {
        "al": "running", "u1": "running", "u2": "exited", "of": "exited"}


def test_the_back_off_rules():
    assert [restart.next_delay(d, 0.5) for d in (0, 0.1, 0.2, 40)] == [0.1, 0.2, 0.4, 60]
    assert restart.next_delay(3.2, 10) == 0.1  # it ran 10 s: the count starts again
    assert restart.should_restart("on-failure", 2, 1, 1, False) and not restart.should_restart("on-failure", 2, 1, 2, False)
    assert restart.should_restart("on-failure", 0, 1, 99, False) and not restart.should_restart("on-failure", 0, 0, 0, False)
    assert restart.should_restart("always", 0, 0, 5, False) and not restart.should_restart("always", 0, 1, 0, True)
    assert not restart.should_restart("no", 0, 1, 0, False)
