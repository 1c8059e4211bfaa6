"""Image references parse and normalise as Docker's do; platforms are chosen as Docker chooses them."""

from __future__ import annotations

import pytest

from minicontainer.image import registry as registry_module
from minicontainer.image.reference import InvalidReference, Reference, is_loopback_host, parse
from minicontainer.image.registry import Platform, RegistryError, select_platform

DIGEST = "sha256:" + "ab" * 32

# text -> the fully qualified form (as Docker's ParseNormalizedNamed + TagNameOnly would give).
NORMALISED = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/debian", "docker.io/library/debian:latest"),
    ("docker/docker", "docker.io/docker/docker:latest"),
    ("docker.io/debian", "docker.io/library/debian:latest"),
    ("docker.io/library/debian", "docker.io/library/debian:latest"),
    ("docker.io/docker/docker", "docker.io/docker/docker:latest"),
    ("index.docker.io/debian", "docker.io/library/debian:latest"),
    ("index.docker.io/docker/docker", "docker.io/docker/docker:latest"),
    ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest"),
    ("127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest"),
    ("127.0.0.1:5000/docker/docker:v1", "127.0.0.1:5000/docker/docker:v1"),
    ("localhost/debian", "localhost/debian:latest"),  # localhost is a registry even without a port
    ("localhost:5000/foo/bar", "localhost:5000/foo/bar:latest"),
    ("localhost:5000", "docker.io/library/localhost:5000"),  # no '/': a name and a tag
    ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
    ("ghcr.io/a/b/c/d:x", "ghcr.io/a/b/c/d:x"),
    ("registry.example.com:8443/team/app", "registry.example.com:8443/team/app:latest"),
    ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ("Example.COM/app", "Example.COM/app:latest"),  # the domain may have capitals, the path may not
    ("foo_bar", "docker.io/library/foo_bar:latest"),
    ("foo__bar/a.b-c---d", "docker.io/foo__bar/a.b-c---d:latest"),
    ("busybox:Tag_1.2-x", "docker.io/library/busybox:Tag_1.2-x"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),  # a digest: no implied :latest
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    (f"localhost:5000/x/y:v1@{DIGEST}", f"localhost:5000/x/y:v1@{DIGEST}"),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",  # 64 chars, not all hex
     "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest"),
]


@pytest.mark.parametrize(("text", "full"), NORMALISED)
def test_normalisation(text, full):
    ref = parse(text)
    assert str(ref) == full
    assert parse(full) == ref  # the full form is a fixed point


def test_fields_and_forms():
    ref = parse("busybox")
    assert ref == Reference("docker.io", "library/busybox", "latest", None)
    assert isinstance(ref, tuple)  # a NamedTuple: cheap to import and to make
    assert ref.name == "docker.io/library/busybox"
    assert ref.familiar() == "busybox:latest" and ref.familiar_name() == "busybox"
    assert ref.api_host() == "registry-1.docker.io"
    assert ref.manifest_key == "latest"
    pinned = ref.with_digest(DIGEST)
    assert pinned.manifest_key == DIGEST and pinned.familiar() == f"busybox:latest@{DIGEST}"
    assert pinned.with_tag("v2") == Reference("docker.io", "library/busybox", "v2", None)
    local = parse("localhost:5000/team/app:v1")
    assert (local.domain, local.path, local.tag) == ("localhost:5000", "team/app", "v1")
    assert local.api_host() == "localhost:5000" and local.familiar() == "localhost:5000/team/app:v1"


@pytest.mark.parametrize(("text", "familiar"), [
    ("docker.io/library/busybox:latest", "busybox:latest"),
    ("alice/app:v1", "alice/app:v1"),
    ("docker.io/library/a/b", "library/a/b:latest"),  # library/ is dropped only for one-part names
    ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000/library/busybox:latest"),
    (f"busybox@{DIGEST}", f"busybox@{DIGEST}"),
])
def test_familiar(text, familiar):
    assert parse(text).familiar() == familiar


