"""``pull --explain`` shows each exchange with a registry, and never a secret."""

from __future__ import annotations

from minicontainer.image.registry import _shown_url


def test_a_presigned_urls_signature_is_not_shown():
    assert _shown_url("https://bucket.s3.example/docker/blobs/ab/data?X-Amz-Signature=abc&X-Amz-Security-Token=zzz") \
        == "https://bucket.s3.example/docker/blobs/ab/data"
    assert _shown_url("https://blob.core.example/x?sv=2020&sig=SECRET") == "https://blob.core.example/x"


def test_a_token_requests_scope_is_what_it_teaches():
    shown = _shown_url("https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox"
                       "%3Apull&account=someone")
    assert shown == "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/busybox:pull"
