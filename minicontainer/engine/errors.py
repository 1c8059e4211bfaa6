"""The engine's errors, each with the HTTP status the Docker Engine API gives it.

The daemon turns them into ``{"message": "..."}`` replies with that status; the docker CLI and
docker-py act on the status (a 404 from ``create`` makes the CLI pull the image and try again).
"""

from __future__ import annotations


class EngineError(Exception):
    status = 500


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class NotModified(EngineError):
    status = 304


class InvalidParameter(EngineError):
    status = 400
