"""Helpers for the course notebooks (``notebooks/``), so that their cells stay short.

A notebook cell should show one idea; the plumbing lives here, where it can be read too:

* :mod:`~minicontainer.course.environment`: the first cell of every notebook.  Is the daemon there,
  may this user talk to it, what does this host allow, can images be pulled?  It says how to fix
  what is missing, instead of letting a cell fail three cells later.
* :mod:`~minicontainer.course.exercises`: each exercise's check.  It answers with a hint, never with
  the solution (the solutions live apart, in ``lessons/solutions/``).
* :mod:`~minicontainer.course.timeline`: the runtime's recorded kernel steps (parent, stage1, init)
  drawn on one time axis.
* :mod:`~minicontainer.course.render`: run a notebook top to bottom and write it as HTML that opens
  offline (``make demo``, and the tests).

Like the client, everything here runs as an ordinary user: the daemon does the root part.
"""

from __future__ import annotations

from minicontainer.course.environment import check_environment, pull
from minicontainer.course.exercises import check

__all__ = ["check", "check_environment", "pull"]
