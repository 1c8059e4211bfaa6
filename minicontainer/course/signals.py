"""How long ``stop`` takes, and why: the material of notebook 5.

``docker stop`` sends the container's stop signal (SIGTERM unless the image or ``--stop-signal`` says
otherwise) to its PID 1, waits the grace period (10 s unless ``-t``), then sends SIGKILL.  How long it
takes therefore says how the program answered SIGTERM:

* a program that **handles** it (a trap, a handler) exits at once, with the code it chooses;
* a program that **ignores** it waits out the grace period and dies of SIGKILL (exit code 137);
* **PID 1 of a PID namespace is special**: the kernel does not deliver it a signal whose action is the
  default (terminate).  ``sleep`` as PID 1 has no handler, so SIGTERM does nothing: the PID 1 problem.
  With ``--init`` (``init=True``) a small init (tini) is PID 1: it forwards SIGTERM to the program, which
  is no longer PID 1 and dies of it at once (exit code 143 = 128 + 15).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class StopTiming(NamedTuple):
    label: str
    seconds: float
    exit_code: int


def time_stop(client: Any, label: str, command: list[str], *, grace: int, **run_options: Any) -> StopTiming:
    """Start ``command`` in a busybox container, let it settle, and time ``stop`` with ``grace`` seconds."""
    container = client.containers.run("busybox", command, detach=True, **run_options)
    try:
        time.sleep(0.3)  # long enough for a shell to have set its trap
        start = time.monotonic()
        container.stop(timeout=grace)
        seconds = time.monotonic() - start
        return StopTiming(label, seconds, container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def draw_stop_times(timings: list[StopTiming], grace: int) -> Figure:
    """One bar per program: how long its stop took, against the grace period."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.8 * len(timings) + 1.4), layout="constrained")
    plt.close(fig)  # shown once, as the cell's value
    labels = [t.label for t in timings]
    ax.barh(labels, [t.seconds for t in timings], color=["#c44e52" if t.exit_code == 137 else "#55a868" for t in timings])
    for y, t in enumerate(timings):
        ax.text(t.seconds + grace * 0.01, y, f"{t.seconds:.2f} s, exit code {t.exit_code}", va="center", fontsize=9)
    ax.axvline(grace, color="#333333", linestyle="--")
    ax.text(grace, len(timings) - 0.45, f" grace period ({grace} s): then SIGKILL", fontsize=9, va="bottom")
    ax.set_xlim(0, grace * 1.45)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from `stop` (SIGTERM) to the container's exit")
    ax.set_title("SIGTERM, then SIGKILL after the grace period")
    return fig


def draw_events(events: list[dict]) -> Figure:
    """The daemon's container events on a time axis, one row per container.  Events too close to
    be labelled apart (create, attach and start come milliseconds apart) share one label, their
    actions one above the other, in order."""
    import matplotlib.pyplot as plt

    from minicontainer.observe.plots import near

    events = [e for e in events if e.get("Type") == "container"]
    if not events:
        raise ValueError("no container events to draw")

    def name(e: dict) -> str:
        return e["Actor"]["Attributes"].get("name", e["Actor"]["ID"][:12])

    names = list(dict.fromkeys(name(e) for e in events))
    t0 = min(e["timeNano"] for e in events)
    span = max((e["timeNano"] - t0) / 1e9 for e in events) or 1.0
    rows = {n: [e for e in events if name(e) == n] for n in names}
    groups = {n: near([(e["timeNano"] - t0) / 1e9 for e in row], span * 0.08) for n, row in rows.items()}
    tallest = max(len(g) for gs in groups.values() for g in gs)  # lines in the tallest label
    row_height = 0.45 + 0.16 * tallest  # inches: the label's lines fit under the next row
    fig, ax = plt.subplots(figsize=(11, row_height * len(names) + 1.2), layout="constrained")
    plt.close(fig)  # shown once, as the cell's value
    for y, n in enumerate(names):
        row = rows[n]
        xs = [(e["timeNano"] - t0) / 1e9 for e in row]
        ax.plot(xs, [y] * len(xs), "o", color="#4c72b0")
        for group in groups[n]:
            actions = "\n".join(row[i]["Action"].split(":")[0] for i in reversed(group))  # the first lowest
            ax.annotate(actions, (xs[group[0]], y), xytext=(0, 6), textcoords="offset points", ha="left",
                        va="bottom", fontsize=8, linespacing=1.1)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.4, len(names) - 0.4)
    ax.set_xlim(-0.02 * span, span * 1.1)  # room for the last label
    ax.set_xlabel("seconds since the first event")
    ax.set_title("The daemon's events (GET /events)")
    return fig
