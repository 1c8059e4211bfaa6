"""--explain's narration: every line fits a 100-column terminal, paths are told relative to the
container's directory, and a run of like steps (29 capabilities dropped) is one line."""

from __future__ import annotations

import io

from minicontainer.observe.events import Event
from minicontainer.observe.explain import narrate, shorten

CONTAINER = "/var/lib/minicontainer/containers/" + "ab" * 32
LAYER = "/var/lib/minicontainer/image/layers/sha256/" + "cd" * 32 + "/diff"


def told(events: list[Event]) -> str:
    out = io.StringIO()
    narrate(events, out, title="run")
    return out.getvalue()


def test_paths_are_told_short():
    assert shorten(f"{CONTAINER}/merged/proc") == "merged/proc"
    assert shorten(f"lowerdir={LAYER}:{LAYER},upperdir={CONTAINER}/upper") == \
        "lowerdir=layers/cdcdcdcdcdcd:layers/cdcdcdcdcdcd,upperdir=upper"
    assert shorten("/sys/fs/cgroup/memory/user.slice/abc/minicontainer-0123456789ab/tasks") == \
        "/sys/fs/cgroup/memory/…/minicontainer-0123456789ab/tasks"
    assert shorten("/run/minicontainer/runtime/0123456789ab/exec.fifo") == "runtime/0123456789ab/exec.fifo"


def test_every_line_fits_a_100_column_terminal():
    events = [Event("mount", f"overlay, {CONTAINER}/merged, overlay, 0, \"lowerdir={LAYER},upperdir={CONTAINER}/upper,"
                    f"workdir={CONTAINER}/work\"", at_ns=1, detail="the image's layers (read-only, top first) under "
                    "the container's writable layer, and a long explanation that goes on and on"),
              Event("unshare", "CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET",
                    at_ns=2, side="stage1"),
              Event("write", "/sys/fs/cgroup/memory/a/b/c/d/minicontainer-0123456789ab/tasks <- 0", at_ns=3)]
    text = told(events)
    assert all(len(line) <= 100 for line in text.splitlines()), text
    assert "mount(overlay, merged, overlay, 0," in text and "upperdir=upper" in text
    assert "/tasks <- 0)" in text and "CLONE_NEWNET)" in text


def test_like_steps_are_folded_into_one_line():
    caps = [Event("prctl", f"PR_CAPBSET_DROP, {n}", at_ns=10 + n, side="init", ms=0.01,
                  detail=f"CAP_{n} leaves the bounding set") for n in range(29)]
    text = told([Event("chdir", "/", at_ns=1, side="init"), *caps, Event("setsid", "", at_ns=100, side="init")])
    lines = text.splitlines()
    assert sum("PR_CAPBSET_DROP" in line for line in lines) == 1
    assert "prctl(PR_CAPBSET_DROP, 0) ×29" in text and "each leaves the bounding set: CAP_0, CAP_1," in text
    assert "(29 in all)" in text and "31 kernel steps" in text   # the count is still every step
    failed = [*caps[:3], caps[3]._replace(result="EPERM", errno=1)]
    assert told(failed).count("PR_CAPBSET_DROP") == 2   # a failure is never folded away
