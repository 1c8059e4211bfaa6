"""The first cell of every notebook, where things are missing: it must say what, and what to do."""

from __future__ import annotations

import pytest
from test_engine import engine  # noqa: F401 - the fixture: a daemon of the test's own, with busybox

from minicontainer import course
from minicontainer.course import environment

pytestmark = pytest.mark.root


def test_without_a_registry_the_starter_images_stand_in(engine, monkeypatch, capsys):  # noqa: F811
    # This daemon has no registry-mirrors, and the tests have no internet: Docker Hub cannot answer.
    monkeypatch.setenv("MINICONTAINER_HOST", f"unix://{engine.root / 'run' / 'minicontainer.sock'}")
    monkeypatch.setattr(environment, "NO_REGISTRY", set())
    client = course.check_environment(images=("busybox", "hello-world"))
    shown = capsys.readouterr().out
    assert "ok       daemon: minicontainerd" in shown
    assert "limited  image busybox: in the local store" in shown and "no registry answered" in shown
    assert "limited  image hello-world: no registry answered" in shown
    assert "built it from this host's files instead (minicontainer starter hello-world)" in shown
    assert "-> check the network, or the daemon's registry-mirrors" in shown
    assert client.images.get("hello-world").tags == ["hello-world:latest"]  # every later cell can run
    image = course.pull(client, "hello-world")
    assert "No registry could be reached: hello-world is the copy in the store" in capsys.readouterr().out
    assert image.id == client.images.get("hello-world").id


def test_an_image_no_one_can_provide_stops_the_notebook_there(engine, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("MINICONTAINER_HOST", f"unix://{engine.root / 'run' / 'minicontainer.sock'}")
    with pytest.raises(environment.NotReady, match="image postgres: check the network"):
        course.check_environment(images=("postgres",))
    assert "missing  image postgres: not in the store, and no registry has it" in capsys.readouterr().out


def test_no_daemon_says_how_to_start_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINICONTAINER_HOST", f"unix://{tmp_path / 'nothing.sock'}")
    monkeypatch.setenv("MINICONTAINER_AUTOSTART", "0")
    with pytest.raises(environment.NotReady, match=r"daemon: start the daemon as root \(sudo .venv/bin/minicontainerd\)"):
        course.check_environment()
    assert f"missing  daemon: no answer on unix://{tmp_path / 'nothing.sock'}" in capsys.readouterr().out
