"""The course notebooks, run as a learner runs them, and looked at as a learner sees them.

One daemon for the module (root, as in a classroom), whose ``registry-mirrors`` points at the tests'
local registry: the notebooks pull ``busybox`` and ``hello-world`` by their Docker Hub names and
really pull them, from there.  An ordinary user, made for the module in the group ``minicontainer``
(and removed after it), executes every notebook top to bottom with nbclient, in the project's venv,
through the daemon's socket.  Then each executed notebook, as HTML, is opened in headless Chromium
(Debian's, driven by selenium): a full-page screenshot per notebook goes to build/notebooks/, and the
page must show its plots and widgets and no error.  The lessons' exercise checks run against their
solutions (accepted) and a typical wrong answer (refused, with the hint).
"""

from __future__ import annotations

import base64
import grp
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from daemon_support import start_daemon, stop_daemon

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BUILD = REPO / "build" / "notebooks"
GROUP = "minicontainer"


def _as(user: str, gid: int, home: Path, env: dict, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), "USER": user,
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "MPLCONFIGDIR": str(home / "mpl"),
           "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run(argv, env=env, cwd=home, user=user, group=user, extra_groups=[gid], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def classroom(fixture_images, tmp_path_factory):
    """The daemon with its mirror, the learner, and the notebooks executed by the learner (once)."""
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        pytest.fail(f"no group '{GROUP}': `make setup` adds it (groupadd --system {GROUP})")
    registry = fixture_images.registry
    top = Path(tempfile.mkdtemp(prefix="minicontainer-course-"))
    top.chmod(0o755)
    settings = top / "daemon.json"
    settings.write_text(json.dumps({"registry-mirrors": [registry.url]}))
    env = dict(os.environ, MINICONTAINER_ROOT=str(top / "data"), MINICONTAINER_RUN=str(top / "run"),
               MINICONTAINER_DAEMON_CONFIG=str(settings), MINICONTAINER_CONFIG=str(top / "client"),
               MINICONTAINER_AUTOSTART="0")
    user = f"mc-learner-{uuid.uuid4().hex[:6]}"
    daemon = None
    made_user = False
    try:
        daemon = start_daemon(env, top / "run", "--group", GROUP)
        (top / "run").chmod(0o755)

        def mc(*args: str) -> None:
            r = subprocess.run([sys.executable, "-m", "minicontainer.cli.main", *args], env=env, text=True,
                               capture_output=True, timeout=60, check=False)
            assert r.returncode == 0, f"minicontainer {' '.join(args)}: {r.stderr}"

        # hello-world on the registry, as on Docker Hub: the starter's, pushed there, then gone from the store.
        mirror_name = f"{registry.host}/library/hello-world:latest"
        for step in (("starter", "hello-world"), ("tag", "hello-world", mirror_name), ("push", mirror_name),
                     ("rmi", mirror_name, "hello-world")):
            mc(*step)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--home-dir", str(top / "home"), "-G", GROUP, "-U", user], check=True, capture_output=True)
        made_user = True
        home = top / "home"
        shutil.copytree(REPO / "notebooks", home / "notebooks")
        subprocess.run(["chown", "-R", f"{user}:{user}", str(home)], check=True)
        reach = _as(user, gid, home, {}, [sys.executable, "-c", "import nbclient, minicontainer"], 30)
        assert reach.returncode == 0, (f"the learner cannot use this checkout's venv ({sys.prefix}): every folder "
                                       f"above it must be readable by others (chmod o+rx): {reach.stderr}")
        out = home / "executed"
        run = _as(user, gid, home, {"MINICONTAINER_HOST": f"unix://{top / 'run' / 'minicontainer.sock'}",
                                    "MINICONTAINER_AUTOSTART": "0"},
                  [sys.executable, "-m", "minicontainer.course.render", "--timeout", "120",
                   *[str(home / "notebooks" / nb.name) for nb in NOTEBOOKS], str(out)], timeout=400)
        BUILD.mkdir(parents=True, exist_ok=True)
        for page in out.iterdir():
            if page.is_file():
                shutil.copyfile(page, BUILD / page.name)
        shutil.copytree(out / "widgets", BUILD / "widgets", dirs_exist_ok=True)
        yield {"run": run, "user": user, "out": out, "top": top, "env": env}
    finally:
        if daemon is not None:
            stop_daemon(daemon)
        if made_user:
            subprocess.run(["userdel", user], check=False, capture_output=True)
            subprocess.run(["groupdel", user], check=False, capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def executed(classroom, name: str) -> dict:
    path = classroom["out"] / name
    assert path.exists(), f"{name} was not executed:\n{classroom['run'].stdout}\n{classroom['run'].stderr}"
    nb = json.loads(path.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}\n{classroom['run'].stderr[-3000:]}"
    return nb


def text_of(nb: dict) -> str:
    """Everything the notebook printed or displayed as text or HTML."""
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            parts.append("".join(o.get("text", "")))
            for mime in ("text/plain", "text/html"):
                parts.append("".join((o.get("data") or {}).get(mime, "")))
    return "\n".join(parts)


def images_in(nb: dict) -> int:
    return sum(1 for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in (o.get("data") or {}))


# --- the notebooks, executed --------------------------------------------------------------------------


def test_notebooks_are_stored_without_outputs():
    """The rule for contributors (README): notebooks are committed with no outputs and no execution
    counts, so that a diff shows what changed in the lesson, not in a run."""
    assert NOTEBOOKS, "no notebooks in notebooks/"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "minicontainer", path.name
        assert "widgets" not in nb["metadata"], f"{path.name}: saved widget state (clear it before committing)"
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, \
                    f"{path.name}: a cell with outputs: {''.join(cell['source'])[:60]!r}"


def test_hello_world(classroom):
    nb = executed(classroom, "01-hello-world.ipynb")
    text = text_of(nb)
    assert "minicontainer-environment" in text and f"{classroom['user']} (uid" in text  # the learner ran it
    assert "not in the store yet; the registry has it (sha256:" in text  # GET /distribution, through the mirror
    assert "status after create: created" in text
    assert "status after start and wait: exited - exit code 0" in text
    assert "Hello from minicontainer!" in text
    assert "in the store now: ['hello-world:latest']" in text  # pulled, through the mirror
    assert nb["metadata"]["widgets"]  # the pull's progress bars
    assert images_in(nb) >= 1  # the timeline
    assert "Not yet" in text  # the exercises as shipped: placeholders, refused with a hint


def test_namespaces(classroom):
    nb = executed(classroom, "02-namespaces.ipynb")
    text = text_of(nb)
    pid = re.search(r"PID 1 inside is PID (\d+) on the host", text)
    assert pid, text[:2000]
    assert re.search(rf"NSpid:\s+{pid.group(1)}\s+1\b", text)  # the kernel's own word for it
    assert "this kernel among them: True" in text  # pid_mode='host' lists the learner's own kernel
    assert re.search(r"PID   COMMAND\n\s+1 sleep 300\n", text)  # pid_mode='container:...': the other's PID 1
    assert "network_mode='none':   ['lo']" in text and "default:               ['eth0', 'lo']" in text
    assert "its own IPC namespace" in text and "uid 0" in text
    assert images_in(nb) == 1  # the namespace map
    assert text.count("Not yet") == 3


def test_image_layers(classroom):
    nb = executed(classroom, "04-image-layers.ipynb")
    text = text_of(nb)
    assert '"mediaType": "application/vnd.oci.image.manifest.v1+json"' in text
    ids = [line.split(":", 1)[1].strip() for line in text.splitlines()
           if line.startswith(("sha256 of the config's bytes:", "the image's ID:"))]
    assert len(ids) == 2 and ids[0] == ids[1]  # the image ID is the config's sha256
    assert "lower: ['/" in text and "/upper" in text and "/work" in text  # the real overlay mount's dirs
    assert "D /etc/group" in text and "A /hello.txt" in text  # the container's diff
    assert "whiteouts: ['etc/.wh.group']" in text  # in the committed layer
    assert "shared: ['sha256:" in text
    assert images_in(nb) == 2  # the overlay and the shared layer


def test_lifecycle_and_signals(classroom):
    nb = executed(classroom, "05-lifecycle-and-signals.ipynb")
    text = text_of(nb)
    assert "after create: created" in text and "after start:  running" in text
    assert "after stop:   exited - exit code 137" in text and "after rm:     []" in text
    for action in ("create", "start", "kill", "die", "destroy"):
        assert f" {action:<8} lifecycle-demo" in text, action
    stops = {label: (float(seconds), int(code)) for label, seconds, code in
             re.findall(r"^(.+?)\s+stopped in\s+([\d.]+) s, exit code (\d+)$", text, re.MULTILINE)}
    assert 2.9 < stops["sleep as PID 1 (no handler)"][0] < 4 and stops["sleep as PID 1 (no handler)"][1] == 137
    assert stops["a shell that traps TERM"][0] < 1 and stops["a shell that traps TERM"][1] == 0
    assert stops["sleep under --init (tini)"][0] < 1 and stops["sleep under --init (tini)"][1] == 143
    assert "1 s after SIGTERM: running" in text and "after SIGKILL:     137" in text
    assert "stdout only: b'to stdout\\n'" in text and "stderr only: b'to stderr\\n'" in text
    assert re.search(r"PID   COMMAND\n\s+1 sleep 300\n\s+\d+ ps -o pid,args", text)  # exec: PID 1's neighbour
    assert "stdout: b'out: one\\nout: two\\n'" in text and "stderr: b'err: one\\nerr: two\\n'" in text
    assert "exit code: 3 - in" in text  # stdin in, stdout and stderr apart, its own exit code
    assert images_in(nb) == 2  # the events and the stop timings


def test_cgroups(classroom):
    nb = executed(classroom, "03-cgroups.ipynb")
    text = text_of(nb)
    assert re.search(r"the OOM kill after [\d.]+ s", text)  # the oom mark in the sampled series
    assert "OOMKilled: True  exit code: 137" in text
    average = float(re.search(r"average use: ([\d.]+) CPUs", text).group(1))
    assert 0.35 < average < 0.65
    assert "the most processes at once: 20 of at most 20" in text
    assert float(re.search(r"CPU while paused: ([\d.]+)", text).group(1)) < 0.05
    assert images_in(nb) == 4  # memory, CPU, pids, pause (the slider's plot is in its widget's state)
    outputs = json.dumps(nb["metadata"]["widgets"])
    assert "IntSliderModel" in outputs and "limit 48 MiB: OOMKilled=True" in outputs


# --- the pages, as a browser shows them ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, page: Path, png: Path) -> None:
    """The whole page, not only the window: Chrome's DevTools protocol can capture beyond the viewport."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "format": "png",
                                                              "clip": {"x": 0, "y": 0, "width": width,
                                                                       "height": height, "scale": 1}})
    png.write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.parametrize("name", [nb.stem for nb in NOTEBOOKS])
def test_page_in_a_browser(classroom, browser, name):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    nb = executed(classroom, f"{name}.ipynb")
    page = BUILD / f"{name}.html"
    html = page.read_text()
    assert "https://" not in "".join(line for line in html.splitlines() if "<script src=" in line)  # no CDN
    browser.get(page.as_uri())
    views = sum(1 for c in nb["cells"] for o in c.get("outputs", [])
                if "application/vnd.jupyter.widget-view+json" in (o.get("data") or {}))
    if views:  # the renderer (embed-amd.js, beside the page) draws each widget where its view's script is
        WebDriverWait(browser, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".widget-subarea")) >= views)
    if name == "01-hello-world":
        assert browser.find_elements(By.CSS_SELECTOR, ".jupyter-widgets.widget-hprogress")  # the pull's bars
    if "IntSliderModel" in json.dumps(nb["metadata"].get("widgets")):
        WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".widget-slider"))
        drawn = browser.find_elements(By.CSS_SELECTOR, ".widget-output img[src^='data:image/png']")
        assert drawn and drawn[0].size["width"] > 100  # the slider's plot, drawn from the saved widget state
    screenshot(browser, page, BUILD / f"{name}.png")
    assert (BUILD / f"{name}.png").stat().st_size > 10_000
    plots = browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']")
    assert len(plots) >= images_in(nb) >= 1  # (and those a widget shows)
    assert all(p.size["width"] > 100 for p in plots)  # drawn, not broken images
    shown = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in shown and "Your environment" in shown
    stderr = browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr']")
    assert not [e.text for e in stderr if "Error" in e.text]  # no cell shows an error


# --- the lessons' exercise checks --------------------------------------------------------------------


def solutions(lesson: str):
    path = REPO / "lessons" / "solutions" / f"{lesson}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lesson_client(classroom):
    """A client as root on the module's daemon (the checks need a daemon, not the learner's user)."""
    from minicontainer.client import Client

    return Client(str(classroom["top"] / "run" / "minicontainer.sock"))


def lesson_names() -> list[str]:
    return sorted(p.stem for p in (REPO / "lessons" / "solutions").glob("[0-9]*.py"))


@pytest.mark.parametrize("lesson", lesson_names())
def test_exercise_checks(lesson, lesson_client):
    from minicontainer.course import exercises

    module = solutions(lesson)
    context = module.context(lesson_client)
    assert set(module.SOLUTIONS) == set(module.WRONG) and module.SOLUTIONS
    for key, solution in module.SOLUTIONS.items():
        verdict = exercises.evaluate(key, solution, **context.get(key, {}))
        assert verdict.ok, f"{key}: its solution was refused: {verdict.message}"
        wrong = exercises.evaluate(key, module.WRONG[key], **context.get(key, {}))
        assert not wrong.ok and wrong.message, f"{key}: a wrong answer was accepted"
        assert wrong.message != verdict.message
