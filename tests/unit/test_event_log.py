"""The engine's event log (engine/events.py) and the CLI's reading of times and printing of events."""

from __future__ import annotations

import asyncio
import time

import pytest

from minicontainer.cli.events import line, timestamp
from minicontainer.engine.clock import until_timestamp
from minicontainer.engine.events import EventLog, check_filters, matches, parse_timestamp
from minicontainer.units import point_in_time_ns


class FakeContainer:
    id = "f" * 64
    name = "web"
    def __init__(self) -> None:
        self.record = {"Config": {"Image": "busybox", "Labels": {"tier": "front"}}}


def test_a_container_event_has_docker_shape_and_string_attributes():
    log = EventLog()
    m = log.container(FakeContainer(), "die", exitCode=137)
    assert m["Type"] == "container" and m["Action"] == "die" and m["scope"] == "local"
    assert m["Actor"] == {"ID": "f" * 64, "Attributes": {"tier": "front", "image": "busybox", "name": "web",
                                                         "exitCode": "137"}}
    assert m["status"] == "die" and m["id"] == "f" * 64 and m["from"] == "busybox"
    assert m["time"] == m["timeNano"] // 1_000_000_000


def test_the_ring_keeps_the_last_events_only():
    log = EventLog(size=3)
    for i in range(5):
        log.emit("network", f"a{i}", "n1")
    assert [m["Action"] for m in log.replay(0, None, {})] == ["a2", "a3", "a4"]
    assert "status" not in log.recent[0]  # the legacy fields are for containers and images only


def test_replay_range_and_listeners():
    async def scenario():
        log = EventLog()
        first = log.emit("container", "create", "c1")
        queue = log.listen()
        second = log.emit("container", "start", "c1")
        assert queue.get_nowait() is second and queue.empty()
        log.stop_listening(queue)
        log.emit("container", "die", "c1")
        assert queue.empty()
        assert log.replay(first["timeNano"], first["timeNano"], {}) == [first]
        assert [m["Action"] for m in log.replay(second["timeNano"], None, {})] == ["start", "die"]

    asyncio.run(scenario())


@pytest.mark.parametrize("filters, expected", [
    ({"type": ["container"]}, True),
    ({"type": ["image"]}, False),
    ({"event": ["exec_create"]}, True),       # by the action's prefix before ':'
    ({"event": ["die", "exec_create"]}, True),
    ({"container": ["web"]}, True),
    ({"container": ["fff"]}, True),           # an ID prefix
    ({"container": ["other"]}, False),
    ({"image": ["busybox:latest"]}, True),    # busybox is busybox:latest
    ({"label": ["tier=front"]}, True),
    ({"label": ["tier=back"]}, False),
    ({"type": ["container"], "event": ["start"]}, False),  # keys AND together
])
def test_filters(filters, expected):
    m = EventLog().container(FakeContainer(), "exec_create: sh -c date")
    assert matches(m, filters) is expected


def test_unknown_filters_are_refused():
    with pytest.raises(ValueError, match="invalid filter 'colour'"):
        check_filters({"colour": ["red"]})
    with pytest.raises(ValueError, match="type=box"):
        check_filters({"type": ["box"]})


def test_api_timestamps():
    assert parse_timestamp("1700000000", "since") == 1_700_000_000_000_000_000
    assert parse_timestamp("1700000000.5", "since") == 1_700_000_000_500_000_000
    assert parse_timestamp(None, "since") is None
    with pytest.raises(ValueError, match='invalid value for until: failed to parse value as time or duration: "yesterday"'):
        parse_timestamp("yesterday", "until")
    # docker's other forms, for a hand-written request: a duration back from now, RFC 3339
    assert abs(parse_timestamp("0s", "until") - time.time_ns()) < 5e9
    assert parse_timestamp("2023-11-14T23:13:20.5+01:00", "since") == 1_700_000_000_500_000_000


def test_docker_time_forms():
    now = 1_800_000_000_000_000_000
    assert point_in_time_ns("0", now) == 0 and point_in_time_ns("-1.5", now) == -1_500_000_000
    assert point_in_time_ns("10m", now) == now - 600 * 10**9
    assert point_in_time_ns("0s", now) == now and point_in_time_ns("-5m", now) == now + 300 * 10**9
    assert point_in_time_ns("1h30m1.1s", now) == now - 5401_100_000_000
    assert point_in_time_ns("300ms", now) == now - 300_000_000
    assert point_in_time_ns("2023-11-14T22:13:20.123456789Z", now) == 1_700_000_000_123_456_789
    assert point_in_time_ns("2023-11-14T22:13:20Z", now) == 1_700_000_000 * 10**9
    with pytest.raises(ValueError, match="failed to parse"):
        point_in_time_ns("10 minutes", now)
    assert until_timestamp("24h", 1_800_000_000.0) == 1_800_000_000.0 - 86400
    with pytest.raises(ValueError, match="invalid until value"):
        until_timestamp("soon")


def test_cli_times_as_docker_reads_them():
    now = 1_700_000_000.0
    assert timestamp("10m", now) == f"{now - 600:.9f}"
    assert timestamp("1h30m", now) == f"{now - 5400:.9f}"
    assert timestamp("0s", now) == "1700000000.000000000"
    assert timestamp("1700000000.25", now) == "1700000000.250000000"
    assert float(timestamp("2023-11-14T22:13:20Z", now)) == 1_700_000_000
    with pytest.raises(ValueError, match="failed to parse"):
        timestamp("soon", now)


def test_cli_line_as_docker_prints_it(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time
    time.tzset()
    m = {"Type": "container", "Action": "kill", "timeNano": 1_700_000_000_000000123,
         "Actor": {"ID": "abc", "Attributes": {"signal": "15", "name": "web"}}}
    assert line(m) == "2023-11-14T22:13:20.000000123Z container kill abc (name=web, signal=15)"
