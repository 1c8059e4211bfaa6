"""Each exercise's check: it says whether an answer is right and, if not, gives a hint.

A check never shows the solution (those live apart, in ``lessons/solutions/``, for instructors, and
the tests run every check against its solution and against a typical wrong answer).  Where it can, a
check measures the right answer on the learner's own machine, through the daemon, instead of comparing
with a number written down here: the container IDs, the counts and the PIDs are theirs.

In a notebook::

    def image_of(container):
        return ...                         # the learner's answer
    course.check("hello-world/image-id", image_of, client=client)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Verdict(NamedTuple):
    ok: bool
    message: str  # what went right, or the hint


class Exercise(NamedTuple):
    question: str
    judge: Callable[..., Verdict]  # (answer, **context) -> Verdict


EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, question: str) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    def register(judge: Callable[..., Verdict]) -> Callable[..., Verdict]:
        EXERCISES[key] = Exercise(question, judge)
        return judge

    return register


def evaluate(key: str, answer: Any, **context: Any) -> Verdict:
    """Judge ``answer``; an answer that raises is a wrong answer (its error is part of the hint)."""
    try:
        judge = EXERCISES[key].judge
    except KeyError:
        raise KeyError(f"no exercise {key!r}; the exercises are: {', '.join(EXERCISES)}") from None
    try:
        return judge(answer, **context)
    except Exception as e:  # noqa: BLE001 - the learner's code failed: that is an answer to correct
        return Verdict(False, f"your answer raised {type(e).__name__}: {e}")


def check(key: str, answer: Any, **context: Any) -> None:
    """Judge ``answer`` and show the verdict: what it shows when right, a hint when wrong."""
    verdict = evaluate(key, answer, **context)
    mark = "\N{CHECK MARK} Right" if verdict.ok else "\N{BALLOT X} Not yet"
    text = f"{mark}: {verdict.message}"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        import html

        colour = "#1a7f37" if verdict.ok else "#cf222e"
        display(HTML(f"<div class='minicontainer-check' style='color:{colour}'><b>{html.escape(mark)}</b>: "
                     f"{html.escape(verdict.message)}</div>"))
    else:
        print(text)


def _verdict(ok: bool, right: str, hint: str) -> Verdict:
    return Verdict(True, right) if ok else Verdict(False, hint)


def _graded(got: Any, expected: Any, right: str, known: dict[Any, str], otherwise: str) -> Verdict:
    """The right answer, then the known wrong ones each with its own hint, then any other."""
    if got == expected:
        return Verdict(True, right)
    return Verdict(False, known.get(got, otherwise) if _hashable(got) else otherwise)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _asked_about(container: Any, answer: Callable, truth: Callable) -> tuple[Any, Any]:
    """The right answer about a container made for the check, and the learner's; then the container goes."""
    try:
        return truth(container), answer(container)
    finally:
        container.remove(force=True)


# --- 1. What happens when you run hello-world ------------------------------------------------------


@exercise("hello-world/image-id", "Write image_of(container): the ID of the image a container was created from.")
def _image_id(answer: Callable, *, client: Any) -> Verdict:
    container = client.containers.create("hello-world")
    expected, got = _asked_about(container, answer, lambda c: c.attrs["Image"])
    if got == expected:
        return Verdict(True, f"{got[:19]}... is the sha256 of the image's config: every container made from "
                             "this image names the same ID, while each container's own ID is new.")
    if got == container.id:
        return Verdict(False, "that is the container's own ID, random and new for every container. Which key "
                              "of container.attrs names the image, by its content?")
    return Verdict(False, f"{str(got)[:40]!r} is not the image's ID. Print container.attrs and look for a "
                          "value starting with sha256: that the container does not make itself.")


@exercise("hello-world/exec-side", "Which of parent, stage1 and init becomes the program you asked to run?")
def _exec_side(answer: str) -> Verdict:
    said = str(answer).strip().lower()
    if said == "init":
        return Verdict(True, "init is PID 1 of the new PID namespace; when start opens exec.fifo it execve()s "
                             "your program, which keeps PID 1.")
    if said == "stage1":
        return Verdict(False, "stage1 exits once it has forked: look at where its lane ends on the timeline.")
    if said == "parent":
        return Verdict(False, "the parent stays on the host, outside every new namespace: it is the one that "
                              "collects the exit status. Which lane has PID 1?")
    return Verdict(False, "answer with one of 'parent', 'stage1' or 'init'.")


@exercise("hello-world/init-mounts", "Write init_mounts(events): how many mount calls init made.")
def _init_mounts(answer: Callable, *, events: list[dict]) -> Verdict:
    expected = sum(1 for e in events if e["op"] == "mount" and e["side"] == "init")
    every = sum(1 for e in events if e["op"] == "mount")
    return _graded(answer(events), expected,
                   f"{expected} mounts, all inside the new mount namespace: proc, /dev, devpts, shm, mqueue, sysfs "
                   "and the binds that mask paths. The host never sees them.",
                   {every: "that counts the parent's mounts too (the overlay of the image's layers, made on the "
                           "host before the namespaces exist). Keep only the events whose side is init."},
                   "not it. Each event is a dict: count those whose 'op' is 'mount' and whose 'side' is 'init'.")


