"""Detach keys: docker's spelling of them, and finding them in input that arrives in pieces."""

from __future__ import annotations

import pytest

from minicontainer.engine.detach import DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys


def test_parse_detach_keys_as_docker_spells_them():
    assert parse_detach_keys(DEFAULT_DETACH_KEYS) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-_,DEL") == b"\x00\x1b\x1f\x7f"
    with pytest.raises(ValueError, match=r"Invalid detach keys \(ctrl-1\) provided"):
        parse_detach_keys("ctrl-1")
    with pytest.raises(ValueError):
        parse_detach_keys("ab")


def test_the_scanner_holds_a_partial_match_and_lets_a_broken_one_through():
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ls\r\x10") == (b"ls\r", False)      # ctrl-p held back: it may start the sequence
    assert scanner.feed(b"a") == (b"\x10a", False)            # it did not: both go through, in order
    assert scanner.feed(b"\x10\x10") == (b"\x10", False)      # a second ctrl-p restarts the match
    assert scanner.feed(b"\x11after") == (b"", True)          # complete: what follows is dropped
    assert DetachScanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)  # no keys (no terminal): data


def test_the_sequence_is_found_across_reads():
    scanner = DetachScanner(parse_detach_keys("ctrl-a,x,y"))
    assert scanner.feed(b"hello \x01") == (b"hello ", False)
    assert scanner.feed(b"x") == (b"", False)
    assert scanner.feed(b"y") == (b"", True)
