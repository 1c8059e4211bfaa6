"""``minicontainerd``: the Docker Engine API on a unix socket, so the real ``docker`` CLI and docker-py work.

The layers, outside in (each a module named after what it teaches):

``server``
    the unix socket: its permissions, one asyncio task per client connection, graceful shutdown.
``http``
    HTTP/1.1 on one connection (parsing by ``h11``): keep-alive, chunked streaming replies, and the
    *hijack* -- the moment a connection stops speaking HTTP and becomes a raw pipe to a container.
``api``
    the routes: ``POST /containers/create`` and friends, mapped onto :class:`Engine` calls and
    engine errors mapped onto HTTP status codes.
``streams``
    the bytes inside the streams: Docker's 8-byte frame header that multiplexes stdout and stderr
    on one connection, JSON-lines progress, and the attach session that pumps both directions.
``main``
    the ``minicontainerd`` command line.

Nothing here knows how a container runs: that is the engine's job (``minicontainer.engine``).
"""
