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
                label=label, drawstyle="steps-post")


def _marks(ax: Any, series: Series, actions: tuple[str, ...] = ("oom", "die", "pause", "unpause", "update")) -> None:
    for mark in series.marks:
        if mark.action in actions:
            color = "tab:red" if mark.action == "oom" else "grey"
            ax.axvline(mark.t, color=color, linestyle=":" if mark.action != "oom" else "-", linewidth=1)
            ax.annotate("OOM kill" if mark.action == "oom" else mark.action, (mark.t, 1), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=8, color=color)


def memory_axes(ax: Any, series: Series) -> None:
    ts = series.column("t")
    ax.plot(ts, [m / MiB for m in series.column("memory")], label="memory in use", color="tab:blue")
    _limit_line(ax, series, "memory_limit", MiB, "limit (-m)")
    oom = series.mark("oom")
    if oom is not None and series.points:
        peak = max(series.column("memory")) / MiB
        ax.plot([oom.t], [peak], marker="X", markersize=10, color="tab:red", linestyle="none", label="OOM kill")
    _marks(ax, series, ("die", "pause", "unpause", "update"))
    ax.set(xlabel="time (s)", ylabel="memory (MiB)", title=f"{series.name}: memory")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)


def cpu_axes(ax: Any, series: Series) -> None:
    ts = series.column("t")
    ax.plot(ts, series.column("cpu"), label="CPU used", color="tab:green")
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
    ax.plot(ts, series.column("pids"), label="processes", color="tab:purple", drawstyle="steps-post")
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