# --- 2. Namespaces ------------------------------------------------------------------------------------


@exercise("namespaces/host-pid", "Write host_pid(container): the host's PID of a running container's PID 1.")
def _host_pid(answer: Callable, *, client: Any) -> Verdict:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True)
    expected, got = _asked_about(container, answer, lambda c: c.attrs["State"]["Pid"])
    if got == expected:
        return Verdict(True, f"PID {expected} on the host is PID 1 in the container: one process, a PID in each "
                             "PID namespace it is nested in (NSpid in /proc/PID/status lists both).")
    if got == 1:
        return Verdict(False, "1 is its PID inside its own PID namespace. The host numbers it differently: "
                              "which part of container.attrs describes the running state?")
    return Verdict(False, f"{got!r} is not it. Look in container.attrs['State'].")


@exercise("namespaces/see-host-processes", "Which run() arguments let a container see the host's processes?")
def _see_host_processes(answer: dict, *, client: Any) -> Verdict:
    import os

    if not isinstance(answer, dict):
        return Verdict(False, "answer with a dict of keyword arguments, e.g. {'some_mode': 'value'}.")
    out = client.containers.run("busybox", ["ps", "-o", "pid"], remove=True, **answer).decode().split()
    if str(os.getpid()) in out:
        return Verdict(True, f"with {answer} the container has no PID namespace of its own: its ps lists "
                             f"{len(out) - 1} processes, the host's, yours among them.")
    return Verdict(False, f"with {answer} the container's ps still lists only its own {len(out) - 1} process(es). "
                          "Which namespace numbers processes? Its *_mode argument can be 'host'.")


@exercise("namespaces/shared-kinds", "Write shared(container_ns, host_ns): the kinds a container shares.")
def _shared_kinds(answer: Callable, *, client: Any) -> Verdict:
    from minicontainer.course.views import NS_SCRIPT, host_ns, parse_ns

    host = host_ns()
    inside = parse_ns(client.containers.run("busybox", ["sh", "-c", NS_SCRIPT], remove=True,
                                            uts_mode="host").decode())
    expected = sorted(k for k in host if inside.get(k) == host[k])
    got = answer(inside, host)
    return _verdict(list(got) == expected,
                    f"a container run with uts_mode='host' shares {', '.join(expected)} with the host: the UTS "
                    "namespace given back, and the user namespace it never had.",
                    f"for a container run with uts_mode='host' your answer is {got!r}. Compare the two dicts' "
                    "values kind by kind: equal links are one namespace. Sorted, as a list.")


# --- 4. Image layers -----------------------------------------------------------------------------------


@exercise("layers/image-id", "Write image_id(config_bytes): the ID of the image whose config is these bytes.")
def _layers_image_id(answer: Callable, *, client: Any) -> Verdict:
    from minicontainer.course.layers import image_parts

    expected = client.images.get("busybox").id
    got = answer(image_parts(client, "busybox").config_raw)
    if got == expected:
        return Verdict(True, "the ID names the config's content: change one byte of the config (a label, an "
                             "environment variable) and it is another image.")
    if isinstance(got, str) and f"sha256:{got}" == expected:
        return Verdict(False, "the right digest, without its algorithm: an ID is written 'sha256:' + the hex.")
    return Verdict(False, "not that one. The ID is a sha256 over the config's exact bytes (not over the "
                          "manifest, nor over a re-encoded JSON).")


@exercise("layers/whiteout-name", "In a layer's tar, which file deletes /etc/group of a lower layer?")
def _whiteout_name(answer: str) -> Verdict:
    said = str(answer).strip().lstrip("/")
    if said == "etc/.wh.group":
        return Verdict(True, "an empty file named .wh.group in etc/: unpacking the layer, the store turns it "
                             "back into what overlayfs understands, a 0/0 character device.")
    if said == "etc/group":
        return Verdict(False, "a layer cannot leave a file out to delete it: a missing file just means "
                              "'unchanged'. Look at the top layer's files after the commit.")
    return Verdict(False, "look for the name starting with .wh. in the committed image's top layer.")


@exercise("layers/shared", "Write shared_layers(image_a, image_b): the diff_ids both images have.")
def _shared_layers(answer: Callable, *, client: Any) -> Verdict:
    box = client.containers.run("busybox", ["touch", "/new"], detach=True)
    box.wait()
    image_b = box.commit()
    box.remove()
    image_a = client.images.get("busybox")
    try:
        theirs = set(image_b.attrs["RootFS"]["Layers"])
        expected = [d for d in image_a.attrs["RootFS"]["Layers"] if d in theirs]
        got = answer(image_b, image_a)  # the committed image first: its own top layer must not be counted
    finally:
        client.images.remove(image_b.id)
    if list(got) == expected:
        return Verdict(True, f"{len(expected)} layer(s) in common: the committed image is busybox's layers plus "
                             "one of its own.")
    return Verdict(False, f"for a commit of busybox and busybox itself your answer has {len(list(got))} layer(s), "
                          f"not {len(expected)}. Both images list their layers in attrs['RootFS']['Layers'].")


