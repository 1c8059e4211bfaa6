"""A registry whose name does not resolve fails a pull at once (no retries: waiting does not make a
name resolve), and the engine names what can be run instead.  No DNS query leaves the machine: the
session's adapter fails as getaddrinfo does."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from urllib3.exceptions import NameResolutionError

from minicontainer.engine.images import offline_hint, pull
from minicontainer.image.registry import RegistryClient, UnreachableError
from minicontainer.image.store import Store


class Unresolvable(requests.adapters.BaseAdapter):
    calls = 0

    def send(self, request, **kwargs):
        Unresolvable.calls += 1
        reason = NameResolutionError("registry-1.docker.io", None, socket.gaierror(-3, "Temporary failure in name resolution"))
        raise requests.ConnectionError(reason, request=request)

    def close(self):
        pass


def test_an_unresolvable_registry_fails_at_once_and_says_what_to_run(tmp_path):
    client = RegistryClient(backoff=1.0)
    client.session.mount("https://", Unresolvable())
    store = Store(str(tmp_path / "store"))
    Unresolvable.calls = 0
    started = time.monotonic()
    with pytest.raises(UnreachableError) as e:
        pull("busybox", store, client=client)
    assert time.monotonic() - started < 1 and Unresolvable.calls == 1   # no retry
    message = str(e.value)
    assert "cannot reach registry-1.docker.io: its name does not resolve (Temporary failure in name resolution)" \
        in message
    assert "There are no images on this machine" in message and "`minicontainer starter`" in message


def test_the_hint_lists_the_local_images(tmp_path):
    from minicontainer.image.starter import install_starter

    store = Store(str(tmp_path / "store"))
    install_starter(store, "hello-world")
    assert offline_hint(store).startswith("The images on this machine: hello-world:latest. ")
