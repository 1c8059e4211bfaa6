"""Docker's units (minicontainer/units.py), shared by the engine, the CLI and the client."""

from __future__ import annotations

import pytest

from minicontainer.units import human_duration, human_size, parse_bytes, parse_time


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


def test_a_bad_size_is_a_usage_error_in_the_cli() -> None:
    import argparse

    from minicontainer.cli.run import parse_bytes as cli_parse_bytes

    with pytest.raises(argparse.ArgumentTypeError, match="invalid size: '64x'"):
        cli_parse_bytes("64x")
