"""The Engine API's routes for the newer concepts, one module (and one class of route methods) each.

:class:`minicontainer.daemon.api.DockerAPI` inherits every class here; see
:mod:`minicontainer.daemon.routing` for how a route is declared.
"""