# text -> a piece of the rule the message must show.
INVALID = [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("docker.io/Library/busybox", "must be lowercase"),
    ("alice/App:v1", "must be lowercase"),
    ("busybox:", "a tag is 1 to 128 characters"),
    ("busybox:-x", "must not start with '.' or '-'"),
    ("busybox:.x", "must not start with '.' or '-'"),
    ("busybox:" + "a" * 129, "a tag is 1 to 128 characters"),
    ("busybox:a/b", "not a valid registry host"),  # the ":" is before the last "/": a host, not a tag
    ("busybox@sha256:abc", "sha256: followed by 64"),
    ("busybox@" + "ab" * 32, "a digest is ALGORITHM:HEX"),
    ("busybox@sha256:" + "AB" * 32, "64 lowercase hex"),
    ("ab" * 32, "that is an image ID"),
    ("foo//bar", "a repository name is lowercase letters and digits"),
    ("-foo", "a repository name"),
    ("foo-", "a repository name"),
    ("foo___bar", "a repository name"),
    ("foo..bar", "a repository name"),
    ("a b", "a repository name"),
    ("localhost:port/x", "not a valid registry host"),
    ("docker.io/", "empty"),
    ("example.com/" + "a" * 250, "not be more than 255 characters"),
]


@pytest.mark.parametrize(("text", "rule"), INVALID)
def test_invalid_references_name_the_rule(text, rule):
    with pytest.raises(InvalidReference) as e:
        parse(text)
    assert rule in str(e.value)
    assert str(e.value).startswith(f"invalid reference format '{text}'")
    assert isinstance(e.value, ValueError)


def test_with_tag_and_digest_check_their_input():
    with pytest.raises(InvalidReference):
        parse("busybox").with_tag("-bad")
    with pytest.raises(InvalidReference):
        parse("busybox").with_digest("sha256:short")


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.1.2.3", True),
    ("[::1]:5000", True), ("::1", True), ("docker.io", False), ("10.0.0.1:5000", False),
    ("localhost.example.com", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


# --- platforms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "platform"), [
    ("linux/amd64", Platform("linux", "amd64", None)),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("arm64", Platform("linux", "arm64", None)),
    ("linux/x86_64", Platform("linux", "amd64", None)),  # the kernel's names are understood too
    ("linux/aarch64", Platform("linux", "arm64", None)),
    ("Linux/ARM/v7", Platform("linux", "arm", "v7")),
])
def test_platform_parse(text, platform):
    assert Platform.parse(text) == platform


def test_platform_parse_invalid():
    with pytest.raises(ValueError, match="OS/ARCH"):
        Platform.parse("linux//v7")


@pytest.mark.parametrize(("machine", "expected"), [
    ("x86_64", "linux/amd64"), ("aarch64", "linux/arm64/v8"), ("armv7l", "linux/arm/v7"),
    ("riscv64", "linux/riscv64"),
])
def test_host_platform(monkeypatch, machine, expected):
    monkeypatch.setattr(registry_module._platform, "machine", lambda: machine)
    assert str(Platform.host()) == expected


INDEX = {"manifests": [
    {"digest": "sha256:win", "platform": {"os": "windows", "architecture": "amd64"}},
    {"digest": "sha256:amd64", "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:arm64", "platform": {"os": "linux", "architecture": "arm64"}},  # no variant: v8
    {"digest": "sha256:armv6", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
    {"digest": "sha256:armv7", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "sha256:amd64-second", "platform": {"os": "linux", "architecture": "amd64"}},
    {"digest": "sha256:attestation", "platform": {"os": "unknown", "architecture": "unknown"}},
]}


@pytest.mark.parametrize(("wanted", "digest"), [
    ("linux/amd64", "sha256:amd64"),  # the first match wins
    ("windows/amd64", "sha256:win"),
    ("linux/arm64", "sha256:arm64"),
    ("linux/arm64/v8", "sha256:arm64"),  # arm64 without a variant is v8
    ("linux/arm/v7", "sha256:armv7"),
    ("linux/arm/v6", "sha256:armv6"),
    ("linux/arm", "sha256:armv6"),  # no variant asked: any variant, the first
])
def test_select_platform(wanted, digest):
    assert select_platform(INDEX, Platform.parse(wanted))["digest"] == digest


def test_select_platform_no_match_lists_what_there_is():
    with pytest.raises(RegistryError) as e:
        select_platform(INDEX, Platform.parse("linux/s390x"))
    text = str(e.value)
    assert "no matching manifest for linux/s390x" in text
    assert "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64, windows/amd64" in text
    assert "unknown" not in text
