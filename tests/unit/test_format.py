"""``--format``: the part of Go's text/template that docker's inspect formats use, printed as Go prints."""

from __future__ import annotations

import pytest

from minicontainer.cli.format import TemplateError, go_template

DATA = {"State": {"Running": True, "Pid": 42, "Error": ""}, "Name": "/web", "Mounts": [],
        "Config": {"Cmd": ["sh", "-c", "x"], "Env": ["A=1", "B=2"], "Labels": {"a b": "1", "é": "ü"}}}


@pytest.mark.parametrize(("template", "printed"), [
    ("{{.State.Running}} {{.State.Pid}}", "true 42"),
    ("{{.Config.Cmd}}", "[sh -c x]"),
    ("{{.Config.Labels}}", "map[a b:1 é:ü]"),
    ("{{.Mounts}}", "[]"),
    ("{{json .Config.Cmd}}", '["sh","-c","x"]'),
    ("{{json .Config.Labels}}", '{"a b":"1","é":"ü"}'),          # UTF-8, not \\u escapes
    ('{{index .Config.Labels "a b"}}', "1"),
    ('{{index .Config.Labels "missing"}}', ""),                   # the zero value, as for docker's maps
    ("{{index .Config.Env 1}}", "B=2"),
    ('{{join .Config.Env "\\n"}}', "A=1\nB=2"),                   # Go's escapes in strings
    ("{{join .Config.Cmd `, `}}", "sh, -c, x"),                   # a raw string
    ("{{len .Config.Env}} {{upper .Name}} {{lower .Name}}", "2 /WEB /web"),
    ("{{- .Name -}}", "/web"),                                    # trim markers
])
def test_values_print_as_go_prints_them(template, printed):
    assert go_template(template, DATA) == printed


@pytest.mark.parametrize(("template", "said"), [
    ("{{.Nope}}", 'map has no entry for key "Nope"'),
    ("{{.Name | upper}}", "pipelines and parentheses are not supported"),
    ("{{len (index .Config.Labels \"a b\")}}", "pipelines and parentheses are not supported"),
    ("{{join .Config.Cmd}}", "error calling join"),
    ("{{len .State.Pid}}", "error calling len"),
    ("{{printf \"%s\" .Name}}", 'function "printf" not defined'),
])
def test_what_cannot_be_run_is_an_error_not_a_guess(template, said):
    with pytest.raises(TemplateError, match=said.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        go_template(template, DATA)
