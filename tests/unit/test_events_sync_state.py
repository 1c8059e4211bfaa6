"""Events and their narration, the sync channel, and the state directory."""

from __future__ import annotations

import errno
import io
import os

import pytest

from minicontainer.kernel.syscalls import (
    CLONE_FLAG_NAMES,
    CLONE_NEWNS,
    CLONE_NEWPID,
    KernelError,
    Syscalls,
    flag_names,
)
from minicontainer.observe.events import Event, Trace, read_jsonl, write_jsonl
from minicontainer.observe.explain import narrate
from minicontainer.runtime import sync
from minicontainer.runtime.errors import RuntimeFailure
from minicontainer.runtime.state import State, process_start_time


def test_events_round_trip_through_json_lines(tmp_path):
    trace = Trace(side="init")
    seen = []
    trace.listeners.append(seen.append)
    trace.record("mount", "proc, /proc, proc", detail="why")
    trace.record("pivot_root", ".", "EINVAL", errno=errno.EINVAL)
    path = str(tmp_path / "events.jsonl")
    write_jsonl(path, trace.events)
    assert read_jsonl(path) == trace.events == seen
    assert read_jsonl(str(tmp_path / "none")) == []


def test_a_failed_call_is_recorded_and_raised_as_verb_path_errno(tmp_path):
    sys = Syscalls()
    with pytest.raises(KernelError) as e:
        sys.write_file(str(tmp_path / "no" / "such"), "x")
    assert e.value.verb == "write" and e.value.errno == errno.ENOENT
    assert str(e.value).startswith(f"write '{tmp_path}/no/such': No such file or directory")
    assert sys.trace.events[-1].result == "ENOENT"


def test_flags_are_shown_by_name():
    assert flag_names(CLONE_NEWNS | CLONE_NEWPID, CLONE_FLAG_NAMES) == "CLONE_NEWNS|CLONE_NEWPID"
    assert flag_names(CLONE_NEWNS | 0x1, CLONE_FLAG_NAMES) == "CLONE_NEWNS|0x1"
    assert flag_names(0, CLONE_FLAG_NAMES) == "0"


def test_narration_orders_by_time_and_explains():
    evs = [Event("pivot_root", ".", at_ns=2_000_000, side="init", detail="swap roots"),
           Event("unshare", "CLONE_NEWPID", at_ns=1_000_000, side="stage1")]
    out = io.StringIO()
    narrate(evs, out, title="create x")
    text = out.getvalue()
    assert text.index("unshare") < text.index("pivot_root")
    assert "+    1.00 ms  init" in text and "↳ swap roots" in text
    assert "2 kernel steps" in text


def test_sync_channel_carries_messages_and_reports_a_dead_peer():
    parent, child = sync.Channel.pair()
    child.send_events(sync.READY, [Event("mount", "x")])
    msg = parent.recv(sync.READY)
    assert Event.from_dict(msg["events"][0]).op == "mount"
    child.send(sync.INIT_PID, pid=5)
    with pytest.raises(sync.SyncError, match="expected ready"):
        parent.recv(sync.READY)
    child.close()
    with pytest.raises(sync.SyncError, match="exited without a word"):
        parent.recv(sync.READY)
    assert issubclass(sync.SyncError, RuntimeFailure)
    parent.close()


def test_state_status_is_observed(tmp_path):
    st = State.reserve(str(tmp_path), "c1", "/b")
    with pytest.raises(RuntimeFailure, match="already exists"):
        State.reserve(str(tmp_path), "c1", "/b")
    assert st.status == "creating"
    st.pid, st.start_time = os.getpid(), process_start_time(os.getpid())
    os.mkfifo(st.fifo)
    st.save()
    assert State.load(str(tmp_path), "c1").status == "created"
    os.unlink(st.fifo)
    assert State.load(str(tmp_path), "c1").status == "running"
    st.start_time += 1  # a different process now holds the PID
    assert st.status == "stopped"
    assert st.oci()["pid"] == 0
    st.remove()
    assert not os.path.exists(st.dir)


def test_invalid_ids_are_refused(tmp_path):
    for bad in ("", "../x", "a/b", "-x", "x" * 200):
        with pytest.raises(RuntimeFailure, match="invalid container id"):
            State.reserve(str(tmp_path), bad, "/b")
