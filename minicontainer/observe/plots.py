"""Plots of sampled resource use (matplotlib, imported only here, only when drawing).

Each function takes :class:`~minicontainer.observe.sampler.Series` and returns a matplotlib
``Figure`` (no pyplot, no window: a notebook shows it, ``fig.savefig("x.png")`` writes it):

* :func:`memory`: memory in use against the limit (dashed), the OOM kill marked;
* :func:`cpu`: CPUs used against the quota (dashed), the periods where the quota ran out shaded;
* :func:`pids`: processes against the limit;
* :func:`compare`: one of those for several containers, side by side;
* :func:`overview`: memory, CPU and processes (rows) of several containers (columns);
* :func:`live`: sample and redraw in a notebook while the container runs.

Axes carry their units: seconds, MiB, CPUs.  A figure's data can be read back (``ax.lines``), which
is how the tests check them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minicontainer.observe.sampler import MiB, Series

METRICS = ("memory", "cpu", "pids")
# A use that reaches its limit runs along the limit's line (a fork loop at --pids-limit, a busy loop
# at its quota): the use is drawn wide and under, the limit thin, dashed and over, so both show.
USE = {"linewidth": 3.0, "zorder": 2}
LIMIT = {"linewidth": 1.2, "zorder": 3}


def _figure(columns: int = 1, rows: int = 1, size: tuple[float, float] = (6.0, 3.2)) -> tuple[Any, list]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def _limit_line(ax: Any, series: Series, field: str, unit: float, label: str) -> None:
    """The limit as a dashed horizontal line, over the time it applied (it may change: update)."""
    ts = series.column("t")
    limits = [None if v is None else v / unit for v in series.column(field)]
    if any(v is not None for v in limits):
        ax.plot(ts, [float("nan") if v is None else v for v in limits], linestyle="--", color="tab:red",
                label=label, drawstyle="steps-post", **LIMIT)


def near(times: list[float], gap: float) -> list[list[int]]:
    """The indexes of ``times`` (sorted), grouped where each is within ``gap`` of the one before: the
    events one label must tell together, because their own labels would be drawn over each other
    (a container's create, start and die can be a few milliseconds apart)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(times)), key=times.__getitem__):
        if groups and times[i] - times[groups[-1][-1]] <= gap:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _marks(ax: Any, series: Series, actions: tuple[str, ...] = ("oom", "die", "pause", "unpause", "update")) -> None:
    marks = [m for m in series.marks if m.action in actions]
    ts = series.column("t") + [m.t for m in marks]
    span = (max(ts) - min(ts)) if ts else 0.0
    for group in near([m.t for m in marks], span * 0.03):  # an OOM kill and its die: one label
        first = marks[group[0]]
        oom = any(marks[i].action == "oom" for i in group)
        color = "tab:red" if oom else "grey"
        for i in group:
            ax.axvline(marks[i].t, color=color, linestyle="-" if oom else ":", linewidth=1)
        text = ", ".join(dict.fromkeys("OOM kill" if marks[i].action == "oom" else marks[i].action for i in group))
        ax.annotate(text, (first.t, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                    fontsize=8, color=color)


def memory_axes(ax: Any, series: Series) -> None:
    ts = series.column("t")
    ax.plot(ts, [m / MiB for m in series.column("memory")], label="memory in use", color="tab:blue", **USE)
    _limit_line(ax, series, "memory_limit", MiB, "limit (-m)")
    oom = series.mark("oom")
    if oom is not None and series.points:
        peak = max(series.column("memory")) / MiB
        ax.plot([oom.t], [peak], marker="X", markersize=10, color="tab:red", linestyle="none", label="OOM kill", zorder=4)
    _marks(ax, series, ("die", "pause", "unpause", "update"))
    ax.set(xlabel="time (s)", ylabel="memory (MiB)", title=f"{series.name}: memory")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)


def cpu_axes(ax: Any, series: Series) -> None:
    ts = series.column("t")
    ax.plot(ts, series.column("cpu"), label="CPU used", color="tab:green", **USE)
    _limit_line(ax, series, "cpu_limit", 1, "quota (--cpus)")
    throttled = series.column("throttled")
    label = "throttled"
    for i in range(1, len(ts)):  # where the quota ran out during the interval
        if throttled[i] > throttled[i - 1]:
            ax.axvspan(ts[i - 1], ts[i], color="tab:orange", alpha=0.25, linewidth=0, label=label)
            label = None  # once in the legend
    _marks(ax, series)
    ax.set(xlabel="time (s)", ylabel="CPU (CPUs)", title=f"{series.name}: CPU")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)


def pids_axes(ax: Any, series: Series) -> None:
    ts = series.column("t")
    ax.plot(ts, series.column("pids"), label="processes", color="tab:purple", drawstyle="steps-post", **USE)
    _limit_line(ax, series, "pids_limit", 1, "limit (--pids-limit)")
    _marks(ax, series)
    ax.set(xlabel="time (s)", ylabel="processes", title=f"{series.name}: processes")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)


AXES: dict[str, Callable[[Any, Series], None]] = {"memory": memory_axes, "cpu": cpu_axes, "pids": pids_axes}


def memory(series: Series) -> Any:
    """Memory in use (MiB) over time, the limit dashed, the OOM kill marked with a red X."""
    fig, (ax,) = _figure()
    memory_axes(ax, series)
    return fig


def cpu(series: Series) -> Any:
    """CPUs used over time, the quota dashed, the intervals in which the quota ran out shaded."""
    fig, (ax,) = _figure()
    cpu_axes(ax, series)
    return fig


def pids(series: Series) -> Any:
    """Processes over time, the limit dashed."""
    fig, (ax,) = _figure()
    pids_axes(ax, series)
    return fig


def compare(many: list[Series], metric: str = "memory") -> Any:
    """The same plot for several containers, side by side, on the same scale."""
    if metric not in AXES:
        raise ValueError(f"metric must be one of {', '.join(AXES)}, not {metric!r}")
    fig, axes = _figure(columns=len(many))
    for ax, series in zip(axes, many, strict=True):
        AXES[metric](ax, series)
    top = max(ax.get_ylim()[1] for ax in axes)
    for ax in axes:
        ax.set_ylim(0, top)
    return fig


def overview(many: Series | list[Series]) -> Any:
    """Memory, CPU and processes (one row each) of each container (one column each)."""
    many = [many] if isinstance(many, Series) else list(many)
    fig, axes = _figure(columns=len(many), rows=len(METRICS))
    for row, metric in enumerate(METRICS):
        for column, series in enumerate(many):
            AXES[metric](axes[row * len(many) + column], series)
    return fig


def live(container: Any, duration: float = 10.0, *, metric: str = "memory", interval: float = 0.1,
         every: float = 0.5) -> Series:
    """In a notebook: sample ``container`` and redraw the ``metric`` plot every ``every`` seconds
    while it runs (an IPython display handle, updated in place); returns the series."""
    import time

    from IPython.display import display

    from minicontainer.observe.sampler import Sampler

    sampler = Sampler(container.client, [container], interval=interval).start()
    series = sampler.series[0]
    handle = display(_draw(metric, series), display_id=True)
    deadline = time.monotonic() + duration
    while sampler.running() and time.monotonic() < deadline:
        time.sleep(every)
        handle.update(_draw(metric, series))
    sampler.stop()
    handle.update(_draw(metric, series))
    return series


def _draw(metric: str, series: Series) -> Any:
    fig, (ax,) = _figure()
    AXES[metric](ax, series)
    return fig
