"""``POST /commit``: a container's changes become an image (``docker commit``, docker-py's ``commit``)."""

from __future__ import annotations

import json

from minicontainer.daemon.routing import BadRequest, Call, Reply, route


def _reference(repo: str, tag: str) -> str | None:
    """``repo`` + ``tag`` as a full reference; None (untagged) when there is no repo, as Docker does."""
    from minicontainer.image.reference import parse

    if not repo:
        if tag:
            raise BadRequest("invalid reference format: a tag was given without a repository")
        return None
    try:
        ref = parse(f"{repo}:{tag or 'latest'}")
    except ValueError as e:
        raise BadRequest(f"invalid reference format: {e}") from None
    if ref.digest:
        raise BadRequest(f"invalid reference format: {repo}: a digest names existing content, give a tag")
    return str(ref)


class CommitRoutes:
    engine: object

    @route("POST", "/commit")
    async def commit(self, call: Call) -> Reply:
        cid = call.q("container") or ""
        if not cid:
            raise BadRequest("container is required")
        try:
            body = call.request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"invalid JSON in the request body: {e}") from None
        body = body if isinstance(body, dict) else {}  # the docker CLI sends `null` for no config
        reply = await self.engine.commit(  # type: ignore[attr-defined]
            cid, repo_tag=_reference(call.q("repo") or "", call.q("tag") or ""), comment=call.q("comment") or "",
            author=call.q("author") or "", pause=call.flag("pause", True),
            changes=(call.request.query_lists or {}).get("changes", []), config=body)
        return Reply(201, reply)
