"""Docker's units (minicontainer/units.py), shared by the engine, the CLI and the client."""

from __future__ import annotations

import pytest

from minicontainer.units import go_duration, human_duration, human_size, parse_bytes, parse_time


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m", 600), ("1h30m", 5400), ("1.5s", 1.5), ("250ms", 0.25), ("2h0m3s", 7203), ("90us", 90e-6),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10x", "h", "1h 30m", "-5m", "1700000000", "2026-12-01T00:00:00Z"])
def test_what_is_not_a_go_duration(text: str) -> None:
    assert go_duration(text) is None


def test_sizes_and_durations_as_docker_prints_them() -> None:
    assert human_size(4_260_000) == "4.26MB"
    assert human_size(64 * 1024 * 1024, binary=True) == "64MiB"
    assert parse_bytes("64m") == 64 * 1024 * 1024
    with pytest.raises(ValueError, match="invalid size: '64x'"):
        parse_bytes("64x")
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(90) == "About a minute"
    assert human_duration(3 * 86400) == "3 days"


def test_api_times() -> None:
    assert parse_time("0001-01-01T00:00:00Z") == 0.0  # Go's zero time: "never"
    assert parse_time("2026-11-29T11:02:33.5Z") == pytest.approx(1795950153.5)


def test_logs_since_takes_go_durations(monkeypatch) -> None:
    import time

    from minicontainer.cli.containers import _since

    monkeypatch.setattr(time, "time", lambda: 10_000.0)
    assert float(_since("1h30m")) == pytest.approx(10_000 - 5400)  # was an error before go_duration
    assert _since("1700000000") == "1700000000"
