"""A container's start, drawn: every kernel step the runtime recorded, on one time axis.

Three processes take part in starting a container (see ``runtime/sync.py``):

* **parent**: the daemon's runtime, on the host: it makes the cgroup, forks stage1, mounts the
  image's layers, and later collects the exit status;
* **stage1**: joins the cgroup, unshares the namespaces, forks init, reports its PID and exits;
* **init**: PID 1 in the new namespaces: mounts /proc and /dev, ``pivot_root``, hostname, identity,
  capabilities, then waits for ``start`` to ``execve`` the user's program.

Each step is an event with a ``CLOCK_MONOTONIC`` time, a clock every process on the host shares,
so the three lanes line up.  The daemon hands them out at ``GET /containers/{id}/events``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from minicontainer.client import Client, Container

SIDES = ("parent", "stage1", "init")
# The steps worth a label on the picture: the ones a learner should be able to name afterwards.
LANDMARKS = {"fork": "fork", "unshare": "unshare", "pivot_root": "pivot_root", "sethostname": "hostname",
             "capset": "capabilities", "start": "start", "exit": "exit"}
COLOURS = {"mount": "#4c72b0", "umount2": "#4c72b0", "pivot_root": "#4c72b0", "unshare": "#c44e52",
           "fork": "#c44e52", "mkdir": "#55a868", "rmdir": "#55a868", "write": "#55a868", "start": "#8172b2",
           "exit": "#8172b2"}
OTHER = "#999999"


def events_of(client: Client, container: Container | str) -> list[dict]:
    """The kernel steps recorded for a container, oldest first (its starts, stops and kills)."""
    cid = container if isinstance(container, str) else container.id
    return client.api.json("GET", f"/containers/{cid}/events")


def draw(events: list[dict], title: str = "What the runtime did, process by process") -> Figure:
    """A timeline: one lane per process (parent, stage1, init), one mark per kernel call.

    A mark's width is the call's duration (at least a sliver, so that quick calls show); its colour
    says its kind: mounts blue, namespaces and forks red, cgroup files green, start and exit purple.
    """
    import matplotlib.pyplot as plt  # in a notebook, pyplot's import is what lets Jupyter show a figure

    if not events:
        raise ValueError("no events to draw: has the container been started?")
    t0 = min(e["at_ns"] for e in events)
    end_ms = max((e["at_ns"] - t0) / 1e6 + e["ms"] for e in events)
    sliver = end_ms / 400 or 0.01
    fig, ax = plt.subplots(figsize=(11, 3.2), layout="constrained")
    plt.close(fig)  # not drawn at the cell's end as well: the notebook shows it once, as the cell's value
    lanes = {side: i for i, side in enumerate(reversed(SIDES))}
    labelled: set[tuple[str, str]] = set()
    for e in events:
        lane = lanes.get(e["side"])
        if lane is None:
            continue
        start = (e["at_ns"] - t0) / 1e6
        ax.broken_barh([(start, max(e["ms"], sliver))], (lane - 0.3, 0.6), color=COLOURS.get(e["op"], OTHER))
        label = LANDMARKS.get(e["op"])
        if label and (e["side"], label) not in labelled:  # the first of each: a fork per side, one start
            labelled.add((e["side"], label))
            ax.annotate(label, (start, lane + 0.32), fontsize=8, rotation=35, ha="left", va="bottom")
    ax.set_yticks(list(lanes.values()), list(lanes))
    ax.set_ylim(-0.6, len(lanes) - 0.1 + 0.8)
    ax.set_xlabel("milliseconds since the first recorded step (CLOCK_MONOTONIC, shared by all three processes)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def summary(events: list[dict]) -> dict[str, dict[str, float]]:
    """Per process: how many kernel calls it made, and over how many milliseconds."""
    out = {}
    for side in SIDES:
        mine = [e for e in events if e["side"] == side]
        if mine:
            first = min(e["at_ns"] for e in mine)
            last = max(e["at_ns"] + e["ms"] * 1e6 for e in mine)
            out[side] = {"calls": len(mine), "ms": round((last - first) / 1e6, 3)}
    return out