# --- 5. Lifecycle and signals ----------------------------------------------------------------------------


@exercise("lifecycle/sigkill-code", "What exit code does a container killed after the grace period report?")
def _sigkill_code(answer: int) -> Verdict:
    if answer == 137:
        return Verdict(True, "128 + 9: the shell's convention for 'killed by signal 9', SIGKILL, sent when the "
                             "grace period ran out.")
    if answer == 143:
        return Verdict(False, "143 is 128 + 15, death by SIGTERM; but this program ignored SIGTERM. Which signal "
                              "comes after the grace period?")
    return Verdict(False, "a process killed by signal N exits, for its parent, with 128 + N.")


@exercise("lifecycle/fast-stop", "Which run() arguments make `sleep 300` stop at once?")
def _fast_stop(answer: dict, *, client: Any) -> Verdict:
    from minicontainer.course.signals import time_stop

    if not isinstance(answer, dict):
        return Verdict(False, "answer with a dict of keyword arguments, e.g. {'some_option': True}.")
    timing = time_stop(client, "yours", ["sleep", "300"], grace=2, **answer)
    return _verdict(timing.seconds < 1,
                    f"stopped in {timing.seconds:.2f} s (exit code {timing.exit_code}): sleep is not PID 1 any "
                    "more, so SIGTERM's default action applies.",
                    f"with {answer} it took {timing.seconds:.1f} s: sleep still ignored SIGTERM as PID 1. Which "
                    "option puts another process in front of it as PID 1?")


@exercise("lifecycle/events", "Which events do create, start, wait and remove of a `true` container produce?")
def _lifecycle_events(answer: list, *, client: Any) -> Verdict:
    import time

    since = time.time()
    box = client.containers.create("busybox", ["true"])
    box.start()
    box.wait()
    box.remove()
    actions = [e["Action"] for e in client.events(since=since, until=time.time(), filters={"container": [box.id]})]
    if list(answer) == actions:
        return Verdict(True, f"{actions}: 'die' when its program exited by itself; no 'stop' or 'kill', nobody sent "
                             "a signal.")
    if "stop" in answer or "kill" in answer:
        return Verdict(False, "nobody stopped or killed it: `true` exits by itself. What does the daemon say "
                              "when a container's program ends?")
    return Verdict(False, f"not that order ({len(actions)} events happen). Try it, and read client.events(since=..., "
                          "until=...).")


# --- 3. cgroups -------------------------------------------------------------------------------------------


@exercise("cgroups/oom-killed", "Write was_oom_killed(container): did the OOM killer end this container?")
def _oom_killed(answer: Callable, *, client: Any) -> Verdict:
    from minicontainer.course.experiments import ALLOCATE

    oom = client.containers.run("busybox", ALLOCATE, detach=True, mem_limit="16m")
    killed = client.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        killed.kill("SIGKILL")
        for box in (oom, killed):
            box.wait()
            box.reload()
        said = (answer(oom), answer(killed))
    finally:
        oom.remove(force=True)
        killed.remove(force=True)
    return _graded(said, (True, False),
                   "the engine records OOMKilled when the cgroup counted an OOM kill: the exit code alone cannot "
                   "tell the OOM killer's SIGKILL from anyone else's.",
                   {(True, True): "a container killed with `kill -9` exits with 137 too. What does the engine "
                                  "record in container.attrs['State'] that only the OOM killer sets?"},
                   f"for an OOM-killed container and a container killed by hand your answer says {said}. Look at "
                   "container.attrs['State'].")


@exercise("cgroups/quarter-cpu", "What value of nano_cpus gives a container a quarter of one CPU?")
def _quarter_cpu(answer: int, *, client: Any) -> Verdict:
    from minicontainer.course.experiments import cpu_quota

    if not isinstance(answer, int) or answer <= 0:
        return Verdict(False, f"{answer!r} is not a whole number of nano-CPUs: nano_cpus counts billionths of a "
                              "CPU (docker's --cpus 1.5 is 1_500_000_000).")
    series = cpu_quota(client, answer / 1e9, seconds=1.5)
    used = sum(p.cpu for p in series[1:]) / max(1, len(series) - 1)
    return _verdict(abs(used - 0.25) < 0.08,
                    f"a busy loop used {used:.2f} CPUs: a quota of 25 ms in every 100 ms period.",
                    f"with nano_cpus={answer} a busy loop used {used:.2f} CPUs, not 0.25. One CPU is 1_000_000_000.")
