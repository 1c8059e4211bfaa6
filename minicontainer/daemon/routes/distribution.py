"""``GET /distribution/{name}/json``: what a registry holds under a name, without pulling it.

Docker's ``docker manifest inspect``-like question, answered by the daemon (it has the registry
settings and mirrors a client has not): the descriptor of the manifest, or of the index, a tag names,
and the platforms that image is built for.  Nothing is downloaded but the manifest itself.  The
course's first cell asks it, to tell a learner before the first pull whether a registry can be reached.
"""

from __future__ import annotations

import asyncio

from minicontainer.daemon.routing import BadRequest, Call, Reply, registry_auth, route


class DistributionRoutes:
    @route("GET", "/distribution/{name*}/json")
    async def distribution_inspect(self, call: Call, name: str) -> Reply:
        auth = registry_auth(call.request.headers.get("x-registry-auth")) or {}
        return Reply(200, await asyncio.to_thread(inspect_distribution, name, auth))


def inspect_distribution(name: str, auth: dict) -> dict:
    """The reply's body: ``Descriptor`` (mediaType, digest, size of what the name points to) and
    ``Platforms`` (os, architecture, variant: an index's entries; empty for a single manifest, whose
    platform is in its config, which this does not download)."""
    import json

    from minicontainer.engine.images import registry_client
    from minicontainer.image.reference import parse

    try:
        ref = parse(name)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    client = registry_client(auth=auth)
    try:
        manifest = client.get_manifest(ref)
    finally:
        client.close()
    raw, digest = (manifest.index_raw, manifest.index_digest) if manifest.index_digest else (manifest.raw,
                                                                                              manifest.digest)
    media_type = (json.loads(raw).get("mediaType") if manifest.index_digest else manifest.media_type) or ""
    platforms = []
    if manifest.index_digest:
        for entry in json.loads(raw).get("manifests") or []:
            p = entry.get("platform") or {}
            if p.get("os") and p.get("os") != "unknown":  # attestation manifests name no platform
                platforms.append({k: p[k] for k in ("os", "architecture", "variant") if p.get(k)})
    return {"Descriptor": {"mediaType": media_type, "digest": digest, "size": len(raw)}, "Platforms": platforms}
