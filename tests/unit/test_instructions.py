"""What the config-only Dockerfile instructions write into an image's config (build and commit --change)."""

from __future__ import annotations

import pytest

from minicontainer.engine.instructions import apply_to_config, duration_ns, go_quote
from minicontainer.image.dockerfile import parse_instruction


def apply(config: dict, line: str, variables: dict | None = None, **kw) -> str:
    return apply_to_config(config, parse_instruction(1, line), variables or {}, **kw)


def test_env_label_user_workdir_expand_variables():
    config: dict = {"Env": ["PATH=/bin", "A=old"]}
    assert apply(config, 'ENV A=new B="$HOME x"', {"HOME": "/root"}) == "ENV A=new B=/root x"
    assert config["Env"] == ["PATH=/bin", "A=new", "B=/root x"]
    apply(config, "LABEL a=1 b=$V", {"V": "2"})
    apply(config, "USER ${U:-nobody}")
    apply(config, "WORKDIR /app")
    apply(config, "WORKDIR sub")
    assert config["Labels"] == {"a": "1", "b": "2"} and config["User"] == "nobody" and config["WorkingDir"] == "/app/sub"


def test_cmd_entrypoint_and_the_shell():
    config: dict = {"Cmd": ["from", "base"]}
    assert apply(config, 'CMD echo "$HOME"') == 'CMD ["/bin/sh" "-c" "echo \\"$HOME\\""]'  # not expanded: the shell does
    assert config["Cmd"] == ["/bin/sh", "-c", 'echo "$HOME"']
    apply(config, 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    apply(config, "ENTRYPOINT run me", cmd_set=True)
    assert config["Entrypoint"] == ["/bin/bash", "-o", "pipefail", "-c", "run me"] and config["Cmd"] is not None
    base: dict = {"Cmd": ["from", "base"]}
    apply(base, 'ENTRYPOINT ["/entry"]')
    assert base["Entrypoint"] == ["/entry"] and base["Cmd"] is None  # the base's CMD was for another entrypoint
    assert go_quote(["sh", "-c", 'a "b"']) == '["sh" "-c" "a \\"b\\""]'


def test_expose_volume_stopsignal_onbuild_healthcheck():
    config: dict = {}
    assert apply(config, "EXPOSE 80 53/udp 8000-8001") == "EXPOSE 53/udp 80/tcp 8000/tcp 8001/tcp"
    apply(config, 'VOLUME ["/data"]')
    apply(config, "VOLUME /logs")
    apply(config, "STOPSIGNAL SIGQUIT")
    apply(config, "ONBUILD COPY . /app")
    apply(config, "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD [\"curl\", \"-f\", \"localhost\"]")
    assert config["Volumes"] == {"/data": {}, "/logs": {}} and config["StopSignal"] == "SIGQUIT"
    assert config["OnBuild"] == ["COPY . /app"]
    assert config["Healthcheck"] == {"Test": ["CMD", "curl", "-f", "localhost"], "Interval": 90_000_000_000,
                                     "Timeout": 500_000_000, "Retries": 3}
    apply(config, "HEALTHCHECK NONE")
    assert config["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize("line, message", [
    ("STOPSIGNAL SIGNOPE", "invalid signal: SIGNOPE"),
    ("EXPOSE http", "invalid port 'http'"),
    ("VOLUME \"\"", "can not be an empty string"),
    ("HEALTHCHECK --interval=soon CMD true", "invalid duration 'soon'"),
])
def test_values_docker_refuses(line, message):
    with pytest.raises(ValueError, match=message):
        apply({}, line)
    assert duration_ns("2h", "interval") == 7_200_000_000_000
