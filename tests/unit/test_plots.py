"""The sampler's series and the plots drawn from it: asserted on the figures' data, not on pixels."""

from __future__ import annotations

import pytest

from minicontainer.observe import plots
from minicontainer.observe.sampler import Mark, Point, Series, cpu_limit, parse_read

MiB = 1 << 20


def series(name: str = "web") -> Series:
    s = Series(name, "ab" * 32)
    for i, (mem, cpu, throttled, pids) in enumerate([(4, 0.1, 0, 1), (12, 0.5, 3, 2), (20, 0.5, 7, 5),
                                                     (31, 0.4, 7, 5)]):
        s.points.append(Point(t=0.5 * (i + 1), memory=mem * MiB, memory_limit=32 * MiB, cpu=cpu, cpu_limit=0.5,
                              throttled=throttled, periods=10 * i, pids=pids, pids_limit=20, read_bytes=0,
                              written_bytes=0))
    s.marks += [Mark(2.1, "oom", {}), Mark(2.1, "die", {"exitCode": "137"})]
    return s


def test_a_series_prints_and_indexes():
    s = series()
    assert len(s) == 4 and s[-1].memory == 31 * MiB and s.column("pids") == [1, 2, 5, 5]
    assert s.mark("oom").t == 2.1 and s.mark("pause") is None
    text = repr(s)
    assert "memory (MiB)" in text and "31.00" in text and "event: oom" in text


def test_memory_plot_has_the_usage_the_limit_and_the_oom_kill():
    s = series()
    ax = plots.memory(s).axes[0]
    used, limit, oom = ax.lines[:3]
    assert list(used.get_xdata()) == [0.5, 1.0, 1.5, 2.0] and list(used.get_ydata()) == [4, 12, 20, 31]
    assert set(limit.get_ydata()) == {32} and limit.get_linestyle() == "--"
    assert oom.get_label() == "OOM kill" and list(oom.get_xdata()) == [2.1] and list(oom.get_ydata()) == [31]
    assert ax.get_ylabel() == "memory (MiB)" and ax.get_xlabel() == "time (s)"


def test_cpu_plot_shades_the_intervals_in_which_the_quota_ran_out():
    ax = plots.cpu(series()).axes[0]
    assert list(ax.lines[0].get_ydata()) == [0.1, 0.5, 0.5, 0.4]
    assert set(ax.lines[1].get_ydata()) == {0.5}
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
    assert spans == [(0.5, 1.0), (1.0, 1.5)]  # throttled rose between points 0-1 and 1-2, not 2-3
    assert ax.get_ylabel() == "CPU (CPUs)"


def test_pids_compare_overview_and_a_png(tmp_path):
    a, b = series("a"), series("b")
    ax = plots.pids(a).axes[0]
    assert list(ax.lines[0].get_ydata()) == [1, 2, 5, 5] and set(ax.lines[1].get_ydata()) == {20}
    fig = plots.compare([a, b], "memory")
    assert [ax.get_title() for ax in fig.axes] == ["a: memory", "b: memory"]
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    fig = plots.overview([a, b])
    assert len(fig.axes) == 6 and fig.axes[5].get_title() == "b: processes"
    fig.savefig(tmp_path / "o.png")
    assert (tmp_path / "o.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="metric must be one of"):
        plots.compare([a], "disk")


def _overlapping(fig) -> list[tuple[str, str]]:
    """The pairs of text labels (annotations) of a figure's axes whose drawn boxes overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # drawn as a PNG would be: the labels' real sizes
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes for t in ax.texts]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]


def test_a_use_at_its_limit_stays_visible_under_the_limit_line():
    """Notebook 3's fork loop: the processes reach --pids-limit and run along its line for the rest
    of the plot.  The use is drawn wide and under, the limit thin and over: both show."""
    s = series()
    s.points[:] = [p._replace(pids=20) for p in s.points]
    for figure in (plots.pids(s), plots.memory(s), plots.cpu(s)):
        used, limit = figure.axes[0].lines[:2]
        assert used.get_zorder() < limit.get_zorder() and used.get_linewidth() >= 2 * limit.get_linewidth()
        assert limit.get_linestyle() == "--"


def test_marks_at_the_same_moment_share_one_label():
    fig = plots.pids(series())  # the OOM kill and the die, both at 2.1 s
    assert [t.get_text() for t in fig.axes[0].texts] == ["OOM kill, die"] and _overlapping(fig) == []


def test_event_labels_never_overlap():
    """Notebook 5: create and start, then kill, die, stop and destroy, milliseconds apart."""
    from minicontainer.course import signals

    def ev(action: str, t: float, name: str = "lifecycle-demo") -> dict:
        return {"Type": "container", "Action": action, "timeNano": int(1e18 + t * 1e9),
                "Actor": {"ID": "a" * 64, "Attributes": {"name": name}}}

    events = [ev("create", 0), ev("start", 0.06), ev("kill", 0.3), ev("kill", 1.3), ev("die", 1.31),
              ev("stop", 1.32), ev("destroy", 1.4), ev("create", 0.5, "other"), ev("start", 0.51, "other"),
              ev("exec_start: sh -c true", 0.52, "other"), ev("die", 0.9, "other")]
    fig = signals.draw_events(events)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert sorted(" ".join(labels).split()) == sorted(e["Action"].split(":")[0] for e in events)  # each, once
    assert labels[0] == "start\ncreate" and "destroy\nstop\ndie\nkill" in labels  # in order, upwards
    assert _overlapping(fig) == []
    axes_box = ax.get_window_extent()
    renderer = fig.canvas.get_renderer()  # the Agg canvas _overlapping drew with
    assert all(axes_box.contains(*t.get_window_extent(renderer).p1) for t in ax.texts)  # not over the title


def test_no_limit_draws_no_limit_line():
    s = Series("x", "c" * 64)
    s.points.append(Point(0.1, MiB, None, 0.0, None, 0, 0, 1, None, 0, 0))
    assert len(plots.memory(s).axes[0].lines) == 1


def test_helpers():
    assert parse_read("2023-11-14T22:13:20.5Z") == 1_700_000_000.5
    assert cpu_limit({"NanoCpus": 500_000_000}) == 0.5
    assert cpu_limit({"CpuQuota": 150_000, "CpuPeriod": 100_000}) == 1.5
    assert cpu_limit({}) is None


def test_the_sampler_module_imports_no_matplotlib():
    import subprocess
    import sys

    code = "import sys, minicontainer.observe.sampler; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
